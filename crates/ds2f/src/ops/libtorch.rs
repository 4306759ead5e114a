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

use burn::backend::libtorch::TchTensor;
use burn::backend::{
    Autodiff, BackendTypes, DispatchDevice, GradientCheckpointingStrategy, LibTorch,
};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor};
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};

use super::conv_bn::Activation;

type AdTensor = <Autodiff<LibTorch> as BackendTypes>::FloatTensorPrimitive;

/// Whether `x` is an f32 tensor on the libtorch device with autodiff (and no gradient
/// checkpointing): the case this module handles.
pub(super) fn autodiff_route<const D: usize>(x: &Tensor<D>) -> bool {
    if x.dtype() != DType::F32 {
        return false;
    }
    match x.device().as_dispatch() {
        DispatchDevice::Autodiff(inner) => {
            matches!(**inner, DispatchDevice::LibTorch(_))
                && inner.gradient_checkpointing_strategy()
                    == GradientCheckpointingStrategy::Disabled
        }
        _ => false,
    }
}

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

/// [`burn::tensor::module::conv2d`] on `Autodiff<LibTorch>` (callers check
/// [`autodiff_route`] for every operand and that the padding is symmetric).
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

/// `activation(bn.forward(x))` in training mode on `Autodiff<LibTorch>` (callers check
/// [`autodiff_route`] for `x` and the affine parameters, and that `bn` is training); the running
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
/// three); the running statistics are updated. `None` when an operand is not there, when the
/// padding is asymmetric or `Same`, or for more than two parts.
///
/// # Shapes
/// - `parts`: `[batch, channels_i, height, width]`, `Σ channels_i = channels_in`
/// - output: `[batch, channels_out, height_out, width_out]`
pub(super) fn conv_bn_train(
    conv: &Conv2d,
    bn: &BatchNorm,
    parts: &[Tensor<4>],
    activation: Activation,
) -> Option<Tensor<4>> {
    let weight = conv.weight.val();
    let bias = conv.bias.as_ref().map(|b| b.val());
    let gamma = bn.gamma.val();
    if !parts.iter().all(autodiff_route)
        || !autodiff_route(&weight)
        || !autodiff_route(&gamma)
        || !bias.as_ref().is_none_or(autodiff_route)
        || !bn.training.is_enabled()
    {
        return None;
    }
    let padding = symmetric_padding(conv)?;
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
        _ => return None,
    };
    update_running_statistics(bn, statistics.expect("the forward pass ran"));
    Some(Tensor::from_primitive::<Autodiff<LibTorch>>(out))
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
/// element-wise passes. `None` for every other case (autodiff, another device or dtype,
/// asymmetric or `Same` padding).
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
) -> Option<Tensor<4>> {
    let weight = conv.weight.val();
    let plain = |t: &Tensor<4>| {
        t.dtype() == DType::F32 && matches!(t.device().as_dispatch(), DispatchDevice::LibTorch(_))
    };
    if !parts.iter().all(plain) || !plain(&weight) {
        return None;
    }
    let padding = symmetric_padding(conv)?;
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
    Some(Tensor::from_primitive::<LibTorch>(TchTensor::new(y)))
}

/// `x` (`[n, c, h, w]`) in channels-last memory order: itself when it already is, else a copy.
fn channels_last(x: tch::Tensor) -> tch::Tensor {
    if is_channels_last(&x) {
        x
    } else {
        // tch 0.22 has no memory-format argument: NHWC order by a permuted copy, viewed back.
        x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    }
}

/// Whether the strides of `x` (`[n, c, h, w]`) are those of a dense NHWC tensor.
fn is_channels_last(x: &tch::Tensor) -> bool {
    let (size, stride) = (x.size(), x.stride());
    size.len() == 4 && {
        let [_, c, _, w] = [size[0], size[1], size[2], size[3]];
        stride == [size[2] * w * c, 1, w * c, c]
    }
}

/// A convolution's output at inference on the libtorch device, back in NCHW order when it has
/// fewer than 16 channels (the class logits): libtorch's bilinear up-sampling after it
/// vectorises over the channels of a channels-last tensor and over the width of an NCHW one,
/// 3–5× slower on 2 channels (HRF size, 17 vs 4–7 ms). Every other tensor as it is.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`, returned with the same shape
pub(super) fn few_channels_dense(x: Tensor<4>) -> Tensor<4> {
    if x.dims()[1] >= 16 || !matches!(x.device().as_dispatch(), DispatchDevice::LibTorch(_)) {
        return x;
    }
    let t = torch(x);
    let t = if is_channels_last(&t) {
        t.contiguous()
    } else {
        t
    };
    Tensor::from_primitive::<LibTorch>(TchTensor::new(t))
}

/// A tch tensor in a backward state (`tch::Tensor` is not `Clone`; a shallow clone shares the
/// storage and the autograd graph).
#[derive(Debug)]
struct Shared(tch::Tensor);

impl Clone for Shared {
    fn clone(&self) -> Self {
        Self(self.0.shallow_clone())
    }
}

/// What the backward pass needs: libtorch's graph from the leaves to the output.
#[derive(Clone, Debug)]
struct Graph {
    /// The output, attached to the graph.
    output: Shared,
    /// One leaf per burn operand, requiring gradients where burn tracks the operand; the first
    /// `split.len()` operands share one leaf, their concatenation along the channels.
    leaves: Vec<Shared>,
    /// The channel counts of the concatenated operands (empty: none concatenated).
    split: Vec<i64>,
    /// Operands and the output as burn holds them: while burn-tch sees their storage shared it
    /// does not overwrite them in place, which libtorch's saved tensors (a ReLU saves its
    /// output) rely on.
    _pinned: Vec<TchTensor>,
}

/// One burn autodiff operation computed by `f` on libtorch leaves, differentiated by libtorch.
#[derive(Debug)]
struct TorchAutograd;

impl<const N: usize> Backward<LibTorch, N> for TorchAutograd {
    type State = Graph;

    fn backward(self, ops: Ops<Graph, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<LibTorch>(&ops.node);
        let Graph {
            output,
            leaves,
            split,
            ..
        } = ops.state;
        let k = split.len();
        // Operand `i` is leaf `i` without a concatenation, else leaf 0 (i < k) or `i − k + 1`.
        let leaf_of = |i: usize| if k == 0 { i } else { (i + 1).saturating_sub(k) };
        let wanted: Vec<usize> = (0..leaves.len())
            .filter(|&j| {
                leaves[j].0.requires_grad()
                    && (0..N).any(|i| leaf_of(i) == j && ops.parents[i].is_some())
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        // libtorch's `run_backward` seeds each root with ones: the root `⟨output, dL/doutput⟩`
        // (one dot product, no tensor written) has the incoming gradient as its gradient with
        // respect to the output.
        let seed = output.0.flatten(0, -1).dot(&grad.tensor.flatten(0, -1));
        let inputs: Vec<&tch::Tensor> = wanted.iter().map(|&j| &leaves[j].0).collect();
        let computed = tch::Tensor::run_backward(&[seed], &inputs, false, false);
        for (j, g) in wanted.into_iter().zip(computed) {
            if k > 0 && j == 0 {
                // The concatenation's gradient, split back into the operands' (views of it,
                // which burn-tch then treats as shared and never overwrites in place).
                let whole = TchTensor::new(g);
                let pieces = whole.tensor.split_with_sizes(&split, 1);
                for (i, piece) in pieces.into_iter().enumerate() {
                    if let Some(parent) = &ops.parents[i] {
                        let piece = TchTensor::partial(piece, whole.storage.clone());
                        grads.register::<LibTorch>(parent.id, piece);
                    }
                }
            } else {
                let i = if k == 0 { j } else { j + k - 1 };
                if let Some(parent) = &ops.parents[i] {
                    grads.register::<LibTorch>(parent.id, TchTensor::new(g));
                }
            }
        }
    }
}

/// Runs `f` on leaves made from `operands` (requiring gradients where burn tracks the operand)
/// and wraps its output as one operation of burn's graph. With `concat ≥ 2`, the first `concat`
/// operands become one leaf, their concatenation along dimension 1.
fn through_autograd<const N: usize>(
    operands: [AdTensor; N],
    concat: usize,
    f: impl FnOnce(&[tch::Tensor]) -> tch::Tensor,
) -> AdTensor {
    let tracked = operands.each_ref().map(|t| t.is_tracked());
    let guards = operands.each_ref().map(|t| t.node());
    let prep = TorchAutograd
        .prepare::<NoCheckpointing>(guards)
        .compute_bound()
        .stateful();
    let primitives: Vec<TchTensor> = operands.into_iter().map(|t| t.into_primitive()).collect();
    // The tensors `f` runs on, each with whether a gradient is wanted; and what burn must keep.
    let (inputs, split, mut pinned): (Vec<(tch::Tensor, bool)>, Vec<i64>, Vec<TchTensor>) =
        if concat >= 2 {
            let parts: Vec<&tch::Tensor> = primitives[..concat].iter().map(|p| &p.tensor).collect();
            let split = parts.iter().map(|p| p.size()[1]).collect();
            let mut inputs = vec![(
                tch::Tensor::cat(&parts, 1),
                tracked[..concat].iter().any(|&t| t),
            )];
            inputs.extend(
                primitives[concat..]
                    .iter()
                    .zip(&tracked[concat..])
                    .map(|(p, &t)| (p.tensor.shallow_clone(), t)),
            );
            (inputs, split, primitives.into_iter().skip(concat).collect())
        } else {
            let inputs = primitives
                .iter()
                .zip(tracked)
                .map(|(p, t)| (p.tensor.shallow_clone(), t))
                .collect();
            (inputs, Vec::new(), primitives)
        };
    match prep {
        OpsKind::Tracked(prep) => {
            let leaves: Vec<tch::Tensor> = inputs
                .into_iter()
                .map(|(t, tracked)| t.detach().set_requires_grad(tracked))
                .collect();
            let output = f(&leaves);
            let out = TchTensor::new(output.detach());
            // The operands (saved by the graph as they are, sharing burn's storage) and the
            // output: while burn-tch sees their storage shared it does not overwrite them in
            // place, which the saved tensors rely on.
            pinned.push(out.clone());
            let state = Graph {
                output: Shared(output),
                leaves: leaves.into_iter().map(Shared).collect(),
                split,
                _pinned: pinned,
            };
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => {
            // No operand requires a gradient, so libtorch records no graph.
            let inputs: Vec<tch::Tensor> = inputs.into_iter().map(|(t, _)| t).collect();
            prep.finish(TchTensor::new(f(&inputs)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[n, c, h, w]` holding 0, 1, 2, … in NCHW order.
    fn counting(dims: [i64; 4]) -> tch::Tensor {
        tch::Tensor::arange(
            dims.iter().product::<i64>(),
            (tch::Kind::Float, tch::Device::Cpu),
        )
        .view(dims)
    }

    #[test]
    fn channels_last_keeps_values_and_shape_and_reorders_memory() {
        let x = counting([2, 3, 4, 5]);
        assert!(!is_channels_last(&x));
        let y = channels_last(x.shallow_clone());
        assert_eq!(y.size(), [2, 3, 4, 5]);
        assert_eq!(y.stride(), [60, 1, 15, 3]);
        assert!(is_channels_last(&y));
        assert_eq!(
            f64::try_from((&y - &x).abs().max()).expect("a scalar"),
            0.0,
            "same values at every index"
        );
        // Already channels-last: the same tensor, no copy.
        let z = channels_last(y.shallow_clone());
        assert_eq!(z.data_ptr(), y.data_ptr());
    }

    #[test]
    fn class_logits_leave_channels_last_and_features_keep_it() {
        let wrap = |t: tch::Tensor| Tensor::<4>::from_primitive::<LibTorch>(TchTensor::new(t));
        let strides = |t: Tensor<4>| {
            t.try_into_primitive::<LibTorch>()
                .expect("libtorch")
                .tensor
                .stride()
        };
        // 2 channels (logits): back to NCHW, same values.
        let logits = channels_last(counting([1, 2, 3, 4]));
        let dense = few_channels_dense(wrap(logits.shallow_clone()));
        assert_eq!(
            dense.clone().into_data(),
            wrap(counting([1, 2, 3, 4])).into_data()
        );
        assert_eq!(strides(dense), [24, 12, 4, 1]);
        // 16 channels (features): left channels-last.
        let features = wrap(channels_last(counting([1, 16, 3, 4])));
        assert_eq!(strides(few_channels_dense(features)), [192, 1, 64, 16]);
    }
}
