//! A training interrupted after an epoch and resumed from its last checkpoint ends with exactly
//! the weights and metrics of the uninterrupted run (same seed, CPU).
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use ds2f::checkpoint::Checkpoint;
use ds2f::config::ExperimentConfig;
use ds2f::train::{EpochRecord, RunFolder, Silent, TrainObserver, train};

/// Two trainings running at once in one process do not reproduce (burn keeps global state:
/// the seeded RNG at least), so the tests of this file take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Weights(Vec<f32>);
impl ModuleVisitor for Weights {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.extend(param.val().into_data().iter::<f32>());
    }
}

fn weights(run: &Path, config: &ExperimentConfig) -> Vec<f32> {
    let path = RunFolder::new(run).last_checkpoint();
    let model = Checkpoint::load(&path)
        .unwrap()
        .apply_model(config.model.init_train(&Device::flex()), &path)
        .unwrap();
    let mut w = Weights(Vec::new());
    model.visit(&mut w);
    w.0
}

/// Stops the process's training (by panicking) when an epoch ends, like a kill after the
/// checkpoint of that epoch was written.
struct CrashAfter(usize);
impl TrainObserver for CrashAfter {
    fn epoch_end(&mut self, record: &EpochRecord) {
        if record.epoch == self.0 {
            panic!("simulated crash after epoch {}", self.0);
        }
    }
}

/// A tiny experiment on the synthetic images in `data` (base 4, LR 24×20, 2 validation images).
fn tiny_config(data: &Path, workers: usize, epochs: usize, seed: u64) -> ExperimentConfig {
    let text = format!(
        "[data]\nroot = {:?}\nval_count = 2\nlr_size = [24, 20]\nworkers = {workers}\n\
         [model]\nbase = 4\nsr_head_widths = [8, 4]\n[model.shared_feature]\nhidden = 8\n\
         [train]\nepochs = {epochs}\nseed = {seed}\n",
        data.display().to_string()
    );
    ExperimentConfig::parse(&text, &[], "test").unwrap()
}

#[test]
fn resumed_run_reproduces_the_uninterrupted_run() {
    resume_reproduces("unet_inter");
}

/// DS2F's last checkpoint holds the SR stream, the MSCG and their optimiser state too.
#[test]
fn resumed_ds2f_run_reproduces_the_uninterrupted_run() {
    resume_reproduces("ds2f");
}

fn resume_reproduces(framework: &str) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ds2f_data::synth::write_dataset(&data, 7, 48, 40, 3, "").unwrap();
    let mut config = tiny_config(&data, 2, 3, 11);
    config.model.framework = serde_json::from_value(serde_json::json!(framework)).unwrap();
    let splits = ds2f::dataset::split(
        &config.data,
        config.train.seed,
        ds2f::dataset::mask_kind(config.model.num_classes),
    )
    .unwrap();
    let device = Device::flex();

    let straight = tmp.path().join("straight");
    let a = train(
        &config,
        &splits,
        &straight,
        std::slice::from_ref(&device),
        false,
        &mut Silent,
    )
    .unwrap();

    let interrupted = tmp.path().join("interrupted");
    let crash = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train(
            &config,
            &splits,
            &interrupted,
            std::slice::from_ref(&device),
            false,
            &mut CrashAfter(2),
        )
    }));
    assert!(crash.is_err(), "the simulated crash happened");
    let b = train(
        &config,
        &splits,
        &interrupted,
        std::slice::from_ref(&device),
        true,
        &mut Silent,
    )
    .unwrap();

    assert_eq!(b.history.len(), 3);
    let strip = |h: &[EpochRecord]| -> Vec<(usize, usize, String, String)> {
        h.iter()
            .map(|r| {
                (
                    r.epoch,
                    r.iteration,
                    format!("{:.6}", r.train_loss),
                    format!("{:.6}", r.val_iou),
                )
            })
            .collect()
    };
    assert_eq!(strip(&a.history), strip(&b.history));
    assert_eq!(weights(&straight, &config), weights(&interrupted, &config));
    // The best checkpoint is the inference graph alone: it loads into the inference model and
    // holds as many parameters.
    let best = RunFolder::new(&interrupted).best_checkpoint();
    let segmenter = Checkpoint::load(&best)
        .unwrap()
        .apply_model(config.model.init(&device), &best)
        .unwrap();
    let mut w = Weights(Vec::new());
    segmenter.visit(&mut w);
    let mut all = Weights(Vec::new());
    config.model.init(&device).visit(&mut all);
    assert_eq!(w.0.len(), all.0.len());
    if config.model.framework.has_sr_stream() {
        let full = Checkpoint::load(&best)
            .unwrap()
            .apply_model(config.model.init_train(&device), &best);
        assert!(full.is_err(), "the best checkpoint has no SR stream");
    }
}

#[test]
fn data_worker_count_does_not_change_the_run() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ds2f_data::synth::write_dataset(&data, 6, 48, 40, 5, "").unwrap();
    let device = Device::flex();
    let mut finals = Vec::new();
    for workers in [1, 3] {
        let config = tiny_config(&data, workers, 2, 3);
        let splits = ds2f::dataset::split(
            &config.data,
            config.train.seed,
            ds2f::dataset::mask_kind(config.model.num_classes),
        )
        .unwrap();
        let run = tmp.path().join(format!("w{workers}"));
        train(
            &config,
            &splits,
            &run,
            std::slice::from_ref(&device),
            false,
            &mut Silent,
        )
        .unwrap();
        finals.push(weights(&run, &config));
    }
    assert_eq!(finals[0], finals[1]);
}
