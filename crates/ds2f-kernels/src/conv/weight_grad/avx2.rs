//! The weight gradient's micro-kernel with AVX2 + FMA, for x86-64 CPUs without AVX-512: the
//! AVX-512 tile of 8 output × 32 input channels in two 4 × 24 passes and one 8 × 8 pass, every
//! output the same chain of fused multiply-adds, in the same order, as with AVX-512 (see
//! `implicit_gemm/avx2.rs` for why the passes, and why one is written in assembly).
use super::{MR, NR, Panel};
use std::arch::x86_64::*;

/// The weight gradient's micro-kernel with AVX2 (see `weight_grad`'s `MicroKernel`):
/// `C[r][c] += Σ_p A[p][r] · B[p][c]` for the `MR × NR` block `C` at row stride `ldc`, over
/// `len` pixels of each of `rows` rows. Three passes: output channels 0–3 and 4–7 × input
/// channels 0–23 (12 accumulators each), then all 8 output × input channels 24–31.
///
/// # Safety
/// As `weight_grad`'s `MicroKernel`, with AVX2 and FMA available.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn micro_kernel(
    a: Panel,
    b: Panel,
    rows: usize,
    len: usize,
    c: *mut f32,
    ldc: usize,
) {
    const { assert!(MR == 8 && NR == 32) };
    // SAFETY (whole function): the caller guarantees every pixel's reads of A (MR floats) and
    // B (NR floats) and C's MR rows of NR floats.
    unsafe {
        for r0 in [0, 4] {
            let mut tile = [[_mm256_setzero_ps(); 3]; 4];
            for row in 0..rows {
                let ap = a.base.add(row * a.row_step + r0);
                let bp = b.base.add(row * b.row_step);
                wide_run(ap, a.step, bp, b.step, len, &mut tile);
            }
            for (r, vs) in tile.iter().enumerate() {
                for (v, &value) in vs.iter().enumerate() {
                    let ptr = c.add((r0 + r) * ldc + 8 * v);
                    _mm256_storeu_ps(ptr, _mm256_add_ps(value, _mm256_loadu_ps(ptr)));
                }
            }
        }
        let mut acc = [_mm256_setzero_ps(); MR];
        for row in 0..rows {
            let mut ap = a.base.add(row * a.row_step);
            let mut bp = b.base.add(row * b.row_step + 24);
            for _ in 0..len {
                let b3 = _mm256_loadu_ps(bp);
                for (r, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm256_fmadd_ps(_mm256_broadcast_ss(&*ap.add(r)), b3, *acc);
                }
                ap = ap.add(a.step);
                bp = bp.add(b.step);
            }
        }
        for (r, &value) in acc.iter().enumerate() {
            let ptr = c.add(r * ldc + 24);
            _mm256_storeu_ps(ptr, _mm256_add_ps(value, _mm256_loadu_ps(ptr)));
        }
    }
}

/// `tile[r][v] += Σ_t A[t][r] · B[t][8v..8v + 8]` over `len` pixels `t`, A's at `ap + t·a_step`
/// (4 floats), B's at `bp + t·b_step` (24 floats).
///
/// # Safety
/// AVX2 and FMA must be available; every pixel's 4 and 24 floats must be readable.
#[target_feature(enable = "avx2,fma")]
unsafe fn wide_run(
    mut ap: *const f32,
    a_step: usize,
    mut bp: *const f32,
    b_step: usize,
    len: usize,
    tile: &mut [[__m256; 3]; 4],
) {
    let [
        [mut c00, mut c01, mut c02],
        [mut c10, mut c11, mut c12],
        [mut c20, mut c21, mut c22],
        [mut c30, mut c31, mut c32],
    ] = *tile;
    if len == 0 {
        return;
    }
    // The loop in assembly: with intrinsics the compiler kept accumulators on the stack
    // and shuffled them between registers every pixel (this pass ran slower than `gemm`).
    // `vfmadd231ps c, a, b` is c = a·b + c, as `_mm256_fmadd_ps(a, b, c)`.
    // SAFETY: the caller guarantees every pixel's reads; the loop writes registers only.
    unsafe {
        std::arch::asm!(
            "2:",
            "vmovups {b0}, ymmword ptr [{bp}]",
            "vmovups {b1}, ymmword ptr [{bp} + 32]",
            "vmovups {b2}, ymmword ptr [{bp} + 64]",
            "vbroadcastss {av}, dword ptr [{ap}]",
            "vfmadd231ps {c00}, {av}, {b0}",
            "vfmadd231ps {c01}, {av}, {b1}",
            "vfmadd231ps {c02}, {av}, {b2}",
            "vbroadcastss {av}, dword ptr [{ap} + 4]",
            "vfmadd231ps {c10}, {av}, {b0}",
            "vfmadd231ps {c11}, {av}, {b1}",
            "vfmadd231ps {c12}, {av}, {b2}",
            "vbroadcastss {av}, dword ptr [{ap} + 8]",
            "vfmadd231ps {c20}, {av}, {b0}",
            "vfmadd231ps {c21}, {av}, {b1}",
            "vfmadd231ps {c22}, {av}, {b2}",
            "vbroadcastss {av}, dword ptr [{ap} + 12]",
            "vfmadd231ps {c30}, {av}, {b0}",
            "vfmadd231ps {c31}, {av}, {b1}",
            "vfmadd231ps {c32}, {av}, {b2}",
            "add {ap}, {a_step}",
            "add {bp}, {b_step}",
            "dec {n}",
            "jnz 2b",
            ap = inout(reg) ap,
            bp = inout(reg) bp,
            n = inout(reg) len => _,
            a_step = in(reg) a_step * 4,
            b_step = in(reg) b_step * 4,
            b0 = out(ymm_reg) _,
            b1 = out(ymm_reg) _,
            b2 = out(ymm_reg) _,
            av = out(ymm_reg) _,
            c00 = inout(ymm_reg) c00,
            c01 = inout(ymm_reg) c01,
            c02 = inout(ymm_reg) c02,
            c10 = inout(ymm_reg) c10,
            c11 = inout(ymm_reg) c11,
            c12 = inout(ymm_reg) c12,
            c20 = inout(ymm_reg) c20,
            c21 = inout(ymm_reg) c21,
            c22 = inout(ymm_reg) c22,
            c30 = inout(ymm_reg) c30,
            c31 = inout(ymm_reg) c31,
            c32 = inout(ymm_reg) c32,
            options(nostack, readonly),
        );
    }
    let _ = (ap, bp);
    *tile = [
        [c00, c01, c02],
        [c10, c11, c12],
        [c20, c21, c22],
        [c30, c31, c32],
    ];
}
