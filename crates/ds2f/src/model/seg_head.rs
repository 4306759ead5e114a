//! The segmentation head: a 1×1 convolution to class logits, then bilinear up-sampling to the
//! HR size: one step (align_corners = true) from LR for the U-Net ("U-Net+Inter"; r = 1 is a
//! plain U-Net), two steps (align_corners = false: to LR, then ×r) from LR/4 for DeepLabV3+,
//! two steps (align_corners = true) from LR/2 for ESPNetv2, whose head convolution is its
//! decoder's `project_l1` (no bias, dropout before it).
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;

use super::backbone::HeadResize;
use super::unet::bilinear;

/// 1×1 conv (with bias) to `num_classes` logits, then bilinear up-sampling to `upscale` × LR.
#[derive(Module, Debug)]
pub struct SegHead {
    /// The 1×1 classifier (`out_conv` of the reference).
    pub conv: Conv2d,
    /// The up-scale rate r (HR = r × LR).
    pub upscale: usize,
    /// How the logits reach HR (the backbone's rule).
    #[module(skip)]
    pub resize: HeadResize,
    /// Dropout before the convolution (ESPNetv2's `project_l1`; identity off autodiff
    /// devices). Not part of the record: it holds no weights, and records written before it
    /// existed load unchanged.
    #[module(skip)]
    pub dropout: Option<Dropout>,
}

impl SegHead {
    /// Builds the head for `in_channels` features, `num_classes` classes and rate `upscale`,
    /// with the U-Net's resize rule.
    pub fn new(in_channels: usize, num_classes: usize, upscale: usize, device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([in_channels, num_classes], [1, 1]).init(device),
            upscale,
            resize: HeadResize::AlignCorners,
            dropout: None,
        }
    }

    /// ESPNetv2's head: `project_l1` (1×1 `in_channels → num_classes`, no bias, PyTorch's
    /// default initialisation) after dropout with probability `dropout`, then
    /// [`HeadResize::AlignCornersTwoStep`].
    pub fn espnet(
        in_channels: usize,
        num_classes: usize,
        upscale: usize,
        dropout: f64,
        device: &Device,
    ) -> Self {
        Self {
            conv: Conv2dConfig::new([in_channels, num_classes], [1, 1])
                .with_bias(false)
                .init(device),
            upscale,
            resize: HeadResize::AlignCornersTwoStep,
            dropout: Some(DropoutConfig::new(dropout).init()),
        }
    }

    /// The head with resize rule `resize`.
    pub fn with_resize(self, resize: HeadResize) -> Self {
        Self { resize, ..self }
    }

    /// [`SegHead::forward_at`] for features at the LR size (the U-Net's).
    ///
    /// # Shapes
    /// - `x`: `[n, in_channels, h, w]`
    /// - output: `[n, num_classes, r·h, r·w]` logits
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        self.forward_at(x, [h, w])
    }

    /// Logits at HR from decoder features of an LR input of size `lr`.
    ///
    /// # Shapes
    /// - `x`: `[n, in_channels, h', w']` (U-Net: the LR size; DeepLabV3+: LR/4; ESPNetv2:
    ///   LR/2)
    /// - `lr`: `[h, w]`
    /// - output: `[n, num_classes, r·h, r·w]` logits
    pub fn forward_at(&self, x: Tensor<4>, lr: [usize; 2]) -> Tensor<4> {
        let x = match &self.dropout {
            Some(dropout) => dropout.forward(x),
            None => x,
        };
        let logits = crate::ops::conv2d_module(&self.conv, x); // [n, C, h', w']
        let hr = [lr[0] * self.upscale, lr[1] * self.upscale];
        match self.resize {
            HeadResize::AlignCorners => bilinear(logits, hr, true), // [n, C, rh, rw]
            HeadResize::TwoStep => {
                let logits = bilinear(logits, lr, false); // [n, C, h, w]
                bilinear(logits, hr, false) // [n, C, rh, rw]
            }
            HeadResize::AlignCornersTwoStep => {
                let logits = bilinear(logits, lr, true); // [n, C, h, w]
                bilinear(logits, hr, true) // [n, C, rh, rw]
            }
        }
    }
}
