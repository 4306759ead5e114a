"""Checks a `ds2f export` file in PyTorch (issue #18): loads it into bench/unet.py's UNetInter
with load_state_dict(strict=True) and reproduces ds2f's HR probabilities on the image of
`ds2f export --check-image` (its `<stem>.check.safetensors`: ds2f's network input and
probabilities) to 1e-4.

    ds2f export --run RUN --output /tmp/hrf-f0.safetensors --check-image IMAGE
    python3 bench/export_check.py /tmp/hrf-f0.safetensors

The input is ds2f's own LR tensor (OpenCV-exact bicubic resize + normalisation), so the check
is of the weights and the network, not of a Python re-implementation of the resize. Reads
SafeTensors without the `safetensors` package (the format is a u64 header length, a JSON
header and raw little-endian data). Prints one JSON line; exits 1 when the difference exceeds
the tolerance. Never a build or CI dependency.
"""
import argparse
import json
import os
import struct
import sys
import tomllib

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet import UNetInter  # noqa: E402

DTYPES = {"F32": np.float32, "I64": np.int64}


def read_safetensors(path):
    """(tensors by name, metadata) of a SafeTensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    metadata = header.pop("__metadata__", {})
    data = raw[8 + n:]
    tensors = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors, metadata


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("weights", help="the .safetensors file written by ds2f export")
    ap.add_argument("--check", help="default: <stem>.check.safetensors beside the weights")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    check = a.check or os.path.splitext(a.weights)[0] + ".check.safetensors"

    state, meta = read_safetensors(a.weights)
    model_cfg = tomllib.loads(meta["ds2f.model_config"])["model"]
    if model_cfg.get("backbone", "unet") != "unet":
        sys.exit(f"bench/unet.py holds the U-Net only, not {model_cfg['backbone']}")
    r = 1 if model_cfg["framework"] == "unet" else model_cfg["upscale"]
    model = UNetInter(model_cfg["in_channels"], model_cfg["num_classes"], model_cfg["base"], r)
    result = model.load_state_dict(state, strict=True)  # raises on any missing/unexpected key
    model.eval()

    io, io_meta = read_safetensors(check)
    with torch.no_grad():
        probs = model(io["input"]).softmax(1)
    want = io["probabilities"]
    diff = (probs - want).abs().max().item()
    print(json.dumps({
        "weights": a.weights, "keys": len(state), "strict_load": str(result),
        "ds2f_version": meta.get("ds2f.version"), "exported": meta.get("ds2f.date"),
        "checkpoint": meta.get("ds2f.checkpoint"), "image": io_meta.get("image"),
        "input": list(io["input"].shape), "probabilities": list(want.shape),
        "max_abs_diff": diff, "tolerance": a.tolerance, "torch": torch.__version__,
        "ok": diff <= a.tolerance,
    }))
    sys.exit(0 if diff <= a.tolerance else 1)


if __name__ == "__main__":
    main()
