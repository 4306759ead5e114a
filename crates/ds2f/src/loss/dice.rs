//! Dice losses on softmax probabilities: the reference's per-`(n, c)` (generalised) Dice of
//! `imed_vision/loss/dice.py` and Sudre et al.'s generalised Dice loss (DLMIA 2017,
//! <https://arxiv.org/abs/1707.03237>), the GDice proxy loss of the paper's Table II.
//!
//! The reference's version is not Sudre's: it weights and divides per `(n, c)` and then averages,
//! so with `gdice = true` and `smooth = 1` the weights `1/(Σt)²` shrink numerator and
//! denominator to ≈ `smooth` and the loss to ≈ 0 (SPEC §2). The paper's Table II configuration is
//! not in the reference code; [`DiceVariant::Sudre`], which sums over classes before dividing,
//! is the default here.
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::{class_counts, one_hot, valid_mask};

/// Which Dice formula [`DiceLoss`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum DiceVariant {
    /// `imed_vision` `DiceLoss(smooth, gdice, eps)`: per `(n, c)`,
    /// `w = 1/((Σ t)² + eps)` if `gdice` else 1,
    /// `coef = (2·w·Σ p·t + smooth)/(w·Σ(p + t) + smooth)`; the loss is the mean of `1 − coef`
    /// over `n` and `c`. As in the reference, a pixel whose label is outside `0..C` becomes
    /// class 0 with all-zero logits. The reference trains with `smooth = 1, gdice = true,
    /// eps = 1e-9` where it uses GDice at all.
    Reference {
        /// Added to numerator and denominator.
        smooth: f32,
        /// Whether to weight by `1/((Σ t)² + eps)`.
        gdice: bool,
        /// Keeps the weight finite for an absent class.
        eps: f32,
    },
    /// Sudre et al.'s generalised Dice loss over the whole batch:
    /// `w_c = 1/(Σ_{n, pixels} t_c)²`,
    /// `loss = 1 − 2·Σ_c w_c Σ p·t / Σ_c w_c Σ (p + t)`. A class absent from the batch gets the
    /// largest weight of the present classes (as MONAI's `GeneralizedDiceLoss`) instead of an
    /// infinite one; pixels whose label is outside `0..C` are left out.
    #[default]
    Sudre,
}

/// Dice loss on the softmax of `[n, C, h, w]` logits against class indices.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiceLoss {
    /// The formula (default: [`DiceVariant::Sudre`]).
    pub variant: DiceVariant,
}

impl DiceLoss {
    /// A Dice loss computing `variant`.
    pub fn new(variant: DiceVariant) -> Self {
        Self { variant }
    }

    /// # Shapes
    /// - `logits`: `[n, C, h, w]` with `C ≥ 2`
    /// - `target`: `[n, h, w]` class indices
    /// - output: `[1]` the loss
    pub fn forward(&self, logits: Tensor<4>, target: Tensor<3, Int>) -> Tensor<1> {
        let [n, c, h, w] = logits.dims();
        assert!(c >= 2, "Dice: needs C ≥ 2 class logits");
        assert_eq!(target.dims(), [n, h, w], "Dice: target shape");
        match self.variant {
            DiceVariant::Reference { smooth, gdice, eps } => {
                reference(logits, target, smooth, gdice, eps)
            }
            DiceVariant::Sudre => sudre(logits, target),
        }
    }
}

fn reference(
    logits: Tensor<4>,
    target: Tensor<3, Int>,
    smooth: f32,
    gdice: bool,
    eps: f32,
) -> Tensor<1> {
    let [n, c, h, w] = logits.dims();
    let dtype = logits.dtype();
    let valid = valid_mask(target.clone(), c); // [n, 1, h, w]
    let target = target.mul(valid.clone().squeeze_dim::<3>(1).int()); // ignored → class 0
    let probs = softmax(logits.mul(valid.cast(dtype)), 1).reshape([n, c, h * w]);
    let labels = one_hot(target, c).cast(dtype).reshape([n, c, h * w]);
    let inter = probs.clone().mul(labels.clone()).sum_dim(2); // [n, C, 1]
    let union = probs.add(labels.clone()).sum_dim(2); // [n, C, 1]
    let (inter, union) = if gdice {
        let weight = labels.sum_dim(2).square().add_scalar(eps).recip(); // [n, C, 1]
        (inter.mul(weight.clone()), union.mul(weight))
    } else {
        (inter, union)
    };
    let coef = inter
        .mul_scalar(2.0)
        .add_scalar(smooth)
        .div(union.add_scalar(smooth));
    coef.neg().add_scalar(1.0).mean()
}

fn sudre(logits: Tensor<4>, target: Tensor<3, Int>) -> Tensor<1> {
    let [_, c, _, _] = logits.dims();
    let dtype = logits.dtype();
    let device = logits.device();
    let valid = valid_mask(target.clone(), c).cast(dtype); // [n, 1, h, w]
    let probs = softmax(logits, 1).mul(valid); // [n, C, h, w]
    let labels = one_hot(target.clone(), c).cast(dtype); // [n, C, h, w]
    let weights = sudre_weights(&class_counts(target, c));
    let weights = Tensor::<1>::from_floats(weights.as_slice(), &device)
        .cast(dtype)
        .reshape([1, c, 1, 1]);
    let inter = probs.clone().mul(labels.clone()).mul(weights.clone()).sum();
    let total = probs.add(labels).mul(weights).sum();
    inter.mul_scalar(2.0).div(total).neg().add_scalar(1.0)
}

/// `1/count²` per class; an absent class gets the largest weight of the present ones, and
/// every class weight 1 if none is present.
fn sudre_weights(counts: &[u64]) -> Vec<f32> {
    let inverse: Vec<Option<f64>> = counts
        .iter()
        .map(|&k| (k > 0).then(|| 1.0 / (k as f64 * k as f64)))
        .collect();
    let largest = inverse
        .iter()
        .flatten()
        .copied()
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    inverse
        .into_iter()
        .map(|v| v.or(largest).unwrap_or(1.0) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::sudre_weights;

    #[test]
    fn absent_class_takes_the_largest_present_weight() {
        assert_eq!(sudre_weights(&[2, 0, 4]), vec![0.25, 0.25, 0.0625]);
        assert_eq!(sudre_weights(&[0, 0]), vec![1.0, 1.0]);
    }
}
