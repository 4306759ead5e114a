//! Training-mode batch normalisation on contiguous NCHW slices: one pass for the statistics,
//! one for the output, two for the backward (burn 0.22.1 composes it from about ten
//! element-wise passes forward and fifteen backward). Same numbers as burn's (two-pass mean and
//! biased variance, accumulated in f64). A ReLU after the batch norm can be fused: its mask is
//! recomputed from the saved input in the backward.
use rayon::prelude::*;

/// Per-channel statistics of a contiguous `[n, c, plane]` buffer: mean and biased variance,
/// two passes.
pub fn statistics(x: &[f32], n: usize, c: usize, plane: usize) -> (Vec<f32>, Vec<f32>) {
    let count = (n * plane) as f64;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = || (0..n).map(move |i| &x[(i * c + ch) * plane..][..plane]);
            let mean = planes()
                .map(|p| p.iter().map(|&v| v as f64).sum::<f64>())
                .sum::<f64>()
                / count;
            let var = planes()
                .map(|p| p.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>())
                .sum::<f64>()
                / count;
            (mean as f32, var as f32)
        })
        .unzip()
}

/// `1 / √(variance + ε)` per channel.
pub fn inv_std(variance: &[f32], epsilon: f64) -> Vec<f32> {
    variance
        .iter()
        .map(|&v| 1.0 / (v as f64 + epsilon).sqrt() as f32)
        .collect()
}

/// `relu(z)` as burn computes it: zero where `z ≤ 0`, NaN kept.
#[inline]
fn relu_of(z: f32) -> f32 {
    if z <= 0.0 { 0.0 } else { z }
}

/// The per-channel statistics of a batch norm and its affine parameters (each `c` floats).
#[derive(Clone, Copy)]
pub struct Normalise<'a> {
    /// Batch mean.
    pub mean: &'a [f32],
    /// `1 / √(variance + ε)`.
    pub inv_std: &'a [f32],
    /// Scale γ.
    pub gamma: &'a [f32],
    /// Shift β.
    pub beta: &'a [f32],
    /// Whether a ReLU follows.
    pub relu: bool,
}

/// The output `(x − mean)·inv_std·γ + β` (then ReLU if asked) of a contiguous `[n, c, plane]`
/// buffer `xs`.
pub fn forward(xs: &[f32], c: usize, plane: usize, p: &Normalise) -> Vec<f32> {
    let (mean, inv_std, g, b) = (p.mean, p.inv_std, p.gamma, p.beta);
    let mut out = vec![0.0f32; xs.len()];
    out.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(idx, o)| {
            let ch = idx % c;
            let (m, s) = (mean[ch], inv_std[ch] * g[ch]);
            let values = o.iter_mut().zip(&xs[idx * plane..][..plane]);
            if p.relu {
                for (y, &v) in values {
                    *y = relu_of((v - m) * s + b[ch]);
                }
            } else {
                for (y, &v) in values {
                    *y = (v - m) * s + b[ch];
                }
            }
        });
    out
}

/// The gradients of [`forward`] for the output gradient `dy`: `(dx, dγ, dβ)`, `dx` only when
/// `want_dx`. With a fused ReLU, `dy` first goes through its mask, recomputed from `xs` with
/// the forward's exact expression.
pub fn backward(
    xs: &[f32],
    dy: &[f32],
    n: usize,
    c: usize,
    plane: usize,
    p: &Normalise,
    want_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let (mean, inv_std, g) = (p.mean, p.inv_std, p.gamma);
    let masked: Vec<f32>;
    let dy = if p.relu {
        let b = p.beta;
        let mut m = vec![0.0f32; dy.len()];
        m.par_chunks_mut(plane.max(1))
            .enumerate()
            .for_each(|(idx, out)| {
                let ch = idx % c;
                let (mu, s, shift) = (mean[ch], inv_std[ch] * g[ch], b[ch]);
                let off = idx * plane;
                for ((o, &d), &v) in out
                    .iter_mut()
                    .zip(&dy[off..off + plane])
                    .zip(&xs[off..off + plane])
                {
                    *o = if (v - mu) * s + shift <= 0.0 { 0.0 } else { d };
                }
            });
        masked = m;
        &masked[..]
    } else {
        dy
    };
    // Σ dy and Σ dy·x̂ per channel.
    let (sum_dy, sum_dy_xhat): (Vec<f32>, Vec<f32>) = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut a, mut b) = (0.0f64, 0.0f64);
            for i in 0..n {
                let off = (i * c + ch) * plane;
                for (&d, &v) in dy[off..off + plane].iter().zip(&xs[off..off + plane]) {
                    a += d as f64;
                    b += (d * (v - mean[ch]) * inv_std[ch]) as f64;
                }
            }
            (a as f32, b as f32)
        })
        .unzip();
    let dx = want_dx.then(|| {
        let count = (n * plane) as f32;
        let mut dx = vec![0.0f32; xs.len()];
        dx.par_chunks_mut(plane.max(1))
            .enumerate()
            .for_each(|(idx, out)| {
                let ch = idx % c;
                let off = idx * plane;
                let scale = g[ch] * inv_std[ch];
                let (mdy, mdyx) = (sum_dy[ch] / count, sum_dy_xhat[ch] / count);
                for ((o, &d), &v) in out
                    .iter_mut()
                    .zip(&dy[off..off + plane])
                    .zip(&xs[off..off + plane])
                {
                    let xhat = (v - mean[ch]) * inv_std[ch];
                    *o = scale * (d - mdy - xhat * mdyx);
                }
            });
        dx
    });
    (dx, sum_dy_xhat, sum_dy)
}
