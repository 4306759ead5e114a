//! `tanh` with its output kept for the backward, on the `flex` CPU backend.
//!
//! burn 0.22.1's autodiff `tanh` keeps the *input* and evaluates `tanh` again in the backward,
//! then `1 − t²` and the product in four more passes. The SR head applies it to every HR
//! feature map (64 and 32 channels at r× the input size), where the two libm `tanh` passes were
//! 5 % of a DS2F step in `perf`. Here the forward is one pass and the backward, `g·(1 − y²)`
//! from the kept output, another (`ds2f_kernels::tanh`). Everywhere else (GPU devices, other
//! dtypes, inference) it is burn's.
use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::tensor::Tensor;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::FlexTensor;
use ds2f_kernels::tanh as kernels;

use super::{Route, f32_data, f32_tensor};

/// `tanh(x)`; in training its backward uses the kept output instead of a second `tanh`.
///
/// # Shapes
/// - `x`: any
/// - output: the same
pub fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    match Route::of(&x) {
        Route::FlexAutodiff => {
            let p = x
                .try_into_primitive::<Autodiff<Flex>>()
                .expect("routed: autodiff flex");
            Tensor::from_primitive::<Autodiff<Flex>>(tanh_autodiff(p))
        }
        _ => burn::tensor::activation::tanh(x),
    }
}

type AdTensor = <Autodiff<Flex> as burn::backend::BackendTypes>::FloatTensorPrimitive;

fn tanh_autodiff(x: AdTensor) -> AdTensor {
    #[derive(Debug)]
    struct TanhBackward;

    impl Backward<Flex, 1> for TanhBackward {
        /// The output.
        type State = FlexTensor;
        fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node).to_contiguous();
            let Some(node) = node else { return };
            let dx = kernels::backward(f32_data(&ops.state), f32_data(&grad));
            grads.register::<Flex>(node.id, f32_tensor(dx, ops.state.shape()));
        }
    }

    let prep = TanhBackward
        .prepare::<NoCheckpointing>([x.node()])
        .compute_bound()
        .stateful();
    let xp = x.into_primitive().to_contiguous();
    let out = f32_tensor(kernels::forward(f32_data(&xp)), xp.shape());
    match prep {
        OpsKind::Tracked(prep) => prep.finish(out.clone(), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}
