//! Exact GELU with an exact gradient on every device.
//!
//! burn 0.22.1's generic `gelu_backward` differentiates the **tanh approximation** of GELU,
//! not the erf form its forward computes (up to 8.7e-4 off, at x ≈ 2). burn-flex overrides it
//! with the exact derivative, the cubecl GPU backends (wgpu, cuda) do not; PyTorch's
//! `nn.GELU()`, which the reference uses, is exact. So off the CPU, GELU is composed here from
//! `erf`, whose autodiff backward is exact.
use burn::tensor::Tensor;

/// `x · ½(1 + erf(x/√2))`, with its exact derivative in training.
///
/// # Shapes
/// - `x`: any
/// - output: the same
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if super::Route::of(&x).family() == super::Family::Flex {
        // One pass each way, exact (burn-flex's own kernels).
        burn::tensor::activation::gelu(x)
    } else {
        gelu_composed(x)
    }
}

/// GELU composed from `erf` (what [`gelu`] runs off the CPU; public so that tests on the CPU
/// can check its gradient).
///
/// # Shapes
/// - `x`: any
/// - output: the same
pub fn gelu_composed<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let cdf = x
        .clone()
        .mul_scalar(std::f32::consts::FRAC_1_SQRT_2)
        .erf()
        .add_scalar(1.0)
        .mul_scalar(0.5);
    x.mul(cdf)
}
