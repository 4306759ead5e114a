//! `ds2f info --config FILE --input HxW`: parameters of the training graph by part, and
//! parameters and GMACs of the inference graph, counted as ptflops counts them (the paper's
//! "GFLOPs" column).
use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::prelude::Device;
use ds2f::config::ExperimentConfig;
use ds2f::model::complexity::{inference_macs, trainable_params};

/// Arguments of `info`.
#[derive(clap::Args)]
pub struct Args {
    /// Experiment config (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// LR input size as HxW (default: the config's data.lr_size).
    #[arg(long, value_name = "HxW")]
    pub input: Option<String>,
}

pub fn parse_size(s: &str) -> Result<[usize; 2]> {
    let (h, w) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("--input {s}: expected HxW, e.g. 584x876"))?;
    let p = |v: &str| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("--input {s}: `{v}` is not a positive size"))
    };
    Ok([p(h)?, p(w)?])
}

/// Runs `info`.
pub fn run(args: Args) -> Result<()> {
    let config = ExperimentConfig::load(&args.config, &args.overrides)?;
    let [h, w] = match &args.input {
        Some(s) => parse_size(s)?,
        None => config.data.lr_size,
    };
    let model = config.model.init(&Device::flex());
    let params = trainable_params(&model, "");
    let macs = inference_macs(&config.model, h, w);
    let r = config.model.effective_upscale();
    println!(
        "model: {:?} on {:?}{}, {} classes, r = {r}",
        config.model.framework,
        config.model.backbone,
        if config.model.backbone == ds2f::model::Backbone::Unet {
            format!(", base {}", config.model.base)
        } else {
            String::new()
        },
        config.model.num_classes
    );
    println!(
        "input (LR) {h}x{w} -> output (HR) {}x{} (HxW)",
        h * r,
        w * r
    );
    println!("parameters (inference graph): {params}");
    let train_model = config.model.init_train(&Device::flex());
    let part = |p: &str| trainable_params(&train_model, p);
    let mut parts = format!(
        "encoder {}, decoder {}, seg_head {}",
        part("encoder"),
        part("decoder"),
        part("seg_head")
    );
    if train_model.sr_branch.is_some() {
        parts += &format!(
            ", sr_branch.decoder {}, sr_branch.head {}",
            part("sr_branch.decoder"),
            part("sr_branch.head")
        );
    }
    if train_model.shared_feature.is_some() {
        parts += &format!(", shared_feature {}", part("shared_feature"));
    }
    println!(
        "parameters (training graph): {} = {parts}",
        trainable_params(&train_model, "")
    );
    println!(
        "GMACs (inference, as ptflops counts this model): {:.3}",
        macs.total() as f64 / 1e9
    );
    if config.model.backbone == ds2f::model::Backbone::Unet {
        // A quirk of the authors' U-Net only (one ReLU module shared by every block).
        println!(
            "GMACs as the paper's \"GFLOPs\" column counts them (ptflops on the authors' code, \
             whose shared ReLU is counted 35 times): {:.3}",
            macs.paper_total() as f64 / 1e9
        );
    }
    println!(
        "  conv {:.3}, batch norm {:.3}, ReLU {:.3}, max-pool {:.3}, upsample {:.3}",
        macs.conv as f64 / 1e9,
        macs.batch_norm as f64 / 1e9,
        macs.relu as f64 / 1e9,
        macs.pool as f64 / 1e9,
        macs.upsample as f64 / 1e9
    );
    Ok(())
}
