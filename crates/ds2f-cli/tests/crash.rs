//! Crash safety of `ds2f train` as a process: killed with SIGKILL mid-epoch it resumes with
//! `--resume` to exactly the uninterrupted run's checkpoint and metrics; a write that fails
//! (a full disk, simulated with the file-size limit `ulimit -f`, which fails the same write
//! path with EFBIG instead of ENOSPC) stops it with the file named and nothing half-written.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use ds2f::checkpoint::Checkpoint;
use ds2f::config::ExperimentConfig;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ds2f")
}

/// 14 synthetic 96×96 images (2 for validation), base 4, LR 48×48, `epochs` epochs of 6 steps.
fn setup(dir: &Path, epochs: usize) -> PathBuf {
    let data = dir.join("data");
    ds2f_data::synth::write_dataset(&data, 14, 96, 96, 21, "").unwrap();
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\nroot = {:?}\nval_count = 2\nlr_size = [48, 48]\nworkers = 2\n\
             [model]\nframework = \"ds2f\"\nbase = 4\nsr_head_widths = [8, 4]\n\
             [model.shared_feature]\nhidden = 8\n[train]\nepochs = {epochs}\nseed = 5\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    config
}

fn train(config: &Path, run: &Path, resume: bool) -> std::process::Child {
    let mut cmd = Command::new(bin());
    if resume {
        cmd.args(["train", "--resume", run.to_str().unwrap()]);
    } else {
        cmd.args(["train", "--config", config.to_str().unwrap()])
            .args(["--set", &format!("run.dir={:?}", run.parent().unwrap())])
            .args(["--set", &format!("run.name={:?}", run.file_name().unwrap())]);
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: std::process::Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `metrics.csv` without the wall-time column.
fn metrics(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(8); // seconds
            f.join(",")
        })
        .collect()
}

fn epochs_done(run: &Path) -> usize {
    std::fs::read_to_string(run.join("metrics.csv"))
        .map(|t| t.lines().count().saturating_sub(1))
        .unwrap_or(0)
}

#[test]
fn sigkill_mid_epoch_then_resume_equals_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path(), 4);
    let straight = tmp.path().join("runs").join("straight");
    finish(train(&config, &straight, false));

    let killed = tmp.path().join("runs").join("killed");
    let mut child = train(&config, &killed, false);
    // Kill while epoch 2 trains: after epoch 1's checkpoint, before epoch 2's.
    let started = Instant::now();
    while epochs_done(&killed) < 1 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "epoch 1 never ended"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(30));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(
        epochs_done(&killed),
        1,
        "the kill must land inside epoch 2 (make the epochs longer if this fails)"
    );
    // No stray temporary files, and the checkpoint of epoch 1 is whole.
    let leftovers: Vec<_> = std::fs::read_dir(killed.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    // A temp file can remain only if the kill hit a write; it is never read.
    assert!(leftovers.len() <= 1, "{leftovers:?}");
    // One more, as a kill inside a checkpoint write leaves it (the killed pid is dead now);
    // `--resume` removes such leftovers.
    let planted = killed
        .join("checkpoints")
        .join(format!(".last.ckpt.tmp-{}-7", child.id()));
    std::fs::write(&planted, b"half a checkpoint").unwrap();

    finish(train(&config, &killed, true));
    let leftovers: Vec<_> = std::fs::read_dir(killed.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "not cleaned on resume: {leftovers:?}");
    assert_eq!(metrics(&straight), metrics(&killed));
    // The same final weights (the files themselves differ: parameter ids are per process).
    let config = ExperimentConfig::load(&config, &[]).unwrap();
    assert_eq!(
        weights(&straight, "last.ckpt", &config),
        weights(&killed, "last.ckpt", &config)
    );
    assert_eq!(
        weights(&straight, "best.ckpt", &config),
        weights(&killed, "best.ckpt", &config)
    );
}

/// Every float of a checkpoint's model (the training graph for `last`, the inference graph
/// for `best`).
fn weights(run: &Path, name: &str, config: &ExperimentConfig) -> Vec<f32> {
    let path = run.join("checkpoints").join(name);
    let ckpt = Checkpoint::load(&path).unwrap();
    let device = Device::flex();
    let tensors = if name == "last.ckpt" {
        let model = ckpt
            .apply_model(config.model.init_train(&device), &path)
            .unwrap();
        collect(&model)
    } else {
        let model = ckpt.apply_model(config.model.init(&device), &path).unwrap();
        collect(&model)
    };
    assert!(tensors.len() > 1000);
    tensors
}

fn collect<M: Module>(module: &M) -> Vec<f32> {
    struct Floats(Vec<f32>);
    impl ModuleVisitor for Floats {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(param.val().into_data().iter::<f32>());
        }
    }
    let mut floats = Floats(Vec::new());
    module.visit(&mut floats);
    floats.0
}

#[test]
fn a_failing_write_stops_the_run_naming_the_file_and_leaves_nothing_half_written() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path(), 2);
    let run = tmp.path().join("runs").join("full");
    // 64 KiB per file: config.toml fits, a checkpoint does not.
    let script = format!(
        "ulimit -f 128; trap '' XFSZ; exec {:?} train --config {:?} --set 'run.dir={:?}' \
         --set run.name=full",
        bin(),
        config,
        run.parent().unwrap()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("checkpoints/") && err.contains(".ckpt"),
        "{err}"
    );
    assert!(err.to_lowercase().contains("file too large"), "{err}");
    // Nothing half-written: no checkpoint, no temporary file.
    let names: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.is_empty(), "{names:?}");
    // The run can start again once there is room.
    let out = Command::new(bin())
        .args(["train", "--config", config.to_str().unwrap()])
        .args(["--set", &format!("run.dir={:?}", run.parent().unwrap())])
        .args(["--set", "run.name=full"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(epochs_done(&run), 2);
}

#[test]
fn a_diverging_loss_stops_the_run_naming_the_step_and_term() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path(), 3);
    let run = tmp.path().join("runs").join("diverged");
    // A learning rate of 1e30 makes the weights, then a loss term, non-finite within a few steps.
    let out = Command::new(bin())
        .args(["train", "--config", config.to_str().unwrap()])
        .args(["--set", &format!("run.dir={:?}", run.parent().unwrap())])
        .args(["--set", "run.name=diverged", "--set", "train.lr=1e30"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or("");
    assert!(line.contains("epoch ") && line.contains(", step "), "{err}");
    let term = ["seg", "sr", "proxy_seg", "proxy_sr"]
        .iter()
        .find(|t| line.contains(&format!("the {t} loss is")));
    assert!(term.is_some(), "{err}");
    assert!(line.contains("NaN") || line.contains("inf"), "{err}");
    // It names the checkpoint to resume from, or says there is none yet.
    if epochs_done(&run) > 0 {
        assert!(line.contains("checkpoints/last.ckpt"), "{err}");
        assert!(run.join("checkpoints/last.ckpt").is_file());
    } else {
        assert!(line.contains("No checkpoint was written yet"), "{err}");
        assert!(!run.join("checkpoints/last.ckpt").exists());
    }
}
