#!/usr/bin/env bash
# Same-run A/B of the release server (not part of the test suite): alternates
# `credits-bench spend --http` between configuration A and configuration B,
# `pairs` times, and prints each phase's spends/s for both and the ratio B/A
# of their medians. A configuration is a server binary and the mechanisms
# switched off for it (`CREDITS_TUNING_OFF`, see src/tuning.rs; "" for none).
#
#   scripts/ab.sh BACKEND PAIRS SECS A_BINARY A_OFF B_BINARY B_OFF
#   e.g. scripts/ab.sh sqlite 3 6 target/release/credits in_place target/release/credits ""
#
# BENCH (default target/release/credits-bench) is the driver.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 7 ] || { sed -n '2,12p' "$0"; exit 2; }
backend=$1 pairs=$2 secs=$3 a_bin=$4 a_off=$5 b_bin=$6 b_off=$7
bench="${BENCH:-target/release/credits-bench}"
out="target/ab/$(date +%s)-$backend"
mkdir -p "$out"
for i in $(seq 1 "$pairs"); do
  for side in a b; do
    if [ $side = a ]; then bin=$a_bin off=$a_off; else bin=$b_bin off=$b_off; fi
    CREDITS_TUNING_OFF="$off" "$bench" spend --http --backend "$backend" --secs "$secs" \
      --binary "$bin" --work-dir "$out/work" > "$out/$side-$i.json" 2> "$out/$side-$i.log"
  done
done
python3 - "$out" "$pairs" "A=$a_bin off=[$a_off]" "B=$b_bin off=[$b_off]" <<'PY'
import json, statistics, sys
out, pairs, a_name, b_name = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
runs = {side: [json.load(open(f"{out}/{side}-{i}.json"))["http"] for i in range(1, pairs + 1)] for side in "ab"}
print(f"{a_name}\n{b_name}\n{'phase':<14} {'A spends/s':<28} {'B spends/s':<28} B/A (medians)")
for phase in ["spread", "hot", "hold+capture"]:
    a = [run[phase]["rate"] for run in runs["a"]]
    b = [run[phase]["rate"] for run in runs["b"]]
    fmt = lambda xs: " ".join(f"{x:,.0f}" for x in xs)
    print(f"{phase:<14} {fmt(a):<28} {fmt(b):<28} {statistics.median(b) / statistics.median(a):.2f}")
PY
