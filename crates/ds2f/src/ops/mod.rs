//! Tensor operations with CPU kernels of our own where burn's `flex` backend is slow.
//!
//! Each function here computes exactly what the burn operation of the same name computes, on
//! every device. On the pure-Rust CPU device with autodiff (training on `flex`) it runs as one
//! autodiff operation whose backward pass uses the kernels of this module instead of the
//! backend's defaults; everywhere else (inference, GPU devices, other dtypes) it is the burn
//! operation. docs/performance.md measures the difference.
//!
//! Why hand-written: burn 0.22.1 computes a convolution's weight gradient as a convolution of
//! the transposed input with the transposed output gradient (a kernel as large as the image,
//! run through im2col), five times slower than the forward pass on this CPU, and composes
//! training-mode batch norm from ~25 element-wise passes; no crate supplies these kernels for
//! burn's tensors. The convolution kernels are im2col tiles fed to the `gemm` crate that flex
//! itself uses; batch norm is two passes each way.

mod batch_norm;
mod conv;

pub use batch_norm::batch_norm_module;
pub use conv::{conv2d, conv2d_module};

use burn::tensor::{Bytes, DType, Shape};
use burn_flex::{FlexTensor, Layout};

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
