"""ptflops MAC counts for the U-Net+Inter, and a closed-form counter that reproduces them.

    python bench/ptflops_unet.py                          # writes bench/ptflops_unet.json
    python bench/ptflops_unet.py --ref-repo /path/to/imed_vision-checkout   # also re-measure
                                                          # the authors' Unet (optional)

Two numbers per input size:

* "bench_unet": ptflops on bench/unet.py (one nn.ReLU module per conv).
* "paper": ptflops on the authors' `Unet(super_reso=True, sr_layer=5, sr_seg_fusion=True)`.
  This is what SPEC.md section 7 and the paper quote (198.712 GMac at 512x512).
  The authors' model uses ONE nn.ReLU instance (a default argument) that is shared by all
  34 Conv2d+BN+ReLU wrappers: 10 in the encoder, 12 in the seg decoder and 12 in the SR
  decoder. The SR decoder is in the module tree even though it does not run in eval.
  ptflops sums a module's total __flops__ once for every parent that holds it, so every
  ReLU call is counted 34 times by the module hook, plus once more by the patched F.relu.
  Here that is emulated with a custom ReLU hook (34 x numel). The result is asserted to
  equal REF_CODE_MACS, which was measured on the authors' code at HEAD 91776aa.
"""
import argparse
import datetime
import json
import os
import sys
from contextlib import contextmanager

import torch
import torch.nn as nn
import ptflops.pytorch_engine as pte
from ptflops import get_model_complexity_info

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet import UNetInter, num_params  # noqa: E402

SHARED_RELU_PARENTS = 34  # Conv2d wrappers holding the shared ReLU in the authors' Unet

# ptflops 0.7.5 + torch 2.13.0 on Qsingle/imed_vision HEAD 91776aa:
# Unet(in_ch=3, out_ch=2, convblock=DoubleConv, super_reso=True, upscale_rate=2, sr_layer=5,
#      sr_seg_fusion=True, before=True, base_ch=b).eval(), batch 1.  (b, H, W) -> MACs
REF_CODE_MACS = {
    (64, 512, 512): 198711967744,
    (64, 648, 704): 346118491136,
    (64, 584, 876): 388725386688,
    (64, 256, 256): 49677991936,
    (64, 73, 101): 5969000450,
    (16, 64, 96): 319746048,
    (16, 65, 97): 358594890,
}
REF_CODE_PARAMS = {64: 39194682, 16: 2496522}  # whole training model, as ptflops reports

CASES = [(64, 512, 512), (64, 648, 704), (64, 584, 876), (64, 256, 256), (64, 73, 101),
         (16, 64, 96), (16, 65, 97)]

RULES = {
    "source": "ptflops 0.7.5, default 'pytorch' backend: ptflops/pytorch_ops.py and "
              "pytorch_engine.py. The count is in MACs for batch 1: ptflops 'GMac' = MACs/1e9. "
              "The input is a (1, 3, H, W) tensor and the model is put in eval().",
    "Conv2d": "H_out*W_out*N * (kh*kw * C_in * C_out/groups), plus N*C_out*H_out*W_out if "
              "there is a bias. It uses the OUTPUT spatial size.",
    "BatchNorm2d": "2 * numel(input) when affine=True (our case); numel(input) when "
                   "affine=False. Eval mode (ptflops calls model.eval()).",
    "ReLU": "numel(output) from the nn.ReLU module hook, PLUS numel(input) because "
            "nn.ReLU.forward calls F.relu, which ptflops monkey-patches (count_functional=True "
            "is the default). So each ReLU counts 2 * numel with distinct modules. In the "
            "authors' model (shared instance) it counts (34 + 1) * numel; see 'paper_formula'.",
    "MaxPool2d": "numel(INPUT) from the module hook, PLUS numel(INPUT) from the patched "
                 "F.max_pool2d that nn.MaxPool2d.forward calls, so 2 * numel(input). "
                 "Kernel and stride do not matter.",
    "interpolate": "A functional F.interpolate call IS counted, because ptflops patches "
                   "torch.nn.functional.interpolate while counting. With size= given "
                   "(our case) the count is prod(size) * N * C, i.e. numel(output). With "
                   "scale_factor it is numel(input) * scale^dims. This only works if the model "
                   "looks up F.interpolate at call time; a name bound earlier with "
                   "'from torch.nn.functional import interpolate' is NOT counted. The mode "
                   "and align_corners do not matter. An nn.Upsample module counts "
                   "numel(output) through its hook and again through F.interpolate.",
    "cat": "torch.cat is not counted (0).",
    "other": "Containers, cat, views and Identity count 0. Other patched ops that this model "
             "does not use: F.gelu, F.silu, F.softmax and the functional pools count "
             "numel(input); torch.add/mul count numel of the broadcast shape; "
             "matmul/mm/bmm count prod(a.shape)*b.shape[-1].",
    "batch": "The module-hook total is divided by the batch size; functional counts are "
             "added after the division. This makes no difference at batch 1.",
    "params": "The sum of numel over parameters with requires_grad; BN buffers are excluded.",
    "bench_unet_formula": "conv + 2*BN_numel + 2*ReLU_numel + 2*MaxPool_input_numel + "
                          "interp_output_numel",
    "paper_formula": "conv + 2*BN_numel + 35*ReLU_numel + 2*MaxPool_input_numel + "
                     "interp_output_numel. 35 = 34 wrappers sharing the ReLU + 1 for the "
                     "patched F.relu. This reproduces SPEC section 7 / the paper exactly.",
    "quantities": "ReLU_numel is the sum over all 22 ReLU calls (2 per DoubleConv, 1 per up "
                  "1x1 reduce) = BN_numel. MaxPool_input_numel is the sum of the 4 pool "
                  "inputs. interp_output_numel is the 4 decoder upsamples (C_in1 * skip H*W) "
                  "plus the final C*(rH)*(rW).",
}


def pool_out(n):
    # MaxPool2d(3, stride 2, padding 1): floor((n + 2 - 3) / 2) + 1
    return (n - 1) // 2 + 1


def analytic(h, w, b=64, c=2, r=2, in_ch=3):
    """Elementary quantities of the eval forward at batch 1."""
    q = {"conv": 0, "bn_numel": 0, "relu_numel": 0, "pool_in_numel": 0, "interp_out_numel": 0}

    def conv(cin, cout, k, hh, ww, bias=False):
        q["conv"] += hh * ww * k * k * cin * cout + (cout * hh * ww if bias else 0)

    def bn_relu(ch, hh, ww):
        q["bn_numel"] += ch * hh * ww
        q["relu_numel"] += ch * hh * ww

    def double(cin, cout, hh, ww):
        conv(cin, cout, 3, hh, ww)
        bn_relu(cout, hh, ww)
        conv(cout, cout, 3, hh, ww)
        bn_relu(cout, hh, ww)

    sizes = [(h, w)]
    cin = in_ch
    for co in (b, 2 * b, 4 * b, 8 * b):
        hh, ww = sizes[-1]
        double(cin, co, hh, ww)
        q["pool_in_numel"] += co * hh * ww
        sizes.append((pool_out(hh), pool_out(ww)))
        cin = co
    double(8 * b, 16 * b, *sizes[-1])
    dec = [(16 * b, 8 * b, 8 * b), (8 * b, 4 * b, 4 * b), (4 * b, 2 * b, 2 * b), (2 * b, b, b)]
    for j, (i1, i2, o) in enumerate(dec):
        hh, ww = sizes[3 - j]
        q["interp_out_numel"] += i1 * hh * ww
        conv(i1, o, 1, hh, ww)
        bn_relu(o, hh, ww)
        double(o + i2, o, hh, ww)
    conv(b, c, 1, h, w, bias=True)
    q["interp_out_numel"] += c * (r * h) * (r * w)
    return q


def breakdown_from(q, relu_factor):
    d = {"conv": q["conv"], "bn": 2 * q["bn_numel"], "relu": relu_factor * q["relu_numel"],
         "maxpool": 2 * q["pool_in_numel"], "upsample": q["interp_out_numel"], "other": 0}
    d["total"] = sum(d.values())
    return d


@contextmanager
def tag_functional(log):
    """Record (op name, count) of every functional op ptflops counts."""
    orig = pte.torch_function_wrapper.__call__

    def call(self, *args, **kw):
        f = self.handler(*args, **kw)
        self.collector.append(f)
        log.append((getattr(self.op, "__name__", str(self.op)), int(f)))
        return self.op(*args, **kw)

    pte.torch_function_wrapper.__call__ = call
    try:
        yield
    finally:
        pte.torch_function_wrapper.__call__ = orig


def run_ptflops(model, h, w, **kw):
    macs, params = get_model_complexity_info(model.eval(), (3, h, w), as_strings=False,
                                             print_per_layer_stat=False, **kw)
    return int(macs), int(params)


def shared_relu_hook(module, inp, out):
    module.__flops__ += SHARED_RELU_PARENTS * int(out.numel())


def measured_breakdown(model, h, w, paper=False):
    """Per-type counts measured with ptflops itself: module hooks by ignoring one type at a
    time; functional ops by tagging the patched calls."""
    kw = {"custom_modules_hooks": {nn.ReLU: shared_relu_hook}} if paper else {}
    log = []
    with tag_functional(log):
        total, _ = run_ptflops(model, h, w, **kw)
    d = {}
    for key, typ in (("conv", nn.Conv2d), ("bn", nn.BatchNorm2d), ("relu", nn.ReLU),
                     ("maxpool", nn.MaxPool2d)):
        m, _ = run_ptflops(model, h, w, ignore_modules=[typ], **kw)
        d[key] = total - m
    func = {}
    for name, f in log:
        func[name] = func.get(name, 0) + f
    d["relu_module_part"] = d["relu"]
    d["relu"] += func.pop("relu", 0)
    d["maxpool_module_part"] = d["maxpool"]
    d["maxpool"] += func.pop("max_pool2d", 0)
    d["upsample"] = func.pop("interpolate", 0)
    d["other"] = total - (d["conv"] + d["bn"] + d["relu"] + d["maxpool"] + d["upsample"])
    d["total"] = total
    d["functional_ops_seen"] = sorted({n for n, _ in log})
    return d


def ref_code_macs(repo, b, h, w):
    sys.path.insert(0, repo)
    from imed_vision.models.segmentation.unet import Unet  # noqa
    from imed_vision.layers.unet_blocks import DoubleConv  # noqa
    m = Unet(in_ch=3, out_ch=2, convblock=DoubleConv, super_reso=True, upscale_rate=2,
             sr_layer=5, sr_seg_fusion=True, before=True, base_ch=b)
    return run_ptflops(m, h, w)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref-repo", default=None,
                    help="checkout of Qsingle/imed_vision with importable imed_vision/")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "ptflops_unet.json"))
    args = ap.parse_args()
    torch.manual_seed(0)
    models = {b: UNetInter(3, 2, b, 2) for b in (64, 16)}
    assert num_params(models[64]) == 28_949_698
    rows = []
    with torch.no_grad():
        for b, h, w in CASES:
            model = models[b]
            q = analytic(h, w, b=b)
            macs, params = run_ptflops(model, h, w)
            paper, _ = run_ptflops(model, h, w,
                                   custom_modules_hooks={nn.ReLU: shared_relu_hook})
            assert macs == breakdown_from(q, 2)["total"], (b, h, w, macs)
            assert paper == breakdown_from(q, SHARED_RELU_PARENTS + 1)["total"], (b, h, w)
            assert paper == REF_CODE_MACS[(b, h, w)], (b, h, w, paper)
            if args.ref_repo:
                assert ref_code_macs(args.ref_repo, b, h, w) == paper
            rows.append({"base": b, "num_classes": 2, "r": 2, "lr_hw": [h, w],
                         "paper_macs": paper, "paper_gmac": round(paper / 1e9, 6),
                         "bench_unet_macs": macs, "bench_unet_gmac": round(macs / 1e9, 6),
                         "params_inference": params,
                         "params_ref_training_model": REF_CODE_PARAMS[b],
                         "quantities": q})
            print(f"b={b:2d} LR {h}x{w}: paper {paper} ({paper / 1e9:.3f} GMac)  "
                  f"bench_unet {macs} ({macs / 1e9:.3f} GMac)  params {params}")
        bd_bench = measured_breakdown(models[16], 64, 96)
        bd_paper = measured_breakdown(models[16], 64, 96, paper=True)
        q = analytic(64, 96, b=16)
        for bd, fac in ((bd_bench, 2), (bd_paper, SHARED_RELU_PARENTS + 1)):
            ref = breakdown_from(q, fac)
            for k in ref:
                assert bd[k] == ref[k], (k, bd[k], ref[k])
        print("breakdown b=16 64x96 bench_unet:", bd_bench)
        print("breakdown b=16 64x96 paper     :", bd_paper)
    result = {
        "generated": datetime.datetime.now().isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "ptflops": "0.7.5",
        "call": "get_model_complexity_info(model.eval(), (3,H,W), as_strings=False, "
                "print_per_layer_stat=False)  # batch 1, pytorch backend, count_functional on",
        "model": "bench/unet.py UNetInter(in_ch=3, num_classes=2, base=b, r=2); 'paper' = "
                 "authors' Unet (super_reso, sr_layer=5, fusion, before) in eval, see rules",
        "cases": rows,
        "breakdown_b16_64x96": {"bench_unet": bd_bench, "paper": bd_paper},
        "rules": RULES,
        "checks": "The script asserts that the closed-form counter (analytic + formulas) equals "
                  "ptflops for every case and every op type, in both modes, and that 'paper' "
                  "equals ptflops on the authors' code (REF_CODE_MACS).",
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
