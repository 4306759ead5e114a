//! Mean squared error, as `torch.nn.MSELoss()`: the SR stream's loss against the HR image in
//! the normalised space (SPEC §2, `MSE(sr, hr)`).
use burn::prelude::*;

/// Mean of `(prediction − target)²` over every element.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mse;

impl Mse {
    /// # Shapes
    /// - `prediction`: any shape, e.g. the SR image `[n, 3, h, w]`
    /// - `target`: the same shape
    /// - output: `[1]` the mean loss
    pub fn forward<const D: usize>(&self, prediction: Tensor<D>, target: Tensor<D>) -> Tensor<1> {
        assert_eq!(prediction.dims(), target.dims(), "MSE: shapes differ");
        prediction.sub(target).square().mean()
    }
}
