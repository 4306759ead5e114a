//! Inference: the segmentation stream only (encoder, seg decoder, head, bilinear ×r), on any
//! image size, with outputs brought back to the image's original size by nearest
//! up-sampling (SPEC §5), and evaluation with the paper's metrics.
pub mod evaluate;
pub mod predictor;

pub use evaluate::{EvalOptions, EvalReport, evaluate};
pub use predictor::{HrProbabilities, Predictor};
