//! ds2f's CPU kernels, on raw `f32` slices in NCHW order: no tensor library (burn, tch) here,
//! only `rayon` for the job splits and the `gemm` crate for the portable matrix products.
//!
//! What and why: burn 0.22.1's pure-Rust CPU backend (`flex`) computes a convolution's weight
//! gradient as a convolution with an image-sized kernel through im2col (five times slower than
//! the forward pass), composes training-mode batch norm from ~25 element-wise passes, and
//! recomputes `tanh` in its backward; no crate offers these kernels for burn's tensors. The
//! `ds2f` crate's `ops` module wraps these functions in burn operations (autodiff included);
//! every `unsafe` line of the project's library code is here, so that `ds2f` itself forbids
//! `unsafe`. docs/performance.md measures each kernel.
//!
//! - [`conv`]: forward convolution as an implicit GEMM ([`conv::implicit_gemm`]) or im2col +
//!   `gemm` ([`conv::im2col`]), finished by one [`Epilogue`]; the weight gradient tap by tap
//!   ([`conv::weight_grad`]) or by im2col + `gemm`; the input and bias gradients' helpers.
//! - [`batch_norm`]: training-mode batch norm, two passes each way, ReLU fusable.
//! - [`resample`]: bilinear resizing and max pooling at inference.
//! - [`tanh`]: `tanh` keeping its output for the backward.
//!
//! The SIMD micro-kernels exist per instruction set ([`Isa`]: `avx512.rs`, `avx2.rs`,
//! `scalar.rs` beside each driver); the instruction set is resolved once per operation into
//! function pointers, and every kernel, the scalar one included, adds the same products in the
//! same order, so all give bitwise equal results (tests/every_isa.rs runs every kernel this CPU
//! has against the portable path).
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod aligned;
pub mod batch_norm;
pub mod conv;
mod isa;
pub mod resample;
mod shared;
pub mod tanh;

pub use conv::{Epilogue, Geometry, Kernel, Problem};
pub use isa::Isa;

/// Deterministic values in [-1, 1) for the kernels' tests and benchmarks (no global RNG:
/// tests run in parallel).
#[doc(hidden)]
pub fn test_values(len: usize, seed: u64) -> Vec<f32> {
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
