//! Focal loss (Lin et al., ICCV 2017) as the reference's `FocalLoss` (`imed_vision/loss/ce.py`,
//! the `--focal` flag, SPEC §2): multi-class softmax, `−α·(1 − p_t)^γ·log p_t` per pixel, the
//! mean over pixels. α is one scalar for every class, not Lin et al.'s α for the positive and
//! 1 − α for the negative class.
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use super::valid_mask;

/// Softmax focal loss with a scalar α, mean over pixels.
#[derive(Debug, Clone, Copy)]
pub struct FocalLoss {
    /// Focusing exponent γ. Reference: 2.
    pub gamma: f32,
    /// Scalar weight α. Reference: 0.25.
    pub alpha: f32,
}

impl Default for FocalLoss {
    fn default() -> Self {
        Self {
            gamma: 2.0,
            alpha: 0.25,
        }
    }
}

impl FocalLoss {
    /// # Shapes
    /// - `logits`: `[n, C, h, w]`
    /// - `target`: `[n, h, w]` class indices; a label outside `0..C` (e.g. 255) is ignored
    /// - output: `[1]` the mean loss over the pixels that are not ignored (0 if none is)
    pub fn forward(&self, logits: Tensor<4>, target: Tensor<3, Int>) -> Tensor<1> {
        let [n, c, h, w] = logits.dims();
        assert_eq!(target.dims(), [n, h, w], "focal: target shape");
        let dtype = logits.dtype();
        let valid = valid_mask(target.clone(), c); // [n, 1, h, w] 1 = labelled
        let index = target
            .mul(valid.clone().int().reshape([n, h, w])) // ignored → class 0, masked below
            .reshape([n, 1, h, w]);
        let valid = valid.cast(dtype);
        let log_pt = log_softmax(logits, 1).gather(1, index); // [n, 1, h, w]
        let focal = if self.gamma == 0.0 {
            log_pt // (1 − p_t)⁰ = 1; skipping it keeps the gradient finite at p_t = 1
        } else {
            let modulating = log_pt
                .clone()
                .exp()
                .neg()
                .add_scalar(1.0)
                .clamp_min(0.0)
                .powf_scalar(self.gamma);
            modulating.mul(log_pt)
        };
        focal
            .mul(valid.clone())
            .sum()
            .mul_scalar(-self.alpha)
            .div(valid.sum().clamp_min(1.0))
    }
}
