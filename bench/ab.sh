#!/usr/bin/env bash
# Interleaved A/B of two ds2f binaries with bench/compare.sh: PAIRS pairs, the order
# alternating (A B, B A, A B, ...) so that a slow minute of a noisy machine hits both sides.
# Each run also times PyTorch (compare.sh does), which shows how noisy the minute was.
#
#   bench/ab.sh BIN_A BIN_B PAIRS MODE [compare.sh arguments after MODE]...
#   e.g. bench/ab.sh old/ds2f target/release/ds2f 3 train 64 2 256 256 2 3 ds2f
#
# Prints one line per run: pair, side, median step (s), min (s), peak RSS (MB), PyTorch median.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
a=$1; b=$2; pairs=$3; shift 3
for ((pair = 1; pair <= pairs; pair++)); do
  if ((pair % 2)); then order=("A:$a" "B:$b"); else order=("B:$b" "A:$a"); fi
  for side in "${order[@]}"; do
    out=$(DS2F=${side#*:} "$here/compare.sh" "$@")
    python3 - "$pair" "${side%%:*}" "$out" <<'PY'
import json, sys
pair, side, out = sys.argv[1:4]
rows = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
torch = next(r for r in rows if r.get("framework") == "pytorch")
ours = next(r for r in rows if r.get("framework") != "pytorch")
print(f"pair {pair} {side}: median {ours['median_s']:.4f} s, min {ours['min_s']:.4f} s, "
      f"peak RSS {ours['peak_rss_mb']:.0f} MB; PyTorch median {torch['median_s']:.4f} s")
PY
  done
done
