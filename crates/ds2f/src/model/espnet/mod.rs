//! ESPNetv2 (Mehta et al., "ESPNetv2: A Light-weight, Power Efficient, and General Purpose
//! Convolutional Neural Network", CVPR 2019; official code `sacmehta/EdgeNets` and
//! `sacmehta/ESPNetv2`) as the DS2F reference builds it for Cityscapes (SPEC §1.4,
//! `imed_vision/models/segmentation/espnets.py::ESPNetV2_Seg`): the encoder at width
//! multiplier s without level 5, the official segmentation decoder (EESP + pyramid pooling at
//! /8, projections merged with levels 2 and 1, ×2 and ×r bilinear), and its DS2F form with an
//! SR copy of the decoder, the ESPCN head and MSCG on the level-1 concatenations.
//!
//! Where the DS2F reference and the official code differ, the reference is followed (each
//! module's docs say where): the order of an EESP unit's branches, the concatenation order in
//! the down-sampling unit, element dropout (not `Dropout2d`). Parameters follow the reference's
//! state-dict names, except the PReLU that the reference builds in each stride-2 EESP unit and
//! never runs, which is left out ([`EspnetV2Config::unused_reference_params`] counts them).
pub mod decoder;
pub mod ds2f;
pub mod eesp;
pub mod encoder;
pub mod layers;
pub mod psp;
pub mod seg;
pub mod strided_eesp;

pub use decoder::{EspnetDecoderFeatures, EspnetV2Decoder, aux_upsample};
pub use ds2f::{EspnetTrainOutputs, EspnetV2Ds2f};
pub use eesp::Eesp;
pub use encoder::{EspnetLevels, EspnetV2Encoder, level_widths};
pub use psp::PspModule;
pub use seg::EspnetV2Seg;
pub use strided_eesp::StridedEesp;

use burn::prelude::*;

use crate::error::ConfigError;
use crate::model::SrHead;
use crate::model::shared_feature::{Mscg, SharedFeatureConfig};

/// Hyper-parameters of an ESPNetv2 model.
#[derive(Debug, Clone, PartialEq)]
pub struct EspnetV2Config {
    /// Width multiplier s (`model.espnet_scale`): 0.5, 1.0, 1.25, 1.5 or 2.0.
    pub scale: f64,
    /// Image channels (RGB: 3).
    pub in_channels: usize,
    /// Classes C.
    pub num_classes: usize,
    /// Up-scale rate r.
    pub upscale: usize,
    /// Dropout before `project_l3` and `project_l1` (reference: 0.2).
    pub dropout: f64,
    /// Hidden widths of the ESPCN SR head (reference: `[64, 32]`).
    pub sr_head_widths: [usize; 2],
    /// The MSCG (reference: `CrossGL` defaults).
    pub shared_feature: SharedFeatureConfig,
}

impl EspnetV2Config {
    /// The reference's model at width `scale` for `in_channels`, `num_classes` and rate
    /// `upscale`, with its dropout, SR head and MSCG.
    pub fn new(scale: f64, in_channels: usize, num_classes: usize, upscale: usize) -> Self {
        Self {
            scale,
            in_channels,
            num_classes,
            upscale,
            dropout: 0.2,
            sr_head_widths: [64, 32],
            shared_feature: SharedFeatureConfig::default(),
        }
    }

    /// Channels of the four encoder levels.
    ///
    /// # Errors
    /// See [`level_widths`].
    pub fn widths(&self) -> Result<[usize; 4], ConfigError> {
        level_widths(self.scale)
    }

    /// Builds the inference model on `device`.
    ///
    /// # Errors
    /// An unsupported `scale` (see [`level_widths`]).
    pub fn init_seg(&self, device: &Device) -> Result<EspnetV2Seg, ConfigError> {
        let widths = self.widths()?;
        Ok(EspnetV2Seg {
            encoder: EspnetV2Encoder::new(self.in_channels, widths, device),
            decoder: EspnetV2Decoder::new(widths, self.num_classes, self.dropout, device),
            upscale: self.upscale,
        })
    }

    /// Builds the DS2F training model on `device`; the encoder and segmentation decoder are
    /// drawn first, in [`EspnetV2Config::init_seg`]'s order, so with the same seed they start
    /// from the same weights.
    ///
    /// # Errors
    /// An unsupported `scale` (see [`level_widths`]).
    pub fn init_ds2f(&self, device: &Device) -> Result<EspnetV2Ds2f, ConfigError> {
        let EspnetV2Seg {
            encoder,
            decoder,
            upscale,
        } = self.init_seg(device)?;
        let [w1, ..] = self.widths()?;
        let image = self.in_channels;
        Ok(EspnetV2Ds2f {
            encoder,
            decoder,
            sr_decoder: EspnetV2Decoder::new(self.widths()?, image, self.dropout, device),
            sr_head: SrHead::new(image, self.sr_head_widths, image, upscale, device),
            mscg: Mscg::new(
                w1 + image,
                w1 + self.num_classes,
                &self.shared_feature,
                device,
            ),
            upscale,
        })
    }

    /// Parameters the reference model has that these models leave out: the PReLU slopes of
    /// the three stride-2 EESP units of the encoder (`level{2,3,4}_0.eesp.module_act`, built but
    /// never run), `(w2 − w1) + (w3 − w2) + (w4 − w3) = w4 − w1`.
    ///
    /// # Errors
    /// See [`level_widths`].
    pub fn unused_reference_params(&self) -> Result<usize, ConfigError> {
        let [w1, _, _, w4] = self.widths()?;
        Ok(w4 - w1)
    }
}
