//! Convolution, batch norm and ReLU as one operation at inference.
//!
//! At inference a batch norm is a per-channel affine map, `y·s + t` with `s = γ/√(σ² + ε)` and
//! `t = β − μ·s`, so it folds into the convolution before it: the weights are scaled by `s`
//! while they are packed and `t` (plus the conv bias times `s`) is added, and the ReLU applied,
//! as each output is finished. One pass over the feature map instead of four (convolution,
//! batch norm's subtract/divide/multiply/add, ReLU). Training keeps the separate operations:
//! the batch norm then normalises with the batch statistics and has gradients of its own.
use burn::backend::Flex;
use burn::nn::BatchNorm;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor};
use ds2f_kernels::conv::{Epilogue, Kernel};

use super::conv::{forward_parts, forward_with, parts_fit, plain_primitives};
use super::{Route, batch_norm_act, conv2d_module};
use burn_flex::FlexTensor;

/// The activation after [`conv_bn`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// None: `bn(conv(x))`.
    Identity,
    /// `relu(bn(conv(x)))`.
    Relu,
}

/// `activation(bn(conv(x)))`: on the `flex` CPU device without autodiff (inference) one fused
/// kernel; everywhere else the convolution, then the batch norm with the ReLU (one fused
/// training kernel on `flex`).
///
/// # Shapes
/// - `x`: `[batch, channels_in, height, width]`
/// - output: `[batch, channels_out, height_out, width_out]`
pub fn conv_bn(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>, activation: Activation) -> Tensor<4> {
    conv_bn_cat(conv, bn, vec![x], activation)
}

/// [`conv_bn`] of `Tensor::cat(parts, 1)`. At inference, where the implicit-GEMM kernel runs
/// the convolution, the concatenation is never built: the kernel reads each part directly
/// (the U-Net decoder's `cat([up, skip])`).
///
/// # Shapes
/// - `parts`: `[batch, channels_i, height, width]`, `Σ channels_i = channels_in`
/// - output: `[batch, channels_out, height_out, width_out]`
pub fn conv_bn_cat(
    conv: &Conv2d,
    bn: &BatchNorm,
    mut parts: Vec<Tensor<4>>,
    activation: Activation,
) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => Some([(0, 0), (0, 0)]),
        PaddingConfig2d::Explicit(top, left, bottom, right) => Some([(top, bottom), (left, right)]),
        PaddingConfig2d::Same => None,
    };
    // Symmetric padding (what our kernels and libtorch's take), else burn's operations.
    let options = padding
        .map(|p| ConvOptions::new_with_padding(conv.stride, p, conv.dilation, conv.groups))
        .filter(|o| !o.is_asymmetric());
    let weight = conv.weight.val();
    let bias = conv.bias.as_ref().map(|b| b.val());
    let route = parts
        .iter()
        .fold(Route::of(&weight), |r, x| r.and(x))
        .and_some(bias.as_ref());
    match (route, options) {
        (Route::Flex, Some(options)) if bn.gamma.val().dtype() == DType::F32 => {
            fused_inference(conv, bn, parts, activation, &options)
        }
        #[cfg(feature = "tch")]
        (Route::LibTorch, Some(_)) => {
            super::libtorch::conv_bn_inference(conv, bn, &parts, activation)
        }
        #[cfg(feature = "tch")]
        (Route::LibTorchAutodiff, Some(_))
            if bn.training.is_enabled()
                && Route::LibTorchAutodiff.and(&bn.gamma.val()) == Route::LibTorchAutodiff
                && parts.len() <= 2 =>
        {
            super::libtorch::conv_bn_train(conv, bn, &parts, activation)
        }
        _ => {
            let x = if parts.len() == 1 {
                parts.remove(0)
            } else {
                Tensor::cat(parts, 1)
            };
            batch_norm_act(bn, conv2d_module(conv, x), activation)
        }
    }
}

/// [`conv_bn_cat`] at inference on `flex` (callers route every operand [`Route::Flex`]): the
/// batch norm folded into the convolution's [`Epilogue`], the parts read in place where the
/// implicit GEMM runs.
fn fused_inference(
    conv: &Conv2d,
    bn: &BatchNorm,
    mut parts: Vec<Tensor<4>>,
    activation: Activation,
    options: &ConvOptions<2>,
) -> Tensor<4> {
    let weight = conv.weight.val();
    let values = |t: Tensor<1>| {
        t.into_data()
            .try_to_vec_as::<f32>()
            .expect("a float tensor")
    };
    let gamma = values(bn.gamma.val());
    let beta = values(bn.beta.val());
    let mean = values(bn.running_mean.value());
    let var = values(bn.running_var.value());
    let bias = conv.bias.as_ref().map(|b| values(b.val()));
    let scale: Vec<f32> = gamma
        .iter()
        .zip(&var)
        .map(|(&g, &v)| (g as f64 / (v as f64 + bn.epsilon).sqrt()) as f32)
        .collect();
    let shift: Vec<f32> = (0..scale.len())
        .map(|c| {
            let b = bias.as_ref().map_or(0.0, |b| b[c] as f64);
            (beta[c] as f64 + (b - mean[c] as f64) * scale[c] as f64) as f32
        })
        .collect();
    let epilogue = Epilogue {
        scale: Some(&scale),
        shift: Some(&shift),
        relu: activation == Activation::Relu,
    };
    if parts.len() > 1 {
        let flex: Vec<FlexTensor> = parts
            .iter()
            .map(|x| {
                x.clone()
                    .try_into_primitive::<Flex>()
                    .expect("routed: flex")
            })
            .collect();
        let weight = weight
            .clone()
            .try_into_primitive::<Flex>()
            .expect("routed: flex");
        if parts_fit(&flex, &weight, options) {
            return Tensor::from_primitive::<Flex>(forward_parts(
                &flex, weight, options, &epilogue,
            ));
        }
    }
    let x = if parts.len() == 1 {
        parts.remove(0)
    } else {
        Tensor::cat(parts, 1)
    };
    let (x, weight) = plain_primitives(x, weight);
    Tensor::from_primitive::<Flex>(forward_with(x, weight, options, &epilogue, Kernel::Auto))
}
