//! `ds2f export --run RUN --format safetensors|onnx --output FILE [--checkpoint best|last]
//! [--check-image IMAGE]`: the inference graph's weights under PyTorch's names (safetensors) or
//! the whole inference graph (ONNX), with the run's config and test metrics as metadata, and a
//! model card (`README.md`) beside FILE.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use ds2f::checkpoint::Checkpoint;
use ds2f::config::ExperimentConfig;
use ds2f::export::{
    ExportInfo, StateTensor, TensorKind, model_card, torch_state_dict, utc_date, write_onnx,
    write_state_dict,
};
use ds2f::infer::Predictor;
use ds2f_data::io::load_rgb;

/// Export formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A `.safetensors` state dict with PyTorch's parameter names.
    Safetensors,
    /// The inference graph (any backbone + the seg head's bilinear steps to ×r + softmax) as
    /// ONNX, opset 17, with dynamic batch and spatial sizes; input `input`, output
    /// `probabilities`.
    Onnx,
}

/// Arguments of `export`.
#[derive(clap::Args)]
pub struct Args {
    /// A run folder (with config.toml and checkpoints/).
    #[arg(long)]
    pub run: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "safetensors")]
    pub format: Format,
    /// The file to write; the model card goes beside it as README.md.
    #[arg(long)]
    pub output: PathBuf,
    /// Checkpoint to export: best or last (the inference graph of either).
    #[arg(long, default_value = "best")]
    pub checkpoint: crate::choices::CheckpointChoice,
    /// Also write `<output stem>.check.safetensors`: this image's network input (`input`,
    /// `[1, 3, h, w]`) and ds2f's HR probabilities (`probabilities`, `[1, C, rh, rw]`), to check
    /// another framework's forward pass against (bench/export_check.py).
    #[arg(long, value_name = "IMAGE")]
    pub check_image: Option<PathBuf>,
}

/// Runs `export`.
pub fn run(args: Args) -> Result<()> {
    let config = ExperimentConfig::load(&args.run.join("config.toml"), &[])
        .with_context(|| format!("{} is not a run folder", args.run.display()))?;
    let ckpt_path = args
        .run
        .join("checkpoints")
        .join(format!("{}.ckpt", args.checkpoint.name()));
    let epoch = Checkpoint::load(&ckpt_path)?.state.epoch;
    let device = ds2f::device::select("cpu")?;
    let predictor = Predictor::new(&config, &ckpt_path, &device)?;
    let summary_path = args
        .run
        .join("evaluation")
        .join("test")
        .join("summary.json");
    let test_summary = match std::fs::read_to_string(&summary_path) {
        Ok(text) => Some(
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not JSON", summary_path.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => bail!("{}: {e}", summary_path.display()),
    };
    let info = ExportInfo {
        config,
        checkpoint: args.checkpoint.name().to_string(),
        epoch,
        test_summary,
        date: utc_date(),
    };
    match args.format {
        Format::Safetensors => {
            let tensors = torch_state_dict(predictor.model(), &ckpt_path)?;
            write_state_dict(&args.output, &tensors, &info.metadata())?;
            println!(
                "{}: {} tensors ({} parameters) from {}",
                args.output.display(),
                tensors.len(),
                parameter_count(&tensors),
                ckpt_path.display()
            );
        }
        Format::Onnx => {
            let metadata = info.metadata().into_iter().collect();
            write_onnx(&args.output, predictor.model(), metadata)?;
            println!(
                "{}: ONNX opset {} (input `{}`, output `{}`) from {}",
                args.output.display(),
                ds2f::export::onnx::OPSET,
                ds2f::export::onnx::INPUT,
                ds2f::export::onnx::OUTPUT,
                ckpt_path.display()
            );
        }
    }
    let card_path = card_path(&args.output);
    let file_name = args
        .output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    ds2f_data::io::write_atomic(&card_path, model_card(&info, &file_name).as_bytes())?;
    println!("model card: {}", card_path.display());
    if let Some(image) = &args.check_image {
        let path = write_check(&predictor, image, &args.output, &device)?;
        println!("check data: {}", path.display());
    }
    Ok(())
}

/// `README.md` in the output's folder.
fn card_path(output: &Path) -> PathBuf {
    output
        .parent()
        .map(|p| p.join("README.md"))
        .unwrap_or_else(|| PathBuf::from("README.md"))
}

/// Elements of the float32 tensors (parameters and BN statistics).
fn parameter_count(tensors: &[StateTensor]) -> usize {
    tensors
        .iter()
        .filter(|t| t.kind == TensorKind::F32)
        .map(|t| t.shape.iter().product::<usize>())
        .sum()
}

/// Writes the network input of `image` and ds2f's HR probabilities beside `output`.
fn write_check(
    predictor: &Predictor,
    image: &Path,
    output: &Path,
    device: &Device,
) -> Result<PathBuf> {
    let rgb = load_rgb(image)?;
    let [h, w] = predictor.lr_size();
    let input = ds2f_data::pair::lr_input(&rgb, (h as u32, w as u32))?;
    let x = Tensor::<4>::from_data(TensorData::new(input.clone(), [1, 3, h, w]), device);
    let logits = predictor.model().forward(x); // [1, C, rh, rw]
    let dims = logits.dims();
    let probs: Vec<f32> = burn::tensor::activation::softmax(logits, 1)
        .into_data()
        .iter::<f32>()
        .collect();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let tensors = [
        StateTensor {
            name: "input".into(),
            kind: TensorKind::F32,
            shape: vec![1, 3, h, w],
            data: bytes(&input),
        },
        StateTensor {
            name: "probabilities".into(),
            kind: TensorKind::F32,
            shape: dims.to_vec(),
            data: bytes(&probs),
        },
    ];
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let path = output.with_file_name(format!("{stem}.check.safetensors"));
    let metadata = BTreeMap::from([("image".to_string(), image.display().to_string())]);
    write_state_dict(&path, &tensors, &metadata)?;
    Ok(path)
}
