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

use super::conv::{
    Fused, Kernel, Route, flex_route, forward_parts, forward_with, plain_primitives,
};
use super::{batch_norm_act, conv2d_module};
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
    let weight = conv.weight.val();
    let plain = Some(Route::Plain);
    let fusable = parts.iter().all(|x| flex_route(x) == plain)
        && flex_route(&weight) == plain
        && conv
            .bias
            .as_ref()
            .is_none_or(|b| flex_route(&b.val()) == plain)
        && weight.dtype() == DType::F32
        && bn.gamma.val().dtype() == DType::F32;
    let options = padding
        .map(|p| ConvOptions::new_with_padding(conv.stride, p, conv.dilation, conv.groups))
        .filter(|o| fusable && !o.is_asymmetric());
    #[cfg(feature = "tch")]
    if let Some(out) = super::libtorch::conv_bn_inference(conv, bn, &parts, activation)
        .or_else(|| super::libtorch::conv_bn_train(conv, bn, &parts, activation))
    {
        return out;
    }
    let Some(options) = options else {
        let x = if parts.len() == 1 {
            parts.remove(0)
        } else {
            Tensor::cat(parts, 1)
        };
        return batch_norm_act(bn, conv2d_module(conv, x), activation);
    };
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
    let fused = Fused {
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
                    .expect("checked: flex")
            })
            .collect();
        let weight = weight
            .clone()
            .try_into_primitive::<Flex>()
            .expect("checked: flex");
        if let Some(out) = forward_parts(&flex, weight, &options, &fused) {
            return Tensor::from_primitive::<Flex>(out);
        }
    }
    let x = if parts.len() == 1 {
        parts.remove(0)
    } else {
        Tensor::cat(parts, 1)
    };
    let (x, weight) = plain_primitives(x, weight);
    Tensor::from_primitive::<Flex>(forward_with(x, weight, &options, &fused, Kernel::Auto))
}
