//! `ds2f bench`: times one training step (forward of every output of the framework, all its
//! losses, backward, SGD step) or one inference (the segmentation stream, identical for every
//! framework) on random data, and prints one JSON line in the format of
//! `bench/pytorch_step.py`, so that `bench/compare.sh` can report the ratio.
use std::time::Instant;

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::Distribution;
use ds2f::config::ExperimentConfig;
use ds2f::model::{Framework, ModelConfig};
use ds2f::train::Objective;
use ds2f::train::parallel::forward_backward;
use ds2f_data::loader::Batch;

/// What `bench` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// One optimiser step of batch --batch.
    Train,
    /// One forward pass, batch 1.
    Infer,
    /// One 3×3 convolution with ds2f's kernels, forward and backward.
    Conv,
    /// The same convolution with burn's stock implementation.
    ConvBurn,
}

impl Mode {
    /// The name in the JSON line (`train`, `infer`, `conv`, `conv-burn`).
    fn name(self) -> &'static str {
        match self {
            Mode::Train => "train",
            Mode::Infer => "infer",
            Mode::Conv => "conv",
            Mode::ConvBurn => "conv-burn",
        }
    }
}

/// Arguments of `bench`.
#[derive(clap::Args)]
pub struct Args {
    /// `train` (one optimiser step, batch --batch), `infer` (one forward, batch 1) or `conv`
    /// (one 3×3 convolution, --base channels in and out, no bias, on a --batch × --base × H × W
    /// input: forward, then the backward of the output's sum to the input and the weight) with
    /// ds2f's kernels, `conv-burn` the same with burn's stock convolution.
    #[arg(long, value_enum, default_value = "train")]
    pub mode: Mode,
    /// Base width of the U-Net.
    #[arg(long, default_value_t = 64)]
    pub base: usize,
    /// Batch size (train mode).
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// LR input size, HxW.
    #[arg(long, default_value = "256x256")]
    pub lr_size: String,
    /// Up-scale rate r.
    #[arg(long, default_value_t = 2)]
    pub r: usize,
    /// Timed steps (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Framework (its `model.framework` name).
    #[arg(long, default_value = "unet_inter")]
    pub framework: crate::choices::FrameworkChoice,
    /// Further model settings as config overrides, e.g. `--set model.sr_head_widths=[16,8]`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Device: cpu (default), wgpu[:N], cuda[:N], libtorch, libtorch-cuda[:N]; in train mode a comma-separated list
    /// (`cuda:0,cuda:1`) splits the batch across the devices as `train.devices` does.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Peak resident memory of this process in MB (Linux `VmHWM`), if known.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs `bench`.
pub fn run(args: Args) -> Result<()> {
    let devices = args
        .device
        .split(',')
        .map(|name| ds2f::device::select(name.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    if devices.len() > 1 && (args.mode != Mode::Train || devices.len() > args.batch) {
        anyhow::bail!("--device: several devices only in train mode, at most --batch of them");
    }
    let device = devices[0].clone();
    let [h, w] = crate::info::parse_size(&args.lr_size)?;
    let framework: Framework = args.framework.0;
    let model_config = ModelConfig {
        framework,
        base: args.base,
        upscale: args.r,
        ..ExperimentConfig::parse("", &args.overrides, "--set")?.model
    };
    let train = match args.mode {
        Mode::Train => true,
        Mode::Infer => false,
        Mode::Conv => return conv_bench(&args, &device, h, w, true),
        Mode::ConvBurn => return conv_bench(&args, &device, h, w, false),
    };
    let mut times = Vec::with_capacity(args.steps);
    if train {
        // The step of `ds2f train`: one device, or the batch split across several.
        let devices: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
        let device = devices[0].clone();
        let mut model = model_config.init_train(&device);
        let config = ExperimentConfig {
            model: model_config.clone(),
            ..ExperimentConfig::default()
        };
        let mut optim = ds2f::train::optimizer(&config);
        // The training's objective (ESPNetV2's auxiliary term included).
        let objective = Objective::from_config(&config);
        let r = model_config.effective_upscale();
        for i in 0..args.warmup + args.steps {
            let batch = random_batch(args.batch, h, w, r);
            let started = Instant::now();
            let step = forward_backward(&model, &batch, &devices, &objective)?;
            model = optim.step(0.01, model, step.grads);
            // Wait for the step to finish (asynchronous backends).
            let _ = model.seg_head.conv.weight.val().into_data();
            if i >= args.warmup {
                times.push(started.elapsed().as_secs_f64());
            }
        }
    } else {
        let model = model_config.init(&device);
        for i in 0..args.warmup + args.steps {
            let x = Tensor::<4>::random([1, 3, h, w], Distribution::Uniform(-1.0, 1.0), &device);
            let started = Instant::now();
            let _ = model.forward(x).into_data();
            if i >= args.warmup {
                times.push(started.elapsed().as_secs_f64());
            }
        }
    }
    let median = median(&mut times);
    let line = serde_json::json!({
        "framework": "ds2f-burn",
        "device": args.device,
        "mode": args.mode.name(),
        "model": args.framework.0.name(),
        "base": args.base,
        "batch": if train { args.batch } else { 1 },
        "lr_size": [h, w],
        "r": args.r,
        "sr_head_widths": model_config.sr_head_widths,
        "hidden": model_config.shared_feature.hidden,
        "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "median_s": round4(median),
        "min_s": round4(times[0]),
        "steps": args.steps,
        "peak_rss_mb": peak_rss_mb().map(|m| (m * 10.0).round() / 10.0),
    });
    println!("{line}");
    Ok(())
}

/// A batch of uniform random LR/HR images in [−1, 1] and random binary HR masks.
fn random_batch(n: usize, h: usize, w: usize, r: usize) -> Batch {
    let cpu = Device::flex();
    let uniform = |shape: [usize; 4]| -> Vec<f32> {
        Tensor::<4>::random(shape, Distribution::Uniform(-1.0, 1.0), &cpu)
            .into_data()
            .iter::<f32>()
            .collect()
    };
    let (hh, hw) = (h * r, w * r);
    let mask = uniform([n, 1, hh, hw])
        .into_iter()
        .map(|v| u8::from(v > 0.0))
        .collect();
    Batch {
        lr: uniform([n, 3, h, w]),
        hr: uniform([n, 3, hh, hw]),
        mask,
        fov: None,
        names: (0..n).map(|i| format!("random{i}")).collect(),
        n,
        lr_size: (h as u32, w as u32),
        hr_size: (hh as u32, hw as u32),
    }
}

/// Sorts `times` and returns their median.
fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// `bench --mode conv` (issue #4 d): one 3×3 convolution forward and backward, with GFLOP/s
/// counted as 2 FLOPs per multiply-accumulate and the backward as twice the forward (input and
/// weight gradients), as `bench/pytorch_step.py --mode conv` counts them.
fn conv_bench(
    args: &Args,
    device: &burn::tensor::Device,
    h: usize,
    w: usize,
    ours: bool,
) -> Result<()> {
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    let device = device.clone().autodiff();
    let c = args.base;
    let conv = Conv2dConfig::new([c, c], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(&device);
    let (mut forward, mut total) = (Vec::new(), Vec::new());
    for i in 0..args.warmup + args.steps {
        let x = Tensor::<4>::random(
            [args.batch, c, h, w],
            Distribution::Normal(0.0, 1.0),
            &device,
        )
        .require_grad();
        let started = Instant::now();
        let out = if ours {
            ds2f::ops::conv2d_module(&conv, x.clone())
        } else {
            conv.forward(x.clone())
        };
        // Wait for the forward to finish (asynchronous backends).
        let _ = out.clone().slice([0..1, 0..1, 0..1, 0..1]).into_data();
        let forward_s = started.elapsed().as_secs_f64();
        let grads = out.sum().backward();
        let gx = x.grad(&grads).expect("input gradient");
        let gw = conv.weight.grad(&grads).expect("weight gradient");
        let _ = (gx.into_data(), gw.into_data());
        if i >= args.warmup {
            forward.push(forward_s);
            total.push(started.elapsed().as_secs_f64());
        }
    }
    let flops = 2.0 * (args.batch * c * c * 9 * h * w) as f64;
    let min_total = total.iter().copied().fold(f64::INFINITY, f64::min);
    let (f, t) = (median(&mut forward), median(&mut total));
    let line = serde_json::json!({
        "framework": "ds2f-burn",
        "device": args.device,
        "model": "conv3x3",
        "mode": args.mode.name(),
        "base": c,
        "batch": args.batch,
        "lr_size": [h, w],
        "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "median_s": round4(t),
        "min_s": round4(min_total),
        "forward_s": round4(f),
        "backward_s": round4(t - f),
        "gflops_forward": (flops / f / 1e9 * 10.0).round() / 10.0,
        "gflops_total": (3.0 * flops / t / 1e9 * 10.0).round() / 10.0,
        "steps": args.steps,
        "peak_rss_mb": peak_rss_mb().map(|m| (m * 10.0).round() / 10.0),
    });
    println!("{line}");
    Ok(())
}
