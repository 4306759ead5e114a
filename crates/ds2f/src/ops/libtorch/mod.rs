//! Training and inference on burn's libtorch backend (`tch` feature) with PyTorch's own
//! kernels where burn's would be slow.
//!
//! burn 0.22.1's `tch` backend runs a convolution's forward pass in libtorch but differentiates
//! it with burn's generic decomposition (the weight gradient as a convolution with an
//! image-sized kernel), and composes training-mode batch norm from about 25 element-wise
//! operations, each one a libtorch call plus a burn autodiff node. Here a convolution, a batch
//! norm (+ ReLU), or a whole convolution + batch norm (+ ReLU) block with its input
//! concatenation, is one burn autodiff operation whose forward pass builds a small libtorch
//! autograd graph and whose backward pass runs it: the same `convolution_backward` and
//! `native_batch_norm_backward` kernels (oneDNN on the CPU, cuDNN on CUDA) PyTorch itself uses.
//! At inference a batch norm is folded into the convolution before it, and the feature maps
//! stay in channels-last memory order (see [`conv_bn_inference`]). Same numbers as burn's
//! operations up to float rounding; the running statistics of batch norm are updated exactly as
//! burn does (biased variance).
// burn marks its libtorch backend deprecated; this module exists to use it (docs/gpu.md).
#![allow(deprecated)]

mod autograd;
mod layout;

use burn::backend::libtorch::TchTensor;
use burn::backend::{Autodiff, BackendTypes, LibTorch};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::ops::ConvOptions;

use super::conv_bn::Activation;
use autograd::through_autograd;
use layout::channels_last;
pub(super) use layout::few_channels_dense;

pub(super) type AdTensor = <Autodiff<LibTorch> as BackendTypes>::FloatTensorPrimitive;

/// The libtorch tensor behind a burn tensor on the libtorch device without autodiff (callers
/// check the device).
fn torch<const D: usize>(t: Tensor<D>) -> tch::Tensor {
    t.try_into_primitive::<LibTorch>()
        .expect("checked: every operand lives on the libtorch device")
        .tensor
}

fn primitive<const D: usize>(t: Tensor<D>) -> AdTensor {
    t.try_into_primitive::<Autodiff<LibTorch>>()
        .expect("checked: every operand lives on the same libtorch autodiff device")
}

/// [`burn::tensor::module::conv2d`] on `Autodiff<LibTorch>` (callers route every operand
/// [`super::Route::LibTorchAutodiff`] and check that the padding is symmetric).
///
/// # Shapes
/// - `x`: `[batch, channels_in, height, width]`
/// - `weight`: `[channels_out, channels_in / groups, kernel_height, kernel_width]`
/// - `bias`: `[channels_out]`
/// - output: `[batch, channels_out, height_out, width_out]`
pub(super) fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let stride = as_i64(options.stride);
    let padding = as_i64(options.padding_begin());
    let dilation = as_i64(options.dilation);
    let groups = options.groups as i64;
    let out = match bias {
        Some(bias) => {
            through_autograd([primitive(x), primitive(weight), primitive(bias)], 0, |t| {
                t[0].conv2d(&t[1], Some(&t[2]), stride, padding, dilation, groups)
            })
        }
        None => through_autograd([primitive(x), primitive(weight)], 0, |t| {
            t[0].conv2d::<&tch::Tensor>(&t[1], None, stride, padding, dilation, groups)
        }),
    };
    Tensor::from_primitive::<Autodiff<LibTorch>>(out)
}

/// `activation(bn.forward(x))` in training mode on `Autodiff<LibTorch>` (callers route `x`
/// and γ [`super::Route::LibTorchAutodiff`] and check that `bn` is training); the running
/// statistics are updated.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`
/// - output: the same
pub(super) fn batch_norm_train(bn: &BatchNorm, x: Tensor<4>, activation: Activation) -> Tensor<4> {
    let eps = bn.epsilon;
    let mut statistics = None;
    let out = through_autograd(
        [
            primitive(x),
            primitive(bn.gamma.val()),
            primitive(bn.beta.val()),
        ],
        0,
        |t| {
            let (y, mean, invstd) = batch_norm_forward(&t[0], &t[1], &t[2], eps);
            statistics = Some((mean, invstd));
            activate(y, activation)
        },
    );
    update_running_statistics(bn, statistics.expect("the forward pass ran"));
    Tensor::from_primitive::<Autodiff<LibTorch>>(out)
}

/// `activation(bn(conv(cat(parts, 1))))` in training on `Autodiff<LibTorch>`, as one burn
/// operation (one libtorch graph: no concatenation in burn's graph, one backward call for the
/// three); the running statistics are updated. Callers route every operand
/// [`super::Route::LibTorchAutodiff`] and check that `bn` is training, that the padding is
/// symmetric and that there are at most two parts.
///
/// # Shapes
/// - `parts`: `[batch, channels_i, height, width]`, `Σ channels_i = channels_in`
/// - output: `[batch, channels_out, height_out, width_out]`
pub(super) fn conv_bn_train(
    conv: &Conv2d,
    bn: &BatchNorm,
    parts: &[Tensor<4>],
    activation: Activation,
) -> Tensor<4> {
    let weight = conv.weight.val();
    let bias = conv.bias.as_ref().map(|b| b.val());
    let gamma = bn.gamma.val();
    let padding = symmetric_padding(conv).expect("routed: symmetric padding");
    let (stride, dilation, groups) = (
        as_i64(conv.stride),
        as_i64(conv.dilation),
        conv.groups as i64,
    );
    let (has_bias, eps) = (bias.is_some(), bn.epsilon);
    let mut statistics = None;
    // Leaves: the input (the parts concatenated), the weight, the bias if any, γ, β.
    let f = |t: &[tch::Tensor]| {
        let b = has_bias.then(|| &t[2]);
        let z = t[0].conv2d(&t[1], b, stride, padding, dilation, groups);
        let k = t.len();
        let (y, mean, invstd) = batch_norm_forward(&z, &t[k - 2], &t[k - 1], eps);
        statistics = Some((mean, invstd));
        activate(y, activation)
    };
    let p = |t: &Tensor<4>| primitive(t.clone());
    let (w, g, be) = (
        primitive(weight),
        primitive(gamma),
        primitive(bn.beta.val()),
    );
    // Two parts are concatenated before the graph, into one leaf: the graph keeps the
    // concatenation (for the weight gradient), as PyTorch does, and not the parts themselves (the
    // decoder's upsampled features, which PyTorch frees after the concatenation).
    let out = match (parts, bias) {
        ([x], None) => through_autograd([p(x), w, g, be], 0, f),
        ([x], Some(b)) => through_autograd([p(x), w, primitive(b), g, be], 0, f),
        ([x, y], None) => through_autograd([p(x), p(y), w, g, be], 2, f),
        ([x, y], Some(b)) => through_autograd([p(x), p(y), w, primitive(b), g, be], 2, f),
        _ => panic!("routed: at most two parts"),
    };
    update_running_statistics(bn, statistics.expect("the forward pass ran"));
    Tensor::from_primitive::<Autodiff<LibTorch>>(out)
}

/// Training-mode batch norm without running statistics (burn's rule for updating them differs
/// from PyTorch's: biased variance): the output, the batch mean and `1 / sqrt(var + eps)`.
fn batch_norm_forward(
    x: &tch::Tensor,
    gamma: &tch::Tensor,
    beta: &tch::Tensor,
    eps: f64,
) -> (tch::Tensor, tch::Tensor, tch::Tensor) {
    x.native_batch_norm::<&tch::Tensor>(Some(gamma), Some(beta), None, None, true, 0.0, eps)
}

fn activate(y: tch::Tensor, activation: Activation) -> tch::Tensor {
    match activation {
        Activation::Identity => y,
        Activation::Relu => y.relu(),
    }
}

/// The running statistics updated from the batch mean and `1 / sqrt(var + eps)` of
/// [`batch_norm_forward`], as burn updates them.
fn update_running_statistics(bn: &BatchNorm, (mean, invstd): (tch::Tensor, tch::Tensor)) {
    // The biased batch variance back from `1 / sqrt(var + eps)`.
    let variance = invstd.square().reciprocal() - bn.epsilon;
    let stat = |t: tch::Tensor| {
        Tensor::<1>::from_primitive::<Autodiff<LibTorch>>(AdTensor::new(TchTensor::new(t)))
    };
    // The mean as a copy: libtorch's graph keeps the saved mean, and burn-tch would update a
    // tensor it holds alone in place (the variance is a new tensor already).
    super::batch_norm::update_running_statistics(bn, stat(mean.copy()), stat(variance));
}

fn as_i64(v: [usize; 2]) -> [i64; 2] {
    [v[0] as i64, v[1] as i64]
}

/// A convolution's padding as libtorch takes it: `None` for asymmetric or `Same` padding.
fn symmetric_padding(conv: &Conv2d) -> Option<[i64; 2]> {
    match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top as i64, left as i64])
        }
        PaddingConfig2d::Valid => Some([0, 0]),
        _ => None,
    }
}

/// `activation(bn(conv(cat(parts, 1))))` at inference on the libtorch device (no autodiff),
/// with the batch norm's running statistics folded into the convolution's weights and bias:
/// one libtorch convolution and an in-place ReLU, where burn's operations would add five
/// element-wise passes. Callers route the parts and the weight [`super::Route::LibTorch`] and
/// check that the padding is symmetric.
///
/// Input and weights go to libtorch in channels-last memory order (NHWC strides, NCHW shape),
/// oneDNN's native layout: its convolution then reads and writes them as they are, where NCHW
/// tensors are reordered to a blocked layout and back at every convolution. The output stays
/// channels-last, and so do the max pooling, bilinear up-sampling and concatenation after it
/// (libtorch keeps the layout of their inputs), so the image is reordered once, at the first
/// convolution. burn sees the same shapes; only the strides differ.
///
/// # Shapes
/// - `parts`: `[batch, channels_i, height, width]`, `Σ channels_i = channels_in`
/// - output: `[batch, channels_out, height_out, width_out]`
pub(super) fn conv_bn_inference(
    conv: &Conv2d,
    bn: &BatchNorm,
    parts: &[Tensor<4>],
    activation: Activation,
) -> Tensor<4> {
    let weight = conv.weight.val();
    let padding = symmetric_padding(conv).expect("routed: symmetric padding");
    // scale = γ / sqrt(σ² + ε), W' = W · scale, b' = β + (b − μ) · scale.
    let scale = torch(bn.gamma.val()) / (torch(bn.running_var.value()) + bn.epsilon).sqrt();
    let centred = match &conv.bias {
        Some(b) => torch(b.val()) - torch(bn.running_mean.value()),
        None => -torch(bn.running_mean.value()),
    };
    let shift = torch(bn.beta.val()) + centred * &scale;
    let weight = torch(weight);
    // W · scale written straight into channels-last order (one pass over the weights).
    let size = weight.size();
    let folded = tch::Tensor::empty(
        [size[0], size[2], size[3], size[1]],
        (weight.kind(), weight.device()),
    );
    let _ = weight
        .permute([0, 2, 3, 1])
        .mul_out(&folded, &scale.view([-1, 1, 1, 1]));
    let weight = folded.permute([0, 3, 1, 2]); // [out, in, kh, kw], NHWC strides
    let inputs: Vec<tch::Tensor> = parts.iter().map(|p| torch(p.clone())).collect();
    let x = match inputs.len() {
        1 => inputs[0].shallow_clone(),
        _ => tch::Tensor::cat(&inputs, 1),
    };
    let mut y = channels_last(x).conv2d(
        &weight,
        Some(&shift),
        as_i64(conv.stride),
        padding,
        as_i64(conv.dilation),
        conv.groups as i64,
    );
    if activation == Activation::Relu {
        // `y` is this function's own: in place is safe.
        let _ = y.relu_();
    }
    Tensor::from_primitive::<LibTorch>(TchTensor::new(y))
}
