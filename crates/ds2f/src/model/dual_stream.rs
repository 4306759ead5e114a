//! The training-time network of every framework of the paper: the shared encoder, the
//! segmentation stream (`decoder`, `seg_head`) and, depending on the framework, the SR stream
//! (`sr_branch`) and a cross-stream module (`shared_feature`: MSCG or CAGL, MAF, FIM or DSRL's FTM).
//! [`DualStream::forward_train`] returns every output the losses need; [`DualStream::forward`]
//! and [`DualStream::into_segmenter`] are the inference graph only (encoder + seg decoder +
//! seg head + bilinear ×r), so nothing of the SR stream is run or exported at inference.
//!
//! Written once for every backbone ([`super::backbone`]): the shared module runs on the two
//! decoders' outputs at the decoder's resolution (LR for the U-Net, LR/4 for DeepLabV3+, LR/2
//! for ESPNetv2, whose seg and SR features differ in width), and BOTH of its outputs go through
//! the shared heads exactly as the main outputs do (seg: 1×1 + the backbone's resize to HR; SR:
//! [`super::Decoder::to_lr`] + ESPCN head).
//!
//! Bug fix: the reference DeepLabV3+ (SPEC §1.3 "Bug", §8 item 4) computes the fused seg
//! feature and then discards it (`fusion_seg = self.out_conv(net)`), so its seg proxy is the
//! main seg output again; here the seg proxy is the head applied to the fused seg feature, as
//! in the U-Net and as the paper describes.
use burn::prelude::*;

use super::backbone::{Decoder, Encoder};
use super::feature_transform::FeatureTransform;
use super::shared_feature::{Cagl, Fim, Maf, Mscg};
use super::sr_branch::SrBranch;
use super::{Framework, SegHead, Segmenter};

/// The cross-stream module of a framework.
// One instance per model: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum SharedFeature {
    /// DS2F's multi-scale cross gate, on (F_sr, F_seg) at LR before the heads.
    Mscg(Mscg),
    /// The reference DeepLabV3+'s CAGL (`model.shared_feature.kind = "cagl"`), where MSCG is.
    Cagl(Cagl),
    /// SS-MAF's multi-attention fusion, on (F_sr, F_seg) at LR before the heads.
    Maf(Maf),
    /// SuperVessel's feature interaction module, on (SR image, seg logits) after the heads.
    Fim(Fim),
    /// DSRL's feature transform (seg logits → image channels) for the feature-affinity loss.
    Ftm(FeatureTransform),
}

/// Every output of one training forward pass (those a framework does not have are `None`).
#[derive(Debug, Clone)]
pub struct TrainOutputs {
    /// Segmentation logits at HR, `[n, C, rh, rw]`.
    pub seg: Tensor<4>,
    /// SR image at HR (normalised space), `[n, 3, rh, rw]`.
    pub sr: Option<Tensor<4>>,
    /// Seg proxy logits (the shared module's seg output through the seg head), `[n, C, rh, rw]`.
    pub proxy_seg: Option<Tensor<4>>,
    /// SR proxy image (the shared module's SR output through the SR head), `[n, 3, rh, rw]`.
    pub proxy_sr: Option<Tensor<4>>,
    /// (seg, SR) feature pairs pulled together by a feature loss: CogSeg's decoder levels
    /// (U-Net: four; DeepLabV3+: two), or DSRL's (FTM(seg logits), SR image).
    pub feature_pairs: Vec<(Tensor<4>, Tensor<4>)>,
    /// ESPNetv2's auxiliary seg logits (level 3 up-sampled to HR), `[n, C, rh, rw]`; `None` on
    /// the other backbones.
    pub aux: Option<Tensor<4>>,
}

/// The training-time model (see the module doc).
#[derive(Module, Debug)]
pub struct DualStream {
    /// Shared encoder.
    pub encoder: Encoder,
    /// Segmentation decoder.
    pub decoder: Decoder,
    /// 1×1 head + bilinear to HR.
    pub seg_head: SegHead,
    /// SR decoder + ESPCN head (frameworks with an SR stream).
    pub sr_branch: Option<SrBranch>,
    /// Cross-stream module (DS2F, SS-MAF, SuperVessel, DSRL).
    pub shared_feature: Option<SharedFeature>,
    /// Which framework this is (decides what `forward_train` computes).
    #[module(skip)]
    pub framework: Framework,
}

impl DualStream {
    /// The inference forward pass: segmentation stream only.
    ///
    /// # Shapes
    /// - `x`: `[n, 3, h, w]` LR image normalised to [−1, 1]
    /// - output: `[n, C, r·h, r·w]` logits
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let features = self.encoder.forward(x);
        let lr = features.input_size();
        self.seg_head
            .forward_at(self.decoder.forward(&features), lr)
    }

    /// The training forward pass: every output the framework's losses need.
    ///
    /// # Shapes
    /// - `x`: `[n, 3, h, w]`
    /// - outputs: see [`TrainOutputs`]
    pub fn forward_train(&self, x: Tensor<4>) -> TrainOutputs {
        let features = self.encoder.forward(x);
        let lr = features.input_size();
        let (seg_levels, aux) = self.decoder.forward_train(&features, self.seg_head.upscale);
        let f_seg = seg_levels.last().expect("a decoder level").clone(); // [n, c, h', w']
        let seg = self.seg_head.forward_at(f_seg.clone(), lr); // [n, C, rh, rw]
        let Some(sr_branch) = &self.sr_branch else {
            return TrainOutputs {
                seg,
                sr: None,
                proxy_seg: None,
                proxy_sr: None,
                feature_pairs: Vec::new(),
                aux,
            };
        };
        let sr_levels = sr_branch.forward_levels(&features);
        let f_sr = sr_levels.last().expect("a decoder level").clone(); // [n, c, h', w']
        let sr = sr_branch.image_at(f_sr.clone(), lr); // [n, 3, rh, rw]
        let mut out = TrainOutputs {
            seg: seg.clone(),
            sr: Some(sr.clone()),
            proxy_seg: None,
            proxy_sr: None,
            feature_pairs: Vec::new(),
            aux,
        };
        match &self.shared_feature {
            Some(SharedFeature::Mscg(mscg)) => {
                let (cross_sr, cross_seg) = mscg.forward(f_sr, f_seg); // [n, c, h', w'] each
                out.proxy_sr = Some(sr_branch.image_at(cross_sr, lr)); // [n, 3, rh, rw]
                out.proxy_seg = Some(self.seg_head.forward_at(cross_seg, lr)); // [n, C, rh, rw]
            }
            Some(SharedFeature::Cagl(cagl)) => {
                let (cross_sr, cross_seg) = cagl.forward(f_sr, f_seg); // [n, c, h', w'] each
                out.proxy_sr = Some(sr_branch.image_at(cross_sr, lr)); // [n, 3, rh, rw]
                out.proxy_seg = Some(self.seg_head.forward_at(cross_seg, lr)); // [n, C, rh, rw]
            }
            Some(SharedFeature::Maf(maf)) => {
                let (att_sr, att_seg) = maf.forward(f_sr, f_seg); // [n, c, h', w'] each
                out.proxy_sr = Some(sr_branch.image_at(att_sr, lr)); // [n, 3, rh, rw]
                out.proxy_seg = Some(self.seg_head.forward_at(att_seg, lr)); // [n, C, rh, rw]
            }
            Some(SharedFeature::Fim(fim)) => {
                out.proxy_seg = Some(fim.forward(sr, seg)); // [n, C, rh, rw]
            }
            Some(SharedFeature::Ftm(ftm)) => {
                out.feature_pairs.push((ftm.forward(seg), sr)); // [n, 3, rh, rw] each
            }
            None if self.framework == Framework::Cogseg => {
                out.feature_pairs = seg_levels.into_iter().zip(sr_levels).collect();
            }
            None => {}
        }
        out
    }

    /// The inference graph (encoder, seg decoder, seg head) with these weights; the SR stream
    /// and the shared module are dropped.
    pub fn into_segmenter(self) -> Segmenter {
        Segmenter {
            encoder: self.encoder,
            decoder: self.decoder,
            seg_head: self.seg_head,
        }
    }
}
