//! Segmentation metrics of the DS2F paper in plain Rust: confusion counts, the metrics derived
//! from them, average precision, pooled and per-image aggregation. No tensor library.
//!
//! The paper (Qiu, Hu et al., TPAMI 2023) accumulates **one confusion matrix over all pixels of
//! all test images** and derives IoU, Dice, MCC, BM, ... from it ("pooled" metrics). PR-AUC is
//! likewise pooled over the whole test set. This crate provides:
//!
//! * [`ConfusionMatrix`] / [`Counts`]: `M[true][pred]` accumulation and one-vs-rest counts;
//! * [`Scores`]: the ratios derived from [`Counts`], with `NaN` for undefined (0/0) ratios;
//! * [`average_precision`], [`pr_auc_trapezoid`] (exact, sort-based) and [`PrHistogram`]
//!   (memory-bounded, mergeable, for tens of millions of pixels);
//! * [`ExactPr`] / [`PrAccumulator`] / [`PrMode`]: one class's pooled PR curve, exact or binned;
//! * [`roc_auc`] / [`roc_curve`]: the ROC of a scoring (sklearn's `roc_auc_score`), also from
//!   every accumulator above;
//! * [`Evaluation`] / [`Summary`]: per-image and pooled aggregation over `C` classes with an
//!   ignore label ([`DEFAULT_IGNORE_LABEL`]), and the scalars the paper reports, averaged over
//!   the classes chosen by [`ClassMean`] (foreground for vessels and lesions, all for
//!   Cityscapes).
#![warn(missing_docs)]

mod aggregate;
mod average_precision;
mod classes;
mod confusion;
mod error;
mod histogram;
mod pr;
mod roc;
mod scores;
pub mod serde_nan;

pub use aggregate::{
    ClassRow, Evaluation, EvaluationConfig, ImageResult, MeanStd, PrAuc, ScoresStats, Summary,
};
pub use average_precision::{PrPoint, average_precision, pr_auc_trapezoid, precision_recall_curve};
pub use classes::ClassMean;
pub use confusion::{ConfusionMatrix, Counts, DEFAULT_IGNORE_LABEL, MAX_CLASSES};
pub use error::MetricsError;
pub use histogram::{DEFAULT_BINS, PrHistogram};
pub use pr::{ExactPr, PrAccumulator, PrMode};
pub use roc::{RocPoint, roc_auc, roc_curve};
pub use scores::{Metric, Scores, nanmean};
