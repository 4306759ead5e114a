//! The weight gradient's micro-kernel in portable Rust, for CPUs without AVX-512 or AVX2 and to
//! test the driver everywhere: each output the same chain of fused multiply-adds
//! (`f32::mul_add`) in the same order as the SIMD kernels, so all give bitwise equal results.
use super::{MR, NR, Panel};

/// The micro-kernel in portable Rust (see `MicroKernel`).
///
/// # Safety
/// As `MicroKernel`.
pub(super) unsafe fn micro_kernel(
    a: Panel,
    b: Panel,
    rows: usize,
    len: usize,
    c: *mut f32,
    ldc: usize,
) {
    let mut acc = [[0.0f32; NR]; MR];
    for row in 0..rows {
        for p in 0..len {
            // SAFETY: every pixel holds MR floats of A and NR of B (the caller's contract).
            let (ap, bp) = unsafe {
                (
                    std::slice::from_raw_parts(a.base.add(row * a.row_step + p * a.step), MR),
                    std::slice::from_raw_parts(b.base.add(row * b.row_step + p * b.step), NR),
                )
            };
            for (tile, &av) in acc.iter_mut().zip(ap) {
                for (t, &bv) in tile.iter_mut().zip(bp) {
                    *t = av.mul_add(bv, *t);
                }
            }
        }
    }
    for (r, tile) in acc.iter().enumerate() {
        // SAFETY: row r of C holds NR floats (the caller's contract).
        let dst = unsafe { std::slice::from_raw_parts_mut(c.add(r * ldc), NR) };
        for (d, &v) in dst.iter_mut().zip(tile) {
            *d += v;
        }
    }
}
