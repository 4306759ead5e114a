//! DS2F on ESPNetv2 (SPEC §1.4, `ESPNetV2_Seg(super_reso=True)` of the reference): the shared
//! encoder; the segmentation decoder; an SR copy of the decoder with `image_channels` outputs
//! (`sr_*`) and the ESPCN [`SrHead`] after its `project_l1` and ×2; MSCG on the two level-1
//! concatenations `(sr_merged_l1, merged_l1)` at /2, before `project_l1`, its outputs sent
//! through the same heads as the streams' own (shared weights).
use burn::prelude::*;

use super::decoder::{EspnetV2Decoder, aux_upsample};
use super::encoder::EspnetV2Encoder;
use super::seg::EspnetV2Seg;
use crate::model::shared_feature::Mscg;
use crate::model::{SrHead, TrainOutputs};

/// One training forward pass: the outputs every framework has, and the auxiliary level-3
/// logits only ESPNetv2 has.
#[derive(Debug, Clone)]
pub struct EspnetTrainOutputs {
    /// Segmentation logits, SR image and both proxies (`feature_pairs` empty).
    pub outputs: TrainOutputs,
    /// The level-3 logits up-sampled to HR (`proj_l3` of the reference), `[n, C, r·h, r·w]`;
    /// the reference trains it with the segmentation loss.
    pub aux_l3: Tensor<4>,
}

/// The DS2F ESPNetv2 training model (see the module docs).
#[derive(Module, Debug)]
pub struct EspnetV2Ds2f {
    /// Shared encoder.
    pub encoder: EspnetV2Encoder,
    /// Segmentation decoder (C outputs).
    pub decoder: EspnetV2Decoder,
    /// SR decoder (`sr_proj_l4_c` … `sr_project_l1`), image-channel outputs.
    pub sr_decoder: EspnetV2Decoder,
    /// ESPCN head on the SR decoder's LR output (`super_conv`).
    pub sr_head: SrHead,
    /// MSCG (`fusion = CrossGL(w1 + image, w1 + C)`).
    pub mscg: Mscg,
    /// The up-scale rate r.
    pub upscale: usize,
}

impl EspnetV2Ds2f {
    /// The inference forward pass: segmentation stream only.
    ///
    /// # Shapes
    /// - `x`: `[n, image_channels, h, w]`
    /// - output: `[n, C, r·h, r·w]` logits
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let levels = self.encoder.forward(x);
        let features = self.decoder.forward_merged(&levels);
        self.decoder
            .forward_head(features.merged_l1, levels.input_size, self.upscale)
    }

    /// The training forward pass (`(out, proj_l3, sr, sr_fusion, seg_fusion)` of the
    /// reference).
    ///
    /// # Shapes
    /// - `x`: `[n, image_channels, h, w]`
    /// - outputs: seg, proxy seg and aux `[n, C, r·h, r·w]`; SR and proxy SR
    ///   `[n, image_channels, r·h, r·w]`
    pub fn forward_train(&self, x: Tensor<4>) -> EspnetTrainOutputs {
        let r = self.upscale;
        let levels = self.encoder.forward(x);
        let size = levels.input_size;
        let seg_features = self.decoder.forward_merged(&levels);
        let sr_features = self.sr_decoder.forward_merged(&levels);
        let merged_l1 = seg_features.merged_l1; // [n, w1 + C, h/2, w/2]
        let sr_merged_l1 = sr_features.merged_l1; // [n, w1 + image, h/2, w/2]
        let seg = self.decoder.forward_head(merged_l1.clone(), size, r); // [n, C, rh, rw]
        let sr = self
            .sr_head
            .forward(self.sr_decoder.project(sr_merged_l1.clone(), size)); // [n, image, rh, rw]
        let (cross_sr, cross_seg) = self.mscg.forward(sr_merged_l1, merged_l1);
        let proxy_sr = self
            .sr_head
            .forward(self.sr_decoder.project(cross_sr, size)); // [n, image, rh, rw]
        let proxy_seg = self.decoder.forward_head(cross_seg, size, r); // [n, C, rh, rw]
        EspnetTrainOutputs {
            outputs: TrainOutputs {
                seg,
                sr: Some(sr),
                proxy_seg: Some(proxy_seg),
                proxy_sr: Some(proxy_sr),
                feature_pairs: Vec::new(),
            },
            aux_l3: aux_upsample(seg_features.proj_l3, &levels, r),
        }
    }

    /// The inference graph (encoder, seg decoder) with these weights; the SR stream and MSCG
    /// are dropped.
    pub fn into_seg(self) -> EspnetV2Seg {
        EspnetV2Seg {
            encoder: self.encoder,
            decoder: self.decoder,
            upscale: self.upscale,
        }
    }
}
