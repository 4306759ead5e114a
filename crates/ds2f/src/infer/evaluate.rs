//! Evaluation at the original resolution (SPEC §5): HR probabilities brought to the mask's
//! size by nearest up-sampling, metrics pooled over the whole test set (the paper's way) and
//! per image (mean ± std), over the whole image (the paper's way) and inside the FOV.
use std::path::PathBuf;

use ds2f_data::io::save_png_atomic;
use ds2f_data::layout::Item;
use ds2f_metrics::{ClassMean, Evaluation, EvaluationConfig, MetricsError, Summary};
use serde::{Deserialize, Serialize};

use crate::dataset::{load_item_with, mask_kind};
use crate::error::InferError;
use crate::infer::Predictor;
use crate::report::overlay::{labelled_overlay, mask_image};

/// What to write besides the metrics.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// Write each prediction (`<name>.png`, 0/255 for binary) and overlay here.
    pub save_predictions: Option<PathBuf>,
    /// Crop each item to its FOV's bounding box first (`data.crop_to_fov` of the run).
    pub crop_to_fov: bool,
    /// Class names by id (tables, overlay legends); empty: `class k`.
    pub class_names: Vec<String>,
    /// Which classes the headline metrics average (Cityscapes: all; otherwise foreground).
    pub class_mean: ClassMean,
}

/// Metrics over the whole image and, where every image has a FOV mask, inside the FOV.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    /// Over every pixel of each image (the paper's protocol).
    pub whole_image: Summary,
    /// Inside the field of view only (absent when some image has no FOV mask).
    pub inside_fov: Option<Summary>,
}

fn metrics_err(item: &Item, e: MetricsError) -> InferError {
    InferError::Output {
        path: item.image.clone(),
        message: format!("metrics: {e}"),
    }
}

/// Evaluates `predictor` on `items` (each with a mask), calling `progress(i, n, name)` per
/// image.
pub fn evaluate(
    predictor: &Predictor,
    items: &[Item],
    num_classes: usize,
    options: &EvalOptions,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<EvalReport, InferError> {
    let kind = mask_kind(num_classes);
    let with_fov = !items.is_empty() && items.iter().all(|i| i.fov.is_some());
    let metrics_config = EvaluationConfig {
        class_mean: options.class_mean,
        class_names: if options.class_names.len() == num_classes {
            options.class_names.clone()
        } else {
            Vec::new()
        },
        ..EvaluationConfig::default()
    };
    let new_evaluation = || {
        Evaluation::with_config(num_classes, metrics_config.clone()).map_err(|e| {
            InferError::Output {
                path: PathBuf::from("evaluation"),
                message: format!("metrics: {e}"),
            }
        })
    };
    let mut whole = new_evaluation()?;
    let mut inside = with_fov.then(new_evaluation).transpose()?;
    if let Some(dir) = &options.save_predictions {
        std::fs::create_dir_all(dir).map_err(|e| InferError::Output {
            path: dir.clone(),
            message: e.to_string(),
        })?;
    }
    for (i, item) in items.iter().enumerate() {
        progress(i, items.len(), &item.name);
        let (image, mask, fov) = load_item_with(item, kind, options.crop_to_fov)?;
        let (w, h) = image.dimensions();
        let probs = predictor.probabilities(&image)?;
        let (labels, planes) = probs.at_size(w as usize, h as usize);
        // Class-major planes of classes 0..C (ds2f-metrics reads the ones it averages).
        let p: Vec<f32> = planes.concat();
        whole
            .add_image(&item.name, mask.as_raw(), &labels, Some(&p), None)
            .map_err(|e| metrics_err(item, e))?;
        if let (Some(eval), Some(fov)) = (inside.as_mut(), fov.as_ref()) {
            let region: Vec<bool> = fov.as_raw().iter().map(|&v| v != 0).collect();
            eval.add_image(&item.name, mask.as_raw(), &labels, Some(&p), Some(&region))
                .map_err(|e| metrics_err(item, e))?;
        }
        if let Some(dir) = &options.save_predictions {
            let out = mask_image(&labels, num_classes, w, h);
            save_png_atomic(dir.join(format!("{}.png", item.name)), &out)?;
            let o = labelled_overlay(&image, &labels, Some(mask.as_raw()), &options.class_names)
                .map_err(|message| InferError::Output {
                    path: dir.join(format!("{}_overlay.png", item.name)),
                    message,
                })?;
            save_png_atomic(dir.join(format!("{}_overlay.png", item.name)), &o)?;
        }
    }
    Ok(EvalReport {
        whole_image: whole.summary(),
        inside_fov: inside.map(|e| e.summary()),
    })
}
