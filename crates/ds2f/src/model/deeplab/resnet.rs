//! ResNet v1.5 (He et al., CVPR 2016; the stride on the 3×3 convolution, as torchvision and
//! NVIDIA's v1.5) with DeepLab's dilations and multi-grid, as the reference's
//! `models/classification/resnet.py::ResNet` builds it for DeepLabV3+ (SPEC §1.3): 7×7/2 stem
//! (Conv+BN+ReLU), 3×3/2 max-pool, four stages of bottleneck blocks, no `avgpool`/`fc`.
//!
//! Field names mirror torchvision's `state_dict` so that ImageNet weights can be loaded by
//! name: `conv1`, `bn1`, `layer{1..4}.{i}.{conv1,bn1,conv2,bn2,conv3,bn3}`; the only
//! difference is the shortcut, `downsample.conv` / `downsample.bn` here for torchvision's
//! `downsample.0` / `downsample.1` (burn field names cannot be numbers), and burn's BN names
//! (`gamma`, `beta` for `weight`, `bias`), which `PyTorchToBurnAdapter` maps.
//!
//! Stage `l` has stride `strides[l]` on its first block and dilation `dilations[l]` on every
//! block, except `layer4`, whose block `i` has dilation `dilations[3] · MULTI_GRID[i]`
//! (`_make_grid_layer` of the reference). Every stage has a shortcut projection on its first
//! block (the reference's condition `planes != inplanes·4 or stride == 2` holds for all four).
//! Convolution weights are drawn as the reference's `kaiming_uniform_` (a = 0, fan_in):
//! U(±√(6 / fan_in)); BN γ = 1, β = 0.
use crate::model::blocks::max_pool_3s2;
use crate::ops::Activation;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::{MULTI_GRID, OutputStride};

/// Bottleneck expansion: a block's output has `4 · planes` channels.
pub const EXPANSION: usize = 4;

/// The depth of the ResNet (`model.backbone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ResNetDepth {
    /// ResNet-50: `[3, 4, 6, 3]` blocks.
    R50,
    /// ResNet-101: `[3, 4, 23, 3]` blocks.
    R101,
}

impl ResNetDepth {
    /// Blocks per stage.
    pub fn blocks(self) -> [usize; 4] {
        match self {
            ResNetDepth::R50 => [3, 4, 6, 3],
            ResNetDepth::R101 => [3, 4, 23, 3],
        }
    }
}

/// Configuration of a [`ResNet`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// ResNet-50 or ResNet-101.
    pub depth: ResNetDepth,
    /// Output stride (strides and dilations of the stages).
    pub output_stride: OutputStride,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
}

/// The reference's `kaiming_uniform_` (a = 0, mode fan_in): U(±√2·√(3 / fan_in)).
fn kaiming() -> Initializer {
    Initializer::KaimingUniform {
        gain: std::f64::consts::SQRT_2,
        fan_out_only: false,
    }
}

/// A convolution without bias, `k×k`, with `stride`, `dilation` and padding `dilation·(k−1)/2`.
fn conv(channels: [usize; 2], k: usize, stride: usize, dilation: usize, device: &Device) -> Conv2d {
    let p = dilation * (k - 1) / 2;
    Conv2dConfig::new(channels, [k, k])
        .with_stride([stride, stride])
        .with_dilation([dilation, dilation])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(false)
        .with_initializer(kaiming())
        .init(device)
}

/// The shortcut projection of a stage's first block: 1×1 conv with the block's stride + BN.
#[derive(Module, Debug)]
pub struct Downsample {
    /// 1×1 conv, no bias (torchvision `downsample.0`).
    pub conv: Conv2d,
    /// Its BN (torchvision `downsample.1`).
    pub bn: BatchNorm,
}

/// The bottleneck block: 1×1 reduce, 3×3 (stride, dilation), 1×1 expand, each with BN; ReLU
/// after the first two and after the residual sum.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// 1×1, `in → planes`.
    pub conv1: Conv2d,
    /// Its BN.
    pub bn1: BatchNorm,
    /// 3×3, `planes → planes`, the block's stride and dilation.
    pub conv2: Conv2d,
    /// Its BN.
    pub bn2: BatchNorm,
    /// 1×1, `planes → 4·planes`.
    pub conv3: Conv2d,
    /// Its BN.
    pub bn3: BatchNorm,
    /// Shortcut projection (first block of a stage only).
    pub downsample: Option<Downsample>,
}

impl Bottleneck {
    /// Builds a block `in_channels → 4·planes` with `stride` and `dilation` on its 3×3.
    pub fn new(
        in_channels: usize,
        planes: usize,
        stride: usize,
        dilation: usize,
        shortcut: bool,
        device: &Device,
    ) -> Self {
        let out = planes * EXPANSION;
        Self {
            conv1: conv([in_channels, planes], 1, 1, 1, device),
            bn1: BatchNormConfig::new(planes).init(device),
            conv2: conv([planes, planes], 3, stride, dilation, device),
            bn2: BatchNormConfig::new(planes).init(device),
            conv3: conv([planes, out], 1, 1, 1, device),
            bn3: BatchNormConfig::new(out).init(device),
            downsample: shortcut.then(|| Downsample {
                conv: conv([in_channels, out], 1, stride, 1, device),
                bn: BatchNormConfig::new(out).init(device),
            }),
        }
    }

    /// # Shapes
    /// - `x`: `[n, in, h, w]`
    /// - output: `[n, 4·planes, ceil(h/stride), ceil(w/stride)]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some(d) => crate::ops::conv_bn(&d.conv, &d.bn, x.clone(), Activation::Identity), // [n, 4p, h/s, w/s]
            None => x.clone(),
        };
        let y = crate::ops::conv_bn(&self.conv1, &self.bn1, x, Activation::Relu); // [n, p, h, w]
        let y = crate::ops::conv_bn(&self.conv2, &self.bn2, y, Activation::Relu); // [n, p, h/s, w/s]
        let y = crate::ops::conv_bn(&self.conv3, &self.bn3, y, Activation::Identity); // [n, 4p, h/s, w/s]
        relu(y + identity)
    }
}

/// ResNet v1.5 feature extractor (see the module docs).
#[derive(Module, Debug)]
pub struct ResNet {
    /// Stem 7×7/2 conv, `in → 64`, no bias.
    pub conv1: Conv2d,
    /// Stem BN.
    pub bn1: BatchNorm,
    /// Stage 1, 64 planes (256 out), at /4.
    pub layer1: Vec<Bottleneck>,
    /// Stage 2, 128 planes (512 out), at /8.
    pub layer2: Vec<Bottleneck>,
    /// Stage 3, 256 planes (1024 out).
    pub layer3: Vec<Bottleneck>,
    /// Stage 4, 512 planes (2048 out), multi-grid dilations.
    pub layer4: Vec<Bottleneck>,
}

impl ResNetConfig {
    /// Builds the ResNet on `device`.
    pub fn init(&self, device: &Device) -> ResNet {
        let blocks = self.depth.blocks();
        let strides = self.output_stride.strides();
        let dilations = self.output_stride.dilations();
        let mut in_channels = 64;
        let mut stage = |l: usize| -> Vec<Bottleneck> {
            let planes = 64 << l;
            (0..blocks[l])
                .map(|i| {
                    let dilation = if l == 3 {
                        dilations[3] * MULTI_GRID[i.min(MULTI_GRID.len() - 1)]
                    } else {
                        dilations[l]
                    };
                    let stride = if i == 0 { strides[l] } else { 1 };
                    let block =
                        Bottleneck::new(in_channels, planes, stride, dilation, i == 0, device);
                    in_channels = planes * EXPANSION;
                    block
                })
                .collect()
        };
        let stem = conv([self.in_channels, 64], 7, 2, 1, device);
        let bn1 = BatchNormConfig::new(64).init(device);
        let layer1 = stage(0);
        let layer2 = stage(1);
        let layer3 = stage(2);
        let layer4 = stage(3);
        ResNet {
            conv1: stem,
            bn1,
            layer1,
            layer2,
            layer3,
            layer4,
        }
    }
}

impl ResNet {
    /// The four stages' outputs (`forward_features` of the reference).
    ///
    /// # Shapes
    /// - `x`: `[n, in, h, w]`
    /// - output: `[n, 256, h/4, w/4]`, `[n, 512, h/8, w/8]`, `[n, 1024, h/s3, w/s3]`,
    ///   `[n, 2048, h/os, w/os]` (each stride-2 step rounds up: `ceil`)
    pub fn forward_features(&self, x: Tensor<4>) -> [Tensor<4>; 4] {
        let x = crate::ops::conv_bn(&self.conv1, &self.bn1, x, Activation::Relu); // [n, 64, h/2, w/2]
        let x = max_pool_3s2(x); // [n, 64, h/4, w/4]
        let run = |blocks: &[Bottleneck], x: Tensor<4>| blocks.iter().fold(x, |x, b| b.forward(x));
        let f1 = run(&self.layer1, x); // [n, 256, h/4, w/4]
        let f2 = run(&self.layer2, f1.clone()); // [n, 512, h/8, w/8]
        let f3 = run(&self.layer3, f2.clone()); // [n, 1024, h/s3, w/s3]
        let f4 = run(&self.layer4, f3.clone()); // [n, 2048, h/os, w/os]
        [f1, f2, f3, f4]
    }
}
