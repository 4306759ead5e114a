//! The ESPNetv2 segmentation decoder (`ESPNetV2_Seg` of the DS2F reference
//! `imed_vision/models/segmentation/espnets.py`, after `EESPNet_Seg` of the official
//! `segmentation/cnn/SegmentationModel.py`), for `out` output channels (C for the segmentation
//! stream, the image channels for the SR stream's copy, SPEC §1.4):
//!
//! ```text
//! l4 → proj_l4_c (1×1 CBR w4 → w3) → bilinear to l3 → cat [l3, ·] (2·w3)
//!    → EESP (2·w3 → w3, r_lim 7) → PSP (w3 → w3) → project_l3 (dropout, 1×1 → out)  = proj_l3
//!    → act_l3 (BN + PReLU) → bilinear to l2 → cat [l2, ·] → project_l2 (1×1 CBR → out)
//!    → bilinear to l1 → cat [l1, ·]                                                  = merged_l1
//!    → project_l1 (dropout, 1×1 → out) → bilinear ×2 → bilinear ×r
//! ```
//!
//! Every bilinear has align_corners = true. `merged_l1` (`w1 + out` channels at /2) is the
//! decoder's output F (F_seg, F_sr) in the backbone-generic wiring ([`crate::model::backbone`]),
//! where DS2F's MSCG attaches; the rest is the head, so that the fused features go through the
//! same head: in the segmentation stream `project_l1` is the [`crate::model::SegHead`]'s
//! convolution (`seg_head.conv`, no bias, with the dropout before it), in the SR stream's copy
//! it is this decoder's [`EspnetV2Decoder::project_l1`], applied by
//! [`EspnetV2Decoder::project`] before the ESPCN head. The reference's "×2" is
//! `scale_factor = 2` (output `2·ceil(h/2)`, one row too many for odd h); here it goes to the
//! input size, the same map for even sizes and an `[r·h, r·w]` output for every size.
use burn::nn::conv::Conv2d;
use burn::nn::{Dropout, DropoutConfig};
use burn::prelude::*;

use super::eesp::Eesp;
use super::encoder::{BRANCHES, EspnetLevels};
use super::layers::{Br, Cbr, ConvInit, conv};
use super::psp::PspModule;
use crate::model::unet::bilinear;

/// The decoder's features before the last projection.
#[derive(Debug, Clone)]
pub struct EspnetDecoderFeatures {
    /// `cat([l1, up(project_l2)])`, `[n, w1 + out, ceil(h/2), ceil(w/2)]`: MSCG's input.
    pub merged_l1: Tensor<4>,
    /// The level-3 logits before `act_l3` (the auxiliary output's source), `[n, out, /8]`.
    pub proj_l3: Tensor<4>,
}

/// The decoder (see the module docs). Field names follow the reference's state dict
/// (`pspMod.0` is `psp_eesp`, `pspMod.1` is `psp`).
#[derive(Module, Debug)]
pub struct EspnetV2Decoder {
    /// 1×1 CBR `w4 → w3` (`proj_l4_c`).
    pub proj_l4_c: Cbr,
    /// EESP `2·w3 → w3`, K = 4, r_lim = 7 (`pspMod.0`).
    pub psp_eesp: Eesp,
    /// Pyramid pooling `w3 → w3` (`pspMod.1`).
    pub psp: PspModule,
    /// Dropout before `project_l3` (identity off autodiff devices).
    pub project_l3_dropout: Dropout,
    /// 1×1 `w3 → out`, no bias.
    pub project_l3: Conv2d,
    /// BN + PReLU on the level-3 logits.
    pub act_l3: Br,
    /// 1×1 CBR `w2 + out → out`.
    pub project_l2: Cbr,
    /// Dropout before `project_l1` (identity off autodiff devices).
    pub project_l1_dropout: Dropout,
    /// 1×1 `w1 + out → out`, no bias: the SR copy's (`sr_project_l1`); `None` in the
    /// segmentation decoder, whose `project_l1` is the seg head's convolution.
    pub project_l1: Option<Conv2d>,
}

impl EspnetV2Decoder {
    /// Builds the decoder for encoder level `widths`, `out_channels` outputs and dropout
    /// probability `dropout` (reference: 0.2; 0.1 for s ≤ 0.5 in the official code, which the
    /// DS2F reference's scripts never select), with its own `project_l1` when `project` (the
    /// SR stream's copy).
    pub fn new(
        widths: [usize; 4],
        out_channels: usize,
        dropout: f64,
        project: bool,
        device: &Device,
    ) -> Self {
        let [w1, w2, w3, w4] = widths;
        let o = out_channels;
        let init = ConvInit::Default;
        Self {
            proj_l4_c: Cbr::new([w4, w3], 1, 1, 1, init, device),
            psp_eesp: Eesp::new([2 * w3, w3], 1, 7, BRANCHES, init, device),
            psp: PspModule::new(w3, w3, device),
            project_l3_dropout: DropoutConfig::new(dropout).init(),
            project_l3: conv([w3, o], 1, 1, 1, 1, init, device),
            act_l3: Br::new(o, device),
            project_l2: Cbr::new([w2 + o, o], 1, 1, 1, init, device),
            project_l1_dropout: DropoutConfig::new(dropout).init(),
            project_l1: project.then(|| conv([w1 + o, o], 1, 1, 1, 1, init, device)),
        }
    }

    /// Everything up to the level-1 concatenation.
    ///
    /// # Shapes
    /// - `levels`: the encoder's output
    /// - output: see [`EspnetDecoderFeatures`]
    pub fn forward_merged(&self, levels: &EspnetLevels) -> EspnetDecoderFeatures {
        let size = |t: &Tensor<4>| {
            let [_, _, h, w] = t.dims();
            [h, w]
        };
        let l4 = self.proj_l4_c.forward(levels.l4.clone()); // [n, w3, /16]
        let l4 = bilinear(l4, size(&levels.l3), true); // [n, w3, /8]
        let merged_l3 = Tensor::cat(vec![levels.l3.clone(), l4], 1); // [n, 2·w3, /8]
        let psp = self.psp.forward(self.psp_eesp.forward(merged_l3)); // [n, w3, /8]
        let proj_l3 =
            crate::ops::conv2d_module(&self.project_l3, self.project_l3_dropout.forward(psp)); // [n, out, /8]
        let act_l3 = self.act_l3.forward(proj_l3.clone()); // [n, out, /8]
        let up_l3 = bilinear(act_l3, size(&levels.l2), true); // [n, out, /4]
        let proj_l2 = self.project_l2.forward_cat(vec![levels.l2.clone(), up_l3]); // [n, out, /4]
        let up_l2 = bilinear(proj_l2, size(&levels.l1), true); // [n, out, /2]
        let merged_l1 = Tensor::cat(vec![levels.l1.clone(), up_l2], 1); // [n, w1 + out, /2]
        EspnetDecoderFeatures { merged_l1, proj_l3 }
    }

    /// `project_l1`, then bilinear ×2 to `input_size` (the LR size): the SR stream's input to
    /// its ESPCN head.
    ///
    /// # Shapes
    /// - `merged_l1`: `[n, w1 + out, ceil(h/2), ceil(w/2)]`
    /// - output: `[n, out, h, w]` with `[h, w] = input_size`
    ///
    /// # Panics
    /// On the segmentation decoder, which has no `project_l1` of its own (the seg head has it).
    pub fn project(&self, merged_l1: Tensor<4>, input_size: [usize; 2]) -> Tensor<4> {
        let conv = self
            .project_l1
            .as_ref()
            .expect("project_l1 of the SR decoder copy");
        let x = self.project_l1_dropout.forward(merged_l1);
        let x = crate::ops::conv2d_module(conv, x); // [n, out, /2]
        bilinear(x, input_size, true) // [n, out, h, w]
    }
}

/// The auxiliary output of the reference's training forward (`hierarchicalUpsample(proj_l3)`,
/// then ×r): the level-3 logits up-sampled ×2 three times — here to the level-2, level-1 and
/// input sizes, the reference's ×2 steps for sizes divisible by 8 — then ×r.
///
/// # Shapes
/// - `proj_l3`: `[n, out, /8]`
/// - output: `[n, out, r·h, r·w]` with `[h, w] = levels.input_size`
pub fn aux_upsample(proj_l3: Tensor<4>, levels: &EspnetLevels, upscale: usize) -> Tensor<4> {
    let size = |t: &Tensor<4>| {
        let [_, _, h, w] = t.dims();
        [h, w]
    };
    let [h, w] = levels.input_size;
    let x = bilinear(proj_l3, size(&levels.l2), true); // [n, out, /4]
    let x = bilinear(x, size(&levels.l1), true); // [n, out, /2]
    let x = bilinear(x, [h, w], true); // [n, out, h, w]
    bilinear(x, [upscale * h, upscale * w], true) // [n, out, rh, rw]
}
