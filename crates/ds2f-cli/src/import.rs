//! `ds2f import --config FILE --weights STATE_DICT --output RUN [--set key=value]...`: a run
//! folder (config.toml, checkpoints/best.ckpt) from the reference implementation's weights (a
//! `.pth` or `.safetensors` state dict of imed_vision's U-Net DS2F), ready for `evaluate`,
//! `predict` and `export`; prints (and writes to RUN/import.txt) the matched, missing and
//! unexpected keys.
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ds2f::checkpoint::{Checkpoint, TrainState};
use ds2f::config::ExperimentConfig;
use ds2f::export::import_reference;
use ds2f::train::RunFolder;

/// Arguments of `import`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment config (TOML) describing the model the weights belong to (`[model]`) and the
    /// data it is evaluated on.
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config value, e.g. `--set model.base=64` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// The state dict: `torch.save(model.state_dict())` (`.pth`, `.pt`) or `.safetensors`.
    #[arg(long)]
    pub weights: PathBuf,
    /// The run folder to create.
    #[arg(long)]
    pub output: PathBuf,
}

/// Runs `import`.
pub fn run(args: Args) -> Result<()> {
    let config = ExperimentConfig::load(&args.config, &args.overrides)?;
    let run = RunFolder::new(&args.output);
    if run.best_checkpoint().exists() {
        bail!(
            "{} already holds a model ({}); choose another --output",
            args.output.display(),
            run.best_checkpoint().display()
        );
    }
    let device = ds2f::device::select("cpu")?;
    let mut model = config.model.init_train(&device);
    let report = import_reference(&mut model, &config.model, &args.weights)?;
    println!("{report}");
    run.create(&config)?;
    let best = run.best_checkpoint();
    Checkpoint::save(&best, &TrainState::default(), &model.into_segmenter(), None)?;
    let record = args.output.join("import.txt");
    ds2f_data::io::write_atomic(&record, format!("{report}\n").as_bytes())
        .with_context(|| record.display().to_string())?;
    println!("run folder: {} ({})", args.output.display(), best.display());
    Ok(())
}
