//! `ds2f evaluate --run RUN [--data DIR [--include PATTERN]...]`: the paper's metrics at the
//! original resolution, pooled and per image, whole image and inside the FOV; writes
//! `RUN/evaluation/<name>/summary.json` and prints a table.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::Device;
use ds2f::config::ExperimentConfig;
use ds2f::infer::{EvalOptions, EvalReport, Predictor, evaluate};
use ds2f_data::layout::Item;
use ds2f_metrics::{Metric, Summary};

/// Arguments of `evaluate`.
#[derive(clap::Args)]
pub struct Args {
    /// A run folder.
    #[arg(long)]
    pub run: PathBuf,
    /// A data folder to evaluate on (any supported layout). Default: the run's test split.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// With --data: only images whose name matches one of these patterns (`*`, `?`).
    #[arg(long)]
    pub include: Vec<String>,
    /// Name of the evaluation (its folder under RUN/evaluation/). Default: `test`, or the
    /// data folder's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Also write predictions and overlays into the evaluation folder.
    #[arg(long)]
    pub save_predictions: bool,
    /// Checkpoint to use: best or last.
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    /// Device: cpu (default), wgpu[:N], cuda[:N], libtorch, libtorch-cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs `evaluate`; returns the report and the summary path.
pub fn run(args: Args) -> Result<(EvalReport, PathBuf)> {
    let device = ds2f::device::select(&args.device)?;
    let config = ExperimentConfig::load(&args.run.join("config.toml"), &[])
        .with_context(|| format!("{} is not a run folder", args.run.display()))?;
    let (items, name) = match &args.data {
        None => {
            let splits = ds2f::dataset::split(
                &config.data,
                config.train.seed,
                ds2f::dataset::mask_kind(config.model.num_classes),
            )?;
            (
                splits.test,
                args.name.clone().unwrap_or_else(|| "test".into()),
            )
        }
        Some(dir) => {
            let items = ds2f::dataset::discover_items(dir, "auto", None, true)?;
            let patterns: Vec<glob::Pattern> = args
                .include
                .iter()
                .map(|p| glob::Pattern::new(p).with_context(|| format!("--include {p}")))
                .collect::<Result<_>>()?;
            let items = items
                .into_iter()
                .filter(|i| patterns.is_empty() || patterns.iter().any(|p| p.matches(&i.name)))
                .collect();
            let default = dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "data".into());
            (items, args.name.clone().unwrap_or(default))
        }
    };
    if items.is_empty() {
        bail!("nothing to evaluate: no test images (set data.test_include, or give --data)");
    }
    let started = std::time::Instant::now();
    let (report, summary_path) = evaluate_run(
        &args.run,
        &args.checkpoint,
        &items,
        &name,
        &device,
        args.save_predictions,
        |i, n, name| eprintln!("[{}/{n}] {name}", i + 1),
    )?;
    print_report(&report, items.len(), started.elapsed().as_secs_f64());
    println!("summary: {}", summary_path.display());
    Ok((report, summary_path))
}

/// Evaluates the `best` checkpoint of `run` on `items` into `run/evaluation/<name>/` quietly
/// (the experiment verb's evaluations).
pub fn evaluate_items(
    run: &Path,
    items: &[Item],
    name: &str,
    device: &Device,
) -> Result<(EvalReport, PathBuf)> {
    evaluate_run(run, "best", items, name, device, false, |_, _, _| {})
}

/// Evaluates checkpoint `which` of `run` on `items`, writing `run/evaluation/<name>/summary.json`
/// (and the predictions when asked) atomically.
fn evaluate_run(
    run: &Path,
    which: &str,
    items: &[Item],
    name: &str,
    device: &Device,
    save_predictions: bool,
    progress: impl FnMut(usize, usize, &str),
) -> Result<(EvalReport, PathBuf)> {
    let config = ExperimentConfig::load(&run.join("config.toml"), &[])
        .with_context(|| format!("{} is not a run folder", run.display()))?;
    let predictor = Predictor::from_run(run, which, device)?;
    let out_dir = run.join("evaluation").join(name);
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let options = EvalOptions {
        save_predictions: save_predictions.then(|| out_dir.join("predictions")),
        crop_to_fov: config.data.crop_to_fov,
        class_names: ds2f::dataset::class_names(&config.data, config.model.num_classes),
        class_mean: ds2f::dataset::class_mean(&config.data),
    };
    let report = evaluate(
        &predictor,
        items,
        config.model.num_classes,
        &options,
        progress,
    )?;
    let summary_path = out_dir.join("summary.json");
    let json = serde_json::to_vec_pretty(&report)?;
    ds2f_data::io::write_atomic(&summary_path, &json)?;
    Ok((report, summary_path))
}

fn print_report(report: &EvalReport, n: usize, seconds: f64) {
    println!("{n} images, {seconds:.1}s");
    print_summary("whole image (paper protocol)", &report.whole_image);
    if let Some(fov) = &report.inside_fov {
        print_summary("inside the FOV", fov);
    }
}

fn print_summary(title: &str, s: &Summary) {
    let multi = s.num_classes > 2;
    println!("\n{title}: {}", foreground(s));
    println!(
        "{:<12} {:>9} {:>20}",
        "metric", "pooled", "per image mean ± std"
    );
    // Per image: the image's own reported score (class 1, or its class mean), then mean ± std
    // over images, so the std is always defined with two or more images.
    let per_image = s.per_image_reported();
    let prefix = if multi { "m" } else { "" };
    for metric in [Metric::Iou, Metric::Dice, Metric::Mcc, Metric::Bm] {
        let per = per_image.get(metric);
        println!(
            "{:<12} {:>9.4} {:>11.4} ± {:<7.4}",
            format!("{prefix}{}", display_name(metric)),
            s.reported.get(metric),
            per.mean,
            per.std
        );
    }
    let auc_name = if multi { "mAUC (PR)" } else { "PR-AUC (AP)" };
    let auc = if multi {
        s.reported_pr_auc
    } else {
        s.reported_average_precision
    };
    println!("{auc_name:<12} {auc:>9.4} {:>20}", "(pooled)");
    if multi {
        println!(
            "\n{:<14} {:>9} {:>8} {:>8} {:>8} {:>12}",
            "class", "pixels", "IoU", "Dice", "PR-AUC", "pixel share"
        );
        let total: u64 = s.pooled_counts.first().map_or(0, |c| c.tp + c.fn_);
        let total = total + s.pooled_counts.first().map_or(0, |c| c.fp + c.tn);
        for row in s.class_rows() {
            let positives = row.counts.tp + row.counts.fn_;
            let auc = row.pr_auc.map_or(f64::NAN, |p| p.trapezoid);
            println!(
                "{:<14} {:>9} {:>8.4} {:>8.4} {:>8.4} {:>11.4}%{}",
                s.class_name(row.class),
                positives,
                row.pooled.iou,
                row.pooled.dice,
                auc,
                100.0 * positives as f64 / total.max(1) as f64,
                if row.averaged { "" } else { "  (not averaged)" }
            );
        }
    }
}

/// The paper's spelling of a metric (IoU, Dice, MCC, BM).
fn display_name(metric: Metric) -> &'static str {
    match metric {
        Metric::Iou => "IoU",
        Metric::Dice => "Dice",
        Metric::Mcc => "MCC",
        Metric::Bm => "BM",
        _ => metric.name(),
    }
}

fn foreground(s: &Summary) -> String {
    if s.num_classes == 2 {
        "foreground = class 1".into()
    } else {
        format!(
            "mean over classes {}..{} of {}",
            s.class_mean.classes(s.num_classes).start,
            s.class_mean.classes(s.num_classes).end - 1,
            s.num_classes
        )
    }
}
