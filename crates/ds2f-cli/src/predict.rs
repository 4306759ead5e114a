//! `ds2f predict --run RUN --input DIR|FILE --output DIR [--probabilities] [--overlay]`:
//! masks at each input's original size.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ds2f::infer::Predictor;
use ds2f::report::overlay::{mask_image, overlay};
use ds2f_data::io::{load_rgb, save_png_atomic};
use image::{ImageBuffer, Luma};

/// Arguments of `predict`.
#[derive(clap::Args)]
pub struct Args {
    /// A run folder (with config.toml and checkpoints/).
    #[arg(long)]
    pub run: PathBuf,
    /// An image, or a folder of images (in any supported layout, or just image files).
    #[arg(long)]
    pub input: PathBuf,
    /// Output folder (created).
    #[arg(long)]
    pub output: PathBuf,
    /// Also write the foreground probability as a 16-bit PNG (`<name>_prob.png`, 0..65535).
    #[arg(long)]
    pub probabilities: bool,
    /// Also write an overlay (`<name>_overlay.png`; with --masks: truth green, prediction red,
    /// both yellow, as the paper's Fig. 5).
    #[arg(long)]
    pub overlay: bool,
    /// Only images whose name matches one of these patterns (`*`, `?`).
    #[arg(long)]
    pub include: Vec<String>,
    /// Checkpoint to use: best or last.
    #[arg(long, default_value = "best")]
    pub checkpoint: String,
    /// Device: cpu (default), wgpu[:N], cuda[:N], libtorch, libtorch-cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The images to predict: one file, or every image of a folder (masks not required).
pub fn inputs(input: &Path) -> Result<Vec<(String, PathBuf, Option<PathBuf>)>> {
    if input.is_file() {
        let name = input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        return Ok(vec![(name, input.to_path_buf(), None)]);
    }
    if !input.is_dir() {
        bail!("{}: no such file or folder", input.display());
    }
    let items = match ds2f::dataset::discover_items(input, "auto", None, false) {
        Ok(items) => items,
        // A plain folder of images: read it as the `images/` folder of the generic layout.
        Err(_) => ds2f_data::layout::images_in(input)
            .with_context(|| format!("{}: no images found", input.display()))?,
    };
    Ok(items
        .into_iter()
        .map(|i| (i.name, i.image, i.mask))
        .collect())
}

/// Runs `predict`.
pub fn run(args: Args) -> Result<()> {
    let device = ds2f::device::select(&args.device)?;
    let predictor = Predictor::from_run(&args.run, &args.checkpoint, &device)?;
    let patterns: Vec<glob::Pattern> = args
        .include
        .iter()
        .map(|p| glob::Pattern::new(p).with_context(|| format!("--include {p}")))
        .collect::<Result<_>>()?;
    let items: Vec<_> = inputs(&args.input)?
        .into_iter()
        .filter(|(name, _, _)| patterns.is_empty() || patterns.iter().any(|p| p.matches(name)))
        .collect();
    if items.is_empty() {
        bail!("{}: no images to predict", args.input.display());
    }
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    for (name, path, mask) in &items {
        let started = std::time::Instant::now();
        let image = load_rgb(path)?;
        let (w, h) = image.dimensions();
        let probs = predictor.probabilities(&image)?;
        let (labels, fg) = probs.at_size(w as usize, h as usize);
        let out = args.output.join(format!("{name}.png"));
        save_png_atomic(&out, &mask_image(&labels, probs.classes, w, h))?;
        if args.probabilities {
            let p: Vec<u16> = fg[0]
                .iter()
                .map(|&v| (v * 65535.0).round() as u16)
                .collect();
            let img: ImageBuffer<Luma<u16>, Vec<u16>> =
                ImageBuffer::from_raw(w, h, p).expect("size");
            save_png_atomic(args.output.join(format!("{name}_prob.png")), &img)?;
        }
        if args.overlay {
            let truth = match mask {
                Some(m) => {
                    let t = ds2f_data::io::load_mask(m, ds2f::dataset::mask_kind(probs.classes))?;
                    if t.dimensions() != (w, h) {
                        bail!(
                            "{}: mask is {}x{}, its image {} is {w}x{h}",
                            m.display(),
                            t.width(),
                            t.height(),
                            path.display()
                        );
                    }
                    Some(t)
                }
                None => None,
            };
            let o = overlay(
                &image,
                &labels,
                truth.as_ref().map(|t| t.as_raw().as_slice()),
            );
            save_png_atomic(args.output.join(format!("{name}_overlay.png")), &o)?;
        }
        eprintln!(
            "{name}: {w}x{h} -> {} ({:.2}s)",
            out.display(),
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!("{} predictions in {}", items.len(), args.output.display());
    Ok(())
}
