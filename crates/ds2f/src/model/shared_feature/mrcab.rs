//! The channel-attention blocks of the MSCG gate: MRCAB (the paper's eqs. 9–11, `RCAB` in
//! `imed_vision/layers/task_fusion.py`), its "w/ gpool" variant (Table IV, the code at
//! `ec88c9b`) and the original RCAB of Zhang et al., "Image Super-Resolution Using Very Deep
//! Residual Channel Attention Networks", ECCV 2018 (Table IV's "RCAB" row).
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::{leaky_relu, relu, sigmoid};

use super::{conv, global_avg_pool};

/// MRCAB: two depthwise 3×3 convs (with bias, no activation between), a squeeze-excitation of
/// two 1×1 convs (`c → c/r → c`, LeakyReLU 0.01 between, sigmoid after) applied per pixel (or
/// after global average pooling when `gpool`), re-weighting, and the input residual.
///
/// PyTorch names: `conv1`, `conv2`, `se.0` (`se_reduce`), `se.2` (`se_expand`); with gpool
/// the Nov-2022 code had `AdaptiveAvgPool2d` as `se.0`, so `se.1` and `se.3`.
#[derive(Module, Debug)]
pub struct Mrcab {
    /// First depthwise 3×3 conv.
    pub conv1: Conv2d,
    /// Second depthwise 3×3 conv.
    pub conv2: Conv2d,
    /// 1×1 squeeze `c → c/r`.
    pub se_reduce: Conv2d,
    /// 1×1 excitation `c/r → c`.
    pub se_expand: Conv2d,
    /// Global average pooling before the squeeze ("w/ gpool").
    pub gpool: bool,
}

impl Mrcab {
    /// Builds an MRCAB for `channels` with squeeze ratio `reduction`.
    ///
    /// # Panics
    /// If `channels / reduction` is 0.
    pub fn new(channels: usize, reduction: usize, gpool: bool, device: &Device) -> Self {
        let squeezed = channels / reduction;
        assert!(
            squeezed > 0,
            "MRCAB: {channels} channels / reduction {reduction} is 0"
        );
        Self {
            conv1: conv([channels, channels], 3, 1, channels, true, device),
            conv2: conv([channels, channels], 3, 1, channels, true, device),
            se_reduce: conv([channels, squeezed], 1, 1, 1, true, device),
            se_expand: conv([squeezed, channels], 1, 1, 1, true, device),
            gpool,
        }
    }

    /// # Shapes
    /// - `x`: `[n, c, h, w]`
    /// - output: `[n, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let z = crate::ops::conv2d_module(
            &self.conv2,
            crate::ops::conv2d_module(&self.conv1, x.clone()),
        ); // [n, c, h, w]
        let s = match self.gpool {
            true => global_avg_pool(z.clone()), // [n, c, 1, 1]
            false => z.clone(),                 // [n, c, h, w]
        };
        let s = leaky_relu(crate::ops::conv2d_module(&self.se_reduce, s), 0.01); // [n, c/r, ·, ·]
        let w = sigmoid(crate::ops::conv2d_module(&self.se_expand, s)); // [n, c, h, w] or [n, c, 1, 1]
        w * z + x // [n, c, h, w]
    }
}

/// The original RCAB (Zhang et al. 2018): full 3×3 conv → ReLU → full 3×3 conv (with bias),
/// channel attention (global average pool → 1×1 `c → c/r` → ReLU → 1×1 `c/r → c` → sigmoid),
/// re-weighting and the input residual. No PyTorch counterpart in the reference repo.
#[derive(Module, Debug)]
pub struct Rcab {
    /// First full 3×3 conv.
    pub conv1: Conv2d,
    /// Second full 3×3 conv.
    pub conv2: Conv2d,
    /// 1×1 squeeze `c → c/r` of the channel attention.
    pub ca_reduce: Conv2d,
    /// 1×1 excitation `c/r → c` of the channel attention.
    pub ca_expand: Conv2d,
}

impl Rcab {
    /// Builds an RCAB for `channels` with squeeze ratio `reduction`.
    ///
    /// # Panics
    /// If `channels / reduction` is 0.
    pub fn new(channels: usize, reduction: usize, device: &Device) -> Self {
        let squeezed = channels / reduction;
        assert!(
            squeezed > 0,
            "RCAB: {channels} channels / reduction {reduction} is 0"
        );
        Self {
            conv1: conv([channels, channels], 3, 1, 1, true, device),
            conv2: conv([channels, channels], 3, 1, 1, true, device),
            ca_reduce: conv([channels, squeezed], 1, 1, 1, true, device),
            ca_expand: conv([squeezed, channels], 1, 1, 1, true, device),
        }
    }

    /// # Shapes
    /// - `x`: `[n, c, h, w]`
    /// - output: `[n, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let z = crate::ops::conv2d_module(&self.conv1, x.clone()); // [n, c, h, w]
        let z = crate::ops::conv2d_module(&self.conv2, relu(z)); // [n, c, h, w]
        let s = relu(crate::ops::conv2d_module(
            &self.ca_reduce,
            global_avg_pool(z.clone()),
        )); // [n, c/r, 1, 1]
        let w = sigmoid(crate::ops::conv2d_module(&self.ca_expand, s)); // [n, c, 1, 1]
        w * z + x // [n, c, h, w]
    }
}

/// The attention block of the MSCG gate, chosen by [`super::AttentionBlock`]. burn puts the
/// variant name in parameter paths (`gate.rcab.Mrcab.conv1.weight`).
#[derive(Module, Debug)]
pub enum Attention {
    /// MRCAB, with or without global pooling.
    Mrcab(Mrcab),
    /// The original RCAB.
    Rcab(Rcab),
}

impl Attention {
    /// # Shapes
    /// - `x`: `[n, c, h, w]`
    /// - output: `[n, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Attention::Mrcab(m) => m.forward(x),
            Attention::Rcab(m) => m.forward(x),
        }
    }
}
