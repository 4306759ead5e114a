//! Feature-affinity loss of DSRL (Wang et al., CVPR 2020, "Dual Super-Resolution Learning for
//! Semantic Segmentation"), a baseline of the paper: it pulls the pairwise pixel similarities of
//! the segmentation features towards those of the super-resolution features. Two versions:
//! the reference's `imed_vision/loss/fa_loss.py::FALoss` and the DSRL re-implementation
//! `Dootmaan/DSRL` `utils/fa_loss.py` (SPEC §6).
use burn::prelude::*;
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;

/// Which similarity matrix and normalisation [`FaLoss`] uses. Both first average-pool the
/// features with kernel = stride = `1/scale` (no padding, floor) and flatten the pixels:
/// `F` is `[n, C, P]`, `P = h'·w'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaVariant {
    /// `imed_vision`: `S = FᵀF` per sample (`[P, P]`), each divided by the Frobenius norm of the
    /// **whole batch** `[n, P, P]` tensor; loss `Σ |S_seg − S_sr|` over the batch.
    #[default]
    Reference,
    /// `Dootmaan/DSRL`: every pixel's feature vector L2-normalised along the channels (norm
    /// clamped at 1e-12, as `F.normalize`; the original divides by the raw norm), `S = FᵀF`,
    /// loss `Σ |S_seg − S_sr| / P²`, summed (not averaged) over the batch as the original.
    Dsrl,
}

/// Feature-affinity loss between two feature maps of the same shape.
#[derive(Debug, Clone, Copy)]
pub struct FaLoss {
    /// Sub-sampling rate; the features are average-pooled by `round(1/scale)`. Reference:
    /// `1/32` (`sub_scale_rate`).
    pub scale: f64,
    /// The formula (default: [`FaVariant::Reference`]).
    pub variant: FaVariant,
}

impl Default for FaLoss {
    fn default() -> Self {
        Self {
            scale: 1.0 / 32.0,
            variant: FaVariant::Reference,
        }
    }
}

impl FaLoss {
    /// The pooling kernel `round(1/scale)`.
    pub fn kernel(&self) -> usize {
        assert!(
            self.scale > 0.0 && self.scale <= 1.0,
            "FA: scale must lie in (0, 1]"
        );
        (1.0 / self.scale).round() as usize
    }

    /// # Shapes
    /// - `seg`: segmentation features `[n, C, h, w]`, `h` and `w` at least `1/scale`
    /// - `sr`: super-resolution features, the same shape
    /// - output: `[1]` the loss
    pub fn forward(&self, seg: Tensor<4>, sr: Tensor<4>) -> Tensor<1> {
        assert_eq!(seg.dims(), sr.dims(), "FA: feature shapes differ");
        let [_, _, h, w] = seg.dims();
        let k = self.kernel();
        assert!(
            h >= k && w >= k,
            "FA: features {h}×{w} smaller than the pooling kernel {k}"
        );
        let s_seg = self.similarity(seg, k);
        let s_sr = self.similarity(sr, k);
        let [_, p, _] = s_seg.dims();
        let l1 = s_seg.sub(s_sr).abs().sum();
        match self.variant {
            FaVariant::Reference => l1,
            FaVariant::Dsrl => l1.div_scalar((p * p) as f64),
        }
    }

    /// `[n, P, P]` similarity matrix of the pooled features.
    fn similarity(&self, x: Tensor<4>, k: usize) -> Tensor<3> {
        let x = avg_pool2d(x, AvgPoolOptions::new([k, k]));
        let [n, c, h, w] = x.dims();
        let f = x.reshape([n, c, h * w]); // [n, C, P]
        match self.variant {
            FaVariant::Reference => {
                let s = f.clone().swap_dims(1, 2).matmul(f); // [n, P, P]
                let norm = s.clone().square().sum().sqrt(); // Frobenius norm of the batch
                s.div(norm.reshape([1, 1, 1]))
            }
            FaVariant::Dsrl => {
                let norm = f.clone().square().sum_dim(1).sqrt().clamp_min(1e-12); // [n, 1, P]
                let f = f.div(norm);
                f.clone().swap_dims(1, 2).matmul(f)
            }
        }
    }
}
