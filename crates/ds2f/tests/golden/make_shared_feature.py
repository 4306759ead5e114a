"""Golden values for tests/shared_feature.rs (PyTorch 2.13, CPU, float32, eval mode).

Written from SPEC §1.2 and §6 (and read against imed_vision/layers/{task_fusion,fim,maf,
channel_shuffle}.py and models/segmentation/deeplab.py); the ablation modules follow the Rust
docs of ds2f::model::shared_feature. Module registration order equals the Rust field order,
so both sides fill parameters in the same order.

Fill rule (as test_vectors.json `crossgl_forward`): for idx, p in enumerate(parameters()):
p = amp*sin(0.61*k + idx) (amp 0.2; 1.0 for the MSCG variants), k = flat index; BN running stats stay 0 / 1.
Inputs: a = sin(0.13*k + 0.3), b = cos(0.29*k + 2.0) over the flat index k.

Run: python3 make_shared_feature.py   (prints the Rust constants pasted into the test)
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(cin, cout, k=1, d=1, groups=1, bias=True):
    return nn.Conv2d(cin, cout, k, 1, padding=d * (k - 1) // 2, dilation=d, groups=groups, bias=bias)


# ---------------------------------------------------------------- MSCG (CrossGL) and ablations
class Mrcab(nn.Module):
    def __init__(self, ch, r, gpool):
        super().__init__()
        self.conv1 = conv(ch, ch, 3, groups=ch)
        self.conv2 = conv(ch, ch, 3, groups=ch)
        self.se_reduce = conv(ch, ch // r)
        self.se_expand = conv(ch // r, ch)
        self.gpool = gpool

    def forward(self, x):
        z = self.conv2(self.conv1(x))
        s = z.mean((2, 3), keepdim=True) if self.gpool else z
        w = torch.sigmoid(self.se_expand(F.leaky_relu(self.se_reduce(s), 0.01)))
        return w * z + x


class Rcab(nn.Module):
    def __init__(self, ch, r):
        super().__init__()
        self.conv1 = conv(ch, ch, 3)
        self.conv2 = conv(ch, ch, 3)
        self.ca_reduce = conv(ch, ch // r)
        self.ca_expand = conv(ch // r, ch)

    def forward(self, x):
        z = self.conv2(F.relu(self.conv1(x)))
        w = torch.sigmoid(self.ca_expand(F.relu(self.ca_reduce(z.mean((2, 3), keepdim=True)))))
        return w * z + x


class ImagePool(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = conv(ch, ch)

    def forward(self, x):
        net = self.conv(F.adaptive_avg_pool2d(x, 1))
        return F.interpolate(net, size=x.shape[2:], mode="bilinear", align_corners=False)


class MsConv(nn.Module):
    def __init__(self, ch, k, one_by_one=True, image_pool=True, depthwise=True):
        super().__init__()
        g = ch // k
        dw = g if depthwise else 1
        self.convs = nn.ModuleList()
        for i in range(k):
            if i == 0:
                self.convs.append(conv(g, g, 1) if one_by_one else conv(g, g, 3, 1, dw))
            elif i == k - 1 and image_pool:
                self.convs.append(ImagePool(g))
            else:
                self.convs.append(conv(g, g, 3, i, dw))
        self.norm = nn.BatchNorm2d(ch)
        self.k = k

    def forward(self, x):
        outs = [op(s) for op, s in zip(self.convs, x.chunk(self.k, dim=1))]
        return F.gelu(self.norm(torch.cat(outs, 1)))


class AsppBranch(nn.Module):
    def __init__(self, cin, cout, k, d):
        super().__init__()
        self.conv = conv(cin, cout, k, d, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Aspp(nn.Module):
    def __init__(self, cin, cout, b, rates):
        super().__init__()
        self.branches = nn.ModuleList([AsppBranch(cin, b, 1, 1)] + [AsppBranch(cin, b, 3, r) for r in rates[1:]])
        self.image_pool = AsppBranch(cin, b, 1, 1)
        self.project = AsppBranch(b * (len(rates) + 1), cout, 1, 1)
        self.project_bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        outs = [br(x) for br in self.branches]
        p = self.image_pool(F.adaptive_avg_pool2d(x, 1))
        outs.append(F.interpolate(p, size=x.shape[2:], mode="bilinear", align_corners=False))
        return F.relu(self.project_bn(self.project(torch.cat(outs, 1))))


class SelfAttention(nn.Module):
    def __init__(self, ch):
        super().__init__()
        d = max(ch // 8, 1)
        self.query = conv(ch, d)
        self.key = conv(ch, d)
        self.value = conv(ch, ch)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        n, c, h, w = x.shape
        q = self.query(x).reshape(n, -1, h * w).transpose(1, 2)
        k = self.key(x).reshape(n, -1, h * w)
        att = torch.softmax(q @ k, dim=-1)
        v = self.value(x).reshape(n, c, h * w)
        out = (v @ att.transpose(1, 2)).reshape(n, c, h, w)
        return self.gamma * out + x


class Gate(nn.Module):
    def __init__(self, hidden, r, k, attention, context, parts, residual):
        super().__init__()
        self.rcab = {"mrcab": lambda: Mrcab(hidden, r, False), "mrcab_gpool": lambda: Mrcab(hidden, r, True),
                     "rcab": lambda: Rcab(hidden, r)}[attention]()
        self.msconv = {"ms_conv": lambda: MsConv(hidden, k, *parts),
                       "aspp": lambda: Aspp(hidden, hidden, 256, [1, 12, 24, 36]),
                       "self_attention": lambda: SelfAttention(hidden)}[context]()
        self.residual = residual

    def forward(self, x):
        net = self.msconv(self.rcab(x))
        return net + x if self.residual else net


class Mscg(nn.Module):
    def __init__(self, sr, seg, hidden=32, r=4, k=4, attention="mrcab", context="ms_conv",
                 parts=(True, True, True), paper_gate=False, fuse_norm=True, residual=True):
        super().__init__()
        self.fusion_conv = conv(sr + seg, hidden)
        self.fusion_bn = nn.BatchNorm2d(hidden) if fuse_norm else None
        self.gate = Gate(hidden, r, k, attention, context, parts, residual)
        self.linear_cross_sr = conv(hidden, sr)
        self.linear_cross_seg = conv(hidden, seg)
        self.gate_sr = conv(sr, sr)
        self.gate_seg = conv(seg, seg)
        self.paper_gate = paper_gate

    def forward(self, f_sr, f_seg):
        fusion = self.fusion_conv(torch.cat([f_sr, f_seg], 1))
        if self.fusion_bn is not None:
            fusion = F.gelu(self.fusion_bn(fusion))
        fusion = self.gate(fusion)
        a_sr = F.gelu(self.linear_cross_sr(fusion))
        a_seg = F.gelu(self.linear_cross_seg(fusion))
        c_sr = self.gate_sr(a_sr * f_sr)
        c_seg = self.gate_seg(a_seg * f_seg)
        if self.paper_gate:
            c_sr, c_seg = F.gelu(c_sr), F.gelu(c_seg)
        return c_sr + f_sr, c_seg + f_seg


# ---------------------------------------------------------------- FIM (SuperVessel), MAF (SS-MAF)
def channel_shuffle(x, groups):
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)


class SpatialModule(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.branch1 = conv(hidden, hidden, 3, 1, hidden)
        self.branch2 = conv(hidden, hidden, 3, 2, hidden)
        self.branch3 = conv(hidden, hidden, 3, 4, hidden)

    def forward(self, x):
        a, b, c = x.chunk(3, dim=1)
        return channel_shuffle(torch.cat([self.branch1(a), self.branch2(b), self.branch3(c)], 1), 3)


class Fim(nn.Module):
    def __init__(self, sr, seg, hidden=8):
        super().__init__()
        self.fusion_conv = conv(sr + seg, 3 * hidden)
        self.spatial_conv = SpatialModule(hidden)
        self.att_reduce = conv(3 * hidden, hidden)
        self.att_out = conv(hidden, 1)

    def forward(self, sr_image, seg_logits):
        net = F.relu(self.fusion_conv(torch.cat([sr_image, seg_logits], 1)))
        net = self.spatial_conv(net)
        att = torch.sigmoid(self.att_out(F.relu(self.att_reduce(net))))
        return att * seg_logits + seg_logits


class Ssc(nn.Module):
    def __init__(self, ch, k):
        super().__init__()
        g = ch // k
        self.conv = nn.ModuleList([conv(g, g, 1)] + [conv(g, g, 3, i, bias=False) for i in range(1, k)])
        self.bn = nn.BatchNorm2d(ch)
        self.k = k

    def forward(self, x):
        outs = [c(s) for c, s in zip(self.conv, x.chunk(self.k, dim=1))]
        return F.relu(self.bn(torch.cat(outs, 1)) + x)


class Maf(nn.Module):
    def __init__(self, sr, seg, hidden=32, k=4):
        super().__init__()
        self.fusion_conv = conv(sr + seg, hidden)
        self.ssc = Ssc(hidden, k)
        self.sr_att = conv(hidden, sr)
        self.seg_att = conv(hidden, seg)

    def forward(self, f_sr, f_seg):
        fusion = self.ssc(self.fusion_conv(torch.cat([f_sr, f_seg], 1)))
        return (torch.sigmoid(self.sr_att(fusion)) * f_sr + f_sr,
                torch.sigmoid(self.seg_att(fusion)) * f_seg + f_seg)


# ---------------------------------------------------------------- CAGL (the reference DeepLabV3+'s SFEM)
class DownAttention(nn.Module):
    """DownAttention4D as SPEC §1.3 describes it; names as imed_vision."""

    def __init__(self, dim, down_rate, heads):
        super().__init__()
        self.down_conv = nn.Conv2d(dim, dim, down_rate, down_rate, groups=dim)
        self.heads = heads
        self.q_proj = nn.Sequential(conv(dim, dim), nn.BatchNorm2d(dim))
        self.k_proj = nn.Sequential(conv(dim, dim), nn.BatchNorm2d(dim))
        self.v_proj = nn.Sequential(conv(dim, dim), nn.BatchNorm2d(dim))
        self.layer_scaler = nn.Parameter(torch.full((dim,), 1e-6))
        self.ffn = nn.Sequential(conv(dim, 2 * dim), nn.GELU(), conv(2 * dim, dim), nn.GELU())
        self.ffn_scaler = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x):
        d = self.down_conv(x)
        n, c, h, w = d.shape
        hd = c // self.heads
        q = self.q_proj(d).reshape(n, self.heads, hd, h * w).transpose(2, 3)
        k = self.k_proj(d).reshape(n, self.heads, hd, h * w)
        v = self.v_proj(d).reshape(n, self.heads, hd, h * w).transpose(2, 3)
        att = torch.softmax((q @ k) * hd ** -0.5, dim=-1)
        net = (att @ v).transpose(2, 3).reshape(n, c, h, w)
        net = self.layer_scaler.view(1, -1, 1, 1) * net + d
        net = self.ffn(net) * self.ffn_scaler.view(1, -1, 1, 1) + net
        return F.interpolate(net, size=x.shape[2:], mode="bilinear", align_corners=True)


class Cagl(nn.Module):
    def __init__(self, c1, c2, hidden=32, r=4, down_rate=32, heads=4):
        super().__init__()
        fu = c1 + c2
        self.fu_se = nn.Sequential(nn.AdaptiveAvgPool2d(1), conv(fu, fu // r), nn.ReLU(), conv(fu // r, fu), nn.Sigmoid())
        self.fuse = conv(fu, hidden)
        self.global_att = DownAttention(hidden, down_rate, heads)
        self.local_conv = nn.Sequential(conv(hidden, hidden, 3, 1, hidden), nn.GELU(), conv(hidden, hidden), nn.GELU())
        self.out_x = nn.Sequential(conv(hidden, c1), nn.Softmax(dim=1))
        self.out_y = nn.Sequential(conv(hidden, c2), nn.Softmax(dim=1))

    def forward(self, x, y):
        f = torch.cat([x, y], 1)
        f = self.fuse(self.fu_se(f) * f)
        f = f + self.global_att(f) + self.local_conv(f)
        return self.out_x(f) * x + x, self.out_y(f) * y + y


# ---------------------------------------------------------------- driver
def fill(model, amp=0.2):
    with torch.no_grad():
        for idx, p in enumerate(model.parameters()):
            k = torch.arange(p.numel(), dtype=torch.float64)
            p.copy_((amp * torch.sin(0.61 * k + idx)).reshape(p.shape).float())
    return model.eval()


def closed(shape, a, b, fn):
    k = torch.arange(math.prod(shape), dtype=torch.float64)
    return fn(a * k + b).reshape(shape).float()


def report(name, outs):
    vals = []
    for o in outs:
        vals += [float(o.sum()), [float(v) for v in o.flatten()[:8]]]
    print(f"// {name}: sums and first 8 values of each output")
    print(f"{name} = {vals}")


def main():
    torch.set_printoptions(precision=10)
    shape = (1, 4, 6, 7)
    sr_in = closed(shape, 0.13, 0.3, torch.sin)
    seg_in = closed(shape, 0.29, 2.0, torch.cos)
    with torch.no_grad():
        # Must reproduce test_vectors.json crossgl_forward (sums 24.2941..., -28.3841...).
        report("crossgl_default", fill(Mscg(4, 4, hidden=8, r=4))(sr_in, seg_in))
        # The variants use amplitude 1.0 (instead of 0.2) so that the gate path, not the "+F"
        # residual, dominates the outputs and the variants differ clearly.
        variants = {
            "default_amp1": dict(),
            "mrcab_gpool": dict(attention="mrcab_gpool"),
            "rcab": dict(attention="rcab"),
            "aspp": dict(context="aspp"),
            "self_attention": dict(context="self_attention"),
            "no_one_by_one_no_pool": dict(parts=(False, False, True)),
            "no_depthwise": dict(parts=(True, True, False)),
            "paper_gate_plain": dict(paper_gate=True, fuse_norm=False, residual=False),
        }
        for name, kw in variants.items():
            report(name, fill(Mscg(4, 4, hidden=8, r=4, **kw), amp=1.0)(sr_in, seg_in))
        fim_sr = closed((1, 3, 6, 7), 0.13, 0.3, torch.sin)
        fim_seg = closed((1, 2, 6, 7), 0.29, 2.0, torch.cos)
        report("fim", [fill(Fim(3, 2, 8))(fim_sr, fim_seg)])
        report("maf", fill(Maf(4, 4, 8, 4))(sr_in, seg_in))
        cagl = fill(Cagl(4, 4, hidden=8, r=4, down_rate=2, heads=2), amp=1.0)
        print("// cagl state_dict keys:", list(cagl.state_dict().keys()))
        report("cagl", cagl(sr_in, seg_in))
        print("// Cagl(256, 256) parameters:", sum(p.numel() for p in Cagl(256, 256).parameters()))


if __name__ == "__main__":
    main()
