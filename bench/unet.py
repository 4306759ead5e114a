"""Reference U-Net ("U-Net+Inter") in PyTorch, mirroring the DS2F reference code's
inference path (SPEC.md §1.0-§1.1): encoder + seg decoder + 1x1 seg head + bilinear xr.

Parameter names are laid out so that they map 1:1 onto the Rust model:

    encoder.down{1..4}.conv.{conv1,bn1,conv2,bn2}.*
    encoder.down5.{conv1,bn1,conv2,bn2}.*
    decoder.up{6..9}.reduce.{conv,bn}.*
    decoder.up{6..9}.conv.{conv1,bn1,conv2,bn2}.*
    seg_head.conv.{weight,bias}

Only used by bench/ scripts and golden-file generators; never a build dependency.
F.interpolate is deliberately called as ``F.interpolate`` (module attribute looked up
at call time) so that ptflops' functional patching counts it, as it does for the
reference code.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class DoubleConv(nn.Module):
    """[conv3x3 pad1 no-bias -> BN -> ReLU] x 2 (in -> out -> out)."""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(x)))


class Downsample(nn.Module):
    """DoubleConv, then MaxPool2d(3, stride 2, padding 1). Returns (skip, pooled)."""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv = DoubleConv(in_ch, out_ch)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

    def forward(self, x):
        f = self.conv(x)
        return f, self.pool(f)


class ConvBNReLU(nn.Module):
    """The reference `Conv2d` wrapper with ksize 1: conv1x1 no-bias -> BN -> ReLU."""

    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class Upsample(nn.Module):
    """bilinear(align_corners=True) to skip size -> 1x1 reduce in1->out -> cat([up, skip])
    -> DoubleConv(out+in2 -> out)."""

    def __init__(self, in1, in2, out):
        super().__init__()
        self.reduce = ConvBNReLU(in1, out)
        self.conv = DoubleConv(out + in2, out)

    def forward(self, x, skip):
        x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=True)
        x = self.reduce(x)
        return self.conv(torch.cat([x, skip], dim=1))


class Encoder(nn.Module):
    def __init__(self, in_ch, b):
        super().__init__()
        self.down1 = Downsample(in_ch, b)
        self.down2 = Downsample(b, 2 * b)
        self.down3 = Downsample(2 * b, 4 * b)
        self.down4 = Downsample(4 * b, 8 * b)
        self.down5 = DoubleConv(8 * b, 16 * b)

    def forward(self, x):
        f1, x = self.down1(x)
        f2, x = self.down2(x)
        f3, x = self.down3(x)
        f4, x = self.down4(x)
        f5 = self.down5(x)
        return f1, f2, f3, f4, f5


class Decoder(nn.Module):
    def __init__(self, b):
        super().__init__()
        self.up6 = Upsample(16 * b, 8 * b, 8 * b)
        self.up7 = Upsample(8 * b, 4 * b, 4 * b)
        self.up8 = Upsample(4 * b, 2 * b, 2 * b)
        self.up9 = Upsample(2 * b, b, b)

    def forward(self, f1, f2, f3, f4, f5):
        x = self.up6(f5, f4)
        x = self.up7(x, f3)
        x = self.up8(x, f2)
        return self.up9(x, f1)  # F_seg: b channels at LR


class SegHead(nn.Module):
    def __init__(self, b, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(b, num_classes, 1, bias=True)

    def forward(self, x):
        return self.conv(x)


class UNetInter(nn.Module):
    """U-Net+Inter: U-Net logits at LR, then bilinear (align_corners=True) to (r*h, r*w)."""

    def __init__(self, in_ch=3, num_classes=2, base=64, r=2):
        super().__init__()
        self.r = r
        self.encoder = Encoder(in_ch, base)
        self.decoder = Decoder(base)
        self.seg_head = SegHead(base, num_classes)

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        feats = self.encoder(x)
        y = self.seg_head(self.decoder(*feats))
        return F.interpolate(y, size=(self.r * h, self.r * w), mode="bilinear",
                             align_corners=True)


def num_params(model):
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    m = UNetInter(3, 2, 64, 2)
    n = num_params(m)
    print("params b=64 C=2:", n)
    assert n == 28_949_698, n
    print("params b=16 C=2:", num_params(UNetInter(3, 2, 16, 2)))
    print("params b=4  C=2:", num_params(UNetInter(3, 2, 4, 2)))
    for name, p in m.named_parameters():
        print(name, tuple(p.shape))
