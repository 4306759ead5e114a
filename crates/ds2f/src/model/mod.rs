//! Models: the reference U-Net split into `encoder`, `decoder` and `seg_head` (the parts of
//! segmentation_models_pytorch), with the framework and backbone chosen by config.
pub mod blocks;
pub mod complexity;
pub mod seg_head;
pub mod unet;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use seg_head::SegHead;
pub use unet::{UnetDecoder, UnetEncoder};

/// Which framework of the paper to build. Only the segmentation-stream frameworks exist so far;
/// the SR stream, MSCG and the other baselines are added as further variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framework {
    /// Plain U-Net at the input resolution (forces r = 1).
    Unet,
    /// U-Net + bilinear ×r of the logits ("U-Net+Inter", the paper's first baseline).
    UnetInter,
}

/// Which encoder/decoder family to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backbone {
    /// The reference U-Net (SPEC §1.1).
    Unet,
}

/// Model hyper-parameters (the `[model]` table of an experiment config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelConfig {
    /// The framework (`unet`, `unet_inter`).
    pub framework: Framework,
    /// The backbone (`unet`).
    pub backbone: Backbone,
    /// Base width b of the U-Net (paper: 64): widths b, 2b, 4b, 8b, 16b.
    pub base: usize,
    /// Number of classes C, background included (vessels: 2).
    pub num_classes: usize,
    /// Input channels (RGB: 3).
    pub in_channels: usize,
    /// Up-scale rate r: HR = r × LR.
    pub upscale: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            framework: Framework::UnetInter,
            backbone: Backbone::Unet,
            base: 64,
            num_classes: 2,
            in_channels: 3,
            upscale: 2,
        }
    }
}

impl ModelConfig {
    /// The rate actually used: a plain U-Net always works at r = 1.
    pub fn effective_upscale(&self) -> usize {
        match self.framework {
            Framework::Unet => 1,
            Framework::UnetInter => self.upscale,
        }
    }

    /// Builds the model on `device` (parameters drawn from the device's seeded RNG).
    pub fn init(&self, device: &Device) -> Segmenter {
        match self.backbone {
            Backbone::Unet => Segmenter {
                encoder: UnetEncoder::new(self.in_channels, self.base, device),
                decoder: UnetDecoder::new(self.base, device),
                seg_head: SegHead::new(
                    self.base,
                    self.num_classes,
                    self.effective_upscale(),
                    device,
                ),
            },
        }
    }
}

/// A segmentation model: LR image in, HR class logits out. This is the whole inference graph.
#[derive(Module, Debug)]
pub struct Segmenter {
    /// Shared encoder.
    pub encoder: UnetEncoder,
    /// Segmentation decoder.
    pub decoder: UnetDecoder,
    /// 1×1 head + bilinear ×r.
    pub seg_head: SegHead,
}

impl Segmenter {
    /// # Shapes
    /// - `x`: `[n, 3, h, w]` LR image normalised to [−1, 1]
    /// - output: `[n, C, r·h, r·w]` logits
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let features = self.encoder.forward(x);
        let f_seg = self.decoder.forward(&features); // [n, b, h, w]
        self.seg_head.forward(f_seg) // [n, C, rh, rw]
    }

    /// The up-scale rate r of the head.
    pub fn upscale(&self) -> usize {
        self.seg_head.upscale
    }
}
