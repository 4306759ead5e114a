//! Shared-feature extraction modules (the paper's SFEM, Fig. 2): the MSCG of DS2F with its
//! ablation alternatives (Tables IV–VI of the paper), and the fusion modules of the SuperVessel
//! (FIM) and SS-MAF (MAF) baselines (SPEC §1.2 and §6).
//!
//! | file | module | reference (`Qsingle/imed_vision`) |
//! |---|---|---|
//! | [`mscg`] | [`Mscg`], [`MscgGate`], [`Context`] | `layers/task_fusion.py::CrossGL`, `Gate` |
//! | [`cagl`] | [`Cagl`], [`DownAttention`] | `task_fusion.py::CAGL`, `DownAttention4D` |
//! | [`mrcab`] | [`Mrcab`] (with or without gpool), [`Rcab`], [`Attention`] | `task_fusion.py::RCAB`; Zhang et al. 2018 |
//! | [`ms_conv`] | [`MsConv`] | `task_fusion.py::MSConv2d`, `ImagePool` |
//! | [`aspp`] | [`Aspp`] | `models/segmentation/deeplab.py::ASPP` |
//! | [`self_attention`] | [`SelfAttention`] | DANet PAM / SAGAN (fixes `GlobalSpatialAttention`) |
//! | [`fim`] | [`Fim`] | `layers/fim.py::FIM` |
//! | [`maf`] | [`Maf`] | `layers/maf.py::MAF` |
pub mod aspp;
pub mod cagl;
pub mod fim;
pub mod maf;
pub mod mrcab;
pub mod ms_conv;
pub mod mscg;
pub mod self_attention;

use crate::error::ConfigError;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use aspp::Aspp;
pub use cagl::{Cagl, DownAttention};
pub use fim::{Fim, FimConfig};
pub use maf::{Maf, MafConfig};
pub use mrcab::{Attention, Mrcab, Rcab};
pub use ms_conv::MsConv;
pub use mscg::{Context, Mscg, MscgGate};
pub use self_attention::SelfAttention;

/// Which shared-feature module DS2F uses (`model.shared_feature.kind`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedFeatureKind {
    /// The paper's multi-scale cross gate (`CrossGL` of the code), with the ablations below.
    #[default]
    Mscg,
    /// The reference DeepLabV3+'s `CAGL` at HEAD (SPEC §1.3): SE over the concatenation,
    /// windowed multi-head attention + local branch, channel-softmax gates. Uses `hidden`,
    /// `reduction`, `down_rate` and `heads`; the MSCG ablation keys do not apply to it.
    Cagl,
}

/// The channel-attention block of the MSCG gate (Table IV of the paper).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionBlock {
    /// MRCAB as in the code at HEAD and the paper's final choice: two depthwise 3×3 convs, then
    /// a per-pixel squeeze-excitation (no global pooling).
    #[default]
    Mrcab,
    /// MRCAB with global average pooling before the squeeze-excitation ("w/ gpool" of Table IV,
    /// the code at `ec88c9b`, Nov 2022).
    MrcabGpool,
    /// The original RCAB of Zhang et al. (ECCV 2018): full 3×3 conv → ReLU → full 3×3 conv, then
    /// channel attention (global pool → 1×1 reduce → ReLU → 1×1 expand → sigmoid), residual.
    Rcab,
}

/// The multi-scale context block of the MSCG gate (Table V of the paper).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextBlock {
    /// MS-Conv (the paper's module, `MSConv2d` of the code).
    #[default]
    MsConv,
    /// The reference repo's DeepLab ASPP with rates 1, 12, 24, 36 (the commented line in
    /// `Gate`); see [`aspp`] for the exact layers.
    Aspp,
    /// Spatial self-attention (DANet's position attention module); see [`self_attention`].
    SelfAttention,
}

/// How the gated features are mapped back onto each stream (eqs. 13/14 vs the code).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateForm {
    /// The code (SPEC §1.2): `cross = W2(a ⊙ F) + F`, no activation after W2.
    #[default]
    Code,
    /// Eqs. (13)/(14): `cross = GELU(W2(a ⊙ F)) + F`. The equations have a GELU after W2 and
    /// no residual, but the text says "after processing by 1×1 Conv, the results are added
    /// with F_seg and F_sr", so the residual is kept; only the GELU differs from [`Code`].
    ///
    /// [`Code`]: GateForm::Code
    Paper,
}

/// Which parts of MS-Conv are present (Table VI of the paper). A part that is switched off is
/// replaced by a 3×3 convolution ("we demonstrate their necessity by using depthwise
/// convolution substitution"): the first group's 1×1 by a 3×3 with dilation 1 (the first
/// group's rate would be "index − 1" = 0, so the smallest rate is used), the last group's image
/// pooling by a 3×3 with dilation k − 1 (continuing the groups' rate rule). The substitutes are
/// depthwise when `depthwise` is on and full convs otherwise, like the middle groups (the paper
/// never switches DW off together with another part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MsConvParts {
    /// The first group is a 1×1 conv (else a 3×3 conv with dilation 1).
    pub one_by_one: bool,
    /// The last group is image pooling (else a 3×3 conv with dilation k − 1).
    pub image_pool: bool,
    /// Groups 2..k−1 (and the substitutes) are depthwise (else full convs within the group).
    pub depthwise: bool,
}

impl Default for MsConvParts {
    fn default() -> Self {
        Self {
            one_by_one: true,
            image_pool: true,
            depthwise: true,
        }
    }
}

/// Hyper-parameters of the MSCG shared-feature module (the `[model.shared_feature]` table of
/// an experiment config). The defaults are the reference code at HEAD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SharedFeatureConfig {
    /// The module: MSCG (default) or CAGL.
    pub kind: SharedFeatureKind,
    /// Width of the fused features `F_fu` (code: `hidden_state = 32`; unstated in the paper).
    pub hidden: usize,
    /// Squeeze ratio of the (M)RCAB channel attention (code: 4; unstated in the paper).
    pub reduction: usize,
    /// Number of MS-Conv groups k (code: 4); `hidden` must be a multiple of it, k ≥ 2.
    pub groups: usize,
    /// The attention block (Table IV).
    pub attention: AttentionBlock,
    /// The context block (Table V).
    pub context: ContextBlock,
    /// The MS-Conv parts (Table VI); only used with [`ContextBlock::MsConv`].
    pub ms_conv: MsConvParts,
    /// Code or paper form of the output gates.
    pub gate: GateForm,
    /// BN + GELU after the fusing 1×1 conv (code: true; the paper's eq. 8 has neither).
    pub fuse_norm: bool,
    /// The code's residual `+F_fu` around attention + context (`Gate`; not in the paper).
    pub inner_residual: bool,
    /// CAGL only: the global branch's down-sampling factor (code: 32); the feature maps must
    /// be at least this large.
    pub down_rate: usize,
    /// CAGL only: attention heads (code: 4); must divide `hidden`.
    pub heads: usize,
}

impl Default for SharedFeatureConfig {
    fn default() -> Self {
        Self {
            hidden: 32,
            reduction: 4,
            groups: 4,
            attention: AttentionBlock::default(),
            context: ContextBlock::default(),
            ms_conv: MsConvParts::default(),
            gate: GateForm::default(),
            fuse_norm: true,
            inner_residual: true,
            kind: SharedFeatureKind::Mscg,
            down_rate: 32,
            heads: 4,
        }
    }
}

impl SharedFeatureConfig {
    /// Checks the `[model.shared_feature]` table; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| Err(ConfigError::range(key, reason));
        if self.groups < 2 {
            return bad(
                "model.shared_feature.groups",
                "must be at least 2 (a 1×1 group and an image-pooling group)",
            );
        }
        if self.hidden == 0 || !self.hidden.is_multiple_of(self.groups) {
            return bad(
                "model.shared_feature.hidden",
                "must be a positive multiple of model.shared_feature.groups",
            );
        }
        if self.reduction == 0 || self.hidden < self.reduction {
            return bad(
                "model.shared_feature.reduction",
                "must be between 1 and model.shared_feature.hidden",
            );
        }
        if self.kind == SharedFeatureKind::Cagl {
            if self.heads == 0 || !self.hidden.is_multiple_of(self.heads) {
                return bad(
                    "model.shared_feature.heads",
                    "must be a positive divisor of model.shared_feature.hidden",
                );
            }
            if self.down_rate == 0 {
                return bad("model.shared_feature.down_rate", "must be at least 1");
            }
        }
        Ok(())
    }

    /// Builds the MSCG for streams of `sr_channels` and `seg_channels` on `device`.
    ///
    /// # Panics
    /// As [`Mscg::new`].
    pub fn init(&self, sr_channels: usize, seg_channels: usize, device: &Device) -> Mscg {
        Mscg::new(sr_channels, seg_channels, self, device)
    }
}

/// Global average pool keeping the dimensions.
///
/// # Shapes
/// - `x`: `[n, c, h, w]`
/// - output: `[n, c, 1, 1]`
pub(crate) fn global_avg_pool(x: Tensor<4>) -> Tensor<4> {
    x.mean_dim(3).mean_dim(2)
}

/// 3×3 (or 1×1) convolution with "same" padding for the given dilation, with bias.
pub(crate) fn conv(
    channels: [usize; 2],
    kernel: usize,
    dilation: usize,
    groups: usize,
    bias: bool,
    device: &Device,
) -> burn::nn::conv::Conv2d {
    let pad = dilation * (kernel - 1) / 2;
    burn::nn::conv::Conv2dConfig::new(channels, [kernel, kernel])
        .with_dilation([dilation, dilation])
        .with_groups(groups)
        .with_padding(burn::nn::PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(bias)
        .init(device)
}
