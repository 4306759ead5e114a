//! The pyramid pooling of the ESPNetv2 segmentation decoder (`PSP` of the DS2F reference,
//! `PSPModule` of the official `segmentation/cnn/cnn_utils.py`): the input is average-pooled
//! four times in a row (3×3, stride 2: /2, /4, /8, /16), each pooled map goes through its own
//! depth-wise 3×3 convolution and is bilinearly up-sampled (align_corners = true) back; the
//! input and the four maps are concatenated and projected by a 1×1 CBR.
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::layers::{Cbr, ConvInit, avg_pool_3s2, conv};
use crate::model::unet::bilinear;

/// Pyramid levels (the reference's `sizes = (1, 2, 4, 8)`, used only for their count).
const LEVELS: usize = 4;

/// The pyramid pooling module (see the module docs).
#[derive(Module, Debug)]
pub struct PspModule {
    /// One depth-wise 3×3 convolution (no bias) per pyramid level.
    pub stages: Vec<Conv2d>,
    /// 1×1 CBR `5·in → out`.
    pub project: Cbr,
}

impl PspModule {
    /// Builds the module `in_channels → out_channels`.
    pub fn new(in_channels: usize, out_channels: usize, device: &Device) -> Self {
        let c = in_channels;
        Self {
            stages: (0..LEVELS)
                .map(|_| conv([c, c], 3, 1, 1, c, ConvInit::Default, device))
                .collect(),
            project: Cbr::new(
                [c * (LEVELS + 1), out_channels],
                1,
                1,
                1,
                ConvInit::Default,
                device,
            ),
        }
    }

    /// # Shapes
    /// - `x`: `[n, in, h, w]`
    /// - output: `[n, out, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let mut parts = vec![x.clone()];
        let mut pooled = x;
        for stage in &self.stages {
            pooled = avg_pool_3s2(pooled); // [n, in, h/2^i, w/2^i]
            let y = crate::ops::conv2d_module(stage, pooled.clone());
            parts.push(bilinear(y, [h, w], true)); // [n, in, h, w]
        }
        self.project.forward_cat(parts) // [n, out, h, w]
    }
}
