//! `ds2f demo`: the whole pipeline on bundled synthetic data in a few minutes: generate
//! fundus-like images with exact vessel masks, train (configs/demo.toml, built in), evaluate
//! on the held-out synthetic test images, predict with overlays.
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ds2f::config::ExperimentConfig;

/// The demo's config, compiled in so that the binary runs from any folder.
const DEMO_CONFIG: &str = include_str!("../../../configs/demo.toml");
/// A file marking a folder as made by the demo (so a rerun may replace it).
const MARKER: &str = ".ds2f-demo";

/// Arguments of `demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Output folder (replaced if it holds an earlier demo).
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Override a demo config value, e.g. `--set train.epochs=5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Number of synthetic training images (plus 6 test images).
    #[arg(long, default_value_t = 24)]
    pub images: usize,
    /// Device: cpu (default), wgpu[:N], cuda[:N], libtorch, libtorch-cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Runs `demo`.
pub fn run(args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    if args.out.exists() {
        if !args.out.join(MARKER).exists() {
            bail!(
                "{} exists and was not made by `ds2f demo`; choose another --out",
                args.out.display()
            );
        }
        std::fs::remove_dir_all(&args.out)
            .with_context(|| format!("cannot replace {}", args.out.display()))?;
    }
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join(MARKER), "made by ds2f demo\n")?;

    let out = std::path::absolute(&args.out)?;
    let data = out.join("data");
    eprintln!(
        "generating {} + 6 synthetic fundus images in {}",
        args.images,
        data.display()
    );
    ds2f_data::synth::write_dataset(&data, args.images, 256, 256, 2024, "train_")?;
    ds2f_data::synth::write_dataset(&data, 6, 256, 256, 9_000_000, "test_")?;

    let mut overrides = vec![
        format!("data.root={:?}", data.display().to_string()),
        format!("run.dir={:?}", out.display().to_string()),
        "run.name=\"run\"".to_string(),
    ];
    overrides.extend(args.overrides.iter().cloned());
    let config = ExperimentConfig::parse(DEMO_CONFIG, &overrides, "configs/demo.toml")?;
    let config_path = out.join("demo.toml");
    std::fs::write(&config_path, config.to_toml())?;

    let outcome = crate::train::run(crate::train::Args {
        config: Some(config_path),
        overrides: Vec::new(),
        resume: None,
        device: Some(args.device.clone()),
    })?;
    let run = outcome.run_dir;
    crate::evaluate::run(crate::evaluate::Args {
        run: Some(run.clone()),
        predictions: None,
        data: None,
        layout: crate::choices::LayoutChoice::Auto,
        config: None,
        classes: None,
        include: Vec::new(),
        name: None,
        output: None,
        save_predictions: false,
        palette: crate::choices::PaletteChoice::Paper,
        no_report: false,
        save_sr: false,
        checkpoint: crate::choices::CheckpointChoice::Best,
        device: args.device.clone(),
    })?;
    let predictions = run.join("predictions");
    crate::predict::run(crate::predict::Args {
        run: run.clone(),
        input: data.clone(),
        output: predictions.clone(),
        probabilities: false,
        overlay: true,
        checkpoint: crate::choices::CheckpointChoice::Best,
        device: args.device,
        include: vec!["test_*".into()],
    })?;
    println!(
        "\ndemo finished in {:.0}s. Run folder: {}",
        started.elapsed().as_secs_f64(),
        run.display()
    );
    println!("  metrics per epoch: {}", run.join("metrics.csv").display());
    println!("  training curves:   {}", run.join("curves.png").display());
    println!(
        "  test metrics:      {}",
        run.join("evaluation/test/summary.json").display()
    );
    println!(
        "  predictions and overlays (truth green, prediction red, both yellow): {}",
        predictions.display()
    );
    println!("  checkpoints:       {}", run.join("checkpoints").display());
    Ok(())
}
