#!/usr/bin/env bash
# Runs every test of the project: the Rust test suites (unit, engine end-to-end with an independent
# webrtc-rs peer, signaling, server) and the headless-Chromium end-to-end run with mediasoup-client
# against a real ringsfu server (three peers; and an ffmpeg broadcaster watched by a browser).
# CI (.ci/run) installs the prerequisites and runs exactly this.
#
# Needs: cargo, node + npm, /usr/bin/chromium (Debian package `chromium`), ffmpeg, and Python aiortc in
# tests/aiortc/.venv (.ci/run installs it).
set -euo pipefail
cd "$(dirname "$0")"

echo "== cargo test (profile ci: release without LTO)"
cargo test --workspace --profile ci

echo "== engine end-to-end suite again on the io_uring backend setting"
RINGSFU_IO_BACKEND=io_uring cargo test --profile ci -p ringsfu-core --test webrtc_e2e --test plain_transport --test zero_alloc

echo "== browser end-to-end (headless Chromium + mediasoup-client)"
if [ ! -x /usr/bin/chromium ]; then
  echo "FAIL: /usr/bin/chromium is missing (apt-get install chromium); .ci/run installs it" >&2
  exit 1
fi
( cd tests/browser && { [ -d node_modules ] || npm ci --no-audit --no-fund; } )
cargo build --profile ci --bin ringsfu
# Below the kernel's ephemeral range (32768-60999), so no outgoing socket can hold them.
port=$(( 21000 + RANDOM % 5000 ))
rtc_port=$(( 26000 + RANDOM % 6000 ))
log=$(mktemp /tmp/ringsfu-e2e.XXXXXX.log)
turn_port=$(( 20000 + RANDOM % 20000 ))
turn_lo=$(( 50000 + (RANDOM % 100) * 100 ))
turn_secret="test-$RANDOM$RANDOM"
turn_cfg=$(mktemp -d /tmp/ringsfu-turncfg.XXXXXX)
mkdir -p "$turn_cfg/lua"
# The embedded config plus two long-term TURN users and one denied loopback peer (127.0.0.2), for
# turnutils_uclient and tests/turn/rfc_errors.py.
sed 's/^  calls = {/  turn = { users = { alice = "alicepw", bob = "bobpw" }, deniedPeers = { "127.0.0.2" } },\n  calls = {/' \
  lua/config.lua > "$turn_cfg/lua/config.lua"
# The browser test pages are served from http://127.0.0.1:<another port> (tests/browser/lib):
# a cross origin, which the server refuses by default (security.wsOrigins for the protoo
# WebSocket, security.corsOrigins for whip.mjs's WHIP/WHEP fetches). Allow exactly that origin.
# start_server LOG [NAME=VALUE...]: starts the server with the test settings (the overrides last:
# they win), waits until it is up, sets $started.
start_server() {
  local out=$1; shift
  env RINGSFU_WS_ORIGINS="http://127.0.0.1:*" RINGSFU_CORS_ORIGINS="http://127.0.0.1:*" \
    RINGSFU_HTTP_PORT=$port RINGSFU_RTC_PORT=$rtc_port RINGSFU_LOG_LEVEL=info RINGSFU_WHIP_TOKEN=whip-test-token \
    RINGSFU_TURN_PORT=$turn_port RINGSFU_TURN_RELAY_PORTS=$turn_lo-$(( turn_lo + 99 )) \
    RINGSFU_TURN_ALLOW_LOOPBACK_PEERS=true RINGSFU_TURN_SECRET=$turn_secret "$@" \
    ./target/ci/ringsfu --config "$turn_cfg/lua/config.lua" >"$out" 2>&1 &
  started=$!
  for _ in $(seq 1 200); do
    if grep -q " up: " "$out"; then return 0; fi
    if ! kill -0 $started 2>/dev/null; then cat "$out"; echo "FAIL: server exited" >&2; exit 1; fi
    sleep 0.1
  done
}
server=
uring_server=
trap 'kill $server $uring_server 2>/dev/null || true; wait $server $uring_server 2>/dev/null || true' EXIT
start_server "$log"
server=$started
export RINGSFU_WS="ws://127.0.0.1:$port"
status=0
for variant in "plain:" "simulcast:RINGSFU_SIMULCAST=1" "tcp:RINGSFU_FORCE_TCP=1"; do
  name=${variant%%:*}; envs=${variant#*:}
  echo "-- browser scenario: $name"
  if ! ( cd tests/browser && env $envs node run.mjs ); then
    status=1
    echo "browser scenario $name failed; server log: $log" >&2
  fi
done
echo "-- browser scenario: ffmpeg broadcaster (HTTP API) watched by a browser"
if ! ( cd tests/browser && node run.mjs --broadcaster ); then
  status=1
  echo "browser broadcaster scenario failed; server log: $log" >&2
fi
echo "-- browser scenario: quality (720p 3-layer simulcast publisher keeps its estimate and layers; viewer decodes 1280x720)"
if ! ( cd tests/browser && node quality.mjs ); then
  status=1
  echo "browser quality scenario failed; server log: $log" >&2
fi
echo "-- browser scenario: constrained downlink (viewer in a network namespace behind tbf 500 kbit/s: moved down within 5 s, no decode stall over 1 s, back to 1280x720 within 15 s after the limit is lifted)"
# Needs root (ip netns, tc; CI runs as root) and starts its own server on a veth address (~30 s).
if [ "$(id -u)" = 0 ] && command -v tc >/dev/null; then
  if ! ( cd tests/browser && node downlink.mjs ); then
    status=1
    echo "browser downlink scenario failed; logs: tests/browser/dist/downlink-console.log" >&2
  fi
else
  echo "FAIL: the downlink scenario needs root and tc (iproute2; .ci/run installs it)" >&2
  status=1
fi
echo "-- browser scenario: layers (two 720p simulcast publishers, one viewer: priority on a capped transport, preferred spatial and temporal layers)"
if ! ( cd tests/browser && node layers.mjs ); then
  status=1
  echo "browser layers scenario failed; server log: $log" >&2
fi
echo "-- 1:1 call pages (README, \"1:1 calls\"): socket.io (seed 003) and /call WebSocket (seed 004)"
for flow in socketio ws; do
  if ! ( cd tests/browser && RINGSFU_HTTP="http://127.0.0.1:$port" node calls.mjs $flow --relay ); then
    status=1
    echo "call scenario $flow failed; server log: $log" >&2
  fi
done
echo "-- TURN error answers (401, 441, 437, 403) with an independent stdlib-only Python client"
if ! TURN_SECRET=$turn_secret python3 tests/turn/rfc_errors.py "$turn_port"; then
  status=1
  echo "TURN RFC checks failed; server log: $log" >&2
fi
echo "-- TURN with coturn's turnutils_uclient (long-term and REST credentials, UDP and TCP)"
if command -v turnutils_uclient >/dev/null; then
  if ! RINGSFU_TURN_PORT=$turn_port TURN_SECRET=$turn_secret TURN_HTTP="http://127.0.0.1:$port" tests/turn/uclient.sh; then
    status=1
    echo "TURN checks failed; server log: $log" >&2
  fi
else
  echo "FAIL: turnutils_uclient missing (apt-get install coturn; .ci/run installs it)" >&2
  status=1
fi
echo "-- WHIP/WHEP statuses, WHIP publisher + WHEP viewer next to a mediasoup-client peer, the demo page at / in two browser contexts (screenshots: tests/browser/dist/whip/)"
if ! ( cd tests/browser && RINGSFU_HTTP="http://127.0.0.1:$port" RINGSFU_WHIP_TOKEN=whip-test-token node whip.mjs ); then
  status=1
  echo "WHIP scenario failed; server log: $log" >&2
fi
echo "-- WHIP/WHEP with an independent stack: Python aiortc publishes a test pattern and plays it back"
if tests/aiortc/.venv/bin/python -c 'import aiortc' 2>/dev/null; then
  if ! RINGSFU_HTTP="http://127.0.0.1:$port" RINGSFU_WHIP_TOKEN=whip-test-token tests/aiortc/.venv/bin/python tests/aiortc/whip_whep.py; then
    status=1
    echo "aiortc WHIP/WHEP scenario failed; server log: $log" >&2
  fi
else
  echo "FAIL: aiortc missing (tests/aiortc/.venv; .ci/run installs it: python3 -m venv tests/aiortc/.venv && tests/aiortc/.venv/bin/pip install aiortc==1.16.0)" >&2
  status=1
fi
echo "-- browser scenario on the io_uring backend: plain (run.mjs against a second server with ioBackend io_uring)"
uring_log=$(mktemp /tmp/ringsfu-e2e-uring.XXXXXX.log)
start_server "$uring_log" RINGSFU_IO_BACKEND=io_uring RINGSFU_HTTP_PORT=$(( port + 1 )) \
  RINGSFU_RTC_PORT=$(( rtc_port + 2 )) RINGSFU_TURN_PORT=$(( turn_port + 1 )) \
  RINGSFU_TURN_RELAY_PORTS=$(( turn_lo + 100 ))-$(( turn_lo + 199 ))
uring_server=$started
if grep -q "io_uring is unavailable" "$uring_log"; then
  echo "NOTE: io_uring is unavailable on this machine: this run used the epoll fallback" >&2
fi
if ! ( cd tests/browser && RINGSFU_WS="ws://127.0.0.1:$(( port + 1 ))" node run.mjs ); then
  status=1
  echo "browser scenario plain on io_uring failed; server log: $uring_log" >&2
fi
exit $status
