//! A trained model ready to predict: LR input made exactly as in training (OpenCV-exact cubic
//! resize, normalisation to [−1, 1]), HR class probabilities out.
use std::path::Path;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use ds2f_data::resize::nearest_index_centered;
use image::RgbImage;

use crate::checkpoint::Checkpoint;
use crate::config::ExperimentConfig;
use crate::error::InferError;
use crate::model::Segmenter;

/// The inference graph with its weights and input size.
pub struct Predictor {
    model: Segmenter,
    device: Device,
    lr_size: [usize; 2],
    num_classes: usize,
}

/// Class probabilities at the HR output size, `[C, h, w]` row-major.
#[derive(Debug, Clone)]
pub struct HrProbabilities {
    /// Softmax probabilities.
    pub data: Vec<f32>,
    /// Classes C.
    pub classes: usize,
    /// HR height.
    pub height: usize,
    /// HR width.
    pub width: usize,
}

impl HrProbabilities {
    /// Labels (argmax) and the probabilities of every class `0..C` at `width × height`, by
    /// half-pixel-centred nearest neighbour, the inverse of the rule that made the training
    /// targets (the reference's `floor(dst · in / out)` shifts DRIVE's masks by one pixel).
    pub fn at_size(&self, width: usize, height: usize) -> (Vec<u8>, Vec<Vec<f32>>) {
        let plane = self.height * self.width;
        let xs: Vec<usize> = (0..width)
            .map(|x| nearest_index_centered(x, self.width, width))
            .collect();
        let mut labels = vec![0u8; width * height];
        let mut probs = vec![vec![0f32; width * height]; self.classes];
        for y in 0..height {
            let sy = nearest_index_centered(y, self.height, height);
            for (x, &sx) in xs.iter().enumerate() {
                let src = sy * self.width + sx;
                let dst = y * width + x;
                let (mut best, mut best_p) = (0, f32::NEG_INFINITY);
                for (c, out) in probs.iter_mut().enumerate() {
                    let p = self.data[c * plane + src];
                    out[dst] = p;
                    // The first class of the largest probability, as argmax.
                    if p > best_p {
                        best = c;
                        best_p = p;
                    }
                }
                labels[dst] = best as u8;
            }
        }
        (labels, probs)
    }
}

impl Predictor {
    /// Builds the configured model on `device` and loads the weights of `checkpoint`.
    pub fn new(
        config: &ExperimentConfig,
        checkpoint: &Path,
        device: &Device,
    ) -> Result<Self, InferError> {
        let ckpt = Checkpoint::load(checkpoint)?;
        let model = if ckpt.optimizer.is_empty() {
            // An inference checkpoint (`best`): the segmentation stream alone.
            ckpt.apply_model(config.model.init(device), checkpoint)?
        } else {
            // A training checkpoint (`last`): the whole framework; keep its seg stream.
            ckpt.apply_model(config.model.init_train(device), checkpoint)?
                .into_segmenter()
        };
        Ok(Self {
            model,
            device: device.clone(),
            lr_size: config.data.lr_size,
            num_classes: config.model.num_classes,
        })
    }

    /// Loads `run_dir/config.toml` and `run_dir/checkpoints/<which>.ckpt` (`best` or `last`).
    pub fn from_run(run_dir: &Path, which: &str, device: &Device) -> Result<Self, InferError> {
        let config = ExperimentConfig::load(&run_dir.join("config.toml"), &[])?;
        let checkpoint = run_dir.join("checkpoints").join(format!("{which}.ckpt"));
        Self::new(&config, &checkpoint, device)
    }

    /// The network's LR input size `[h, w]`.
    pub fn lr_size(&self) -> [usize; 2] {
        self.lr_size
    }

    /// The model.
    pub fn model(&self) -> &Segmenter {
        &self.model
    }

    /// HR class probabilities of one image of any size.
    pub fn probabilities(&self, image: &RgbImage) -> Result<HrProbabilities, InferError> {
        let [h, w] = self.lr_size;
        let input = ds2f_data::pair::lr_input(image, (h as u32, w as u32))?;
        let x = Tensor::<4>::from_data(TensorData::new(input, [1, 3, h, w]), &self.device);
        let logits = self.model.forward(x); // [1, C, rh, rw]
        let [_, classes, height, width] = logits.dims();
        debug_assert_eq!(classes, self.num_classes);
        let data = softmax(logits, 1).into_data().iter::<f32>().collect();
        Ok(HrProbabilities {
            data,
            classes,
            height,
            width,
        })
    }
}
