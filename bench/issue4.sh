#!/usr/bin/env bash
# The benchmark table of docs/performance.md (issue #4 a–d), PyTorch and ds2f one after the
# other on this machine, in one run. Takes about 15 minutes on 2 cores and needs ~16 GB of memory
# for (b).
#
#   bench/issue4.sh [RUN]     RUN: a base-64 run folder for (c) (default runs/hrf64-timing)
#
# DS2F=path/to/ds2f and DEVICE=name (default cpu) choose the ds2f binary and its device: the
# libtorch rows are `DS2F=target-tch/release/ds2f DEVICE=libtorch bench/issue4.sh` with a
# `--features tch` build (docs/gpu.md, "libtorch").
#
# (a) DS2F (and U-Net+Inter) training step, base 64, batch 2, LR 256x256, r = 2
# (b) the DS2F step at the paper's HRF size, LR 584x876 -> HR 1168x1752, batch 1 (batch 2 needs
#     ~30 GB in either framework, more than this 24 GB machine has), 1 warm-up + 1 timed step
# (c) end-to-end prediction of one HRF image (3504x2336 JPEG -> 3504x2336 PNG), base 64 at LR
#     584x876, median of 3 (ds2f predict prints each image's time; bench/pytorch_predict.py)
# (d) conv 3x3 64->64 on 1x64x256x256, forward + backward, GFLOP/s
# plus inference at LR 256x256.
#
# Needs: `pip install torch==2.13.0 pillow` (never a build dependency), a release build
# (`cargo build --release`), ../shared/data/hrf, and for (c) a run folder made with
#   ds2f train --config configs/hrf.toml --set model.framework=unet_inter \
#     --set 'data.train_include=["01_dr","01_h","02_dr"]' --set 'data.test_include=[]' \
#     --set data.val_count=1 --set train.epochs=1 --set run.name=hrf64-timing
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$here/..
run=${1:-$root/runs/hrf64-timing}
ds2f=${DS2F:-$root/target/release/ds2f}
image=$root/../shared/data/hrf/images/01_dr.JPG
threads=$(nproc)
device=${DEVICE:-cpu}
export DEVICE=$device
echo "# $(date -u +%FT%TZ) $(uname -n), $threads threads, $(python3 -c 'import torch; print("torch", torch.__version__)'), ds2f device $device"

echo "## (a) training step, base 64, batch 2, LR 256x256"
"$here/compare.sh" train 64 2 256 256 2 3 unet_inter
"$here/compare.sh" train 64 2 256 256 2 3 ds2f

echo "## (b) DS2F training step at the HRF size, batch 1, LR 584x876"
WARMUP=1 "$here/compare.sh" train 64 1 584 876 2 1 ds2f

echo "## (c) end-to-end prediction of one HRF image, base 64, LR 584x876"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in 1 2 3; do cp "$image" "$tmp/copy$i.jpg"; done
python3 "$here/pytorch_predict.py" "$image" --base 64 --lr-size 584 876 --r 2 --repeats 3 \
  --threads "$threads"
/usr/bin/time -f '{"ds2f predict whole process": "%e s", "peak_rss_kb": %M}' \
  "$ds2f" predict --device "$device" --run "$run" --checkpoint last --input "$tmp" --output "$tmp/out" 2>&1 \
  | grep -v "predictions in"
python3 - "$tmp/out/copy1.png" <<'PY'
import sys
from PIL import Image
print("written mask size (W x H):", Image.open(sys.argv[1]).size)
PY

echo "## (d) conv 3x3 64->64, 1x64x256x256, forward + backward"
"$here/compare.sh" conv 64 1 256 256 1 10
echo "burn's stock convolution, same shapes:"
"$ds2f" bench --device "$device" --mode conv-burn --base 64 --batch 1 --lr-size 256x256 --steps 10

echo "## inference, batch 1, LR 256x256"
"$here/compare.sh" infer 64 1 256 256 2 5
