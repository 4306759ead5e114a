//! Tensor operations with CPU kernels of our own where burn's `flex` backend is slow.
//!
//! Each function here computes what the burn operation(s) it names compute, on every device
//! (up to float rounding). On the pure-Rust CPU device with autodiff (training on `flex`) a
//! convolution or batch norm runs as one autodiff operation whose passes use the kernels of
//! this module; on `flex` without autodiff (inference) the convolution uses the same forward
//! kernel, a convolution + batch norm (+ ReLU) is one fused kernel ([`conv_bn`]), and bilinear
//! resizing and max pooling have kernels of their own; everywhere else (GPU devices, other
//! dtypes) it is the burn operation. When training on the libtorch device (`tch` feature), a
//! convolution or batch norm is one operation differentiated by libtorch's own kernels
//! ([`libtorch`]). docs/performance.md measures the difference.
//!
//! Why hand-written: burn 0.22.1 computes a convolution's weight gradient as a convolution of
//! the transposed input with the transposed output gradient (a kernel as large as the image,
//! run through im2col), five times slower than the forward pass on this CPU, and composes
//! training-mode batch norm from ~25 element-wise passes; no crate supplies these kernels for
//! burn's tensors. The forward convolution is an implicit GEMM with an AVX-512 (or AVX2 + FMA,
//! `avx2`) micro-kernel (`implicit_gemm`, reading stride-1 inputs from padded row copies
//! without packing patches) on CPUs that have it and large enough images, else im2col tiles
//! fed to the `gemm` crate that flex itself uses; the weight gradient is a tap-by-tap AVX-512
//! (or AVX2) kernel on channels-last copies (`weight_grad`), else im2col + `gemm`; batch norm
//! is two passes each way; `tanh` keeps its output for the backward instead of recomputing it.

mod aligned;
#[cfg(target_arch = "x86_64")]
mod avx2;
mod batch_norm;
mod conv;
mod conv_bn;
mod gelu;
mod implicit_gemm;
#[cfg(feature = "tch")]
mod libtorch;
mod resample;
mod tanh;
mod weight_grad;

pub use batch_norm::{batch_norm_act, batch_norm_module};
pub use conv::{conv2d, conv2d_module};
pub use conv_bn::{Activation, conv_bn, conv_bn_cat};
pub use gelu::{gelu, gelu_composed};
pub use resample::{bilinear_inference, max_pool_inference};
pub use tanh::tanh;

use burn::tensor::{Bytes, DType, Shape};
use burn_flex::{FlexTensor, Layout};

/// Whether `x` lives on the pure-Rust CPU device (`flex`, with or without autodiff).
pub fn on_flex<const D: usize>(x: &burn::tensor::Tensor<D>) -> bool {
    use burn::backend::DispatchDevice;
    match x.device().as_dispatch() {
        DispatchDevice::Flex(_) => true,
        DispatchDevice::Autodiff(inner) => matches!(**inner, DispatchDevice::Flex(_)),
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// Whether `x` lives on the libtorch device (`tch` feature, with or without autodiff): burn-tch
/// runs bilinear resizing forward and backward with PyTorch's own kernels.
pub fn on_libtorch<const D: usize>(#[allow(unused_variables)] x: &burn::tensor::Tensor<D>) -> bool {
    #[cfg(feature = "tch")]
    {
        use burn::backend::DispatchDevice;
        match x.device().as_dispatch() {
            DispatchDevice::LibTorch(_) => true,
            DispatchDevice::Autodiff(inner) => matches!(**inner, DispatchDevice::LibTorch(_)),
            _ => false,
        }
    }
    #[cfg(not(feature = "tch"))]
    false
}

/// A contiguous f32 `flex` tensor holding `values`.
fn f32_tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape.into()),
        DType::F32,
    )
}

/// The values of a contiguous f32 `flex` tensor (callers make it contiguous first).
fn f32_data(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

/// Deterministic values in [-1, 1) for the kernels' tests (no global RNG: tests run in
/// parallel).
#[cfg(test)]
fn test_values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}
