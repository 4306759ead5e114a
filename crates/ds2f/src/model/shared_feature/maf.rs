//! MAF, the fusion module of the SS-MAF baseline (BIBM 2022); `MAF(64, 64, hidden_dim=32,
//! groups=4)` of `imed_vision/layers/maf.py` (SPEC §6), applied to the LR decoder features
//! before the heads.
//!
//! | burn path | PyTorch name |
//! |---|---|
//! | `fusion_conv.*` | `fusion.0.*` |
//! | `ssc.conv.{i}.*` | `fusion.1.conv.{i}.*` |
//! | `ssc.bn.{gamma,beta,running_*}` | `fusion.1.bn.{weight,bias,running_*}` |
//! | `sr_att.*` | `sr_att.0.*` |
//! | `seg_att.*` | `seg_att.0.*` |
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use serde::{Deserialize, Serialize};

use super::conv;
use crate::error::ConfigError;

/// Hyper-parameters of MAF (the `[model.maf]` table, used by `ssmaf`); the defaults are the
/// reference's `MAF(64, 64, hidden_dim=32, groups=4)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MafConfig {
    /// Width of the fused features (reference: 32).
    pub hidden: usize,
    /// Number of SSC groups (reference: 4); `hidden` must be a multiple of it, at least 2
    /// (group 1 is the 1×1 conv).
    pub groups: usize,
}

impl Default for MafConfig {
    fn default() -> Self {
        Self {
            hidden: 32,
            groups: 4,
        }
    }
}

impl MafConfig {
    /// Checks the table; errors name the key (`model.maf.*`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.groups < 2 {
            return Err(ConfigError::range(
                "model.maf.groups",
                "must be at least 2 (a 1×1 group and a dilated one)",
            ));
        }
        if self.hidden == 0 || !self.hidden.is_multiple_of(self.groups) {
            return Err(ConfigError::range(
                "model.maf.hidden",
                "must be a positive multiple of model.maf.groups",
            ));
        }
        Ok(())
    }

    /// Builds a MAF for streams of `sr_channels` and `seg_channels` on `device`.
    ///
    /// # Panics
    /// On a config [`MafConfig::validate`] refuses.
    pub fn init(&self, sr_channels: usize, seg_channels: usize, device: &Device) -> Maf {
        Maf::new(sr_channels, seg_channels, self.hidden, self.groups, device)
    }
}

/// SSC: k groups; group 1 is a 1×1 conv with bias, group i = 2..k a **full** 3×3 conv without
/// bias at dilation = padding = i − 1; concatenation → BN → `+ x` → ReLU.
#[derive(Module, Debug)]
pub struct Ssc {
    /// One conv per group.
    pub conv: Vec<Conv2d>,
    /// BN over all channels.
    pub bn: BatchNorm,
}

impl Ssc {
    /// Builds an SSC of `channels` in `groups` groups.
    ///
    /// # Panics
    /// If `channels` is not a multiple of `groups`.
    pub fn new(channels: usize, groups: usize, device: &Device) -> Self {
        assert!(
            groups > 0 && channels.is_multiple_of(groups),
            "SSC: {channels} channels are not a multiple of {groups} groups"
        );
        let g = channels / groups;
        let conv = (0..groups)
            .map(|i| match i {
                0 => conv([g, g], 1, 1, 1, true, device),
                i => conv([g, g], 3, i, 1, false, device),
            })
            .collect();
        Self {
            conv,
            bn: BatchNormConfig::new(channels).init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[n, c, h, w]`
    /// - output: `[n, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let outs = x
            .clone()
            .chunk(self.conv.len(), 1) // k × [n, c/k, h, w]
            .into_iter()
            .zip(&self.conv)
            .map(|(s, c)| crate::ops::conv2d_module(c, s))
            .collect();
        relu(crate::ops::batch_norm_module(&self.bn, Tensor::cat(outs, 1)) + x) // [n, c, h, w]
    }
}

/// MAF: `F = SSC(W_fu · cat[F_sr, F_seg])`, `out_t = σ(W_t F) ⊙ F_t + F_t` for t ∈ {sr, seg}.
#[derive(Module, Debug)]
pub struct Maf {
    /// 1×1 `sr + seg → hidden` with bias.
    pub fusion_conv: Conv2d,
    /// The split-scale conv.
    pub ssc: Ssc,
    /// 1×1 `hidden → sr` with bias, sigmoid after.
    pub sr_att: Conv2d,
    /// 1×1 `hidden → seg` with bias, sigmoid after.
    pub seg_att: Conv2d,
}

impl Maf {
    /// Builds a MAF for streams of `sr_channels` and `seg_channels`, `hidden` fused channels in
    /// `groups` SSC groups (reference: 64, 64, 32, 4).
    ///
    /// # Panics
    /// If `hidden` is not a multiple of `groups`.
    pub fn new(
        sr_channels: usize,
        seg_channels: usize,
        hidden: usize,
        groups: usize,
        device: &Device,
    ) -> Self {
        Self {
            fusion_conv: conv([sr_channels + seg_channels, hidden], 1, 1, 1, true, device),
            ssc: Ssc::new(hidden, groups, device),
            sr_att: conv([hidden, sr_channels], 1, 1, 1, true, device),
            seg_att: conv([hidden, seg_channels], 1, 1, 1, true, device),
        }
    }

    /// Returns `(sr, seg)`, the re-weighted features of both streams.
    ///
    /// # Shapes
    /// - `f_sr`: `[n, c_sr, h, w]`
    /// - `f_seg`: `[n, c_seg, h, w]`
    /// - output: `([n, c_sr, h, w], [n, c_seg, h, w])`
    pub fn forward(&self, f_sr: Tensor<4>, f_seg: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let cat = Tensor::cat(vec![f_sr.clone(), f_seg.clone()], 1); // [n, c_sr + c_seg, h, w]
        let fusion = self
            .ssc
            .forward(crate::ops::conv2d_module(&self.fusion_conv, cat)); // [n, hidden, h, w]
        let sr_att = sigmoid(crate::ops::conv2d_module(&self.sr_att, fusion.clone())); // [n, c_sr, h, w]
        let seg_att = sigmoid(crate::ops::conv2d_module(&self.seg_att, fusion)); // [n, c_seg, h, w]
        (
            sr_att * f_sr.clone() + f_sr,
            seg_att * f_seg.clone() + f_seg,
        )
    }
}
