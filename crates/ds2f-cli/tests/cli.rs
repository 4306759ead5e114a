//! The `ds2f` binary end to end on tiny synthetic data: train, resume, evaluate, predict at
//! the original size, info; and the errors a user sees for bad input.
use std::path::Path;
use std::process::{Command, Output};

fn ds2f(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ds2f"))
        .args(args)
        .output()
        .expect("ds2f runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A tiny experiment: 8 + 2 synthetic 64x64 images, base 4, LR 32x32 -> HR 64x64.
fn setup(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    ds2f_data::synth::write_dataset(&data, 8, 64, 64, 1, "train_").unwrap();
    ds2f_data::synth::write_dataset(&data, 2, 64, 64, 2, "test_").unwrap();
    let config = dir.join("tiny.toml");
    std::fs::write(
        &config,
        format!(
            "description = \"test\"\n[data]\nroot = {:?}\ntest_include = [\"test_*\"]\n\
             val_count = 2\nlr_size = [32, 32]\n[model]\nbase = 4\n[train]\nepochs = 2\n\
             [run]\ndir = {:?}\nname = \"tiny\"\n",
            data.display().to_string(),
            dir.join("runs").display().to_string()
        ),
    )
    .unwrap();
    config
}

#[test]
fn train_evaluate_predict_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path());
    let out = ds2f(&["train", "--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = tmp.path().join("runs/tiny");
    for file in [
        "config.toml",
        "metrics.csv",
        "curves.png",
        "checkpoints/last.ckpt",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "header + 2 epochs:\n{csv}");

    // A second `train` into the same run folder is refused; --resume of a finished run is a
    // no-op that keeps the history.
    let again = ds2f(&["train", "--config", config.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--resume"), "{}", stderr(&again));
    let resumed = ds2f(&["train", "--resume", run.to_str().unwrap()]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.csv")).unwrap(),
        csv
    );

    let best_or_last = if run.join("checkpoints/best.ckpt").exists() {
        "best"
    } else {
        "last"
    };
    let eval = ds2f(&[
        "evaluate",
        "--run",
        run.to_str().unwrap(),
        "--checkpoint",
        best_or_last,
    ]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("evaluation/test/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["whole_image"]["num_images"], 2);
    assert!(summary["inside_fov"].is_object());

    // Prediction on a 100x70 image (not the training size) comes back at 100x70.
    let odd = tmp.path().join("odd.png");
    let (image, _, _) = ds2f_data::synth::generate(5, 100, 70);
    image.save(&odd).unwrap();
    let pred_dir = tmp.path().join("pred");
    let pred = ds2f(&[
        "predict",
        "--run",
        run.to_str().unwrap(),
        "--checkpoint",
        best_or_last,
        "--input",
        odd.to_str().unwrap(),
        "--output",
        pred_dir.to_str().unwrap(),
        "--overlay",
        "--probabilities",
    ]);
    assert!(pred.status.success(), "{}", stderr(&pred));
    let mask = image::open(pred_dir.join("odd.png")).unwrap().to_luma8();
    assert_eq!(mask.dimensions(), (100, 70));
    assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    let prob = image::open(pred_dir.join("odd_prob.png")).unwrap();
    assert_eq!(prob.color(), image::ColorType::L16);
    assert!(pred_dir.join("odd_overlay.png").is_file());
}

#[test]
fn info_prints_reference_parameters_and_gmacs() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.toml");
    std::fs::write(&config, "[model]\nbase = 64\n").unwrap();
    let out = ds2f(&[
        "info",
        "--config",
        config.to_str().unwrap(),
        "--input",
        "512x512",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("parameters (inference graph): 28949698"),
        "{text}"
    );
    assert!(text.contains("193.452"), "{text}");
    assert!(text.contains("198.712"), "{text}");
    // DS2F: the SR stream and the MSCG exist in training only (SPEC §1.1 table); the inference
    // graph and its GMACs (issue #3: 198.71 at 512², 346.12 at 648×704) are the U-Net's.
    for (input, gmacs) in [("512x512", "198.712"), ("648x704", "346.118")] {
        let out = ds2f(&[
            "info",
            "--config",
            config.to_str().unwrap(),
            "--input",
            input,
            "--set",
            "model.framework=ds2f",
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("parameters (inference graph): 28949698"),
            "{text}"
        );
        assert!(
            text.contains(
                "parameters (training graph): 39194682 = encoder 18847168, decoder 10102400, \
                 seg_head 130, sr_branch.decoder 10102400, sr_branch.head 124288, \
                 shared_feature 18296"
            ),
            "{text}"
        );
        assert!(text.contains(gmacs), "{text}");
    }
}

#[test]
fn bad_config_keys_and_values_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path());
    let c = config.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        // Data-parallel devices: at most one per sample of a batch (2 here), known names.
        (&["--device", "cpu,cpu,cpu"], "config key `train.devices`"),
        (
            &["--set", "train.devices=[\"cpu\", \"tpu\"]"],
            "unknown device `tpu`",
        ),
        (
            &["--set", "train.epoch=3"],
            "unknown key `train.epoch` (did you mean `train.epochs`?)",
        ),
        (&["--set", "model.upscale=0"], "config key `model.upscale`"),
        (
            &["--set", "train.batch_size=0"],
            "config key `train.batch_size`",
        ),
        (&["--set", "train.lr=-1"], "config key `train.lr`"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["train", "--config", c];
        args.extend_from_slice(extra);
        let out = ds2f(&args);
        assert!(!out.status.success());
        assert!(stderr(&out).contains(expected), "{}", stderr(&out));
    }
}

#[test]
fn missing_mask_and_bad_mask_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path());
    let data = tmp.path().join("data");
    std::fs::remove_file(data.join("masks/train_003.png")).unwrap();
    let out = ds2f(&["train", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("train_003"), "{}", stderr(&out));

    // Restore a mask with values that are not classes: the file is named in the error.
    let bad =
        image::GrayImage::from_fn(64, 64, |x, y| image::Luma([((x * 7 + y * 13) % 256) as u8]));
    bad.save(data.join("masks/train_003.png")).unwrap();
    let out = ds2f(&["train", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("masks/train_003.png") && err.contains("mask values"),
        "{err}"
    );
}

#[test]
fn ds2f_trains_and_its_last_or_best_checkpoint_predicts_with_the_seg_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let config = setup(tmp.path());
    let c = config.to_str().unwrap();
    let out = ds2f(&[
        "train",
        "--config",
        c,
        "--set",
        "model.framework=ds2f",
        "--set",
        "model.sr_head_widths=[8, 4]",
        "--set",
        "model.shared_feature.hidden=8",
        "--set",
        "train.epochs=1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The epoch line shows every loss term.
    let err = stderr(&out);
    for term in ["seg ", "sr ", "proxy_seg ", "proxy_sr "] {
        assert!(err.contains(term), "{term} missing: {err}");
    }
    let run = tmp.path().join("runs/tiny");
    let csv = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with("loss_proxy_sr,loss_feature,loss_aux")
    );
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert!(
        row[10..14]
            .iter()
            .all(|v| v.parse::<f64>().unwrap().is_finite()),
        "{csv}"
    );
    assert_eq!(row[14], "NaN", "no feature loss in DS2F: {csv}");
    assert_eq!(row[15], "NaN", "no auxiliary loss on the U-Net: {csv}");
    // With one epoch, best (inference graph only) and last (whole framework) hold the same
    // segmentation weights: the evaluations agree.
    let mut summaries = Vec::new();
    for which in ["last", "best"] {
        let name = format!("eval-{which}");
        let eval = ds2f(&[
            "evaluate",
            "--run",
            run.to_str().unwrap(),
            "--checkpoint",
            which,
            "--name",
            &name,
        ]);
        assert!(eval.status.success(), "{}", stderr(&eval));
        let path = run.join("evaluation").join(&name).join("summary.json");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        summaries.push(json["whole_image"]["confusion_matrix"].clone());
    }
    assert_eq!(summaries[0], summaries[1]);
}

#[test]
fn info_counts_deeplab_parameters_without_the_unet_quirk() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("dl.toml");
    std::fs::write(
        &config,
        "[model]\nframework = \"ds2f\"\nbackbone = \"deeplabv3plus_resnet101\"\nnum_classes = 5\n",
    )
    .unwrap();
    let out = ds2f(&[
        "info",
        "--config",
        config.to_str().unwrap(),
        "--input",
        "64x64",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    // SPEC §1.3 (C = 5): backbone 42,500,160 + ASPP 15,535,616 + decoder 1,303,600 + head
    // 1,285 at inference; + SR decoder 1,303,600 + SR head 431,488 + MSCG(256, 256) 166,520 in
    // training (crates/ds2f/tests/deeplab.rs checks each part against PyTorch).
    assert!(
        text.contains("parameters (inference graph): 59340661"),
        "{text}"
    );
    assert!(
        text.contains("parameters (training graph): 61242269"),
        "{text}"
    );
    assert!(!text.contains("shared ReLU"), "U-Net-only line: {text}");
}

#[test]
fn every_shipped_config_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            ds2f::config::ExperimentConfig::load(&path, &[])
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 15, "{n} configs");
}
