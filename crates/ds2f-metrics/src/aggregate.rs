//! Per-image and pooled aggregation over a test set, and the scalar the paper reports.
//!
//! The paper's numbers are **pooled**: one confusion matrix accumulated over all pixels of
//! all test images, and one PR curve over all pixels (per foreground class). [`Evaluation`]
//! keeps that pooled state plus the per-image results, so that a [`Summary`] can give both
//! the pooled scores and the per-image mean ± sample standard deviation.
//!
//! The reported scalars follow the reference scripts, chosen by [`ClassMean`]: binary
//! (`C == 2`) → class 1; lesions → `nanmean` over the foreground classes `1..C−1` (background
//! excluded); both are [`ClassMean::Foreground`]. Cityscapes → `nanmean` over all classes
//! ([`ClassMean::All`]). Pixels whose truth is the ignore label (default 255) count nowhere.

use serde::{Deserialize, Serialize};

use crate::classes::ClassMean;
use crate::confusion::{ConfusionMatrix, Counts, DEFAULT_IGNORE_LABEL, MAX_CLASSES};
use crate::error::{MetricsError, check_len};
use crate::histogram::DEFAULT_BINS;
use crate::pr::{PrAccumulator, PrMode};
use crate::scores::{Metric, Scores, nanmean};

/// The result of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageResult {
    /// Image name, as given to [`Evaluation::add_image`].
    pub name: String,
    /// One-vs-rest counts per class (index = class).
    pub counts: Vec<Counts>,
    /// Scores per class (index = class), computed on this image alone.
    pub scores: Vec<Scores>,
    /// This image's trapezoidal PR-AUC, `nanmean` over the averaged classes; `NaN` without
    /// probabilities (and in summaries written before it existed).
    #[serde(with = "crate::serde_nan", default = "nan")]
    pub pr_auc: f64,
    /// This image's ROC-AUC, `nanmean` over the averaged classes; `NaN` without
    /// probabilities.
    #[serde(with = "crate::serde_nan", default = "nan")]
    pub roc_auc: f64,
}

/// Mean ± sample standard deviation of the defined (non-`NaN`) values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean of the defined values; `NaN` if there are none.
    #[serde(with = "crate::serde_nan")]
    pub mean: f64,
    /// Sample standard deviation (divisor `n − 1`) of the defined values; `NaN` if `n < 2`.
    #[serde(with = "crate::serde_nan")]
    pub std: f64,
    /// Number of defined values.
    pub n: usize,
}

impl MeanStd {
    /// Mean and sample std of the values that are not `NaN` (two passes, for accuracy).
    pub fn from_values(values: &[f64]) -> MeanStd {
        let defined = || values.iter().copied().filter(|v| !v.is_nan());
        let n = defined().count();
        let mean = nanmean(defined());
        let std = if n < 2 {
            f64::NAN
        } else {
            let ss: f64 = defined().map(|v| (v - mean) * (v - mean)).sum();
            (ss / (n - 1) as f64).sqrt()
        };
        MeanStd { mean, std, n }
    }
}

/// [`MeanStd`] of every metric over images, for one class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoresStats {
    /// Statistics of [`Scores::iou`].
    pub iou: MeanStd,
    /// Statistics of [`Scores::dice`].
    pub dice: MeanStd,
    /// Statistics of [`Scores::mcc`].
    pub mcc: MeanStd,
    /// Statistics of [`Scores::bm`].
    pub bm: MeanStd,
    /// Statistics of [`Scores::precision`].
    pub precision: MeanStd,
    /// Statistics of [`Scores::recall`].
    pub recall: MeanStd,
    /// Statistics of [`Scores::specificity`].
    pub specificity: MeanStd,
    /// Statistics of [`Scores::accuracy`].
    pub accuracy: MeanStd,
}

impl ScoresStats {
    /// Per-metric statistics over a list of scores (e.g. one class over all images).
    pub fn from_scores(all: &[Scores]) -> ScoresStats {
        let stat =
            |m: Metric| MeanStd::from_values(&all.iter().map(|s| s.get(m)).collect::<Vec<_>>());
        ScoresStats {
            iou: stat(Metric::Iou),
            dice: stat(Metric::Dice),
            mcc: stat(Metric::Mcc),
            bm: stat(Metric::Bm),
            precision: stat(Metric::Precision),
            recall: stat(Metric::Recall),
            specificity: stat(Metric::Specificity),
            accuracy: stat(Metric::Accuracy),
        }
    }

    /// The statistics of one metric.
    pub fn get(&self, metric: Metric) -> MeanStd {
        match metric {
            Metric::Iou => self.iou,
            Metric::Dice => self.dice,
            Metric::Mcc => self.mcc,
            Metric::Bm => self.bm,
            Metric::Precision => self.precision,
            Metric::Recall => self.recall,
            Metric::Specificity => self.specificity,
            Metric::Accuracy => self.accuracy,
        }
    }
}

/// Pooled PR-AUC of one averaged class (one-vs-rest: positives are pixels whose truth is
/// the class, scored by that class's probability).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrAuc {
    /// The class (`1..C` with [`ClassMean::Foreground`], `0..C` with [`ClassMean::All`]).
    pub class: usize,
    /// Number of positive pixels.
    pub positives: u64,
    /// Number of negative pixels.
    pub negatives: u64,
    /// Average precision (see [`crate::average_precision`]); `NaN` without positives.
    #[serde(with = "crate::serde_nan")]
    pub average_precision: f64,
    /// Trapezoidal PR-AUC, the reference's number (see [`crate::pr_auc_trapezoid`]); `NaN`
    /// without positives.
    #[serde(with = "crate::serde_nan")]
    pub trapezoid: f64,
    /// Area under the ROC curve (see [`crate::roc_auc`]); `NaN` without positives or
    /// negatives, and in summaries written before it existed.
    #[serde(with = "crate::serde_nan", default = "nan")]
    pub roc_auc: f64,
}

fn nan() -> f64 {
    f64::NAN
}

/// Everything an evaluation produces; round-trips through JSON (`NaN` ↔ `null`).
///
/// Summaries written before the multi-class settings existed read back with their defaults
/// (foreground mean, ignore label 255, no class names), which is what they were computed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of classes `C`.
    pub num_classes: usize,
    /// Number of images added.
    pub num_images: usize,
    /// Which classes the `reported*` scalars average.
    #[serde(default)]
    pub class_mean: ClassMean,
    /// Ground-truth value that was skipped (`None`: none was).
    #[serde(default = "default_ignore_label")]
    pub ignore_label: Option<u8>,
    /// Class names (index = class), or empty when none were given; see
    /// [`class_name`](Self::class_name).
    #[serde(default)]
    pub class_names: Vec<String>,
    /// Pooled confusion matrix, `confusion_matrix[true][pred]`.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// Pooled one-vs-rest counts per class (index = class).
    pub pooled_counts: Vec<Counts>,
    /// Pooled scores per class (index = class): the paper's way.
    pub pooled: Vec<Scores>,
    /// Per-image mean ± sample std per class (index = class), `NaN` values skipped.
    pub per_image: Vec<ScoresStats>,
    /// Pooled PR-AUC per averaged class (see [`ClassMean::classes`]), ascending; empty when no
    /// probabilities were given.
    pub pr_auc: Vec<PrAuc>,
    /// The scalar scores the paper reports: `nanmean` of `pooled` over the averaged classes
    /// (foreground: `1..C`, binary: class 1 itself; all: `0..C`).
    pub reported: Scores,
    /// `nanmean` of the pooled average precision over the averaged classes; `NaN` without
    /// probabilities.
    #[serde(with = "crate::serde_nan")]
    pub reported_average_precision: f64,
    /// `nanmean` of the pooled trapezoidal PR-AUC over the averaged classes (the paper's mAUC
    /// for lesions); `NaN` without probabilities.
    #[serde(with = "crate::serde_nan")]
    pub reported_pr_auc: f64,
    /// `nanmean` of the pooled ROC-AUC over the averaged classes; `NaN` without probabilities
    /// (and in summaries written before it existed).
    #[serde(with = "crate::serde_nan", default = "nan")]
    pub reported_roc_auc: f64,
    /// Per-image results, in the order added.
    pub images: Vec<ImageResult>,
}

fn default_ignore_label() -> Option<u8> {
    Some(DEFAULT_IGNORE_LABEL)
}

/// One class of a [`Summary`], gathered for a per-class table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassRow<'a> {
    /// The class index.
    pub class: usize,
    /// Its name, if names were given.
    pub name: Option<&'a str>,
    /// Whether the class enters the `reported*` scalars.
    pub averaged: bool,
    /// Pooled one-vs-rest counts.
    pub counts: Counts,
    /// Pooled scores.
    pub pooled: Scores,
    /// Per-image mean ± std.
    pub per_image: ScoresStats,
    /// Pooled PR-AUC (averaged classes with probabilities only).
    pub pr_auc: Option<PrAuc>,
}

impl Summary {
    /// The name of `class`: the given name, else `"class {class}"`.
    pub fn class_name(&self, class: usize) -> String {
        self.class_names
            .get(class)
            .cloned()
            .unwrap_or_else(|| format!("class {class}"))
    }

    /// One row per class `0..C`, for per-class tables.
    pub fn class_rows(&self) -> Vec<ClassRow<'_>> {
        (0..self.num_classes)
            .map(|k| ClassRow {
                class: k,
                name: self.class_names.get(k).map(String::as_str),
                averaged: self.class_mean.includes(k, self.num_classes),
                counts: self.pooled_counts[k],
                pooled: self.pooled[k],
                per_image: self.per_image[k],
                pr_auc: self.pr_auc.iter().find(|p| p.class == k).copied(),
            })
            .collect()
    }

    /// An image's headline scores: its per-class scores averaged by [`Self::class_mean`].
    pub fn image_reported(&self, image: &ImageResult) -> Scores {
        self.class_mean.mean_scores(&image.scores)
    }

    /// Mean ± sample std over images of [`image_reported`](Self::image_reported) (images whose
    /// value is `NaN` skipped per metric).
    pub fn per_image_reported(&self) -> ScoresStats {
        let scores: Vec<Scores> = self.images.iter().map(|i| self.image_reported(i)).collect();
        ScoresStats::from_scores(&scores)
    }
}

/// The settings of an [`Evaluation`]. `Default`: foreground mean, ignore label 255, no class
/// names, histograms of [`DEFAULT_BINS`] bins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationConfig {
    /// Which classes the headline scalars average.
    pub class_mean: ClassMean,
    /// Ground-truth value to skip everywhere (confusion matrix, per-image scores, PR curves);
    /// `None`: every truth must be a class.
    pub ignore_label: Option<u8>,
    /// One name per class (index = class), or empty.
    pub class_names: Vec<String>,
    /// How the pooled PR curves are accumulated.
    pub pr_mode: PrMode,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            class_mean: ClassMean::Foreground,
            ignore_label: Some(DEFAULT_IGNORE_LABEL),
            class_names: Vec::new(),
            pr_mode: PrMode::default(),
        }
    }
}

/// Accumulates a test set image by image: the pooled confusion matrix, pooled PR curves of the
/// averaged classes (when probabilities are given) and per-image results.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pooled: ConfusionMatrix,
    config: EvaluationConfig,
    /// One accumulator per averaged class (`config.class_mean.classes(C)`, in order); empty
    /// until probabilities are seen.
    curves: Vec<PrAccumulator>,
    /// Whether the images added so far came with probabilities (`None` before the first).
    with_probs: Option<bool>,
    images: Vec<ImageResult>,
}

impl Evaluation {
    /// An empty evaluation for `num_classes` classes with the default settings
    /// ([`EvaluationConfig::default`]).
    ///
    /// # Panics
    /// If `num_classes` is outside `2..=256`.
    pub fn new(num_classes: usize) -> Self {
        Self::with_bins(num_classes, DEFAULT_BINS)
    }

    /// Like [`new`](Self::new) with `num_bins` bins per PR histogram.
    ///
    /// # Panics
    /// If `num_classes` is outside `2..=256` or `num_bins == 0`.
    pub fn with_bins(num_classes: usize, num_bins: usize) -> Self {
        let config = EvaluationConfig {
            pr_mode: PrMode::Histogram { bins: num_bins },
            ..EvaluationConfig::default()
        };
        Self::with_config(num_classes, config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An empty evaluation with the given settings.
    ///
    /// # Errors
    /// [`MetricsError::ClassCount`] unless `2 <= num_classes <= 256`,
    /// [`MetricsError::ZeroBins`] for a histogram of 0 bins, [`MetricsError::ClassNames`]
    /// when names are given but not one per class.
    pub fn with_config(num_classes: usize, config: EvaluationConfig) -> Result<Self, MetricsError> {
        if !(2..=MAX_CLASSES).contains(&num_classes) {
            return Err(MetricsError::ClassCount { num_classes });
        }
        if config.pr_mode == (PrMode::Histogram { bins: 0 }) {
            return Err(MetricsError::ZeroBins);
        }
        if !config.class_names.is_empty() && config.class_names.len() != num_classes {
            return Err(MetricsError::ClassNames {
                expected: num_classes,
                actual: config.class_names.len(),
            });
        }
        Ok(Self {
            pooled: ConfusionMatrix::new(num_classes),
            config,
            curves: Vec::new(),
            with_probs: None,
            images: Vec::new(),
        })
    }

    /// Number of classes `C`.
    pub fn num_classes(&self) -> usize {
        self.pooled.num_classes()
    }

    /// The settings.
    pub fn config(&self) -> &EvaluationConfig {
        &self.config
    }

    /// The pooled confusion matrix so far.
    pub fn pooled(&self) -> &ConfusionMatrix {
        &self.pooled
    }

    /// The per-image results so far.
    pub fn images(&self) -> &[ImageResult] {
        &self.images
    }

    /// The pooled PR/ROC accumulators of the averaged classes, `(class, accumulator)`
    /// ascending; empty without probabilities.
    pub fn curves(&self) -> Vec<(usize, &PrAccumulator)> {
        let classes = self.config.class_mean.classes(self.num_classes());
        classes.zip(&self.curves).collect()
    }

    /// The pooled PR accumulator of `class`: `None` for a class that is not averaged, or
    /// before any probabilities were given.
    pub fn pr_curve(&self, class: usize) -> Option<&PrAccumulator> {
        let classes = self.config.class_mean.classes(self.num_classes());
        if !classes.contains(&class) {
            return None;
        }
        self.curves.get(class - classes.start)
    }

    /// Adds one image of `N` pixels.
    ///
    /// * `truth`, `pred`: class per pixel (`N` each). Truth pixels equal to the ignore label are
    ///   skipped everywhere (confusion matrix, this image's scores, PR curves); any other truth
    ///   must be `< C`, and every prediction `< C`.
    /// * `probs`: per-pixel class probabilities (e.g. softmax outputs), for the pooled PR-AUC
    ///   of each averaged class (one-vs-rest: class `c`'s pixels are positive, scored by the
    ///   probability of `c`). Class-major planes, like a `[C, H, W]` tensor flattened, plane
    ///   `c` holding class `c` at every pixel:
    ///   - length `C·N`: every class, `probs[c·N + i]` is `P(class c)` at pixel `i`;
    ///   - length `(C−1)·N`, only when the background is not averaged
    ///     ([`ClassMean::Foreground`]): classes `1..C` only, `probs[(c−1)·N + i]`. For
    ///     `C = 2` this is the binary layout: `probs[i]` is `P(class 1)`.
    ///
    ///   Planes of classes that are not averaged are not read. Give probabilities for every
    ///   image or for none.
    /// * `region`: if given (`N`), only pixels where it is true count (e.g. the field of view),
    ///   for the scores and the PR curves alike.
    ///
    /// Returns the image's result (also kept for the [`Summary`]).
    ///
    /// # Errors
    /// A [`MetricsError`] for mismatched lengths, an unsupported probability layout, a
    /// prediction `>= C`, a truth `>= C` that is not the ignore label, or probabilities given
    /// for some images but not others. On error nothing is added.
    pub fn add_image(
        &mut self,
        name: impl Into<String>,
        truth: &[u8],
        pred: &[u8],
        probs: Option<&[f32]>,
        region: Option<&[bool]>,
    ) -> Result<&ImageResult, MetricsError> {
        let name = name.into();
        let n = truth.len();
        let c = self.num_classes();
        let classes = self.config.class_mean.classes(c);
        check_len("pred", n, pred.len())?;
        if let Some(region) = region {
            check_len("region", n, region.len())?;
        }
        // Index of class 0's plane in `probs`: 0 with every plane, -1 without the background.
        let first_plane = match probs {
            None => None,
            Some(p) if p.len() == c * n => Some(0),
            Some(p) if p.len() == (c - 1) * n && classes.start >= 1 => Some(1),
            Some(p) => {
                return Err(MetricsError::ProbabilityLayout {
                    len: p.len(),
                    pixels: n,
                    num_classes: c,
                });
            }
        };
        if self.with_probs.is_some_and(|w| w != probs.is_some()) {
            return Err(MetricsError::InconsistentProbabilities { image: name });
        }

        let mut cm = ConfusionMatrix::new(c);
        cm.add_labels(truth, pred, region, self.config.ignore_label)?;
        // Nothing below can fail: commit.
        self.pooled.merge(&cm)?;
        self.with_probs = Some(probs.is_some());
        let (mut pr_auc, mut roc_auc) = (Vec::new(), Vec::new());
        if let (Some(probs), Some(first_plane)) = (probs, first_plane) {
            if self.curves.is_empty() {
                self.curves = classes
                    .clone()
                    .map(|_| PrAccumulator::new(self.config.pr_mode))
                    .collect();
            }
            for (curve, class) in self.curves.iter_mut().zip(classes) {
                let plane = &probs[(class - first_plane) * n..(class - first_plane + 1) * n];
                // This image's curve alone, then added to the pooled one (same mode: the
                // merge cannot fail).
                let mut own = PrAccumulator::new(self.config.pr_mode);
                add_class_pixels(
                    &mut own,
                    class,
                    truth,
                    plane,
                    region,
                    self.config.ignore_label,
                );
                pr_auc.push(own.summaries().1);
                roc_auc.push(own.roc_auc());
                curve.merge(&own)?;
            }
        }
        self.images.push(ImageResult {
            name,
            counts: (0..c).map(|k| cm.counts(k)).collect(),
            scores: cm.all_scores(),
            pr_auc: nanmean(pr_auc),
            roc_auc: nanmean(roc_auc),
        });
        Ok(self.images.last().expect("just pushed"))
    }

    /// Adds everything accumulated by `other` (e.g. a parallel worker); its images are
    /// appended after the ones of `self`.
    ///
    /// # Errors
    /// If the class counts or settings differ ([`MetricsError::BinCountMismatch`] for
    /// histograms of different sizes), or only one of the two saw probabilities. On error
    /// `self` is unchanged.
    pub fn merge(&mut self, other: Evaluation) -> Result<(), MetricsError> {
        if other.num_classes() != self.num_classes() {
            return Err(MetricsError::ClassCountMismatch {
                expected: self.num_classes(),
                actual: other.num_classes(),
            });
        }
        let (a, b) = (&self.config, &other.config);
        if let (PrMode::Histogram { bins: x }, PrMode::Histogram { bins: y }) =
            (a.pr_mode, b.pr_mode)
            && x != y
        {
            return Err(MetricsError::BinCountMismatch {
                expected: x,
                actual: y,
            });
        }
        let differs = [
            ("class_mean", a.class_mean != b.class_mean),
            ("ignore_label", a.ignore_label != b.ignore_label),
            ("class_names", a.class_names != b.class_names),
            ("pr_mode", a.pr_mode != b.pr_mode),
        ];
        if let Some((what, _)) = differs.into_iter().find(|(_, d)| *d) {
            return Err(MetricsError::ConfigMismatch { what });
        }
        if let (Some(a), Some(b)) = (self.with_probs, other.with_probs)
            && a != b
        {
            let image = other
                .images
                .first()
                .map_or_else(String::new, |r| r.name.clone());
            return Err(MetricsError::InconsistentProbabilities { image });
        }
        // Same settings: the merges below cannot fail.
        self.pooled.merge(&other.pooled)?;
        if self.curves.is_empty() {
            self.curves = other.curves;
        } else {
            for (a, b) in self.curves.iter_mut().zip(&other.curves) {
                a.merge(b)?;
            }
        }
        self.with_probs = self.with_probs.or(other.with_probs);
        self.images.extend(other.images);
        Ok(())
    }

    /// Summarises the pooled and per-image results.
    pub fn summary(&self) -> Summary {
        let c = self.num_classes();
        let mean = self.config.class_mean;
        let pooled = self.pooled.all_scores();
        let per_image = (0..c)
            .map(|k| {
                let scores: Vec<Scores> = self.images.iter().map(|r| r.scores[k]).collect();
                ScoresStats::from_scores(&scores)
            })
            .collect();
        let pr_auc: Vec<PrAuc> = self
            .curves
            .iter()
            .zip(mean.classes(c))
            .map(|(curve, class)| {
                let (average_precision, trapezoid) = curve.summaries();
                PrAuc {
                    class,
                    positives: curve.num_positives(),
                    negatives: curve.num_negatives(),
                    average_precision,
                    trapezoid,
                    roc_auc: curve.roc_auc(),
                }
            })
            .collect();
        Summary {
            num_classes: c,
            num_images: self.images.len(),
            class_mean: mean,
            ignore_label: self.config.ignore_label,
            class_names: self.config.class_names.clone(),
            confusion_matrix: self.pooled.rows(),
            pooled_counts: (0..c).map(|k| self.pooled.counts(k)).collect(),
            reported: mean.mean_scores(&pooled),
            pooled,
            per_image,
            reported_average_precision: nanmean(pr_auc.iter().map(|p| p.average_precision)),
            reported_pr_auc: nanmean(pr_auc.iter().map(|p| p.trapezoid)),
            reported_roc_auc: nanmean(pr_auc.iter().map(|p| p.roc_auc)),
            pr_auc,
            images: self.images.clone(),
        }
    }
}

/// Adds the pixels of one class to its PR accumulator: positive where the truth is `class`;
/// pixels whose truth is the ignore label, or outside the region, skipped. The truth was
/// checked by the confusion matrix before.
fn add_class_pixels(
    curve: &mut PrAccumulator,
    class: usize,
    truth: &[u8],
    plane: &[f32],
    region: Option<&[bool]>,
    ignore_label: Option<u8>,
) {
    let keep = |t: u8| Some(t) != ignore_label;
    match region {
        Some(region) => {
            for ((&t, &p), &inside) in truth.iter().zip(plane).zip(region) {
                if inside && keep(t) {
                    curve.push(p, usize::from(t) == class);
                }
            }
        }
        None => {
            for (&t, &p) in truth.iter().zip(plane) {
                if keep(t) {
                    curve.push(p, usize::from(t) == class);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::average_precision::{average_precision, pr_auc_trapezoid};

    fn close(a: f64, b: f64) -> bool {
        (a.is_nan() && b.is_nan()) || (a - b).abs() < 1e-12
    }

    /// Two binary images where the pooled IoU differs from the mean of per-image IoUs.
    fn two_images() -> Evaluation {
        let mut eval = Evaluation::new(2);
        // A: class 1 has TP 1, FN 1, FP 0, TN 2.
        eval.add_image("a", &[1, 1, 0, 0], &[1, 0, 0, 0], None, None)
            .unwrap();
        // B: class 1 has TP 4, FP 2, FN 0, TN 0.
        eval.add_image("b", &[1, 1, 1, 1, 0, 0], &[1, 1, 1, 1, 1, 1], None, None)
            .unwrap();
        eval
    }

    #[test]
    fn pooled_differs_from_per_image_mean() {
        let s = two_images().summary();
        assert_eq!(s.num_images, 2);
        assert_eq!(s.confusion_matrix, vec![vec![2, 2], vec![1, 5]]);
        assert_eq!(
            s.pooled_counts[1],
            Counts {
                tp: 5,
                fp: 2,
                fn_: 1,
                tn: 2
            }
        );
        // Pooled class 1: iou 5/8, dice 10/13, mcc (5·2 − 2·1)/sqrt(7·6·4·3) = 8/sqrt(504).
        let p = &s.pooled[1];
        assert!(
            close(p.iou, 5.0 / 8.0) && close(p.dice, 10.0 / 13.0),
            "{p:?}"
        );
        assert!(close(p.mcc, 8.0 / 504f64.sqrt()), "{p:?}");
        // Per image: iou A = 1/2, B = 4/6; mean 7/12, sample std sqrt(2·(1/12)²/1) = sqrt(1/72).
        let iou = s.per_image[1].iou;
        assert_eq!(iou.n, 2);
        assert!(
            close(iou.mean, 7.0 / 12.0) && close(iou.std, (1.0f64 / 72.0).sqrt()),
            "{iou:?}"
        );
        assert!(!close(iou.mean, p.iou));
        // Dice A = 2/3, B = 8/10: mean 11/15.
        assert!(close(s.per_image[1].dice.mean, 11.0 / 15.0));
        // MCC of B is NaN (TN + FN = 0): only A's 2/sqrt(1·2·2·3) counts, std undefined.
        let mcc = s.per_image[1].mcc;
        assert_eq!(mcc.n, 1);
        assert!(
            close(mcc.mean, 2.0 / 12f64.sqrt()) && mcc.std.is_nan(),
            "{mcc:?}"
        );
        // Specificity B = 0/2 = 0, A = 2/2: mean 1/2.
        assert!(close(s.per_image[1].specificity.mean, 0.5));
        // Binary: the reported scores are class 1's.
        assert_eq!(s.reported, s.pooled[1]);
        assert!(s.pr_auc.is_empty() && s.reported_pr_auc.is_nan());
        assert!(s.reported_average_precision.is_nan());
        assert_eq!(s.images[0].name, "a");
        assert_eq!(
            s.images[1].counts[1],
            Counts {
                tp: 4,
                fp: 2,
                fn_: 0,
                tn: 0
            }
        );
    }

    #[test]
    fn mean_std_cases() {
        let nan = f64::NAN;
        let cases: [(&[f64], f64, f64, usize); 5] = [
            (&[], nan, nan, 0),
            (&[3.0], 3.0, nan, 1),
            (&[1.0, 3.0], 2.0, 2f64.sqrt(), 2),
            (
                &[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0],
                5.0,
                (32.0f64 / 7.0).sqrt(),
                8,
            ),
            (&[nan, 1.0, nan, 3.0], 2.0, 2f64.sqrt(), 2),
        ];
        for (values, mean, std, n) in cases {
            let m = MeanStd::from_values(values);
            assert!(
                close(m.mean, mean) && close(m.std, std) && m.n == n,
                "{values:?}: {m:?}"
            );
        }
    }

    #[test]
    fn multi_class_reported_is_foreground_nanmean() {
        let mut eval = Evaluation::new(3);
        // Class 2 appears neither in truth nor in prediction: its iou etc. are NaN.
        eval.add_image("x", &[0, 0, 1, 1, 1, 0], &[0, 1, 1, 1, 0, 0], None, None)
            .unwrap();
        let s = eval.summary();
        // Class 1: TP 2, FP 1, FN 1, TN 2 → iou 1/2, dice 2/3, specificity 2/3.
        // Class 2: TN 6 only → iou NaN, specificity 1, accuracy 1.
        assert!(s.pooled[2].iou.is_nan());
        assert!(close(s.reported.iou, 0.5));
        assert!(close(s.reported.dice, 2.0 / 3.0));
        assert!(close(s.reported.specificity, (2.0 / 3.0 + 1.0) / 2.0));
        // Accuracy: class 1 (2 + 2)/6, class 2 1 → 5/6. Background (4/6) not included.
        assert!(close(s.reported.accuracy, (4.0 / 6.0 + 1.0) / 2.0));
        assert!(close(s.pooled[0].iou, 2.0 / 4.0));
    }

    #[test]
    fn probabilities_give_pooled_pr_auc() {
        // Scores on the centres of 10 bins, so the histogram is exact.
        let truth_a = [1u8, 0, 1, 0];
        let p_a = [0.95f32, 0.85, 0.75, 0.65];
        let truth_b = [0u8, 1];
        let p_b = [0.55f32, 0.05];
        let pred = |p: &[f32]| p.iter().map(|&x| u8::from(x >= 0.5)).collect::<Vec<_>>();
        let planar = |p: &[f32]| {
            p.iter()
                .map(|x| 1.0 - x)
                .chain(p.iter().copied())
                .collect::<Vec<f32>>()
        };

        let mut binary = Evaluation::with_bins(2, 10);
        binary
            .add_image("a", &truth_a, &pred(&p_a), Some(&p_a), None)
            .unwrap();
        binary
            .add_image("b", &truth_b, &pred(&p_b), Some(&p_b), None)
            .unwrap();
        let mut planes = Evaluation::with_bins(2, 10);
        planes
            .add_image("a", &truth_a, &pred(&p_a), Some(&planar(&p_a)), None)
            .unwrap();
        planes
            .add_image("b", &truth_b, &pred(&p_b), Some(&planar(&p_b)), None)
            .unwrap();

        let all_p: Vec<f32> = p_a.iter().chain(&p_b).copied().collect();
        let all_l: Vec<bool> = truth_a.iter().chain(&truth_b).map(|&t| t == 1).collect();
        // By hand: ranks + - + - - +: (R, P) = (1/3,1) (1/3,1/2) (2/3,2/3) (2/3,1/2) (2/3,2/5) (1,1/2).
        // AP = 1/3·1 + 1/3·2/3 + 1/3·1/2 = 13/18.
        let want_ap = 13.0 / 18.0;
        assert!(close(average_precision(&all_p, &all_l), want_ap));
        for s in [binary.summary(), planes.summary()] {
            assert_eq!(s.pr_auc.len(), 1);
            let pr = s.pr_auc[0];
            assert_eq!((pr.class, pr.positives, pr.negatives), (1, 3, 3));
            assert!(close(pr.average_precision, want_ap), "{pr:?}");
            assert_eq!(pr.trapezoid, pr_auc_trapezoid(&all_p, &all_l));
            assert_eq!(s.reported_pr_auc, pr.trapezoid);
            assert_eq!(s.reported_average_precision, pr.average_precision);
            // ROC: the positives .95, .75, .05 beat 3, 2 and 0 of the 3 negatives: 5/9.
            assert!(close(pr.roc_auc, 5.0 / 9.0), "{pr:?}");
            assert_eq!(s.reported_roc_auc, pr.roc_auc);
            // Per image: a is the 4-point hand case of `average_precision` (trapezoid 19/24,
            // ROC 3/4); b ranks its only negative first (ROC 0; PR from (0, 1) down to
            // (0, 0), then to (1, 1/2): area 1/4).
            let (a, b) = (&s.images[0], &s.images[1]);
            assert!(
                close(a.pr_auc, 19.0 / 24.0) && close(a.roc_auc, 0.75),
                "{a:?}"
            );
            assert!(close(b.pr_auc, 0.25) && close(b.roc_auc, 0.0), "{b:?}");
        }
    }

    #[test]
    fn multi_class_probabilities_ignore_and_region() {
        let mut eval = Evaluation::with_bins(3, 10);
        let truth = [0u8, 1, 2, 255, 1];
        let pred = [0u8, 1, 2, 0, 0];
        // Planes of 5 pixels: class 0, class 1, class 2.
        let probs = [
            0.85, 0.05, 0.05, 0.85, 0.45, // class 0
            0.05, 0.85, 0.05, 0.05, 0.35, // class 1
            0.05, 0.05, 0.85, 0.05, 0.15, // class 2
        ];
        let region = [true, true, true, true, false];
        eval.add_image("m", &truth, &pred, Some(&probs), Some(&region))
            .unwrap();
        let s = eval.summary();
        // Counted pixels: 0, 1, 2 (pixel 3 is ignored, pixel 4 outside the region).
        assert_eq!(
            s.confusion_matrix,
            vec![vec![1, 0, 0], vec![0, 1, 0], vec![0, 0, 1]]
        );
        assert_eq!(s.pr_auc.len(), 2);
        for (k, pr) in s.pr_auc.iter().enumerate() {
            assert_eq!((pr.class, pr.positives, pr.negatives), (k + 1, 1, 2));
            assert_eq!((pr.average_precision, pr.trapezoid), (1.0, 1.0));
        }
        assert_eq!(s.reported.iou, 1.0);
    }

    #[test]
    fn errors_add_nothing() {
        let mut eval = Evaluation::new(2);
        eval.add_image("ok", &[0, 1], &[0, 1], Some(&[0.1, 0.9]), None)
            .unwrap();
        let before = eval.summary();
        let mut e3 = Evaluation::new(3);
        let cases = [
            (
                eval.add_image("p", &[0, 1], &[0], None, None).map(|_| ()),
                MetricsError::LengthMismatch {
                    what: "pred",
                    expected: 2,
                    actual: 1,
                },
            ),
            (
                eval.add_image("r", &[0, 1], &[0, 1], Some(&[0.1, 0.9]), Some(&[true]))
                    .map(|_| ()),
                MetricsError::LengthMismatch {
                    what: "region",
                    expected: 2,
                    actual: 1,
                },
            ),
            (
                eval.add_image("l", &[0, 1], &[0, 1], Some(&[0.1, 0.9, 0.3]), None)
                    .map(|_| ()),
                MetricsError::ProbabilityLayout {
                    len: 3,
                    pixels: 2,
                    num_classes: 2,
                },
            ),
            (
                eval.add_image("n", &[0, 1], &[0, 1], None, None)
                    .map(|_| ()),
                MetricsError::InconsistentProbabilities { image: "n".into() },
            ),
            (
                eval.add_image("o", &[0, 1], &[0, 2], Some(&[0.1, 0.9]), None)
                    .map(|_| ()),
                MetricsError::PredictionOutOfRange {
                    index: 1,
                    value: 2,
                    num_classes: 2,
                },
            ),
            (
                // Length N is only accepted for binary problems.
                e3.add_image("b", &[0, 1], &[0, 1], Some(&[0.1, 0.9]), None)
                    .map(|_| ()),
                MetricsError::ProbabilityLayout {
                    len: 2,
                    pixels: 2,
                    num_classes: 3,
                },
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, Err(want));
        }
        // Compare through JSON, where NaN == NaN (null).
        let json = |s: &Summary| serde_json::to_string(s).unwrap();
        assert_eq!(json(&eval.summary()), json(&before));
        assert_eq!(e3.summary().num_images, 0);
    }

    #[test]
    fn merge_equals_single_accumulation() {
        let single = two_images();
        let mut a = Evaluation::new(2);
        a.add_image("a", &[1, 1, 0, 0], &[1, 0, 0, 0], None, None)
            .unwrap();
        let mut b = Evaluation::new(2);
        b.add_image("b", &[1, 1, 1, 1, 0, 0], &[1, 1, 1, 1, 1, 1], None, None)
            .unwrap();
        a.merge(b).unwrap();
        let (x, y) = (a.summary(), single.summary());
        // Compare through JSON, where NaN == NaN (null).
        assert_eq!(
            serde_json::to_string(&x).unwrap(),
            serde_json::to_string(&y).unwrap()
        );
        assert_eq!(
            a.merge(Evaluation::new(3)).unwrap_err(),
            MetricsError::ClassCountMismatch {
                expected: 2,
                actual: 3
            }
        );
    }

    #[test]
    fn summary_json_round_trip() {
        let mut eval = Evaluation::with_bins(3, 16);
        let truth = [0u8, 1, 1, 0, 2, 0];
        let pred = [0u8, 1, 0, 0, 0, 0];
        let probs: Vec<f32> = (0..18).map(|i| (i as f32 * 0.37) % 1.0).collect();
        eval.add_image("one", &truth, &pred, Some(&probs), None)
            .unwrap();
        eval.add_image("two", &[0, 0, 0, 0, 0, 0], &[0; 6], Some(&probs), None)
            .unwrap();
        let summary = eval.summary();
        // Image "two" has no foreground: NaN iou for classes 1 and 2 → null in JSON.
        assert!(summary.images[1].scores[1].iou.is_nan());
        // Class 2 occurs once in the truth and is never predicted: iou 0, precision NaN.
        assert_eq!(summary.pooled[2].iou, 0.0);
        assert!(summary.pooled[2].precision.is_nan());
        let json = serde_json::to_string_pretty(&summary).unwrap();
        assert!(json.contains("null"));
        let back: Summary = serde_json::from_str(&json).unwrap();
        assert!(back.images[1].scores[1].iou.is_nan());
        assert_eq!(back.per_image[1].iou.n, 1);
        assert_eq!(back.confusion_matrix, summary.confusion_matrix);
        assert_eq!(serde_json::to_string_pretty(&back).unwrap(), json);
    }
}
