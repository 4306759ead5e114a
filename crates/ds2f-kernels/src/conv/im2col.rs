//! The portable convolution kernels: im2col tiles of the input fed to the `gemm` crate (the
//! one burn-flex itself uses), for the forward pass and the weight gradient, and the direct
//! depthwise weight gradient. They run on every CPU, and the SIMD kernels are tested against
//! them.
use super::{Geometry, Problem};
use crate::shared::SharedMut;
use rayon::prelude::*;

/// Largest im2col tile of the weight-gradient kernel, in floats (4 MiB): big enough that each
/// gemm has a long inner dimension, small enough to stay in the cache hierarchy.
pub const COL_TILE_FLOATS: usize = 1 << 20;

/// Tiles a convolution is split into at least (when it has that many output rows), so that
/// small layers still keep every core busy; a constant, for thread-count-independent results.
const MIN_JOBS: usize = 8;

/// Partial sums of the weight gradient at most: the tiles are split into this many contiguous
/// runs, each summed by one task, and the partial sums added in order: the result does not
/// depend on how rayon schedules the tasks.
const WEIGHT_GRAD_PARTIALS: usize = 8;

/// Per tile of output rows, `Y[Cout_g, T] = W[Cout_g, K] · col[K, T]` by gemm straight into
/// the NCHW output (flex converts to NHWC and back): `[n, cout, ho, wo]`, no epilogue.
///
/// # Panics
/// If `p` has more than one input part.
pub fn forward(p: &Problem, g: &Geometry) -> Vec<f32> {
    assert_eq!(p.x.len(), 1, "im2col + gemm takes one input part");
    let (xs, ws, n, cin, cout, groups) = (p.x[0], p.weight, p.n, p.cin, p.cout, p.groups);
    let cin_g = cin / groups;
    let cout_g = cout / groups;
    let k = cin_g * g.kh * g.kw;
    let plane_out = g.ho * g.wo;
    let len = n * cout * plane_out;
    // gemm overwrites (read_dst = false) every output: no zero-filling pass first.
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let tiling = tiling(g, k, n);
    let in_img = cin * g.h * g.w;
    let dst = SharedMut(out.as_mut_ptr());
    (0..tiling.jobs).into_par_iter().for_each_init(
        || vec![0.0f32; tiling.col_len],
        |col, job| {
            let (img, r0, r1) = tiling.tile(job);
            let t = (r1 - r0) * g.wo;
            let x_img = &xs[img * in_img..][..in_img];
            for_each_group(
                x_img,
                groups,
                cin_g,
                [r0, r1],
                g,
                col,
                |group, rhs, rhs_rs| {
                    let offset = (img * cout + group * cout_g) * plane_out + r0 * g.wo;
                    // SAFETY: the destination is rows [r0, r1) of channels group·cout_g.. of image
                    // img, which no other job writes; lhs is the group's cout_g × k block of the
                    // weights; rhs is k × t with row stride rhs_rs inside col or x_img.
                    unsafe {
                        gemm::gemm(
                            cout_g,
                            t,
                            k,
                            dst.at(offset),
                            1,
                            plane_out as isize,
                            false,
                            ws[group * cout_g * k..].as_ptr(),
                            1,
                            k as isize,
                            rhs,
                            1,
                            rhs_rs as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                },
            );
        },
    );
    // SAFETY: the jobs' (image, row tile) pairs cover every image's rows, and each writes all
    // groups' channels of its rows.
    unsafe { out.set_len(len) };
    out
}

/// Calls `f(group, matrix, stride)` with the im2col matrix (see [`col_matrix`]) of output rows
/// `[r0, r1)` of `x_img` for each group of `cin_g` input channels in turn.
#[allow(clippy::too_many_arguments)]
fn for_each_group(
    x_img: &[f32],
    groups: usize,
    cin_g: usize,
    [r0, r1]: [usize; 2],
    g: &Geometry,
    col: &mut [f32],
    mut f: impl FnMut(usize, *const f32, usize),
) {
    for group in 0..groups {
        let tile = Tile {
            c0: group * cin_g,
            cin_g,
            r0,
            r1,
        };
        let (matrix, stride) = col_matrix(x_img, &tile, g, col);
        f(group, matrix, stride);
    }
}

/// The im2col matrix (`cin_g·kh·kw` rows, `(r1 − r0)·wo` columns) of `tile`, as a pointer and
/// row stride: for a 1×1 convolution with stride 1 and no padding the input itself, otherwise
/// `col` filled by [`im2col`].
fn col_matrix(x_img: &[f32], tile: &Tile, g: &Geometry, col: &mut [f32]) -> (*const f32, usize) {
    if g.is_pointwise() {
        (
            x_img[tile.c0 * g.h * g.w + tile.r0 * g.w..].as_ptr(),
            g.h * g.w,
        )
    } else {
        im2col(x_img, tile, g, col);
        (col.as_ptr(), (tile.r1 - tile.r0) * g.wo)
    }
}

/// Tiles of output rows over a batch (see [`tiling`]).
struct Tiling {
    rows_per_tile: usize,
    tiles_per_image: usize,
    /// Tiles over the whole batch.
    jobs: usize,
    ho: usize,
    /// Floats of an im2col buffer (0 when the input is its own im2col matrix).
    col_len: usize,
}

impl Tiling {
    /// Image and output rows `[r0, r1)` of tile `job`.
    fn tile(&self, job: usize) -> (usize, usize, usize) {
        let (img, tile) = (job / self.tiles_per_image, job % self.tiles_per_image);
        let r0 = tile * self.rows_per_tile;
        (img, r0, (r0 + self.rows_per_tile).min(self.ho))
    }
}

/// Input channels `[c0, c0 + cin_g)` and output rows `[r0, r1)`: what one im2col matrix covers.
#[derive(Clone, Copy)]
struct Tile {
    c0: usize,
    cin_g: usize,
    r0: usize,
    r1: usize,
}

/// The split of a batch of `n` images into tiles of output rows, for im2col matrices of
/// `k` rows: tiles of at most [`COL_TILE_FLOATS`], and at least [`MIN_JOBS`] tiles over the
/// batch when the image allows it. Depends on the shapes only, never on the thread count,
/// so that results are the same on every machine.
fn tiling(g: &Geometry, k: usize, n: usize) -> Tiling {
    let by_size = COL_TILE_FLOATS / (k * g.wo).max(1);
    let by_jobs = (n * g.ho).div_ceil(MIN_JOBS);
    let rows_per_tile = by_size.min(by_jobs).clamp(1, g.ho.max(1));
    Tiling {
        rows_per_tile,
        tiles_per_image: g.ho.div_ceil(rows_per_tile),
        jobs: n * g.ho.div_ceil(rows_per_tile),
        ho: g.ho,
        col_len: if g.is_pointwise() {
            0
        } else {
            k * rows_per_tile * g.wo
        },
    }
}

/// Fills `col[kk · t + (oy − r0) · wo + ox]` for `tile` of `x_img`; `t = (r1 − r0) · wo`.
fn im2col(x_img: &[f32], tile: &Tile, g: &Geometry, col: &mut [f32]) {
    let Tile { c0, cin_g, r0, r1 } = *tile;
    let t = (r1 - r0) * g.wo;
    let plane = g.h * g.w;
    for ci in 0..cin_g {
        let x_plane = &x_img[(c0 + ci) * plane..][..plane];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let kk = (ci * g.kh + i) * g.kw + j;
                let row = &mut col[kk * t..][..t];
                let (lo, hi) = g.valid_cols(j);
                for oy in r0..r1 {
                    let out = &mut row[(oy - r0) * g.wo..][..g.wo];
                    let Some(iy) = g.input(0, oy, i) else {
                        out.fill(0.0);
                        continue;
                    };
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    if lo < hi {
                        let ix0 = lo * g.stride[1] + j * g.dilation[1] - g.pad[1];
                        let src = &x_plane[iy * g.w..][..g.w];
                        if g.stride[1] == 1 {
                            out[lo..hi].copy_from_slice(&src[ix0..ix0 + hi - lo]);
                        } else {
                            for (k, o) in out[lo..hi].iter_mut().enumerate() {
                                *o = src[ix0 + k * g.stride[1]];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Weight gradient `dW[co, ci, i, j] = Σ_{n,y,x} dY[n, co, y, x] · X[n, ci, y·s + i·d − p, x·s + j·d − p]`
/// (per group) by im2col tiles and gemm: `[cout, cin / groups, kh, kw]`, for the NCHW input
/// `xs` (`[n, cin, h, w]`) and output gradient `dy` (`[n, cout, ho, wo]`).
pub fn gemm_weight_grad(
    xs: &[f32],
    dy: &[f32],
    n: usize,
    cin: usize,
    cout: usize,
    groups: usize,
    g: &Geometry,
) -> Vec<f32> {
    let (cin_g, cout_g) = (cin / groups, cout / groups);
    let k = cin_g * g.kh * g.kw;
    let tiling = tiling(g, k, n);
    let len = cout * k;
    let (in_img, out_img) = (cin * g.h * g.w, cout * g.ho * g.wo);
    let jobs = tiling.jobs;
    let parts = jobs.min(WEIGHT_GRAD_PARTIALS);
    let partials: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let mut acc = vec![0.0f32; len];
            let mut col = vec![0.0f32; tiling.col_len];
            for job in part * jobs / parts..(part + 1) * jobs / parts {
                let (img, r0, r1) = tiling.tile(job);
                let t = (r1 - r0) * g.wo;
                let x_img = &xs[img * in_img..][..in_img];
                for_each_group(
                    x_img,
                    groups,
                    cin_g,
                    [r0, r1],
                    g,
                    &mut col,
                    |group, rhs, rhs_cs| {
                        let lhs = &dy[img * out_img + (group * cout_g * g.ho + r0) * g.wo..];
                        let dst = &mut acc[group * cout_g * k..][..cout_g * k];
                        // SAFETY: dst is cout_g × k with row stride k; lhs is cout_g × t with row
                        // stride ho·wo inside dy (the last row ends at most at the image's end);
                        // rhs (colᵀ) is t × k with column stride rhs_cs inside col or x_img.
                        unsafe {
                            gemm::gemm(
                                cout_g,
                                k,
                                t,
                                dst.as_mut_ptr(),
                                1,
                                k as isize,
                                true,
                                lhs.as_ptr(),
                                1,
                                (g.ho * g.wo) as isize,
                                rhs,
                                rhs_cs as isize,
                                1,
                                1.0,
                                1.0,
                                false,
                                false,
                                false,
                                gemm::Parallelism::None,
                            );
                        }
                    },
                );
            }
            acc
        })
        .collect();
    sum_in_order(partials, len)
}

/// The element-wise sum of `partials` (each `len` floats), added in their order so that the
/// result does not depend on how threads ran them; zeros when there are none.
pub fn sum_in_order(partials: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut partials = partials.into_iter();
    let mut total = partials.next().unwrap_or_else(|| vec![0.0f32; len]);
    for p in partials {
        total.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
    }
    total
}

/// The weight gradient of a depthwise convolution (`c` groups of one channel each), direct
/// (a gemm with one row is all overhead): `[c, 1, kh, kw]`.
pub fn depthwise_weight_grad(xs: &[f32], dy: &[f32], n: usize, c: usize, g: &Geometry) -> Vec<f32> {
    let (plane_in, plane_out) = (g.h * g.w, g.ho * g.wo);
    (0..c)
        .into_par_iter()
        .flat_map_iter(|ch| {
            let mut taps = vec![0.0f32; g.kh * g.kw];
            for img in 0..n {
                let x_plane = &xs[(img * c + ch) * plane_in..][..plane_in];
                let dy_plane = &dy[(img * c + ch) * plane_out..][..plane_out];
                for i in 0..g.kh {
                    for j in 0..g.kw {
                        let (lo, hi) = g.valid_cols(j);
                        if lo >= hi {
                            continue;
                        }
                        let ix0 = lo * g.stride[1] + j * g.dilation[1] - g.pad[1];
                        let mut total = 0.0f32;
                        for oy in 0..g.ho {
                            let Some(iy) = g.input(0, oy, i) else {
                                continue;
                            };
                            let d = &dy_plane[oy * g.wo + lo..oy * g.wo + hi];
                            let src = &x_plane[iy * g.w..][..g.w];
                            total += if g.stride[1] == 1 {
                                dot(d, &src[ix0..ix0 + hi - lo])
                            } else {
                                d.iter()
                                    .enumerate()
                                    .map(|(k, v)| v * src[ix0 + k * g.stride[1]])
                                    .sum()
                            };
                        }
                        taps[i * g.kw + j] += total;
                    }
                }
            }
            taps
        })
        .collect()
}

/// Dot product with eight partial sums, so that the compiler vectorises it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Sum with eight partial sums (vectorised).
pub(crate) fn sum(a: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for x in chunks {
        for l in 0..8 {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}
