//! Pixel-wise cross-entropy on class logits, as `torch.nn.CrossEntropyLoss` (mean reduction,
//! optional class weights normalised by the weights of the targets, no 1/C factor), with
//! `ignore_index` for every label outside `0..C` (Cityscapes' 255).
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use super::valid_mask;

/// Cross-entropy over the class axis of `[n, C, h, w]` logits against `[n, h, w]` indices.
#[derive(Debug, Clone, Default)]
pub struct CrossEntropy {
    /// Optional per-class weights (length C).
    pub weights: Option<Vec<f32>>,
}

impl CrossEntropy {
    /// # Shapes
    /// - `logits`: `[n, C, h, w]`
    /// - `target`: `[n, h, w]` class indices; a label outside `0..C` (e.g. 255) is ignored
    /// - output: `[1]` the mean loss over the pixels that are not ignored
    ///
    /// Where every pixel is ignored the loss is 0 (PyTorch returns NaN, which would stop a
    /// training for one crop without labels).
    pub fn forward(&self, logits: Tensor<4>, target: Tensor<3, Int>) -> Tensor<1> {
        let [n, c, h, w] = logits.dims();
        let dtype = logits.dtype();
        let valid = valid_mask(target.clone(), c); // [n, 1, h, w] 1 = labelled
        let index = target
            .mul(valid.clone().int().reshape([n, h, w])) // ignored → class 0, masked below
            .reshape([n, 1, h, w]);
        let valid = valid.cast(dtype);
        let logp = log_softmax(logits, 1); // [n, C, h, w]
        let nll = logp.gather(1, index.clone()).neg().mul(valid.clone()); // [n, 1, h, w]
        match &self.weights {
            None => nll.sum().div(valid.sum().clamp_min(1.0)),
            Some(weights) => {
                assert_eq!(weights.len(), c, "one class weight per class");
                let table = Tensor::<1>::from_floats(weights.as_slice(), &nll.device());
                let per_pixel = table
                    .select(0, index.reshape([n * h * w]))
                    .cast(dtype)
                    .mul(valid.reshape([n * h * w])); // [n·h·w]
                let num = nll.reshape([n * h * w]).mul(per_pixel.clone()).sum();
                num.div(per_pixel.sum().clamp_min(f32::MIN_POSITIVE))
            }
        }
    }
}
