//! The trainer's named stages, run one by one, give what the whole loop gives; `metrics.csv`
//! has a column per loss term and older files (without `loss_aux`, or without any loss
//! columns) still read.
use std::time::Instant;

use burn::prelude::*;
use ds2f::config::ExperimentConfig;
use ds2f::train::{LossTerm, RunFolder, Silent, Trainer, train};

/// The backend's random generator is one per process: trainings that must start from the same
/// weights cannot overlap with another test's model initialisation.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn config(data: &std::path::Path, framework: &str, backbone: &str) -> ExperimentConfig {
    let text = format!(
        "[data]\nroot = {:?}\nval_count = 2\nlr_size = [32, 32]\nworkers = 1\n\
         [model]\nframework = \"{framework}\"\nbackbone = \"{backbone}\"\nbase = 4\n\
         espnet_scale = 0.5\nsr_head_widths = [8, 4]\n[model.shared_feature]\nhidden = 8\n\
         [train]\nepochs = 2\nbatch_size = 2\n",
        data.display().to_string()
    );
    ExperimentConfig::parse(&text, &[], "test").unwrap()
}

fn splits(config: &ExperimentConfig) -> ds2f::dataset::Splits {
    ds2f::dataset::split(
        &config.data,
        config.train.seed,
        ds2f::dataset::mask_kind(config.model.num_classes),
    )
    .unwrap()
}

#[test]
fn stages_one_by_one_equal_the_loop() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ds2f_data::synth::write_dataset(&data, 6, 64, 64, 3, "").unwrap();
    let config = config(&data, "ds2f", "unet");
    let splits = splits(&config);
    let device = [Device::flex()];

    // The loop.
    let looped = train(
        &config,
        &splits,
        &tmp.path().join("loop"),
        &device,
        false,
        &mut Silent,
    )
    .unwrap();

    // The stages by hand.
    let dir = tmp.path().join("stages");
    let mut trainer = Trainer::start(&config, &splits, &dir, &device, false).unwrap();
    assert_eq!(trainer.remaining_epochs(), 1..=2);
    assert_eq!(trainer.steps_per_epoch(), 2, "4 training images, batch 2");
    assert_eq!(
        trainer.objective().loss_terms(),
        [
            LossTerm::Seg,
            LossTerm::Sr,
            LossTerm::ProxySeg,
            LossTerm::ProxySr
        ]
    );
    let mut records = Vec::new();
    for epoch in trainer.remaining_epochs() {
        let started = Instant::now();
        let losses = trainer.train_epoch(epoch, &mut Silent).unwrap();
        // The total is the sum of the terms the objective has.
        let sum: f64 = losses.terms.iter().filter(|v| !v.is_nan()).sum();
        assert!((sum - losses.mean_loss).abs() < 1e-9 * sum.abs().max(1.0));
        assert!(losses.terms[LossTerm::Feature.index()].is_nan());
        let validation = trainer.validate_epoch().unwrap();
        records.push(
            trainer
                .end_epoch(epoch, losses, validation, started)
                .unwrap(),
        );
    }
    let outcome = trainer.finish();
    // (Debug text: the NaN of an absent term is not equal to itself.)
    assert_eq!(format!("{:?}", outcome.history), format!("{records:?}"));
    // Same seed, same data, same steps: the same numbers (timings aside).
    for (a, b) in records.iter().zip(&looped.history) {
        let strip = |r: &ds2f::train::EpochRecord| ds2f::train::EpochRecord {
            seconds: 0.0,
            ..r.clone()
        };
        assert_eq!(format!("{:?}", strip(a)), format!("{:?}", strip(b)));
    }
    assert_eq!(outcome.best, looped.best);

    // metrics.csv: a `loss_<name>` column per term, read back to the same records.
    let run = RunFolder::new(&dir);
    let text = std::fs::read_to_string(run.metrics_path()).unwrap();
    let header = text.lines().next().unwrap();
    assert!(
        header
            .ends_with("best,loss_seg,loss_sr,loss_proxy_seg,loss_proxy_sr,loss_feature,loss_aux")
    );
    let read = run.read_metrics().unwrap();
    assert_eq!(read.len(), 2);
    for (r, w) in read.iter().zip(&records) {
        for term in LossTerm::ALL {
            let (a, b) = (r.term_loss(term), w.term_loss(term));
            assert!(
                (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                "{term}: {a} vs {b}"
            );
        }
        assert_eq!(r.epoch, w.epoch);
        assert_eq!(r.best, w.best);
    }

    // A file of an older version (the five terms before `aux`; or none at all) still reads,
    // with the missing terms NaN; a file that is not metrics.csv is refused with the line.
    let old = "epoch,iteration,lr,train_loss,val_iou,val_dice,val_mcc,val_bm,seconds,best,\
               loss_seg,loss_sr,loss_proxy_seg,loss_proxy_sr,loss_feature\n\
               1,2,1.0e-2,0.9,0.5,0.6,0.4,0.3,12.00,1,0.5,0.2,0.1,0.1,nan\n";
    std::fs::write(run.metrics_path(), old).unwrap();
    let read = run.read_metrics().unwrap();
    assert_eq!(read[0].term_loss(LossTerm::ProxySr), 0.1);
    assert!(read[0].term_loss(LossTerm::Feature).is_nan());
    assert!(read[0].term_loss(LossTerm::Aux).is_nan());
    let oldest = "epoch,iteration,lr,train_loss,val_iou,val_dice,val_mcc,val_bm,seconds,best\n\
                  3,6,1.0e-3,0.7,0.5,0.6,0.4,0.3,12.00,0\n";
    std::fs::write(run.metrics_path(), oldest).unwrap();
    let read = run.read_metrics().unwrap();
    assert_eq!((read[0].epoch, read[0].train_loss), (3, 0.7));
    assert!(LossTerm::ALL.iter().all(|&t| read[0].term_loss(t).is_nan()));
    std::fs::write(run.metrics_path(), "epoch,loss\n1,0.5\n").unwrap();
    let err = run.read_metrics().unwrap_err().to_string();
    assert!(
        err.contains("metrics.csv") && err.contains("line 1"),
        "{err}"
    );
}

/// ESPNetv2 trains its auxiliary output: the `aux` term is logged and, with
/// `train.loss.aux_weight = 0`, absent.
#[test]
fn espnet_training_logs_the_auxiliary_term() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ds2f_data::synth::write_dataset(&data, 6, 128, 128, 3, "").unwrap();
    let mut config = config(&data, "unet_inter", "espnetv2");
    config.train.epochs = 1;
    config.data.lr_size = [64, 64];
    let splits = splits(&config);
    let device = [Device::flex()];
    let run = tmp.path().join("aux");
    let outcome = train(&config, &splits, &run, &device, false, &mut Silent).unwrap();
    let record = &outcome.history[0];
    let aux = record.term_loss(LossTerm::Aux);
    assert!(aux.is_finite() && aux > 0.0, "{record:?}");
    let seg = record.term_loss(LossTerm::Seg);
    assert!((record.train_loss - (seg + aux)).abs() < 1e-9 * record.train_loss);

    config.train.loss.aux_weight = 0.0;
    let outcome = train(
        &config,
        &splits,
        &tmp.path().join("no_aux"),
        &device,
        false,
        &mut Silent,
    )
    .unwrap();
    assert!(outcome.history[0].term_loss(LossTerm::Aux).is_nan());
}
