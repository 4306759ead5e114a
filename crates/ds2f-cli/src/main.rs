//! `ds2f`: train, evaluate and predict high-resolution segmentations from low-resolution
//! images. One file per verb; each verb is a thin layer over the library.
mod bench;
mod check_data;
mod choices;
mod demo;
mod evaluate;
mod experiment;
mod export;
mod import;
mod info;
mod predict;
mod progress;
mod train;

use clap::{Parser, Subcommand};

// jemalloc is the process's `malloc` (the `unprefixed` build of tikv-jemalloc-sys exports the C
// allocation functions; Rust's default allocator and libtorch's C++ both call them), told never
// to return freed pages to the kernel. Every training step allocates the same tensors again,
// many of them tens of megabytes; glibc's `malloc` serves each block over 32 MB with a fresh
// `mmap` and unmaps it when freed, so every step page-faulted its feature maps back in (a third
// of a U-Net step's time on the 2-core dev VM; 17.7 % of a libtorch DS2F step in the kernel's
// page-fault path). jemalloc's size classes keep the blocks for reuse. It replaced a hand-written
// size-exact block cache after an A/B on the DS2F step and at the HRF size: as fast, and
// 15 % / 8 % less peak memory (docs/performance.md, "Allocator"). `MALLOC_CONF` in the
// environment overrides these options (e.g. `dirty_decay_ms:10000` returns pages after 10 s).
#[cfg(not(target_env = "msvc"))]
use tikv_jemalloc_sys as _;

/// jemalloc's options, read before `main` (jemalloc's documented `malloc_conf` symbol).
#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[unsafe(no_mangle)]
static malloc_conf: Option<&'static std::ffi::c_char> =
    Some(unsafe { &*c"dirty_decay_ms:-1,muzzy_decay_ms:-1".as_ptr() });

/// DS2F: high-resolution segmentation from low-resolution medical images.
#[derive(Parser)]
#[command(name = "ds2f", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate synthetic fundus images, train a small model for a few minutes, evaluate and
    /// predict: the whole pipeline on the bundled default data.
    Demo(demo::Args),
    /// Train a model from a TOML experiment config.
    Train(train::Args),
    /// Evaluate a trained run on its test split or another folder, at the original resolution.
    Evaluate(evaluate::Args),
    /// Predict masks for new images at their original size.
    Predict(predict::Args),
    /// Run an experiment file: every variant on every fold or repeat (skipping finished
    /// runs, resuming killed ones), then mean ± std tables with paired tests and figures.
    Experiment(experiment::Args),
    /// Print parameters and GMACs of a config's inference graph.
    Info(info::Args),
    /// Check every image, mask and FOV of a data folder and list all problems.
    CheckData(check_data::Args),
    /// Time a training step or an inference (compare with bench/pytorch_step.py).
    Bench(bench::Args),
    /// Export a run's inference weights with PyTorch's names (safetensors + model card).
    Export(export::Args),
    /// Build a run folder from the reference implementation's (imed_vision) weights.
    Import(import::Args),
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Demo(a) => demo::run(a),
        Command::Train(a) => train::run(a).map(|_| ()),
        Command::Evaluate(a) => evaluate::run(a).map(|_| ()),
        Command::Predict(a) => predict::run(a),
        Command::Experiment(a) => experiment::run(a),
        Command::Info(a) => info::run(a),
        Command::Bench(a) => bench::run(a),
        Command::CheckData(a) => check_data::run(a),
        Command::Export(a) => export::run(a),
        Command::Import(a) => import::run(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The chain of causes on one line, without a backtrace: errors name the file or
            // key, which is what a user needs.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
