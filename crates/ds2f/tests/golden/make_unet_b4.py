"""Generate unet_b4.safetensors: U-Net+Inter (b=4, C=2, r=2) weights filled
deterministically, plus inputs/outputs/gradients for the Rust tests.

    python crates/ds2f/tests/golden/make_unet_b4.py      (from the workspace root)

Needs torch + safetensors (never a build dependency). Model: bench/unet.py.
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from unet import UNetInter  # noqa: E402

B, C, R = 4, 2, 2
N, H, W = 2, 13, 17


def fill(model, dtype=torch.float32):
    """Deterministic fill (values computed in float64, then cast):
    params:  for idx, (name, p) in enumerate(named_parameters()): p = 0.3*sin(0.61*k + idx)
    BN bufs: with idx = the index of that BN's .weight in named_parameters():
             running_mean = 0.05*sin(0.3*k + idx), running_var = 1 + 0.5*sin(0.7*k + idx)**2
    k = row-major flat index inside the tensor."""
    pidx = {}
    with torch.no_grad():
        for idx, (name, p) in enumerate(model.named_parameters()):
            k = torch.arange(p.numel(), dtype=torch.float64).reshape(p.shape)
            p.copy_((0.3 * torch.sin(0.61 * k + idx)).to(dtype))
            pidx[name] = idx
        for mname, m in model.named_modules():
            if isinstance(m, nn.BatchNorm2d):
                idx = pidx[mname + ".weight"]
                k = torch.arange(m.num_features, dtype=torch.float64)
                m.running_mean.copy_((0.05 * torch.sin(0.3 * k + idx)).to(dtype))
                m.running_var.copy_((1 + 0.5 * torch.sin(0.7 * k + idx) ** 2).to(dtype))
    return model


def make_input(dtype=torch.float32):
    k = torch.arange(N * 3 * H * W, dtype=torch.float64)
    return torch.sin(0.1 * k).reshape(N, 3, H, W).to(dtype)


def make_labels():
    hh = torch.arange(R * H).reshape(-1, 1)
    ww = torch.arange(R * W).reshape(1, -1)
    lab = (((hh * (R * W) + ww) % 5 == 0) | ((hh + ww) % 7 == 0)).long()
    return lab.unsqueeze(0).expand(N, -1, -1).contiguous()


def build(dtype=torch.float32):
    m = UNetInter(3, C, B, R)
    fill(m, torch.float32)
    return m.to(dtype)


def main():
    torch.manual_seed(0)
    x = make_input()
    labels = make_labels()

    # eval
    m_eval = build()
    tensors = {}
    for name, p in m_eval.named_parameters():
        tensors[name] = p.detach().clone()
    for name, b in m_eval.named_buffers():
        if not name.endswith("num_batches_tracked"):
            tensors[name] = b.detach().clone()
    m_eval.eval()
    with torch.no_grad():
        out_eval = m_eval(x)

    # train (fresh copy, same fill)
    m_train = build()
    m_train.train()
    out_train = m_train(x)
    ce = F.cross_entropy(out_train, labels)
    ce.backward()
    bn = m_train.encoder.down1.conv.bn1

    tensors.update({
        "input": x,
        "labels": labels.float(),
        "out_eval": out_eval,
        "out_train": out_train.detach(),
        "ce_train": ce.detach(),
        "grad_seg_head_bias": m_train.seg_head.conv.bias.grad,
        "grad_seg_head_weight": m_train.seg_head.conv.weight.grad,
        "grad_encoder_down1_conv_conv1_weight": m_train.encoder.down1.conv.conv1.weight.grad,
        "running_mean_after": bn.running_mean.detach(),
        "running_var_after": bn.running_var.detach(),
    })
    tensors = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in tensors.items()}

    # float64 run of the same computation, to size test tolerances (not stored)
    m64 = build(torch.float64).eval()
    with torch.no_grad():
        d_eval = (m64(x.double()) - out_eval.double()).abs().max().item()
    m64t = build(torch.float64).train()
    o64 = m64t(x.double())
    ce64 = F.cross_entropy(o64, labels)
    ce64.backward()
    g64 = m64t.encoder.down1.conv.conv1.weight.grad
    g32 = tensors["grad_encoder_down1_conv_conv1_weight"].double()
    print(f"f32 vs f64: out_eval max|d| {d_eval:.3e}  "
          f"out_train max|d| {(o64 - out_train.double()).abs().max().item():.3e}  "
          f"ce |d| {abs(ce64.item() - ce.item()):.3e}  "
          f"grad_down1_conv1 max|d| {(g64 - g32).abs().max().item():.3e} "
          f"(max|g| {g64.abs().max().item():.3e})")

    # one key only: safetensors writes metadata keys in no fixed order
    meta = {"info": f"bench/unet.py UNetInter(3, 2, base=4, r=2); torch {torch.__version__}; "
                    "made by crates/ds2f/tests/golden/make_unet_b4.py"}
    path = os.path.join(HERE, "unet_b4.safetensors")
    save_file(tensors, path, metadata=meta)
    print("wrote", path, os.path.getsize(path), "bytes,", len(tensors), "tensors")
    for k, v in tensors.items():
        if not k.startswith(("encoder.", "decoder.", "seg_head.")):
            print(f"  {k:40s} {list(v.shape)}  sum={v.double().sum().item():.9g}")
    print("  ce_train =", repr(tensors["ce_train"].item()))


if __name__ == "__main__":
    main()
