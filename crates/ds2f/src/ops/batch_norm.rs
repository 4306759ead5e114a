//! Batch normalisation in training mode as one burn autodiff operation on the `flex` CPU
//! backend, with the kernels of `ds2f_kernels::batch_norm` (one pass for the statistics, one
//! for the output, two for the backward; burn 0.22.1 composes it from about ten element-wise
//! passes forward and fifteen backward). Same numbers as burn's (two-pass mean and biased
//! variance; running statistics updated the same way); on libtorch libtorch's own kernels;
//! every other case is [`BatchNorm::forward`]. A ReLU after the batch norm can be fused in
//! ([`batch_norm_act`]): no separate pass or tensor for the pre-activation, and its mask
//! recomputed from the saved input in the backward.
use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::nn::BatchNorm;
use burn::tensor::Tensor;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::FlexTensor;
use ds2f_kernels::batch_norm::{self as kernels, Normalise};

use super::conv_bn::Activation;
use super::{Route, f32_data, f32_tensor as tensor};

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
    let route = Route::of(&x).and(&gamma);
    match route {
        Route::FlexAutodiff if bn.training.is_enabled() => {}
        #[cfg(feature = "tch")]
        Route::LibTorchAutodiff if bn.training.is_enabled() => {
            return super::libtorch::batch_norm_train(bn, x, activation);
        }
        _ => {
            let y = bn.forward(x);
            return match activation {
                Activation::Identity => y,
                Activation::Relu => burn::tensor::activation::relu(y),
            };
        }
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
        .expect("routed: an autodiff flex tensor");
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
            let normalise = Normalise {
                mean: &mean,
                inv_std: &inv_std,
                // Stored contiguous by the forward.
                gamma: f32_data(&gamma),
                beta: f32_data(&beta),
                relu,
            };
            let (dx, dgamma, dbeta) = kernels::backward(
                f32_data(&x),
                f32_data(&grad),
                n,
                c,
                h * w,
                &normalise,
                node_x.is_some(),
            );
            if let (Some(node), Some(dx)) = (node_x, dx) {
                grads.register::<Flex>(node.id, tensor(dx, [n, c, h, w]));
            }
            if let Some(node) = node_gamma {
                grads.register::<Flex>(node.id, tensor(dgamma, [c]));
            }
            if let Some(node) = node_beta {
                grads.register::<Flex>(node.id, tensor(dbeta, [c]));
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
    let xs = f32_data(&xp);
    let (mean, variance) = kernels::statistics(xs, n, c, h * w);
    let inv_std = kernels::inv_std(&variance, epsilon);
    let normalise = Normalise {
        mean: &mean,
        inv_std: &inv_std,
        gamma: f32_data(&gp),
        beta: f32_data(&bp),
        relu,
    };
    let out = tensor(kernels::forward(xs, c, h * w, &normalise), [n, c, h, w]);
    let out = match prep {
        OpsKind::Tracked(prep) => prep.finish((xp, gp, bp, mean.clone(), inv_std, relu), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    (out, mean, variance)
}
