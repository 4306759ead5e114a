//! MS-Conv, the paper's multi-scale convolution (eq. 12, Fig. 3(b)); `MSConv2d` and
//! `ImagePool` of `imed_vision/layers/task_fusion.py` (SPEC §1.2), with the Table VI ablations.
use crate::ops::gelu;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;

use super::{MsConvParts, conv, global_avg_pool};

/// Image pooling of one group (`ImagePool` of the code): global average pool → 1×1 conv (with
/// bias) → broadcast back to the input size (the code's bilinear from 1×1 is a broadcast).
#[derive(Module, Debug)]
pub struct ImagePool {
    /// The 1×1 conv (PyTorch `conv`).
    pub conv: Conv2d,
}

impl ImagePool {
    /// # Shapes
    /// - `x`: `[n, c, h, w]`
    /// - output: `[n, c, h, w]`, constant over `h, w`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let pooled = crate::ops::conv2d_module(&self.conv, global_avg_pool(x)); // [n, c, 1, 1]
        pooled.expand([n, c, h, w]) // [n, c, h, w]
    }
}

/// The operation of one MS-Conv group.
#[derive(Module, Debug)]
pub enum MsBranch {
    /// A convolution (1×1, or 3×3 dilated, depthwise or full).
    Conv(Conv2d),
    /// Image pooling.
    ImagePool(ImagePool),
}

impl MsBranch {
    /// # Shapes
    /// - `x`: `[n, g, h, w]`
    /// - output: `[n, g, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            MsBranch::Conv(c) => crate::ops::conv2d_module(c, x),
            MsBranch::ImagePool(p) => p.forward(x),
        }
    }
}

/// MS-Conv: the input is split into k groups of `c/k` channels (in order); group 1 is a 1×1
/// conv, group i = 2..k−1 a depthwise 3×3 conv with dilation = padding = i − 1, group k image
/// pooling; all convs have bias. Then concatenation → BatchNorm → GELU.
///
/// PyTorch names: `convs.{i}.weight|bias` (`convs.{i}.Conv.*` here), the image pool
/// `convs.{k-1}.conv.*` (`convs.{k-1}.ImagePool.conv.*` here), `norm.weight|bias|running_*`
/// (`norm.gamma|beta|running_*` here).
#[derive(Module, Debug)]
pub struct MsConv {
    /// One operation per group.
    pub convs: Vec<MsBranch>,
    /// BatchNorm over all `c` channels.
    pub norm: BatchNorm,
}

impl MsConv {
    /// Builds an MS-Conv of `channels` in `groups` groups with the given `parts` (Table VI; see
    /// [`MsConvParts`] for the substitutes).
    ///
    /// # Panics
    /// If `groups < 2` or `channels` is not a multiple of `groups`.
    pub fn new(channels: usize, groups: usize, parts: MsConvParts, device: &Device) -> Self {
        assert!(groups >= 2, "MS-Conv needs at least 2 groups, got {groups}");
        assert!(
            channels.is_multiple_of(groups),
            "MS-Conv: {channels} channels are not a multiple of {groups} groups"
        );
        let g = channels / groups;
        let dw = if parts.depthwise { g } else { 1 };
        let convs = (0..groups)
            .map(|i| match i {
                0 if parts.one_by_one => MsBranch::Conv(conv([g, g], 1, 1, 1, true, device)),
                0 => MsBranch::Conv(conv([g, g], 3, 1, dw, true, device)),
                i if i == groups - 1 && parts.image_pool => MsBranch::ImagePool(ImagePool {
                    conv: conv([g, g], 1, 1, 1, true, device),
                }),
                // Group index i + 1 (1-based) has dilation i.
                i => MsBranch::Conv(conv([g, g], 3, i, dw, true, device)),
            })
            .collect();
        Self {
            convs,
            norm: BatchNormConfig::new(channels).init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[n, c, h, w]`
    /// - output: `[n, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let groups = x.chunk(self.convs.len(), 1); // k × [n, c/k, h, w]
        let outs = groups
            .into_iter()
            .zip(&self.convs)
            .map(|(s, op)| op.forward(s))
            .collect();
        let net = Tensor::cat(outs, 1); // [n, c, h, w]
        gelu(crate::ops::batch_norm_module(&self.norm, net)) // [n, c, h, w]
    }
}
