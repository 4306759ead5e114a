//! The SR stream: a copy of the backbone's decoder with its own weights reading the shared
//! encoder's features (U-Net: `sr_up6..9`, SPEC §1.1, `sr_layer = 5`; DeepLabV3+:
//! `decoder_sr`, SPEC §1.3; ESPNetv2: `sr_proj_l4_c … sr_project_l1`, SPEC §1.4), brought to
//! the LR size by [`Decoder::to_lr`] (bilinear, align_corners = false, the identity for the
//! U-Net, whose decoder ends at LR; ESPNetv2: `sr_project_l1` and bilinear ×2), then the ESPCN
//! [`SrHead`]. Training only: it is never part of the inference graph.
use burn::prelude::*;

use super::backbone::{Decoder, Features};
use super::sr_head::SrHead;

/// SR decoder + SR head.
#[derive(Module, Debug)]
pub struct SrBranch {
    /// Copy of the segmentation decoder's structure.
    pub decoder: Decoder,
    /// ESPCN head to the HR image.
    pub head: SrHead,
}

impl SrBranch {
    /// The SR decoder's levels (the last is F_sr), as [`Decoder::forward_levels`].
    pub fn forward_levels(&self, features: &Features) -> Vec<Tensor<4>> {
        self.decoder.forward_levels(features)
    }

    /// The HR image from SR-stream features (F_sr, or the shared module's SR output) of an LR
    /// input of size `lr`.
    ///
    /// # Shapes
    /// - `f`: `[n, c, h', w']` (U-Net: the LR size; DeepLabV3+: LR/4; ESPNetv2: LR/2)
    /// - `lr`: `[h, w]`
    /// - output: `[n, 3, r·h, r·w]` image in normalised space
    pub fn image_at(&self, f: Tensor<4>, lr: [usize; 2]) -> Tensor<4> {
        let f = self.decoder.to_lr(f, lr); // [n, c, h, w] (ESPNetv2: [n, 3, h, w])
        self.head.forward(f) // [n, 3, rh, rw]
    }
}
