//! AVX2 + FMA versions of the convolution micro-kernels, for x86-64 CPUs without AVX-512 (AMD
//! up to Zen 3, Intel's client cores since Alder Lake): most laptops, and some days this
//! project's own development and CI machines.
//!
//! They keep the AVX-512 kernels' data layouts (packed weights, packed patches, padded row
//! copies, masked stores, channels-last copies) and compute each AVX-512 tile in passes that
//! fit AVX2's sixteen 8-lane registers:
//! - the forward tile of 8 output channels × 48 pixels (this file) in four
//!   4 × 24 passes (12 accumulators; 3 loads and 4 broadcasts per reduction step) into a tile
//!   buffer, whose rows are then put in place as the AVX-512 kernel puts its registers;
//! - the weight gradient's tile of 8 output × 32 input channels (`weight_grad/avx2.rs`) in two
//!   4 × 24 passes and one 8 × 8 pass.
//!
//! Passes with fewer accumulators (4 × 16: 8) left the two FMA units waiting on their latency
//! and ran slower than the `gemm` crate. With 12 accumulators the 16 registers are all taken,
//! and the compiler kept some on the stack: the forward pass holds them in named variables
//! (enough there), the weight gradient's pass is written in assembly.
//!
//! Every output is the same chain of fused multiply-adds, in the same order, as in the AVX-512
//! kernels, so the two instruction sets give bitwise equal results (the kernels' tests compare
//! them wherever AVX-512 runs). AVX2 has masked loads and stores, but they are slow on AMD
//! before Zen 4, so partial vectors (row and tile ends) go through a scalar loop instead.
use super::{MR, NR, Out, Store};
use crate::conv::Epilogue;
use std::arch::x86_64::*;

/// Output pixels per pass of the forward tile (three 8-float vectors).
const PIXELS: usize = 24;

/// A forward tile, `MR` output channels × `NR` pixels, row-major.
type Tile = [[f32; NR]; MR];

/// The tile `Σ_p A[p, r] · B[p, q]` over `kc` steps for pixels `q < passes·PIXELS`: A's step
/// `p` is the [`MR`] floats at `a + p·MR`, B's the `NR` floats at `b(p)`. Each pass keeps 4
/// output channels × 24 pixels in 12 registers (3 loads and 4 broadcasts per step; named
/// variables rather than an array, with which the compiler kept one on the stack).
///
/// # Safety
/// AVX2 and FMA must be available; `a` must hold `kc·MR` floats and `b(p)` `passes·PIXELS ≤
/// NR` floats for `p < kc`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile(
    kc: usize,
    a: *const f32,
    b: impl Fn(usize) -> *const f32,
    passes: usize,
    out: &mut Tile,
) {
    for pass in 0..passes {
        let q0 = pass * PIXELS;
        // Both row halves of a pixel range in a row: the range's B steps then come from L1.
        for r0 in [0, MR / 2] {
            let z = _mm256_setzero_ps();
            let (mut c00, mut c01, mut c02) = (z, z, z);
            let (mut c10, mut c11, mut c12) = (z, z, z);
            let (mut c20, mut c21, mut c22) = (z, z, z);
            let (mut c30, mut c31, mut c32) = (z, z, z);
            for p in 0..kc {
                // SAFETY (whole block): p < kc and q0 + PIXELS ≤ passes·PIXELS keep the reads
                // inside A and B (the caller's contract).
                unsafe {
                    let bp = b(p).add(q0);
                    let bs = [
                        _mm256_loadu_ps(bp),
                        _mm256_loadu_ps(bp.add(8)),
                        _mm256_loadu_ps(bp.add(16)),
                    ];
                    let ap = a.add(p * MR + r0);
                    // Row r's three accumulators += A[p, r0 + r] · the three vectors of B.
                    macro_rules! row {
                        ($r:expr, $c0:ident, $c1:ident, $c2:ident) => {
                            let av = _mm256_broadcast_ss(&*ap.add($r));
                            $c0 = _mm256_fmadd_ps(av, bs[0], $c0);
                            $c1 = _mm256_fmadd_ps(av, bs[1], $c1);
                            $c2 = _mm256_fmadd_ps(av, bs[2], $c2);
                        };
                    }
                    row!(0, c00, c01, c02);
                    row!(1, c10, c11, c12);
                    row!(2, c20, c21, c22);
                    row!(3, c30, c31, c32);
                }
            }
            let rows = [
                [c00, c01, c02],
                [c10, c11, c12],
                [c20, c21, c22],
                [c30, c31, c32],
            ];
            for (r, vs) in rows.iter().enumerate() {
                for (v, &value) in vs.iter().enumerate() {
                    // SAFETY: row r0 + r of the tile holds NR ≥ q0 + 24 floats.
                    unsafe { _mm256_storeu_ps(out[r0 + r][q0 + 8 * v..].as_mut_ptr(), value) };
                }
            }
        }
    }
}

/// Writes the lanes `bits` of `value` (accumulators of output row `r`) to `ptr`: stored, or
/// added to what is there, then finished by `finish`; the same operations in the same order as
/// the AVX-512 kernel's `put`, so the results are equal.
///
/// # Safety
/// AVX2 must be available; the lanes in `bits` at `ptr` must be valid (initialised unless
/// `store`); the others are neither read nor written.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn put(
    ptr: *mut f32,
    bits: u8,
    mut value: __m256,
    r: usize,
    store: bool,
    finish: Option<Epilogue>,
) {
    // SAFETY (whole block): the lanes touched are those in `bits` (the caller's contract).
    unsafe {
        if bits == 0xff {
            if !store {
                value = _mm256_add_ps(value, _mm256_loadu_ps(ptr));
            }
            if let Some(finish) = finish {
                if let Some(shift) = finish.shift {
                    value = _mm256_add_ps(value, _mm256_set1_ps(shift[r]));
                }
                if finish.relu {
                    value = _mm256_max_ps(value, _mm256_setzero_ps());
                }
            }
            _mm256_storeu_ps(ptr, value);
        } else {
            put_lanes(ptr, bits, value, r, store, finish);
        }
    }
}

/// [`put`] of a partial vector, lane by lane (rare: row and tile ends).
///
/// # Safety
/// As [`put`].
#[target_feature(enable = "avx2,fma")]
#[cold]
unsafe fn put_lanes(
    ptr: *mut f32,
    bits: u8,
    value: __m256,
    r: usize,
    store: bool,
    finish: Option<Epilogue>,
) {
    // SAFETY (whole block): the lanes touched are those in `bits` (the caller's contract).
    unsafe {
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), value);
        for (l, &lane) in lanes.iter().enumerate() {
            if bits & (1 << l) == 0 {
                continue;
            }
            let mut v = lane;
            if !store {
                v += *ptr.add(l);
            }
            if let Some(finish) = finish {
                if let Some(shift) = finish.shift {
                    v += shift[r];
                }
                if finish.relu {
                    // As `vmaxps(v, 0)`: 0 unless v > 0 (NaN and −0 included).
                    v = if v > 0.0 { v } else { 0.0 };
                }
            }
            *ptr.add(l) = v;
        }
    }
}

/// The lane mask of the first `valid` (≤ 8) lanes.
fn first_lanes(valid: usize) -> u8 {
    if valid >= 8 { 0xff } else { (1u8 << valid) - 1 }
}

/// The packed micro-kernel with AVX2 (see `MicroKernels::packed`).
///
/// # Safety
/// As `MicroKernels::packed`, with AVX2 and FMA available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn micro_kernel(kc: usize, a: *const f32, b: *const f32, cols: usize, out: Out) {
    let mut acc = [[0.0f32; NR]; MR];
    // SAFETY: A holds kc·MR floats and B's step p the NR floats at p·NR.
    unsafe {
        tile(
            kc,
            a,
            |p| b.wrapping_add(p * NR),
            cols.div_ceil(PIXELS),
            &mut acc,
        )
    };
    for (r, row) in acc.iter().enumerate().take(out.rows) {
        for lane in (0..cols).step_by(8) {
            let valid = (cols - lane).min(8);
            // SAFETY: the lanes lie inside row r's `cols` floats (the caller's contract); the
            // tile row holds NR ≥ lane + 8 floats.
            unsafe {
                let value = _mm256_loadu_ps(row[lane..].as_ptr());
                let ptr = out.c.add(r * out.ldc + lane);
                put(ptr, first_lanes(valid), value, r, out.store, out.finish);
            }
        }
    }
}

/// The direct micro-kernel with AVX2 (see `MicroKernels::direct`): step `p` of the tile is
/// the NR floats at `b + offsets[p]`; the tile's lanes go to the output through `stores`
/// (16-lane masks: each 8-lane vector takes its half).
///
/// # Safety
/// As `MicroKernels::direct`, with AVX2 and FMA available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn micro_kernel_direct(
    kc: usize,
    a: *const f32,
    b: *const f32,
    offsets: *const usize,
    stores: &[Store],
    out: Out,
) {
    // The tile's pixels up to the last one stored (a job's last tile may end early).
    let used = stores
        .iter()
        .map(|s| 16 * s.v + 16 - s.mask.leading_zeros() as usize)
        .max()
        .unwrap_or(0);
    let mut acc = [[0.0f32; NR]; MR];
    // SAFETY: A holds kc·MR floats and B's step p the NR floats at b + offsets[p].
    unsafe {
        tile(
            kc,
            a,
            |p| b.wrapping_add(*offsets.add(p)),
            used.div_ceil(PIXELS),
            &mut acc,
        );
    }
    for (r, row) in acc.iter().enumerate().take(out.rows) {
        let c_row = out.c.wrapping_add(r * out.ldc);
        for s in stores {
            for half in 0..2 {
                let bits = (s.mask >> (8 * half)) as u8;
                if bits == 0 {
                    continue;
                }
                let lane = 16 * s.v + 8 * half;
                // SAFETY: the lanes in `bits` are valid outputs of row r (the caller's
                // contract); the tile row holds NR ≥ lane + 8 floats.
                unsafe {
                    let value = _mm256_loadu_ps(row[lane..].as_ptr());
                    let ptr = c_row.wrapping_offset(s.offset + 8 * half as isize);
                    put(ptr, bits, value, r, out.store, out.finish);
                }
            }
        }
    }
}
