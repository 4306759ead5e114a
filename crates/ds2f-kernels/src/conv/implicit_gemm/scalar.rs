//! The implicit GEMM's micro-kernels in portable Rust, for CPUs without AVX-512 or AVX2 and to
//! test the drivers everywhere: the same tile, each output the same chain of fused
//! multiply-adds (`f32::mul_add`, one rounding, as `vfmadd`) in the same order, and the same
//! finishing, as the SIMD kernels, so all give bitwise equal results. Slow (`mul_add` is a
//! library call without FMA hardware); [`crate::Kernel::Auto`] never picks it.
use super::{MR, NR, Out, Store};
use crate::conv::Epilogue;

/// The `MR × NR` tile `Σ_p A[p, r] · B[p, q]` over `kc` steps for pixels `q < cols`, A packed
/// `kc × MR` and step `p` of B the NR floats at `b(p)`.
///
/// # Safety
/// `a` must hold `kc·MR` floats and `b(p)` at least `cols` floats for `p < kc`.
unsafe fn accumulate(
    kc: usize,
    a: *const f32,
    b: impl Fn(usize) -> *const f32,
    cols: usize,
) -> [[f32; NR]; MR] {
    let mut acc = [[0.0f32; NR]; MR];
    for p in 0..kc {
        // SAFETY: p < kc and q < cols keep the reads inside A and B (the caller's contract).
        let (ap, bp) = unsafe {
            (
                std::slice::from_raw_parts(a.add(p * MR), MR),
                std::slice::from_raw_parts(b(p), cols),
            )
        };
        for (row, &av) in acc.iter_mut().zip(ap) {
            for (c, &bv) in row.iter_mut().zip(bp) {
                *c = av.mul_add(bv, *c);
            }
        }
    }
    acc
}

/// Writes `value` (output row `r`) to `ptr`: stored, or added to what is there, then finished
/// by `finish`, as the SIMD kernels' `put` does lane by lane.
///
/// # Safety
/// `ptr` must be valid (initialised unless `store`).
#[inline]
unsafe fn put(ptr: *mut f32, mut value: f32, r: usize, store: bool, finish: Option<Epilogue>) {
    // SAFETY: the caller's contract.
    unsafe {
        if !store {
            value += *ptr;
        }
        if let Some(finish) = finish {
            if let Some(shift) = finish.shift {
                value += shift[r];
            }
            if finish.relu {
                // As `vmaxps(v, 0)`: 0 unless v > 0 (NaN and −0 included).
                value = if value > 0.0 { value } else { 0.0 };
            }
        }
        *ptr = value;
    }
}

/// The packed micro-kernel in portable Rust (see `MicroKernels::packed`).
///
/// # Safety
/// As `MicroKernels::packed`.
pub(super) unsafe fn micro_kernel(kc: usize, a: *const f32, b: *const f32, cols: usize, out: Out) {
    // SAFETY: step p of B is the packed NR ≥ cols floats at p·NR (the caller's contract).
    let acc = unsafe { accumulate(kc, a, |p| b.wrapping_add(p * NR), cols) };
    for (r, row) in acc.iter().enumerate().take(out.rows) {
        for (q, &value) in row.iter().enumerate().take(cols) {
            // SAFETY: (r, q) lies inside row r's `cols` floats (the caller's contract).
            unsafe {
                let ptr = out.c.add(r * out.ldc + q);
                put(ptr, value, r, out.store, out.finish);
            }
        }
    }
}

/// The direct micro-kernel in portable Rust (see `MicroKernels::direct`).
///
/// # Safety
/// As `MicroKernels::direct`.
pub(super) unsafe fn micro_kernel_direct(
    kc: usize,
    a: *const f32,
    b: *const f32,
    offsets: *const usize,
    stores: &[Store],
    out: Out,
) {
    // SAFETY: step p of B is the NR floats at b + offsets[p] (the caller's contract).
    let acc = unsafe { accumulate(kc, a, |p| b.wrapping_add(*offsets.add(p)), NR) };
    for (r, row) in acc.iter().enumerate().take(out.rows) {
        let c_row = out.c.wrapping_add(r * out.ldc);
        for s in stores {
            for lane in (0..16).filter(|l| s.mask & (1 << l) != 0) {
                let value = row[16 * s.v + lane];
                // SAFETY: the lanes in the mask are valid outputs of row r (the caller's
                // contract).
                unsafe {
                    let ptr = c_row.wrapping_offset(s.offset + lane as isize);
                    put(ptr, value, r, out.store, out.finish);
                }
            }
        }
    }
}
