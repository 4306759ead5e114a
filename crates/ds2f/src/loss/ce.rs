//! Pixel-wise cross-entropy on class logits, as `torch.nn.CrossEntropyLoss` (mean reduction,
//! optional class weights normalised by the weights of the targets, no 1/C factor).
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Cross-entropy over the class axis of `[n, C, h, w]` logits against `[n, h, w]` indices.
#[derive(Debug, Clone, Default)]
pub struct CrossEntropy {
    /// Optional per-class weights (length C).
    pub weights: Option<Vec<f32>>,
}

impl CrossEntropy {
    /// # Shapes
    /// - `logits`: `[n, C, h, w]`
    /// - `target`: `[n, h, w]` class indices in `0..C`
    /// - output: `[1]` the mean loss
    pub fn forward(&self, logits: Tensor<4>, target: Tensor<3, Int>) -> Tensor<1> {
        let [n, c, h, w] = logits.dims();
        let logp = log_softmax(logits, 1); // [n, C, h, w]
        let index = target.reshape([n, 1, h, w]);
        let nll = logp.gather(1, index.clone()).neg(); // [n, 1, h, w]
        match &self.weights {
            None => nll.mean(),
            Some(weights) => {
                assert_eq!(weights.len(), c, "one class weight per class");
                let table = Tensor::<1>::from_floats(weights.as_slice(), &nll.device());
                let per_pixel = table.select(0, index.reshape([n * h * w])); // [n·h·w]
                let num = nll.reshape([n * h * w]).mul(per_pixel.clone()).sum();
                num.div(per_pixel.sum())
            }
        }
    }
}
