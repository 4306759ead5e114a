//! The weight gradient's micro-kernel with AVX-512F: an `MR × NR` block of `dW` (8 output × 32
//! input channels) in 16 registers, broadcasting `dY` values and loading two vectors of input
//! channels per pixel.
use super::{MR, Panel};
use std::arch::x86_64::*;

/// The micro-kernel with AVX-512 (see `MicroKernel`).
///
/// # Safety
/// As `MicroKernel`, with AVX-512F available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn micro_kernel(
    a: Panel,
    b: Panel,
    rows: usize,
    len: usize,
    c: *mut f32,
    ldc: usize,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for row in 0..rows {
        // SAFETY (whole block): the caller guarantees every pixel's reads.
        unsafe {
            let mut ap = a.base.add(row * a.row_step);
            let mut bp = b.base.add(row * b.row_step);
            for _ in 0..len {
                let b0 = _mm512_loadu_ps(bp);
                let b1 = _mm512_loadu_ps(bp.add(16));
                for (r, tile) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*ap.add(r));
                    tile[0] = _mm512_fmadd_ps(av, b0, tile[0]);
                    tile[1] = _mm512_fmadd_ps(av, b1, tile[1]);
                }
                ap = ap.add(a.step);
                bp = bp.add(b.step);
            }
        }
    }
    for (r, tile) in acc.iter().enumerate() {
        for (v, &value) in tile.iter().enumerate() {
            // SAFETY: row r of C holds NR floats.
            unsafe {
                let ptr = c.add(r * ldc + v * 16);
                _mm512_storeu_ps(ptr, _mm512_add_ps(value, _mm512_loadu_ps(ptr)));
            }
        }
    }
}
