//! An experiment's tables: per variant, mean ± std over folds (or repeats) of every metric
//! pooled per fold (the paper's way) and over all test images, paired tests against the
//! baseline, out-of-distribution columns, and the files `results.{md,csv,json}`,
//! `per_image.csv` and figures.
//!
//! Significance marks: `*` on a fold-level cell when the paired t-test over folds (matched by
//! fold) gives p < 0.05 against the baseline; `*` on a per-image cell when the Wilcoxon
//! signed-rank test over test images (matched by image; an image tested in several repeats
//! enters with its mean) gives p < 0.05. Collapsed runs (no foreground predicted on the whole
//! test set, or nothing else) are counted and kept in every statistic.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ds2f_metrics::{ImageResult, MeanStd, Metric, Summary};
use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::experiment::{ExperimentFile, Protocol, RunSpec, SplitScheme};
use crate::stats::{self, Test};

/// What the runner leaves in a finished run folder: `done.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Variant name.
    pub variant: String,
    /// Fold or repeat name.
    pub unit: String,
    /// Training wall time over every session of the run (sum of the epochs' times).
    pub train_seconds: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// Best validation epoch (whose weights are evaluated).
    pub best_epoch: Option<usize>,
    /// Its validation IoU.
    pub best_val_iou: Option<f64>,
    /// Parameters of the inference graph.
    pub inference_params: u64,
    /// GMACs of the inference graph at the LR input, batch 1.
    pub inference_gmacs: f64,
    /// Protocol the run was trained under.
    pub protocol: Protocol,
    /// When the run was finished (seconds since the Unix epoch).
    pub finished: u64,
    /// Host that finished it.
    pub host: String,
}

/// The file name of a run's [`RunRecord`].
pub const DONE: &str = "done.json";

/// The file of a run whose training failed in a way that would repeat (a NaN loss): the
/// error, kept and counted in the tables; the run is not retried unless the file is removed.
pub const FAILED: &str = "failed.txt";

/// The evaluation folder name of an OOD set.
pub fn ood_eval_name(set: &str) -> String {
    format!("ood-{set}")
}

/// A finished run's numbers.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// The record.
    pub record: RunRecord,
    /// Test set evaluation.
    pub test: Summary,
    /// OOD evaluations by set name (those that exist).
    pub ood: BTreeMap<String, Summary>,
}

/// An evaluation's `summary.json` as `ds2f evaluate` writes it; the tables use the whole-image
/// scores (the paper's protocol).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalFile {
    /// Over every pixel of each image.
    pub whole_image: Summary,
    /// Inside the field of view, when every image has one.
    pub inside_fov: Option<Summary>,
}

/// Reads the finished runs of `plan` (those with `done.json`); the others are skipped.
pub fn collect(plan: &[RunSpec], ood_sets: &[String]) -> Result<Vec<RunResult>, ProtocolError> {
    let mut out = Vec::new();
    for spec in plan {
        let done = spec.dir.join(DONE);
        if !done.is_file() {
            continue;
        }
        let record: RunRecord = read_json(&done)?;
        let test =
            read_json::<EvalFile>(&spec.dir.join("evaluation/test/summary.json"))?.whole_image;
        let mut ood = BTreeMap::new();
        for set in ood_sets {
            let path = spec
                .dir
                .join("evaluation")
                .join(ood_eval_name(set))
                .join("summary.json");
            if path.is_file() {
                ood.insert(set.clone(), read_json::<EvalFile>(&path)?.whole_image);
            }
        }
        out.push(RunResult { record, test, ood });
    }
    Ok(out)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ProtocolError> {
    let bytes = std::fs::read(path).map_err(|e| ProtocolError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| ProtocolError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// The metric columns of the tables.
pub const COLUMNS: [Column; 5] = [
    Column::Metric(Metric::Iou),
    Column::Metric(Metric::Dice),
    Column::Metric(Metric::Mcc),
    Column::Metric(Metric::Bm),
    Column::PrAuc,
];

/// A table column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// A confusion-matrix metric.
    Metric(Metric),
    /// Pooled PR-AUC: average precision for binary tasks; for multi-class ones the paper's
    /// mAUC (the trapezoidal PR-AUC averaged over the lesion classes, SPEC §5).
    PrAuc,
}

impl Column {
    /// Machine name (`iou`, ..., `pr_auc`).
    pub fn key(self) -> &'static str {
        match self {
            Column::Metric(m) => m.name(),
            Column::PrAuc => "pr_auc",
        }
    }

    /// Header of a multi-class table (`mAUC` for the PR column), else [`Column::title`].
    pub fn title_for(self, multi_class: bool) -> &'static str {
        match (self, multi_class) {
            (Column::PrAuc, true) => "mAUC (PR)",
            _ => self.title(),
        }
    }

    /// Header as the paper writes it.
    pub fn title(self) -> &'static str {
        match self {
            Column::Metric(Metric::Iou) => "IoU",
            Column::Metric(Metric::Dice) => "Dice",
            Column::Metric(Metric::Mcc) => "MCC",
            Column::Metric(Metric::Bm) => "BM",
            Column::Metric(m) => m.name(),
            Column::PrAuc => "PR-AUC (AP)",
        }
    }

    /// The reported (pooled) value of a summary.
    pub fn pooled(self, s: &Summary) -> f64 {
        match self {
            Column::Metric(m) => s.reported.get(m),
            Column::PrAuc if s.num_classes > 2 => s.reported_pr_auc,
            Column::PrAuc => s.reported_average_precision,
        }
    }
}

/// `iou`, `dice`, `mcc`, `bm` → the metric.
pub fn metric_by_name(name: &str) -> Option<Metric> {
    Metric::ALL.into_iter().find(|m| m.name() == name)
}

/// An image's reported score: class 1 for binary tasks, the mean over the summary's averaged
/// classes otherwise (the foreground ones, or all of them for Cityscapes), as the pooled scores.
pub fn image_score(summary: &Summary, image: &ImageResult, metric: Metric) -> f64 {
    summary.image_reported(image).get(metric)
}

/// Whether a run predicted only one label over its whole test set (no foreground at all, or
/// nothing else): a collapsed training.
pub fn collapsed(s: &Summary) -> bool {
    let predicted: Vec<u64> = (0..s.num_classes)
        .map(|c| s.confusion_matrix.iter().map(|row| row[c]).sum())
        .collect();
    predicted.iter().filter(|&&n| n > 0).count() <= 1
}

/// One cell: mean ± std and the paired test against the baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cell {
    /// Mean ± std over the sample (folds or images).
    pub stats: MeanStdJson,
    /// Paired test against the baseline (absent for the baseline, or too few pairs).
    pub test: Option<Test>,
}

/// [`MeanStd`] with `NaN` as `null` in JSON.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct MeanStdJson {
    /// Mean.
    pub mean: Option<f64>,
    /// Sample standard deviation.
    pub std: Option<f64>,
    /// Number of values.
    pub n: usize,
}

impl From<MeanStd> for MeanStdJson {
    fn from(m: MeanStd) -> Self {
        let f = |v: f64| v.is_finite().then_some(v);
        Self {
            mean: f(m.mean),
            std: f(m.std),
            n: m.n,
        }
    }
}

impl Cell {
    /// `0.6655 ± 0.0349*` (4 decimals; `—` when undefined).
    pub fn text(&self) -> String {
        let mark = if self.significant() { "*" } else { "" };
        match (self.stats.mean, self.stats.std) {
            (Some(m), Some(s)) => format!("{m:.4} ± {s:.4}{mark}"),
            (Some(m), None) => format!("{m:.4}{mark}"),
            _ => "—".into(),
        }
    }

    /// p < 0.05 against the baseline.
    pub fn significant(&self) -> bool {
        self.test.as_ref().is_some_and(|t| t.p_value < 0.05)
    }
}

/// One variant's row(s).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VariantRow {
    /// Variant name.
    pub name: String,
    /// Finished runs.
    pub runs: usize,
    /// Planned runs.
    pub planned: usize,
    /// Finished runs that collapsed.
    pub collapsed: usize,
    /// Runs whose training failed (NaN loss), kept out of the statistics but counted.
    pub failed: usize,
    /// Per column key: mean ± std over folds of the pooled score, t-test over folds.
    pub folds: BTreeMap<String, Cell>,
    /// Per metric: mean ± std over test images, Wilcoxon over images.
    pub images: BTreeMap<String, Cell>,
    /// Per fold: the pooled scores of the fold.
    pub per_fold: BTreeMap<String, BTreeMap<String, f64>>,
    /// Test images on which the variant's test metric beats the baseline's, of those paired.
    pub better_on: Option<(usize, usize)>,
    /// Per OOD set, per column key: mean ± std over folds of the pooled score.
    pub ood: BTreeMap<String, BTreeMap<String, Cell>>,
    /// Parameters of the inference graph.
    pub inference_params: Option<u64>,
    /// GMACs of the inference graph.
    pub inference_gmacs: Option<f64>,
    /// Mean training time per run, minutes.
    pub train_minutes: Option<f64>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The experiment's description.
    pub description: String,
    /// Baseline variant.
    pub baseline: String,
    /// The test metric of the figures and the "better on" count.
    pub test_metric: String,
    /// Split scheme in words.
    pub split: String,
    /// Protocol.
    pub protocol: Protocol,
    /// Units (folds or repeats) of the plan.
    pub units: Vec<String>,
    /// What a unit is: `fold`, `repeat` or `run`.
    pub unit_word: String,
    /// OOD sets.
    pub ood_sets: Vec<String>,
    /// Rows in table order.
    pub variants: Vec<VariantRow>,
    /// Whether the runs are multi-class (more than two classes): the PR column is then mAUC.
    #[serde(default)]
    pub multi_class: bool,
}

/// Builds the report from the finished runs of `plan`.
pub fn build(file: &ExperimentFile, plan: &[RunSpec], results: &[RunResult]) -> Report {
    let mut units: Vec<String> = Vec::new();
    for s in plan {
        if !units.contains(&s.unit) {
            units.push(s.unit.clone());
        }
    }
    let ood_sets: Vec<String> = file.ood.iter().map(|o| o.name.clone()).collect();
    let by_variant =
        |v: &str| -> Vec<&RunResult> { results.iter().filter(|r| r.record.variant == v).collect() };
    let base_runs = by_variant(&file.baseline);
    let test_metric = metric_by_name(&file.test_metric).unwrap_or(Metric::Dice);
    let mut rows = Vec::new();
    for v in &file.variants {
        let runs = by_variant(&v.name);
        let is_base = v.name == file.baseline;
        let mut row = VariantRow {
            name: v.name.clone(),
            runs: runs.len(),
            planned: plan.iter().filter(|s| s.variant == v.name).count(),
            collapsed: runs.iter().filter(|r| collapsed(&r.test)).count(),
            failed: plan
                .iter()
                .filter(|s| s.variant == v.name && s.dir.join(FAILED).is_file())
                .count(),
            folds: BTreeMap::new(),
            images: BTreeMap::new(),
            per_fold: BTreeMap::new(),
            better_on: None,
            ood: BTreeMap::new(),
            inference_params: runs.first().map(|r| r.record.inference_params),
            inference_gmacs: runs.first().map(|r| r.record.inference_gmacs),
            train_minutes: (!runs.is_empty()).then(|| {
                runs.iter().map(|r| r.record.train_seconds).sum::<f64>() / 60.0 / runs.len() as f64
            }),
        };
        for r in &runs {
            let scores = COLUMNS
                .iter()
                .map(|c| (c.key().to_string(), c.pooled(&r.test)))
                .collect();
            row.per_fold.insert(r.record.unit.clone(), scores);
        }
        for column in COLUMNS {
            row.folds.insert(
                column.key().into(),
                fold_cell(&runs, &base_runs, is_base, |r| Some(column.pooled(&r.test))),
            );
            for set in &ood_sets {
                let cell = fold_cell(&runs, &base_runs, is_base, |r| {
                    r.ood.get(set).map(|s| column.pooled(s))
                });
                row.ood
                    .entry(set.clone())
                    .or_default()
                    .insert(column.key().into(), cell);
            }
        }
        for metric in [Metric::Iou, Metric::Dice, Metric::Mcc, Metric::Bm] {
            let mine = image_means(&runs, metric);
            let theirs = image_means(&base_runs, metric);
            let values: Vec<f64> = mine.values().copied().collect();
            let paired = (!is_base).then(|| paired_images(&mine, &theirs)).flatten();
            if metric == test_metric {
                row.better_on = paired.map(|(_, better)| better);
            }
            row.images.insert(
                metric.name().into(),
                Cell {
                    stats: MeanStd::from_values(&values).into(),
                    test: paired.map(|(t, _)| t),
                },
            );
        }
        rows.push(row);
    }
    Report {
        description: file.description.trim().to_string(),
        baseline: file.baseline.clone(),
        test_metric: test_metric.name().into(),
        split: split_words(&file.split),
        protocol: file.protocol,
        units,
        unit_word: match file.split {
            SplitScheme::Kfold { .. } => "fold",
            SplitScheme::Repeats { .. } => "repeat",
            SplitScheme::Official => "run",
        }
        .into(),
        ood_sets,
        variants: rows,
        multi_class: results.iter().any(|r| r.test.num_classes > 2),
    }
}

fn split_words(s: &SplitScheme) -> String {
    match s {
        SplitScheme::Kfold { k, seed, folds } => {
            let some = folds
                .as_ref()
                .map(|f| {
                    let list: Vec<String> = f.iter().map(|i| format!("f{i}")).collect();
                    format!(", folds {} only", list.join(" "))
                })
                .unwrap_or_default();
            format!("{k}-fold (scikit-learn KFold, shuffle, random_state {seed}){some}")
        }
        SplitScheme::Repeats { seeds } => format!(
            "{} repeats on one split (train.seed = {})",
            seeds.len(),
            seeds
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        SplitScheme::Official => "the base config's split".into(),
    }
}

/// Mean ± std over this variant's runs of `value`, and the paired t-test over the units both
/// the variant and the baseline finished.
fn fold_cell(
    runs: &[&RunResult],
    base: &[&RunResult],
    is_base: bool,
    value: impl Fn(&RunResult) -> Option<f64>,
) -> Cell {
    let values: Vec<f64> = runs.iter().filter_map(|r| value(r)).collect();
    let test = if is_base {
        None
    } else {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for r in runs {
            let Some(other) = base.iter().find(|o| o.record.unit == r.record.unit) else {
                continue;
            };
            if let (Some(x), Some(y)) = (value(r), value(other)) {
                a.push(x);
                b.push(y);
            }
        }
        stats::paired_t_test(&a, &b)
    };
    Cell {
        stats: MeanStd::from_values(&values).into(),
        test,
    }
}

/// Per test image, the mean of its score over the runs that tested it.
fn image_means(runs: &[&RunResult], metric: Metric) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for r in runs {
        for img in &r.test.images {
            let v = image_score(&r.test, img, metric);
            if v.is_nan() {
                continue;
            }
            let e = sums.entry(img.name.clone()).or_default();
            e.0 += v;
            e.1 += 1;
        }
    }
    sums.into_iter()
        .map(|(k, (s, n))| (k, s / n as f64))
        .collect()
}

/// Wilcoxon signed-rank over the images both have, and on how many the first is better.
fn paired_images(
    mine: &BTreeMap<String, f64>,
    theirs: &BTreeMap<String, f64>,
) -> Option<(Test, (usize, usize))> {
    let pairs: Vec<(f64, f64)> = mine
        .iter()
        .filter_map(|(k, a)| theirs.get(k).map(|b| (*a, *b)))
        .collect();
    let better = pairs.iter().filter(|(a, b)| a > b).count();
    let (a, b): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
    stats::wilcoxon_signed_rank(&a, &b).map(|t| (t, (better, pairs.len())))
}

/// The paired per-image values of `variant` against the baseline for a metric, matched by
/// image name (for the paired figure).
pub fn image_pairs(
    results: &[RunResult],
    variant: &str,
    baseline: &str,
    metric: Metric,
) -> Vec<(f64, f64)> {
    let of = |v: &str| {
        let runs: Vec<&RunResult> = results.iter().filter(|r| r.record.variant == v).collect();
        image_means(&runs, metric)
    };
    let (mine, theirs) = (of(variant), of(baseline));
    mine.iter()
        .filter_map(|(k, a)| theirs.get(k).map(|b| (*b, *a)))
        .collect()
}

impl Report {
    /// `results.md`: the paper's table layout.
    pub fn markdown(&self, figures: &[(String, PathBuf)]) -> String {
        let mut md = String::new();
        let mut lines = self.description.lines();
        let title = lines.next().unwrap_or("Experiment");
        let _ = writeln!(md, "# {title}\n");
        let rest: Vec<&str> = lines.collect();
        if !rest.is_empty() {
            let _ = writeln!(md, "{}\n", rest.join("\n"));
        }
        let metric_title =
            metric_by_name(&self.test_metric).map_or("?", |m| Column::Metric(m).title());
        let _ = writeln!(
            md,
            "Split: {}. Baseline: `{}`. Protocol: {}.\n",
            self.split,
            self.baseline,
            match self.protocol {
                Protocol::Clean =>
                    "clean (model selection on validation images carved from the training folds)",
                Protocol::Reference =>
                    "**reference** (selection on the test fold, schedule from the whole \
                     dataset: optimistic, shown only to measure the difference)",
            }
        );
        let n_units = self.units.len();
        let _ = writeln!(
            md,
            "## Test, pooled per {} (the paper's way), mean ± std over {} {}s\n",
            self.unit_word, n_units, self.unit_word
        );
        let mut header = "| variant | runs | collapsed | failed |".to_string();
        let mut rule = "|---|---|---|---|".to_string();
        for c in COLUMNS {
            let _ = write!(header, " {} |", c.title_for(self.multi_class));
            rule.push_str("---|");
        }
        header.push_str(" params (M) | GMACs | training (min/run) |");
        rule.push_str("---|---|---|");
        let _ = writeln!(md, "{header}\n{rule}");
        for r in &self.variants {
            let name = if r.name == self.baseline {
                format!("`{}` (baseline)", r.name)
            } else {
                format!("`{}`", r.name)
            };
            let _ = write!(
                md,
                "| {name} | {}/{} | {} | {} |",
                r.runs, r.planned, r.collapsed, r.failed
            );
            for c in COLUMNS {
                let _ = write!(md, " {} |", r.folds[c.key()].text());
            }
            let _ = writeln!(
                md,
                " {} | {} | {} |",
                opt(r.inference_params.map(|p| p as f64 / 1e6), 3),
                opt(r.inference_gmacs, 2),
                opt(r.train_minutes, 1)
            );
        }
        let _ = writeln!(
            md,
            "\n`*`: paired t-test over {} against the baseline, p < 0.05.\n",
            if n_units > 1 {
                format!("the {}s both finished", self.unit_word)
            } else {
                "runs (needs at least two)".into()
            }
        );

        let _ = writeln!(md, "## Test, per image, mean ± std over test images\n");
        let _ = writeln!(
            md,
            "| variant | images | IoU | Dice | MCC | BM | {metric_title} better than baseline on | p ({metric_title}, Wilcoxon) |\n|---|---|---|---|---|---|---|---|"
        );
        for r in &self.variants {
            let cells = |m: &str| r.images.get(m).map_or("—".into(), Cell::text);
            let n = r.images.get("dice").map_or(0, |c| c.stats.n);
            let better = r
                .better_on
                .map_or("—".into(), |(b, n)| format!("{b} of {n}"));
            let p = r
                .images
                .get(self.test_metric.as_str())
                .and_then(|c| c.test.as_ref())
                .map_or("—".into(), |t| crate::figures::format_p(t.p_value));
            let _ = writeln!(
                md,
                "| `{}` | {n} | {} | {} | {} | {} | {better} | {p} |",
                r.name,
                cells("iou"),
                cells("dice"),
                cells("mcc"),
                cells("bm")
            );
        }
        let _ = writeln!(
            md,
            "\n`*`: Wilcoxon signed-rank test over the test images against the baseline \
             (each image once, or its mean over repeats), p < 0.05.\n"
        );

        for set in &self.ood_sets {
            let _ = writeln!(
                md,
                "## Out of distribution: `{set}`, pooled, mean ± std over runs\n"
            );
            let _ = writeln!(
                md,
                "| variant | runs | IoU | Dice | MCC | BM | {} |\n|---|---|---|---|---|---|---|",
                Column::PrAuc.title_for(self.multi_class)
            );
            for r in &self.variants {
                let cells = &r.ood[set];
                let n = cells.get("dice").map_or(0, |c| c.stats.n);
                let _ = write!(md, "| `{}` | {n} |", r.name);
                for c in COLUMNS {
                    let _ = write!(md, " {} |", cells[c.key()].text());
                }
                md.push('\n');
            }
            md.push('\n');
        }

        let _ = writeln!(
            md,
            "## {metric_title} per {} (pooled over its test images)\n",
            self.unit_word
        );
        let mut header = "| variant |".to_string();
        let mut rule = "|---|".to_string();
        for u in &self.units {
            let _ = write!(header, " {u} |");
            rule.push_str("---|");
        }
        let _ = writeln!(md, "{header}\n{rule}");
        for r in &self.variants {
            let _ = write!(md, "| `{}` |", r.name);
            for u in &self.units {
                let v = r
                    .per_fold
                    .get(u)
                    .and_then(|m| m.get(self.test_metric.as_str()))
                    .copied();
                let _ = write!(md, " {} |", opt(v, 4));
            }
            md.push('\n');
        }
        md.push('\n');
        for (caption, path) in figures {
            let _ = writeln!(md, "![{caption}]({})\n", path.display());
        }
        md
    }

    /// `results.csv`: one row per variant; `<column>_mean`, `<column>_std`, `<column>_p`
    /// (t-test over folds), per-image `<metric>_img_mean/_std/_p` (Wilcoxon), OOD
    /// `<set>_<column>_mean/_std`, and the rest.
    pub fn csv(&self) -> String {
        let mut header = vec![
            "variant".to_string(),
            "runs".into(),
            "planned".into(),
            "collapsed".into(),
            "failed".into(),
        ];
        for c in COLUMNS {
            for s in ["mean", "std", "p"] {
                header.push(format!("{}_{s}", c.key()));
            }
        }
        for m in ["iou", "dice", "mcc", "bm"] {
            for s in ["mean", "std", "p"] {
                header.push(format!("{m}_img_{s}"));
            }
        }
        for set in &self.ood_sets {
            for c in COLUMNS {
                for s in ["mean", "std"] {
                    header.push(format!("{set}_{}_{s}", c.key()));
                }
            }
        }
        header.extend(["params".into(), "gmacs".into(), "train_minutes".into()]);
        let mut out = header.join(",");
        out.push('\n');
        let num = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
        let cell = |c: Option<&Cell>, with_p: bool| {
            let mut v = vec![
                num(c.and_then(|c| c.stats.mean)),
                num(c.and_then(|c| c.stats.std)),
            ];
            if with_p {
                v.push(num(c.and_then(|c| c.test.as_ref()).map(|t| t.p_value)));
            }
            v
        };
        for r in &self.variants {
            let mut row = vec![
                r.name.clone(),
                r.runs.to_string(),
                r.planned.to_string(),
                r.collapsed.to_string(),
                r.failed.to_string(),
            ];
            for c in COLUMNS {
                row.extend(cell(r.folds.get(c.key()), true));
            }
            for m in ["iou", "dice", "mcc", "bm"] {
                row.extend(cell(r.images.get(m), true));
            }
            for set in &self.ood_sets {
                for c in COLUMNS {
                    row.extend(cell(r.ood.get(set).and_then(|o| o.get(c.key())), false));
                }
            }
            row.push(r.inference_params.map_or(String::new(), |p| p.to_string()));
            row.push(num(r.inference_gmacs));
            row.push(num(r.train_minutes));
            out.push_str(&row.join(","));
            out.push('\n');
        }
        out
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "—".into(),
    }
}

/// `per_image.csv`: one line per (run, evaluation set, image) with every metric.
pub fn per_image_csv(results: &[RunResult]) -> String {
    let mut out = String::from("variant,unit,set,image");
    for m in Metric::ALL {
        let _ = write!(out, ",{}", m.name());
    }
    out.push('\n');
    for r in results {
        let sets = std::iter::once(("test".to_string(), &r.test))
            .chain(r.ood.iter().map(|(k, s)| (ood_eval_name(k), s)));
        for (set, summary) in sets {
            for img in &summary.images {
                let _ = write!(
                    out,
                    "{},{},{},{}",
                    r.record.variant,
                    r.record.unit,
                    set,
                    csv_field(&img.name)
                );
                for m in Metric::ALL {
                    let v = image_score(summary, img, m);
                    if v.is_nan() {
                        out.push(',');
                    } else {
                        let _ = write!(out, ",{v}");
                    }
                }
                out.push('\n');
            }
        }
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
