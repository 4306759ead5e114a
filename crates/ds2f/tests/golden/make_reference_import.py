"""Golden files for tests/import_reference.rs: a state dict with imed_vision's names (SPEC §1.1,
§1.2: `imed_vision/models/segmentation/unet.py::Unet(3, 2, base_ch=4, super_reso=True,
upscale_rate=2, sr_layer=5, sr_seg_fusion=True, before=True)`), written with deterministic
weights, and the PyTorch outputs ds2f must reproduce after `ds2f import`.

The modules below are written from SPEC §1.0-§1.2 with the reference's attribute names (its
`Conv2d` wrapper holds `.conv` and `.norm_layer`; `Downsample.conv`, `Upsample.upsample_conv` /
`.conv`; `out_conv`, `sr_up6..9`, `sr_module` (a Sequential), `sr_seg_fusion_module` = CrossGL
with `fusion_conv` = Sequential(conv, BN, GELU, Gate(rcab, msconv)), `linear_cross_*` =
Sequential(conv, GELU), `gate_*`), so `state_dict()` has the reference's keys.

Fill: for idx, (name, t) in enumerate(state_dict().items()): float tensors
t = 0.3*sin(0.61*k + idx) (k the flat index), except running_mean = 0.1*sin(k + idx) and
running_var = 1 + 0.5*|cos(0.7*k + idx)|; num_batches_tracked = 7. Input [1, 3, 13, 17]:
sin(0.37*k). Outputs in eval mode (BN on running statistics), as ds2f computes them on a
non-autodiff device: seg = bilinear_ac(out_conv(up9)), sr = sr_module(sr_up9),
(cross_sr, cross_seg) = CrossGL(sr_up9, up9), proxy_sr = sr_module(cross_sr),
proxy_seg = bilinear_ac(out_conv(cross_seg)).

Run: python3 make_reference_import.py   (torch 2.x CPU; writes reference_unet_b4.pth and
reference_unet_b4_io.safetensors next to this file)
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))


class ConvWrap(nn.Module):  # imed_vision/layers/utils.py::Conv2d (no bias, BN, ReLU)
    def __init__(self, cin, cout, k=1, p=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, 1, p, bias=False)
        self.norm_layer = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.norm_layer(self.conv(x)))


class DoubleConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = ConvWrap(cin, cout, 3, 1)
        self.conv2 = ConvWrap(cout, cout, 3, 1)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class Downsample(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = DoubleConv(cin, cout)
        self.down = nn.MaxPool2d(3, 2, 1)

    def forward(self, x):
        f = self.conv(x)
        return f, self.down(f)


class Upsample(nn.Module):
    def __init__(self, in1, in2, out):
        super().__init__()
        self.upsample_conv = ConvWrap(in1, out)
        self.conv = DoubleConv(out + in2, out)

    def forward(self, x, skip):
        x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=True)
        return self.conv(torch.cat([self.upsample_conv(x), skip], 1))


class RCAB(nn.Module):
    def __init__(self, ch, reduction=4):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, 1, 1, groups=ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, 1, 1, groups=ch)
        self.se = nn.Sequential(nn.Conv2d(ch, ch // reduction, 1), nn.LeakyReLU(),
                                nn.Conv2d(ch // reduction, ch, 1), nn.Sigmoid())

    def forward(self, x):
        z = self.conv2(self.conv1(x))
        return self.se(z) * z + x


class ImagePool(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        y = self.conv(F.adaptive_avg_pool2d(x, 1))
        return F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)


class MSConv2d(nn.Module):
    def __init__(self, ch, groups=4):
        super().__init__()
        g = ch // groups
        self.convs = nn.ModuleList([nn.Conv2d(g, g, 1)])
        for i in range(1, groups - 1):
            self.convs.append(nn.Conv2d(g, g, 3, 1, padding=i, dilation=i, groups=g))
        self.convs.append(ImagePool(g))
        self.norm = nn.BatchNorm2d(ch)
        self.groups = groups

    def forward(self, x):
        parts = x.chunk(self.groups, 1)
        return F.gelu(self.norm(torch.cat([c(p) for c, p in zip(self.convs, parts)], 1)))


class Gate(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.rcab = RCAB(ch)
        self.msconv = MSConv2d(ch)

    def forward(self, x):
        return self.msconv(self.rcab(x)) + x


class CrossGL(nn.Module):
    def __init__(self, sr_ch, seg_ch, hidden=32):
        super().__init__()
        self.fusion_conv = nn.Sequential(nn.Conv2d(sr_ch + seg_ch, hidden, 1),
                                         nn.BatchNorm2d(hidden), nn.GELU(), Gate(hidden))
        self.linear_cross_sr = nn.Sequential(nn.Conv2d(hidden, sr_ch, 1), nn.GELU())
        self.linear_cross_seg = nn.Sequential(nn.Conv2d(hidden, seg_ch, 1), nn.GELU())
        self.gate_sr = nn.Conv2d(sr_ch, sr_ch, 1)
        self.gate_seg = nn.Conv2d(seg_ch, seg_ch, 1)

    def forward(self, sr, seg):
        f = self.fusion_conv(torch.cat([sr, seg], 1))
        return (self.gate_sr(self.linear_cross_sr(f) * sr) + sr,
                self.gate_seg(self.linear_cross_seg(f) * seg) + seg)


class Unet(nn.Module):
    def __init__(self, in_ch=3, out_ch=2, b=4, r=2):
        super().__init__()
        self.r = r
        self.down1, self.down2 = Downsample(in_ch, b), Downsample(b, 2 * b)
        self.down3, self.down4 = Downsample(2 * b, 4 * b), Downsample(4 * b, 8 * b)
        self.down5 = DoubleConv(8 * b, 16 * b)
        self.up6, self.up7 = Upsample(16 * b, 8 * b, 8 * b), Upsample(8 * b, 4 * b, 4 * b)
        self.up8, self.up9 = Upsample(4 * b, 2 * b, 2 * b), Upsample(2 * b, b, b)
        self.out_conv = nn.Conv2d(b, out_ch, 1)
        self.sr_up6, self.sr_up7 = Upsample(16 * b, 8 * b, 8 * b), Upsample(8 * b, 4 * b, 4 * b)
        self.sr_up8, self.sr_up9 = Upsample(4 * b, 2 * b, 2 * b), Upsample(2 * b, b, b)
        self.sr_module = nn.Sequential(
            nn.Conv2d(b, 64, 5, 1, 2, bias=False), nn.Tanh(),
            nn.Conv2d(64, 32, 3, 1, 1, bias=False), nn.Tanh(),
            nn.Conv2d(32, r * r * in_ch, 3, 1, 1, bias=False), nn.PixelShuffle(r))
        self.sr_seg_fusion_module = CrossGL(b, b)

    def seg_hr(self, f, size):
        return F.interpolate(self.out_conv(f), size=size, mode="bilinear", align_corners=True)

    def all_outputs(self, x):
        h, w = x.shape[2:]
        hr = (self.r * h, self.r * w)
        f1, x1 = self.down1(x)
        f2, x2 = self.down2(x1)
        f3, x3 = self.down3(x2)
        f4, x4 = self.down4(x3)
        f5 = self.down5(x4)
        up9 = self.up9(self.up8(self.up7(self.up6(f5, f4), f3), f2), f1)
        sr9 = self.sr_up9(self.sr_up8(self.sr_up7(self.sr_up6(f5, f4), f3), f2), f1)
        cross_sr, cross_seg = self.sr_seg_fusion_module(sr9, up9)
        return {"seg": self.seg_hr(up9, hr), "sr": self.sr_module(sr9),
                "proxy_seg": self.seg_hr(cross_seg, hr), "proxy_sr": self.sr_module(cross_sr)}


def fill(model):
    with torch.no_grad():
        for idx, (name, t) in enumerate(model.state_dict().items()):
            if name.endswith("num_batches_tracked"):
                t.fill_(7)
                continue
            k = torch.arange(t.numel(), dtype=torch.float64).reshape(t.shape)
            if name.endswith("running_mean"):
                v = 0.1 * torch.sin(k + idx)
            elif name.endswith("running_var"):
                v = 1 + 0.5 * torch.abs(torch.cos(0.7 * k + idx))
            else:
                v = 0.3 * torch.sin(0.61 * k + idx)
            t.copy_(v.to(t.dtype))


def write_safetensors(path, tensors, metadata):
    """The SafeTensors layout: u64 header length, JSON header, raw little-endian data."""
    header, blobs, offset = {"__metadata__": metadata}, [], 0
    for name, t in tensors.items():
        data = t.contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


if __name__ == "__main__":
    torch.manual_seed(0)
    model = Unet().eval()
    fill(model)
    torch.save(model.state_dict(), os.path.join(HERE, "reference_unet_b4.pth"))
    x = torch.sin(0.37 * torch.arange(3 * 13 * 17, dtype=torch.float32)).reshape(1, 3, 13, 17)
    with torch.no_grad():
        out = model.all_outputs(x)
    write_safetensors(os.path.join(HERE, "reference_unet_b4_io.safetensors"),
                      {"input": x, **out},
                      {"info": "made by crates/ds2f/tests/golden/make_reference_import.py, "
                               "torch " + torch.__version__})
    print(len(model.state_dict()), "keys;", {k: tuple(v.shape) for k, v in out.items()})
