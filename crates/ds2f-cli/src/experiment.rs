//! `ds2f experiment EXPERIMENT.toml [--list | --report] [--shard K/N] [--dir DIR]`: the
//! paper's protocol as one verb. Every (variant, fold or repeat) is an ordinary run folder
//! under `DIR/runs/<variant>/<unit>`; finished runs are skipped, killed ones resumed, runs
//! being trained elsewhere left to their worker (claims, ds2f_protocol::claim); then the
//! tables and figures are written to `DIR`.
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use ds2f::config::ExperimentConfig;
use ds2f::error::TrainError;
use ds2f::model::complexity::{inference_macs, trainable_params};
use ds2f::train::RunFolder;
use ds2f_protocol::claim::{self, Claimed};
use ds2f_protocol::experiment::{self, ExperimentFile, RunSpec, SplitScheme};
use ds2f_protocol::report::{self, DONE, FAILED, RunRecord};

use crate::evaluate::evaluate_items;
use crate::progress::Progress;

/// Arguments of `experiment`.
#[derive(clap::Args)]
pub struct Args {
    /// The experiment file (TOML; see docs/experiments.md).
    pub experiment: PathBuf,
    /// Experiment folder. Default: `runs/<file stem>`.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print every run and its state, then stop.
    #[arg(long, conflicts_with = "report")]
    pub list: bool,
    /// Only rebuild the tables and figures from the runs that have finished.
    #[arg(long)]
    pub report: bool,
    /// Run only every N-th pending run, starting at the K-th (1-based), e.g. `2/4`; read from
    /// SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when those are set.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Minutes after which a claim whose worker stopped refreshing it is taken over.
    #[arg(long, default_value_t = 10)]
    pub stale_minutes: u64,
    /// Device for training and evaluation (see `train --device`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// State of a run folder.
#[derive(Debug, Clone, PartialEq)]
enum RunState {
    /// Trained and evaluated.
    Done,
    /// Trained to its last epoch, not yet evaluated.
    Trained,
    /// Stopped after `epoch` of `epochs` (killed, or being trained).
    Partial { epoch: usize, epochs: usize },
    /// Nothing yet.
    Pending,
}

fn state(spec: &RunSpec, epochs: usize) -> Result<RunState> {
    if spec.dir.join(DONE).is_file() {
        return Ok(RunState::Done);
    }
    let run = RunFolder::new(&spec.dir);
    if !run.last_checkpoint().is_file() {
        return Ok(RunState::Pending);
    }
    let epoch = run.read_metrics()?.last().map_or(0, |r| r.epoch);
    Ok(if epoch >= epochs {
        RunState::Trained
    } else {
        RunState::Partial { epoch, epochs }
    })
}

/// The experiment, its plan and each run's config.
struct Planned {
    file: ExperimentFile,
    dir: PathBuf,
    runs: Vec<(RunSpec, ExperimentConfig)>,
}

fn load(args: &Args) -> Result<Planned> {
    let file = ExperimentFile::load(&args.experiment)?;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            let stem = args
                .experiment
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "experiment".into());
            PathBuf::from("runs").join(stem)
        }
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let base = ExperimentConfig::load(&file.base, &file.set)
        .with_context(|| format!("base config of {}", args.experiment.display()))?;
    let names = match &file.split {
        SplitScheme::Kfold { .. } => kfold_pool(&base)?,
        _ => Vec::new(),
    };
    let units = experiment::units(&file.split, &names)?;
    let plan = experiment::plan(&file, &units, &dir);
    let mut runs = Vec::with_capacity(plan.len());
    for spec in plan {
        let config = ExperimentConfig::load(&file.base, &spec.overrides)
            .with_context(|| format!("run {}/{}", spec.variant, spec.unit))?;
        // A run folder made by something else (another experiment file, a changed base
        // config, a copied folder) is never adopted or reported as this experiment's.
        let saved = RunFolder::new(&spec.dir).config_path();
        if saved.is_file() {
            let found = ExperimentConfig::load(&saved, &[])
                .with_context(|| format!("{} is not a run folder", spec.dir.display()))?;
            if !same_training(&found, &config) {
                bail!(
                    "{} holds a run whose config differs from the experiment's for {}/{} \
                     (compare its config.toml); move it away to retrain",
                    spec.dir.display(),
                    spec.variant,
                    spec.unit
                );
            }
        }
        runs.push((spec, config));
    }
    Ok(Planned { file, dir, runs })
}

/// The images k-fold splits: the base config's training pool together with its test set,
/// sorted by name (the reference splits the whole dataset).
fn kfold_pool(base: &ExperimentConfig) -> Result<Vec<String>> {
    if base.data.test_root.is_some() {
        bail!(
            "split.scheme = \"kfold\" splits one folder, but the base config sets data.test_root"
        );
    }
    let items = ds2f::dataset::discover_items(&base.data.root, &base.data.layout, None, true)?;
    let patterns: Vec<glob::Pattern> = base
        .data
        .train_include
        .iter()
        .chain(&base.data.test_include)
        .map(|p| glob::Pattern::new(p).with_context(|| format!("data.train_include `{p}`")))
        .collect::<Result<_>>()?;
    let mut names: Vec<String> = items
        .into_iter()
        .map(|i| i.name)
        .filter(|n| patterns.iter().any(|p| p.matches(n)))
        .collect();
    names.sort();
    Ok(names)
}

/// Runs `experiment`.
pub fn run(args: Args) -> Result<()> {
    let planned = load(&args)?;
    let stale = Duration::from_secs(args.stale_minutes * 60);
    std::fs::create_dir_all(&planned.dir)
        .with_context(|| format!("cannot create {}", planned.dir.display()))?;
    if args.list {
        return list(&planned, stale);
    }
    if !args.report {
        train_all(&planned, &args, stale)?;
    }
    write_report(&planned)
}

fn list(planned: &Planned, stale: Duration) -> Result<()> {
    println!("experiment folder: {}", planned.dir.display());
    for (spec, config) in &planned.runs {
        let s = match state(spec, config.train.epochs)? {
            RunState::Done => "done".to_string(),
            RunState::Trained => "trained, not evaluated".into(),
            RunState::Partial { epoch, epochs } => format!("epoch {epoch}/{epochs}"),
            RunState::Pending => "pending".into(),
        };
        let held = match claim::current(&spec.dir, stale) {
            Some((info, false)) => format!(" (claimed: {info})"),
            Some((info, true)) => format!(" (stale claim: {info})"),
            None => String::new(),
        };
        let failed = if spec.dir.join(FAILED).is_file() {
            " (FAILED: see failed.txt)"
        } else {
            ""
        };
        println!("{:<24} {:<10} {s}{held}{failed}", spec.variant, spec.unit);
    }
    Ok(())
}

fn train_all(planned: &Planned, args: &Args, stale: Duration) -> Result<()> {
    let mut pending = Vec::new();
    for (spec, config) in &planned.runs {
        if state(spec, config.train.epochs)? != RunState::Done && !spec.dir.join(FAILED).is_file() {
            pending.push((spec.clone(), config.clone()));
        }
    }
    let shard = match &args.shard {
        Some(s) => Some(experiment::parse_shard(s)?),
        None => experiment::slurm_shard(|k| std::env::var(k).ok()),
    };
    let mine = match shard {
        Some((k, n)) => {
            let mine = experiment::shard(&pending, k, n);
            eprintln!(
                "shard {}/{n}: {} of {} pending runs",
                k + 1,
                mine.len(),
                pending.len()
            );
            mine
        }
        None => pending,
    };
    let copy = planned.dir.join("experiment.toml");
    let text = std::fs::read(&args.experiment)
        .with_context(|| format!("cannot read {}", args.experiment.display()))?;
    ds2f_data::io::write_atomic(&copy, &text)?;
    let devices: Vec<_> = args
        .device
        .split(',')
        .map(|d| ds2f::device::select(d.trim()))
        .collect::<Result<_, _>>()?;
    for (i, (spec, config)) in mine.iter().enumerate() {
        let claim = match claim::try_claim(&spec.dir, stale)? {
            Claimed::Taken(c) => c,
            Claimed::Busy(info) => {
                eprintln!(
                    "[{}/{}] {}/{}: claimed by {info}; skipped",
                    i + 1,
                    mine.len(),
                    spec.variant,
                    spec.unit
                );
                continue;
            }
        };
        // Another worker may have finished (or failed) it between the listing and the claim.
        if state(spec, config.train.epochs)? == RunState::Done || spec.dir.join(FAILED).is_file() {
            continue;
        }
        eprintln!(
            "[{}/{}] {}/{} ({})",
            i + 1,
            mine.len(),
            spec.variant,
            spec.unit,
            spec.dir.display()
        );
        match run_one(spec, config, &planned.file, &devices) {
            Ok(()) => {}
            Err(e) if is_repeatable_failure(&e) => {
                let message = format!("{e:#}\n");
                ds2f_data::io::write_atomic(spec.dir.join(FAILED), message.as_bytes())?;
                eprintln!(
                    "{}/{} FAILED (kept and reported, not retried): {e:#}",
                    spec.variant, spec.unit
                );
            }
            Err(e) => return Err(e),
        }
        drop(claim);
    }
    Ok(())
}

fn is_repeatable_failure(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<TrainError>(),
        Some(TrainError::NonFinite { .. })
    )
}

/// Trains (or resumes, or adopts) one run, evaluates it on its test set and the OOD sets,
/// and writes `done.json`.
fn run_one(
    spec: &RunSpec,
    config: &ExperimentConfig,
    file: &ExperimentFile,
    devices: &[burn::prelude::Device],
) -> Result<()> {
    let run = RunFolder::new(&spec.dir);
    // `load` checked that a run already in the folder has this config.
    let resume = run.last_checkpoint().is_file();
    let splits = ds2f::dataset::split(
        &config.data,
        config.train.seed,
        ds2f::dataset::mask_kind(config.model.num_classes),
    )?;
    if state(spec, config.train.epochs)? != RunState::Trained {
        ds2f::train::train(
            config,
            &splits,
            &spec.dir,
            devices,
            resume,
            &mut Progress::new(),
        )?;
    }
    let device = &devices[0];
    evaluate_items(&spec.dir, &splits.test, "test", device)?;
    for set in &file.ood {
        let items = ds2f::dataset::discover_items(&set.root, "auto", None, true)?;
        let patterns: Vec<glob::Pattern> = set
            .include
            .iter()
            .map(|p| glob::Pattern::new(p).with_context(|| format!("ood `{}`: {p}", set.name)))
            .collect::<Result<_>>()?;
        let items: Vec<_> = items
            .into_iter()
            .filter(|i| patterns.is_empty() || patterns.iter().any(|p| p.matches(&i.name)))
            .collect();
        if items.is_empty() {
            bail!(
                "ood set `{}`: no image in {} matches {:?}",
                set.name,
                set.root.display(),
                set.include
            );
        }
        evaluate_items(&spec.dir, &items, &report::ood_eval_name(&set.name), device)?;
    }
    let history = run.read_metrics()?;
    let best = history.iter().rev().find(|r| r.best);
    let model = config.model.init(&burn::prelude::Device::flex());
    let [h, w] = config.data.lr_size;
    let record = RunRecord {
        variant: spec.variant.clone(),
        unit: spec.unit.clone(),
        train_seconds: history.iter().map(|r| r.seconds).sum(),
        epochs: history.last().map_or(0, |r| r.epoch),
        best_epoch: best.map(|r| r.epoch),
        best_val_iou: best.map(|r| r.val_iou),
        inference_params: trainable_params(&model, "") as u64,
        inference_gmacs: inference_macs(&config.model, h, w).total() as f64 / 1e9,
        protocol: file.protocol,
        finished: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        host: claim::host_name(),
    };
    let json = serde_json::to_vec_pretty(&record)?;
    ds2f_data::io::write_atomic(spec.dir.join(DONE), &json)?;
    Ok(())
}

/// Whether two configs train the same model the same way: everything but the description and
/// the run folder's location (an experiment folder may be moved), data folders compared as
/// the folders they name (`a/../b` and `b` are one folder).
fn same_training(a: &ExperimentConfig, b: &ExperimentConfig) -> bool {
    fn folder(p: &PathBuf) -> PathBuf {
        std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())
    }
    let strip = |c: &ExperimentConfig| {
        let mut c = c.clone();
        c.description.clear();
        c.run = Default::default();
        c.data.root = folder(&c.data.root);
        c.data.test_root = c.data.test_root.as_ref().map(folder);
        c.data.val_root = c.data.val_root.as_ref().map(folder);
        c
    };
    strip(a) == strip(b)
}

fn write_report(planned: &Planned) -> Result<()> {
    let specs: Vec<RunSpec> = planned.runs.iter().map(|(s, _)| s.clone()).collect();
    let ood: Vec<String> = planned.file.ood.iter().map(|o| o.name.clone()).collect();
    let results = report::collect(&specs, &ood)?;
    let written = ds2f_protocol::output::write_all(&planned.file, &specs, &results, &planned.dir)?;
    let done = results.len();
    println!(
        "{done} of {} runs finished; tables: {}",
        specs.len(),
        written.display()
    );
    Ok(())
}
