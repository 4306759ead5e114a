#!/usr/bin/env bash
# Times the same training step (or inference) in PyTorch (bench/pytorch_step.py) and in ds2f
# (`ds2f bench`) on this machine, one after the other in one run, and prints both JSON lines and
# the ratio ds2f / PyTorch (> 1: ds2f is slower).
#
#   bench/compare.sh [train|infer|conv] [BASE] [BATCH] [H] [W] [R] [STEPS] [FRAMEWORK]
#
# conv: one 3x3 conv BASE->BASE on BATCH x BASE x H x W, forward + backward (R is ignored);
#   e.g. `bench/compare.sh conv 64 1 256 256 1 10`.
# FRAMEWORK: unet_inter (default) or ds2f. Optional environment variables, passed to both sides:
#   SR_HEAD_WIDTHS="W1 W2"  SR head hidden widths (ds2f; reference "64 32")
#   HIDDEN=N                MSCG hidden width (ds2f; reference 32)
#   WARMUP=N                untimed warm-up steps (default 1)
#   DEVICE=D                ds2f's --device (default cpu; e.g. libtorch in a `--features tch`
#                           build, with DS2F pointing at it)
#   PYTHON=P                the Python whose torch is timed (default python3)
#
# Needs: `pip install torch==2.13.0` (never a build dependency) and a release build of ds2f.
set -euo pipefail
mode=${1:-train}; base=${2:-64}; batch=${3:-2}; h=${4:-256}; w=${5:-256}; r=${6:-2}; steps=${7:-5}
framework=${8:-unet_inter}
warmup=${WARMUP:-1}
here=$(cd "$(dirname "$0")" && pwd)
threads=$(nproc)
ds2f=${DS2F:-$here/../target/release/ds2f}
torch_opts=(); ds2f_opts=()
if [[ -n ${SR_HEAD_WIDTHS:-} ]]; then
  read -r w1 w2 <<<"$SR_HEAD_WIDTHS"
  torch_opts+=(--sr-head-widths "$w1" "$w2"); ds2f_opts+=(--set "model.sr_head_widths=[$w1,$w2]")
fi
if [[ -n ${HIDDEN:-} ]]; then
  torch_opts+=(--hidden "$HIDDEN"); ds2f_opts+=(--set "model.shared_feature.hidden=$HIDDEN")
fi
torch_line=$("${PYTHON:-python3}" "$here/pytorch_step.py" --mode "$mode" --base "$base" --batch "$batch" \
  --lr-size "$h" "$w" --r "$r" --steps "$steps" --warmup "$warmup" --threads "$threads" \
  --framework "$framework" ${torch_opts[@]+"${torch_opts[@]}"} | tail -n 1)
ds2f_line=$("$ds2f" bench --device "${DEVICE:-cpu}" --mode "$mode" --base "$base" --batch "$batch" --lr-size "${h}x${w}" \
  --r "$r" --steps "$steps" --warmup "$warmup" --framework "$framework" \
  ${ds2f_opts[@]+"${ds2f_opts[@]}"} | tail -n 1)
echo "$torch_line"
echo "$ds2f_line"
python3 - "$torch_line" "$ds2f_line" <<'PY'
import json, sys
t, d = (json.loads(a) for a in sys.argv[1:3])
assert t["model"] == d["model"], (t["model"], d["model"])
print(f"ratio ds2f/pytorch ({t['model']}, median step time): {d['median_s'] / t['median_s']:.2f}"
      f"  (pytorch {t['median_s']:.3f} s, ds2f {d['median_s']:.3f} s;"
      f" peak RSS pytorch {t['peak_rss_mb']:.0f} MB, ds2f {d['peak_rss_mb']:.0f} MB)")
if "gflops_total" in t:
    print(f"GFLOP/s forward: pytorch {t['gflops_forward']}, ds2f {d['gflops_forward']};"
          f" forward+backward: pytorch {t['gflops_total']}, ds2f {d['gflops_total']}")
PY
