"""Reference DS2F (U-Net variant) in PyTorch, for bench/ only (SPEC §1.1, §1.2, §2).

    DS2F = UNetInter (encoder + seg decoder + 1x1 seg head, bench/unet.py)
         + SR decoder (a copy of the seg decoder with its own weights, same encoder skips)
         + SR head (ESPCN: conv5x5 -> tanh -> conv3x3 -> tanh -> conv3x3 to 3r^2 -> PixelShuffle)
         + MSCG (CrossGL, hidden 32, reduction 4) on (F_sr, F_seg) at LR, before the heads.

model.train(): forward returns (seg, sr, proxy_seg, proxy_sr), all at HR, as the reference;
model.eval(): only seg (the inference graph is exactly U-Net+Inter).
Parameter names follow the Rust model: encoder.*, decoder.*, seg_head.*, sr_branch.decoder.*,
sr_branch.head.conv{1,2,3}.*, shared_feature.*.  `python bench/ds2f.py` asserts the
reference parameter counts (b=64, C=2, r=2).

Losses: ssim_loss (1 - SSIM, pytorch_msssim semantics, data_range 1) and rmi_loss (the
ZJULearning RMI copy with rmi_pool_way=1; the 9x9 algebra in float64 on the input's device).
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unet import Decoder, UNetInter, num_params  # noqa: E402

# The MSCG (CrossGL) written for the golden tests, with the reference defaults.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates",
                                "ds2f", "tests", "golden"))
from make_shared_feature import Mscg  # noqa: E402


def conv(cin, cout, k=1, d=1, groups=1, bias=True):
    return nn.Conv2d(cin, cout, k, 1, padding=d * (k - 1) // 2, dilation=d, groups=groups,
                     bias=bias)


# ---------------------------------------------------------------- SR head
class SrHead(nn.Module):
    """ESPCN-like head, no biases; with r == 1 a single 1x1 conv with bias (as the reference)."""

    def __init__(self, b, widths=(64, 32), out_ch=3, r=2):
        super().__init__()
        w1, w2 = widths
        if r == 1:
            self.conv1 = self.conv2 = None
            self.conv3 = conv(b, out_ch, 1)
        else:
            self.conv1 = conv(b, w1, 5, bias=False)
            self.conv2 = conv(w1, w2, 3, bias=False)
            self.conv3 = conv(w2, out_ch * r * r, 3, bias=False)
        self.r = r

    def forward(self, x):
        if self.conv1 is None:
            return self.conv3(x)
        x = torch.tanh(self.conv2(torch.tanh(self.conv1(x))))
        return F.pixel_shuffle(self.conv3(x), self.r)


class SrBranch(nn.Module):
    def __init__(self, b, widths, r):
        super().__init__()
        self.decoder = Decoder(b)
        self.head = SrHead(b, widths, 3, r)


# ---------------------------------------------------------------- MSCG = CrossGL (SPEC §1.2)
# The default configuration of Mscg in crates/ds2f/tests/golden/make_shared_feature.py.
# ---------------------------------------------------------------- DS2F
class DS2F(UNetInter):
    """U-Net DS2F (super_reso, sr_layer=5, fusion, before=True)."""

    def __init__(self, in_ch=3, num_classes=2, base=64, r=2, sr_head_widths=(64, 32),
                 hidden=32):
        super().__init__(in_ch, num_classes, base, r)
        self.sr_branch = SrBranch(base, sr_head_widths, r)
        self.shared_feature = Mscg(base, base, hidden)

    def _seg_hr(self, f, size):
        return F.interpolate(self.seg_head(f), size=size, mode="bilinear", align_corners=True)

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        size = (self.r * x.shape[2], self.r * x.shape[3])
        feats = self.encoder(x)
        f_seg = self.decoder(*feats)
        f_sr = self.sr_branch.decoder(*feats)
        cross_sr, cross_seg = self.shared_feature(f_sr, f_seg)
        head = self.sr_branch.head  # the same (shared-weight) heads for the proxy outputs
        return (self._seg_hr(f_seg, size), head(f_sr), self._seg_hr(cross_seg, size),
                head(cross_sr))


# ---------------------------------------------------------------- losses (SPEC §2)
def ssim_loss(x, y, data_range=1.0, win=11, sigma=1.5, k=(0.01, 0.03)):
    """1 - SSIM(x, y): separable gaussian window, valid conv per channel, mean over n, c."""
    c = x.shape[1]
    coords = torch.arange(win, dtype=x.dtype, device=x.device) - win // 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = (g / g.sum()).reshape(1, 1, 1, win).repeat(c, 1, 1, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, g, groups=c), g.transpose(2, 3), groups=c)

    c1, c2 = (k[0] * data_range) ** 2, (k[1] * data_range) ** 2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim_map = (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs
    return 1 - ssim_map.flatten(2).mean(-1).mean()


def rmi_loss(logits, y, radius=3, pool=3, lam=0.5, alpha=5e-4, clip_min=1e-6):
    """0.5*BCE + 0.5*RMI (forward_sigmoid, rmi_pool_way=1), labels >= C ignored."""
    n, c = logits.shape[:2]
    valid = (y < c).unsqueeze(1).to(logits.dtype)                      # [n,1,H,W]
    onehot = F.one_hot(y * (y < c), c).permute(0, 3, 1, 2).to(logits.dtype) * valid
    bce = F.binary_cross_entropy_with_logits(logits, onehot, weight=valid, reduction="sum")
    bce = bce / (valid.sum() + 1.0)

    probs = torch.sigmoid(logits) * valid + clip_min
    la = F.avg_pool2d(onehot, pool, pool, pool // 2)
    pr = F.avg_pool2d(probs, pool, pool, pool // 2)
    h, w = la.shape[2] - radius + 1, la.shape[3] - radius + 1
    d = radius * radius

    def vectors(t):  # [n, c, d, M] in float64, centred
        v = torch.stack([t[:, :, i:i + h, j:j + w] for i in range(radius)
                         for j in range(radius)], 2).reshape(n, c, d, -1).double()
        return v - v.mean(3, keepdim=True)

    la, pr = vectors(la), vectors(pr)
    eye = torch.eye(d, dtype=torch.float64, device=logits.device) * alpha
    la_pr = la @ pr.transpose(2, 3)
    v = la @ la.transpose(2, 3) - la_pr @ torch.linalg.inv(pr @ pr.transpose(2, 3) + eye) \
        @ la_pr.transpose(2, 3)
    chol = torch.linalg.cholesky(v + eye)
    rmi = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1) + 1e-8).sum(-1)  # 0.5 * logdet
    rmi = (rmi.mean(0).float() / d).sum()                                   # sum over classes
    return lam * bce + (1 - lam) * rmi


def ds2f_loss(outs, y, hr):
    """CE(seg, y) + MSE(sr, hr) + SSIM(proxy_sr, hr) + RMI(proxy_seg, y), all weights 1."""
    seg, sr, proxy_seg, proxy_sr = outs
    return (F.cross_entropy(seg, y) + F.mse_loss(sr, hr) + ssim_loss(proxy_sr, hr)
            + rmi_loss(proxy_seg, y))


if __name__ == "__main__":
    m = DS2F(3, 2, 64, 2)
    counts = {
        "total": num_params(m),
        "inference": num_params(m) - num_params(m.sr_branch) - num_params(m.shared_feature),
        "sr_decoder": num_params(m.sr_branch.decoder),
        "sr_head": num_params(m.sr_branch.head),
        "mscg": num_params(m.shared_feature),
    }
    print("params b=64 C=2 r=2:", counts)
    assert counts == {"total": 39_194_682, "inference": 28_949_698, "sr_decoder": 10_102_400,
                      "sr_head": 124_288, "mscg": 18_296}, counts
