//! The segmentation head: a 1×1 convolution to class logits, then bilinear ×r
//! (align_corners = true) to the HR size ("U-Net+Inter"; r = 1 is a plain U-Net).
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;

use super::unet::bilinear;

/// 1×1 conv (with bias) to `num_classes` logits, then bilinear up-sampling by `upscale`.
#[derive(Module, Debug)]
pub struct SegHead {
    /// The 1×1 classifier (`out_conv` of the reference).
    pub conv: Conv2d,
    /// The up-scale rate r (HR = r × LR).
    pub upscale: usize,
}

impl SegHead {
    /// Builds the head for `in_channels` features, `num_classes` classes and rate `upscale`.
    pub fn new(in_channels: usize, num_classes: usize, upscale: usize, device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([in_channels, num_classes], [1, 1]).init(device),
            upscale,
        }
    }

    /// # Shapes
    /// - `x`: `[n, in_channels, h, w]`
    /// - output: `[n, num_classes, r·h, r·w]` logits
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let logits = crate::ops::conv2d_module(&self.conv, x); // [n, C, h, w]
        bilinear(logits, [h * self.upscale, w * self.upscale], true) // [n, C, rh, rw]
    }
}
