//! The SR stream: a copy of the backbone's decoder with its own weights reading the shared
//! encoder's features (U-Net: `sr_up6..9`, SPEC §1.1, `sr_layer = 5`; DeepLabV3+:
//! `decoder_sr`, SPEC §1.3), bilinear (align_corners = false) to the LR size (the identity for
//! the U-Net, whose decoder ends at LR), then the ESPCN [`SrHead`]. Training only: it is never
//! part of the inference graph.
use burn::prelude::*;

use super::backbone::{Decoder, Features};
use super::sr_head::SrHead;
use super::unet::bilinear;

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
    /// - `f`: `[n, c, h', w']` (U-Net: the LR size; DeepLabV3+: LR/4)
    /// - `lr`: `[h, w]`
    /// - output: `[n, 3, r·h, r·w]` image in normalised space
    pub fn image_at(&self, f: Tensor<4>, lr: [usize; 2]) -> Tensor<4> {
        let f = bilinear(f, lr, false); // [n, c, h, w]
        self.head.forward(f) // [n, 3, rh, rw]
    }
}
