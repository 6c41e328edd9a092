#!/usr/bin/env bash
# ringsfu's built-in TURN server side by side with coturn's turnserver: the same turnutils_uclient
# load (client-to-client through two relays, so every message crosses the server twice) against
# each, alternating A B A B in the same run. Reports messages, loss, wall time and the server's
# CPU time per relayed packet (utime+stime from /proc, so only the server process is counted).
#
# Usage: bench/turn/compare.sh [RINGSFU_BINARY] [ROUNDS] [CLIENTS] [MESSAGES] [SIZE] [INTERVAL_MS]
#   defaults: target/release/ringsfu, 2 rounds, 20 clients, 3000 messages each, 500 bytes, one
#   message per client every 1 ms (uclient -z).
# Needs coturn (turnserver, turnutils_uclient). Loopback only; ports 56600-56899.
set -euo pipefail
bin=${1:-target/release/ringsfu}; rounds=${2:-2}; clients=${3:-20}; msgs=${4:-3000}; size=${5:-500}; interval=${6:-1}
[ -x "$bin" ] || { echo "no binary at $bin (cargo build --release)" >&2; exit 2; }
command -v turnserver >/dev/null && command -v turnutils_uclient >/dev/null ||
  { echo "coturn missing (apt-get install coturn)" >&2; exit 2; }

work=$(mktemp -d /tmp/ringsfu-turnbench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# ringsfu: TURN on 56678, relays 56700-56799, one long-term user, loopback peers allowed.
mkdir -p "$work/lua"
sed 's/^  calls = {/  turn = { users = { alice = "alicepw" }, userQuota = 0 },\n  calls = {/' lua/config.lua > "$work/lua/config.lua"
RINGSFU_HTTP_PORT=56643 RINGSFU_RTC_PORT=56644 RINGSFU_TURN_PORT=56678 RINGSFU_TURN_RELAY_PORTS=56700-56799 \
  RINGSFU_TURN_ALLOW_LOOPBACK_PEERS=true RINGSFU_LOG_LEVEL=warn \
  "$bin" --config "$work/lua/config.lua" >"$work/ringsfu.log" 2>&1 &
pids+=($!); ringsfu_pid=$!
# coturn: TURN on 56878, relays 56800-56877, the same user, loopback peers allowed, one relay thread
# per core as its default.
turnserver -n --listening-ip 127.0.0.1 --relay-ip 127.0.0.1 -p 56878 --min-port 56800 --max-port 56877 \
  -a -u alice:alicepw -r ringsfu --allow-loopback-peers --no-cli --no-tls --no-dtls \
  --log-file "$work/coturn.log" --simple-log >/dev/null 2>&1 &
pids+=($!); coturn_pid=$!

wait_port() { for _ in $(seq 100); do
  timeout 2 turnutils_stunclient -p "$1" 127.0.0.1 >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "server on $1 did not answer" >&2; exit 1; }
wait_port 56678; wait_port 56878

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run() { # name pid port
  local t0 c0 out t1 c1 sent recv lost
  c0=$(cpu_ticks "$2"); t0=$(date +%s.%N)
  out=$(timeout 300 turnutils_uclient -c -y -m "$clients" -n "$msgs" -l "$size" -z "$interval" -p "$3" \
        -u alice -w alicepw -e 127.0.0.1 127.0.0.1 2>&1)
  t1=$(date +%s.%N); c1=$(cpu_ticks "$2")
  sent=$(sed -nE 's/.*tot_send_msgs=([0-9]+).*/\1/p' <<<"$out" | tail -1)
  recv=$(sed -nE 's/.*tot_recv_msgs=([0-9]+).*/\1/p' <<<"$out" | tail -1)
  lost=$(sed -nE 's/.*Total lost packets ([0-9]+) .*/\1/p' <<<"$out" | tail -1)
  awk -v n="$1" -v s="${sent:-0}" -v r="${recv:-0}" -v l="${lost:-?}" -v w="$(echo "$t1 - $t0" | bc)" \
      -v c="$(( c1 - c0 ))" -v hz="$hz" 'BEGIN {
    pk = 2 * r; cpu = c / hz;
    printf "| %-8s | %7d | %7d | %5s | %6.2f | %6.2f | %7.0f | %6.2f |\n",
      n, s, r, l, w, cpu, (w > 0 ? pk / w : 0), (pk > 0 ? cpu * 1e6 / pk : 0) }'
}

echo "uclient: $clients clients x $msgs messages x $size bytes every $interval ms, client-to-client (2 relayed packets per message)"
echo
echo "| server   |    sent |    recv |  lost | wall s |  cpu s | relayed pps | cpu us/pkt |"
echo "|----------|---------|---------|-------|--------|--------|-------------|------------|"
for _ in $(seq "$rounds"); do
  run ringsfu "$ringsfu_pid" 56678
  run coturn "$coturn_pid" 56878
done
