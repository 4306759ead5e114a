//! Bilinear resizing and max pooling as burn operations: the kernels of
//! `ds2f_kernels::resample` at inference on the `flex` CPU device (burn-flex 0.22.1's are slow
//! there: float64 coordinates per output pixel, a 2-D pool through its 3-D pool with indices),
//! burn's operations where they work, and [`bilinear_separable`] on the GPU devices, whose burn
//! 0.22.1 backends (cubecl: wgpu, cuda) have no bilinear backward pass. Same coordinates and
//! weights as burn's kernels (tested against them).
use burn::backend::{Flex, TensorMetadata};
use burn::prelude::*;
use burn::tensor::module::{interpolate, max_pool2d as burn_max_pool2d};
use burn::tensor::ops::{InterpolateMode, InterpolateOptions, MaxPoolOptions};
use burn_flex::FlexTensor;
use ds2f_kernels::resample as kernels;

use super::{Family, Route, f32_data, f32_tensor};

/// The contiguous `flex` primitive of `x` (callers route it [`Route::Flex`]).
fn plain(x: Tensor<4>) -> FlexTensor {
    x.try_into_primitive::<Flex>()
        .expect("routed: a flex tensor")
        .to_contiguous()
}

/// Bilinear resize to `size` with an explicit `align_corners` (burn's default is `true`,
/// PyTorch's is `false`): at inference on the CPU ds2f's kernel, in training on the CPU and on
/// libtorch burn's `interpolate`, on GPU devices [`bilinear_separable`] (burn 0.22.1's GPU
/// backends have no bilinear backward pass and training there would fail).
///
/// # Shapes
/// - `x`: `[n, c, h, w]`
/// - output: `[n, c, size[0], size[1]]`
pub fn bilinear(x: Tensor<4>, size: [usize; 2], align_corners: bool) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    if [h, w] == size {
        // Both align_corners modes are the identity at the same size.
        return x;
    }
    match Route::of(&x) {
        Route::Flex => resize(plain(x), size, align_corners),
        Route::Burn(Family::Other) => bilinear_separable(x, size, align_corners),
        _ => interpolate(
            x,
            InterpolateOptions::new(InterpolateMode::Bilinear)
                .with_align_corners(align_corners)
                .with_output_size(size),
        ),
    }
}

/// The kernel's bilinear resize of a contiguous `flex` tensor.
fn resize(x: FlexTensor, size: [usize; 2], align_corners: bool) -> Tensor<4> {
    let dims = x.shape().dims::<4>();
    let out = kernels::bilinear(f32_data(&x), dims, size, align_corners);
    Tensor::from_primitive::<Flex>(f32_tensor(out, [dims[0], dims[1], size[0], size[1]]))
}

/// The inference kernel of [`bilinear`] alone, for tests comparing it with burn's: its resize
/// where `x` is routed [`Route::Flex`] (plain `flex`, f32), `None` (nothing done) for every
/// other tensor. Model code calls [`bilinear`].
///
/// # Shapes
/// - `x`: `[n, c, h, w]`
/// - output: `[n, c, size[0], size[1]]`
pub fn bilinear_inference(
    x: &Tensor<4>,
    size: [usize; 2],
    align_corners: bool,
) -> Option<Tensor<4>> {
    (Route::of(x) == Route::Flex).then(|| resize(plain(x.clone()), size, align_corners))
}

/// 2-D max pooling with a square `kernel`, `stride` and `padding` (padding never wins: as
/// burn and PyTorch, windows skip it): ds2f's kernel at inference on the CPU, burn's
/// `max_pool2d` everywhere else.
///
/// # Shapes
/// - `x`: `[n, c, h, w]`
/// - output: `[n, c, (h + 2p − k) / s + 1, (w + 2p − k) / s + 1]`
pub fn max_pool2d(x: Tensor<4>, kernel: usize, stride: usize, padding: usize) -> Tensor<4> {
    match Route::of(&x) {
        Route::Flex => pool(plain(x), kernel, stride, padding),
        _ => burn_max_pool2d(
            x,
            MaxPoolOptions::new([kernel, kernel])
                .with_stride([stride, stride])
                .with_padding([padding, padding]),
        ),
    }
}

/// The kernel's max pooling of a contiguous `flex` tensor.
fn pool(x: FlexTensor, kernel: usize, stride: usize, padding: usize) -> Tensor<4> {
    let dims = x.shape().dims::<4>();
    let out = kernels::max_pool(f32_data(&x), dims, kernel, stride, padding);
    let size = |s: usize| kernels::max_pool_size(s, kernel, stride, padding);
    Tensor::from_primitive::<Flex>(f32_tensor(
        out,
        [dims[0], dims[1], size(dims[2]), size(dims[3])],
    ))
}

/// The inference kernel of [`max_pool2d`] alone, for tests comparing it with burn's: its pool
/// where `x` is routed [`Route::Flex`], `None` for every other tensor. Model code calls
/// [`max_pool2d`].
///
/// # Shapes
/// - `x`: `[n, c, h, w]`
/// - output: `[n, c, (h + 2p − k) / s + 1, (w + 2p − k) / s + 1]`
pub fn max_pool_inference(
    x: &Tensor<4>,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Option<Tensor<4>> {
    (Route::of(x) == Route::Flex).then(|| pool(plain(x.clone()), kernel, stride, padding))
}

/// [`bilinear`] as two 1-D linear interpolations, each two `select`s and a weighted sum: the
/// same numbers as burn's `interpolate` (same source coordinates and weights), from operations
/// every backend can differentiate.
///
/// # Shapes
/// - `x`: `[n, c, h, w]`
/// - output: `[n, c, size[0], size[1]]`
pub fn bilinear_separable(x: Tensor<4>, size: [usize; 2], align_corners: bool) -> Tensor<4> {
    let x = lerp_axis(x, 2, size[0], align_corners); // [n, c, size0, w]
    lerp_axis(x, 3, size[1], align_corners) // [n, c, size0, size1]
}

/// Linear interpolation of `x` along `axis` to `out` samples.
fn lerp_axis(x: Tensor<4>, axis: usize, out: usize, align_corners: bool) -> Tensor<4> {
    let len = x.dims()[axis];
    if len == out {
        return x;
    }
    let device = x.device();
    // Source coordinate of each output sample, as burn-flex and PyTorch compute it.
    let ratio = if align_corners {
        (len as f64 - 1.0) / (out.max(1) - 1).max(1) as f64
    } else {
        len as f64 / out as f64
    };
    let (mut low, mut high, mut weight) = (Vec::new(), Vec::new(), Vec::new());
    for o in 0..out {
        let src = if align_corners {
            o as f64 * ratio
        } else {
            (o as f64 + 0.5) * ratio - 0.5
        };
        let l = (src.floor().max(0.0) as usize).min(len - 1);
        low.push(l as i64);
        high.push((l + 1).min(len - 1) as i64);
        weight.push((src - l as f64).max(0.0) as f32);
    }
    let index = |v: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(v, [out]), &device);
    let mut shape = [1usize; 4];
    shape[axis] = out;
    let weight = Tensor::<1>::from_data(TensorData::new(weight, [out]), &device).reshape(shape);
    let a = x.clone().select(axis, index(low));
    let b = x.select(axis, index(high));
    a.clone() + (b - a) * weight
}
