//! `ds2f`: train, evaluate and predict high-resolution segmentations from low-resolution
//! images. One file per verb; each verb is a thin layer over the library.
mod alloc_cache;
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

use alloc_cache::CachingAllocator;
use clap::{Parser, Subcommand};

/// Large freed tensors are kept for the next step instead of going back to the kernel
/// (alloc_cache.rs): up to an eighth of the machine's memory (at most 4 GiB);
/// `DS2F_ALLOC_CACHE_MB` sets the budget, 0 turns the cache off.
#[global_allocator]
static ALLOC: CachingAllocator = CachingAllocator::new();

// In `tch` builds jemalloc is the process's `malloc` (the `unprefixed` build of
// tikv-jemalloc-sys exports the C allocation functions, which libtorch's then bind to), told never
// to return freed pages to the kernel. libtorch allocates every CPU tensor with `malloc`; glibc's
// serves each block over 32 MB with a fresh `mmap` and unmaps it when freed, so every training
// step page-faulted its feature maps back in: 17.7 % of a DS2F step's CPU samples were in the
// kernel, mostly its page-fault path (perf; docs/performance.md "libtorch build"). jemalloc's size
// classes reuse the blocks without the fragmentation of glibc's heap (`M_MMAP_MAX = 0` gave the
// same speed with 13–38 % more peak memory). The same idea as `ALLOC` above, which libtorch's C++ never
// calls. `MALLOC_CONF` in the environment overrides these options.
#[cfg(feature = "tch")]
use tikv_jemalloc_sys as _;

/// jemalloc's options, read before `main` (jemalloc's documented `malloc_conf` symbol).
#[cfg(feature = "tch")]
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

/// The allocator cache budget in bytes: `DS2F_ALLOC_CACHE_MB`, else MemTotal / 8 within
/// [256 MiB, 4 GiB] (1 GiB where /proc/meminfo cannot be read).
fn alloc_cache_budget() -> usize {
    if let Some(mb) = std::env::var("DS2F_ALLOC_CACHE_MB")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return mb << 20;
    }
    let total_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        line.split_whitespace().nth(1)?.parse::<usize>().ok()
    });
    total_kb.map_or(1 << 30, |kb| ((kb << 10) / 8).clamp(256 << 20, 4 << 30))
}

fn main() -> std::process::ExitCode {
    ALLOC.set_budget(alloc_cache_budget());
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
