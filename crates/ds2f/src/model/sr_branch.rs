//! The SR stream (SPEC §1.1, `sr_layer = 5`): a second U-Net decoder with its own weights
//! reading the shared encoder's skips, then the ESPCN [`SrHead`]. Training only: it is never
//! part of the inference graph.
use burn::prelude::*;

use super::sr_head::SrHead;
use super::unet::UnetDecoder;

/// SR decoder + SR head.
#[derive(Module, Debug)]
pub struct SrBranch {
    /// Copy of the segmentation decoder's structure (`sr_up6..9` of the reference).
    pub decoder: UnetDecoder,
    /// ESPCN head to the HR image.
    pub head: SrHead,
}

impl SrBranch {
    /// Builds the branch for base width `base`, SR head hidden widths `head_widths`,
    /// `image_channels` output channels and rate r.
    pub fn new(
        base: usize,
        head_widths: [usize; 2],
        image_channels: usize,
        upscale: usize,
        device: &Device,
    ) -> Self {
        Self {
            decoder: UnetDecoder::new(base, device),
            head: SrHead::new(base, head_widths, image_channels, upscale, device),
        }
    }
}
