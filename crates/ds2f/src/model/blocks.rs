//! The shared building blocks of the reference U-Net (SPEC §1.0): conv + BN + ReLU, the
//! double 3×3 convolution, and the 3×3 stride-2 max-pool.
use crate::ops::Activation;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;

/// Convolution without bias, then batch norm, then ReLU (the reference's `Conv2d` wrapper).
#[derive(Module, Debug)]
pub struct ConvBnRelu {
    /// The convolution (no bias: BN follows).
    pub conv: Conv2d,
    /// Batch normalisation (PyTorch defaults: eps 1e-5, momentum 0.1).
    pub bn: BatchNorm,
}

/// Configuration of [`ConvBnRelu`].
#[derive(Config, Debug)]
pub struct ConvBnReluConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size; padding is `kernel / 2` so the size is kept.
    #[config(default = 1)]
    pub kernel: usize,
}

impl ConvBnReluConfig {
    /// Builds the block on `device`.
    pub fn init(&self, device: &Device) -> ConvBnRelu {
        let pad = self.kernel / 2;
        ConvBnRelu {
            conv: Conv2dConfig::new(
                [self.in_channels, self.out_channels],
                [self.kernel, self.kernel],
            )
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .with_bias(false)
            .init(device),
            bn: BatchNormConfig::new(self.out_channels).init(device),
        }
    }
}

impl ConvBnRelu {
    /// # Shapes
    /// - `x`: `[batch, in_channels, h, w]`
    /// - output: `[batch, out_channels, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        crate::ops::conv_bn(&self.conv, &self.bn, x, Activation::Relu)
    }
}

/// Two 3×3 conv (no bias) + BN + ReLU layers (`DoubleConv` of the reference): `in → out → out`.
/// Fields are flat (`conv1`, `bn1`, `conv2`, `bn2`) so that parameter paths equal the PyTorch
/// state-dict names of `bench/unet.py`.
#[derive(Module, Debug)]
pub struct DoubleConv {
    /// First 3×3 convolution, `in → out`.
    pub conv1: Conv2d,
    /// Its batch norm.
    pub bn1: BatchNorm,
    /// Second 3×3 convolution, `out → out`.
    pub conv2: Conv2d,
    /// Its batch norm.
    pub bn2: BatchNorm,
}

impl DoubleConv {
    /// Builds a double conv `in_channels → out_channels`.
    pub fn new(in_channels: usize, out_channels: usize, device: &Device) -> Self {
        let a = ConvBnReluConfig::new(in_channels, out_channels)
            .with_kernel(3)
            .init(device);
        let b = ConvBnReluConfig::new(out_channels, out_channels)
            .with_kernel(3)
            .init(device);
        Self {
            conv1: a.conv,
            bn1: a.bn,
            conv2: b.conv,
            bn2: b.bn,
        }
    }

    /// # Shapes
    /// - `x`: `[batch, in, h, w]`
    /// - output: `[batch, out, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_cat(vec![x])
    }

    /// [`DoubleConv::forward`] of `Tensor::cat(parts, 1)` (at inference without building it).
    ///
    /// # Shapes
    /// - `parts`: `[batch, in_i, h, w]` with `Σ in_i = in`
    /// - output: `[batch, out, h, w]`
    pub fn forward_cat(&self, parts: Vec<Tensor<4>>) -> Tensor<4> {
        let x = crate::ops::conv_bn_cat(&self.conv1, &self.bn1, parts, Activation::Relu); // [batch, out, h, w]
        crate::ops::conv_bn(&self.conv2, &self.bn2, x, Activation::Relu) // [batch, out, h, w]
    }
}

/// The reference's down-sampling pool: 3×3 max-pool, stride 2, padding 1, so `h → ceil(h / 2)`.
///
/// # Shapes
/// - `x`: `[batch, c, h, w]`
/// - output: `[batch, c, ceil(h/2), ceil(w/2)]`
pub fn max_pool_3s2(x: Tensor<4>) -> Tensor<4> {
    crate::ops::max_pool2d(x, 3, 2, 1)
}
