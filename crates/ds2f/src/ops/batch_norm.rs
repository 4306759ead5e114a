//! Batch normalisation in training mode as one pass for the statistics, one for the output, and
//! two for the backward, on the `flex` CPU backend: burn 0.22.1 composes it from about ten
//! element-wise passes forward (with transposed copies for the per-channel means) and fifteen
//! backward. Same numbers as burn's (two-pass mean and biased variance; running statistics
//! updated the same way); every other case is [`BatchNorm::forward`]. A ReLU after the batch
//! norm can be fused in ([`batch_norm_act`]): no separate pass or tensor for the pre-activation,
//! and its mask recomputed from the saved input in the backward.
use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::nn::BatchNorm;
use burn::tensor::{DType, Tensor};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::conv::{Route, flex_route};
use super::conv_bn::Activation;
use super::{f32_data, f32_tensor as tensor};

/// [`BatchNorm::forward`] for a 4-D input, with our kernels when training on `flex` in f32.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`
/// - output: the same
pub fn batch_norm_module(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    batch_norm_act(bn, x, Activation::Identity)
}

/// `activation(bn.forward(x))` for a 4-D input: with our kernels (the ReLU fused into the
/// batch norm's passes) when training on `flex` in f32, else burn's operations.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`
/// - output: the same
pub fn batch_norm_act(bn: &BatchNorm, x: Tensor<4>, activation: Activation) -> Tensor<4> {
    let gamma = bn.gamma.val();
    let ours = matches!(flex_route(&x), Some(Route::Autodiff))
        && flex_route(&gamma) == Some(Route::Autodiff)
        && bn.training.is_enabled()
        && gamma.dtype() == DType::F32;
    #[cfg(feature = "tch")]
    if super::libtorch::autodiff_route(&x)
        && super::libtorch::autodiff_route(&gamma)
        && bn.training.is_enabled()
    {
        return super::libtorch::batch_norm_train(bn, x, activation);
    }
    if !ours {
        let y = bn.forward(x);
        return match activation {
            Activation::Identity => y,
            Activation::Relu => burn::tensor::activation::relu(y),
        };
    }
    let device = gamma.device();
    let gamma = gamma
        .try_into_primitive::<Autodiff<Flex>>()
        .expect("gamma lives on the input's device");
    let beta = bn
        .beta
        .val()
        .try_into_primitive::<Autodiff<Flex>>()
        .expect("beta lives on the input's device");
    let x = x
        .try_into_primitive::<Autodiff<Flex>>()
        .expect("checked: an autodiff flex tensor");
    let relu = activation == Activation::Relu;
    let (out, mean, variance) = train_autodiff(x, gamma, beta, bn.epsilon, relu);
    let channels = mean.len();
    let stat =
        |v: Vec<f32>| Tensor::<1>::from_data(burn::tensor::TensorData::new(v, [channels]), &device);
    update_running_statistics(bn, stat(mean), stat(variance));
    Tensor::from_primitive::<Autodiff<Flex>>(out)
}

/// The running statistics exactly as burn's `BatchNorm::forward` updates them in training, from
/// the batch's mean and biased variance (on `bn`'s device).
pub(super) fn update_running_statistics(bn: &BatchNorm, mean: Tensor<1>, variance: Tensor<1>) {
    let device = mean.device();
    let m = bn.momentum;
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    let running_mean = running_mean.mul_scalar(1.0 - m).add(mean.mul_scalar(m));
    let running_var = running_var.mul_scalar(1.0 - m).add(variance.mul_scalar(m));
    bn.running_mean.update(running_mean.detach());
    bn.running_var.update(running_var.detach());
}

type AdTensor = <Autodiff<Flex> as burn::backend::BackendTypes>::FloatTensorPrimitive;

/// Per-channel statistics of a contiguous NCHW buffer: mean and biased variance, two passes.
fn statistics(x: &[f32], n: usize, c: usize, plane: usize) -> (Vec<f32>, Vec<f32>) {
    let count = (n * plane) as f64;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = || (0..n).map(move |i| &x[(i * c + ch) * plane..][..plane]);
            let mean = planes()
                .map(|p| p.iter().map(|&v| v as f64).sum::<f64>())
                .sum::<f64>()
                / count;
            let var = planes()
                .map(|p| p.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>())
                .sum::<f64>()
                / count;
            (mean as f32, var as f32)
        })
        .unzip()
}

/// `relu(z)` as burn computes it: zero where `z ≤ 0`, NaN kept.
#[inline]
fn relu_of(z: f32) -> f32 {
    if z <= 0.0 { 0.0 } else { z }
}

/// The forward kernel and its autodiff node (with `relu`, of `relu(bn(x))`): returns the output
/// and the batch statistics.
fn train_autodiff(
    x: AdTensor,
    gamma: AdTensor,
    beta: AdTensor,
    epsilon: f64,
    relu: bool,
) -> (AdTensor, Vec<f32>, Vec<f32>) {
    #[derive(Debug)]
    struct BatchNormBackward;
    /// Input, gamma, beta, per-channel mean and 1/σ, and whether a ReLU follows.
    type State = (FlexTensor, FlexTensor, FlexTensor, Vec<f32>, Vec<f32>, bool);

    impl Backward<Flex, 3> for BatchNormBackward {
        type State = State;
        fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_gamma, node_beta] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
            let (x, gamma, beta, mean, inv_std, relu) = ops.state;
            let [n, c, h, w] = x.shape().dims();
            let plane = h * w;
            let xs = f32_data(&x);
            let g = f32_data(&gamma); // stored contiguous by the forward
            // The gradient reaching the batch norm: with a fused ReLU, through its mask,
            // recomputed from the input with the forward's exact expression (one vectorised
            // pass, as burn's own ReLU backward would be).
            let masked: Vec<f32>;
            let dy = if relu {
                let (dy, b) = (f32_data(&grad), f32_data(&beta));
                let mut m = vec![0.0f32; dy.len()];
                m.par_chunks_mut(plane).enumerate().for_each(|(idx, out)| {
                    let ch = idx % c;
                    let (mu, s, shift) = (mean[ch], inv_std[ch] * g[ch], b[ch]);
                    let off = idx * plane;
                    for ((o, &d), &v) in out
                        .iter_mut()
                        .zip(&dy[off..off + plane])
                        .zip(&xs[off..off + plane])
                    {
                        *o = if (v - mu) * s + shift <= 0.0 { 0.0 } else { d };
                    }
                });
                masked = m;
                &masked[..]
            } else {
                f32_data(&grad)
            };
            // Σ dy and Σ dy·x̂ per channel.
            let (sum_dy, sum_dy_xhat): (Vec<f32>, Vec<f32>) = (0..c)
                .into_par_iter()
                .map(|ch| {
                    let (mut a, mut b) = (0.0f64, 0.0f64);
                    for i in 0..n {
                        let off = (i * c + ch) * plane;
                        for (&d, &v) in dy[off..off + plane].iter().zip(&xs[off..off + plane]) {
                            a += d as f64;
                            b += (d * (v - mean[ch]) * inv_std[ch]) as f64;
                        }
                    }
                    (a as f32, b as f32)
                })
                .unzip();
            if let Some(node) = node_x {
                let count = (n * plane) as f32;
                let mut dx = vec![0.0f32; xs.len()];
                dx.par_chunks_mut(plane).enumerate().for_each(|(idx, out)| {
                    let ch = idx % c;
                    let off = idx * plane;
                    let scale = g[ch] * inv_std[ch];
                    let (mdy, mdyx) = (sum_dy[ch] / count, sum_dy_xhat[ch] / count);
                    for ((o, &d), &v) in out
                        .iter_mut()
                        .zip(&dy[off..off + plane])
                        .zip(&xs[off..off + plane])
                    {
                        let xhat = (v - mean[ch]) * inv_std[ch];
                        *o = scale * (d - mdy - xhat * mdyx);
                    }
                });
                grads.register::<Flex>(node.id, tensor(dx, [n, c, h, w]));
            }
            if let Some(node) = node_gamma {
                grads.register::<Flex>(node.id, tensor(sum_dy_xhat, [c]));
            }
            if let Some(node) = node_beta {
                grads.register::<Flex>(node.id, tensor(sum_dy, [c]));
            }
        }
    }

    let prep = BatchNormBackward
        .prepare::<NoCheckpointing>([x.node(), gamma.node(), beta.node()])
        .compute_bound()
        .stateful();
    let xp = x.into_primitive().to_contiguous();
    let gp = gamma.into_primitive().to_contiguous();
    let bp = beta.into_primitive().to_contiguous();
    let [n, c, h, w] = xp.shape().dims();
    let plane = h * w;
    let xs = f32_data(&xp);
    let (mean, variance) = statistics(xs, n, c, plane);
    let inv_std: Vec<f32> = variance
        .iter()
        .map(|&v| 1.0 / (v as f64 + epsilon).sqrt() as f32)
        .collect();
    let (g, b) = (f32_data(&gp), f32_data(&bp));
    let mut out = vec![0.0f32; xs.len()];
    out.par_chunks_mut(plane).enumerate().for_each(|(idx, o)| {
        let ch = idx % c;
        let (m, s) = (mean[ch], inv_std[ch] * g[ch]);
        let values = o.iter_mut().zip(&xs[idx * plane..][..plane]);
        if relu {
            for (y, &v) in values {
                *y = relu_of((v - m) * s + b[ch]);
            }
        } else {
            for (y, &v) in values {
                *y = (v - m) * s + b[ch];
            }
        }
    });
    let out = tensor(out, [n, c, h, w]);
    let out = match prep {
        OpsKind::Tracked(prep) => prep.finish((xp, gp, bp, mean.clone(), inv_std, relu), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    (out, mean, variance)
}
