"""End-to-end prediction of one image in PyTorch, timed as `ds2f predict` times it (issue #4 c).

    python bench/pytorch_predict.py ../shared/data/hrf/images/01_dr.JPG --base 64 \
        --lr-size 584 876 --r 2 --repeats 3 --threads 2

Per repeat, in one process after the model is built (random weights: the cost is what counts):
decode the image (PIL), resize to the LR size (PIL bicubic; ds2f uses OpenCV's cubic rule, the
same cost class), normalise, U-Net+Inter forward at LR (eval, no_grad, batch 1) -> HR logits,
softmax, nearest up-sampling of the class map to the original size, write the PNG mask (PIL).
`ds2f predict` prints the same span per image ("(N.NNs)"): load -> network -> write.
Prints one JSON line: median and min seconds, peak RSS. `--device cuda` runs the network on
the GPU (the image goes up after decoding and resizing, the class map comes back before the
nearest up-sampling, as `ds2f predict --device` does; PyTorch's default TF32 convolutions).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet import UNetInter  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("image")
    ap.add_argument("--base", type=int, default=64)
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--lr-size", type=int, nargs=2, default=[584, 876], metavar=("H", "W"))
    ap.add_argument("--r", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    model = UNetInter(3, a.classes, a.base, a.r).eval().to(dev)
    h, w = a.lr_size
    times = []
    out_dir = tempfile.mkdtemp()
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        img = Image.open(a.image).convert("RGB")
        W, H = img.size
        lr = np.asarray(img.resize((w, h), Image.BICUBIC), dtype=np.float32)
        x = torch.from_numpy((lr / 255.0 - 0.5) / 0.5).permute(2, 0, 1)[None].to(dev)
        with torch.no_grad():
            logits = model(x)  # [1, C, r*h, r*w]
            labels = logits.softmax(1).argmax(1, keepdim=True).to(torch.uint8).cpu()
            full = F.interpolate(labels, size=(H, W), mode="nearest")[0, 0]
        mask = (full.numpy() * (255 // max(1, a.classes - 1))).astype(np.uint8)
        Image.fromarray(mask).save(os.path.join(out_dir, "mask.png"))
        times.append(time.perf_counter() - t0)
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "framework": "pytorch", "torch": torch.__version__, "mode": "predict",
        "image": os.path.basename(a.image), "size": [H, W], "base": a.base,
        "lr_size": [h, w], "r": a.r, "threads": a.threads,
        **({"device": torch.cuda.get_device_name(dev)} if dev.type == "cuda" else {}),
        "median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
        "repeats": a.repeats, "peak_rss_mb": round(rss_kb / 1024, 1),
    }))


if __name__ == "__main__":
    main()
