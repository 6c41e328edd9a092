#!/usr/bin/env bash
# A B A B: two ringsfu binaries (an older build A and a newer build B) forwarding the same fan-out,
# alternated run by run so both see the same machine state. Each run spawns the binary fresh
# (`ringsfu-bench fanout --spawn-server`), sets the fan-out up over the HTTP broadcaster API and
# charges the whole server process's CPU. Prints server CPU µs per forwarded packet per run and
# B's median relative to A's, for each scenario, plain and with transport-cc on the consumers.
#
#   bench/ab_binaries.sh OLD_RINGSFU NEW_RINGSFU [BENCH] [ROUNDS] [OUTDIR]
#
# BENCH defaults to target/ci/ringsfu-bench (built from this tree: the client must be the same for
# both), ROUNDS to 3 (A B pairs per scenario), OUTDIR to a fresh temporary folder (JSON per run).
set -euo pipefail
a=${1:?old ringsfu binary}
b=${2:?new ringsfu binary}
bench=${3:-target/ci/ringsfu-bench}
rounds=${4:-3}
out=${5:-$(mktemp -d /tmp/ringsfu-ab.XXXXXX)}
mkdir -p "$out"
# consumers size rate: the 1->10 and 1->100 rows of bench/README.md's fan-out table.
scenarios=("10 1200 2000" "100 1200 500")
for sc in "${scenarios[@]}"; do
  read -r consumers size rate <<<"$sc"
  for cc in "" "--transport-cc"; do
    tag="c${consumers}-s${size}-r${rate}${cc:+-tcc}"
    for ((i = 1; i <= rounds; i++)); do
      for side in A B; do
        bin=$a
        [ "$side" = B ] && bin=$b
        timeout 120 "$bench" fanout --spawn-server "$bin" --consumers "$consumers" --size "$size" \
          --rate "$rate" --duration 5 --warmup 1 $cc --quiet --json "$out/$tag-$side-$i.json" \
          >/dev/null 2>"$out/$tag-$side-$i.err" || { echo "run $tag $side $i failed:" >&2; tail -5 "$out/$tag-$side-$i.err" >&2; exit 1; }
      done
    done
  done
done
python3 - "$out" "$rounds" <<'EOF'
import json, statistics, sys, glob, os
out, rounds = sys.argv[1], int(sys.argv[2])
tags = sorted({os.path.basename(p).rsplit("-", 2)[0] for p in glob.glob(f"{out}/*.json")})
print(f"{'scenario':28} {'A us/fwd (runs)':34} {'B us/fwd (runs)':34} {'B/A median':>10}  loss% A/B")
for tag in tags:
    row = {}
    for side in "AB":
        runs = [json.load(open(f"{out}/{tag}-{side}-{i}.json"))["runs"][0]["result"] for i in range(1, rounds + 1)]
        row[side] = ([r["server_cpu_us_per_fwd"] for r in runs], max(r["loss_pct"] for r in runs))
    ma, mb = statistics.median(row["A"][0]), statistics.median(row["B"][0])
    fmt = lambda v: " / ".join(f"{x:.2f}" for x in v)
    print(f"{tag:28} {fmt(row['A'][0]):34} {fmt(row['B'][0]):34} {mb / ma:10.3f}  {row['A'][1]:.3f}/{row['B'][1]:.3f}")
EOF
echo "JSON per run: $out"
