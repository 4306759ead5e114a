//! The small convolution / batch-norm / PReLU combinations ESPNetv2 is built from (`CBR`, `CB`,
//! `BR` and `CDilated` of the official code; `Conv2d(..., activation=PReLU)` of the DS2F
//! reference), and its 3×3 stride-2 average pool.
use crate::ops::Activation;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PRelu, PReluConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;

/// How a convolution's weights are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvInit {
    /// The encoder's `init_params`: `kaiming_normal_` (fan-in, gain √2).
    Backbone,
    /// PyTorch's default (`kaiming_uniform_(a = √5)`, burn's default too): the decoder parts,
    /// which the reference builds after the backbone's `init_params` has run.
    Default,
}

/// A bias-free `k×k` convolution with padding `dilation·(k − 1)/2` (the size is kept at stride
/// 1, halved rounding up at stride 2).
pub fn conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    dilation: usize,
    groups: usize,
    init: ConvInit,
    device: &Device,
) -> Conv2d {
    let pad = dilation * (kernel - 1) / 2;
    let config = Conv2dConfig::new(channels, [kernel, kernel])
        .with_stride([stride, stride])
        .with_dilation([dilation, dilation])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false);
    let config = match init {
        ConvInit::Backbone => config.with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: false,
        }),
        ConvInit::Default => config,
    };
    config.init(device)
}

/// Convolution (no bias) → batch norm → PReLU (one slope per channel, 0.25 at init).
#[derive(Module, Debug)]
pub struct Cbr {
    /// The convolution.
    pub conv: Conv2d,
    /// Batch norm (PyTorch defaults).
    pub bn: BatchNorm,
    /// Per-channel PReLU.
    pub act: PRelu,
}

impl Cbr {
    /// A `kernel×kernel` block `in → out` with `stride` and `groups`.
    pub fn new(
        channels: [usize; 2],
        kernel: usize,
        stride: usize,
        groups: usize,
        init: ConvInit,
        device: &Device,
    ) -> Self {
        Self {
            conv: conv(channels, kernel, stride, 1, groups, init, device),
            bn: BatchNormConfig::new(channels[1]).init(device),
            act: PReluConfig::new()
                .with_num_parameters(channels[1])
                .init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[n, in, h, w]`
    /// - output: `[n, out, h / stride, w / stride]` (rounded up)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = crate::ops::conv_bn(&self.conv, &self.bn, x, Activation::Identity); // [n, out, h', w']
        self.act.forward(y)
    }

    /// [`Cbr::forward`] of `Tensor::cat(parts, 1)` (at inference without building it, where
    /// the fused kernel runs).
    ///
    /// # Shapes
    /// - `parts`: `[n, in_i, h, w]` with `Σ in_i = in`
    /// - output: `[n, out, h / stride, w / stride]`
    pub fn forward_cat(&self, parts: Vec<Tensor<4>>) -> Tensor<4> {
        let y = crate::ops::conv_bn_cat(&self.conv, &self.bn, parts, Activation::Identity); // [n, out, h', w']
        self.act.forward(y)
    }
}

/// Convolution (no bias) → batch norm, no activation.
#[derive(Module, Debug)]
pub struct Cb {
    /// The convolution.
    pub conv: Conv2d,
    /// Batch norm (PyTorch defaults).
    pub bn: BatchNorm,
}

impl Cb {
    /// A `kernel×kernel` block `in → out` with `groups` (stride 1).
    pub fn new(
        channels: [usize; 2],
        kernel: usize,
        groups: usize,
        init: ConvInit,
        device: &Device,
    ) -> Self {
        Self {
            conv: conv(channels, kernel, 1, 1, groups, init, device),
            bn: BatchNormConfig::new(channels[1]).init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[n, in, h, w]`
    /// - output: `[n, out, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        crate::ops::conv_bn(&self.conv, &self.bn, x, Activation::Identity)
    }
}

/// Batch norm → PReLU.
#[derive(Module, Debug)]
pub struct Br {
    /// Batch norm (PyTorch defaults).
    pub bn: BatchNorm,
    /// Per-channel PReLU.
    pub act: PRelu,
}

impl Br {
    /// The block for `channels` channels.
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            bn: BatchNormConfig::new(channels).init(device),
            act: PReluConfig::new()
                .with_num_parameters(channels)
                .init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[n, c, h, w]`
    /// - output: `[n, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.act.forward(crate::ops::batch_norm_module(&self.bn, x))
    }
}

/// 3×3 average pool, stride 2, padding 1, padded zeros counted (`nn.AvgPool2d(3, 2, 1)`):
/// `h → ceil(h / 2)`, the same size as a 3×3 stride-2 convolution with padding 1 gives.
///
/// # Shapes
/// - `x`: `[n, c, h, w]`
/// - output: `[n, c, ceil(h/2), ceil(w/2)]`
pub fn avg_pool_3s2(x: Tensor<4>) -> Tensor<4> {
    avg_pool2d(
        x,
        AvgPoolOptions::new([3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .with_count_include_pad(true),
    )
}
