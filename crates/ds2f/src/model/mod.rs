//! Models: the reference U-Net and DeepLabV3+ split into `encoder`, `decoder` and `seg_head`
//! (the parts of segmentation_models_pytorch), with the framework and backbone chosen by
//! config. [`backbone`] holds the backbone-generic wiring every framework is written against.
pub mod backbone;
pub mod blocks;
pub mod complexity;
pub mod deeplab;
pub mod dual_stream;
pub mod espnet;
pub mod feature_transform;
pub mod pretrained;
pub mod seg_head;
pub mod shared_feature;
pub mod sr_branch;
pub mod sr_head;
pub mod unet;

use std::path::PathBuf;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

pub use backbone::{Decoder, Encoder, Features, HeadResize};
pub use deeplab::OutputStride;
pub use dual_stream::{DualStream, SharedFeature, TrainOutputs};
pub use pretrained::{EncoderWeightsReport, load_encoder_weights};
pub use seg_head::SegHead;
pub use shared_feature::SharedFeatureConfig;
pub use sr_branch::SrBranch;
pub use sr_head::SrHead;
pub use unet::{UnetDecoder, UnetEncoder};

/// Which framework of the paper to build (`model.framework`). All share the encoder and the
/// segmentation stream; they differ in what is trained beside it. At inference every one of
/// them is the same backbone + bilinear ×r.
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

/// Which encoder/decoder family to use (`model.backbone`); see [`backbone`] for how one plugs
/// in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backbone {
    /// The reference U-Net (SPEC §1.1), base width `model.base`.
    Unet,
    /// DeepLabV3+ on ResNet-50 (SPEC §1.3; `model.base` is not used).
    Deeplabv3plusResnet50,
    /// DeepLabV3+ on ResNet-101 (SPEC §1.3, the paper's; `model.base` is not used).
    Deeplabv3plusResnet101,
}

impl Backbone {
    /// The ResNet depth of a DeepLabV3+ backbone.
    pub fn resnet_depth(self) -> Option<deeplab::ResNetDepth> {
        match self {
            Backbone::Unet => None,
            Backbone::Deeplabv3plusResnet50 => Some(deeplab::ResNetDepth::R50),
            Backbone::Deeplabv3plusResnet101 => Some(deeplab::ResNetDepth::R101),
        }
    }
}

/// Model hyper-parameters (the `[model]` table of an experiment config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelConfig {
    /// The framework (`unet`, `unet_inter`, `unet_inter_sr`, `ds2f`, `cogseg`, `dsrl`,
    /// `supervessel`, `ssmaf`).
    pub framework: Framework,
    /// The backbone (`unet`, `deeplabv3plus_resnet50`, `deeplabv3plus_resnet101`).
    pub backbone: Backbone,
    /// Base width b of the U-Net (paper: 64): widths b, 2b, 4b, 8b, 16b.
    pub base: usize,
    /// Output stride of the DeepLabV3+ ResNet, 8 (the reference's vessel/lesion scripts,
    /// default) or 16 (its Cityscapes script); unused by the U-Net.
    pub output_stride: OutputStride,
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
    /// ImageNet-pretrained weights for the DeepLabV3+ ResNet, supplied by the user (nothing is
    /// downloaded): a torchvision state dict saved by `torch.save` (`.pth`) or a
    /// `.safetensors` file, loaded when a training starts from scratch (on resume the
    /// checkpoint wins); see [`pretrained`]. Not valid with the U-Net backbone.
    pub encoder_weights: Option<PathBuf>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            framework: Framework::UnetInter,
            backbone: Backbone::Unet,
            base: 64,
            output_stride: OutputStride::Eight,
            num_classes: 2,
            in_channels: 3,
            upscale: 2,
            sr_head_widths: [64, 32],
            shared_feature: SharedFeatureConfig::default(),
            encoder_weights: None,
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

    /// Checks that `model.encoder_weights`, if set, has a pretrained family to load into (the
    /// DeepLabV3+ ResNets; the U-Net has none).
    pub fn check_encoder_weights(&self) -> Result<(), ConfigError> {
        if self.encoder_weights.is_some() && self.backbone.resnet_depth().is_none() {
            return Err(pretrained::no_pretrained_family());
        }
        Ok(())
    }

    /// Channels of the decoder output (F_seg, F_sr): the width the heads and the
    /// shared-feature module see (U-Net: `base`; DeepLabV3+: 256).
    pub fn feature_channels(&self) -> usize {
        match self.backbone {
            Backbone::Unet => self.base,
            Backbone::Deeplabv3plusResnet50 | Backbone::Deeplabv3plusResnet101 => {
                deeplab::FEATURE_CHANNELS
            }
        }
    }

    /// How the seg head's logits reach HR for this backbone.
    pub fn head_resize(&self) -> HeadResize {
        match self.backbone {
            Backbone::Unet => HeadResize::AlignCorners,
            Backbone::Deeplabv3plusResnet50 | Backbone::Deeplabv3plusResnet101 => {
                HeadResize::TwoStep
            }
        }
    }

    /// Builds the configured backbone's shared encoder.
    pub fn init_encoder(&self, device: &Device) -> Encoder {
        match self.backbone.resnet_depth() {
            None => Encoder::Unet(UnetEncoder::new(self.in_channels, self.base, device)),
            Some(depth) => Encoder::DeepLab(deeplab::DeepLabEncoder::new(
                self.in_channels,
                depth,
                self.output_stride,
                device,
            )),
        }
    }

    /// Builds one decoder of the configured backbone (the seg decoder, or the SR stream's
    /// copy).
    pub fn init_decoder(&self, device: &Device) -> Decoder {
        match self.backbone {
            Backbone::Unet => Decoder::Unet(UnetDecoder::new(self.base, device)),
            Backbone::Deeplabv3plusResnet50 | Backbone::Deeplabv3plusResnet101 => {
                Decoder::DeepLab(deeplab::DeepLabDecoder::new(device))
            }
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
        let f = self.feature_channels();
        let image_channels = self.in_channels;
        let sr_branch = self.framework.has_sr_stream().then(|| SrBranch {
            decoder: self.init_decoder(device),
            head: SrHead::new(f, self.sr_head_widths, image_channels, r, device),
        });
        let shared_feature = match self.framework {
            Framework::Ds2f => Some(SharedFeature::Mscg(shared_feature::Mscg::new(
                f,
                f,
                &self.shared_feature,
                device,
            ))),
            Framework::Ssmaf => Some(SharedFeature::Maf(shared_feature::Maf::new(
                f, f, 32, 4, device,
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
        Segmenter {
            encoder: self.init_encoder(device),
            decoder: self.init_decoder(device),
            seg_head: SegHead::new(
                self.feature_channels(),
                self.num_classes,
                self.effective_upscale(),
                device,
            )
            .with_resize(self.head_resize()),
        }
    }
}

/// A segmentation model: LR image in, HR class logits out. This is the whole inference graph.
#[derive(Module, Debug)]
pub struct Segmenter {
    /// Shared encoder of the configured backbone.
    pub encoder: Encoder,
    /// Segmentation decoder.
    pub decoder: Decoder,
    /// 1×1 head + bilinear to HR.
    pub seg_head: SegHead,
}

impl Segmenter {
    /// # Shapes
    /// - `x`: `[n, 3, h, w]` LR image normalised to [−1, 1]
    /// - output: `[n, C, r·h, r·w]` logits
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let features = self.encoder.forward(x);
        let lr = features.input_size();
        let f_seg = self.decoder.forward(&features); // U-Net [n, b, h, w]; DeepLab [n, 256, h/4, w/4]
        self.seg_head.forward_at(f_seg, lr) // [n, C, rh, rw]
    }

    /// The up-scale rate r of the head.
    pub fn upscale(&self) -> usize {
        self.seg_head.upscale
    }
}
