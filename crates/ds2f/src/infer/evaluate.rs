//! Evaluation at the original resolution (SPEC §5): HR probabilities brought to the mask's
//! size by nearest up-sampling, metrics pooled over the whole test set (the paper's way) and
//! per image (mean ± std), over the whole image (the paper's way) and inside the FOV.
//!
//! The same tables come from a folder of predictions made by any tool
//! ([`evaluate_predictions`]): masks (0/1 or 0/255), 8- or 16-bit probability maps, class-index
//! label maps, and ds2f's own `<name>.png` + `<name>_prob[_<class>].png`. Probabilities are
//! scored as they are stored, 16 bits ([`quantise_probability`]), in both ways, so that a run's
//! saved predictions score exactly the run's own evaluation.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ds2f_data::io::{LoadLimits, image_dimensions, load_dynamic, save_png_atomic};
use ds2f_data::layout::Item;
use ds2f_metrics::{
    ClassMean, Evaluation, EvaluationConfig, Metric, MetricsError, PrAccumulator, Summary,
};
use image::{DynamicImage, GenericImageView, GrayImage, ImageBuffer, Luma, RgbImage};
use serde::{Deserialize, Serialize};

use burn::prelude::*;

use crate::checkpoint::Checkpoint;
use crate::config::ExperimentConfig;
use crate::dataset::{load_item_with, mask_kind};
use crate::error::InferError;
use crate::infer::Predictor;
use crate::model::dual_stream::DualStream;
use crate::report::html::ImageCard;
use crate::report::overlay::{
    Palette, labelled_overlay, labelled_overlay_with, mask_image, worst_window,
};

/// What to write besides the metrics.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// Write each prediction (`<name>.png`, 0/255 for binary), its probabilities as 16-bit
    /// PNGs (`<name>_prob.png` of the foreground for two classes, `<name>_prob_<class>.png`
    /// per class otherwise, as `ds2f predict --probabilities`) and its overlay here.
    pub save_predictions: Option<PathBuf>,
    /// Crop each item to its FOV's bounding box first (`data.crop_to_fov` of the run).
    pub crop_to_fov: bool,
    /// Class names by id (tables, overlay legends, probability file names); empty: `class k`.
    pub class_names: Vec<String>,
    /// Which classes the headline metrics average (Cityscapes: all; otherwise foreground).
    pub class_mean: ClassMean,
    /// Write overlays, thumbnails and worst-error crops for the HTML report.
    pub report_images: Option<ReportImages>,
    /// Write the SR stream's image of each input (`<name>_sr.png`, at the HR output size) into
    /// this folder with this model.
    pub save_sr: Option<(SrStream, PathBuf)>,
}

/// The SR stream of a framework that has one (DS2F, U-Net+Inter+SR, ...), from a training
/// checkpoint (`last`; `best` holds the segmentation stream only): DS2F's other output.
#[derive(Debug, Clone)]
pub struct SrStream {
    model: DualStream,
    device: Device,
    lr_size: [usize; 2],
}

impl SrStream {
    /// Loads `run_dir/config.toml` and `run_dir/checkpoints/<which>.ckpt`, which must be a
    /// training checkpoint of a framework with an SR stream.
    pub fn from_run(run_dir: &Path, which: &str, device: &Device) -> Result<Self, InferError> {
        let config = ExperimentConfig::load(&run_dir.join("config.toml"), &[])?;
        let path = run_dir.join("checkpoints").join(format!("{which}.ckpt"));
        if !config.model.framework.has_sr_stream() {
            return Err(output_err(
                path,
                format!(
                    "the framework `{:?}` has no SR stream to save",
                    config.model.framework
                ),
            ));
        }
        let ckpt = Checkpoint::load(&path)?;
        if ckpt.optimizer.is_empty() {
            return Err(output_err(
                path,
                "an inference checkpoint (the segmentation stream only): the SR image needs \
                 the training checkpoint, `--checkpoint last`",
            ));
        }
        let model = ckpt.apply_model(config.model.init_train(device), &path)?;
        Ok(Self {
            model,
            device: device.clone(),
            lr_size: config.data.lr_size,
        })
    }

    /// The SR image of `image` (any size; the LR input is made as for the segmentation) at the
    /// HR output size, `[−1, 1]` mapped back to 0..255.
    pub fn image(&self, image: &RgbImage) -> Result<RgbImage, InferError> {
        let [h, w] = self.lr_size;
        let input = ds2f_data::pair::lr_input(image, (h as u32, w as u32))?;
        let x = Tensor::<4>::from_data(TensorData::new(input, [1, 3, h, w]), &self.device);
        let sr =
            self.model.forward_train(x).sr.ok_or_else(|| {
                output_err(PathBuf::from("checkpoint"), "the model has no SR stream")
            })?; // [1, 3, rh, rw]
        let [_, _, rh, rw] = sr.dims();
        let v: Vec<f32> = sr.into_data().iter::<f32>().collect();
        let plane = rh * rw;
        let byte = |x: f32| (x * 127.5 + 127.5).round().clamp(0.0, 255.0) as u8;
        Ok(RgbImage::from_fn(rw as u32, rh as u32, |x, y| {
            let i = y as usize * rw + x as usize;
            image::Rgb([byte(v[i]), byte(v[plane + i]), byte(v[2 * plane + i])])
        }))
    }
}

/// Metrics over the whole image and, where every image has a FOV mask, inside the FOV.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    /// Over every pixel of each image (the paper's protocol).
    pub whole_image: Summary,
    /// Inside the field of view only (absent when some image has no FOV mask).
    pub inside_fov: Option<Summary>,
}

/// What the figures and the HTML report of an evaluation need beyond the summaries: the
/// pooled PR and ROC curves per region and averaged class, `(class, accumulator)`, and the
/// overlay images written ([`EvalOptions::report_images`]).
#[derive(Debug, Clone, Default)]
pub struct EvalFigures {
    /// Whole image.
    pub whole_image: Vec<(usize, PrAccumulator)>,
    /// Inside the FOV (empty without FOV masks).
    pub inside_fov: Vec<(usize, PrAccumulator)>,
    /// The images written for the report, paths relative to the report's folder.
    pub images: Vec<ImageCard>,
}

/// Where and how the report's overlay images are written.
#[derive(Debug, Clone)]
pub struct ReportImages {
    /// The report's folder; the images go to its `images/` subfolder.
    pub dir: PathBuf,
    /// Overlay colours of binary tasks.
    pub palette: Palette,
}

/// Longest side of an overlay thumbnail, in pixels.
const THUMBNAIL: u32 = 480;
/// Side of the enlarged crop of the worst errors, in pixels.
const CROP: u32 = 320;

fn save_jpeg(path: &Path, image: &RgbImage) -> Result<(), InferError> {
    ds2f_data::io::write_atomic_with(path, |out| {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(out, 90);
        image
            .write_with_encoder(encoder)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })?;
    Ok(())
}

/// Writes an image's overlay (full-size JPEG), its thumbnail and an enlarged crop of the
/// window with the most errors (a sixth of the shorter side, inside the FOV when there is
/// one) into `images/` of the report; returns the card.
#[allow(clippy::too_many_arguments)]
fn write_report_images(
    target: &ReportImages,
    name: &str,
    image: &RgbImage,
    mask: &GrayImage,
    labels: &[u8],
    fov: Option<&GrayImage>,
    class_names: &[String],
    num_classes: usize,
) -> Result<ImageCard, InferError> {
    let dir = target.dir.join("images");
    std::fs::create_dir_all(&dir).map_err(|e| output_err(dir.clone(), e.to_string()))?;
    let full_path = dir.join(format!("{name}_overlay.jpg"));
    let names: Vec<String> = if class_names.len() == num_classes {
        class_names.to_vec()
    } else {
        (0..num_classes).map(|k| format!("class {k}")).collect()
    };
    let overlay = labelled_overlay_with(image, labels, Some(mask.as_raw()), &names, target.palette)
        .map_err(|m| output_err(full_path.clone(), m))?;
    save_jpeg(&full_path, &overlay)?;
    let (w, h) = overlay.dimensions();
    let scale = f64::from(THUMBNAIL) / f64::from(w.max(h));
    let thumb = if scale < 1.0 {
        let (tw, th) = (
            ((f64::from(w) * scale).round() as u32).max(1),
            ((f64::from(h) * scale).round() as u32).max(1),
        );
        image::imageops::resize(&overlay, tw, th, image::imageops::FilterType::Triangle)
    } else {
        overlay.clone()
    };
    save_jpeg(&dir.join(format!("{name}_thumb.jpg")), &thumb)?;
    // Errors: labelled pixels (not the ignore label) predicted wrong, inside the FOV.
    let (iw, ih) = image.dimensions();
    let errors: Vec<bool> = mask
        .as_raw()
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(i, (&t, &p))| {
            t != ds2f_data::IGNORE_LABEL && t != p && fov.is_none_or(|f| f.as_raw()[i] != 0)
        })
        .collect();
    let side = (iw.min(ih) / 6).max(16).min(iw.min(ih));
    let (x, y) = worst_window(&errors, iw, ih, side);
    let crop = image::imageops::crop_imm(&overlay, x, y, side, side).to_image();
    let crop = image::imageops::resize(&crop, CROP, CROP, image::imageops::FilterType::Nearest);
    save_png_atomic(dir.join(format!("{name}_crop.png")), &crop)?;
    Ok(ImageCard {
        name: name.to_string(),
        thumbnail: format!("images/{name}_thumb.jpg"),
        full: format!("images/{name}_overlay.jpg"),
        crop: Some(format!("images/{name}_crop.png")),
    })
}

/// A probability as stored in a 16-bit PNG and read back: `round(p·65535)/65535` in `f32`,
/// the encoding of `ds2f predict --probabilities` (and of [`EvalOptions::save_predictions`]).
pub fn quantise_probability(p: f32) -> f32 {
    f32::from(probability_u16(p)) / 65535.0
}

/// The 16-bit code of a probability in `[0, 1]` (`round(p·65535)`, saturating).
fn probability_u16(p: f32) -> u16 {
    (p * 65535.0).round() as u16
}

/// A file-name-safe form of a class name (`traffic light` → `traffic_light`), as in the
/// probability files `<name>_prob_<class>.png`.
pub fn class_file_part(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn metrics_err(path: &Path, e: MetricsError) -> InferError {
    InferError::Output {
        path: path.to_path_buf(),
        message: format!("metrics: {e}"),
    }
}

/// The whole-image and inside-FOV accumulations of one evaluation.
struct Accumulator {
    whole: Evaluation,
    inside: Option<Evaluation>,
    images: Vec<ImageCard>,
}

impl Accumulator {
    fn new(items: &[Item], num_classes: usize, options: &EvalOptions) -> Result<Self, InferError> {
        let with_fov = !items.is_empty() && items.iter().all(|i| i.fov.is_some());
        let config = EvaluationConfig {
            class_mean: options.class_mean,
            class_names: if options.class_names.len() == num_classes {
                options.class_names.clone()
            } else {
                Vec::new()
            },
            ..EvaluationConfig::default()
        };
        let new = || {
            Evaluation::with_config(num_classes, config.clone())
                .map_err(|e| metrics_err(Path::new("evaluation"), e))
        };
        Ok(Self {
            whole: new()?,
            inside: with_fov.then(new).transpose()?,
            images: Vec::new(),
        })
    }

    /// Adds one image: truth, predicted labels, class-major probability planes (optional) and
    /// FOV, all at the evaluated size.
    fn add(
        &mut self,
        item: &Item,
        mask: &GrayImage,
        labels: &[u8],
        probs: Option<&[f32]>,
        fov: Option<&GrayImage>,
    ) -> Result<(), InferError> {
        self.whole
            .add_image(&item.name, mask.as_raw(), labels, probs, None)
            .map_err(|e| metrics_err(&item.image, e))?;
        if let (Some(eval), Some(fov)) = (self.inside.as_mut(), fov) {
            let region: Vec<bool> = fov.as_raw().iter().map(|&v| v != 0).collect();
            eval.add_image(&item.name, mask.as_raw(), labels, probs, Some(&region))
                .map_err(|e| metrics_err(&item.image, e))?;
        }
        Ok(())
    }

    /// Writes the report's images of one image, when asked.
    fn report_images(
        &mut self,
        options: &EvalOptions,
        item: &Item,
        image: &RgbImage,
        mask: &GrayImage,
        labels: &[u8],
        fov: Option<&GrayImage>,
    ) -> Result<(), InferError> {
        if let Some(target) = &options.report_images {
            let c = self.whole.num_classes();
            let card = write_report_images(
                target,
                &item.name,
                image,
                mask,
                labels,
                fov,
                &options.class_names,
                c,
            )?;
            self.images.push(card);
        }
        Ok(())
    }

    fn finish(self) -> (EvalReport, EvalFigures) {
        let curves = |e: &Evaluation| -> Vec<(usize, PrAccumulator)> {
            e.curves()
                .into_iter()
                .map(|(k, c)| (k, c.clone()))
                .collect()
        };
        let report = EvalReport {
            whole_image: self.whole.summary(),
            inside_fov: self.inside.as_ref().map(Evaluation::summary),
        };
        let curves = EvalFigures {
            whole_image: curves(&self.whole),
            inside_fov: self.inside.as_ref().map(curves).unwrap_or_default(),
            images: self.images,
        };
        (report, curves)
    }
}

fn output_err(path: PathBuf, message: impl Into<String>) -> InferError {
    InferError::Output {
        path,
        message: message.into(),
    }
}

/// Writes one prediction as `ds2f predict` does (`<name>.png`, the probabilities as 16-bit
/// PNGs) and its overlay into `dir`.
fn save_prediction(
    dir: &Path,
    item: &Item,
    image: &RgbImage,
    mask: &GrayImage,
    labels: &[u8],
    planes: &[Vec<f32>],
    class_names: &[String],
) -> Result<(), InferError> {
    let (w, h) = image.dimensions();
    let classes = planes.len();
    save_png_atomic(
        dir.join(format!("{}.png", item.name)),
        &mask_image(labels, classes, w, h),
    )?;
    let png = |plane: &[f32]| -> ImageBuffer<Luma<u16>, Vec<u16>> {
        let codes = plane.iter().map(|&p| probability_u16(p)).collect();
        ImageBuffer::from_raw(w, h, codes).expect("one probability per pixel")
    };
    if classes == 2 {
        save_png_atomic(
            dir.join(format!("{}_prob.png", item.name)),
            &png(&planes[1]),
        )?;
    } else {
        for (k, plane) in planes.iter().enumerate() {
            let class = class_names
                .get(k)
                .map_or_else(|| k.to_string(), |n| class_file_part(n));
            let file = dir.join(format!("{}_prob_{class}.png", item.name));
            save_png_atomic(file, &png(plane))?;
        }
    }
    let path = dir.join(format!("{}_overlay.png", item.name));
    let o = labelled_overlay(image, labels, Some(mask.as_raw()), class_names)
        .map_err(|message| output_err(path.clone(), message))?;
    save_png_atomic(path, &o)?;
    Ok(())
}

/// Evaluates `predictor` on `items` (each with a mask), calling `progress(i, n, name)` per
/// image.
pub fn evaluate(
    predictor: &Predictor,
    items: &[Item],
    num_classes: usize,
    options: &EvalOptions,
    progress: impl FnMut(usize, usize, &str),
) -> Result<EvalReport, InferError> {
    evaluate_with_curves(predictor, items, num_classes, options, progress).map(|(r, _)| r)
}

/// [`evaluate`], also returning the pooled curves (for figures).
pub fn evaluate_with_curves(
    predictor: &Predictor,
    items: &[Item],
    num_classes: usize,
    options: &EvalOptions,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<(EvalReport, EvalFigures), InferError> {
    let kind = mask_kind(num_classes);
    let mut acc = Accumulator::new(items, num_classes, options)?;
    if let Some(dir) = &options.save_predictions {
        std::fs::create_dir_all(dir).map_err(|e| output_err(dir.clone(), e.to_string()))?;
    }
    for (i, item) in items.iter().enumerate() {
        progress(i, items.len(), &item.name);
        let (image, mask, fov) = load_item_with(item, kind, options.crop_to_fov)?;
        let (w, h) = image.dimensions();
        let probs = predictor.probabilities(&image)?;
        let (labels, planes) = probs.at_size(w as usize, h as usize);
        // Class-major planes of classes 0..C (ds2f-metrics reads the ones it averages), as
        // stored in 16-bit files: a saved prediction then scores exactly the same.
        let p: Vec<f32> = planes
            .concat()
            .into_iter()
            .map(quantise_probability)
            .collect();
        acc.add(item, &mask, &labels, Some(&p), fov.as_ref())?;
        acc.report_images(options, item, &image, &mask, &labels, fov.as_ref())?;
        if let Some((stream, dir)) = &options.save_sr {
            std::fs::create_dir_all(dir).map_err(|e| output_err(dir.clone(), e.to_string()))?;
            let sr = stream.image(&image)?;
            save_png_atomic(dir.join(format!("{}_sr.png", item.name)), &sr)?;
        }
        if let Some(dir) = &options.save_predictions {
            let names = &options.class_names;
            save_prediction(dir, item, &image, &mask, &labels, &planes, names)?;
        }
    }
    Ok(acc.finish())
}

/// One problem of a predictions folder: the file (or the image without a prediction) and
/// what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredictionProblem {
    /// The prediction file, or the data image that has none.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

/// Why a folder of predictions cannot be scored.
#[derive(Debug, thiserror::Error)]
pub enum PredictionsError {
    /// Every unpaired, unreadable or mis-sized file, listed at once.
    #[error("{} problem(s) with the predictions in {}:\n{}", problems.len(), dir.display(), list(problems))]
    Problems {
        /// The predictions folder.
        dir: PathBuf,
        /// Each problem.
        problems: Vec<PredictionProblem>,
    },
    /// The data, or an output.
    #[error(transparent)]
    Infer(#[from] InferError),
}

impl From<ds2f_data::DataError> for PredictionsError {
    fn from(e: ds2f_data::DataError) -> Self {
        PredictionsError::Infer(e.into())
    }
}

fn list(problems: &[PredictionProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {}: {}", p.path.display(), p.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The extensions a prediction file may have (lossless formats only).
const PREDICTION_EXTENSIONS: [&str; 4] = ["png", "tif", "tiff", "bmp"];

/// The prediction files of one image.
#[derive(Debug, Clone, Default)]
struct PredictionFiles {
    /// `<name>.<ext>`: a mask, label map or (binary) probability map.
    labels: Option<PathBuf>,
    /// `<name>_prob.<ext>`: the foreground probability (two classes).
    foreground: Option<PathBuf>,
    /// `<name>_prob_<class>.<ext>` by class (name or index).
    classes: BTreeMap<usize, PathBuf>,
}

/// Pairs the files of `dir` with `items`. Files of images in `excluded` (in the data but not
/// selected) and ds2f's own `<name>_overlay` / `<name>_sr` files are skipped.
fn pair_files(
    dir: &Path,
    items: &[Item],
    excluded: &BTreeSet<String>,
    class_names: &[String],
    problems: &mut Vec<PredictionProblem>,
) -> Result<BTreeMap<String, PredictionFiles>, PredictionsError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| output_err(dir.to_path_buf(), e.to_string()))?;
    let names: BTreeSet<&str> = items.iter().map(|i| i.name.as_str()).collect();
    let class_of = |part: &str| -> Option<usize> {
        class_names
            .iter()
            .position(|n| class_file_part(n) == part)
            .or_else(|| {
                part.parse::<usize>()
                    .ok()
                    .filter(|&k| k < class_names.len())
            })
    };
    let mut files: BTreeMap<String, PredictionFiles> = BTreeMap::new();
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    for path in paths {
        let (Some(stem), Some(ext)) = (
            path.file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string),
            path.extension()
                .and_then(|s| s.to_str())
                .map(str::to_string),
        ) else {
            continue;
        };
        let stem = stem.as_str();
        if stem.starts_with('.') {
            continue;
        }
        if !PREDICTION_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()) {
            // Summaries, reports, CSV files beside the predictions.
            continue;
        }
        let known = |n: &str| names.contains(n) || excluded.contains(n);
        let mut duplicate = |slot: &mut Option<PathBuf>, path: PathBuf| {
            if let Some(first) = slot {
                problems.push(PredictionProblem {
                    path: path.clone(),
                    reason: format!(
                        "a second prediction of the same image (first: {})",
                        first.display()
                    ),
                });
            } else {
                *slot = Some(path);
            }
        };
        if names.contains(stem) {
            duplicate(&mut files.entry(stem.into()).or_default().labels, path);
            continue;
        }
        if excluded.contains(stem) {
            continue;
        }
        if let Some(base) = stem
            .strip_suffix("_overlay")
            .or_else(|| stem.strip_suffix("_sr"))
            && known(base)
        {
            continue;
        }
        if let Some(base) = stem.strip_suffix("_prob")
            && known(base)
        {
            if names.contains(base) {
                duplicate(&mut files.entry(base.into()).or_default().foreground, path);
            }
            continue;
        }
        if let Some((base, part)) = stem.rsplit_once("_prob_")
            && known(base)
        {
            if !names.contains(base) {
                continue;
            }
            match class_of(part) {
                Some(k) => {
                    let mut slot = files.entry(base.into()).or_default().classes.remove(&k);
                    duplicate(&mut slot, path);
                    if let Some(p) = slot {
                        files.entry(base.into()).or_default().classes.insert(k, p);
                    }
                }
                None => problems.push(PredictionProblem {
                    path,
                    reason: format!(
                        "`{part}` is not a class (expected one of {})",
                        class_names
                            .iter()
                            .map(|n| class_file_part(n))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }),
            }
            continue;
        }
        problems.push(PredictionProblem {
            path,
            reason: "no image of this name in the data (expected <image>.png, \
                     <image>_prob.png or <image>_prob_<class>.png)"
                .into(),
        });
    }
    for item in items {
        let f = files.get(&item.name);
        let has_probs = f.is_some_and(|f| f.foreground.is_some() || !f.classes.is_empty());
        if f.is_none_or(|f| f.labels.is_none() && !has_probs) {
            problems.push(PredictionProblem {
                path: item.image.clone(),
                reason: format!(
                    "no prediction in {} (expected {}.png)",
                    dir.display(),
                    item.name
                ),
            });
        }
    }
    Ok(files)
}

/// A decoded prediction file: labels or probabilities.
enum Decoded {
    Labels(Vec<u8>),
    Probabilities(Vec<f32>),
}

/// The single channel of a prediction file (grey, or colour with equal channels), 8 or 16
/// bits.
enum Channel {
    Eight(Vec<u8>),
    Sixteen(Vec<u16>),
}

fn channel(img: DynamicImage) -> Result<Channel, String> {
    let equal = |px: &[u16]| px.iter().all(|&v| v == px[0]);
    match img {
        DynamicImage::ImageLuma8(g) => Ok(Channel::Eight(g.into_raw())),
        DynamicImage::ImageLumaA8(g) => Ok(Channel::Eight(g.pixels().map(|p| p.0[0]).collect())),
        DynamicImage::ImageLuma16(g) => Ok(Channel::Sixteen(g.into_raw())),
        DynamicImage::ImageLumaA16(g) => Ok(Channel::Sixteen(g.pixels().map(|p| p.0[0]).collect())),
        other => {
            let wide = other.color().bytes_per_pixel() / other.color().channel_count() > 1;
            let rgb = other.to_rgb16();
            if !rgb.pixels().all(|p| equal(&p.0)) {
                return Err("a colour image: a prediction has one channel (grey)".into());
            }
            let values = rgb.pixels().map(|p| p.0[0]);
            Ok(if wide {
                Channel::Sixteen(values.collect())
            } else {
                Channel::Eight(values.map(|v| (v >> 8) as u8).collect())
            })
        }
    }
}

/// Reads `<name>.<ext>`: with two classes a 0/1 or 0/255 mask gives labels, any other 8-bit
/// file probabilities `v/255`, a 16-bit file probabilities `v/65535` (unless it is 0/1 or
/// 0/65535); with more classes a label map of values below `C`.
fn decode_main(img: DynamicImage, num_classes: usize) -> Result<Decoded, String> {
    match channel(img)? {
        Channel::Eight(v) => {
            if num_classes > 2 {
                if let Some(bad) = v.iter().find(|&&x| usize::from(x) >= num_classes) {
                    return Err(format!(
                        "value {bad} in a label map of {num_classes} classes (0..{})",
                        num_classes - 1
                    ));
                }
                return Ok(Decoded::Labels(v));
            }
            if v.iter().all(|&x| x <= 1) || v.iter().all(|&x| x == 0 || x == 255) {
                return Ok(Decoded::Labels(
                    v.iter().map(|&x| u8::from(x > 0)).collect(),
                ));
            }
            Ok(Decoded::Probabilities(
                v.iter().map(|&x| f32::from(x) / 255.0).collect(),
            ))
        }
        Channel::Sixteen(v) => {
            if num_classes > 2 {
                if v.iter().all(|&x| usize::from(x) < num_classes) {
                    return Ok(Decoded::Labels(v.iter().map(|&x| x as u8).collect()));
                }
                return Err(format!(
                    "a 16-bit file that is not a label map of {num_classes} classes \
                     (probabilities of several classes go in <image>_prob_<class>.png)"
                ));
            }
            if v.iter().all(|&x| x <= 1) || v.iter().all(|&x| x == 0 || x == 65535) {
                return Ok(Decoded::Labels(
                    v.iter().map(|&x| u8::from(x > 0)).collect(),
                ));
            }
            Ok(Decoded::Probabilities(
                v.iter().map(|&x| f32::from(x) / 65535.0).collect(),
            ))
        }
    }
}

/// Reads a probability file: 16-bit as `v/65535`, 8-bit as `v/255`.
fn decode_probability(img: DynamicImage) -> Result<Vec<f32>, String> {
    Ok(match channel(img)? {
        Channel::Eight(v) => v.iter().map(|&x| f32::from(x) / 255.0).collect(),
        Channel::Sixteen(v) => v.iter().map(|&x| f32::from(x) / 65535.0).collect(),
    })
}

/// The bounding box `(x, y, w, h)` of the non-zero pixels of a FOV mask.
fn fov_box(fov: &GrayImage) -> Option<(u32, u32, u32, u32)> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in fov.enumerate_pixels() {
        if p.0[0] != 0 {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    (x0 <= x1).then(|| (x0, y0, x1 - x0 + 1, y1 - y0 + 1))
}

/// The size each item is evaluated at, and the crop a full-size prediction needs
/// (`crop_to_fov`).
struct Geometry {
    full: (u32, u32),
    crop: Option<(u32, u32, u32, u32)>,
}

impl Geometry {
    fn of(item: &Item, crop_to_fov: bool) -> Result<Self, InferError> {
        let full = image_dimensions(&item.image, &LoadLimits::default())?;
        let crop = match (&item.fov, crop_to_fov) {
            (Some(fov), true) => fov_box(&ds2f_data::io::load_fov(fov)?),
            _ => None,
        };
        Ok(Self { full, crop })
    }

    /// The sizes a prediction may have: the evaluated one, and with a crop also the full one.
    fn accepts(&self, size: (u32, u32)) -> bool {
        size == self.full || self.crop.is_some_and(|(_, _, w, h)| size == (w, h))
    }

    fn expected(&self) -> String {
        match self.crop {
            Some((_, _, w, h)) => format!(
                "{w}x{h} (the FOV crop) or {}x{} (the image)",
                self.full.0, self.full.1
            ),
            None => format!("{}x{} (the image)", self.full.0, self.full.1),
        }
    }
}

/// Scores a folder of predictions against `items` (each with a mask), as [`evaluate`] scores
/// a model: the same summaries, pooled and per image, whole image and inside the FOV.
///
/// For each image `<name>` of the data the folder holds `<name>.<png|tif|bmp>` (a 0/1 or
/// 0/255 mask, an 8-bit or 16-bit probability map of the foreground, or for more classes a
/// label map), and/or `<name>_prob.png` (the foreground probability, 16-bit `v/65535` or 8-bit
/// `v/255`) or `<name>_prob_<class>.png` for every class (by name as `ds2f predict` writes them,
/// or by index). Labels come from the mask, else from the probabilities (`p > 0.5`, or the
/// first most probable class). PR- and ROC-AUC need probabilities of every image.
///
/// Every file must be the size of its image (or of its FOV crop, with `crop_to_fov`). Files
/// of images in `excluded` (in the data, not selected) and `<name>_overlay` / `<name>_sr`
/// images are skipped. Every unpaired, unreadable or mis-sized file, and every image without
/// a prediction, is listed in one [`PredictionsError::Problems`] before anything is scored.
pub fn evaluate_predictions(
    dir: &Path,
    items: &[Item],
    excluded: &BTreeSet<String>,
    num_classes: usize,
    options: &EvalOptions,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<(EvalReport, EvalFigures), PredictionsError> {
    let names = &options.class_names;
    let names: Vec<String> = if names.len() == num_classes {
        names.clone()
    } else {
        (0..num_classes).map(|k| k.to_string()).collect()
    };
    let mut problems = Vec::new();
    let files = pair_files(dir, items, excluded, &names, &mut problems)?;
    // Sizes and completeness, before anything is decoded.
    let mut geometry = Vec::with_capacity(items.len());
    let mut with_probs = Vec::with_capacity(items.len());
    for item in items {
        let g = Geometry::of(item, options.crop_to_fov)?;
        let f = files.get(&item.name).cloned().unwrap_or_default();
        let all: Vec<&PathBuf> = f
            .labels
            .iter()
            .chain(&f.foreground)
            .chain(f.classes.values())
            .collect();
        for path in all {
            match image_dimensions(path, &LoadLimits::default()) {
                Ok(size) if g.accepts(size) => {}
                Ok((w, h)) => problems.push(PredictionProblem {
                    path: path.clone(),
                    reason: format!("{w}x{h}, but {} is {}", item.name, g.expected()),
                }),
                Err(e) => problems.push(PredictionProblem {
                    path: path.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        let probs = if num_classes == 2 {
            f.foreground.is_some()
        } else if f.classes.is_empty() {
            false
        } else {
            for (k, name) in names.iter().enumerate() {
                if !f.classes.contains_key(&k) {
                    problems.push(PredictionProblem {
                        path: dir.join(format!("{}_prob_{}.png", item.name, class_file_part(name))),
                        reason: "missing: probabilities need a file for every class".into(),
                    });
                }
            }
            true
        };
        with_probs.push(probs);
        geometry.push(g);
    }
    if !problems.is_empty() {
        return Err(PredictionsError::Problems {
            dir: dir.to_path_buf(),
            problems,
        });
    }
    let kind = mask_kind(num_classes);
    let mut acc = Accumulator::new(items, num_classes, options)?;
    let mut scored_probs: Option<bool> = None;
    for (i, item) in items.iter().enumerate() {
        progress(i, items.len(), &item.name);
        let f = &files[&item.name];
        let (image, mask, fov) = load_item_with(item, kind, options.crop_to_fov)?;
        let (w, h) = mask.dimensions();
        let read = |path: &Path| -> Result<DynamicImage, PredictionsError> {
            let img = load_dynamic(path, &LoadLimits::default())?;
            let img = match geometry[i].crop {
                Some((x, y, cw, ch)) if img.dimensions() != (cw, ch) => img.crop_imm(x, y, cw, ch),
                _ => img,
            };
            Ok(img)
        };
        let bad = |path: &Path, reason: String| PredictionsError::Problems {
            dir: dir.to_path_buf(),
            problems: vec![PredictionProblem {
                path: path.to_path_buf(),
                reason,
            }],
        };
        let n = (w * h) as usize;
        let (mut labels, mut probs) = (None, None);
        if let Some(path) = &f.labels {
            match decode_main(read(path)?, num_classes).map_err(|r| bad(path, r))? {
                Decoded::Labels(l) => labels = Some(l),
                Decoded::Probabilities(p) => {
                    probs = Some(vec![p.iter().map(|x| 1.0 - x).collect(), p])
                }
            }
        }
        if with_probs[i] {
            let planes: Vec<Vec<f32>> = if num_classes == 2 {
                let path = f.foreground.as_ref().expect("checked above");
                let p = decode_probability(read(path)?).map_err(|r| bad(path, r))?;
                vec![p.iter().map(|x| 1.0 - x).collect(), p]
            } else {
                f.classes
                    .values()
                    .map(|path| decode_probability(read(path)?).map_err(|r| bad(path, r)))
                    .collect::<Result<_, _>>()?
            };
            probs = Some(planes);
        }
        let labels = match (labels, &probs) {
            (Some(l), _) => l,
            (None, Some(planes)) => argmax(planes, n),
            (None, None) => unreachable!("pair_files reports images without a prediction"),
        };
        if scored_probs.is_some_and(|s| s != probs.is_some()) {
            let what = if probs.is_some() { "has" } else { "has no" };
            return Err(bad(
                f.labels.as_deref().unwrap_or(dir),
                format!(
                    "{} {what} probabilities, unlike the images before it: PR- and ROC-AUC \
                     need them for every image (or none)",
                    item.name
                ),
            ));
        }
        scored_probs = Some(probs.is_some());
        let flat: Option<Vec<f32>> = probs.map(|p| p.concat());
        acc.add(item, &mask, &labels, flat.as_deref(), fov.as_ref())?;
        acc.report_images(options, item, &image, &mask, &labels, fov.as_ref())?;
    }
    Ok(acc.finish())
}

/// Labels of class-major planes: the first most probable class per pixel (binary: `p > 0.5`).
fn argmax(planes: &[Vec<f32>], n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            let (mut best, mut best_p) = (0usize, f32::NEG_INFINITY);
            for (c, plane) in planes.iter().enumerate() {
                if plane[i] > best_p {
                    (best, best_p) = (c, plane[i]);
                }
            }
            best as u8
        })
        .collect()
}

/// The per-image table (`per_image.csv`): one row per image and region (`whole`, `fov`), the
/// image's headline scores (class 1, or the mean over the averaged classes), its PR- and
/// ROC-AUC, and for two classes its foreground counts.
pub fn per_image_csv(report: &EvalReport) -> String {
    // iou, dice, mcc, bm, precision, recall (sensitivity), specificity, accuracy.
    let metrics = Metric::ALL;
    let binary = report.whole_image.num_classes == 2;
    let mut out = String::from(
        "image,region,iou,dice,mcc,bm,precision,sensitivity,specificity,accuracy,pr_auc,roc_auc",
    );
    if binary {
        out.push_str(",tp,fp,fn,tn");
    }
    out.push('\n');
    let regions = [
        ("whole", Some(&report.whole_image)),
        ("fov", report.inside_fov.as_ref()),
    ];
    let num = |v: f64| {
        if v.is_nan() {
            String::new()
        } else {
            format!("{v}")
        }
    };
    for (region, summary) in regions {
        let Some(s) = summary else { continue };
        for image in &s.images {
            let scores = s.image_reported(image);
            let mut row = vec![csv_field(&image.name), region.to_string()];
            row.extend(metrics.iter().map(|&m| num(scores.get(m))));
            row.push(num(image.pr_auc));
            row.push(num(image.roc_auc));
            if binary {
                let c = image.counts[1];
                row.extend([c.tp, c.fp, c.fn_, c.tn].map(|v| v.to_string()));
            }
            out.push_str(&row.join(","));
            out.push('\n');
        }
    }
    out
}

/// A CSV field, quoted when it needs to be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantisation_is_the_files_reading() {
        for p in [0.0f32, 1.0, 0.5, 0.123_456_7, 0.999_99, 1e-6] {
            let code = probability_u16(p);
            // What a reader of the 16-bit file computes.
            assert_eq!(quantise_probability(p), f32::from(code) / 65535.0);
        }
        assert_eq!(probability_u16(0.5), 32768);
        assert_eq!(probability_u16(1.0), 65535);
    }

    #[test]
    fn main_files_decode_by_content() {
        let grey = |v: Vec<u8>| DynamicImage::ImageLuma8(GrayImage::from_raw(2, 2, v).unwrap());
        let labels = |d: Decoded| match d {
            Decoded::Labels(l) => l,
            Decoded::Probabilities(_) => panic!("labels expected"),
        };
        assert_eq!(
            labels(decode_main(grey(vec![0, 255, 255, 0]), 2).unwrap()),
            [0, 1, 1, 0]
        );
        assert_eq!(
            labels(decode_main(grey(vec![0, 1, 1, 0]), 2).unwrap()),
            [0, 1, 1, 0]
        );
        match decode_main(grey(vec![0, 51, 255, 128]), 2).unwrap() {
            Decoded::Probabilities(p) => assert_eq!(p, [0.0, 0.2, 1.0, 128.0 / 255.0]),
            Decoded::Labels(_) => panic!("probabilities expected"),
        }
        assert_eq!(
            labels(decode_main(grey(vec![0, 4, 2, 1]), 5).unwrap()),
            [0, 4, 2, 1]
        );
        assert_eq!(
            decode_main(grey(vec![0, 5, 2, 1]), 5).err().unwrap(),
            "value 5 in a label map of 5 classes (0..4)"
        );
        let wide = ImageBuffer::<Luma<u16>, _>::from_raw(2, 1, vec![0u16, 13107]).unwrap();
        match decode_main(DynamicImage::ImageLuma16(wide), 2).unwrap() {
            Decoded::Probabilities(p) => assert_eq!(p, [0.0, 0.2]),
            Decoded::Labels(_) => panic!("probabilities expected"),
        }
        let colour = RgbImage::from_raw(2, 1, vec![0, 0, 0, 255, 0, 0]).unwrap();
        assert!(decode_main(DynamicImage::ImageRgb8(colour), 2).is_err());
        let planes = vec![
            vec![0.2f32, 0.5, 0.1],
            vec![0.5, 0.5, 0.2],
            vec![0.3, 0.0, 0.7],
        ];
        assert_eq!(argmax(&planes, 3), [1, 0, 2]);
    }
}
