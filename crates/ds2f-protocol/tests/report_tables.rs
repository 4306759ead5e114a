//! The tables of a small made-up experiment (3 folds × 5 images, four variants whose scores
//! are built pixel by pixel) have the expected rows, columns, counts and `*` marks.
use std::path::Path;

use ds2f_metrics::{Evaluation, Summary};
use ds2f_protocol::experiment::{ExperimentFile, Protocol, RunSpec, plan, units};
use ds2f_protocol::output::write_all;
use ds2f_protocol::report::{self, DONE, EvalFile, FAILED, RunRecord};

const FILE: &str = r#"
description = """
Made-up experiment.
Four variants on three folds.
"""
base = "base.toml"
baseline = "base"
[split]
scheme = "kfold"
k = 3
seed = 66
[[variants]]
name = "base"
[[variants]]
name = "better"
[[variants]]
name = "same"
[[variants]]
name = "collapsed"
[[variants]]
name = "diverged"
[[ood]]
name = "other"
root = "elsewhere"
"#;

/// An image of 100 pixels, 40 of them foreground, of which `hit` are predicted (and `false_pos`
/// background pixels predicted as foreground).
fn add(eval: &mut Evaluation, name: &str, hit: usize, false_pos: usize) {
    let truth: Vec<u8> = (0..100).map(|i| u8::from(i < 40)).collect();
    let pred: Vec<u8> = (0..100)
        .map(|i| u8::from(i < hit || (40..40 + false_pos).contains(&i)))
        .collect();
    let probs: Vec<f32> = pred.iter().map(|&p| f32::from(p) * 0.8 + 0.1).collect();
    eval.add_image(name, &truth, &pred, Some(&probs), None)
        .unwrap();
}

fn summary(images: &[String], hit: impl Fn(usize) -> (usize, usize)) -> Summary {
    let mut e = Evaluation::new(2);
    for (i, name) in images.iter().enumerate() {
        let (h, fp) = hit(i);
        add(&mut e, name, h, fp);
    }
    e.summary()
}

fn eval_file(whole_image: Summary) -> EvalFile {
    EvalFile {
        whole_image,
        inside_fov: None,
    }
}

fn write_json(path: &Path, value: &impl serde::Serialize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec(value).unwrap()).unwrap();
}

#[test]
fn tables_have_the_rows_columns_counts_and_marks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = ExperimentFile::parse(FILE, "e.toml").unwrap();
    let names: Vec<String> = (0..15).map(|i| format!("img{i:02}")).collect();
    let units = units(&file.split, &names).unwrap();
    let runs: Vec<RunSpec> = plan(&file, &units, dir);
    assert_eq!(runs.len(), 15);
    for spec in &runs {
        let fold: usize = spec.unit[1..].parse().unwrap();
        let test = &units[fold].test_names;
        let id = |i: usize| names.iter().position(|n| *n == test[i]).unwrap();
        if spec.variant == "diverged" {
            std::fs::create_dir_all(&spec.dir).unwrap();
            std::fs::write(spec.dir.join(FAILED), "epoch 1: the seg loss is NaN").unwrap();
            continue;
        }
        // Baseline: 20 + (image id mod 7) of 40 vessel pixels found, 5 false positives.
        let s = match spec.variant.as_str() {
            "base" => summary(test, |i| (20 + id(i) % 7, 5)),
            // Better on every image, by 3 + fold pixels (so the fold means differ unequally).
            "better" => summary(test, |i| (23 + fold + id(i) % 7, 5)),
            "same" => summary(test, |i| (20 + id(i) % 7, 5)),
            "collapsed" => summary(test, |_| (0, 0)),
            _ => unreachable!(),
        };
        write_json(
            &spec.dir.join("evaluation/test/summary.json"),
            &eval_file(s),
        );
        let ood = summary(&names[..3], |i| (10 + i, 2));
        write_json(
            &spec.dir.join("evaluation/ood-other/summary.json"),
            &eval_file(ood),
        );
        let record = RunRecord {
            variant: spec.variant.clone(),
            unit: spec.unit.clone(),
            train_seconds: 120.0,
            epochs: 3,
            best_epoch: Some(2),
            best_val_iou: Some(0.5),
            inference_params: 1_234_567,
            inference_gmacs: 1.5,
            protocol: Protocol::Clean,
            finished: 0,
            host: "h".into(),
        };
        write_json(&spec.dir.join(DONE), &record);
    }
    let results = report::collect(&runs, &["other".to_string()]).unwrap();
    assert_eq!(results.len(), 12);
    let md_path = write_all(&file, &runs, &results, dir).unwrap();
    let md = std::fs::read_to_string(&md_path).unwrap();
    assert!(md.starts_with("# Made-up experiment.\n"), "{md}");

    let row = |name: &str, section: usize| -> Vec<String> {
        let tables: Vec<&str> = md.split("\n## ").collect();
        let line = tables[section]
            .lines()
            .find(|l| l.starts_with(&format!("| `{name}`")))
            .unwrap_or_else(|| panic!("no row {name} in section {section}:\n{md}"));
        line.split('|').map(|c| c.trim().to_string()).collect()
    };
    // Section 1: fold-level table. Columns: variant, runs, collapsed, failed, IoU, Dice, MCC,
    // BM, PR-AUC, params, GMACs, minutes.
    let header: Vec<&str> = md
        .split("\n## ")
        .nth(1)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("| variant"))
        .unwrap()
        .split('|')
        .map(str::trim)
        .collect();
    assert_eq!(
        header[1..header.len() - 1],
        [
            "variant",
            "runs",
            "collapsed",
            "failed",
            "IoU",
            "Dice",
            "MCC",
            "BM",
            "PR-AUC (AP)",
            "params (M)",
            "GMACs",
            "training (min/run)"
        ]
    );
    let base = row("base", 1);
    assert_eq!(base[2], "3/3");
    assert!(!base[6].contains('*'), "{base:?}");
    let better = row("better", 1);
    // Better on every fold by different margins: the paired t-test over 3 folds is significant.
    assert!(better[6].ends_with('*'), "{better:?}");
    assert_eq!(better[10], "1.235");
    assert_eq!(better[12], "2.0");
    let same = row("same", 1);
    assert!(!same.iter().any(|c| c.contains('*')), "{same:?}");
    let collapsed = row("collapsed", 1);
    assert_eq!(collapsed[3], "3", "{collapsed:?}");
    let diverged = row("diverged", 1);
    assert_eq!(diverged[2], "0/3");
    assert_eq!(diverged[4], "3");
    assert_eq!(diverged[6], "—");

    // Section 2: per image. Better on all 15 images (W = 0); with tied differences scipy's
    // normal approximation gives p ≈ 6.5e-4 (2 / 2^15 if there were no ties).
    let better = row("better", 2);
    assert_eq!(better[2], "15");
    assert!(better[4].ends_with('*'), "{better:?}");
    assert_eq!(better[7], "15 of 15");
    let p: f64 = better[8].parse().unwrap();
    assert!((2.0 / 32768.0..1e-3).contains(&p), "{p}");
    let same = row("same", 2);
    assert_eq!(same[7], "—", "no non-zero difference: no test");

    // Section 3: the OOD table has every variant with its runs.
    let ood = row("base", 3);
    assert_eq!(ood[2], "3");

    // The figures exist and are referenced.
    for f in ["figures/paired_dice_better.png", "figures/runs_dice.png"] {
        assert!(md.contains(f), "{f} not in results.md");
        assert!(dir.join(f).is_file(), "{f}");
    }
    assert!(!dir.join("figures/rate_dice.png").exists());

    // per_image.csv: 12 runs × (5 test + 3 OOD) images, plus the header.
    let per_image = std::fs::read_to_string(dir.join("per_image.csv")).unwrap();
    assert_eq!(per_image.lines().count(), 1 + 12 * 8);
    assert!(per_image.starts_with("variant,unit,set,image,iou,dice,"));
    // results.csv: one line per variant.
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 6);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["variants"].as_array().unwrap().len(), 5);
    // No temporary file left.
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(!name.to_string_lossy().contains(".tmp"), "{name:?}");
    }
}

/// The PR column of a multi-class summary is the paper's mAUC (trapezoid), titled so; a binary
/// one keeps the average precision.
#[test]
fn pr_column_is_mauc_for_multi_class_runs() {
    let mut e = Evaluation::with_bins(3, 100);
    // Six pixels, three classes; class 1's scores rank a negative above its second positive,
    // where the average precision (step) and the trapezoid differ.
    let truth = [0u8, 1, 1, 0, 2, 2];
    let pred = [0u8, 1, 0, 1, 2, 2];
    let probs = [
        0.8, 0.1, 0.5, 0.3, 0.1, 0.2, // class 0
        0.1, 0.8, 0.4, 0.6, 0.1, 0.1, // class 1
        0.1, 0.1, 0.1, 0.1, 0.8, 0.7, // class 2
    ];
    e.add_image("m", &truth, &pred, Some(&probs), None).unwrap();
    let s = e.summary();
    assert!(
        (s.reported_pr_auc - s.reported_average_precision).abs() > 1e-3,
        "{} vs {}",
        s.reported_pr_auc,
        s.reported_average_precision
    );
    assert_eq!(report::Column::PrAuc.pooled(&s), s.reported_pr_auc);
    assert_eq!(report::Column::PrAuc.title_for(true), "mAUC (PR)");
    assert_eq!(report::Column::PrAuc.title_for(false), "PR-AUC (AP)");
    let binary = summary(&["a".to_string()], |_| (30, 5));
    assert_eq!(
        report::Column::PrAuc.pooled(&binary),
        binary.reported_average_precision
    );
}
