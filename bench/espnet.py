"""ESPNetv2 segmentation ("ESPNetv2 + Inter") in PyTorch, mirroring ds2f's inference graph for
`model.backbone = espnetv2` (SPEC.md §1.4; the DS2F reference's `ESPNetV2_Seg` without its SR
stream): the encoder at width multiplier s without level 5, the segmentation decoder up to
the level-1 concatenation, `project_l1` (here `seg_head.conv`), and the two bilinear steps
(align_corners=True) to (h, w) and (r*h, r*w). Dropout is left out (identity in eval).

Parameter names are those of ds2f's safetensors export: ds2f's module paths with the
reference's `refin_conv.{0,1}` and `pspMod.{0,1}`; PReLU slopes are `act.weight`,
`module_act.weight`, `activation.weight`. Like ds2f (and unlike the reference), the stride-2
EESP units have no `module_act` (the reference builds it and never runs it).

Written from ds2f's model code (`crates/ds2f/src/model/espnet/`) and SPEC §1.4. Only used by
bench/ scripts; never a build dependency.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

K = 4  # parallel branches of every EESP unit
R_LIMS = [13, 11, 9, 7]


def level_widths(scale):
    base = math.ceil(math.floor(32 * scale) / K) * K
    return [min(base, 32), 2 * base, 4 * base, 8 * base]


def avg_pool(x):
    return F.avg_pool2d(x, 3, 2, 1, count_include_pad=True)


def conv(cin, cout, k, stride=1, dilation=1, groups=1):
    return nn.Conv2d(cin, cout, k, stride, padding=dilation * (k - 1) // 2, dilation=dilation,
                     groups=groups, bias=False)


class Cbr(nn.Module):
    def __init__(self, cin, cout, k, stride=1, groups=1):
        super().__init__()
        self.conv = conv(cin, cout, k, stride, groups=groups)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.PReLU(cout)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Cb(nn.Module):
    def __init__(self, cin, cout, k, groups=1):
        super().__init__()
        self.conv = conv(cin, cout, k, groups=groups)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class Br(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)
        self.act = nn.PReLU(c)

    def forward(self, x):
        return self.act(self.bn(x))


class Eesp(nn.Module):
    def __init__(self, cin, cout, stride, r_lim):
        super().__init__()
        n = cout // K
        self.g_conv1 = Cbr(cin, n, 1, groups=K)
        dilations = [(3 + 2 * i - 1) // 2 if 3 + 2 * i <= r_lim else 1 for i in range(K)]
        self.spp_convs = nn.ModuleList([conv(n, n, 3, stride, d, groups=n) for d in dilations])
        self.bn_pr = Br(cout)
        self.conv_concat = Cb(cout, cout, 1, groups=K)
        self.module_act = nn.PReLU(cout) if stride == 1 else None

    def forward(self, x):
        reduced = self.g_conv1(x)
        branches = []
        for c in self.spp_convs:
            y = c(reduced)
            branches.append(y + branches[-1] if branches else y)
        y = self.conv_concat(self.bn_pr(torch.cat(branches, 1)))
        if self.module_act is None:
            return y
        if y.shape == x.shape:
            y = y + x
        return self.module_act(y)


class Down(nn.Module):
    """The down-sampling unit: stride-2 EESP beside an average pool, input reinforcement."""

    def __init__(self, cin, cout, r_lim, image_ch=3):
        super().__init__()
        self.eesp = Eesp(cin, cout - cin, 2, r_lim)
        self.refin_conv = nn.Sequential(Cbr(image_ch, image_ch, 3), Cb(image_ch, cout, 1))
        self.activation = nn.PReLU(cout)

    def forward(self, x, image):
        pooled = avg_pool(x)
        while image.shape[2] > pooled.shape[2]:
            image = avg_pool(image)
        y = torch.cat([self.eesp(x), pooled], 1) + self.refin_conv(image)
        return self.activation(y)


class Encoder(nn.Module):
    def __init__(self, in_ch, widths):
        super().__init__()
        w1, w2, w3, w4 = widths
        self.level1 = Cbr(in_ch, w1, 3, 2)
        self.level2_0 = Down(w1, w2, R_LIMS[0], in_ch)
        self.level3_0 = Down(w2, w3, R_LIMS[1], in_ch)
        self.level3 = nn.ModuleList([Eesp(w3, w3, 1, R_LIMS[2]) for _ in range(3)])
        self.level4_0 = Down(w3, w4, R_LIMS[2], in_ch)
        self.level4 = nn.ModuleList([Eesp(w4, w4, 1, R_LIMS[3]) for _ in range(7)])

    def forward(self, x):
        l1 = self.level1(x)
        l2 = self.level2_0(l1, x)
        l3 = self.level3_0(l2, x)
        for unit in self.level3:
            l3 = unit(l3)
        l4 = self.level4_0(l3, x)
        for unit in self.level4:
            l4 = unit(l4)
        return l1, l2, l3, l4


class Psp(nn.Module):
    def __init__(self, c, out):
        super().__init__()
        self.stages = nn.ModuleList([conv(c, c, 3, groups=c) for _ in range(4)])
        self.project = Cbr(5 * c, out, 1)

    def forward(self, x):
        parts, p = [x], x
        for stage in self.stages:
            p = avg_pool(p)
            parts.append(F.interpolate(stage(p), size=x.shape[2:], mode="bilinear",
                                       align_corners=True))
        return self.project(torch.cat(parts, 1))


def up(x, like):
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=True)


class Decoder(nn.Module):
    def __init__(self, widths, out):
        super().__init__()
        w1, w2, w3, w4 = widths
        self.proj_l4_c = Cbr(w4, w3, 1)
        self.pspMod = nn.Sequential(Eesp(2 * w3, w3, 1, 7), Psp(w3, w3))
        self.project_l3 = conv(w3, out, 1)
        self.act_l3 = Br(out)
        self.project_l2 = Cbr(w2 + out, out, 1)

    def forward(self, l1, l2, l3, l4):
        y = torch.cat([l3, up(self.proj_l4_c(l4), l3)], 1)
        y = self.act_l3(self.project_l3(self.pspMod(y)))
        y = self.project_l2(torch.cat([l2, up(y, l2)], 1))
        return torch.cat([l1, up(y, l1)], 1)  # merged_l1, F_seg


class SegHead(nn.Module):
    def __init__(self, cin, num_classes):
        super().__init__()
        self.conv = conv(cin, num_classes, 1)


class EspNetV2Seg(nn.Module):
    """Logits at LR/2, bilinear (align_corners=True) to (h, w), then to (r*h, r*w)."""

    def __init__(self, in_ch=3, num_classes=2, scale=2.0, r=2):
        super().__init__()
        widths = level_widths(scale)
        self.r = r
        self.encoder = Encoder(in_ch, widths)
        self.decoder = Decoder(widths, num_classes)
        self.seg_head = SegHead(widths[0] + num_classes, num_classes)

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        y = self.seg_head.conv(self.decoder(*self.encoder(x)))
        y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=True)
        return F.interpolate(y, size=(self.r * h, self.r * w), mode="bilinear",
                             align_corners=True)
