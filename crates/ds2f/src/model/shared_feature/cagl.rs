//! CAGL, the shared-feature module of the reference's DeepLabV3+ DS2F at HEAD (SPEC §1.3:
//! `CAGL(256, 256)` of `imed_vision/layers/task_fusion.py`, 0.21 M parameters), offered as
//! `model.shared_feature.kind = "cagl"` beside the paper's MSCG.
//!
//! `CAGL(x = F_sr, y = F_seg)`:
//! 1. `F = [x, y]`, re-weighted by a squeeze-excitation over the concatenation
//!    (global pool → 1×1 `2c → 2c/r` → ReLU → 1×1 → sigmoid);
//! 2. `fuse = 1×1(F)` to `hidden` channels;
//! 3. `fuse + global(fuse) + local(fuse)`: the global branch is [`DownAttention`] (a depthwise
//!    `d×d` stride-`d` conv, multi-head attention over the down-sampled positions, a feed-forward
//!    block, both with layer scale, bilinear back); the local branch a depthwise 3×3 → GELU →
//!    1×1 → GELU;
//! 4. per stream, `softmax_c(1×1(fuse)) ⊙ x + x` (a softmax over the channels, as the code).
//!
//! Unlike the MSCG it needs feature maps at least `down_rate` (default 32) pixels in each
//! direction: on DeepLabV3+'s /4 features that is an LR input of at least 128×128.
use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, softmax};

use super::{SharedFeatureConfig, conv, global_avg_pool};
use crate::ops::{conv2d_module, gelu};

/// Initial value of both layer scales (the code's `sclae_init = 1e-6`).
const LAYER_SCALE_INIT: f64 = 1e-6;

/// The global branch of CAGL (`DownAttention4D` of the code), on `c` channels with `heads`
/// heads of `c / heads` channels.
///
/// Field order is PyTorch's `named_parameters()` order (a module's own parameters first), so
/// the visiting order of the two agree; the PyTorch names are in [`Cagl::torch_keys`].
#[derive(Module, Debug)]
pub struct DownAttention {
    /// Layer scale of the attention output, `[c]`, initialised to 1e-6.
    pub layer_scaler: Param<Tensor<1>>,
    /// Layer scale of the feed-forward output, `[c]`, initialised to 1e-6.
    pub ffn_scaler: Param<Tensor<1>>,
    /// Depthwise `d×d` conv with stride `d` (with bias): the down-sampling.
    pub down_conv: Conv2d,
    /// Query projection: 1×1 conv (with bias) then BN (`q_proj.0`, `q_proj.1`).
    pub q_conv: Conv2d,
    /// BN of the query projection.
    pub q_bn: BatchNorm,
    /// Key projection 1×1 conv.
    pub k_conv: Conv2d,
    /// BN of the key projection.
    pub k_bn: BatchNorm,
    /// Value projection 1×1 conv.
    pub v_conv: Conv2d,
    /// BN of the value projection.
    pub v_bn: BatchNorm,
    /// Feed-forward 1×1 `c → 2c` (GELU after).
    pub ffn_expand: Conv2d,
    /// Feed-forward 1×1 `2c → c` (GELU after).
    pub ffn_reduce: Conv2d,
    /// Number of attention heads.
    #[module(skip)]
    pub heads: usize,
}

impl DownAttention {
    /// Builds the branch for `channels` (a multiple of `heads`), down-sampling by `down_rate`.
    ///
    /// # Panics
    /// If `heads` is 0 or does not divide `channels`, or `down_rate` is 0.
    pub fn new(channels: usize, down_rate: usize, heads: usize, device: &Device) -> Self {
        assert!(
            heads > 0 && channels.is_multiple_of(heads),
            "CAGL: {heads} heads do not divide {channels} channels"
        );
        assert!(down_rate > 0, "CAGL: down_rate must be at least 1");
        let c = channels;
        let down_conv = burn::nn::conv::Conv2dConfig::new([c, c], [down_rate, down_rate])
            .with_stride([down_rate, down_rate])
            .with_groups(c)
            .init(device);
        let scale = || Param::from_tensor(Tensor::ones([c], device) * LAYER_SCALE_INIT);
        Self {
            layer_scaler: scale(),
            ffn_scaler: scale(),
            down_conv,
            q_conv: conv([c, c], 1, 1, 1, true, device),
            q_bn: BatchNormConfig::new(c).init(device),
            k_conv: conv([c, c], 1, 1, 1, true, device),
            k_bn: BatchNormConfig::new(c).init(device),
            v_conv: conv([c, c], 1, 1, 1, true, device),
            v_bn: BatchNormConfig::new(c).init(device),
            ffn_expand: conv([c, 2 * c], 1, 1, 1, true, device),
            ffn_reduce: conv([2 * c, c], 1, 1, 1, true, device),
            heads,
        }
    }

    /// # Shapes
    /// - `x`: `[n, c, h, w]` with `h, w ≥ down_rate`
    /// - output: `[n, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let down = conv2d_module(&self.down_conv, x); // [n, c, h/d, w/d]
        let [n, c, hd, wd] = down.dims();
        let (heads, head_dim, positions) = (self.heads, c / self.heads, hd * wd);
        let project = |conv: &Conv2d, bn: &BatchNorm| {
            bn.forward(conv2d_module(conv, down.clone())) // [n, c, h/d, w/d]
                .reshape([n, heads, head_dim, positions]) // [n, heads, hd, N]
        };
        let q = project(&self.q_conv, &self.q_bn).swap_dims(2, 3); // [n, heads, N, hd]
        let k = project(&self.k_conv, &self.k_bn); // [n, heads, hd, N]
        let v = project(&self.v_conv, &self.v_bn).swap_dims(2, 3); // [n, heads, N, hd]
        let gamma = (head_dim as f64).powf(-0.5);
        let attention = softmax(q.matmul(k) * gamma, 3); // [n, heads, N, N]
        let net = attention
            .matmul(v) // [n, heads, N, hd]
            .swap_dims(2, 3) // [n, heads, hd, N]
            .reshape([n, c, hd, wd]);
        let scale = |p: &Param<Tensor<1>>| p.val().reshape([1, c, 1, 1]);
        let net = scale(&self.layer_scaler) * net + down; // [n, c, h/d, w/d]
        let ffn = gelu(conv2d_module(&self.ffn_expand, net.clone())); // [n, 2c, h/d, w/d]
        let ffn = gelu(conv2d_module(&self.ffn_reduce, ffn)); // [n, c, h/d, w/d]
        let net = ffn * scale(&self.ffn_scaler) + net; // [n, c, h/d, w/d]
        crate::model::unet::bilinear(net, [h, w], true) // [n, c, h, w]
    }
}

/// The reference's CAGL (see the module docs), with `x` the SR stream and `y` the seg stream.
#[derive(Module, Debug)]
pub struct Cagl {
    /// Squeeze 1×1 `2c → 2c/r` of the SE over the concatenation (`fu_se.1`).
    pub fu_se_reduce: Conv2d,
    /// Excite 1×1 `2c/r → 2c` (`fu_se.3`).
    pub fu_se_expand: Conv2d,
    /// 1×1 fusing conv `sr + seg → hidden`.
    pub fuse: Conv2d,
    /// The global branch.
    pub global_att: DownAttention,
    /// Depthwise 3×3 of the local branch (`local_conv.0`).
    pub local_dw: Conv2d,
    /// 1×1 of the local branch (`local_conv.2`).
    pub local_pw: Conv2d,
    /// 1×1 `hidden → sr` before the channel softmax (`out_x.0`).
    pub out_x: Conv2d,
    /// 1×1 `hidden → seg` before the channel softmax (`out_y.0`).
    pub out_y: Conv2d,
}

impl Cagl {
    /// Builds CAGL for streams of `sr_channels` and `seg_channels`, with the config's `hidden`
    /// width, SE `reduction`, `down_rate` and `heads`.
    ///
    /// # Panics
    /// If `reduction` is 0 or larger than the concatenated width, or as [`DownAttention::new`].
    pub fn new(
        sr_channels: usize,
        seg_channels: usize,
        config: &SharedFeatureConfig,
        device: &Device,
    ) -> Self {
        let (fu, hidden) = (sr_channels + seg_channels, config.hidden);
        assert!(
            config.reduction > 0 && fu / config.reduction > 0,
            "CAGL: reduction {} leaves no channels of {fu}",
            config.reduction
        );
        let squeezed = fu / config.reduction;
        Self {
            fu_se_reduce: conv([fu, squeezed], 1, 1, 1, true, device),
            fu_se_expand: conv([squeezed, fu], 1, 1, 1, true, device),
            fuse: conv([fu, hidden], 1, 1, 1, true, device),
            global_att: DownAttention::new(hidden, config.down_rate, config.heads, device),
            local_dw: conv([hidden, hidden], 3, 1, hidden, true, device),
            local_pw: conv([hidden, hidden], 1, 1, 1, true, device),
            out_x: conv([hidden, sr_channels], 1, 1, 1, true, device),
            out_y: conv([hidden, seg_channels], 1, 1, 1, true, device),
        }
    }

    /// # Shapes
    /// - `f_sr`: `[n, c_sr, h, w]`, `f_seg`: `[n, c_seg, h, w]`, `h, w ≥ down_rate`
    /// - outputs: `([n, c_sr, h, w], [n, c_seg, h, w])`
    pub fn forward(&self, f_sr: Tensor<4>, f_seg: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let fused = Tensor::cat(vec![f_sr.clone(), f_seg.clone()], 1); // [n, 2c, h, w]
        let se = relu(conv2d_module(
            &self.fu_se_reduce,
            global_avg_pool(fused.clone()),
        )); // [n, 2c/r, 1, 1]
        let se = sigmoid(conv2d_module(&self.fu_se_expand, se)); // [n, 2c, 1, 1]
        let fuse = conv2d_module(&self.fuse, fused * se); // [n, hidden, h, w]
        let global = self.global_att.forward(fuse.clone()); // [n, hidden, h, w]
        let local = gelu(conv2d_module(&self.local_dw, fuse.clone())); // [n, hidden, h, w]
        let local = gelu(conv2d_module(&self.local_pw, local)); // [n, hidden, h, w]
        let fuse = fuse + global + local; // [n, hidden, h, w]
        let gate = |head: &Conv2d, f: Tensor<4>| {
            softmax(conv2d_module(head, fuse.clone()), 1) * f.clone() + f // [n, c, h, w]
        };
        (gate(&self.out_x, f_sr), gate(&self.out_y, f_seg))
    }

    /// `(burn path, PyTorch name)` of every float tensor (parameters and BN statistics), the
    /// PyTorch names of `imed_vision`'s `CAGL`.
    pub fn torch_keys(&self) -> Vec<(String, String)> {
        crate::model::complexity::float_tensors(self)
            .into_iter()
            .map(|t| {
                let torch = torch_key(&t.path);
                (t.path, torch)
            })
            .collect()
    }
}

/// Maps one burn path of [`Cagl`] to the PyTorch name.
fn torch_key(path: &str) -> String {
    const RENAMES: [(&str, &str); 12] = [
        ("fu_se_reduce.", "fu_se.1."),
        ("fu_se_expand.", "fu_se.3."),
        ("global_att.q_conv.", "global_att.q_proj.0."),
        ("global_att.q_bn.", "global_att.q_proj.1."),
        ("global_att.k_conv.", "global_att.k_proj.0."),
        ("global_att.k_bn.", "global_att.k_proj.1."),
        ("global_att.v_conv.", "global_att.v_proj.0."),
        ("global_att.v_bn.", "global_att.v_proj.1."),
        ("global_att.ffn_expand.", "global_att.ffn.0."),
        ("global_att.ffn_reduce.", "global_att.ffn.2."),
        ("local_dw.", "local_conv.0."),
        ("local_pw.", "local_conv.2."),
    ];
    let mut out = path.to_string();
    for (from, to) in RENAMES {
        if let Some(rest) = path.strip_prefix(from) {
            out = format!("{to}{rest}");
        }
    }
    for head in ["out_x.", "out_y."] {
        if let Some(rest) = path.strip_prefix(head) {
            out = format!("{head}0.{rest}");
        }
    }
    if out.contains("_proj.1.") {
        out = out.replace(".gamma", ".weight").replace(".beta", ".bias");
    }
    out
}
