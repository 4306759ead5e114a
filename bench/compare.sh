#!/usr/bin/env bash
# Times the same U-Net+Inter step in PyTorch (bench/pytorch_step.py) and in ds2f (`ds2f bench`)
# on this machine, one after the other in one run, and prints both JSON lines and the ratio
# ds2f / PyTorch (> 1: ds2f is slower).
#
#   bench/compare.sh [train|infer] [BASE] [BATCH] [H] [W] [R] [STEPS]
#
# Needs: `pip install torch==2.13.0` (never a build dependency) and a release build of ds2f.
set -euo pipefail
mode=${1:-train}; base=${2:-64}; batch=${3:-2}; h=${4:-256}; w=${5:-256}; r=${6:-2}; steps=${7:-5}
here=$(cd "$(dirname "$0")" && pwd)
threads=$(nproc)
ds2f=${DS2F:-$here/../target/release/ds2f}
torch_line=$(python3 "$here/pytorch_step.py" --mode "$mode" --base "$base" --batch "$batch" \
  --lr-size "$h" "$w" --r "$r" --steps "$steps" --warmup 1 --threads "$threads" | tail -n 1)
ds2f_line=$("$ds2f" bench --mode "$mode" --base "$base" --batch "$batch" --lr-size "${h}x${w}" \
  --r "$r" --steps "$steps" --warmup 1 | tail -n 1)
echo "$torch_line"
echo "$ds2f_line"
python3 - "$torch_line" "$ds2f_line" <<'PY'
import json, sys
t, d = (json.loads(a) for a in sys.argv[1:3])
print(f"ratio ds2f/pytorch (median step time): {d['median_s'] / t['median_s']:.2f}"
      f"  (pytorch {t['median_s']:.3f} s, ds2f {d['median_s']:.3f} s;"
      f" peak RSS pytorch {t['peak_rss_mb']:.0f} MB, ds2f {d['peak_rss_mb']:.0f} MB)")
PY
