//! The implicit GEMM's micro-kernels with AVX-512F: an `MR × NR` tile (8 output channels ×
//! 48 pixels) in 24 16-lane registers, masked loads and stores at row and tile ends.
use super::{MR, NR, Out, Store};
use crate::conv::Epilogue;
use std::arch::x86_64::*;

/// The `MR × NR` accumulators `Σ_p A[p, r] · B[p, ·]` over `kc` steps, A packed `kc × MR` and
/// step `p` of B the NR floats at `b(p)`.
///
/// # Safety
/// AVX-512F must be available; `a` must hold `kc·MR` floats and `b(p)` NR floats for `p < kc`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn accumulate(
    kc: usize,
    a: *const f32,
    b: impl Fn(usize) -> *const f32,
) -> [[__m512; 3]; MR] {
    let mut acc = [[_mm512_setzero_ps(); 3]; MR];
    for p in 0..kc {
        // SAFETY (whole block): p < kc keeps the reads inside A and B (the caller's contract).
        unsafe {
            let bp = b(p);
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            let b2 = _mm512_loadu_ps(bp.add(32));
            let ap = a.add(p * MR);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(r));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
                row[2] = _mm512_fmadd_ps(av, b2, row[2]);
            }
        }
    }
    acc
}

/// Writes the lanes `mask` of `value` (accumulators of output row `r`) to `ptr`: stored, or
/// added to what is there, then finished by `finish`.
///
/// # Safety
/// AVX-512F must be available; the masked lanes at `ptr` must be valid (initialised unless
/// `store`). The other lanes are neither read nor written (AVX-512 masked accesses do not fault
/// there), so `ptr` may point outside the buffer for them.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn put(
    ptr: *mut f32,
    mask: __mmask16,
    mut value: __m512,
    r: usize,
    store: bool,
    finish: Option<Epilogue>,
) {
    // SAFETY: the masked lanes are valid (the caller's contract).
    unsafe {
        if !store {
            value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, ptr));
        }
        if let Some(finish) = finish {
            if let Some(shift) = finish.shift {
                value = _mm512_add_ps(value, _mm512_set1_ps(shift[r]));
            }
            if finish.relu {
                value = _mm512_max_ps(value, _mm512_setzero_ps());
            }
        }
        _mm512_mask_storeu_ps(ptr, mask, value);
    }
}

/// The packed micro-kernel with AVX-512 (see `MicroKernels::packed`).
///
/// # Safety
/// As `MicroKernels::packed`, with AVX-512F available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn micro_kernel(kc: usize, a: *const f32, b: *const f32, cols: usize, out: Out) {
    // SAFETY: step p of B is the packed NR floats at p·NR (the caller's contract).
    let acc = unsafe { accumulate(kc, a, |p| b.wrapping_add(p * NR)) };
    for (r, row) in acc.iter().enumerate().take(out.rows) {
        for (v, &value) in row.iter().enumerate() {
            let valid = cols.saturating_sub(v * 16).min(16);
            if valid == 0 {
                break;
            }
            let mask = if valid == 16 {
                0xffff
            } else {
                (1u16 << valid) - 1
            };
            let ptr = out.c.wrapping_add(r * out.ldc + v * 16);
            // SAFETY: the masked lanes lie inside row r's `cols` floats.
            unsafe { put(ptr, mask, value, r, out.store, out.finish) };
        }
    }
}

/// The direct micro-kernel with AVX-512 (see `MicroKernels::direct`).
///
/// # Safety
/// As `MicroKernels::direct`, with AVX-512F available.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn micro_kernel_direct(
    kc: usize,
    a: *const f32,
    b: *const f32,
    offsets: *const usize,
    stores: &[Store],
    out: Out,
) {
    // SAFETY: step p of B is at b + offsets[p] (the caller's contract).
    let acc = unsafe { accumulate(kc, a, |p| b.wrapping_add(*offsets.add(p))) };
    for (r, row) in acc.iter().enumerate().take(out.rows) {
        for s in stores {
            let ptr = out.c.wrapping_add(r * out.ldc).wrapping_offset(s.offset);
            // SAFETY: the masked lanes are valid outputs of row r (the caller's contract).
            unsafe { put(ptr, s.mask, row[s.v], r, out.store, out.finish) };
        }
    }
}
