//! Training: SGD with Nesterov momentum and the poly schedule, the framework's objective
//! (cross-entropy on the HR logits, plus the SR stream's and proxy losses), validation on images
//! carved out of the training set, best (inference graph only) and last (everything, with the
//! optimiser) checkpoints, resume.
pub mod objective;
pub mod parallel;
pub mod run;
pub mod schedule;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::prelude::*;
use std::sync::Arc;

use ds2f_data::loader::{Batch, EpochLoader, LoaderConfig};
use ds2f_metrics::{ConfusionMatrix, Scores};

use crate::checkpoint::{Checkpoint, TrainState};
use crate::config::ExperimentConfig;
use crate::dataset::{ItemSource, Splits, batch_tensors};
use crate::error::TrainError;
use crate::model::{DualStream, Segmenter};
pub use objective::{Objective, Term};
use parallel::StepError;
pub use run::{EpochRecord, RunFolder, TERM_NAMES};
use schedule::PolyLr;

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
/// on the first. With `resume`, continues from `run_dir/checkpoints/last.ckpt`.
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
    // Check every image, mask and FOV up front, so bad data fails before any work, with all
    // problems listed at once.
    let all: Vec<_> = [&splits.train, &splits.val, &splits.test]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let problems =
        ds2f_data::layout::check_items(&all, crate::dataset::mask_kind(config.model.num_classes));
    if !problems.is_empty() {
        return Err(TrainError::DataCheck(problems));
    }
    let run = RunFolder::new(run_dir);
    let device = devices.first().expect("at least one training device");
    let ad_devices: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
    let ad_device = ad_devices[0].clone();
    let mut history: Vec<EpochRecord>;
    let mut state: TrainState;
    let mut model: DualStream;
    let mut optim = optimizer(config);
    if resume {
        // Temporary files of a write the crash interrupted (the real files are intact).
        for dir in [run_dir.to_path_buf(), run_dir.join("checkpoints")] {
            if dir.is_dir() {
                ds2f_data::io::remove_stale_temps(&dir)?;
            }
        }
        let path = run.last_checkpoint();
        let ckpt = Checkpoint::load(&path)?;
        ad_device.seed(config.train.seed);
        model = ckpt.apply_model(config.model.init_train(&ad_device), &path)?;
        optim = ckpt.apply_optimizer(optim, &path)?;
        state = ckpt.state;
        history = run.read_metrics()?;
        history.retain(|r| r.epoch <= state.epoch);
    } else {
        ad_device.seed(config.train.seed);
        model = config.model.init_train(&ad_device);
        // Before the run folder exists, so that a bad weights file leaves nothing to clear up.
        if let Some(path) = &config.model.encoder_weights {
            let report = crate::model::load_encoder_weights(&mut model.encoder, path)?;
            eprintln!("{report}");
        }
        run.create(config)?;
        state = TrainState::default();
        history = Vec::new();
    }

    let train_source = Arc::new(ItemSource::new(
        splits.train.clone(),
        config,
        config.data.augment,
    ));
    let val_source = ItemSource::new(splits.val.clone(), config, false);
    let batch = config.train.batch_size;
    let steps_per_epoch = train_source.len() / batch; // drop_last, as the reference
    if steps_per_epoch == 0 {
        return Err(TrainError::TooFewImages {
            images: train_source.len(),
            batch,
        });
    }
    let schedule = if config.train.schedule_on_all_images {
        // The reference's k-fold schedule: T from every image of the dataset (SPEC §3).
        let all = splits.train.len()
            + splits.test.len()
            + if config.data.select_on_test {
                0
            } else {
                splits.val.len()
            };
        PolyLr {
            init: config.train.lr,
            total: all.div_ceil(batch) * config.train.epochs,
            power: config.train.poly_power,
        }
    } else {
        PolyLr::ending_at_zero(
            config.train.lr,
            steps_per_epoch * config.train.epochs,
            config.train.poly_power,
        )
    };
    let objective = Objective::new(
        config.model.framework,
        &config.train.loss,
        config.model.num_classes,
        config.train.class_weights.clone(),
    );
    let loader_config = LoaderConfig {
        batch_size: batch,
        seed: config.train.seed,
        shuffle: true,
        drop_last: true,
        workers: config.data.workers,
        prefetch: config.data.prefetch,
    };

    for epoch in state.epoch + 1..=config.train.epochs {
        let started = Instant::now();
        observer.epoch_start(epoch, config.train.epochs, steps_per_epoch);
        let loader = EpochLoader::new(train_source.clone(), loader_config, epoch as u64)?;
        let mut loss_sum = 0.0;
        let mut term_sums = [0.0f64; TERM_NAMES.len()];
        let mut term_seen = [false; TERM_NAMES.len()];
        let mut lr = schedule.lr_at(state.iteration);
        for batch in loader {
            let batch = batch?;
            let step = parallel::forward_backward(&model, &batch, &ad_devices, &objective)
                .map_err(|e| match e {
                    StepError::NonFinite { term, value } => TrainError::NonFinite {
                        epoch,
                        iteration: state.iteration,
                        term: term.into(),
                        value,
                        last_good: Some(run.last_checkpoint()).filter(|p| p.is_file()),
                    },
                    StepError::Worker { device, message } => TrainError::Worker { device, message },
                })?;
            let mut value = 0.0;
            for (name, v) in step.terms {
                value += v;
                if let Some(k) = TERM_NAMES.iter().position(|&n| n == name) {
                    term_sums[k] += v;
                    term_seen[k] = true;
                }
            }
            lr = schedule.lr_at(state.iteration);
            model = optim.step(lr, model, step.grads);
            state.iteration += 1;
            loss_sum += value;
            observer.step(state.iteration, value, lr);
        }
        let valid_model = model.valid().into_segmenter();
        let cm = validate(&valid_model, &val_source, config.model.num_classes, device)?;
        let [iou, dice, mcc, bm] = selection_scores(&cm);
        state.epoch = epoch;
        // `>=`: a tie goes to the later epoch, so a run whose validation score sits at 0 (a
        // collapsed start) does not keep its first, least-trained checkpoint.
        let improved = iou.is_finite() && state.best_score.is_none_or(|b| iou >= b);
        if improved {
            state.best_score = Some(iou);
            state.best_epoch = Some(epoch);
            Checkpoint::save(&run.best_checkpoint(), &state, &valid_model, None)?;
        }
        Checkpoint::save(&run.last_checkpoint(), &state, &model, Some(&optim))?;
        let record = EpochRecord {
            epoch,
            iteration: state.iteration,
            lr,
            train_loss: loss_sum / steps_per_epoch as f64,
            val_iou: iou,
            val_dice: dice,
            val_mcc: mcc,
            val_bm: bm,
            seconds: started.elapsed().as_secs_f64(),
            best: improved,
            term_losses: std::array::from_fn(|k| {
                if term_seen[k] {
                    term_sums[k] / steps_per_epoch as f64
                } else {
                    f64::NAN
                }
            }),
        };
        history.push(record.clone());
        run.write_metrics(&history)?;
        run.write_curves(&history)?;
        observer.epoch_end(&record);
    }
    Ok(TrainOutcome {
        run_dir: run_dir.to_path_buf(),
        best: state.best_score.zip(state.best_epoch),
        history,
    })
}
