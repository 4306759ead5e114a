"""Time one training step (or one inference pass) of the U-Net+Inter or DS2F in PyTorch, on the
CPU (default) or a CUDA GPU (`--device cuda`).

    python bench/pytorch_step.py --base 64 --batch 2 --lr-size 256 256 --r 2 \
        --steps 10 --warmup 2 --threads 2
    python bench/pytorch_step.py --mode infer --base 64 --lr-size 256 256 --threads 2
    python bench/pytorch_step.py --framework ds2f --base 64 --sr-head-widths 64 32 --hidden 32

train, unet_inter: forward -> CE(HR logits, random 0/1 HR mask, mean) -> backward ->
       SGD(lr 0.01, momentum 0.9, nesterov, weight_decay 1e-4).step(); model.train().
train, ds2f: forward (seg, sr, proxy_seg, proxy_sr) -> CE(seg, y) + MSE(sr, hr)
       + SSIM(proxy_sr, hr) + RMI(proxy_seg, y) (bench/ds2f.py) -> backward -> the same SGD
       step; hr = random HR image, uniform in [-1, 1].
infer: model.eval(), torch.no_grad(), batch 1 (forced); the segmentation stream only, the
       same for both frameworks.
conv:  one Conv2d(base, base, 3, padding=1, bias=False) on a batch x base x H x W input
       (issue #4 d: base 64, batch 1, 256 x 256): forward, then backward of sum(out) to both the
       input and the weight; also reports GFLOP/s (2 FLOPs per MAC, backward = 2 x forward).
Prints one JSON line. peak_rss_mb = ru_maxrss of this process (whole run, incl. warmup).
--device cuda: every timed span ends with torch.cuda.synchronize(); peak_gpu_mb is
torch.cuda.max_memory_allocated (tensors; PyTorch's cache and the CUDA context come on top).
PyTorch's defaults are kept (cudnn.benchmark off; cuDNN convolutions in TF32 on Ampere and
newer); `--no-tf32` makes them strict fp32, as ds2f computes.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ds2f import DS2F, ds2f_loss  # noqa: E402
from unet import UNetInter  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["train", "infer", "conv"], default="train")
    ap.add_argument("--base", type=int, default=64)
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--lr-size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    ap.add_argument("--r", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--framework", choices=["unet_inter", "ds2f"], default="unet_inter")
    ap.add_argument("--sr-head-widths", type=int, nargs=2, default=[64, 32],
                    metavar=("W1", "W2"), help="ds2f: SR head hidden widths")
    ap.add_argument("--hidden", type=int, default=32, help="ds2f: MSCG hidden width")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--no-tf32", action="store_true", help="cuda: strict fp32 convolutions")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    if a.no_tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    a.dev, a.sync = dev, sync
    h, w = a.lr_size
    if a.mode == "conv":
        return conv_bench(a, h, w)
    batch = 1 if a.mode == "infer" else a.batch
    if a.framework == "ds2f":
        model = DS2F(3, a.classes, a.base, a.r, a.sr_head_widths, a.hidden)
    else:
        model = UNetInter(3, a.classes, a.base, a.r)
    model = model.to(dev)
    x = torch.randn(batch, 3, h, w, device=dev)
    times = []

    if a.mode == "train":
        model.train()
        y = torch.randint(0, 2, (batch, a.r * h, a.r * w), device=dev)
        if a.framework == "ds2f":
            hr = torch.rand(batch, 3, a.r * h, a.r * w, device=dev) * 2 - 1
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                              weight_decay=1e-4)
        for i in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            out = model(x)
            if a.framework == "ds2f":
                loss = ds2f_loss(out, y, hr)
            else:
                loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            sync()
            dt = time.perf_counter() - t0
            if i >= a.warmup:
                times.append(dt)
        assert torch.isfinite(loss).item()
    else:
        model.eval()
        with torch.no_grad():
            for i in range(a.warmup + a.steps):
                t0 = time.perf_counter()
                out = model(x)
                sync()
                dt = time.perf_counter() - t0
                if i >= a.warmup:
                    times.append(dt)
        assert out.shape == (1, a.classes, a.r * h, a.r * w)

    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({
        "framework": "pytorch", "torch": torch.__version__, "model": a.framework,
        "mode": a.mode, "base": a.base, "batch": batch, "lr_size": [h, w], "r": a.r,
        **({"sr_head_widths": a.sr_head_widths, "hidden": a.hidden}
           if a.framework == "ds2f" else {}),
        "threads": a.threads, "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4), "steps": a.steps,
        "peak_rss_mb": round(rss_kb / 1024, 1), **gpu_info(a),
    }))


def gpu_info(a):
    """Device, TF32 setting and peak tensor memory for a CUDA run; nothing on the CPU."""
    if a.dev.type != "cuda":
        return {}
    return {"device": torch.cuda.get_device_name(a.dev), "tf32": not a.no_tf32,
            "peak_gpu_mb": round(torch.cuda.max_memory_allocated(a.dev) / 2**20, 1)}


def conv_bench(a, h, w):
    conv = torch.nn.Conv2d(a.base, a.base, 3, padding=1, bias=False).to(a.dev)
    x = torch.randn(a.batch, a.base, h, w, device=a.dev, requires_grad=True)
    fwd, total = [], []
    for i in range(a.warmup + a.steps):
        x.grad = None
        conv.weight.grad = None
        t0 = time.perf_counter()
        out = conv(x)
        a.sync()
        t1 = time.perf_counter()
        out.sum().backward()
        a.sync()
        t2 = time.perf_counter()
        if i >= a.warmup:
            fwd.append(t1 - t0)
            total.append(t2 - t0)
    flops = 2 * a.batch * a.base * a.base * 9 * h * w
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    med_f, med_t = statistics.median(fwd), statistics.median(total)
    print(json.dumps({
        "framework": "pytorch", "torch": torch.__version__, "model": "conv3x3", "mode": "conv",
        "base": a.base, "batch": a.batch, "lr_size": [h, w], "threads": a.threads,
        "median_s": round(med_t, 4), "min_s": round(min(total), 4),
        "forward_s": round(med_f, 4), "backward_s": round(med_t - med_f, 4),
        "gflops_forward": round(flops / med_f / 1e9, 1),
        "gflops_total": round(3 * flops / med_t / 1e9, 1), "steps": a.steps,
        "peak_rss_mb": round(rss_kb / 1024, 1), **gpu_info(a),
    }))


if __name__ == "__main__":
    main()
