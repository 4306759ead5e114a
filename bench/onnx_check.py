"""Checks a `ds2f export --format onnx` file for the record (issue #18): onnx.checker (full
check, shape inference included) and onnxruntime's output against ds2f's probabilities in the
`<stem>.check.safetensors` of `ds2f export --check-image` (the same image's network input).

    ds2f export --run RUN --format onnx --output /tmp/hrf-f0.onnx --check-image IMAGE
    python3 bench/onnx_check.py /tmp/hrf-f0.onnx

Also runs a second, odd input size: where the check file has `input_odd` / `probabilities_odd`
(written by `crates/ds2f/tests/export_backbones.rs` with `DS2F_ONNX_CHECK_DIR` set, for every
backbone) their values are compared too; otherwise the check input is cropped by one row and
three columns and only the output size is checked, [n, C, r(h-1), r(w-3)].

    DS2F_ONNX_CHECK_DIR=/tmp/onnx cargo test --release --workspace --test export_backbones
    python3 bench/onnx_check.py /tmp/onnx/deeplabv3plus_resnet50.onnx
`pip install onnx onnxruntime` locally; never a build or CI dependency. Prints one JSON line;
exits 1 when the difference exceeds the tolerance.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_check import read_safetensors  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", help="the .onnx file written by ds2f export")
    ap.add_argument("--check", help="default: <stem>.check.safetensors beside the model")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    a = ap.parse_args()
    check = a.check or os.path.splitext(a.model)[0] + ".check.safetensors"

    model = onnx.load(a.model)
    onnx.checker.check_model(model, full_check=True)
    io, io_meta = read_safetensors(check)
    x = io["input"].numpy()
    want = io["probabilities"].numpy()
    session = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    (got,) = session.run(["probabilities"], {"input": x})
    diff = float(np.abs(got - want).max())
    r = want.shape[2] // x.shape[2]
    odd_diff = None
    if "input_odd" in io:
        odd = io["input_odd"].numpy()
        (odd_out,) = session.run(["probabilities"], {"input": odd})
        odd_want = io["probabilities_odd"].numpy()
        odd_ok = odd_out.shape == odd_want.shape
        if odd_ok:
            odd_diff = float(np.abs(odd_out - odd_want).max())
            odd_ok = odd_diff <= a.tolerance
    else:
        odd = x[:, :, 1:, 3:]
        (odd_out,) = session.run(["probabilities"], {"input": odd})
    odd_ok = (odd_diff is None or odd_ok) and list(odd_out.shape) == [
        x.shape[0], want.shape[1], r * odd.shape[2], r * odd.shape[3]]
    meta = {p.key: p.value for p in model.metadata_props}
    print(json.dumps({
        "model": a.model, "opset": model.opset_import[0].version, "ir_version": model.ir_version,
        "nodes": len(model.graph.node), "checker": "ok", "image": io_meta.get("image"),
        "input": list(x.shape), "output": list(got.shape), "max_abs_diff": diff,
        "odd_input": list(odd.shape), "odd_output": list(odd_out.shape), "odd_max_abs_diff": odd_diff,
        "odd_ok": odd_ok,
        "ds2f_version": meta.get("ds2f.version"), "onnx": onnx.__version__,
        "onnxruntime": ort.__version__, "ok": diff <= a.tolerance and odd_ok,
    }))
    sys.exit(0 if diff <= a.tolerance and odd_ok else 1)


if __name__ == "__main__":
    main()
