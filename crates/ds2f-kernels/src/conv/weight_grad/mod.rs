//! Convolution weight gradient with an AVX-512 (or AVX2) micro-kernel, tap by tap, on
//! channels-last copies.
//!
//! `dW[co, ci, i, j] = Σ_{n,y,x} dY[n, co, y, x] · X[n, ci, y·s + i·d − p, x·s + j·d − p]`.
//! For one kernel tap `(i, j)` this is a GEMM `dY (co × pixels) · X_shiftedᵀ (pixels × ci)`.
//! With `dY` and the zero-padded input copied to channels-last rows (pixel-major, channels
//! fastest), the shifted input of a run of output pixels is a strided slice of the copy, so no
//! im2col matrix (kh·kw times the input) is built and each value is copied once. The
//! micro-kernel keeps an `MR × NR` block of `dW` (8 output × 32 input channels, 16 AVX-512
//! registers; three passes of AVX2 registers in `avx2.rs`; the same order of operations in
//! `scalar.rs`) while it runs along a chunk
//! of an output row (or several whole rows of a narrow image), broadcasting `dY` values and
//! loading two vectors of input channels per pixel.
//!
//! Why hand-written: the im2col + `gemm` weight gradient of [`super::im2col`] builds and re-reads a
//! 9× expanded input and ran at about a third of this CPU's peak; no crate offers convolution
//! kernels for burn's tensors. The work is split whatever the thread count, so results are the
//! same on every machine: a `dW` that fits in L2 over a fixed number of parts of the output
//! rows, each with its own partial `dW`, summed in order; a larger one (the deep layers: 9·1024²
//! floats) over ranges of output channels, each accumulated in place over all pixels in order,
//! with each job's input copy shared by the ranges (docs/performance.md: −43 % on the backward
//! of a 1024-channel 16×16 convolution).
use super::Geometry;
use crate::Isa;
use crate::aligned::AlignedBuf;
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod scalar;

/// Output channels per micro-tile.
pub(crate) const MR: usize = 8;
/// Input channels per micro-tile (two 16-float vectors).
pub(crate) const NR: usize = 32;
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

/// Whether the kernel computes this weight gradient: AVX-512 or AVX2 ([`Isa::best`]), no
/// groups, channel counts that fill whole micro-tiles.
pub fn suits(cin: usize, cout: usize, groups: usize) -> bool {
    Isa::best().is_simd() && groups == 1 && cin.is_multiple_of(NR) && cout.is_multiple_of(MR)
}

/// `dW` as `[cout, cin, kh, kw]` for the NCHW input `x` (`[n, cin, h, w]`) and output
/// gradient `dy` (`[n, cout, ho, wo]`).
///
/// # Panics
/// If [`suits`] is false.
pub fn weight_grad(
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
    weight_grad_with(x, dy, n, cin, cout, g, Isa::best())
}

/// [`weight_grad`] with the micro-kernel of `isa` (resolved once here); the results of all
/// instruction sets are equal. Any channel counts that fill whole micro-tiles, no groups.
///
/// # Panics
/// If this CPU lacks `isa`, or the channel counts do not fill whole micro-tiles.
pub fn weight_grad_with(
    x: &[f32],
    dy: &[f32],
    n: usize,
    cin: usize,
    cout: usize,
    g: &Geometry,
    isa: Isa,
) -> Vec<f32> {
    assert!(
        cin.is_multiple_of(NR) && cout.is_multiple_of(MR),
        "the weight-gradient kernel needs whole tiles"
    );
    let kernel = micro_kernel(isa);
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
                    accumulate(&copies, cin, cout, g, r1 - r0, &mut acc, kernel);
                }
                acc
            })
            .collect();
        super::im2col::sum_in_order(partials, len)
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
                accumulate(&copies, cin, width, g, r1 - r0, acc, kernel);
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
    kernel: MicroKernel,
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
                            // SAFETY: this CPU has the kernel's ISA (`micro_kernel`); the
                            // call's last pixel
                            // of `a` is `dy[row + call_rows − 1][x0 + len − 1][co + MR − 1]`,
                            // inside the copy; that of `b` is in input row `(row + call_rows −
                            // 1)·s + i·d` ≤ the copy's last row, column `(x0 + len − 1)·s +
                            // j·d` < the padded width, channel `ci + NR − 1` < cin; `dst`
                            // holds MR rows of NR floats at stride cin.
                            unsafe { kernel(a, b, call_rows, len, dst.as_mut_ptr(), cin) };
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
pub(crate) struct Panel {
    pub base: *const f32,
    pub step: usize,
    pub row_step: usize,
}

/// `C[r][c] += Σ_p A[p][r] · B[p][c]` for an `MR × NR` block `C` at row stride `ldc`, over
/// `len` pixels of each of `rows` rows.
///
/// Safety: the CPU must have the kernel's instruction set; `a` must hold `MR` floats and `b`
/// `NR` floats at every pixel; `c` must be valid for `MR` rows of `NR` floats at stride `ldc`.
type MicroKernel = unsafe fn(Panel, Panel, usize, usize, *mut f32, usize);

/// The micro-kernel of `isa`, resolved once per weight gradient.
///
/// # Panics
/// If this CPU lacks `isa`.
fn micro_kernel(isa: Isa) -> MicroKernel {
    assert!(isa.runs_here(), "this CPU lacks {isa:?}");
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => avx512::micro_kernel,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => avx2::micro_kernel,
        _ => scalar::micro_kernel,
    }
}
