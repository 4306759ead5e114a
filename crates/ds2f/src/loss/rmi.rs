//! Region Mutual Information loss (Zhao et al., NeurIPS 2019, <https://github.com/ZJULearning/RMI>)
//! as the reference's copy `imed_vision/loss/rmi.py` computes it: the DS2F loss on the
//! segmentation proxy output of the shared-feature module (SPEC §2).
//!
//! `total = λ·BCE + (1 − λ)·RMI` (`lambda_way = 1`, `forward_sigmoid`):
//! - BCE: sigmoid binary cross-entropy with logits against the one-hot labels, **summed** over
//!   pixels and classes of valid pixels and divided by `#valid + 1`;
//! - RMI: `p = sigmoid(logits)·valid + 1e-6` and the one-hot labels are average-pooled
//!   (`k = s = 3`, padding 1, padding counted), then per class the 3×3 neighbourhoods (valid
//!   region) give 9-dimensional points; after centring, `La = LLᵀ`, `Pr = PPᵀ`, `LP = LPᵀ`,
//!   `V = La − LP (Pr + 5e-4·I)⁻¹ LPᵀ` and `½·logdet(V + 5e-4·I)` (Cholesky,
//!   `2·Σ log(diag + 1e-8)`); the mean over the batch, divided by 9, **summed over classes**.
//!
//! The loss can be negative. The 9×9 algebra runs in float64 by default, as in the reference;
//! it is written with batched tensor ops (an unrolled Cholesky and a forward substitution), so
//! autodiff differentiates it. Instead of the reference's explicit inverse,
//! `LP (Pr + αI)⁻¹ LPᵀ = WᵀW` with `W = C⁻¹ LPᵀ` and `C Cᵀ = Pr + αI`: the same value, one
//! Cholesky instead of an inverse.
use burn::prelude::*;
use burn::tensor::FloatDType;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;

use super::{one_hot, valid_mask};

/// Added to the diagonal so that the covariance matrices are positive definite.
const POS_ALPHA: f64 = 5e-4;
/// Added to the probabilities (`_CLIP_MIN` of the reference).
const CLIP_MIN: f64 = 1e-6;

/// The two parts of [`RmiLoss`], each a `[1]` tensor in the dtype of the logits.
#[derive(Debug, Clone)]
pub struct RmiParts {
    /// The sigmoid BCE part (sum over valid pixels and classes / (#valid + 1)).
    pub bce: Tensor<1>,
    /// The RMI lower-bound part (summed over classes).
    pub lower_bound: Tensor<1>,
}

/// RMI loss with its sigmoid BCE companion, `λ·BCE + (1 − λ)·RMI`.
///
/// Labels outside `0..C` are ignored (the reference ignores labels `≥ C`). Of the reference's
/// pooling ways only way 1 (average pooling, the one DS2F uses) is implemented.
#[derive(Debug, Clone)]
pub struct RmiLoss {
    /// Number of classes `C` (the channel count of the logits).
    pub num_classes: usize,
    /// Side of the square neighbourhood; each point has `radius²` dimensions. Reference: 3.
    pub radius: usize,
    /// Average-pooling kernel = stride, padding `pool_size / 2`, padded zeros counted; 1 means
    /// no pooling. Reference: 3.
    pub pool_size: usize,
    /// Weight λ of the BCE part; the RMI part gets `1 − λ`. Reference: 0.5.
    pub lambda: f32,
    /// Float type of the covariance / Cholesky algebra. Reference and default: `F64`. `F32`
    /// is for a backend without float64 (wgpu); measured against `F64` on the flex backend
    /// (C = 2–5, maps 64²–256²) the lower bound differs by ≤ 6e-6 relative and the gradient by
    /// ≤ 1e-3 of its largest entry.
    pub precision: FloatDType,
}

impl RmiLoss {
    /// The reference configuration for `num_classes` classes: radius 3, pool 3, λ = 0.5, f64.
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            radius: 3,
            pool_size: 3,
            lambda: 0.5,
            precision: FloatDType::F64,
        }
    }

    /// `λ·BCE + (1 − λ)·RMI`.
    ///
    /// # Shapes
    /// - `logits`: `[n, C, h, w]`
    /// - `target`: `[n, h, w]` class indices (labels outside `0..C` are ignored)
    /// - output: `[1]` the loss
    pub fn forward(&self, logits: Tensor<4>, target: Tensor<3, Int>) -> Tensor<1> {
        let parts = self.forward_parts(logits, target);
        parts
            .bce
            .mul_scalar(self.lambda)
            .add(parts.lower_bound.mul_scalar(1.0 - self.lambda))
    }

    /// Both parts, unweighted.
    ///
    /// # Shapes
    /// - `logits`: `[n, C, h, w]`; after pooling, `h` and `w` must still be at least `radius`
    /// - `target`: `[n, h, w]` class indices
    /// - output: two `[1]` tensors
    pub fn forward_parts(&self, logits: Tensor<4>, target: Tensor<3, Int>) -> RmiParts {
        let [n, c, h, w] = logits.dims();
        assert_eq!(c, self.num_classes, "RMI: logits channels != num_classes");
        assert_eq!(target.dims(), [n, h, w], "RMI: target shape");
        let dtype = logits.dtype();
        let labels = one_hot(target.clone(), c).cast(dtype); // [n, C, h, w]
        let valid = valid_mask(target, c).cast(dtype); // [n, 1, h, w]

        // Part I: BCE with logits, max(x, 0) − x·t + log(1 + e^−|x|), summed over valid pixels.
        let per_element = relu(logits.clone())
            .sub(logits.clone().mul(labels.clone()))
            .add(logits.clone().abs().neg().exp().log1p()); // [n, C, h, w]
        let bce = per_element
            .mul(valid.clone())
            .sum()
            .div(valid.clone().sum().add_scalar(1.0));

        // Part II: the lower bound of the region mutual information.
        let probs = sigmoid(logits).mul(valid).add_scalar(CLIP_MIN); // [n, C, h, w]
        let lower_bound = self.lower_bound(labels, probs).cast(dtype);
        RmiParts { bce, lower_bound }
    }

    /// `Σ_c mean_n ½·logdet(V + αI) / radius²` on the (pooled) labels and probabilities.
    fn lower_bound(&self, labels: Tensor<4>, probs: Tensor<4>) -> Tensor<1> {
        let (labels, probs) = if self.pool_size > 1 {
            let p = self.pool_size;
            let options = AvgPoolOptions::new([p, p]).with_padding([p / 2, p / 2]);
            (
                avg_pool2d(labels, options.clone()),
                avg_pool2d(probs, options),
            )
        } else {
            (labels, probs)
        };
        let [n, c, h, w] = labels.dims();
        let r = self.radius;
        assert!(
            r >= 1 && h >= r && w >= r,
            "RMI: the pooled map {h}×{w} is smaller than the radius {r}"
        );
        let d = r * r;
        let precision = self.precision;
        let la = neighbourhoods(labels, r).cast(precision); // [n·C, d, M]
        let pr = neighbourhoods(probs, r).cast(precision); // [n·C, d, M]
        let la = la.clone().sub(la.mean_dim(2));
        let pr = pr.clone().sub(pr.mean_dim(2));
        let la_t = la.clone().swap_dims(1, 2);
        let la_cov = la.clone().matmul(la_t); // [n·C, d, d]
        let pr_cov = pr.clone().matmul(pr.clone().swap_dims(1, 2)); // [n·C, d, d]
        let la_pr = la.matmul(pr.swap_dims(1, 2)); // [n·C, d, d]

        let eye = Tensor::<2>::eye(d, &la_cov.device())
            .cast(precision)
            .mul_scalar(POS_ALPHA)
            .unsqueeze_dim::<3>(0); // [1, d, d]
        let (chol, chol_diag) = cholesky(pr_cov.add(eye.clone()));
        let solved = forward_substitution(&chol, &chol_diag, la_pr.swap_dims(1, 2)); // C⁻¹ LPᵀ
        let appro_var = la_cov.sub(solved.clone().swap_dims(1, 2).matmul(solved));
        let (_, diag) = cholesky(appro_var.add(eye));
        // ½·logdet = ½·2·Σ log(diag + 1e-8)
        let half_logdet = diag
            .into_iter()
            .map(|v| log_diag(v.add_scalar(1e-8)))
            .reduce(|a, b| a.add(b))
            .expect("d ≥ 1"); // [n·C, 1, 1]
        // Mean over the batch, divided by d, summed over classes (in `precision`; the caller
        // casts back to the logits' dtype, the reference's `.float()`).
        half_logdet
            .reshape([n, c])
            .mean_dim(0)
            .div_scalar(d as f64)
            .sum()
    }
}

/// `ln(x)` of the Cholesky diagonal (> 0), in `x`'s dtype on the CPU. Elsewhere an f64 `x` takes
/// its logarithm in f32 ([`log_via_f32`]): SPIR-V's GLSL.std.450 `Log` is defined for 16- and
/// 32-bit floats only, cubecl 0.11.3 emits it for f64 as well, and NVIDIA's Vulkan driver
/// rejects such a shader (`NVVM compilation failed`; lavapipe accepts it). Only this `log` is
/// narrowed; the covariances and Cholesky (additions, products, `sqrt`) stay in f64.
fn log_diag(x: Tensor<3>) -> Tensor<3> {
    if x.dtype() == burn::tensor::DType::F64 && !crate::ops::on_flex(&x) {
        log_via_f32(x)
    } else {
        x.log()
    }
}

/// `ln(x)` computed in f32 and returned in `x`'s dtype (relative error ≤ 2⁻²⁴ of the result
/// plus that of rounding `x` to f32).
fn log_via_f32(x: Tensor<3>) -> Tensor<3> {
    let dtype = x.dtype();
    x.cast(FloatDType::F32).log().cast(dtype)
}

/// The `r × r` neighbourhood vectors over the valid region, ordered `(dy, dx)` row-major as the
/// reference's `map_get_pairs`.
///
/// # Shapes
/// - `x`: `[n, C, h, w]`
/// - output: `[n·C, r², (h − r + 1)·(w − r + 1)]`
fn neighbourhoods(x: Tensor<4>, r: usize) -> Tensor<3> {
    let [n, c, h, w] = x.dims();
    let (nh, nw) = (h - r + 1, w - r + 1);
    let shifted = (0..r)
        .flat_map(|dy| (0..r).map(move |dx| (dy, dx)))
        .map(|(dy, dx)| {
            x.clone()
                .slice(s![.., .., dy..dy + nh, dx..dx + nw])
                .reshape([n * c, 1, nh * nw])
        })
        .collect();
    Tensor::cat(shifted, 1)
}

/// Batched Cholesky factor `L` (lower triangular, `L Lᵀ = a`) by columns, with tensor ops only
/// so that autodiff can differentiate it. Also returns the diagonal `L[j, j]` as `[B, 1, 1]`
/// tensors. `a` must be symmetric positive definite.
///
/// # Shapes
/// - `a`: `[B, d, d]`
/// - output: `[B, d, d]` and `d` tensors `[B, 1, 1]`
fn cholesky(a: Tensor<3>) -> (Tensor<3>, Vec<Tensor<3>>) {
    let [_, d, _] = a.dims();
    let device = a.device();
    let dtype = a.dtype();
    let mut factor: Option<Tensor<3>> = None; // the first j columns, [B, d, j]
    let mut diag = Vec::with_capacity(d);
    for j in 0..d {
        let mut column = a.clone().narrow(2, j, 1); // [B, d, 1]
        if let Some(previous) = &factor {
            let row = previous.clone().narrow(1, j, 1).swap_dims(1, 2); // [B, j, 1]
            column = column.sub(previous.clone().matmul(row));
        }
        let pivot = column.clone().narrow(1, j, 1).sqrt(); // [B, 1, 1]
        let below: Vec<f32> = (0..d).map(|i| if i >= j { 1.0 } else { 0.0 }).collect();
        let below = Tensor::<1>::from_floats(below.as_slice(), &device)
            .cast(dtype)
            .reshape([1, d, 1]);
        let column = column.div(pivot.clone()).mul(below); // zero above the diagonal
        factor = Some(match factor {
            None => column,
            Some(previous) => Tensor::cat(vec![previous, column], 2),
        });
        diag.push(pivot);
    }
    (factor.expect("d ≥ 1"), diag)
}

/// `L⁻¹ m` for a lower-triangular `L` with diagonal `diag`, row by row with tensor ops.
///
/// # Shapes
/// - `l`: `[B, d, d]`, `diag`: `d` tensors `[B, 1, 1]`, `m`: `[B, d, k]`
/// - output: `[B, d, k]`
fn forward_substitution(l: &Tensor<3>, diag: &[Tensor<3>], m: Tensor<3>) -> Tensor<3> {
    let [_, d, _] = l.dims();
    let mut solved: Option<Tensor<3>> = None; // the first i rows, [B, i, k]
    for (i, pivot) in diag.iter().enumerate().take(d) {
        let mut row = m.clone().narrow(1, i, 1); // [B, 1, k]
        if let Some(previous) = &solved {
            let coefficients = l.clone().narrow(1, i, 1).narrow(2, 0, i); // [B, 1, i]
            row = row.sub(coefficients.matmul(previous.clone()));
        }
        let row = row.div(pivot.clone());
        solved = Some(match solved {
            None => row,
            Some(previous) => Tensor::cat(vec![previous, row], 1),
        });
    }
    solved.expect("d ≥ 1")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f32 logarithm used on GPU devices agrees with the f64 one, value and gradient, over
    /// the range a Cholesky diagonal (+ 1e-8) takes.
    #[test]
    fn log_via_f32_matches_the_f64_log() {
        let device = burn::tensor::Device::flex().autodiff();
        let values: Vec<f64> = (0..12).map(|i| 1e-8 * 10f64.powi(i)).collect();
        let x = Tensor::<3>::from_data(TensorData::new(values.clone(), [1, 1, 12]), &device)
            .cast(FloatDType::F64)
            .require_grad();
        assert_eq!(x.dtype(), burn::tensor::DType::F64);
        // The values as the tensor holds them (the device may have rounded them on the way in).
        let values: Vec<f64> = x.clone().into_data().iter::<f64>().collect();
        let narrowed = log_via_f32(x.clone());
        assert_eq!(narrowed.dtype(), burn::tensor::DType::F64);
        let grads = narrowed.clone().sum().backward();
        let got: Vec<f64> = narrowed.into_data().iter::<f64>().collect();
        let grad: Vec<f64> = x.grad(&grads).unwrap().into_data().iter::<f64>().collect();
        for ((v, g), d) in values.iter().zip(&got).zip(&grad) {
            let exact = v.ln();
            assert!(
                (g - exact).abs() <= 1e-6 * exact.abs().max(1.0),
                "ln {v}: {g} vs {exact}"
            );
            assert!(
                (d * v - 1.0).abs() <= 1e-6,
                "d ln / dx at {v}: {d} vs {}",
                1.0 / v
            );
        }
        // ... and it is computed in f32: f64 rounding alone would agree to ~1e-16.
        let narrowed = got
            .iter()
            .zip(&values)
            .any(|(g, v)| (g - v.ln()).abs() > 1e-12);
        assert!(narrowed, "the logarithm was not taken in f32");
    }
}
