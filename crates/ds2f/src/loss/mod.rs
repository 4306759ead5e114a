//! Training losses. Each loss is its own small type with a `forward` that returns the scalar
//! loss as a `[1]` tensor, differentiable on the autodiff backend.
//!
//! The DS2F recipe of the reference code is
//! `CE(out, y) + MSE(sr, hr) + SSIM(fusion_sr, hr) + RMI(fusion_seg, y)`, every weight 1
//! (SPEC §2); the other losses are the alternatives of the reference scripts and baselines.
pub mod cbce;
pub mod ce;
pub mod dice;
pub mod fa;
pub mod focal;
pub mod mse;
pub mod rmi;
pub mod ssim;

pub use cbce::ClassBalancedCe;
pub use ce::CrossEntropy;
pub use dice::{DiceLoss, DiceVariant};
pub use fa::{FaLoss, FaVariant};
pub use focal::FocalLoss;
pub use mse::Mse;
pub use rmi::{RmiLoss, RmiParts};
pub use ssim::SsimLoss;

use burn::prelude::*;

/// One-hot encoding of `[n, h, w]` class indices as `[n, C, h, w]` floats. A pixel whose label
/// lies outside `0..C` (an ignore label) gets an all-zero vector.
pub(crate) fn one_hot(target: Tensor<3, Int>, num_classes: usize) -> Tensor<4> {
    let planes = (0..num_classes)
        .map(|c| {
            target
                .clone()
                .equal_elem(c as i64)
                .float()
                .unsqueeze_dim::<4>(1)
        })
        .collect();
    Tensor::cat(planes, 1)
}

/// `[n, 1, h, w]` mask: 1 where the label is a class in `0..C`, 0 where it is an ignore label.
pub(crate) fn valid_mask(target: Tensor<3, Int>, num_classes: usize) -> Tensor<4> {
    let inside = target
        .clone()
        .greater_equal_elem(0)
        .float()
        .mul(target.lower_elem(num_classes as i64).float());
    inside.unsqueeze_dim(1)
}

/// Number of pixels of each class in `0..C` over the whole batch (read back to the host).
pub(crate) fn class_counts(target: Tensor<3, Int>, num_classes: usize) -> Vec<u64> {
    (0..num_classes)
        .map(|c| {
            let count = target
                .clone()
                .equal_elem(c as i64)
                .int()
                .sum()
                .into_scalar::<i64>();
            count.max(0) as u64
        })
        .collect()
}
