//! The reference U-Net (SPEC §1.1): encoder with four 3×3/stride-2 pooled stages and a
//! 16×-base bottleneck, and a decoder of four bilinear (align_corners = true) up-sampling
//! stages. Any input size works: each up-sampling targets its skip's exact size.
use burn::prelude::*;

use super::blocks::{ConvBnRelu, ConvBnReluConfig, DoubleConv, max_pool_3s2};

/// An encoder stage: a double conv whose output is the skip, then the 3×3/s2 pool.
#[derive(Module, Debug)]
pub struct Down {
    /// The double conv.
    pub conv: DoubleConv,
}

/// The U-Net encoder (shared by the segmentation and SR streams in DS2F).
#[derive(Module, Debug)]
pub struct UnetEncoder {
    /// `3 → b` at LR.
    pub down1: Down,
    /// `b → 2b` at LR/2.
    pub down2: Down,
    /// `2b → 4b` at LR/4.
    pub down3: Down,
    /// `4b → 8b` at LR/8.
    pub down4: Down,
    /// Bottleneck `8b → 16b` at LR/16, no pool.
    pub down5: DoubleConv,
}

/// The encoder's outputs: the four skips (pre-pool) and the bottleneck.
#[derive(Debug, Clone)]
pub struct EncoderFeatures {
    /// Skips `[f1 (b, LR), f2 (2b, LR/2), f3 (4b, LR/4), f4 (8b, LR/8)]`.
    pub skips: [Tensor<4>; 4],
    /// Bottleneck, `16b` channels at LR/16.
    pub bottom: Tensor<4>,
}

impl UnetEncoder {
    /// Builds the encoder for `in_channels` input channels and base width `base`.
    pub fn new(in_channels: usize, base: usize, device: &Device) -> Self {
        let down = |i, o| Down {
            conv: DoubleConv::new(i, o, device),
        };
        Self {
            down1: down(in_channels, base),
            down2: down(base, 2 * base),
            down3: down(2 * base, 4 * base),
            down4: down(4 * base, 8 * base),
            down5: DoubleConv::new(8 * base, 16 * base, device),
        }
    }

    /// # Shapes
    /// - `x`: `[n, in_channels, h, w]`
    /// - skips: `[n, b·2^k, ceil(h/2^k), ceil(w/2^k)]` for k = 0..4; bottom: `[n, 16b, ceil(h/16), ceil(w/16)]`
    pub fn forward(&self, x: Tensor<4>) -> EncoderFeatures {
        let f1 = self.down1.conv.forward(x); // [n, b, h, w]
        let f2 = self.down2.conv.forward(max_pool_3s2(f1.clone())); // [n, 2b, h/2, w/2]
        let f3 = self.down3.conv.forward(max_pool_3s2(f2.clone())); // [n, 4b, h/4, w/4]
        let f4 = self.down4.conv.forward(max_pool_3s2(f3.clone())); // [n, 8b, h/8, w/8]
        let bottom = self.down5.forward(max_pool_3s2(f4.clone())); // [n, 16b, h/16, w/16]
        EncoderFeatures {
            skips: [f1, f2, f3, f4],
            bottom,
        }
    }
}

/// A decoder stage (`Upsample` of the reference): bilinear to the skip's size
/// (align_corners = true), 1×1 conv + BN + ReLU, concat with the skip, double conv.
#[derive(Module, Debug)]
pub struct Up {
    /// 1×1 conv + BN + ReLU, `in1 → out`.
    pub reduce: ConvBnRelu,
    /// Double conv over `[up, skip]`, `out + in2 → out`.
    pub conv: DoubleConv,
}

impl Up {
    /// Builds a stage taking `in1` channels from below and `in2` from the skip.
    pub fn new(in1: usize, in2: usize, out: usize, device: &Device) -> Self {
        Self {
            reduce: ConvBnReluConfig::new(in1, out).init(device),
            conv: DoubleConv::new(out + in2, out, device),
        }
    }

    /// # Shapes
    /// - `x`: `[n, in1, h', w']`, `skip`: `[n, in2, h, w]`
    /// - output: `[n, out, h, w]`
    pub fn forward(&self, x: Tensor<4>, skip: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = skip.dims();
        let up = bilinear(x, [h, w], true); // [n, in1, h, w]
        let up = self.reduce.forward(up); // [n, out, h, w]
        self.conv.forward_cat(vec![up, skip]) // [n, out, h, w]
    }
}

/// The U-Net decoder. DS2F's SR decoder is a second instance with its own weights.
#[derive(Module, Debug)]
pub struct UnetDecoder {
    /// `16b (+8b skip) → 8b` at LR/8.
    pub up6: Up,
    /// `8b (+4b) → 4b` at LR/4.
    pub up7: Up,
    /// `4b (+2b) → 2b` at LR/2.
    pub up8: Up,
    /// `2b (+b) → b` at LR.
    pub up9: Up,
}

impl UnetDecoder {
    /// Builds the decoder for base width `base`.
    pub fn new(base: usize, device: &Device) -> Self {
        Self {
            up6: Up::new(16 * base, 8 * base, 8 * base, device),
            up7: Up::new(8 * base, 4 * base, 4 * base, device),
            up8: Up::new(4 * base, 2 * base, 2 * base, device),
            up9: Up::new(2 * base, base, base, device),
        }
    }

    /// # Shapes
    /// - `features`: as [`UnetEncoder::forward`] returns them
    /// - output: `[n, b, h, w]` at the LR input size (F_seg or F_sr of the paper)
    pub fn forward(&self, features: &EncoderFeatures) -> Tensor<4> {
        let [_, _, _, up9] = self.forward_levels(features);
        up9
    }

    /// Every stage's output `[up6, up7, up8, up9]` (CogSeg pulls the seg and SR decoders
    /// together at each level).
    ///
    /// # Shapes
    /// - output: `[n, 8b, h/8, w/8]`, `[n, 4b, h/4, w/4]`, `[n, 2b, h/2, w/2]`, `[n, b, h, w]`
    pub fn forward_levels(&self, features: &EncoderFeatures) -> [Tensor<4>; 4] {
        let [f1, f2, f3, f4] = features.skips.clone();
        let up6 = self.up6.forward(features.bottom.clone(), f4); // [n, 8b, h/8, w/8]
        let up7 = self.up7.forward(up6.clone(), f3); // [n, 4b, h/4, w/4]
        let up8 = self.up8.forward(up7.clone(), f2); // [n, 2b, h/2, w/2]
        let up9 = self.up9.forward(up8.clone(), f1); // [n, b, h, w]
        [up6, up7, up8, up9]
    }
}

/// Bilinear resize to `size` with an explicit `align_corners` (burn's default is `true`,
/// PyTorch's is `false`; every call site states which one the reference uses): the operation
/// [`crate::ops::bilinear`], which picks the kernel for the device.
///
/// # Shapes
/// - `x`: `[n, c, h, w]`
/// - output: `[n, c, size[0], size[1]]`
pub fn bilinear(x: Tensor<4>, size: [usize; 2], align_corners: bool) -> Tensor<4> {
    crate::ops::bilinear(x, size, align_corners)
}

pub use crate::ops::bilinear_separable;
