//! The trainer: one training as a short loop of named stages, in the manner of nnU-Net's
//! trainer (`on_train_start`, `train_step`, `on_validation_epoch_end`, …):
//!
//! ```text
//! Trainer::start      check the data; a new run (model, run folder) or a resumed one
//!   for each epoch:
//!     train_epoch     the epoch's optimiser steps (poly LR, data-parallel forward/backward)
//!     validate_epoch  the inference graph on the validation images at HR
//!     end_epoch       model selection, best/last checkpoints, metrics.csv, curves.png
//! Trainer::finish     what the training produced
//! ```
//!
//! [`Trainer::fit`] runs the loop; the stages are public so that a caller can run them one by
//! one (a test stepping through an epoch, a notebook-style driver).
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use ds2f_data::loader::{EpochLoader, LoaderConfig};

use super::parallel::{self, StepError};
use super::run::{EpochRecord, RunFolder};
use super::schedule::PolyLr;
use super::{LossTerm, Objective, TrainObserver, TrainOutcome, optimizer, selection_scores};
use crate::checkpoint::{Checkpoint, TrainState};
use crate::config::ExperimentConfig;
use crate::dataset::{ItemSource, Splits};
use crate::error::TrainError;
use crate::model::{DualStream, Segmenter};

/// What one epoch's optimiser steps produced.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochLosses {
    /// Mean total loss per step.
    pub mean_loss: f64,
    /// Mean weighted value of each term per step, indexed by [`LossTerm::index`]; NaN for a
    /// term the objective does not have.
    pub terms: [f64; LossTerm::COUNT],
    /// Learning rate of the epoch's last step.
    pub lr: f64,
}

/// The validation of one epoch.
pub struct Validation {
    /// The inference graph that was validated (saved as `best.ckpt` when it is selected).
    pub model: Segmenter,
    /// Selection score (IoU, foreground mean for multi-class), Dice, MCC, BM at HR.
    pub scores: [f64; 4],
}

/// One training between its stages (see the module docs).
pub struct Trainer<'a> {
    config: &'a ExperimentConfig,
    run: RunFolder,
    /// Where validation runs (the first training device, without autodiff).
    device: Device,
    /// The training devices with autodiff; the model lives on the first.
    ad_devices: Vec<Device>,
    /// The model; `None` only inside an optimiser step, which consumes it and gives back the
    /// updated one.
    model: Option<DualStream>,
    optim: ModuleOptimizer,
    state: TrainState,
    history: Vec<EpochRecord>,
    train_source: Arc<ItemSource>,
    val_source: ItemSource,
    steps_per_epoch: usize,
    schedule: PolyLr,
    objective: Objective,
    loader_config: LoaderConfig,
}

impl<'a> Trainer<'a> {
    /// Stage `start`: checks every image, mask and FOV of `splits` up front (all problems
    /// listed at once, before any work), then builds a new run in `run_dir` (model from the
    /// config's seed, encoder weights if configured, `config.toml`), or with `resume`
    /// continues from `run_dir/checkpoints/last.ckpt` (model, optimiser, state, history).
    ///
    /// # Panics
    /// If `devices` is empty.
    pub fn start(
        config: &'a ExperimentConfig,
        splits: &Splits,
        run_dir: &Path,
        devices: &[Device],
        resume: bool,
    ) -> Result<Self, TrainError> {
        let all: Vec<_> = [&splits.train, &splits.val, &splits.test]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let problems = ds2f_data::layout::check_items(
            &all,
            crate::dataset::mask_kind(config.model.num_classes),
        );
        if !problems.is_empty() {
            return Err(TrainError::DataCheck(problems));
        }
        let run = RunFolder::new(run_dir);
        let device = devices
            .first()
            .expect("at least one training device")
            .clone();
        let ad_devices: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
        let ad_device = ad_devices[0].clone();
        let mut optim = optimizer(config);
        ad_device.seed(config.train.seed);
        let (model, state, history) = if resume {
            // Temporary files of a write the crash interrupted (the real files are intact).
            for dir in [run_dir.to_path_buf(), run_dir.join("checkpoints")] {
                if dir.is_dir() {
                    ds2f_data::io::remove_stale_temps(&dir)?;
                }
            }
            let path = run.last_checkpoint();
            let ckpt = Checkpoint::load(&path)?;
            let model = ckpt.apply_model(config.model.init_train(&ad_device), &path)?;
            optim = ckpt.apply_optimizer(optim, &path)?;
            let state = ckpt.state;
            let mut history = run.read_metrics()?;
            history.retain(|r| r.epoch <= state.epoch);
            (model, state, history)
        } else {
            let mut model = config.model.init_train(&ad_device);
            // Before the run folder exists, so that a bad weights file leaves nothing to
            // clear up.
            if let Some(path) = &config.model.encoder_weights {
                let report = crate::model::load_encoder_weights(&mut model.encoder, path)?;
                eprintln!("{report}");
            }
            run.create(config)?;
            (model, TrainState::default(), Vec::new())
        };

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
        let loader_config = LoaderConfig {
            batch_size: batch,
            seed: config.train.seed,
            shuffle: true,
            drop_last: true,
            workers: config.data.workers,
            prefetch: config.data.prefetch,
        };
        Ok(Self {
            config,
            run,
            device,
            ad_devices,
            model: Some(model),
            optim,
            state,
            history,
            train_source,
            val_source,
            steps_per_epoch,
            schedule,
            objective: Objective::from_config(config),
            loader_config,
        })
    }

    /// The epochs still to train (none when a resumed run had finished).
    pub fn remaining_epochs(&self) -> std::ops::RangeInclusive<usize> {
        self.state.epoch + 1..=self.config.train.epochs
    }

    /// Optimiser steps per epoch (the batch drops the last incomplete one, as the reference).
    pub fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
    }

    /// The training-time model as it stands.
    pub fn model(&self) -> &DualStream {
        self.model.as_ref().expect("the model between steps")
    }

    /// The objective being minimised.
    pub fn objective(&self) -> &Objective {
        &self.objective
    }

    /// Stage `train_epoch`: the optimiser steps of `epoch` (data order from the seed and the
    /// epoch number, so a resumed run sees the batches it would have seen).
    pub fn train_epoch(
        &mut self,
        epoch: usize,
        observer: &mut dyn TrainObserver,
    ) -> Result<EpochLosses, TrainError> {
        observer.epoch_start(epoch, self.config.train.epochs, self.steps_per_epoch);
        let loader = EpochLoader::new(self.train_source.clone(), self.loader_config, epoch as u64)?;
        let mut loss_sum = 0.0;
        let mut term_sums = [0.0f64; LossTerm::COUNT];
        let mut term_seen = [false; LossTerm::COUNT];
        let mut lr = self.schedule.lr_at(self.state.iteration);
        for batch in loader {
            let batch = batch?;
            let step =
                parallel::forward_backward(self.model(), &batch, &self.ad_devices, &self.objective)
                    .map_err(|e| match e {
                        StepError::NonFinite { term, value } => TrainError::NonFinite {
                            epoch,
                            iteration: self.state.iteration,
                            term: term.name().into(),
                            value,
                            last_good: Some(self.run.last_checkpoint()).filter(|p| p.is_file()),
                        },
                        StepError::Worker { device, message } => {
                            TrainError::Worker { device, message }
                        }
                    })?;
            let mut value = 0.0;
            for (term, v) in step.terms {
                value += v;
                term_sums[term.index()] += v;
                term_seen[term.index()] = true;
            }
            lr = self.schedule.lr_at(self.state.iteration);
            let model = self.model.take().expect("the model between steps");
            self.model = Some(self.optim.step(lr, model, step.grads));
            self.state.iteration += 1;
            loss_sum += value;
            observer.step(self.state.iteration, value, lr);
        }
        let steps = self.steps_per_epoch as f64;
        Ok(EpochLosses {
            mean_loss: loss_sum / steps,
            terms: std::array::from_fn(|k| {
                if term_seen[k] {
                    term_sums[k] / steps
                } else {
                    f64::NAN
                }
            }),
            lr,
        })
    }

    /// Stage `validate_epoch`: the inference graph (no SR stream) on the validation images at
    /// HR, one image at a time, as the reference selects models.
    pub fn validate_epoch(&self) -> Result<Validation, TrainError> {
        let model = self.model().valid().into_segmenter();
        let cm = super::validate(
            &model,
            &self.val_source,
            self.config.model.num_classes,
            &self.device,
        )?;
        Ok(Validation {
            model,
            scores: selection_scores(&cm),
        })
    }

    /// Stage `end_epoch`: selects (a tie goes to the later epoch, so a run whose validation
    /// score sits at 0 does not keep its first, least-trained checkpoint), writes `best.ckpt`
    /// when selected and `last.ckpt` always, then `metrics.csv` and `curves.png`.
    pub fn end_epoch(
        &mut self,
        epoch: usize,
        losses: EpochLosses,
        validation: Validation,
        started: Instant,
    ) -> Result<EpochRecord, TrainError> {
        let [iou, dice, mcc, bm] = validation.scores;
        self.state.epoch = epoch;
        let improved = iou.is_finite() && self.state.best_score.is_none_or(|b| iou >= b);
        if improved {
            self.state.best_score = Some(iou);
            self.state.best_epoch = Some(epoch);
            Checkpoint::save(
                &self.run.best_checkpoint(),
                &self.state,
                &validation.model,
                None,
            )?;
        }
        Checkpoint::save(
            &self.run.last_checkpoint(),
            &self.state,
            self.model(),
            Some(&self.optim),
        )?;
        let record = EpochRecord {
            epoch,
            iteration: self.state.iteration,
            lr: losses.lr,
            train_loss: losses.mean_loss,
            val_iou: iou,
            val_dice: dice,
            val_mcc: mcc,
            val_bm: bm,
            seconds: started.elapsed().as_secs_f64(),
            best: improved,
            term_losses: losses.terms,
        };
        self.history.push(record.clone());
        self.run.write_metrics(&self.history)?;
        self.run.write_curves(&self.history)?;
        Ok(record)
    }

    /// Stage `finish`: the run folder, every epoch's record and the selected epoch.
    pub fn finish(self) -> TrainOutcome {
        TrainOutcome {
            run_dir: self.run.dir().to_path_buf(),
            best: self.state.best_score.zip(self.state.best_epoch),
            history: self.history,
        }
    }

    /// The whole loop: every remaining epoch's stages, then [`Trainer::finish`].
    pub fn fit(mut self, observer: &mut dyn TrainObserver) -> Result<TrainOutcome, TrainError> {
        for epoch in self.remaining_epochs() {
            let started = Instant::now();
            let losses = self.train_epoch(epoch, observer)?;
            let validation = self.validate_epoch()?;
            let record = self.end_epoch(epoch, losses, validation, started)?;
            observer.epoch_end(&record);
        }
        Ok(self.finish())
    }
}
