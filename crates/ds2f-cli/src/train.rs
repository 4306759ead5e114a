//! `ds2f train --config FILE [--set key=value]... [--resume RUN] [--device cpu[,cpu...]]`.
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ds2f::config::ExperimentConfig;
use ds2f::train::TrainOutcome;

use crate::progress::Progress;

/// Arguments of `train`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment config (TOML). Not needed with --resume, which uses the run's saved config.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a config value, e.g. `--set train.epochs=10` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Continue the run in this folder from its last checkpoint.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<PathBuf>,
    /// Device: cpu, wgpu[:N], cuda[:N], libtorch, libtorch-cuda[:N] (in builds with those features); a comma-separated list
    /// (`cuda:0,cuda:1`) trains data-parallel. Default: the config's `train.devices`, else cpu.
    #[arg(long)]
    pub device: Option<String>,
}

/// Runs `train`; returns the outcome for `demo`.
pub fn run(args: Args) -> Result<TrainOutcome> {
    let (mut config, run_dir) = match (&args.resume, &args.config) {
        (Some(run), _) => {
            if args.config.is_some() || !args.overrides.is_empty() {
                bail!(
                    "--resume continues with the run's saved config ({}); drop --config/--set",
                    run.join("config.toml").display()
                );
            }
            let config = ExperimentConfig::load(&run.join("config.toml"), &[])
                .with_context(|| format!("cannot resume {}", run.display()))?;
            (config, run.clone())
        }
        (None, Some(path)) => {
            let config = ExperimentConfig::load(path, &args.overrides)?;
            let dir = config.run.dir.join(&config.run.name);
            (config, dir)
        }
        (None, None) => bail!("give --config FILE (or --resume RUN)"),
    };
    if let Some(list) = &args.device {
        config.train.devices = list.split(',').map(|d| d.trim().to_string()).collect();
        config.validate().context("--device")?;
    }
    let devices = if config.train.devices.is_empty() {
        vec![ds2f::device::select("cpu")?]
    } else {
        config
            .train
            .devices
            .iter()
            .map(|name| ds2f::device::select(name).context("train.devices"))
            .collect::<Result<Vec<_>>>()?
    };
    let splits = ds2f::dataset::split(
        &config.data,
        config.train.seed,
        ds2f::dataset::mask_kind(config.model.num_classes),
    )?;
    eprintln!(
        "training {} images, validating on {}, {} test images held out; LR {}x{} -> HR {}x{} (HxW); run folder {}",
        splits.train.len(),
        splits.val.len(),
        splits.test.len(),
        config.data.lr_size[0],
        config.data.lr_size[1],
        config.hr_size()[0],
        config.hr_size()[1],
        run_dir.display()
    );
    let outcome = ds2f::train::train(
        &config,
        &splits,
        &run_dir,
        &devices,
        args.resume.is_some(),
        &mut Progress::new(),
    )?;
    if let Some((score, epoch)) = outcome.best {
        eprintln!("best validation IoU {score:.4} at epoch {epoch}");
    }
    eprintln!("run folder: {}", run_dir.display());
    Ok(outcome)
}
