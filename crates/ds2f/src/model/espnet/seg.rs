//! ESPNetv2 for segmentation at HR (SPEC §1.4, §1.5): the inference graph of every ESPNetv2
//! framework — encoder, segmentation decoder, `project_l1`, bilinear ×2 to the LR size and
//! bilinear ×r.
use burn::prelude::*;

use super::decoder::EspnetV2Decoder;
use super::encoder::EspnetV2Encoder;

/// ESPNetv2 segmentation: LR image in, HR class logits out.
#[derive(Module, Debug)]
pub struct EspnetV2Seg {
    /// The encoder (level 5 removed).
    pub encoder: EspnetV2Encoder,
    /// The segmentation decoder (C outputs).
    pub decoder: EspnetV2Decoder,
    /// The up-scale rate r (HR = r × LR).
    pub upscale: usize,
}

impl EspnetV2Seg {
    /// # Shapes
    /// - `x`: `[n, image_channels, h, w]` LR image, any size
    /// - output: `[n, C, r·h, r·w]` logits
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let levels = self.encoder.forward(x);
        let features = self.decoder.forward_merged(&levels);
        self.decoder
            .forward_head(features.merged_l1, levels.input_size, self.upscale)
    }
}
