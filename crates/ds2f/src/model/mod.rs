//! Models: the reference U-Net, DeepLabV3+ and ESPNetv2 split into `encoder`, `decoder` and
//! `seg_head`
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
pub use shared_feature::{FimConfig, MafConfig, SharedFeatureConfig, SharedFeatureKind};
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
    /// Every framework, in the order of docs/frameworks.md.
    pub const ALL: [Framework; 8] = [
        Framework::Unet,
        Framework::UnetInter,
        Framework::UnetInterSr,
        Framework::Ds2f,
        Framework::Cogseg,
        Framework::Dsrl,
        Framework::Supervessel,
        Framework::Ssmaf,
    ];

    /// The config name (`model.framework`), as serde writes it.
    pub fn name(self) -> &'static str {
        match self {
            Framework::Unet => "unet",
            Framework::UnetInter => "unet_inter",
            Framework::UnetInterSr => "unet_inter_sr",
            Framework::Ds2f => "ds2f",
            Framework::Cogseg => "cogseg",
            Framework::Dsrl => "dsrl",
            Framework::Supervessel => "supervessel",
            Framework::Ssmaf => "ssmaf",
        }
    }

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
    /// ESPNetv2 (SPEC §1.4) at width multiplier `model.espnet_scale` (`model.base` is not
    /// used).
    Espnetv2,
}

impl Backbone {
    /// Whether the training forward has an auxiliary seg output (ESPNetv2's level-3 logits,
    /// [`TrainOutputs::aux`]).
    pub fn has_aux_output(self) -> bool {
        self == Backbone::Espnetv2
    }

    /// The ResNet depth of a DeepLabV3+ backbone.
    pub fn resnet_depth(self) -> Option<deeplab::ResNetDepth> {
        match self {
            Backbone::Unet | Backbone::Espnetv2 => None,
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
    /// The backbone (`unet`, `deeplabv3plus_resnet50`, `deeplabv3plus_resnet101`,
    /// `espnetv2`).
    pub backbone: Backbone,
    /// Base width b of the U-Net (paper: 64): widths b, 2b, 4b, 8b, 16b.
    pub base: usize,
    /// Output stride of the DeepLabV3+ ResNet, 8 (the reference's vessel/lesion scripts,
    /// default) or 16 (its Cityscapes script); unused by the U-Net.
    pub output_stride: OutputStride,
    /// Width multiplier s of the ESPNetv2 backbone: 0.5, 1.0, 1.25, 1.5 or 2.0 (default: 2.0,
    /// the reference's Cityscapes model); unused by the other backbones.
    pub espnet_scale: f64,
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
    /// SS-MAF's fusion module, used by `ssmaf`.
    pub maf: MafConfig,
    /// SuperVessel's feature interaction module, used by `supervessel`.
    pub fim: FimConfig,
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
            espnet_scale: 2.0,
            num_classes: 2,
            in_channels: 3,
            upscale: 2,
            sr_head_widths: [64, 32],
            shared_feature: SharedFeatureConfig::default(),
            maf: MafConfig::default(),
            fim: FimConfig::default(),
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

    /// Checks the `[model]` table: sizes and widths, its `shared_feature`, `maf` and `fim`
    /// tables, the ESPNetv2 width (`model.espnet_scale`), that `model.encoder_weights` has an
    /// encoder to load into, and that the framework can run on the backbone (CogSeg pulls the
    /// two decoders together stage by stage, and ESPNetv2's stages differ in width between its
    /// seg and SR copies).
    ///
    /// # Errors
    /// [`crate::error::ConfigError::Range`] naming the key.
    pub fn validate(&self) -> Result<(), crate::error::ConfigError> {
        let bad = |key: &str, reason: &str| Err(ConfigError::range(key, reason));
        if self.upscale == 0 {
            return bad("model.upscale", "must be at least 1");
        }
        if self.base == 0 {
            return bad("model.base", "must be at least 1");
        }
        if self.num_classes < 2 {
            return bad(
                "model.num_classes",
                "must be at least 2 (background + one class)",
            );
        }
        if self.in_channels != 3 {
            return bad("model.in_channels", "only RGB input (3) is supported");
        }
        if self.sr_head_widths.contains(&0) {
            return bad("model.sr_head_widths", "both widths must be positive");
        }
        self.shared_feature.validate()?;
        self.maf.validate()?;
        self.fim.validate()?;
        if self.backbone == Backbone::Espnetv2 {
            espnet::level_widths(self.espnet_scale).map_err(|e| match e {
                crate::error::ConfigError::Range { key, reason } => {
                    crate::error::ConfigError::Range {
                        key,
                        reason: format!("{reason} (model.backbone = espnetv2)"),
                    }
                }
                other => other,
            })?;
            if self.framework == Framework::Cogseg {
                return Err(crate::error::ConfigError::Range {
                    key: "model.framework".into(),
                    reason: "cogseg needs decoder stages of equal width in both streams, which \
                             model.backbone = espnetv2 does not have"
                        .into(),
                });
            }
        }
        // `model.encoder_weights` needs a pretrained family (the DeepLabV3+ ResNets).
        self.check_encoder_weights()
    }

    /// Checks that `model.encoder_weights`, if set, has a pretrained family to load into (the
    /// DeepLabV3+ ResNets; the U-Net has none).
    pub fn check_encoder_weights(&self) -> Result<(), ConfigError> {
        if self.encoder_weights.is_some() && self.backbone.resnet_depth().is_none() {
            return Err(pretrained::no_pretrained_family());
        }
        Ok(())
    }

    /// The ESPNetv2 level widths at `model.espnet_scale`.
    ///
    /// # Panics
    /// On a scale [`ModelConfig::validate`] refuses.
    fn espnet_widths(&self) -> [usize; 4] {
        espnet::level_widths(self.espnet_scale)
            .expect("model.espnet_scale is checked by ModelConfig::validate")
    }

    /// Channels of the segmentation decoder's output F_seg: the width the seg head and the
    /// shared-feature module see (U-Net: `base`; DeepLabV3+: 256; ESPNetv2: `w1 + C`).
    ///
    /// # Panics
    /// On an ESPNetv2 scale [`ModelConfig::validate`] refuses.
    pub fn feature_channels(&self) -> usize {
        match self.backbone {
            Backbone::Unet => self.base,
            Backbone::Deeplabv3plusResnet50 | Backbone::Deeplabv3plusResnet101 => {
                deeplab::FEATURE_CHANNELS
            }
            Backbone::Espnetv2 => self.espnet_widths()[0] + self.num_classes,
        }
    }

    /// Channels of the SR decoder's output F_sr (the shared-feature module's SR input):
    /// [`ModelConfig::feature_channels`], except ESPNetv2's `w1 + in_channels`.
    ///
    /// # Panics
    /// As [`ModelConfig::feature_channels`].
    pub fn sr_feature_channels(&self) -> usize {
        match self.backbone {
            Backbone::Espnetv2 => self.espnet_widths()[0] + self.in_channels,
            _ => self.feature_channels(),
        }
    }

    /// How the seg head's logits reach HR for this backbone.
    pub fn head_resize(&self) -> HeadResize {
        match self.backbone {
            Backbone::Unet => HeadResize::AlignCorners,
            Backbone::Deeplabv3plusResnet50 | Backbone::Deeplabv3plusResnet101 => {
                HeadResize::TwoStep
            }
            Backbone::Espnetv2 => HeadResize::AlignCornersTwoStep,
        }
    }

    /// Builds the configured backbone's shared encoder.
    ///
    /// # Panics
    /// On an ESPNetv2 scale [`ModelConfig::validate`] refuses.
    pub fn init_encoder(&self, device: &Device) -> Encoder {
        match (self.backbone, self.backbone.resnet_depth()) {
            (Backbone::Espnetv2, _) => Encoder::Espnet(espnet::EspnetV2Encoder::new(
                self.in_channels,
                self.espnet_widths(),
                device,
            )),
            (_, None) => Encoder::Unet(UnetEncoder::new(self.in_channels, self.base, device)),
            (_, Some(depth)) => Encoder::DeepLab(deeplab::DeepLabEncoder::new(
                self.in_channels,
                depth,
                self.output_stride,
                device,
            )),
        }
    }

    /// Builds the segmentation decoder of the configured backbone.
    ///
    /// # Panics
    /// On an ESPNetv2 scale [`ModelConfig::validate`] refuses.
    pub fn init_decoder(&self, device: &Device) -> Decoder {
        self.init_decoder_for(false, device)
    }

    /// Builds the SR stream's copy of the decoder (its own weights; ESPNetv2's has image
    /// channels instead of classes, and its own `project_l1`).
    ///
    /// # Panics
    /// As [`ModelConfig::init_decoder`].
    pub fn init_sr_decoder(&self, device: &Device) -> Decoder {
        self.init_decoder_for(true, device)
    }

    fn init_decoder_for(&self, sr: bool, device: &Device) -> Decoder {
        match self.backbone {
            Backbone::Unet => Decoder::Unet(UnetDecoder::new(self.base, device)),
            Backbone::Deeplabv3plusResnet50 | Backbone::Deeplabv3plusResnet101 => {
                Decoder::DeepLab(deeplab::DeepLabDecoder::new(device))
            }
            Backbone::Espnetv2 => {
                let out = if sr {
                    self.in_channels
                } else {
                    self.num_classes
                };
                Decoder::Espnet(espnet::EspnetV2Decoder::new(
                    self.espnet_widths(),
                    out,
                    espnet::DROPOUT,
                    sr,
                    device,
                ))
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
        let (f, f_sr) = (self.feature_channels(), self.sr_feature_channels());
        let image_channels = self.in_channels;
        // The ESPCN head reads the SR features at LR: ESPNetv2's SR copy has projected them to
        // the image channels by then.
        let sr_head_in = match self.backbone {
            Backbone::Espnetv2 => image_channels,
            _ => f_sr,
        };
        let sr_branch = self.framework.has_sr_stream().then(|| SrBranch {
            decoder: self.init_sr_decoder(device),
            head: SrHead::new(sr_head_in, self.sr_head_widths, image_channels, r, device),
        });
        let shared_feature = match self.framework {
            Framework::Ds2f => Some(match self.shared_feature.kind {
                SharedFeatureKind::Mscg => SharedFeature::Mscg(shared_feature::Mscg::new(
                    f_sr,
                    f,
                    &self.shared_feature,
                    device,
                )),
                SharedFeatureKind::Cagl => SharedFeature::Cagl(shared_feature::Cagl::new(
                    f_sr,
                    f,
                    &self.shared_feature,
                    device,
                )),
            }),
            Framework::Ssmaf => Some(SharedFeature::Maf(self.maf.init(f_sr, f, device))),
            Framework::Supervessel => Some(SharedFeature::Fim(self.fim.init(
                image_channels,
                self.num_classes,
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
    ///
    /// # Panics
    /// On an ESPNetv2 scale [`ModelConfig::validate`] refuses.
    pub fn init(&self, device: &Device) -> Segmenter {
        let encoder = self.init_encoder(device);
        let decoder = self.init_decoder(device);
        let (f, c, r) = (
            self.feature_channels(),
            self.num_classes,
            self.effective_upscale(),
        );
        let seg_head = match self.backbone {
            Backbone::Espnetv2 => SegHead::espnet(f, c, r, espnet::DROPOUT, device),
            _ => SegHead::new(f, c, r, device).with_resize(self.head_resize()),
        };
        Segmenter {
            encoder,
            decoder,
            seg_head,
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
        let f_seg = self.decoder.forward(&features); // U-Net [n, b, h, w]; DeepLab [n, 256, h/4, w/4]; ESPNet [n, w1 + C, h/2, w/2]
        self.seg_head.forward_at(f_seg, lr) // [n, C, rh, rw]
    }

    /// The up-scale rate r of the head.
    pub fn upscale(&self) -> usize {
        self.seg_head.upscale
    }
}
