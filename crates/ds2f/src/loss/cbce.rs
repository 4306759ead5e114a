//! Class-balanced cross-entropy (Cui et al., CVPR 2019, "effective number of samples") as the
//! reference's `CBCE` (`imed_vision/loss/ce.py`): the main segmentation loss on DDR and for the
//! `--cbce` flag (SPEC §2).
use burn::prelude::*;

use super::{CrossEntropy, class_counts};

/// Cross-entropy with per-batch class weights `w_c = (1 − β)/(1 − β^{n_c})`, `n_c` the number of
/// pixels of class `c` in the batch, reduced as torch's weighted mean
/// (`Σ w_{y} nll / Σ w_{y}`).
///
/// A class absent from the batch (`n_c = 0`, an infinite weight in the reference) gets weight 0;
/// no pixel uses it, so the value is the reference's.
#[derive(Debug, Clone, Copy)]
pub struct ClassBalancedCe {
    /// β of the effective number of samples. Reference: 0.9999.
    pub beta: f64,
}

impl Default for ClassBalancedCe {
    fn default() -> Self {
        Self { beta: 0.9999 }
    }
}

impl ClassBalancedCe {
    /// The class weights for these per-class pixel counts.
    pub fn weights(&self, counts: &[u64]) -> Vec<f32> {
        counts
            .iter()
            .map(|&k| {
                if k == 0 {
                    0.0
                } else {
                    ((1.0 - self.beta) / (1.0 - self.beta.powf(k as f64))) as f32
                }
            })
            .collect()
    }

    /// # Shapes
    /// - `logits`: `[n, C, h, w]`
    /// - `target`: `[n, h, w]` class indices in `0..C`
    /// - output: `[1]` the loss
    pub fn forward(&self, logits: Tensor<4>, target: Tensor<3, Int>) -> Tensor<1> {
        let [_, c, _, _] = logits.dims();
        let weights = self.weights(&class_counts(target.clone(), c));
        CrossEntropy {
            weights: Some(weights),
        }
        .forward(logits, target)
    }
}
