//! The reference U-Net (SPEC §1.1): encoder with four 3×3/stride-2 pooled stages and a
//! 16×-base bottleneck, and a decoder of four bilinear (align_corners = true) up-sampling
//! stages. Any input size works: each up-sampling targets its skip's exact size.
use burn::prelude::*;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

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
/// PyTorch's is `false`; every call site states which one the reference uses).
///
/// On the CPU and on libtorch this is burn's `interpolate` (at inference on the CPU ds2f's
/// faster kernel with the same coordinates); on other devices [`bilinear_separable`], because
/// burn 0.22.1's GPU backends (cubecl: wgpu, cuda) have no bilinear backward pass and training
/// there would fail.
pub fn bilinear(x: Tensor<4>, size: [usize; 2], align_corners: bool) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if [h, w] == size {
        // Both align_corners modes are the identity at the same size.
        return x;
    }
    if !crate::ops::on_flex(&x) && !crate::ops::on_libtorch(&x) {
        return bilinear_separable(x, size, align_corners);
    }
    if let Some(y) = crate::ops::bilinear_inference(&x, size, align_corners) {
        return y;
    }
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(align_corners)
            .with_output_size(size),
    )
}

/// [`bilinear`] as two 1-D linear interpolations, each two `select`s and a weighted sum: the
/// same numbers as burn's `interpolate` (same source coordinates and weights), from operations
/// every backend can differentiate.
///
/// # Shapes
/// - `x`: `[n, c, h, w]`
/// - output: `[n, c, size[0], size[1]]`
pub fn bilinear_separable(x: Tensor<4>, size: [usize; 2], align_corners: bool) -> Tensor<4> {
    let x = lerp_axis(x, 2, size[0], align_corners); // [n, c, size0, w]
    lerp_axis(x, 3, size[1], align_corners) // [n, c, size0, size1]
}

/// Linear interpolation of `x` along `axis` to `out` samples.
fn lerp_axis(x: Tensor<4>, axis: usize, out: usize, align_corners: bool) -> Tensor<4> {
    let len = x.dims()[axis];
    if len == out {
        return x;
    }
    let device = x.device();
    // Source coordinate of each output sample, as burn-flex and PyTorch compute it.
    let ratio = if align_corners {
        (len as f64 - 1.0) / (out.max(1) - 1).max(1) as f64
    } else {
        len as f64 / out as f64
    };
    let (mut low, mut high, mut weight) = (Vec::new(), Vec::new(), Vec::new());
    for o in 0..out {
        let src = if align_corners {
            o as f64 * ratio
        } else {
            (o as f64 + 0.5) * ratio - 0.5
        };
        let l = (src.floor().max(0.0) as usize).min(len - 1);
        low.push(l as i64);
        high.push((l + 1).min(len - 1) as i64);
        weight.push((src - l as f64).max(0.0) as f32);
    }
    let index = |v: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(v, [out]), &device);
    let mut shape = [1usize; 4];
    shape[axis] = out;
    let weight = Tensor::<1>::from_data(TensorData::new(weight, [out]), &device).reshape(shape);
    let a = x.clone().select(axis, index(low));
    let b = x.select(axis, index(high));
    a.clone() + (b - a) * weight
}
