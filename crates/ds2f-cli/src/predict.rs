//! `ds2f predict --run RUN --input DIR|FILE --output DIR [--probabilities] [--overlay]`:
//! masks at each input's original size.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ds2f::config::ExperimentConfig;
use ds2f::infer::Predictor;
use ds2f::report::overlay::{labelled_overlay, mask_image};
use ds2f_data::io::{load_rgb, save_png_atomic};
use ds2f_data::layout::Item;
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
    /// Also write class probabilities as 16-bit PNGs (0..65535): `<name>_prob.png` (the
    /// foreground) for two classes, one `<name>_prob_<class>.png` per class otherwise.
    #[arg(long)]
    pub probabilities: bool,
    /// Also write an overlay (`<name>_overlay.png`). Two classes: with a mask beside the image,
    /// truth green, prediction red, both yellow (the paper's Fig. 5); more classes: each
    /// predicted class in its colour (EX red, HE green, MA blue, SE pink, as Fig. 6) with a
    /// legend.
    #[arg(long)]
    pub overlay: bool,
    /// Only images whose name matches one of these patterns (`*`, `?`).
    #[arg(long)]
    pub include: Vec<String>,
    /// Checkpoint to use: best or last.
    #[arg(long, default_value = "best")]
    pub checkpoint: crate::choices::CheckpointChoice,
    /// Device: cpu (default), wgpu[:N], cuda[:N], libtorch, libtorch-cuda[:N].
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The images to predict: one file, or every image of a folder (masks not required).
pub fn inputs(input: &Path) -> Result<Vec<Item>> {
    if input.is_file() {
        let name = input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        return Ok(vec![Item {
            name,
            image: input.to_path_buf(),
            mask: None,
            fov: None,
            class_masks: None,
        }]);
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
    Ok(items)
}

/// A 16-bit PNG of probabilities in [0, 1] (0..65535).
fn probability_png(p: &[f32], w: u32, h: u32) -> ImageBuffer<Luma<u16>, Vec<u16>> {
    let p: Vec<u16> = p.iter().map(|&v| (v * 65535.0).round() as u16).collect();
    ImageBuffer::from_raw(w, h, p).expect("one probability per pixel")
}

/// A file-name-safe form of a class name (`traffic light` → `traffic_light`).
fn file_part(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Runs `predict`.
pub fn run(args: Args) -> Result<()> {
    let device = ds2f::device::select(&args.device)?;
    let predictor = Predictor::from_run(&args.run, args.checkpoint.name(), &device)?;
    let config = ExperimentConfig::load(&args.run.join("config.toml"), &[])
        .with_context(|| format!("{} is not a run folder", args.run.display()))?;
    let class_names = ds2f::dataset::class_names(&config.data, config.model.num_classes);
    let patterns: Vec<glob::Pattern> = args
        .include
        .iter()
        .map(|p| glob::Pattern::new(p).with_context(|| format!("--include {p}")))
        .collect::<Result<_>>()?;
    let items: Vec<_> = inputs(&args.input)?
        .into_iter()
        .filter(|i| patterns.is_empty() || patterns.iter().any(|p| p.matches(&i.name)))
        .collect();
    if items.is_empty() {
        bail!("{}: no images to predict", args.input.display());
    }
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    for item in &items {
        let (name, path) = (&item.name, &item.image);
        let started = std::time::Instant::now();
        let image = load_rgb(path)?;
        let (w, h) = image.dimensions();
        let probs = predictor.probabilities(&image)?;
        let (labels, planes) = probs.at_size(w as usize, h as usize);
        let out = args.output.join(format!("{name}.png"));
        save_png_atomic(&out, &mask_image(&labels, probs.classes, w, h))?;
        if args.probabilities {
            if probs.classes == 2 {
                let png = probability_png(&planes[1], w, h);
                save_png_atomic(args.output.join(format!("{name}_prob.png")), &png)?;
            } else {
                for (plane, class) in planes.iter().zip(&class_names) {
                    let file = format!("{name}_prob_{}.png", file_part(class));
                    save_png_atomic(args.output.join(file), &probability_png(plane, w, h))?;
                }
            }
        }
        if args.overlay {
            // The ground truth, when the input folder has it, at the image's size.
            let truth = if item.has_labels() {
                let kind = ds2f::dataset::mask_kind(probs.classes);
                Some(ds2f_data::labels::load_label_map(item, kind, (w, h))?)
            } else {
                None
            };
            let o = labelled_overlay(
                &image,
                &labels,
                truth.as_ref().map(|t| t.as_raw().as_slice()),
                &class_names,
            )
            .map_err(|e| anyhow::anyhow!("{name}: overlay: {e}"))?;
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
