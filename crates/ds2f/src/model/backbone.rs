//! The backbone-generic wiring: one [`Encoder`], [`Decoder`] and [`Features`] type whose
//! variants are the backbones (`model.backbone`), so that [`super::Segmenter`] and
//! [`super::DualStream`] (and with them every framework) are written once for all backbones.
//!
//! # Adding a backbone
//!
//! 1. A variant in [`super::Backbone`] (the config key `model.backbone`), and in
//!    [`super::ModelConfig::init_encoder`], [`super::ModelConfig::init_decoder`] (which also
//!    builds the SR copy, [`super::ModelConfig::init_sr_decoder`]),
//!    [`super::ModelConfig::feature_channels`], [`super::ModelConfig::head_resize`] and, if the
//!    seg head is not a 1×1 convolution with bias, [`super::ModelConfig::init`]'s choice of
//!    [`super::SegHead`] (ESPNetv2: [`super::SegHead::espnet`], its decoder's `project_l1`).
//! 2. A variant in each of [`Encoder`], [`Decoder`] and [`Features`] below, and the match arms
//!    of their methods. The encoder returns everything every decoder copy reads (it runs once;
//!    the seg decoder and the SR decoder both read its output). The decoder returns its stages'
//!    outputs, the last being F_seg (or F_sr for the SR copy), the input of the heads and of the
//!    shared-feature module.
//! 3. If the decoder's output is not at the LR size, a [`HeadResize`] rule saying how the seg
//!    head's logits reach HR, and in [`Decoder::to_lr`] how the SR stream's features reach LR
//!    before the ESPCN head (by default bilinear, align_corners = false: the identity when
//!    already at LR).
//! 4. If the two decoder copies' outputs differ in width (ESPNetv2's F is the level-1
//!    concatenation `[l1, up(project_l2)]`, `w1 + C` channels in the seg copy and `w1 + 3` in
//!    the SR copy), [`super::ModelConfig::sr_feature_channels`] says the SR one; the
//!    shared-feature modules take both widths. A framework that cannot work on the backbone
//!    is refused by [`super::ModelConfig::validate`].
//!
//! [`Encoder`] and [`Decoder`] are *transparent* module enums ([`transparent_module_enum!`]):
//! unlike `#[derive(Module)]` on an enum, which puts the variant name in every parameter path
//! (`encoder.Unet.down1…`), the variant adds nothing, so the U-Net's paths stay
//! `encoder.down1.conv.conv1.weight` (its golden weights and earlier checkpoints load
//! unchanged) and the ResNet's are `encoder.backbone.layer1.0.conv1.weight` (torchvision's
//! names under a prefix). Which variant a record belongs to is not recorded: the model is
//! always built from its config first and the record then applied, and a record of another
//! backbone fails to load (its paths do not match).
use burn::prelude::*;

use super::deeplab::{DeepLabDecoder, DeepLabEncoder, DeepLabFeatures};
use super::espnet::{self, EspnetLevels, EspnetV2Decoder, EspnetV2Encoder};
use super::unet::{EncoderFeatures, UnetDecoder, UnetEncoder, bilinear};

/// Declares an enum of modules, one tuple variant per backbone, and implements burn's
/// `Module` for it by delegating to the variant's module *without* adding the variant name to
/// parameter paths (see the module docs).
macro_rules! transparent_module_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident($ty:ty) ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant($ty) ),+
        }

        impl burn::module::Module for $name {
            fn collect_devices(&self, devices: burn::module::Devices) -> burn::module::Devices {
                match self {
                    $( Self::$variant(m) => burn::module::Module::collect_devices(m, devices) ),+
                }
            }

            fn fork(self, device: &Device) -> Self {
                match self {
                    $( Self::$variant(m) => Self::$variant(burn::module::Module::fork(m, device)) ),+
                }
            }

            fn to_device(self, device: &Device) -> Self {
                match self {
                    $( Self::$variant(m) => Self::$variant(burn::module::Module::to_device(m, device)) ),+
                }
            }

            fn train(self) -> Self {
                match self {
                    $( Self::$variant(m) => Self::$variant(burn::module::Module::train(m)) ),+
                }
            }

            fn valid(&self) -> Self {
                match self {
                    $( Self::$variant(m) => Self::$variant(burn::module::Module::valid(m)) ),+
                }
            }

            fn materialize(self) -> Self {
                match self {
                    $( Self::$variant(m) => Self::$variant(burn::module::Module::materialize(m)) ),+
                }
            }

            fn num_params(&self) -> usize {
                match self {
                    $( Self::$variant(m) => burn::module::Module::num_params(m) ),+
                }
            }

            fn visit<V: burn::module::ModuleVisitor>(&self, visitor: &mut V) {
                match self {
                    $( Self::$variant(m) => burn::module::Module::visit(m, visitor) ),+
                }
            }

            fn map<M: burn::module::ModuleMapper>(self, mapper: &mut M) -> Self {
                match self {
                    $( Self::$variant(m) => Self::$variant(burn::module::Module::map(m, mapper)) ),+
                }
            }
        }

        impl burn::module::ModuleDisplayDefault for $name {
            fn content(&self, content: burn::module::Content) -> Option<burn::module::Content> {
                match self {
                    $( Self::$variant(m) => burn::module::ModuleDisplayDefault::content(m, content) ),+
                }
            }
        }

        impl burn::module::ModuleDisplay for $name {}
    };
}

transparent_module_enum! {
    /// The shared encoder of the configured backbone (run once per forward pass; both streams
    /// read its [`Features`]).
    // One per model: the size difference between variants costs nothing.
    #[allow(clippy::large_enum_variant)]
    pub enum Encoder {
        /// The reference U-Net encoder (SPEC §1.1).
        Unet(UnetEncoder),
        /// ResNet v1.5 + ASPP (SPEC §1.3).
        DeepLab(DeepLabEncoder),
        /// The ESPNetv2 encoder without level 5 (SPEC §1.4).
        Espnet(EspnetV2Encoder),
    }
}

transparent_module_enum! {
    /// A decoder of the configured backbone: the segmentation decoder, or its copy with its
    /// own weights in the SR stream.
    #[allow(clippy::large_enum_variant)]
    pub enum Decoder {
        /// The reference U-Net decoder (`up6..up9`), output at LR with `base` channels.
        Unet(UnetDecoder),
        /// The DeepLabV3+ decoder, output at LR/4 with 256 channels.
        DeepLab(DeepLabDecoder),
        /// The ESPNetv2 segmentation decoder up to the level-1 concatenation, output at LR/2
        /// with `w1 + out` channels.
        Espnet(EspnetV2Decoder),
    }
}

/// What an [`Encoder`] gives its decoders.
// Built once per forward pass: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Features {
    /// The U-Net's four skips and bottleneck.
    Unet(EncoderFeatures),
    /// DeepLabV3+'s low-level (`layer1`) and ASPP features.
    DeepLab(DeepLabFeatures),
    /// ESPNetv2's four levels.
    Espnet(EspnetLevels),
}

impl Features {
    /// The LR input size `[h, w]` the features were computed from (the heads' target before
    /// the ×r step).
    pub fn input_size(&self) -> [usize; 2] {
        match self {
            Features::Unet(f) => {
                let [_, _, h, w] = f.skips[0].dims();
                [h, w]
            }
            Features::DeepLab(f) => f.input_size,
            Features::Espnet(f) => f.input_size,
        }
    }
}

impl Encoder {
    /// # Shapes
    /// - `x`: `[n, in_channels, h, w]`
    /// - output: the backbone's features (see [`EncoderFeatures`], [`DeepLabFeatures`],
    ///   [`EspnetLevels`])
    pub fn forward(&self, x: Tensor<4>) -> Features {
        match self {
            Encoder::Unet(e) => Features::Unet(e.forward(x)),
            Encoder::DeepLab(e) => Features::DeepLab(e.forward(x)),
            Encoder::Espnet(e) => Features::Espnet(e.forward(x)),
        }
    }

    /// The U-Net encoder, if this is one.
    pub fn unet(&self) -> Option<&UnetEncoder> {
        match self {
            Encoder::Unet(e) => Some(e),
            _ => None,
        }
    }

    /// The DeepLabV3+ encoder, if this is one.
    pub fn deeplab(&self) -> Option<&DeepLabEncoder> {
        match self {
            Encoder::DeepLab(e) => Some(e),
            _ => None,
        }
    }

    /// The ESPNetv2 encoder, if this is one.
    pub fn espnet(&self) -> Option<&EspnetV2Encoder> {
        match self {
            Encoder::Espnet(e) => Some(e),
            _ => None,
        }
    }
}

impl Decoder {
    /// The decoder's output F (F_seg or F_sr of the paper), the last of
    /// [`Decoder::forward_levels`].
    ///
    /// # Shapes
    /// - `features`: from the [`Encoder`] of the same backbone
    /// - output: U-Net `[n, b, h, w]`; DeepLabV3+ `[n, 256, ceil(h/4), ceil(w/4)]`; ESPNetv2
    ///   `[n, w1 + out, ceil(h/2), ceil(w/2)]` (`merged_l1`)
    ///
    /// # Panics
    /// If `features` come from another backbone's encoder (a model is built from one config,
    /// so its parts always match).
    pub fn forward(&self, features: &Features) -> Tensor<4> {
        match (self, features) {
            (Decoder::Unet(d), Features::Unet(f)) => d.forward(f),
            (Decoder::DeepLab(d), Features::DeepLab(f)) => d.forward(f),
            (Decoder::Espnet(d), Features::Espnet(f)) => d.forward_merged(f).merged_l1,
            _ => panic!("decoder and encoder features of different backbones"),
        }
    }

    /// Every stage's output, the last being [`Decoder::forward`]'s (CogSeg pulls the seg and
    /// SR decoders together at each of them).
    ///
    /// # Shapes
    /// - U-Net: `[n, 8b, h/8, w/8]`, `[n, 4b, h/4, w/4]`, `[n, 2b, h/2, w/2]`, `[n, b, h, w]`
    /// - DeepLabV3+: the two fusion convolutions' outputs, `[n, 256, h/4, w/4]` each
    /// - ESPNetv2: `merged_l1` only (its other stages differ in width between the seg and SR
    ///   copies, so CogSeg is refused on it)
    ///
    /// # Panics
    /// As [`Decoder::forward`].
    pub fn forward_levels(&self, features: &Features) -> Vec<Tensor<4>> {
        match (self, features) {
            (Decoder::Unet(d), Features::Unet(f)) => d.forward_levels(f).into(),
            (Decoder::DeepLab(d), Features::DeepLab(f)) => d.forward_levels(f).into(),
            (Decoder::Espnet(d), Features::Espnet(f)) => vec![d.forward_merged(f).merged_l1],
            _ => panic!("decoder and encoder features of different backbones"),
        }
    }

    /// [`Decoder::forward_levels`] and, for ESPNetv2, the auxiliary logits of the reference's
    /// training forward ([`espnet::aux_upsample`] of the level-3 logits, at `r·h × r·w`),
    /// from one pass through the decoder.
    ///
    /// # Shapes
    /// - levels: as [`Decoder::forward_levels`]
    /// - auxiliary logits: `[n, out, r·h, r·w]` (ESPNetv2), `None` for the other backbones
    ///
    /// # Panics
    /// As [`Decoder::forward`].
    pub fn forward_train(
        &self,
        features: &Features,
        upscale: usize,
    ) -> (Vec<Tensor<4>>, Option<Tensor<4>>) {
        match (self, features) {
            (Decoder::Espnet(d), Features::Espnet(f)) => {
                let merged = d.forward_merged(f);
                let aux = espnet::aux_upsample(merged.proj_l3, f, upscale); // [n, out, rh, rw]
                (vec![merged.merged_l1], Some(aux))
            }
            _ => (self.forward_levels(features), None),
        }
    }

    /// The SR stream's features brought to the LR size `lr`, the ESPCN head's input: U-Net and
    /// DeepLabV3+ resize bilinearly (align_corners = false; the identity at LR); ESPNetv2's SR
    /// copy applies its `project_l1` (to the image channels), then bilinear
    /// (align_corners = true).
    ///
    /// # Shapes
    /// - `f`: this decoder's output (or the shared module's SR output), `[n, c, h', w']`
    /// - output: `[n, c, h, w]` (ESPNetv2: `[n, out, h, w]`) with `[h, w] = lr`
    ///
    /// # Panics
    /// On an ESPNetv2 segmentation decoder (built without `project_l1`).
    pub fn to_lr(&self, f: Tensor<4>, lr: [usize; 2]) -> Tensor<4> {
        match self {
            Decoder::Espnet(d) => d.project(f, lr),
            _ => bilinear(f, lr, false),
        }
    }
}

/// How the seg head's logits (at the decoder's resolution) reach the HR size `r·h × r·w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeadResize {
    /// The U-Net's: one bilinear resize (align_corners = true) from LR to HR.
    #[default]
    AlignCorners,
    /// DeepLabV3+'s two steps: bilinear (align_corners = false) to the LR input size, then
    /// bilinear ×r (align_corners = false).
    TwoStep,
    /// ESPNetv2's two steps: bilinear (align_corners = true) to the LR input size (the
    /// reference's ×2), then bilinear ×r (align_corners = true).
    AlignCornersTwoStep,
}
