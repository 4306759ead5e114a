"""DeepLabV3+ ("DeepLabV3+ + Inter") in PyTorch, mirroring ds2f's inference graph for
`model.backbone = deeplabv3plus_resnet{50,101}` (SPEC.md §1.3): ResNet v1.5 with the
reference's strides, dilations and multi-grid, the reference ASPP (extra BN + ReLU after the
projection, no dropout), the DeepLabV3+ decoder, the 1x1 seg head and the two bilinear steps
(align_corners=False) to (r*h, r*w).

Parameter names are those of ds2f's safetensors export (`ds2f export --format safetensors`):

    encoder.backbone.*                 torchvision's ResNet names (conv1, bn1, layer{1..4}.{i}.
                                       {conv1,bn1,conv2,bn2,conv3,bn3,downsample.{0,1}})
    encoder.aspp.branches.{0..3}.{conv,bn}, encoder.aspp.image_pool.{conv,bn},
    encoder.aspp.project.{conv,bn}, encoder.aspp.project_bn
    decoder.conv_low.{weight,bias}, decoder.fusion_conv.{0,1}.{conv,bn}
    seg_head.conv.{weight,bias}

Written from ds2f's model code and SPEC §1.3 (torchvision is not needed). Only used by bench/
scripts; never a build dependency.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

BLOCKS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}
STRIDES = {8: [1, 2, 1, 1], 16: [1, 2, 2, 1]}
DILATIONS = [1, 1, 1, 2]
MULTI_GRID = [1, 2, 4]
RATES = {8: [1, 12, 24, 36], 16: [1, 6, 12, 18]}


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: stride and dilation on the 3x3."""

    def __init__(self, inplanes, planes, stride, dilation, shortcut):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, 4 * planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * planes)
        self.downsample = nn.Sequential(
            nn.Conv2d(inplanes, 4 * planes, 1, stride, bias=False), nn.BatchNorm2d(4 * planes)
        ) if shortcut else None

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + identity)


class ResNet(nn.Module):
    def __init__(self, in_ch, depth, output_stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 64, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        inplanes = 64
        for l, blocks in enumerate(BLOCKS[depth]):
            planes = 64 << l
            layer = []
            for i in range(blocks):
                d = DILATIONS[3] * MULTI_GRID[min(i, 2)] if l == 3 else DILATIONS[l]
                s = STRIDES[output_stride][l] if i == 0 else 1
                layer.append(Bottleneck(inplanes, planes, s, d, i == 0))
                inplanes = 4 * planes
            setattr(self, f"layer{l + 1}", nn.Sequential(*layer))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        low = self.layer1(x)
        return low, self.layer4(self.layer3(self.layer2(low)))


class ConvBnRelu(nn.Module):
    def __init__(self, cin, cout, k=1, d=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=d * (k - 1) // 2, dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class Aspp(nn.Module):
    def __init__(self, cin, rates, b=256):
        super().__init__()
        self.branches = nn.ModuleList(
            [ConvBnRelu(cin, b)] + [ConvBnRelu(cin, b, 3, r) for r in rates[1:]])
        self.image_pool = ConvBnRelu(cin, b)
        self.project = ConvBnRelu(b * (len(rates) + 1), b)
        self.project_bn = nn.BatchNorm2d(b)

    def forward(self, x):
        outs = [branch(x) for branch in self.branches]
        p = self.image_pool(F.adaptive_avg_pool2d(x, 1))
        outs.append(F.interpolate(p, size=x.shape[2:], mode="bilinear", align_corners=False))
        return F.relu(self.project_bn(self.project(torch.cat(outs, 1))))


class Encoder(nn.Module):
    def __init__(self, in_ch, depth, output_stride):
        super().__init__()
        self.backbone = ResNet(in_ch, depth, output_stride)
        self.aspp = Aspp(2048, RATES[output_stride])

    def forward(self, x):
        low, top = self.backbone(x)
        return low, self.aspp(top)


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_low = nn.Conv2d(256, 48, 1)
        self.fusion_conv = nn.ModuleList([ConvBnRelu(304, 256, 3), ConvBnRelu(256, 256, 3)])

    def forward(self, low, high):
        low = self.conv_low(low)
        high = F.interpolate(high, size=low.shape[2:], mode="bilinear", align_corners=False)
        y = torch.cat([low, high], 1)
        for conv in self.fusion_conv:
            y = conv(y)
        return y


class SegHead(nn.Module):
    def __init__(self, cin, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(cin, num_classes, 1)


class DeepLabV3Plus(nn.Module):
    """Logits at LR/4, bilinear (align_corners=False) to (h, w), then to (r*h, r*w)."""

    def __init__(self, in_ch=3, num_classes=2, depth=101, output_stride=8, r=2):
        super().__init__()
        self.r = r
        self.encoder = Encoder(in_ch, depth, output_stride)
        self.decoder = Decoder()
        self.seg_head = SegHead(256, num_classes)

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        y = self.seg_head.conv(self.decoder(*self.encoder(x)))
        y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        return F.interpolate(y, size=(self.r * h, self.r * w), mode="bilinear",
                             align_corners=False)
