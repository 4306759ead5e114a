//! MSCG, the multi-scale cross gate of DS2F (paper §III-C, Fig. 2(b), eqs. 8–14) as the
//! reference code builds it: `CrossGL` and `Gate` of `imed_vision/layers/task_fusion.py`
//! (SPEC §1.2), with the ablation alternatives of [`SharedFeatureConfig`].
//!
//! ```text
//! F_fu   = GELU(BN(W_fu · cat[F_sr, F_seg]))          (fuse_norm = false: W_fu · cat[..])
//! F_ctx  = Context(Attention(F_fu)) + F_fu            (inner_residual = false: no + F_fu)
//! a_t    = GELU(W1_t · F_ctx)                         t ∈ {sr, seg}
//! cross_t = W2_t · (a_t ⊙ F_t) + F_t                  (gate = paper: GELU(W2_t · (..)) + F_t)
//! ```
//!
//! # burn paths ↔ PyTorch `named_parameters` of `CrossGL`
//!
//! | burn path | PyTorch name |
//! |---|---|
//! | `fusion_conv.{weight,bias}` | `fusion_conv.0.{weight,bias}` |
//! | `fusion_bn.{gamma,beta,running_mean,running_var}` | `fusion_conv.1.{weight,bias,running_mean,running_var}` |
//! | `gate.rcab.Mrcab.{conv1,conv2}.*` | `fusion_conv.3.rcab.{conv1,conv2}.*` |
//! | `gate.rcab.Mrcab.se_reduce.*` | `fusion_conv.3.rcab.se.0.*` (gpool, `ec88c9b`: `se.1.*`) |
//! | `gate.rcab.Mrcab.se_expand.*` | `fusion_conv.3.rcab.se.2.*` (gpool, `ec88c9b`: `se.3.*`) |
//! | `gate.msconv.MsConv.convs.{i}.Conv.*` | `fusion_conv.3.msconv.convs.{i}.*` |
//! | `gate.msconv.MsConv.convs.{k-1}.ImagePool.conv.*` | `fusion_conv.3.msconv.convs.{k-1}.conv.*` |
//! | `gate.msconv.MsConv.norm.{gamma,beta,running_*}` | `fusion_conv.3.msconv.norm.{weight,bias,running_*}` |
//! | `linear_cross_{sr,seg}.*` | `linear_cross_{sr,seg}.0.*` |
//! | `gate_{sr,seg}.*` | `gate_{sr,seg}.*` |
//!
//! [`Mscg::torch_keys`] computes this table for a built module. Declaration order equals the
//! PyTorch registration order, so `visit` yields the parameters in `named_parameters()` order.
use crate::ops::gelu;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;

use super::aspp::{ASPP_BRANCH_CHANNELS, ASPP_RATES};
use super::{
    Aspp, Attention, AttentionBlock, ContextBlock, GateForm, Mrcab, MsConv, Rcab, SelfAttention,
    SharedFeatureConfig, conv,
};

/// The context block of the MSCG gate, chosen by [`ContextBlock`]. burn puts the variant name
/// in parameter paths (`gate.msconv.MsConv.norm.gamma`).
// Built once per model; the size of the largest variant (ASPP) does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Context {
    /// MS-Conv.
    MsConv(MsConv),
    /// The reference DeepLab ASPP.
    Aspp(Aspp),
    /// DANet position attention.
    SelfAttention(SelfAttention),
}

impl Context {
    /// # Shapes
    /// - `x`: `[n, c, h, w]`
    /// - output: `[n, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Context::MsConv(m) => m.forward(x),
            Context::Aspp(m) => m.forward(x),
            Context::SelfAttention(m) => m.forward(x),
        }
    }
}

/// `Gate` of the code: attention block, context block, and (optionally) the long-range
/// residual `+ x`. Field names are the PyTorch ones (`rcab`, `msconv`) whatever the variant.
#[derive(Module, Debug)]
pub struct MscgGate {
    /// The attention block (MRCAB by default).
    pub rcab: Attention,
    /// The context block (MS-Conv by default).
    pub msconv: Context,
    /// Whether the input is added to the output (the code's "long range" residual).
    pub residual: bool,
}

impl MscgGate {
    /// Builds the gate of width `config.hidden`.
    pub fn new(config: &SharedFeatureConfig, device: &Device) -> Self {
        let c = config.hidden;
        let rcab = match config.attention {
            AttentionBlock::Mrcab => {
                Attention::Mrcab(Mrcab::new(c, config.reduction, false, device))
            }
            AttentionBlock::MrcabGpool => {
                Attention::Mrcab(Mrcab::new(c, config.reduction, true, device))
            }
            AttentionBlock::Rcab => Attention::Rcab(Rcab::new(c, config.reduction, device)),
        };
        let msconv = match config.context {
            ContextBlock::MsConv => {
                Context::MsConv(MsConv::new(c, config.groups, config.ms_conv, device))
            }
            ContextBlock::Aspp => {
                Context::Aspp(Aspp::new(c, c, ASPP_BRANCH_CHANNELS, &ASPP_RATES, device))
            }
            ContextBlock::SelfAttention => Context::SelfAttention(SelfAttention::new(c, device)),
        };
        Self {
            rcab,
            msconv,
            residual: config.inner_residual,
        }
    }

    /// # Shapes
    /// - `x`: `[n, c, h, w]`
    /// - output: `[n, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let net = self.rcab.forward(x.clone()); // [n, c, h, w]
        let net = self.msconv.forward(net); // [n, c, h, w]
        match self.residual {
            true => net + x,
            false => net,
        }
    }
}

/// The multi-scale cross gate (`CrossGL` of the code); see the module docs.
#[derive(Module, Debug)]
pub struct Mscg {
    /// 1×1 fusing conv `sr + seg → hidden` (with bias); the paper's `W` of eq. 8.
    pub fusion_conv: Conv2d,
    /// BN after the fusing conv (followed by GELU); `None` with `fuse_norm = false`.
    pub fusion_bn: Option<BatchNorm>,
    /// Attention + context (+ residual).
    pub gate: MscgGate,
    /// `W1` of the SR stream: 1×1 `hidden → sr` (with bias), GELU after.
    pub linear_cross_sr: Conv2d,
    /// `W1` of the seg stream: 1×1 `hidden → seg` (with bias), GELU after.
    pub linear_cross_seg: Conv2d,
    /// `W2` of the SR stream: 1×1 `sr → sr` (with bias).
    pub gate_sr: Conv2d,
    /// `W2` of the seg stream: 1×1 `seg → seg` (with bias).
    pub gate_seg: Conv2d,
    /// GELU after `W2` ([`GateForm::Paper`]).
    pub gelu_after_gate: bool,
}

impl Mscg {
    /// Builds the MSCG for streams of `sr_channels` and `seg_channels`.
    ///
    /// # Panics
    /// If `config.hidden / config.reduction` is 0, or (MS-Conv) `config.groups < 2` or
    /// `config.hidden` is not a multiple of `config.groups`.
    pub fn new(
        sr_channels: usize,
        seg_channels: usize,
        config: &SharedFeatureConfig,
        device: &Device,
    ) -> Self {
        let h = config.hidden;
        Self {
            fusion_conv: conv([sr_channels + seg_channels, h], 1, 1, 1, true, device),
            fusion_bn: config
                .fuse_norm
                .then(|| BatchNormConfig::new(h).init(device)),
            gate: MscgGate::new(config, device),
            linear_cross_sr: conv([h, sr_channels], 1, 1, 1, true, device),
            linear_cross_seg: conv([h, seg_channels], 1, 1, 1, true, device),
            gate_sr: conv([sr_channels, sr_channels], 1, 1, 1, true, device),
            gate_seg: conv([seg_channels, seg_channels], 1, 1, 1, true, device),
            gelu_after_gate: config.gate == GateForm::Paper,
        }
    }

    /// Returns `(cross_sr, cross_seg)`, the re-scaled features of both streams.
    ///
    /// # Shapes
    /// - `f_sr`: `[n, c_sr, h, w]` SR decoder features
    /// - `f_seg`: `[n, c_seg, h, w]` segmentation decoder features
    /// - output: `([n, c_sr, h, w], [n, c_seg, h, w])`
    pub fn forward(&self, f_sr: Tensor<4>, f_seg: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let fusion = Tensor::cat(vec![f_sr.clone(), f_seg.clone()], 1); // [n, c_sr + c_seg, h, w]
        let fusion = crate::ops::conv2d_module(&self.fusion_conv, fusion); // [n, hidden, h, w]
        let fusion = match &self.fusion_bn {
            Some(bn) => gelu(crate::ops::batch_norm_module(bn, fusion)),
            None => fusion,
        };
        let fusion = self.gate.forward(fusion); // [n, hidden, h, w]
        let a_sr = gelu(crate::ops::conv2d_module(
            &self.linear_cross_sr,
            fusion.clone(),
        )); // [n, c_sr, h, w]
        let a_seg = gelu(crate::ops::conv2d_module(&self.linear_cross_seg, fusion)); // [n, c_seg, h, w]
        let cross_sr = crate::ops::conv2d_module(&self.gate_sr, a_sr * f_sr.clone()); // [n, c_sr, h, w]
        let cross_seg = crate::ops::conv2d_module(&self.gate_seg, a_seg * f_seg.clone()); // [n, c_seg, h, w]
        match self.gelu_after_gate {
            true => (gelu(cross_sr) + f_sr, gelu(cross_seg) + f_seg),
            false => (cross_sr + f_sr, cross_seg + f_seg),
        }
    }

    /// `(burn path, PyTorch CrossGL name)` of every parameter and BN running statistic, in
    /// visiting order (the table of the module docs). Parts without a counterpart in the
    /// reference (RCAB, ASPP, self-attention, and the substitutes of switched-off MS-Conv
    /// parts, whose shapes differ) get their burn path after the `fusion_conv.3.` prefix, which
    /// no PyTorch `CrossGL` has.
    pub fn torch_keys(&self) -> Vec<(String, String)> {
        let gpool = matches!(&self.gate.rcab, Attention::Mrcab(m) if m.gpool);
        crate::model::complexity::float_tensors(self)
            .into_iter()
            .map(|t| {
                let torch = torch_key(&t.path, gpool);
                (t.path, torch)
            })
            .collect()
    }
}

/// Maps one burn path of [`Mscg`] to the PyTorch name.
fn torch_key(path: &str, gpool: bool) -> String {
    let bn_leaf = |p: &str| p.replace(".gamma", ".weight").replace(".beta", ".bias");
    if let Some(rest) = path.strip_prefix("fusion_conv.") {
        return format!("fusion_conv.0.{rest}");
    }
    if let Some(rest) = path.strip_prefix("fusion_bn.") {
        return bn_leaf(&format!("fusion_conv.1.{rest}"));
    }
    for t in ["linear_cross_sr.", "linear_cross_seg."] {
        if let Some(rest) = path.strip_prefix(t) {
            return format!("{t}0.{rest}");
        }
    }
    if let Some(rest) = path.strip_prefix("gate.") {
        let (reduce, expand) = match gpool {
            true => ("se.1", "se.3"),
            false => ("se.0", "se.2"),
        };
        let rest = rest
            .replace("rcab.Mrcab.se_reduce", &format!("rcab.{reduce}"))
            .replace("rcab.Mrcab.se_expand", &format!("rcab.{expand}"))
            .replace("rcab.Mrcab.", "rcab.")
            .replace("msconv.MsConv.", "msconv.")
            .replace(".Conv.", ".")
            .replace(".ImagePool.", ".");
        return bn_leaf(&format!("fusion_conv.3.{rest}"));
    }
    path.to_string()
}
