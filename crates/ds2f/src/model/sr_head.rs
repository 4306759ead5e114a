//! The SR head (`sr_module` of the reference, ESPCN-like, SPEC §1.1): conv 5×5 → tanh →
//! conv 3×3 → tanh → conv 3×3 to `3·r²` channels → PixelShuffle(r), no biases, no output
//! activation (the output lives in the [−1, 1] image space). With r = 1 it is one 1×1 conv
//! with bias, as the reference. The hidden widths are ESPCN's 64 and 32 in the reference;
//! they are configurable (`model.sr_head_widths`) because at a scaled-down base width they
//! would cost more than the whole U-Net.
use crate::ops::tanh;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{PaddingConfig2d, PixelShuffle, PixelShuffleConfig};
use burn::prelude::*;

/// ESPCN-style SR head: LR features in, HR image out.
#[derive(Module, Debug)]
pub struct SrHead {
    /// 5×5, `in → w1` (reference: 64), no bias (absent when r = 1).
    pub conv1: Option<Conv2d>,
    /// 3×3, `w1 → w2` (reference: 32), no bias (absent when r = 1).
    pub conv2: Option<Conv2d>,
    /// 3×3, `w2 → 3·r²`, no bias; or, when r = 1, 1×1 `in → 3` with bias.
    pub conv3: Conv2d,
    /// PixelShuffle(r): `out[c, y·r+i, x·r+j] = in[c·r² + i·r + j, y, x]`.
    pub shuffle: PixelShuffle,
}

fn conv(i: usize, o: usize, k: usize, bias: bool, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([i, o], [k, k])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(bias)
        .init(device)
}

impl SrHead {
    /// Builds the head for `in_channels` features, hidden `widths` (reference: `[64, 32]`),
    /// `out_channels` image channels (RGB: 3) and rate `upscale`.
    pub fn new(
        in_channels: usize,
        widths: [usize; 2],
        out_channels: usize,
        upscale: usize,
        device: &Device,
    ) -> Self {
        let [w1, w2] = widths;
        let shuffle = PixelShuffleConfig::new(upscale).init();
        if upscale == 1 {
            return Self {
                conv1: None,
                conv2: None,
                conv3: conv(in_channels, out_channels, 1, true, device),
                shuffle,
            };
        }
        Self {
            conv1: Some(conv(in_channels, w1, 5, false, device)),
            conv2: Some(conv(w1, w2, 3, false, device)),
            conv3: conv(w2, out_channels * upscale * upscale, 3, false, device),
            shuffle,
        }
    }

    /// # Shapes
    /// - `x`: `[n, in_channels, h, w]`
    /// - output: `[n, out_channels, r·h, r·w]` image in normalised space
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match (&self.conv1, &self.conv2) {
            (Some(conv1), Some(conv2)) => {
                let x = tanh(crate::ops::conv2d_module(conv1, x)); // [n, w1, h, w]
                let x = tanh(crate::ops::conv2d_module(conv2, x)); // [n, w2, h, w]
                let x = crate::ops::conv2d_module(&self.conv3, x); // [n, 3r², h, w]
                self.shuffle.forward(x) // [n, 3, rh, rw]
            }
            _ => crate::ops::conv2d_module(&self.conv3, x), // [n, 3, h, w]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_shuffle_order_is_the_reference_one() {
        // SPEC §1.1: out[c, y·r + i, x·r + j] = in[c·r² + i·r + j, y, x].
        let device = Device::default();
        let (c, r, h, w) = (3, 2, 2, 3);
        let values: Vec<f32> = (0..c * r * r * h * w).map(|v| v as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [1, c * r * r, h, w]), &device);
        let out = PixelShuffleConfig::new(r).init().forward(x);
        assert_eq!(out.dims(), [1, c, r * h, r * w]);
        let out: Vec<f32> = out.into_data().iter::<f32>().collect();
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    for i in 0..r {
                        for j in 0..r {
                            let src = (((ch * r * r + i * r + j) * h) + y) * w + x;
                            let dst = ((ch * r * h) + y * r + i) * (r * w) + x * r + j;
                            assert_eq!(out[dst], src as f32);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn head_shapes_and_parameter_counts() {
        let device = Device::default();
        let count = |m: &SrHead| crate::model::complexity::trainable_params(m, "");
        // Reference widths at base 64, r = 2: 64·64·25 + 64·32·9 + 32·12·9 (SPEC §1.1).
        let head = SrHead::new(64, [64, 32], 3, 2, &device);
        assert_eq!(count(&head), 124_288);
        // r = 1: one 1×1 conv with bias, 64·3 + 3.
        let plain = SrHead::new(64, [64, 32], 3, 1, &device);
        assert_eq!(count(&plain), 195);
        let x = Tensor::<4>::zeros([2, 64, 5, 7], &device);
        assert_eq!(plain.forward(x.clone()).dims(), [2, 3, 5, 7]);
        let small = SrHead::new(64, [8, 4], 3, 3, &device);
        assert_eq!(small.forward(x).dims(), [2, 3, 15, 21]);
    }
}
