#!/usr/bin/env bash
# The GPU rows of docs/performance.md (issue #4 a–d on a GPU): PyTorch on CUDA against ds2f on a
# GPU device, one row after the other in one run, with each process's peak GPU memory sampled by
# nvidia-smi (whole card, so run nothing else on it).
#
#   bench/gpu.sh [DS2F_DEVICE] [TORCH_DEVICE]      defaults: wgpu cuda
#
# Environment: DS2F (the binary; default target/release/ds2f, built with `--features wgpu`),
# IMAGE (the HRF image for c; default ../shared/data/hrf/images/01_dr.JPG), ROW_TIMEOUT (seconds
# per process, default 240; 90 for the smoke test, since a wgpu device without a driver hangs), BUDGET (seconds after which the remaining rows are skipped, default
# 1e9), WORK (scratch folder, default a temporary one). Needs python3 with torch (CUDA) and
# pillow, and nvidia-smi. PyTorch runs twice per row: with its defaults (cuDNN convolutions in
# TF32 on Ampere and newer) and with `--no-tf32` (strict fp32, what ds2f computes).
#
# Rows: smoke test of the ds2f device; (a) DS2F training step, base 64, batch 2, LR 256x256, r=2;
# (b) the same at the paper's HRF size LR 584x876 -> HR 1168x1752, batch 2 (the paper's), and
# batch 1 if ds2f fails at batch 2;
# (d) conv 3x3 64->64 on 1x64x256x256 forward + backward; inference at LR 256x256 and 584x876;
# (c) end-to-end prediction of one HRF image (ds2f: a one-epoch base-64 run folder made on the
# CPU by `ds2f demo` at LR 584x876; weights do not change the cost); (a') U-Net+Inter step; (a) on two
# handles of the same GPU (data-parallel code path); the README's demo on the GPU; (a) on the
# machine's CPU with all its threads.
set -uo pipefail # no -e: a failing row is reported and the others still run
here=$(cd "$(dirname "$0")" && pwd)
root=$here/..
dev=${1:-wgpu}
tdev=${2:-cuda}
ds2f=${DS2F:-$root/target/release/ds2f}
image=${IMAGE:-$root/../shared/data/hrf/images/01_dr.JPG}
row_timeout=${ROW_TIMEOUT:-240}
budget=${BUDGET:-1000000000}
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"

echo "# $(date -u +%FT%TZ) $(uname -n); $(nvidia-smi --query-gpu=name,driver_version,memory.total \
  --format=csv,noheader); $(python3 -c 'import torch; print("torch", torch.__version__)')"

# run LABEL CMD...: runs CMD with a timeout, prints its output and the card's peak memory use.
run() {
  local label=$1
  shift
  if ((SECONDS > budget)); then
    echo "[$label] skipped: past BUDGET"
    return 1
  fi
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$work/mem" &
  local sampler=$! started=$SECONDS
  timeout "${RUN_TIMEOUT:-$row_timeout}" "$@"
  local rc=$?
  kill "$sampler" 2>/dev/null
  wait "$sampler" 2>/dev/null
  local peak
  peak=$(sort -n "$work/mem" | tail -n 1)
  echo "[$label] exit $rc, $((SECONDS - started)) s wall, card memory peak ${peak:-?} MiB"
  return $rc
}

# pair LABEL MODE FRAMEWORK BATCH H W WARMUP STEPS: PyTorch (TF32 default, strict fp32) and ds2f.
pair() {
  local label=$1 mode=$2 fw=$3 batch=$4 h=$5 w=$6 warmup=$7 steps=$8
  echo "## $label"
  for tf in "" --no-tf32; do
    run "$label pytorch ${tf:-tf32}" python3 "$here/pytorch_step.py" --mode "$mode" \
      --framework "$fw" --base 64 --batch "$batch" --lr-size "$h" "$w" --r 2 --warmup "$warmup" \
      --steps "$steps" --device "$tdev" $tf
  done
  last_rc=1
  if ((ds2f_ok)); then
    run "$label ds2f $dev" "$ds2f" bench --mode "$mode" --framework "$fw" --base 64 \
      --batch "$batch" --lr-size "${h}x${w}" --r 2 --warmup "$warmup" --steps "$steps" \
      --device "$dev"
    last_rc=$?
  fi
}

echo "## smoke: ds2f on $dev"
ds2f_ok=1
RUN_TIMEOUT=90 run "smoke" "$ds2f" bench --mode infer --base 8 --lr-size 64x64 --steps 1 --device "$dev" ||
  ds2f_ok=0

pair "(a) DS2F step, base 64, batch 2, LR 256x256" train ds2f 2 256 256 2 5
pair "(b) DS2F step, HRF size LR 584x876, batch 2" train ds2f 2 584 876 1 3
# Batch 2 at this size hit a burn autotuning panic on wgpu (docs/gpu.md); batch 1 may not.
if ((ds2f_ok && last_rc != 0)); then
  pair "(b) DS2F step, HRF size LR 584x876, batch 1" train ds2f 1 584 876 1 3
fi
pair "(d) conv 3x3 64->64, 1x64x256x256" conv ds2f 1 256 256 3 20
pair "inference, LR 256x256" infer unet_inter 1 256 256 2 10
pair "inference, LR 584x876" infer unet_inter 1 584 876 2 10

echo "## (c) end-to-end prediction of one HRF image, base 64, LR 584x876"
run "(c) pytorch" python3 "$here/pytorch_predict.py" "$image" --base 64 --lr-size 584 876 \
  --r 2 --repeats 3 --device "$tdev"
if ((ds2f_ok)); then
  mkdir -p "$work/in"
  for i in 1 2 3; do cp "$image" "$work/in/copy$i.jpg"; done
  # The run folder is made on the CPU: training at HR 1168x1752 on `wgpu` panics in burn's
  # matmul autotuning (docs/gpu.md); prediction then runs on the GPU.
  run "(c) ds2f: run folder (demo, 1 epoch, on the CPU)" "$ds2f" demo --device cpu --out "$work/demo64" \
    --images 3 --set model.base=64 --set 'data.lr_size=[584,876]' --set train.epochs=1 \
    --set data.val_count=1 2>&1 | grep -v '^epoch' &&
    run "(c) ds2f predict" "$ds2f" predict --run "$work/demo64/run" --checkpoint last \
      --input "$work/in" --output "$work/out" --device "$dev"
fi

pair "(a') U-Net+Inter step, base 64, batch 2, LR 256x256" train unet_inter 2 256 256 2 5
if ((ds2f_ok)); then
  echo "## (a) on two handles of one GPU (data-parallel code path)"
  run "(a) ds2f $dev,$dev" "$ds2f" bench --mode train --framework ds2f --base 64 --batch 2 \
    --lr-size 256x256 --r 2 --warmup 2 --steps 5 --device "$dev,$dev"
  echo "## the README's demo on $dev"
  run "demo" "$ds2f" demo --device "$dev" --out "$work/demo" 2>&1 | grep -v '^epoch\|^  '
  cat "$work/demo/run/evaluation/test/summary.json" 2>/dev/null | head -c 1500
  echo
fi

echo "## (a) on this machine's CPU, all $(nproc) threads"
run "(a) pytorch cpu" python3 "$here/pytorch_step.py" --framework ds2f --base 64 --batch 2 \
  --lr-size 256 256 --r 2 --warmup 1 --steps 3 --threads "$(nproc)"
run "(a) ds2f cpu" "$ds2f" bench --mode train --framework ds2f --base 64 --batch 2 \
  --lr-size 256x256 --r 2 --warmup 1 --steps 3 --device cpu
