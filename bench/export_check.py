"""Checks a `ds2f export` file in PyTorch (issue #18): loads it with load_state_dict(strict=True)
into the PyTorch model of its backbone (`model.backbone` of the file's `ds2f.model_config`):
bench/unet.py's UNetInter, bench/deeplab.py's DeepLabV3Plus or bench/espnet.py's EspNetV2Seg,
and reproduces ds2f's HR probabilities on the image of `ds2f export --check-image` (its
`<stem>.check.safetensors`: ds2f's network input and probabilities) to 1e-4; where the check
file also has `input_odd` / `probabilities_odd` (crates/ds2f/tests/export_backbones.rs with
`DS2F_ONNX_CHECK_DIR`), those too.

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
from deeplab import DeepLabV3Plus  # noqa: E402
from espnet import EspNetV2Seg  # noqa: E402
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
    backbone = model_cfg.get("backbone", "unet")
    r = 1 if model_cfg["framework"] == "unet" else model_cfg["upscale"]
    cin, classes = model_cfg["in_channels"], model_cfg["num_classes"]
    if backbone == "unet":
        model = UNetInter(cin, classes, model_cfg["base"], r)
    elif backbone.startswith("deeplabv3plus_resnet"):
        depth = int(backbone.removeprefix("deeplabv3plus_resnet"))
        model = DeepLabV3Plus(cin, classes, depth, model_cfg.get("output_stride", 8), r)
    elif backbone == "espnetv2":
        model = EspNetV2Seg(cin, classes, model_cfg.get("espnet_scale", 2.0), r)
    else:
        sys.exit(f"no PyTorch model for model.backbone = {backbone}")
    result = model.load_state_dict(state, strict=True)  # raises on any missing/unexpected key
    model.eval()

    io, io_meta = read_safetensors(check)
    with torch.no_grad():
        probs = model(io["input"]).softmax(1)
        odd = model(io["input_odd"]).softmax(1) if "input_odd" in io else None
    want = io["probabilities"]
    diff = (probs - want).abs().max().item()
    odd_diff = None
    if odd is not None:
        want_odd = io["probabilities_odd"]
        odd_diff = (odd - want_odd).abs().max().item() if odd.shape == want_odd.shape else 1e9
        diff = max(diff, odd_diff)
    print(json.dumps({
        "weights": a.weights, "backbone": backbone, "keys": len(state),
        "strict_load": str(result),
        "ds2f_version": meta.get("ds2f.version"), "exported": meta.get("ds2f.date"),
        "checkpoint": meta.get("ds2f.checkpoint"), "image": io_meta.get("image"),
        "input": list(io["input"].shape), "probabilities": list(want.shape),
        "odd_input": list(io["input_odd"].shape) if odd is not None else None,
        "odd_max_abs_diff": odd_diff, "max_abs_diff": diff, "tolerance": a.tolerance, "torch": torch.__version__,
        "ok": diff <= a.tolerance,
    }))
    sys.exit(0 if diff <= a.tolerance else 1)


if __name__ == "__main__":
    main()
