//! One burn autodiff operation computed by a small libtorch autograd graph and differentiated
//! by libtorch's `run_backward` (the kernels PyTorch itself uses).
use burn::backend::LibTorch;
use burn::backend::libtorch::TchTensor;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};

use super::AdTensor;

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
pub(super) fn through_autograd<const N: usize>(
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
