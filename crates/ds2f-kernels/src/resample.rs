//! Bilinear resizing and max pooling on contiguous NCHW slices, for inference.
//!
//! burn-flex 0.22.1 computes each bilinear output pixel's source coordinates in float64 with
//! `floor` (14 % of a DS2F inference in `perf`) and runs a 2-D max pool through its 3-D pool
//! with indices (6 %). Here the source rows, columns and weights are computed once per axis,
//! each output row blends two horizontally interpolated input rows, and the pool reads each
//! window directly. Same coordinates and weights as burn's kernels (`ds2f`'s tests compare
//! them).
use rayon::prelude::*;

/// Source index pairs and weights of a linear interpolation from `len` to `out` samples, as
/// burn-flex (and PyTorch) compute them.
fn axis(len: usize, out: usize, align_corners: bool) -> Vec<(usize, usize, f32)> {
    let ratio = if align_corners {
        (len as f64 - 1.0) / (out.max(1) - 1).max(1) as f64
    } else {
        len as f64 / out as f64
    };
    (0..out)
        .map(|o| {
            let src = if align_corners {
                o as f64 * ratio
            } else {
                (o as f64 + 0.5) * ratio - 0.5
            };
            let low = (src.floor().max(0.0) as usize).min(len - 1);
            let high = (low + 1).min(len - 1);
            (low, high, (src - low as f64).max(0.0) as f32)
        })
        .collect()
}

/// Bilinear resize of the `[n, c, h, w]` values `xs` to `[n, c, ho, wo]`.
pub fn bilinear(
    xs: &[f32],
    [n, c, h, w]: [usize; 4],
    [ho, wo]: [usize; 2],
    align_corners: bool,
) -> Vec<f32> {
    let rows = axis(h, ho, align_corners);
    let cols = axis(w, wo, align_corners);
    let len = n * c * ho * wo;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    // Every output is written below: no zero-filling pass first.
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(ho * wo)
        .enumerate()
        .for_each_init(
            || ([usize::MAX; 2], [vec![0.0f32; wo], vec![0.0f32; wo]]),
            |(ids, bufs), (plane, dst)| {
                let src = &xs[plane * h * w..][..h * w];
                *ids = [usize::MAX; 2];
                for (oy, &(y0, y1, fy)) in rows.iter().enumerate() {
                    let a = ensure(src, w, &cols, y0, y1, ids, bufs);
                    let b = ensure(src, w, &cols, y1, y0, ids, bufs);
                    let d = &mut dst[oy * wo..][..wo];
                    for ((o, &t), &u) in d.iter_mut().zip(&bufs[a]).zip(&bufs[b]) {
                        o.write(t * (1.0 - fy) + u * fy);
                    }
                }
            },
        );
    // SAFETY: the planes cover 0..len and every (row, column) of each plane was written.
    unsafe { out.set_len(len) };
    out
}

/// The slot of `bufs` holding input row `row` of `src` interpolated horizontally by `cols`,
/// computed into the slot not holding row `keep` if neither has it (with 2× up-sampling each
/// input row serves two output rows).
fn ensure(
    src: &[f32],
    w: usize,
    cols: &[(usize, usize, f32)],
    row: usize,
    keep: usize,
    ids: &mut [usize; 2],
    bufs: &mut [Vec<f32>; 2],
) -> usize {
    if let Some(slot) = ids.iter().position(|&id| id == row) {
        return slot;
    }
    let slot = usize::from(ids[0] == keep);
    let r = &src[row * w..][..w];
    for (b, &(l, hi, f)) in bufs[slot].iter_mut().zip(cols) {
        *b = r[l] * (1.0 - f) + r[hi] * f;
    }
    ids[slot] = row;
    slot
}

/// The output size of [`max_pool`] along an axis of `size`.
pub fn max_pool_size(size: usize, kernel: usize, stride: usize, padding: usize) -> usize {
    (size + 2 * padding - kernel) / stride + 1
}

/// 2-D max pooling of the `[n, c, h, w]` values `xs` (padding never wins: as burn and PyTorch,
/// windows skip it): `[n, c, ho, wo]` with the sizes of [`max_pool_size`].
pub fn max_pool(
    xs: &[f32],
    [n, c, h, w]: [usize; 4],
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Vec<f32> {
    let (ho, wo) = (
        max_pool_size(h, kernel, stride, padding),
        max_pool_size(w, kernel, stride, padding),
    );
    // Input window [lo, hi) of output coordinate o along an axis of `size`.
    let window = |o: usize, size: usize| {
        let start = (o * stride) as isize - padding as isize;
        (
            start.max(0) as usize,
            ((start + kernel as isize) as usize).min(size),
        )
    };
    let col_windows: Vec<(usize, usize)> = (0..wo).map(|o| window(o, w)).collect();
    let len = n * c * ho * wo;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    // Every output is written below: no zero-filling pass first.
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(ho * wo)
        .enumerate()
        .for_each(|(plane, dst)| {
            let src = &xs[plane * h * w..][..h * w];
            for oy in 0..ho {
                let (y0, y1) = window(oy, h);
                let d = &mut dst[oy * wo..][..wo];
                for (o, &(x0, x1)) in d.iter_mut().zip(&col_windows) {
                    let mut m = f32::NEG_INFINITY;
                    for y in y0..y1 {
                        for &v in &src[y * w + x0..y * w + x1] {
                            // NaN propagates, as in burn's and PyTorch's pools.
                            if v > m || v.is_nan() {
                                m = v;
                            }
                        }
                    }
                    o.write(m);
                }
            }
        });
    // SAFETY: the planes cover 0..len and every (row, column) of each plane was written.
    unsafe { out.set_len(len) };
    out
}
