//! `tanh` with its output kept for the backward, on the `flex` CPU backend.
//!
//! burn 0.22.1's autodiff `tanh` keeps the *input* and evaluates `tanh` again in the backward,
//! then `1 − t²` and the product in four more passes. The SR head applies it to every HR
//! feature map (64 and 32 channels at r× the input size), where the two libm `tanh` passes were
//! 5 % of a DS2F step in `perf`. Here the forward is one pass and the backward, `g·(1 − y²)`
//! from the kept output, another. Everywhere else (GPU devices, other dtypes) it is burn's.
use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::tensor::Tensor;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::conv::{Route, flex_route};
use super::{f32_data, f32_tensor};

/// Elements per parallel chunk (large enough to amortise rayon's scheduling).
const CHUNK: usize = 1 << 14;

/// `tanh` of every element, in parallel (collected straight into the output).
fn tanh_all(xs: &[f32]) -> Vec<f32> {
    xs.par_iter()
        .with_min_len(CHUNK)
        .map(|v| v.tanh())
        .collect()
}

/// `tanh(x)`; in training its backward uses the kept output instead of a second `tanh`.
///
/// # Shapes
/// - `x`: any
/// - output: the same
pub fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    match flex_route(&x) {
        Some(Route::Autodiff) => {
            let p = x
                .try_into_primitive::<Autodiff<Flex>>()
                .expect("checked: autodiff flex");
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
            let (ys, dy) = (f32_data(&ops.state), f32_data(&grad));
            let dx: Vec<f32> = ys
                .par_iter()
                .zip(dy)
                .with_min_len(CHUNK)
                .map(|(&y, &g)| g * (1.0 - y * y))
                .collect();
            grads.register::<Flex>(node.id, f32_tensor(dx, ops.state.shape()));
        }
    }

    let prep = TanhBackward
        .prepare::<NoCheckpointing>([x.node()])
        .compute_bound()
        .stateful();
    let xp = x.into_primitive().to_contiguous();
    let out = f32_tensor(tanh_all(f32_data(&xp)), xp.shape());
    match prep {
        OpsKind::Tracked(prep) => prep.finish(out.clone(), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}
