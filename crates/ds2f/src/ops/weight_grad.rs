//! Convolution weight gradient with an AVX-512 (or AVX2) micro-kernel, tap by tap, on
//! channels-last copies.
//!
//! `dW[co, ci, i, j] = Σ_{n,y,x} dY[n, co, y, x] · X[n, ci, y·s + i·d − p, x·s + j·d − p]`.
//! For one kernel tap `(i, j)` this is a GEMM `dY (co × pixels) · X_shiftedᵀ (pixels × ci)`.
//! With `dY` and the zero-padded input copied to channels-last rows (pixel-major, channels
//! fastest), the shifted input of a run of output pixels is a strided slice of the copy, so no
//! im2col matrix (kh·kw times the input) is built and each value is copied once. The
//! micro-kernel keeps an `MR × NR` block of `dW` (8 output × 32 input channels, 16 AVX-512
//! registers; three passes of AVX2 registers in [`super::avx2`]) while it runs along a chunk
//! of an output row (or several whole rows of a narrow image), broadcasting `dY` values and
//! loading two vectors of input channels per pixel.
//!
//! Why hand-written: the im2col + `gemm` weight gradient of [`super::conv`] builds and re-reads a
//! 9× expanded input and ran at about a third of this CPU's peak; no crate offers convolution
//! kernels for burn's tensors. The work is split whatever the thread count, so results are the
//! same on every machine: a `dW` that fits in L2 over a fixed number of parts of the output
//! rows, each with its own partial `dW`, summed in order; a larger one (the deep layers: 9·1024²
//! floats) over ranges of output channels, each accumulated in place over all pixels in order,
//! with each job's input copy shared by the ranges (docs/performance.md: −43 % on the backward
//! of a 1024-channel 16×16 convolution).
use super::aligned::AlignedBuf;
use super::conv::Geometry;
use super::implicit_gemm::Isa;
use rayon::prelude::*;

/// Output channels per micro-tile.
pub(super) const MR: usize = 8;
/// Input channels per micro-tile (two 16-float vectors).
pub(super) const NR: usize = 32;
/// Parts the work is split into at most (each with its own partial `dW` when they split the
/// pixels).
const PARTS: usize = 8;
/// Output pixels per micro-kernel call (whole rows of narrow images).
const CHUNK: usize = 64;
/// Largest channels-last scratch of one job, in floats (1 MiB): stays in L2.
const JOB_FLOATS: usize = 1 << 18;
/// Largest `dW` block one part accumulates, in floats (1 MiB): the micro-kernel's
/// read-modify-write of it stays in L2. Deep layers (`9·cout·cin` of millions) are split
/// over output channels rather than over pixels, which also needs no partial sums.
const ACC_FLOATS: usize = 1 << 18;

/// Whether the kernel computes this weight gradient: AVX-512 or AVX2, no groups, channel
/// counts that fill whole micro-tiles.
pub(super) fn suits(cin: usize, cout: usize, groups: usize) -> bool {
    super::implicit_gemm::available()
        && groups == 1
        && cin.is_multiple_of(NR)
        && cout.is_multiple_of(MR)
}

/// `dW` as `[cout, cin, kh, kw]` for the NCHW input `x` (`[n, cin, h, w]`) and output
/// gradient `dy` (`[n, cout, ho, wo]`).
///
/// # Panics
/// If [`suits`] is false.
pub(super) fn weight_grad(
    x: &[f32],
    dy: &[f32],
    n: usize,
    cin: usize,
    cout: usize,
    g: &Geometry,
) -> Vec<f32> {
    assert!(
        suits(cin, cout, 1),
        "the weight-gradient kernel needs AVX-512 or AVX2 and whole tiles"
    );
    let isa = super::implicit_gemm::isa().expect("suits");
    weight_grad_with(x, dy, n, cin, cout, g, isa)
}

/// [`weight_grad`] with the instruction set `isa`; the results of both are equal.
fn weight_grad_with(
    x: &[f32],
    dy: &[f32],
    n: usize,
    cin: usize,
    cout: usize,
    g: &Geometry,
    isa: Isa,
) -> Vec<f32> {
    let taps = g.kh * g.kw;
    let len = taps * cout * cin;
    // A dW too large for L2 (deep layers: 9·cout·cin of millions) is split over output-channel
    // ranges of whole micro-tiles, at least one per part, each accumulated in place: no
    // partial sums. Otherwise the pixels are split, each part with its own partial dW.
    let tiles = cout / MR;
    let co_parts = if len > ACC_FLOATS {
        len.div_ceil(ACC_FLOATS).max(PARTS).min(tiles)
    } else {
        1
    };
    let co_range = |c: usize| (c * tiles / co_parts * MR, (c + 1) * tiles / co_parts * MR);
    let widest = (tiles.div_ceil(co_parts)) * MR;
    // Output rows per job: as many as keep the job's copies within JOB_FLOATS.
    let row_floats = g.wo * widest + g.stride[0] * (g.w + 2 * g.pad[1]) * cin;
    let rows = (JOB_FLOATS / row_floats.max(1)).clamp(1, g.ho.max(1));
    let jobs_per_image = g.ho.div_ceil(rows);
    let jobs = n * jobs_per_image;
    let plane_in = cin * g.h * g.w;
    let plane_out = g.ho * g.wo;
    // Image and output rows of job `job`.
    let job_rows = |job: usize| {
        let r0 = (job % jobs_per_image) * rows;
        (job / jobs_per_image, r0, (r0 + rows).min(g.ho))
    };
    let total = if co_parts == 1 {
        let parts = jobs.clamp(1, PARTS);
        let partials: Vec<Vec<f32>> = (0..parts)
            .into_par_iter()
            .map(|part| {
                let mut acc = vec![0.0f32; len];
                let (mut dy_rows, mut x_rows) = (AlignedBuf::default(), AlignedBuf::default());
                for job in part * jobs / parts..(part + 1) * jobs / parts {
                    let (img, r0, r1) = job_rows(job);
                    let x_img = &x[img * plane_in..][..plane_in];
                    let dy_img = &dy[img * cout * plane_out..][..cout * plane_out];
                    fill_dy(&mut dy_rows, dy_img, cout, g, r0, r1);
                    let x_row = fill_x(&mut x_rows, x_img, cin, g, r0, r1);
                    let copies = Copies {
                        dy: dy_rows.as_slice(),
                        x: x_rows.as_slice(),
                        x_row,
                    };
                    accumulate(&copies, cin, cout, g, r1 - r0, &mut acc, isa);
                }
                acc
            })
            .collect();
        super::conv::sum_in_order(partials, len)
    } else {
        // dW as [co part][tap, co − co0, ci]; each job's x copy is shared by the parts.
        let mut total = vec![0.0f32; len];
        let mut blocks: Vec<(usize, usize, &mut [f32], AlignedBuf)> = Vec::new();
        let mut rest = total.as_mut_slice();
        for c in 0..co_parts {
            let (co0, co1) = co_range(c);
            let (block, tail) = rest.split_at_mut(taps * (co1 - co0) * cin);
            blocks.push((co0, co1, block, AlignedBuf::default()));
            rest = tail;
        }
        let mut x_rows = AlignedBuf::default();
        for job in 0..jobs {
            let (img, r0, r1) = job_rows(job);
            let x_row = fill_x(
                &mut x_rows,
                &x[img * plane_in..][..plane_in],
                cin,
                g,
                r0,
                r1,
            );
            let x_rows = x_rows.as_slice();
            blocks.par_iter_mut().for_each(|(co0, co1, acc, dy_rows)| {
                let width = *co1 - *co0;
                let dy_part = &dy[(img * cout + *co0) * plane_out..][..width * plane_out];
                fill_dy(dy_rows, dy_part, width, g, r0, r1);
                let copies = Copies {
                    dy: dy_rows.as_slice(),
                    x: x_rows,
                    x_row,
                };
                accumulate(&copies, cin, width, g, r1 - r0, acc, isa);
            });
        }
        total
    };
    // [co part][tap, co − co0, ci] (one part: [tap, co, ci]) → [co, ci, tap], one output
    // channel per task (the deep layers' dW are tens of MB). The parts are in channel order,
    // so part c starts at taps·co0·cin.
    let mut out = vec![0.0f32; len];
    out.par_chunks_mut(cin * taps)
        .enumerate()
        .for_each(|(co, dst)| {
            let c = (0..co_parts).rfind(|&c| co_range(c).0 <= co).unwrap_or(0);
            let (co0, co1) = co_range(c);
            for tap in 0..taps {
                let src = &total[(taps * co0 + tap * (co1 - co0) + co - co0) * cin..][..cin];
                for (ci, &v) in src.iter().enumerate() {
                    dst[ci * taps + tap] = v;
                }
            }
        });
    out
}

/// One job's channels-last copies: `dy[row][x][co]` for its output rows and `x[row][col][ci]`
/// for the input rows they read, zero-padded (row 0 is input row `r0·s − p`, column 0 is input
/// column `−p`).
struct Copies<'a> {
    dy: &'a [f32],
    x: &'a [f32],
    /// Floats per row of `x`.
    x_row: usize,
}

/// Fills `buf` with `dy[row][x][co]` for output rows `[r0, r1)` of the `cout` planes `dy`.
fn fill_dy(buf: &mut AlignedBuf, dy: &[f32], cout: usize, g: &Geometry, r0: usize, r1: usize) {
    buf.resize((r1 - r0) * g.wo * cout);
    let plane_out = g.ho * g.wo;
    for (dst, oy) in buf.as_mut_slice().chunks_exact_mut(g.wo * cout).zip(r0..r1) {
        transpose_rows(dy, oy * g.wo, plane_out, cout, g.wo, dst);
    }
}

/// Fills `buf` with the zero-padded `x[row][col][ci]` that output rows `[r0, r1)` read;
/// returns the floats per row.
fn fill_x(
    buf: &mut AlignedBuf,
    x: &[f32],
    cin: usize,
    g: &Geometry,
    r0: usize,
    r1: usize,
) -> usize {
    let wp = g.w + 2 * g.pad[1];
    let in_rows = (r1 - r0 - 1) * g.stride[0] + (g.kh - 1) * g.dilation[0] + 1;
    let x_row = wp * cin;
    buf.resize(in_rows * x_row);
    let plane_in = g.h * g.w;
    for (r, dst) in buf.as_mut_slice().chunks_exact_mut(x_row).enumerate() {
        let iy = (r0 * g.stride[0] + r)
            .checked_sub(g.pad[0])
            .filter(|&y| y < g.h);
        let Some(iy) = iy else {
            dst.fill(0.0);
            continue;
        };
        let (left, rest) = dst.split_at_mut(g.pad[1] * cin);
        let (mid, right) = rest.split_at_mut(g.w * cin);
        left.fill(0.0);
        right.fill(0.0);
        transpose_rows(x, iy * g.w, plane_in, cin, g.w, mid);
    }
    x_row
}

/// `dst[p · c + k] = src[k · plane + offset + p]` for `p < len`, `k < c`: one row of `c`
/// planes to channels-last, 16 channels at a time so that every write run is a cache line.
fn transpose_rows(src: &[f32], offset: usize, plane: usize, c: usize, len: usize, dst: &mut [f32]) {
    for k0 in (0..c).step_by(16) {
        let kn = (c - k0).min(16);
        // The block's channel rows (unused slots empty: `zip` stops at `kn`).
        let rows: [&[f32]; 16] = std::array::from_fn(|k| {
            if k < kn {
                &src[(k0 + k) * plane + offset..][..len]
            } else {
                &[]
            }
        });
        for p in 0..len {
            let out = &mut dst[p * c + k0..][..kn];
            for (o, row) in out.iter_mut().zip(&rows) {
                *o = row[p];
            }
        }
    }
}

/// Adds one job's contribution to `acc` (`[tap, co, ci]`), [`CHUNK`] pixels at a time (a
/// chunk of one output row, or several whole rows of a narrow image): the chunk's `dY` values
/// stay in L1 while every tap and input-channel block passes over them.
fn accumulate(
    s: &Copies,
    cin: usize,
    cout: usize,
    g: &Geometry,
    rows: usize,
    acc: &mut [f32],
    isa: Isa,
) {
    let (s_dy, s_x) = (s.dy, s.x);
    let rows_per_call = (CHUNK / g.wo.max(1)).max(1);
    for row in (0..rows).step_by(rows_per_call) {
        let call_rows = rows_per_call.min(rows - row);
        for x0 in (0..g.wo).step_by(CHUNK) {
            let len = CHUNK.min(g.wo - x0);
            for i in 0..g.kh {
                let x_row = (row * g.stride[0] + i * g.dilation[0]) * s.x_row;
                for co in (0..cout).step_by(MR) {
                    let a = Panel {
                        // dy[row][x][co]
                        base: s_dy[(row * g.wo + x0) * cout + co..].as_ptr(),
                        step: cout,
                        row_step: g.wo * cout,
                    };
                    for j in 0..g.kw {
                        let tap = i * g.kw + j;
                        for ci in (0..cin).step_by(NR) {
                            let b = Panel {
                                // x[row·s + i·d][x·s + j·d][ci]
                                base: s_x
                                    [x_row + (x0 * g.stride[1] + j * g.dilation[1]) * cin + ci..]
                                    .as_ptr(),
                                step: g.stride[1] * cin,
                                row_step: g.stride[0] * s.x_row,
                            };
                            let dst = &mut acc[(tap * cout + co) * cin + ci..];
                            // SAFETY: this CPU has `isa` (`suits`); the call's last pixel
                            // of `a` is `dy[row + call_rows − 1][x0 + len − 1][co + MR − 1]`,
                            // inside the copy; that of `b` is in input row `(row + call_rows −
                            // 1)·s + i·d` ≤ the copy's last row, column `(x0 + len − 1)·s +
                            // j·d` < the padded width, channel `ci + NR − 1` < cin; `dst`
                            // holds MR rows of NR floats at stride cin.
                            unsafe {
                                micro_kernel(isa, a, b, call_rows, len, dst.as_mut_ptr(), cin)
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Operand of the micro-kernel: the values of pixel `p` of row `r` start at
/// `base + r · row_step + p · step`.
#[derive(Clone, Copy)]
pub(super) struct Panel {
    pub base: *const f32,
    pub step: usize,
    pub row_step: usize,
}

/// `C[r][c] += Σ_p A[p][r] · B[p][c]` for an `MR × NR` block `C` at row stride `ldc`, over
/// `len` pixels of each of `rows` rows.
///
/// # Safety
/// This CPU must have `isa`; `a` must hold `MR` floats and `b` `NR` floats at every pixel;
/// `c` must be valid for `MR` rows of `NR` floats at stride `ldc`.
unsafe fn micro_kernel(
    isa: Isa,
    a: Panel,
    b: Panel,
    rows: usize,
    len: usize,
    c: *mut f32,
    ldc: usize,
) {
    // SAFETY: the caller's contract, which both kernels share.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        match isa {
            Isa::Avx512 => micro_kernel_avx512(a, b, rows, len, c, ldc),
            Isa::Avx2 => super::avx2::weight_grad_kernel(a, b, rows, len, c, ldc),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, a, b, rows, len, c, ldc);
        unreachable!("the kernels run on x86-64 only ([`suits`] is false elsewhere)")
    }
}

/// [`micro_kernel`] with AVX-512.
///
/// # Safety
/// As [`micro_kernel`], with AVX-512F available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn micro_kernel_avx512(
    a: Panel,
    b: Panel,
    rows: usize,
    len: usize,
    c: *mut f32,
    ldc: usize,
) {
    use std::arch::x86_64::*;
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

#[cfg(test)]
mod tests {
    use super::super::test_values as values;
    use super::*;
    use burn::tensor::ops::ConvOptions;

    #[test]
    fn equals_the_im2col_gemm_weight_gradient() {
        if !super::super::implicit_gemm::available() {
            eprintln!("no AVX-512 or AVX2 on this CPU: only the portable kernel runs here");
            return;
        }
        // (n, cin, cout, [h, w], kernel, stride, pad, dilation)
        let cases = [
            (1, 32, 8, [13, 17], 3, 1, 1, 1),
            (2, 64, 64, [33, 50], 3, 1, 1, 1),
            // Several jobs per image and more jobs than parts.
            (3, 32, 16, [200, 131], 3, 1, 1, 1),
            (1, 32, 24, [21, 30], 5, 2, 2, 1),
            (2, 32, 8, [19, 23], 3, 1, 2, 2),
            (2, 64, 40, [9, 11], 1, 1, 0, 1),
            (1, 32, 8, [1, 1], 3, 1, 1, 1),
            (1, 32, 8, [8, 9], 2, 2, 0, 1),
            // Narrow images (several rows per micro-kernel call), dW split over eight
            // output-channel ranges.
            (2, 256, 128, [6, 7], 3, 1, 1, 1),
            (3, 512, 256, [4, 5], 3, 1, 1, 1),
            // Ranges of one and two micro-tiles (12 tiles in 8 ranges), several jobs.
            (2, 512, 96, [40, 9], 3, 1, 1, 1),
            (1, 64, 16, [11, 20], 3, 2, 1, 1),
        ];
        for (case, &(n, cin, cout, [h, w], k, s, p, d)) in cases.iter().enumerate() {
            let options = ConvOptions::new([s, s], [p, p], [d, d], 1);
            let g = Geometry::new([h, w], [k, k], &options);
            let x = values(n * cin * h * w, 1 + case as u64);
            let dy = values(n * cout * g.ho * g.wo, 100 + case as u64);
            let ours = weight_grad(&x, &dy, n, cin, cout, &g);
            // AVX2's passes add the same products in the same order as AVX-512's tile.
            for isa in super::super::implicit_gemm::isas() {
                let other = weight_grad_with(&x, &dy, n, cin, cout, &g, isa);
                assert!(other == ours, "case {case}: {isa:?} differs");
            }
            let reference = super::super::conv::gemm_weight_grad(&x, &dy, n, cin, cout, 1, &g);
            let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let err = ours
                .iter()
                .zip(&reference)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err <= 1e-5 * scale,
                "case {case}: max error {err} of {scale}"
            );
        }
    }
}
