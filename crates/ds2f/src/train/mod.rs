//! Training: SGD with Nesterov momentum and the poly schedule, the framework's objective
//! (cross-entropy on the HR logits, plus the SR stream's and proxy losses), validation on images
//! carved out of the training set, best (inference graph only) and last (everything, with the
//! optimiser) checkpoints, resume. [`Trainer`] runs it as named stages; [`train`] is the whole
//! loop in one call.
pub mod objective;
pub mod parallel;
pub mod run;
pub mod schedule;
pub mod term;
pub mod trainer;

use std::path::{Path, PathBuf};

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;

use ds2f_data::loader::Batch;
use ds2f_metrics::{ConfusionMatrix, Scores};

use crate::config::ExperimentConfig;
use crate::dataset::{ItemSource, Splits, batch_tensors};
use crate::error::TrainError;
use crate::model::Segmenter;
pub use objective::{Objective, Term};
pub use run::{EpochRecord, RunFolder};
pub use term::LossTerm;
pub use trainer::{EpochLosses, Trainer, Validation};

/// Receives progress from the trainer (the CLI draws a progress bar from it).
pub trait TrainObserver {
    /// An epoch of `steps` optimiser steps starts.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _steps: usize) {}
    /// A step finished with this loss and learning rate.
    fn step(&mut self, _iteration: usize, _loss: f64, _lr: f64) {}
    /// An epoch finished (after validation and checkpointing).
    fn epoch_end(&mut self, _record: &EpochRecord) {}
}

/// An observer that ignores everything.
pub struct Silent;
impl TrainObserver for Silent {}

/// What a finished training produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The run folder.
    pub run_dir: PathBuf,
    /// All epochs, resumed ones included.
    pub history: Vec<EpochRecord>,
    /// Best validation score and its epoch.
    pub best: Option<(f64, usize)>,
}

/// The optimiser of the reference: SGD, momentum 0.9 without dampening, Nesterov, L2 weight
/// decay on every parameter (PyTorch's `SGD(..., nesterov=True, weight_decay=1e-4)`).
pub fn optimizer(config: &ExperimentConfig) -> ModuleOptimizer {
    let t = &config.train;
    let momentum = (t.momentum > 0.0).then_some(MomentumConfig {
        momentum: t.momentum,
        dampening: 0.0,
        nesterov: t.nesterov,
    });
    let decay = (t.weight_decay > 0.0).then(|| WeightDecayConfig::new(t.weight_decay as f32));
    SgdConfig::new()
        .with_momentum(momentum)
        .with_weight_decay(decay)
        .init()
}

/// The paper's selection score from a confusion matrix: class-1 IoU for binary tasks, the
/// mean IoU over the foreground classes otherwise. Also returns the matching Dice, MCC, BM.
pub fn selection_scores(cm: &ConfusionMatrix) -> [f64; 4] {
    let classes = cm.num_classes();
    let mut sums = [0.0f64; 4];
    let mut counts = [0usize; 4];
    for c in 1..classes {
        let s = Scores::from_counts(&cm.counts(c));
        for (k, v) in [s.iou, s.dice, s.mcc, s.bm].into_iter().enumerate() {
            if v.is_finite() {
                sums[k] += v;
                counts[k] += 1;
            }
        }
    }
    std::array::from_fn(|k| {
        if counts[k] == 0 {
            f64::NAN
        } else {
            sums[k] / counts[k] as f64
        }
    })
}

/// Paths of the trainable parameters of `module` whose gradient in `grads` is missing, zero
/// or not finite: a part silently detached from the loss shows up here.
pub fn parameters_without_gradient<M: Module>(module: &M, grads: &GradientsParams) -> Vec<String> {
    fn alive(g: Option<Tensor<1>>) -> bool {
        g.is_some_and(|g| {
            let abs_sum: f32 = g.abs().sum().into_scalar();
            abs_sum > 0.0 && abs_sum.is_finite()
        })
    }
    crate::model::complexity::trainable_parameters(module)
        .into_iter()
        .filter(|p| {
            let flat = |n: usize| [n];
            let numel = p.shape.iter().product::<usize>();
            let g = match p.shape.len() {
                1 => grads.get::<1>(p.id),
                2 => grads.get::<2>(p.id).map(|g| g.reshape(flat(numel))),
                3 => grads.get::<3>(p.id).map(|g| g.reshape(flat(numel))),
                4 => grads.get::<4>(p.id).map(|g| g.reshape(flat(numel))),
                _ => None,
            };
            !alive(g)
        })
        .map(|p| p.path)
        .collect()
}

/// Predicted class indices of `[n, C, h, w]` logits, row-major `[n, h, w]`.
pub fn argmax_labels(logits: Tensor<4>) -> Vec<u8> {
    logits
        .argmax(1)
        .into_data()
        .iter::<i64>()
        .map(|v| v as u8)
        .collect()
}

/// Validates `model` on `source` at HR (as the reference selects models): one image at a time.
pub fn validate(
    model: &Segmenter,
    source: &ItemSource,
    num_classes: usize,
    device: &Device,
) -> Result<ConfusionMatrix, TrainError> {
    let mut cm = ConfusionMatrix::new(num_classes);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    for i in 0..source.len() {
        let sample = source.sample(i, &mut rng)?;
        let batch = Batch::collate(vec![sample])?;
        let (x, _) = batch_tensors(&batch, device);
        let pred = argmax_labels(model.forward(x));
        cm.add(&batch.mask, &pred)
            .expect("prediction and mask have the HR size");
    }
    Ok(cm)
}

use rand_chacha::rand_core::SeedableRng;

/// Trains `config` into `run_dir` on `devices` (devices without autodiff; autodiff is added
/// here): one device, or several for data-parallel steps (see [`parallel`]), the model living
/// on the first. With `resume`, continues from `run_dir/checkpoints/last.ckpt`. The stages are
/// [`Trainer`]'s.
///
/// # Panics
/// If `devices` is empty.
pub fn train(
    config: &ExperimentConfig,
    splits: &Splits,
    run_dir: &Path,
    devices: &[Device],
    resume: bool,
    observer: &mut dyn TrainObserver,
) -> Result<TrainOutcome, TrainError> {
    Trainer::start(config, splits, run_dir, devices, resume)?.fit(observer)
}
