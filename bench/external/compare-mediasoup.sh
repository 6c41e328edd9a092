#!/usr/bin/env bash
# Runs mediasoup (via mediasoup-plan.mjs + `ringsfu-bench external`) and ringsfu (`ringsfu-bench
# fanout`, in-process and --spawn-server) on the same traffic, alternating, and prints one table.
# Needs: MEDIASOUP_WORKER_BIN, `npm install --ignore-scripts` here, and release builds of
# ringsfu-bench and ringsfu. Usage: bench/external/compare-mediasoup.sh [OUTDIR] (from the repo root).
set -euo pipefail
OUT=${1:-/tmp/msoup-compare}
BENCH=${BENCH:-target/release/ringsfu-bench}
RINGSFU=${RINGSFU:-target/release/ringsfu}
REPEAT=${REPEAT:-2}
DURATION=${DURATION:-5}
HERE=$(dirname "$0")
mkdir -p "$OUT"
: "${MEDIASOUP_WORKER_BIN:?set MEDIASOUP_WORKER_BIN to the built mediasoup-worker}"

mediasoup_run() { # consumers size rate json
	local plan="$OUT/plan-$1-$2.json" fifo="$OUT/stdin.fifo"
	rm -f "$plan" "$fifo"
	mkfifo "$fifo"
	node "$HERE/mediasoup-plan.mjs" --producers 1 --consumers "$1" --size "$2" --core 0 \
		--plan-out "$plan" <"$fifo" >"$OUT/mediasoup.log" 2>&1 &
	local node_pid=$!
	exec 9>"$fifo" # holding the fifo open keeps the plan writer (and its worker) alive
	for _ in $(seq 100); do [ -f "$plan" ] && break; sleep 0.1; done
	[ -f "$plan" ] || { cat "$OUT/mediasoup.log"; kill "$node_pid"; return 1; }
	taskset -c 1 "$BENCH" external --plan "$plan" --rate "$3" --size "$2" \
		--duration "$DURATION" --quiet --json "$4" || true
	exec 9>&- # closing stdin stops the plan writer
	wait "$node_pid" || true
	rm -f "$fifo"
}

for case in "10 160 2000" "10 1200 2000" "100 160 500" "100 1200 500"; do
	set -- $case
	for rep in $(seq "$REPEAT"); do
		mediasoup_run "$1" "$2" "$3" "$OUT/mediasoup-$1-$2-$rep.json"
		"$BENCH" fanout --consumers "$1" --size "$2" --rate "$3" --duration "$DURATION" \
			--quiet --json "$OUT/ringsfu-$1-$2-$rep.json"
	done
	for rep in $(seq "$REPEAT"); do
		"$BENCH" fanout --spawn-server "$RINGSFU" --consumers "$1" --size "$2" --rate "$3" \
			--duration "$DURATION" --quiet --json "$OUT/ringsfu-spawned-$1-$2-$rep.json"
	done
done
node "$HERE/summarize.mjs" "$OUT"/*.json
