//! `ds2f evaluate --predictions`: a run's saved predictions score exactly the run's own
//! evaluation (issue #18's acceptance), any tool's masks and probability maps are read, and a
//! bad folder lists every unpaired or mis-sized file.
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

fn json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Parses `dir/report.html`: every local `src` / `href` exists, each image has its row in
/// the per-image table and its card (thumbnail, full-size overlay, crop).
fn check_report(dir: &Path, images: &[&str]) {
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    let refs = ds2f::report::html::local_references(&html);
    assert!(refs.len() >= 4 + 3 * images.len(), "{refs:?}");
    for r in &refs {
        assert!(
            dir.join(r).is_file(),
            "report.html references {r}, which is missing"
        );
    }
    for name in images {
        assert!(
            html.contains(&format!("<a href=\"#img-{name}\">{name}</a>")),
            "{name} row"
        );
        assert!(html.contains(&format!("id=\"img-{name}\"")), "{name} card");
        for file in ["thumb.jpg", "overlay.jpg", "crop.png"] {
            assert!(
                refs.contains(&format!("images/{name}_{file}")),
                "{name} {file}"
            );
        }
    }
    assert!(html.contains("<th>ROC-AUC</th>") && html.contains("<script>"));
}

/// A tiny experiment: 8 + 2 synthetic 64x64 images, base 4, LR 32x32 -> HR 64x64, 2 epochs.
fn train_tiny(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("data");
    ds2f_data::synth::write_dataset(&data, 8, 64, 64, 1, "train_").unwrap();
    ds2f_data::synth::write_dataset(&data, 2, 64, 64, 2, "test_").unwrap();
    let config = dir.join("tiny.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\nroot = {:?}\ntest_include = [\"test_*\"]\nval_count = 2\n\
             lr_size = [32, 32]\n[model]\nbase = 4\nframework = \"ds2f\"\n[train]\nepochs = 2\n\
             [run]\ndir = {:?}\nname = \"tiny\"\n",
            s(&data),
            s(&dir.join("runs"))
        ),
    )
    .unwrap();
    let out = ds2f(&["train", "--config", s(&config)]);
    assert!(out.status.success(), "{}", stderr(&out));
    (dir.join("runs/tiny"), data)
}

#[test]
fn saved_predictions_score_exactly_the_runs_evaluation() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, data) = train_tiny(tmp.path());
    let eval = ds2f(&[
        "evaluate",
        "--run",
        s(&run),
        "--checkpoint",
        "last",
        "--save-predictions",
        "--save-sr",
    ]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    let stdout = String::from_utf8_lossy(&eval.stdout);
    for row in ["Sensitivity", "Specificity", "Accuracy", "ROC-AUC"] {
        assert!(stdout.contains(row), "{row} missing:\n{stdout}");
    }
    let dir = run.join("evaluation/test");
    let want = json(&dir.join("summary.json"));
    assert_eq!(want["whole_image"]["num_images"], 2);
    let roc = want["whole_image"]["reported_roc_auc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&roc), "{roc}");
    // DS2F's other output: the SR image at the HR output size (64x64 from LR 32x32).
    let sr = image::open(dir.join("sr/test_000_sr.png"))
        .unwrap()
        .to_rgb8();
    assert_eq!(sr.dimensions(), (64, 64));
    let predictions = dir.join("predictions");
    for file in ["test_000.png", "test_000_prob.png", "test_001_overlay.png"] {
        assert!(predictions.join(file).is_file(), "{file} missing");
    }
    // per_image.csv: a header, then each image in each region (whole, FOV).
    let csv = std::fs::read_to_string(dir.join("per_image.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[0].starts_with("image,region,iou,dice,mcc,bm,precision,sensitivity"));
    assert!(lines[1].starts_with("test_000,whole,") && lines[4].starts_with("test_001,fov,"));

    // report.html: every image and link it references is there, the gallery has each image,
    // the tables their rows.
    check_report(&dir, &["test_000", "test_001"]);
    assert!(dir.join("progress.png").is_file() && dir.join("evaluation.png").is_file());

    // The saved predictions against the data folder, and against the run's test split.
    let out = tmp.path().join("scored");
    let by_data = ds2f(&[
        "evaluate",
        "--predictions",
        s(&predictions),
        "--data",
        s(&data),
        "--include",
        "test_*",
        "--output",
        s(&out),
    ]);
    assert!(by_data.status.success(), "{}", stderr(&by_data));
    assert_eq!(json(&out.join("summary.json")), want);
    assert_eq!(
        std::fs::read_to_string(out.join("per_image.csv")).unwrap(),
        csv
    );
    check_report(&out, &["test_000", "test_001"]);
    let by_run = ds2f(&[
        "evaluate",
        "--predictions",
        s(&predictions),
        "--run",
        s(&run),
    ]);
    assert!(by_run.status.success(), "{}", stderr(&by_run));
    assert_eq!(json(&predictions.join("evaluation/summary.json")), want);

    // `ds2f predict --probabilities` writes the same files: the same metrics.
    let predicted = tmp.path().join("predicted");
    let pred = ds2f(&[
        "predict",
        "--run",
        s(&run),
        "--checkpoint",
        "last",
        "--input",
        s(&data),
        "--include",
        "test_*",
        "--output",
        s(&predicted),
        "--probabilities",
        "--overlay",
    ]);
    assert!(pred.status.success(), "{}", stderr(&pred));
    let from_predict = ds2f(&["evaluate", "--predictions", s(&predicted), "--run", s(&run)]);
    assert!(from_predict.status.success(), "{}", stderr(&from_predict));
    assert_eq!(json(&predicted.join("evaluation/summary.json")), want);
}

/// Synthetic data whose own masks, written the ways other tools write them, are the
/// predictions.
#[test]
fn any_tools_masks_and_a_bad_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ds2f_data::synth::write_dataset(&data, 3, 64, 48, 7, "img_").unwrap();
    let pred = tmp.path().join("pred");
    std::fs::create_dir_all(&pred).unwrap();
    let mask = |name: &str| {
        image::open(data.join("masks").join(name))
            .unwrap()
            .to_luma8()
    };
    // img_000: a 0/255 mask (as the data); img_001: a 0/1 mask; img_002: a 0/255 mask saved
    // as RGB.
    mask("img_000.png").save(pred.join("img_000.png")).unwrap();
    let m1 = mask("img_001.png");
    let zero_one =
        image::GrayImage::from_fn(64, 48, |x, y| image::Luma([m1.get_pixel(x, y).0[0] / 255]));
    zero_one.save(pred.join("img_001.png")).unwrap();
    image::DynamicImage::ImageLuma8(mask("img_002.png"))
        .to_rgb8()
        .save(pred.join("img_002.png"))
        .unwrap();
    let score = |out: &Path| {
        let o = ds2f(&[
            "evaluate",
            "--predictions",
            s(&pred),
            "--data",
            s(&data),
            "--output",
            s(out),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        json(&out.join("summary.json"))
    };
    let perfect = |summary: &serde_json::Value| {
        for region in ["whole_image", "inside_fov"] {
            let r = &summary[region]["reported"];
            for metric in ["iou", "dice", "mcc", "recall", "specificity", "accuracy"] {
                assert_eq!(r[metric], 1.0, "{region} {metric}: {r}");
            }
        }
    };
    let masks_only = score(&tmp.path().join("masks_only"));
    perfect(&masks_only);
    // Masks alone: no AUC (NaN, null in JSON).
    assert!(masks_only["whole_image"]["reported_roc_auc"].is_null());
    // 16-bit probabilities (truth 0.75, background 0.25) beside the masks: AUCs of 1.
    for name in ["img_000", "img_001", "img_002"] {
        let m = mask(&format!("{name}.png"));
        let prob = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(64, 48, |x, y| {
            image::Luma([if m.get_pixel(x, y).0[0] > 0 {
                49151
            } else {
                16384
            }])
        });
        prob.save(pred.join(format!("{name}_prob.png"))).unwrap();
    }
    let with_probs = score(&tmp.path().join("with_probs"));
    perfect(&with_probs);
    for key in [
        "reported_roc_auc",
        "reported_pr_auc",
        "reported_average_precision",
    ] {
        assert_eq!(with_probs["inside_fov"][key], 1.0, "{key}");
    }

    // Every problem at once: an image without a prediction, a stray file, a mis-sized file,
    // a probability file of an unknown image.
    for file in ["img_001.png", "img_001_prob.png"] {
        std::fs::remove_file(pred.join(file)).unwrap();
    }
    image::GrayImage::new(64, 48)
        .save(pred.join("stray.png"))
        .unwrap();
    image::GrayImage::new(32, 48)
        .save(pred.join("img_000.png"))
        .unwrap();
    image::GrayImage::new(64, 48)
        .save(pred.join("other_prob.png"))
        .unwrap();
    std::fs::write(pred.join("notes.txt"), "not an image").unwrap();
    let bad = ds2f(&["evaluate", "--predictions", s(&pred), "--data", s(&data)]);
    assert!(!bad.status.success());
    let err = stderr(&bad);
    assert!(err.contains("4 problem(s)"), "{err}");
    assert!(err.contains("img_001.png: no prediction in"), "{err}");
    assert!(err.contains("stray.png: no image of this name"), "{err}");
    assert!(
        err.contains("other_prob.png: no image of this name"),
        "{err}"
    );
    assert!(
        err.contains("img_000.png: 32x48, but img_000 is 64x48 (the image)"),
        "{err}"
    );
}

/// Three classes: label maps, and one probability file per class (by index), scored as the
/// truth itself; a missing class file is named.
#[test]
fn multi_class_label_maps_and_class_probabilities() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let pred = tmp.path().join("pred");
    for sub in ["images", "masks"] {
        std::fs::create_dir_all(data.join(sub)).unwrap();
    }
    std::fs::create_dir_all(&pred).unwrap();
    for (k, name) in ["a", "b"].iter().enumerate() {
        let image = image::RgbImage::from_fn(40, 30, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 8) as u8, 90])
        });
        image.save(data.join(format!("images/{name}.png"))).unwrap();
        // Class 1 left, class 2 in a band, background elsewhere.
        let label = move |x: u32, y: u32| -> u8 {
            if x < 10 + k as u32 * 5 {
                1
            } else if (12..20).contains(&y) {
                2
            } else {
                0
            }
        };
        let mask = image::GrayImage::from_fn(40, 30, |x, y| image::Luma([label(x, y)]));
        mask.save(data.join(format!("masks/{name}.png"))).unwrap();
        mask.save(pred.join(format!("{name}.png"))).unwrap();
        for class in 0..3u8 {
            let prob = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(40, 30, |x, y| {
                image::Luma([if label(x, y) == class { 58982 } else { 3277 }])
            });
            prob.save(pred.join(format!("{name}_prob_{class}.png")))
                .unwrap();
        }
    }
    let out = tmp.path().join("out");
    let args = [
        "evaluate",
        "--predictions",
        s(&pred),
        "--data",
        s(&data),
        "--classes",
        "3",
        "--output",
        s(&out),
    ];
    let ok = ds2f(&args);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let summary = json(&out.join("summary.json"));
    let whole = &summary["whole_image"];
    assert_eq!(whole["num_classes"], 3);
    for metric in ["iou", "dice", "recall", "specificity"] {
        assert_eq!(whole["reported"][metric], 1.0, "{metric}");
    }
    assert_eq!(whole["reported_roc_auc"], 1.0);
    assert_eq!(whole["reported_pr_auc"], 1.0);
    assert_eq!(
        whole["pr_auc"].as_array().unwrap().len(),
        2,
        "classes 1 and 2"
    );
    check_report(&out, &["a", "b"]);

    std::fs::remove_file(pred.join("b_prob_2.png")).unwrap();
    let bad = ds2f(&args);
    assert!(!bad.status.success());
    let err = stderr(&bad);
    assert!(
        err.contains("b_prob_class_2.png: missing: probabilities need a file for every class"),
        "{err}"
    );
}
