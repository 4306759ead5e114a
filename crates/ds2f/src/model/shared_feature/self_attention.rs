//! Spatial self-attention for the Table V ablation ("Self-Att" replacing MS-Conv): the
//! position attention module of DANet (Fu et al., CVPR 2019), which is SAGAN's self-attention
//! (Zhang et al., ICML 2019) with a residual.
//!
//! The reference's `GlobalSpatialAttention` (`imed_vision/layers/task_fusion.py`, unused) cannot
//! run: it calls `v.transpose(bs, ch, h*w)`. Its intent (down-sampling conv, LayerNorm, qkv,
//! scaled softmax, transposed conv back, projection, residual) cannot be recovered exactly, so
//! this module is the standard PAM instead:
//!
//! `q = W_q x`, `k = W_k x` (1×1 convs with bias to `max(c/8, 1)` channels), `v = W_v x`
//! (1×1, `c → c`), `A = softmax_j(q_iᵀ k_j)` over all positions, `out_i = Σ_j A_ij v_j`,
//! `y = γ·out + x` with a learnt scalar γ initialised to 0 (so the block starts as the
//! identity and q, k, v get no gradient until γ moves). Memory is `O((h·w)²)` per sample.
use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::conv;

/// DANet position attention (see the module docs).
#[derive(Module, Debug)]
pub struct SelfAttention {
    /// Residual scale γ, shape `[1]`, initialised to 0. First, as PyTorch lists a module's own
    /// parameters before its sub-modules' in `named_parameters()`.
    pub gamma: Param<Tensor<1>>,
    /// 1×1 query projection `c → max(c/8, 1)`.
    pub query: Conv2d,
    /// 1×1 key projection `c → max(c/8, 1)`.
    pub key: Conv2d,
    /// 1×1 value projection `c → c`.
    pub value: Conv2d,
}

impl SelfAttention {
    /// Builds the block for `channels`.
    pub fn new(channels: usize, device: &Device) -> Self {
        let inner = (channels / 8).max(1);
        Self {
            gamma: Param::from_tensor(Tensor::zeros([1], device)),
            query: conv([channels, inner], 1, 1, 1, true, device),
            key: conv([channels, inner], 1, 1, 1, true, device),
            value: conv([channels, channels], 1, 1, 1, true, device),
        }
    }

    /// # Shapes
    /// - `x`: `[n, c, h, w]`
    /// - output: `[n, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let q = crate::ops::conv2d_module(&self.query, x.clone()); // [n, d, h, w]
        let d = q.dims()[1];
        let q = q.reshape([n, d, h * w]).swap_dims(1, 2); // [n, hw, d]
        let k = crate::ops::conv2d_module(&self.key, x.clone()).reshape([n, d, h * w]); // [n, d, hw]
        let attention = softmax(q.matmul(k), 2); // [n, hw(i), hw(j)]
        let v = crate::ops::conv2d_module(&self.value, x.clone()).reshape([n, c, h * w]); // [n, c, hw(j)]
        let out = v.matmul(attention.swap_dims(1, 2)); // [n, c, hw(i)]
        let gamma = self.gamma.val().reshape([1, 1, 1, 1]); // [1, 1, 1, 1]
        out.reshape([n, c, h, w]) * gamma + x // [n, c, h, w]
    }
}
