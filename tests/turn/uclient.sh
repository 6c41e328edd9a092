#!/usr/bin/env bash
# TURN checks against a running ringsfu with coturn's independent client, turnutils_uclient.
# Needs: RINGSFU_TURN_PORT, TURN_SECRET (the server's REST secret), TURN_HTTP (signaling URL),
# a long-term user alice/alicepw, and loopback peers allowed (test.sh starts it so).
set -uo pipefail
port=${RINGSFU_TURN_PORT:?}; secret=${TURN_SECRET:?}; http=${TURN_HTTP:?}
fail=0
check() { if eval "$2"; then echo "ok   turn: $1"; else echo "FAIL turn: $1"; fail=1; fi; }
relay() { timeout 60 turnutils_uclient -c -y -n 100 -m 2 -l 500 -p "$port" "$@" -e 127.0.0.1 127.0.0.1 2>&1; }
got_all() { grep -q "tot_send_msgs=200, tot_recv_msgs=200" <<<"$1" && grep -q "Total lost packets 0 " <<<"$1"; }

out=$(relay -u alice -w alicepw); check "long-term credentials relay 200/200 over UDP (ChannelData)" 'got_all "$out"'
out=$(relay -u alice -w alicepw -s); check "Send/Data indications relay 200/200" 'got_all "$out"'
out=$(relay -u alice -w alicepw -t); check "TURN over TCP relays 200/200" 'got_all "$out"'
out=$(relay -W "$secret" -u restuser); check "REST API (shared secret) credentials relay 200/200" 'got_all "$out"'
out=$(relay -u alice -w wrong); check "a wrong password cannot allocate" '! got_all "$out" && grep -q "Cannot complete Allocation" <<<"$out"'
out=$(relay -W wrong-secret -u restuser); check "a wrong REST secret cannot allocate" '! got_all "$out"'
# 127.0.0.2 is in the test server's turn.deniedPeers: ChannelBind/CreatePermission get 403, nothing is relayed.
out=$(timeout 60 turnutils_uclient -c -n 5 -m 1 -l 100 -p "$port" -u alice -w alicepw -e 127.0.0.2 -r 9 127.0.0.1 2>&1)
check "a peer in turn.deniedPeers gets 403 Forbidden" 'grep -q "error 403" <<<"$out" && ! grep -q "tot_recv_msgs=5" <<<"$out"'

# A malformed flood on the TURN port while a relayed transfer runs: dropped, counted, transfer intact.
before=$(curl -sf "$http/turn/stats" | sed -E 's/.*"malformed":([0-9]+).*/\1/')
relay -u alice -w alicepw -n 300 -z 10 > /tmp/ringsfu-turn-flood.$$ &
bg=$!
python3 - "$port" <<'PY'
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
port = int(sys.argv[1])
for i in range(20000):
    n = 1 + i % 300
    b = bytearray(os.urandom(n))
    if i % 3 == 0 and n >= 20:
        b[0] = 0; b[1] = 1; b[4:8] = b'\x21\x12\xa4\x42'   # STUN-looking with a broken length
    s.sendto(bytes(b), ("127.0.0.1", port))
PY
wait $bg
out=$(cat /tmp/ringsfu-turn-flood.$$); rm -f /tmp/ringsfu-turn-flood.$$
# /turn/stats is refreshed by the TURN task: wait (up to 30 s) for the count to show the flood.
for _ in $(seq 60); do
  after=$(curl -sf "$http/turn/stats" | sed -E 's/.*"malformed":([0-9]+).*/\1/')
  [ $(( after - before )) -ge 10000 ] && break
  sleep 0.5
done
check "relayed transfer intact during a 20000-datagram garbage flood" 'grep -q "tot_send_msgs=600, tot_recv_msgs=600" <<<"$out"'
check "the flood was dropped and counted (malformed $before → $after)" '[ $(( after - before )) -ge 10000 ]'
exit $fail
