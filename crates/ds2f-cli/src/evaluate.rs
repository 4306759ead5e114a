//! `ds2f evaluate --run RUN [--data DIR [--include PATTERN]...]`: the paper's metrics at the
//! original resolution, pooled and per image, whole image and inside the FOV; writes
//! `RUN/evaluation/<name>/summary.json` and `per_image.csv` and prints a table.
//!
//! `ds2f evaluate --predictions DIR --data DIR` scores a folder of masks or probability maps
//! made by any tool the same way (see [`ds2f::infer::evaluate::evaluate_predictions`]).
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::Device;
use ds2f::config::ExperimentConfig;
use ds2f::infer::evaluate::{
    EvalFigures, ReportImages, SrStream, evaluate_predictions, evaluate_with_curves, per_image_csv,
};
use ds2f::infer::{EvalOptions, EvalReport, Predictor};
use ds2f::report::eval_figure::CurveSet;
use ds2f::report::html::HtmlReport;
use ds2f::report::overlay::Palette;
use ds2f_data::layout::Item;

use crate::choices::{CheckpointChoice, LayoutChoice, PaletteChoice};
use ds2f_metrics::{Metric, Summary};

/// Arguments of `evaluate`.
#[derive(clap::Args)]
pub struct Args {
    /// A run folder: its model is evaluated, or with --predictions its config says the
    /// classes, class names, FOV crop and (without --data) the test split.
    #[arg(long, required_unless_present = "predictions")]
    pub run: Option<PathBuf>,
    /// Score this folder of predictions instead of a model: `<image>.png` masks (0/1, 0/255),
    /// 8/16-bit probability maps or label maps, and/or `<image>_prob.png` /
    /// `<image>_prob_<class>.png` probabilities (what `ds2f predict` writes).
    #[arg(long)]
    pub predictions: Option<PathBuf>,
    /// A data folder to evaluate on (any supported layout). Default: the run's (or --config's)
    /// test split.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Layout of --data (default: detected).
    #[arg(long, default_value = "auto")]
    pub layout: LayoutChoice,
    /// With --predictions: an experiment config giving the classes, class names, FOV crop and
    /// (without --data) the test split, as a run's config.toml does.
    #[arg(long, conflicts_with = "run")]
    pub config: Option<PathBuf>,
    /// With --predictions: number of classes, background included. Default: the config's,
    /// else the layout's, else 2.
    #[arg(long)]
    pub classes: Option<usize>,
    /// With --data: only images whose name matches one of these patterns (`*`, `?`).
    #[arg(long)]
    pub include: Vec<String>,
    /// Name of the evaluation (its folder under RUN/evaluation/). Default: `test`, or the
    /// data folder's name.
    #[arg(long)]
    pub name: Option<String>,
    /// With --predictions: where summary.json and per_image.csv go (default:
    /// PREDICTIONS/evaluation).
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Also write predictions (masks, 16-bit probabilities) and overlays into the evaluation
    /// folder.
    #[arg(long)]
    pub save_predictions: bool,
    /// Overlay colours of binary tasks in the report: paper (Fig. 5: miss green, false alarm
    /// red, hit yellow) or okabe-ito (colour-blind safe: sky blue, orange, white).
    #[arg(long, default_value = "paper")]
    pub palette: PaletteChoice,
    /// Also write the SR stream's image of each input (`sr/<image>_sr.png`, at the HR output
    /// size): frameworks with an SR stream, from the training checkpoint (`--checkpoint last`).
    #[arg(long, conflicts_with = "predictions")]
    pub save_sr: bool,
    /// Write no report.html (nor its overlays and figure), only summary.json and
    /// per_image.csv.
    #[arg(long)]
    pub no_report: bool,
    /// Checkpoint to use: best or last.
    #[arg(long, default_value = "best")]
    pub checkpoint: CheckpointChoice,
    /// Device: cpu (default), wgpu[:N], cuda[:N], libtorch, libtorch-cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The images to evaluate, the names of the data's other images, and the default name.
type Selection = (Vec<Item>, BTreeSet<String>, String);

/// The items of `--data` (filtered by `--include`), or the test split of `config`.
fn select_items(
    args: &Args,
    config: Option<&ExperimentConfig>,
    classes: usize,
) -> Result<Selection> {
    match (&args.data, config) {
        (None, Some(config)) => {
            let splits = ds2f::dataset::split(
                &config.data,
                config.train.seed,
                ds2f::dataset::mask_kind(classes),
            )?;
            let others = splits
                .train
                .iter()
                .chain(&splits.val)
                .map(|i| i.name.clone())
                .collect();
            Ok((splits.test, others, "test".into()))
        }
        (None, None) => bail!("--data: the folder of images and masks to score against"),
        (Some(dir), _) => {
            let items = ds2f::dataset::discover_items(dir, args.layout.name(), None, true)?;
            let patterns: Vec<glob::Pattern> = args
                .include
                .iter()
                .map(|p| glob::Pattern::new(p).with_context(|| format!("--include {p}")))
                .collect::<Result<_>>()?;
            let (items, others): (Vec<Item>, Vec<Item>) = items
                .into_iter()
                .partition(|i| patterns.is_empty() || patterns.iter().any(|p| p.matches(&i.name)));
            let default = dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "data".into());
            Ok((items, others.into_iter().map(|i| i.name).collect(), default))
        }
    }
}

/// Runs `evaluate`; returns the report and the summary path.
pub fn run(args: Args) -> Result<(EvalReport, PathBuf)> {
    if let Some(dir) = args.predictions.clone() {
        return run_predictions(&args, &dir);
    }
    let run = args
        .run
        .clone()
        .expect("clap requires --run without --predictions");
    let palette = (!args.no_report).then_some(Palette::from(args.palette));
    let device = ds2f::device::select(&args.device)?;
    let config = ExperimentConfig::load(&run.join("config.toml"), &[])
        .with_context(|| format!("{} is not a run folder", run.display()))?;
    let (items, _, default) = select_items(&args, Some(&config), config.model.num_classes)?;
    let name = args.name.clone().unwrap_or(default);
    if items.is_empty() {
        bail!("nothing to evaluate: no test images (set data.test_include, or give --data)");
    }
    let started = std::time::Instant::now();
    let (report, summary_path) = evaluate_run(
        &run,
        args.checkpoint.name(),
        &items,
        &name,
        &device,
        Extras {
            save_predictions: args.save_predictions,
            save_sr: args.save_sr,
            palette,
        },
        |i, n, name| eprintln!("[{}/{n}] {name}", i + 1),
    )?;
    print_report(&report, items.len(), started.elapsed().as_secs_f64());
    println!("summary: {}", summary_path.display());
    Ok((report, summary_path))
}

/// `evaluate --predictions DIR`: scores the folder against the data.
fn run_predictions(args: &Args, dir: &Path) -> Result<(EvalReport, PathBuf)> {
    let config_path = match (&args.config, &args.run) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(run)) => Some(run.join("config.toml")),
        (None, None) => None,
    };
    let config = config_path
        .as_ref()
        .map(|p| ExperimentConfig::load(p, &[]).with_context(|| format!("{}", p.display())))
        .transpose()?;
    // The data's own description: the config's, else --data in --layout.
    let data = match (&config, &args.data) {
        (Some(c), None) => c.data.clone(),
        (c, Some(dir)) => ds2f::config::DataConfig {
            root: dir.clone(),
            layout: args.layout.name().to_string(),
            class_names: c
                .as_ref()
                .map(|c| c.data.class_names.clone())
                .unwrap_or_default(),
            ..Default::default()
        },
        (None, None) => bail!("--data: the folder of images and masks to score against"),
    };
    let classes = match (args.classes, &config) {
        (Some(c), _) => c,
        (None, Some(config)) => config.model.num_classes,
        (None, None) => ds2f::dataset::layout_of(&data)?.num_classes().unwrap_or(2),
    };
    if classes < 2 {
        bail!("--classes {classes}: at least 2 (background + one class)");
    }
    let (items, others, _) = select_items(args, config.as_ref(), classes)?;
    if items.is_empty() {
        bail!("nothing to evaluate: no images with masks selected");
    }
    let palette = Palette::from(args.palette);
    let out_dir = args
        .output
        .clone()
        .unwrap_or_else(|| dir.join("evaluation"));
    let options = EvalOptions {
        save_predictions: None,
        crop_to_fov: config.as_ref().is_some_and(|c| c.data.crop_to_fov),
        class_names: ds2f::dataset::class_names(&data, classes),
        class_mean: ds2f::dataset::class_mean(&data),
        report_images: (!args.no_report).then(|| ReportImages {
            dir: out_dir.clone(),
            palette,
        }),
        save_sr: None,
    };
    let started = std::time::Instant::now();
    let (report, figures) =
        evaluate_predictions(dir, &items, &others, classes, &options, |i, n, name| {
            eprintln!("[{}/{n}] {name}", i + 1)
        })?;
    let summary_path = write_outputs(&out_dir, &report)?;
    if !args.no_report {
        let source = format!(
            "predictions {} scored against {}",
            dir.display(),
            args.data.as_ref().unwrap_or(&data.root).display()
        );
        let config_text = config_path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok());
        let page = write_report(
            &out_dir,
            &report,
            figures,
            &source,
            config_text,
            None,
            palette,
        )?;
        println!("report: {}", page.display());
    }
    print_report(&report, items.len(), started.elapsed().as_secs_f64());
    println!("summary: {}", summary_path.display());
    Ok((report, summary_path))
}

/// Writes `summary.json` and `per_image.csv` into `out_dir` atomically; returns the summary's
/// path.
fn write_outputs(out_dir: &Path, report: &EvalReport) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let summary_path = out_dir.join("summary.json");
    let json = serde_json::to_vec_pretty(report)?;
    ds2f_data::io::write_atomic(&summary_path, &json)?;
    ds2f_data::io::write_atomic(
        out_dir.join("per_image.csv"),
        per_image_csv(report).as_bytes(),
    )?;
    Ok(summary_path)
}

/// What an evaluation of a run writes besides `summary.json` and `per_image.csv`.
#[derive(Debug, Default)]
struct Extras {
    /// Predictions, probabilities and overlays in `predictions/`.
    save_predictions: bool,
    /// The SR stream's images in `sr/`.
    save_sr: bool,
    /// The report (`None`: none) with binary overlays in this palette.
    palette: Option<Palette>,
}

/// Evaluates the `best` checkpoint of `run` on `items` into `run/evaluation/<name>/` quietly
/// (the experiment verb's evaluations).
pub fn evaluate_items(
    run: &Path,
    items: &[Item],
    name: &str,
    device: &Device,
) -> Result<(EvalReport, PathBuf)> {
    evaluate_run(
        run,
        "best",
        items,
        name,
        device,
        Extras::default(),
        |_, _, _| {},
    )
}

/// Evaluates checkpoint `which` of `run` on `items`, writing `run/evaluation/<name>/summary.json`
/// and `per_image.csv` (and the predictions when asked) atomically.
fn evaluate_run(
    run: &Path,
    which: &str,
    items: &[Item],
    name: &str,
    device: &Device,
    extras: Extras,
    progress: impl FnMut(usize, usize, &str),
) -> Result<(EvalReport, PathBuf)> {
    let Extras {
        save_predictions,
        save_sr,
        palette,
    } = extras;
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
        report_images: palette.map(|palette| ReportImages {
            dir: out_dir.clone(),
            palette,
        }),
        save_sr: if save_sr {
            Some((SrStream::from_run(run, which, device)?, out_dir.join("sr")))
        } else {
            None
        },
    };
    let (report, figures) = evaluate_with_curves(
        &predictor,
        items,
        config.model.num_classes,
        &options,
        progress,
    )?;
    let summary_path = write_outputs(&out_dir, &report)?;
    if let Some(palette) = palette {
        let source = format!("run {}, checkpoint {which}", run.display());
        let config_text = std::fs::read_to_string(run.join("config.toml")).ok();
        // The run's training progress from its metrics.csv, drawn beside the report.
        let records = ds2f::train::run::RunFolder::new(run)
            .read_metrics()
            .unwrap_or_default();
        let curves = if records.is_empty() {
            None
        } else {
            let path = out_dir.join("progress.png");
            ds2f::report::curves::save_progress(&records, &path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some((
                "training progress: loss per term, validation metrics (new best marked), \
                 learning rate, seconds per epoch"
                    .to_string(),
                "progress.png".to_string(),
            ))
        };
        let page = write_report(
            &out_dir,
            &report,
            figures,
            &source,
            config_text,
            curves,
            palette,
        )?;
        println!("report: {}", page.display());
    }
    Ok((report, summary_path))
}

/// Draws `evaluation.png` (PR and ROC curves, per-image Dice) and writes `report.html` into
/// `out_dir`; returns the page's path.
fn write_report(
    out_dir: &Path,
    report: &EvalReport,
    figures: EvalFigures,
    source: &str,
    config: Option<String>,
    curves: Option<(String, String)>,
    palette: Palette,
) -> Result<PathBuf> {
    let s = &report.whole_image;
    let mut sets = Vec::new();
    let regions = [
        ("whole image", &figures.whole_image, Some(s)),
        (
            "inside FOV",
            &figures.inside_fov,
            report.inside_fov.as_ref(),
        ),
    ];
    for (region, accs, summary) in regions {
        let Some(summary) = summary else { continue };
        // Multi-class: one curve per averaged class, of the whole image only.
        if s.num_classes > 2 && region != "whole image" {
            continue;
        }
        for (class, acc) in accs {
            let auc = summary.pr_auc.iter().find(|p| p.class == *class);
            let (ap, roc) = auc.map_or((f64::NAN, f64::NAN), |p| (p.average_precision, p.roc_auc));
            let what = if s.num_classes > 2 {
                summary.class_name(*class)
            } else {
                region.to_string()
            };
            sets.push(CurveSet::of(
                format!("{what} (AP {ap:.3}, ROC {roc:.3})"),
                acc,
            ));
        }
    }
    let shown = report.inside_fov.as_ref().unwrap_or(s);
    let bars: Vec<(String, f64)> = shown
        .images
        .iter()
        .map(|i| (i.name.clone(), shown.image_reported(i).dice))
        .collect();
    let figure = out_dir.join("evaluation.png");
    ds2f::report::eval_figure::save(&sets, &bars, "Dice", &figure)
        .map_err(|e| anyhow::anyhow!("{}: {e}", figure.display()))?;
    let mut figs = vec![(
        "pooled precision-recall and ROC curves; Dice per image".to_string(),
        "evaluation.png".to_string(),
    )];
    figs.extend(curves);
    let title = out_dir
        .file_name()
        .map_or_else(|| "evaluation".into(), |n| n.to_string_lossy().into_owned());
    let page = HtmlReport {
        title: format!("ds2f evaluation: {title}"),
        source: source.to_string(),
        report,
        images: figures.images,
        figures: figs,
        config,
        palette,
    };
    ds2f::report::html::write(out_dir, &page).map_err(|e| anyhow::anyhow!("{e}"))
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
    for metric in [
        Metric::Iou,
        Metric::Dice,
        Metric::Mcc,
        Metric::Bm,
        Metric::Recall,
        Metric::Specificity,
        Metric::Accuracy,
    ] {
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
    // Per image: each image's own area (the trapezoid for PR, as mAUC).
    let images = |get: fn(&ds2f_metrics::ImageResult) -> f64| {
        ds2f_metrics::MeanStd::from_values(&s.images.iter().map(get).collect::<Vec<_>>())
    };
    let (pr, roc) = (images(|i| i.pr_auc), images(|i| i.roc_auc));
    println!(
        "{:<12} {:>9.4} {:>11.4} ± {:<7.4}",
        if multi { "mROC-AUC" } else { "ROC-AUC" },
        s.reported_roc_auc,
        roc.mean,
        roc.std
    );
    println!(
        "{:<12} {:>9.4} {:>11.4} ± {:<7.4}",
        "PR-AUC(trap)", s.reported_pr_auc, pr.mean, pr.std
    );
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
        Metric::Recall => "Sensitivity",
        Metric::Specificity => "Specificity",
        Metric::Accuracy => "Accuracy",
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
