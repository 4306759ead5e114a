//! Models: the reference U-Net split into `encoder`, `decoder` and `seg_head` (the parts of
//! segmentation_models_pytorch), with the framework and backbone chosen by config.
pub mod blocks;
pub mod complexity;
pub mod dual_stream;
pub mod espnet;
pub mod feature_transform;
pub mod seg_head;
pub mod shared_feature;
pub mod sr_branch;
pub mod sr_head;
pub mod unet;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use dual_stream::{DualStream, SharedFeature, TrainOutputs};
pub use seg_head::SegHead;
pub use shared_feature::SharedFeatureConfig;
pub use sr_branch::SrBranch;
pub use sr_head::SrHead;
pub use unet::{UnetDecoder, UnetEncoder};

/// Which framework of the paper to build (`model.framework`). All share the encoder and the
/// segmentation stream; they differ in what is trained beside it. At inference every one of
/// them is the same U-Net + bilinear ×r.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framework {
    /// Plain U-Net at the input resolution (forces r = 1).
    Unet,
    /// U-Net + bilinear ×r of the logits ("U-Net+Inter", the paper's first baseline).
    UnetInter,
    /// U-Net+Inter with the SR stream trained beside it (CE + MSE; "U-Net+Inter+SR").
    UnetInterSr,
    /// DS2F: SR stream + MSCG before the heads, proxy losses (SSIM on SR, RMI on seg).
    Ds2f,
    /// CogSeg: SR stream + L1 between the seg and SR decoder features at every level.
    Cogseg,
    /// DSRL: SR stream + feature-affinity loss between FTM(seg logits) and the SR image.
    Dsrl,
    /// SuperVessel: SR stream + FIM after the heads, CE on its seg output.
    Supervessel,
    /// SS-MAF: SR stream + MAF before the heads (MSE on SR proxy, RMI on seg proxy).
    Ssmaf,
}

impl Framework {
    /// Whether the framework trains an SR stream.
    pub fn has_sr_stream(self) -> bool {
        !matches!(self, Framework::Unet | Framework::UnetInter)
    }
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
    /// The framework (`unet`, `unet_inter`, `unet_inter_sr`, `ds2f`, `cogseg`, `dsrl`,
    /// `supervessel`, `ssmaf`).
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
    /// Hidden widths of the ESPCN SR head (reference: `[64, 32]`, whatever the base width).
    pub sr_head_widths: [usize; 2],
    /// The MSCG (and its ablation switches), used by `ds2f`.
    pub shared_feature: SharedFeatureConfig,
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
            sr_head_widths: [64, 32],
            shared_feature: SharedFeatureConfig::default(),
        }
    }
}

impl ModelConfig {
    /// The rate actually used: a plain U-Net always works at r = 1.
    pub fn effective_upscale(&self) -> usize {
        match self.framework {
            Framework::Unet => 1,
            _ => self.upscale,
        }
    }

    /// Builds the training-time model of the configured framework on `device`. The parts are
    /// created in the same order as [`ModelConfig::init`]'s, so with the same seed the
    /// inference parts start from the same weights in every framework.
    pub fn init_train(&self, device: &Device) -> DualStream {
        let Segmenter {
            encoder,
            decoder,
            seg_head,
        } = self.init(device);
        let r = self.effective_upscale();
        let b = self.base;
        let image_channels = self.in_channels;
        let sr_branch = self
            .framework
            .has_sr_stream()
            .then(|| SrBranch::new(b, self.sr_head_widths, image_channels, r, device));
        let shared_feature = match self.framework {
            Framework::Ds2f => Some(SharedFeature::Mscg(shared_feature::Mscg::new(
                b,
                b,
                &self.shared_feature,
                device,
            ))),
            Framework::Ssmaf => Some(SharedFeature::Maf(shared_feature::Maf::new(
                b, b, 32, 4, device,
            ))),
            Framework::Supervessel => Some(SharedFeature::Fim(shared_feature::Fim::new(
                image_channels,
                self.num_classes,
                8,
                device,
            ))),
            Framework::Dsrl => Some(SharedFeature::Ftm(
                feature_transform::FeatureTransform::new(self.num_classes, image_channels, device),
            )),
            _ => None,
        };
        DualStream {
            encoder,
            decoder,
            seg_head,
            sr_branch,
            shared_feature,
            framework: self.framework,
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
