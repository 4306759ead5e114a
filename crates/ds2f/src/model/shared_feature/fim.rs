//! FIM, the feature interaction module of the SuperVessel baseline (Hu, Qiu et al., CCPR 2022);
//! `FIM(3, C, hidden_state=8)` of `imed_vision/layers/fim.py` and the residual the reference
//! `Unet` adds after it (SPEC §6). It works after the heads, on the SR image and the seg
//! logits at HR.
//!
//! | burn path | PyTorch name |
//! |---|---|
//! | `fusion_conv.*` | `fusion_conv.0.*` |
//! | `spatial_conv.branch{1,2,3}.*` | `spatial_conv.branch{1,2,3}.*` |
//! | `att_reduce.*` | `att.0.*` |
//! | `att_out.*` | `att.2.*` |
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Hyper-parameters of FIM (the `[model.fim]` table, used by `supervessel`); the default is
/// the reference's `FIM(3, C, hidden_state=8)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FimConfig {
    /// Channels per dilation group (reference: 8); the fused width is three times this.
    pub hidden: usize,
}

impl Default for FimConfig {
    fn default() -> Self {
        Self { hidden: 8 }
    }
}

impl FimConfig {
    /// Checks the table; errors name the key (`model.fim.*`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.hidden == 0 {
            return Err(ConfigError::range("model.fim.hidden", "must be at least 1"));
        }
        Ok(())
    }

    /// Builds a FIM for an SR image of `sr_channels` and `seg_channels` logits on `device`.
    pub fn init(&self, sr_channels: usize, seg_channels: usize, device: &Device) -> Fim {
        Fim::new(sr_channels, seg_channels, self.hidden, device)
    }
}

use super::conv;

/// ShuffleNet channel shuffle, as `imed_vision/layers/channel_shuffle.py`: reshape to
/// `[n, groups, c/groups, h, w]`, swap the two channel axes, flatten back.
///
/// # Shapes
/// - `x`: `[n, c, h, w]`, `c` a multiple of `groups`
/// - output: `[n, c, h, w]`, output channel `j·groups + g` = input channel `g·(c/groups) + j`
pub fn channel_shuffle(x: Tensor<4>, groups: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    assert!(
        c % groups == 0,
        "channel shuffle: {c} channels, {groups} groups"
    );
    x.reshape([n, groups, c / groups, h, w]) // [n, g, c/g, h, w]
        .swap_dims(1, 2) // [n, c/g, g, h, w]
        .reshape([n, c, h, w])
}

/// `SpatialModule` of FIM: three groups of `hidden` channels through depthwise 3×3 convs (with
/// bias) at dilations 1, 2, 4, concatenated and channel-shuffled with 3 groups.
#[derive(Module, Debug)]
pub struct SpatialModule {
    /// Depthwise 3×3, dilation 1.
    pub branch1: Conv2d,
    /// Depthwise 3×3, dilation 2.
    pub branch2: Conv2d,
    /// Depthwise 3×3, dilation 4.
    pub branch3: Conv2d,
}

impl SpatialModule {
    /// # Shapes
    /// - `x`: `[n, 3·hidden, h, w]`
    /// - output: `[n, 3·hidden, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut parts = x.chunk(3, 1).into_iter(); // 3 × [n, hidden, h, w]
        let mut next = || parts.next().expect("three groups");
        let outs = vec![
            crate::ops::conv2d_module(&self.branch1, next()),
            crate::ops::conv2d_module(&self.branch2, next()),
            crate::ops::conv2d_module(&self.branch3, next()),
        ];
        channel_shuffle(Tensor::cat(outs, 1), 3) // [n, 3·hidden, h, w]
    }
}

/// FIM: `att = σ(W_2 ReLU(W_1 Shuffle(DW(ReLU(W_fu cat[sr, seg])))))` of one channel, then
/// `fusion_seg = att ⊙ seg + seg` (the reference `Unet`'s residual, HEAD; `ec88c9b` had no
/// residual). All convs have bias.
#[derive(Module, Debug)]
pub struct Fim {
    /// 1×1 `3 + C → 3·hidden`, ReLU after.
    pub fusion_conv: Conv2d,
    /// The multi-dilation depthwise module.
    pub spatial_conv: SpatialModule,
    /// 1×1 `3·hidden → hidden`, ReLU after.
    pub att_reduce: Conv2d,
    /// 1×1 `hidden → 1`, sigmoid after.
    pub att_out: Conv2d,
}

impl Fim {
    /// Builds a FIM for an SR image of `sr_channels` (3) and `seg_channels` (C) logits, with
    /// `hidden` channels per dilation group (reference: 8).
    pub fn new(sr_channels: usize, seg_channels: usize, hidden: usize, device: &Device) -> Self {
        let width = 3 * hidden;
        let dw = |d| conv([hidden, hidden], 3, d, hidden, true, device);
        Self {
            fusion_conv: conv([sr_channels + seg_channels, width], 1, 1, 1, true, device),
            spatial_conv: SpatialModule {
                branch1: dw(1),
                branch2: dw(2),
                branch3: dw(4),
            },
            att_reduce: conv([width, hidden], 1, 1, 1, true, device),
            att_out: conv([hidden, 1], 1, 1, 1, true, device),
        }
    }

    /// Returns the fused segmentation logits.
    ///
    /// # Shapes
    /// - `sr_image`: `[n, 3, H, W]` SR output
    /// - `seg_logits`: `[n, C, H, W]` segmentation logits at the same size
    /// - output: `[n, C, H, W]`
    pub fn forward(&self, sr_image: Tensor<4>, seg_logits: Tensor<4>) -> Tensor<4> {
        let net = Tensor::cat(vec![sr_image, seg_logits.clone()], 1); // [n, 3 + C, H, W]
        let net = relu(crate::ops::conv2d_module(&self.fusion_conv, net)); // [n, 3·hidden, H, W]
        let net = self.spatial_conv.forward(net); // [n, 3·hidden, H, W]
        let net = relu(crate::ops::conv2d_module(&self.att_reduce, net)); // [n, hidden, H, W]
        let att = sigmoid(crate::ops::conv2d_module(&self.att_out, net)); // [n, 1, H, W]
        att * seg_logits.clone() + seg_logits // [n, C, H, W]
    }
}
