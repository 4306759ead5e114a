//! Five classes end to end (issue #17): a synthetic IDRiD-layout folder (per-lesion masks
//! merged into 0 = background, 1 = MA, 2 = HE, 3 = EX, 4 = SE) through `check-data`, `train`
//! (DS2F), `evaluate` (mIoU, mDice, mAUC, per-class rows) and `predict` (one probability map
//! per class, an overlay in the paper's Fig. 6 colours with a legend).
use std::path::Path;
use std::process::{Command, Output};

fn ds2f(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ds2f"))
        .args(args)
        .output()
        .expect("ds2f runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const NAMES: [&str; 5] = ["background", "MA", "HE", "EX", "SE"];

fn write_config(dir: &Path, data: &Path, num_classes: usize) -> std::path::PathBuf {
    let config = dir.join(format!("lesions{num_classes}.toml"));
    std::fs::write(
        &config,
        format!(
            "description = \"test\"\n[data]\nroot = {:?}\nlayout = \"idrid\"\n\
             test_include = [\"test_*\"]\nval_count = 2\nlr_size = [32, 32]\n\
             [model]\nframework = \"ds2f\"\nbase = 4\nnum_classes = {num_classes}\n\
             sr_head_widths = [8, 4]\n[model.shared_feature]\nhidden = 8\n\
             [train]\nepochs = 2\n[run]\ndir = {:?}\nname = \"lesions\"\n",
            data.display().to_string(),
            dir.join("runs").display().to_string()
        ),
    )
    .unwrap();
    config
}

#[test]
fn five_classes_check_train_evaluate_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("lesions");
    ds2f_data::synth::write_lesion_dataset(&data, 8, 64, 64, 1, "train_").unwrap();
    ds2f_data::synth::write_lesion_dataset(&data, 2, 64, 64, 2, "test_").unwrap();

    // check-data takes the layout's 5 classes and prints each class's pixel share.
    let check = ds2f(&["check-data", data.to_str().unwrap()]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    let out = text(&check.stdout);
    assert!(out.contains("idrid layout, 5 classes"), "{out}");
    for name in NAMES {
        assert!(out.lines().any(|l| l.starts_with(name)), "{name}: {out}");
    }

    // A config whose class count is not the layout's is refused, naming the key.
    let wrong = write_config(tmp.path(), &data, 3);
    let refused = ds2f(&["train", "--config", wrong.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("model.num_classes"),
        "{}",
        text(&refused.stderr)
    );

    let config = write_config(tmp.path(), &data, 5);
    let train = ds2f(&["train", "--config", config.to_str().unwrap()]);
    assert!(train.status.success(), "{}", text(&train.stderr));
    let run = tmp.path().join("runs/lesions");

    let eval = ds2f(&["evaluate", "--run", run.to_str().unwrap(), "--checkpoint", "last"]);
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    let printed = text(&eval.stdout);
    for word in ["mIoU", "mDice", "mAUC", "MA", "SE", "pixel share"] {
        assert!(printed.contains(word), "{word}: {printed}");
    }
    // IoU and Dice are defined (every lesion is in the test images), mean and std included.
    for line in printed.lines().filter(|l| l.starts_with("mIoU") || l.starts_with("mDice")) {
        assert!(!line.contains("NaN"), "{line}");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("evaluation/test/summary.json")).unwrap())
            .unwrap();
    let s = &summary["whole_image"];
    assert_eq!(s["num_classes"], 5);
    assert_eq!(s["class_mean"], "foreground");
    assert_eq!(s["class_names"], serde_json::json!(NAMES));
    // Every pixel of both 64x64 test images is in the pooled 5x5 confusion matrix.
    let cm = s["confusion_matrix"].as_array().unwrap();
    assert_eq!(cm.len(), 5);
    let total: u64 = cm
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, 2 * 64 * 64);
    // mIoU is the mean over the four lesions of the pooled per-class IoU (background out).
    let iou: Vec<f64> = s["pooled"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["iou"].as_f64().unwrap_or(f64::NAN))
        .collect();
    let lesions: Vec<f64> = iou[1..].iter().copied().filter(|v| v.is_finite()).collect();
    let mean = lesions.iter().sum::<f64>() / lesions.len() as f64;
    let reported = s["reported"]["iou"].as_f64().unwrap();
    assert!((reported - mean).abs() < 1e-12, "{reported} vs {mean}");
    let classes: Vec<u64> = s["pr_auc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["class"].as_u64().unwrap())
        .collect();
    assert_eq!(classes, [1, 2, 3, 4], "mAUC over the lesions");

    let pred_dir = tmp.path().join("pred");
    let pred = ds2f(&[
        "predict",
        "--run",
        run.to_str().unwrap(),
        "--checkpoint",
        "last",
        "--input",
        data.to_str().unwrap(),
        "--include",
        "test_*",
        "--output",
        pred_dir.to_str().unwrap(),
        "--probabilities",
        "--overlay",
    ]);
    assert!(pred.status.success(), "{}", text(&pred.stderr));
    let name = "test_000";
    let labels = image::open(pred_dir.join(format!("{name}.png")))
        .unwrap()
        .to_luma8();
    assert_eq!(labels.dimensions(), (64, 64));
    assert!(labels.pixels().all(|p| p.0[0] < 5), "class ids, not 0/255");
    // One 16-bit map per class; at every pixel they sum to 1 (65535, up to rounding), and the
    // label is the class of the largest.
    let planes: Vec<Vec<u16>> = NAMES
        .iter()
        .map(|c| {
            let p = image::open(pred_dir.join(format!("{name}_prob_{c}.png"))).unwrap();
            assert_eq!(p.color(), image::ColorType::L16, "{c}");
            p.to_luma16().into_raw()
        })
        .collect();
    for (i, label) in labels.pixels().enumerate() {
        let sum: i64 = planes.iter().map(|p| i64::from(p[i])).sum();
        assert!((sum - 65535).abs() <= 3, "pixel {i}: {sum}");
        let best = (0..5).max_by_key(|&c| planes[c][i]).unwrap();
        assert_eq!(planes[best][i], planes[usize::from(label.0[0])][i], "pixel {i}");
    }
    // The overlay carries a legend band below the 64x64 image.
    let overlay = image::open(pred_dir.join(format!("{name}_overlay.png")))
        .unwrap()
        .to_rgb8();
    assert_eq!(overlay.width(), 64);
    assert!(overlay.height() > 64, "legend band");
}
