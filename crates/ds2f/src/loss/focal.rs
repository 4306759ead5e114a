//! Focal loss (Lin et al., ICCV 2017) as the reference's `FocalLoss` (`imed_vision/loss/ce.py`,
//! the `--focal` flag, SPEC §2): multi-class softmax, `−α·(1 − p_t)^γ·log p_t` per pixel, the
//! mean over pixels. α is one scalar for every class, not Lin et al.'s α for the positive and
//! 1 − α for the negative class.
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

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
    /// - `target`: `[n, h, w]` class indices in `0..C`
    /// - output: `[1]` the mean loss
    pub fn forward(&self, logits: Tensor<4>, target: Tensor<3, Int>) -> Tensor<1> {
        let [n, _, h, w] = logits.dims();
        assert_eq!(target.dims(), [n, h, w], "focal: target shape");
        let log_pt = log_softmax(logits, 1).gather(1, target.reshape([n, 1, h, w])); // [n, 1, h, w]
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
        focal.mul_scalar(-self.alpha).mean()
    }
}
