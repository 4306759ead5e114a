"""Makes the fixtures of `crates/ds2f/tests/pretrained.rs` (torch only; torchvision and the
safetensors package are not needed, and neither is ever a build dependency).

Run from the workspace root: `python crates/ds2f/tests/golden/make_resnet50_stem.py`.

A torchvision-layout ResNet-50 state dict cut to the stem and the first bottleneck of `layer1`
(`conv1`, `bn1`, `layer1.0.*` with `downsample.0` / `downsample.1`), random weights and BN
running statistics (seed 0), plus a stand-in `fc.weight` [4, 2048] / `fc.bias` [4] (torchvision's
is [1000, 2048]; only the name matters: it must come back as unused). Written twice, as
`resnet50_stem.pth` (torch.save of the state dict, `num_batches_tracked` included) and
`resnet50_stem.safetensors` (same tensors, `num_batches_tracked` left out as safetensors
exporters of torchvision weights usually do not), and a tiny `resnet50_bad_conv1.pth` whose
`conv1.weight` is 3x3 instead of 7x7. Prints the reference numbers pasted into the test.
"""
import json
import math
import struct
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = "crates/ds2f/tests/golden/"


class Bottleneck(nn.Module):
    """torchvision.models.resnet.Bottleneck (v1.5: stride on conv2), same attribute names."""

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.downsample = downsample

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + idt)


class Stem(nn.Module):
    """torchvision resnet50 up to layer1.0, with torchvision's names (and a stand-in fc)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        ds = nn.Sequential(nn.Conv2d(64, 256, 1, bias=False), nn.BatchNorm2d(256))
        self.layer1 = nn.Sequential(Bottleneck(64, 64, 1, ds))
        self.fc = nn.Linear(2048, 4)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 3, 2, 1)
        return self.layer1(x)


torch.manual_seed(0)
m = Stem()
with torch.no_grad():
    for name, mod in m.named_modules():
        if isinstance(mod, nn.Conv2d):
            fan_in = mod.weight[0].numel()
            mod.weight.copy_(torch.randn_like(mod.weight) * math.sqrt(2.0 / fan_in))
        elif isinstance(mod, nn.BatchNorm2d):
            mod.weight.uniform_(0.5, 1.5)
            mod.bias.normal_(0.0, 0.1)
            mod.running_mean.normal_(0.0, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
            mod.num_batches_tracked.fill_(1000)
m.eval()
sd = m.state_dict()
torch.save(sd, OUT + "resnet50_stem.pth")


def save_safetensors(tensors, path):
    header, blobs, offset = {}, [], 0
    for k, t in tensors.items():
        b = t.detach().contiguous().numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


save_safetensors(
    OrderedDict((k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked")),
    OUT + "resnet50_stem.safetensors",
)
torch.save(OrderedDict([("conv1.weight", torch.zeros(64, 3, 3, 3))]), OUT + "resnet50_bad_conv1.pth")

# Input 1x3x29x35 (odd sides: the stride-2 steps round up), x[c,h,w] = sin(0.37c + 0.11h + 0.05w)
c, h, w = torch.meshgrid(torch.arange(3.0), torch.arange(29.0), torch.arange(35.0), indexing="ij")
x = torch.sin(0.37 * c + 0.11 * h + 0.05 * w)[None].double()
y = m.double()(x)
print("shape", list(y.shape))
print("sum", y.sum().item())
print("positive", (y > 0).sum().item())
print("sq_sum", (y * y).sum().item())
print("channel 0", y[0, 0].flatten().tolist())
for idx in [(0, 0, 0, 0), (0, 0, 7, 8), (0, 37, 3, 5), (0, 255, 7, 8)]:
    print("value", idx, y[idx].item())
print("per-channel sums of channels 0..8", y[0, :8].sum((1, 2)).tolist())
print("keys", len(sd), list(sd.keys()))
