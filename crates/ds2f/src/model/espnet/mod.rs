//! ESPNetv2 (Mehta et al., "ESPNetv2: A Light-weight, Power Efficient, and General Purpose
//! Convolutional Neural Network", CVPR 2019; official code `sacmehta/EdgeNets` and
//! `sacmehta/ESPNetv2`) as the DS2F reference builds it for Cityscapes (SPEC §1.4,
//! `imed_vision/models/segmentation/espnets.py::ESPNetV2_Seg`): the encoder at width
//! multiplier s without level 5, and the official segmentation decoder (EESP + pyramid pooling
//! at /8, projections merged with levels 2 and 1, ×2 and ×r bilinear). It is the backbone
//! `model.backbone = "espnetv2"` (width `model.espnet_scale`) of the generic wiring
//! ([`crate::model::backbone`]), so every framework but CogSeg runs on it: DS2F as the
//! reference's `super_reso=True` model, with an SR copy of the decoder, the ESPCN head and MSCG
//! on the two level-1 concatenations.
//!
//! Where the DS2F reference and the official code differ, the reference is followed (each
//! module's docs say where): the order of an EESP unit's branches, the concatenation order in
//! the down-sampling unit, element dropout (not `Dropout2d`). Parameters follow the reference's
//! state-dict names, except that the segmentation `project_l1` is `seg_head.conv` and the PReLU
//! that the reference builds in each stride-2 EESP unit and never runs is left out
//! ([`unused_reference_params`] counts them). The reference's auxiliary level-3 output
//! (`proj_l3`, trained with the segmentation loss) is not a training output of the generic
//! wiring; [`aux_upsample`] computes it from [`EspnetDecoderFeatures::proj_l3`].
pub mod decoder;
pub mod eesp;
pub mod encoder;
pub mod layers;
pub mod psp;
pub mod strided_eesp;

pub use decoder::{EspnetDecoderFeatures, EspnetV2Decoder, aux_upsample};
pub use eesp::Eesp;
pub use encoder::{EspnetLevels, EspnetV2Encoder, level_widths};
pub use psp::PspModule;
pub use strided_eesp::StridedEesp;

use crate::error::ConfigError;

/// Dropout probability before `project_l3` and `project_l1` (the reference's 0.2).
pub const DROPOUT: f64 = 0.2;

/// Parameters the reference model at width `scale` has that ours leaves out: the PReLU slopes
/// of the three stride-2 EESP units of the encoder (`level{2,3,4}_0.eesp.module_act`, built but
/// never run), `(w2 − w1) + (w3 − w2) + (w4 − w3) = w4 − w1`.
///
/// # Errors
/// See [`level_widths`].
pub fn unused_reference_params(scale: f64) -> Result<usize, ConfigError> {
    let [w1, _, _, w4] = level_widths(scale)?;
    Ok(w4 - w1)
}
