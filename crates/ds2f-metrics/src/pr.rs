//! One-vs-rest precision–recall accumulators of a class, pooled over a test set: the
//! memory-bounded [`PrHistogram`] for real runs, or the exact, sort-based [`ExactPr`] (keeps
//! every pixel) for tests and small sets. [`PrAccumulator`] holds either, as chosen by
//! [`PrMode`].

use serde::{Deserialize, Serialize};

use crate::average_precision::{PrPoint, exact_summaries, precision_recall_curve};
use crate::error::{MetricsError, check_len};
use crate::histogram::{DEFAULT_BINS, PrHistogram};
use crate::roc::{RocPoint, roc_auc, roc_curve};

/// How pooled PR curves are accumulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrMode {
    /// A [`PrHistogram`] of this many bins per class: `16·bins` bytes whatever the number of
    /// pixels, mergeable; exact whenever no bin mixes distinct scores (see [`PrHistogram`]).
    Histogram {
        /// Number of bins on `[0, 1]` (at least 1).
        bins: usize,
    },
    /// An [`ExactPr`] per class: every `(score, label)` is kept (8 bytes a pixel and class)
    /// and sorted at the end; every distinct score is a threshold, as in sklearn.
    Exact,
}

impl Default for PrMode {
    /// A histogram of [`DEFAULT_BINS`] bins.
    fn default() -> Self {
        PrMode::Histogram { bins: DEFAULT_BINS }
    }
}

/// Every `(score, label)` pair of one class, for the exact sort-based PR summaries
/// ([`crate::average_precision`], [`crate::pr_auc_trapezoid`]). `NaN` scores are skipped, as in
/// [`PrHistogram`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExactPr {
    scores: Vec<f32>,
    labels: Vec<bool>,
}

impl ExactPr {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one pixel. `NaN` scores are skipped.
    pub fn push(&mut self, score: f32, label: bool) {
        if !score.is_nan() {
            self.scores.push(score);
            self.labels.push(label);
        }
    }

    /// Adds every pixel: `scores[i]` is the probability of the class, `labels[i]` whether the
    /// pixel belongs to it.
    ///
    /// # Errors
    /// [`MetricsError::LengthMismatch`] if the lengths differ (`self` is then unchanged).
    pub fn add(&mut self, scores: &[f32], labels: &[bool]) -> Result<(), MetricsError> {
        check_len("labels", scores.len(), labels.len())?;
        for (&s, &l) in scores.iter().zip(labels) {
            self.push(s, l);
        }
        Ok(())
    }

    /// Appends the pixels of `other`.
    pub fn merge(&mut self, other: &ExactPr) {
        self.scores.extend_from_slice(&other.scores);
        self.labels.extend_from_slice(&other.labels);
    }

    /// Number of positive pixels kept.
    pub fn num_positives(&self) -> u64 {
        self.labels.iter().filter(|&&l| l).count() as u64
    }

    /// Number of negative pixels kept.
    pub fn num_negatives(&self) -> u64 {
        self.labels.len() as u64 - self.num_positives()
    }

    /// `(average precision, trapezoidal PR-AUC)`, exact; `NaN` without positives.
    pub fn summaries(&self) -> (f64, f64) {
        exact_summaries(&self.scores, &self.labels)
    }

    /// The exact ROC-AUC (see [`crate::roc_auc`]).
    pub fn roc_auc(&self) -> f64 {
        roc_auc(&self.scores, &self.labels)
    }

    /// The exact ROC curve, highest threshold first (see [`crate::roc_curve`]).
    pub fn roc_curve(&self) -> Vec<RocPoint> {
        roc_curve(&self.scores, &self.labels)
    }

    /// The exact curve, highest threshold first (see [`crate::precision_recall_curve`]).
    pub fn curve(&self) -> Vec<PrPoint> {
        precision_recall_curve(&self.scores, &self.labels)
    }
}

/// The PR accumulator of one class, as chosen by [`PrMode`].
#[derive(Debug, Clone, PartialEq)]
pub enum PrAccumulator {
    /// Memory-bounded, binned.
    Histogram(PrHistogram),
    /// Exact, every pixel kept.
    Exact(ExactPr),
}

impl PrAccumulator {
    /// An empty accumulator of the given mode.
    ///
    /// # Panics
    /// If the mode is a histogram of 0 bins.
    pub fn new(mode: PrMode) -> Self {
        match mode {
            PrMode::Histogram { bins } => PrAccumulator::Histogram(PrHistogram::new(bins)),
            PrMode::Exact => PrAccumulator::Exact(ExactPr::new()),
        }
    }

    /// The mode this accumulator was made with.
    pub fn mode(&self) -> PrMode {
        match self {
            PrAccumulator::Histogram(h) => PrMode::Histogram { bins: h.num_bins() },
            PrAccumulator::Exact(_) => PrMode::Exact,
        }
    }

    /// Adds one pixel. `NaN` scores are skipped.
    #[inline]
    pub fn push(&mut self, score: f32, label: bool) {
        match self {
            PrAccumulator::Histogram(h) => h.push(score, label),
            PrAccumulator::Exact(e) => e.push(score, label),
        }
    }

    /// Adds the pixels of `other`.
    ///
    /// # Errors
    /// [`MetricsError::BinCountMismatch`] for histograms of different sizes,
    /// [`MetricsError::ConfigMismatch`] (`"pr_mode"`) for a histogram and an exact
    /// accumulator. On error `self` is unchanged.
    pub fn merge(&mut self, other: &PrAccumulator) -> Result<(), MetricsError> {
        match (self, other) {
            (PrAccumulator::Histogram(a), PrAccumulator::Histogram(b)) => a.merge(b),
            (PrAccumulator::Exact(a), PrAccumulator::Exact(b)) => {
                a.merge(b);
                Ok(())
            }
            _ => Err(MetricsError::ConfigMismatch { what: "pr_mode" }),
        }
    }

    /// Number of positive pixels added.
    pub fn num_positives(&self) -> u64 {
        match self {
            PrAccumulator::Histogram(h) => h.num_positives(),
            PrAccumulator::Exact(e) => e.num_positives(),
        }
    }

    /// Number of negative pixels added.
    pub fn num_negatives(&self) -> u64 {
        match self {
            PrAccumulator::Histogram(h) => h.num_negatives(),
            PrAccumulator::Exact(e) => e.num_negatives(),
        }
    }

    /// `(average precision, trapezoidal PR-AUC)`; `NaN` without positives.
    pub fn summaries(&self) -> (f64, f64) {
        match self {
            PrAccumulator::Histogram(h) => h.summaries(),
            PrAccumulator::Exact(e) => e.summaries(),
        }
    }

    /// Area under the ROC curve; `NaN` without positives or negatives.
    pub fn roc_auc(&self) -> f64 {
        match self {
            PrAccumulator::Histogram(h) => h.roc_auc(),
            PrAccumulator::Exact(e) => e.roc_auc(),
        }
    }

    /// The ROC curve, highest threshold first.
    pub fn roc_curve(&self) -> Vec<RocPoint> {
        match self {
            PrAccumulator::Histogram(h) => h.roc_curve(),
            PrAccumulator::Exact(e) => e.roc_curve(),
        }
    }

    /// The curve, highest threshold first (one point per non-empty bin, or per distinct score).
    pub fn curve(&self) -> Vec<PrPoint> {
        match self {
            PrAccumulator::Histogram(h) => h.curve(),
            PrAccumulator::Exact(e) => e.curve(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::average_precision::{average_precision, pr_auc_trapezoid};

    #[test]
    fn exact_matches_free_functions_and_merges() {
        // The tie example of `average_precision`: AP 5/6, trapezoid 11/12; a NaN is skipped.
        let scores = [0.9f32, 0.5, f32::NAN, 0.5, 0.1];
        let labels = [true, true, true, false, false];
        let mut whole = ExactPr::new();
        whole.add(&scores, &labels).unwrap();
        assert_eq!((whole.num_positives(), whole.num_negatives()), (2, 2));
        let (ap, trap) = whole.summaries();
        assert!((ap - 5.0 / 6.0).abs() < 1e-15 && (trap - 11.0 / 12.0).abs() < 1e-15);
        assert_eq!(ap, average_precision(&scores, &labels));
        assert_eq!(trap, pr_auc_trapezoid(&scores, &labels));
        assert_eq!(whole.curve().len(), 3);

        let mut a = PrAccumulator::new(PrMode::Exact);
        let mut b = PrAccumulator::new(PrMode::Exact);
        for (i, (&s, &l)) in scores.iter().zip(&labels).enumerate() {
            if i < 2 { a.push(s, l) } else { b.push(s, l) }
        }
        a.merge(&b).unwrap();
        assert_eq!(a.summaries(), (ap, trap));
        assert_eq!(a.mode(), PrMode::Exact);
        assert_eq!(
            ExactPr::new().add(&[0.1], &[]),
            Err(MetricsError::LengthMismatch {
                what: "labels",
                expected: 1,
                actual: 0
            })
        );
    }

    #[test]
    fn histogram_accumulator_and_mode_mismatch() {
        // Bin centres of 10 bins: the histogram is exact.
        let scores = [0.95f32, 0.55, 0.55, 0.15];
        let labels = [true, true, false, false];
        let mut h = PrAccumulator::new(PrMode::Histogram { bins: 10 });
        for (&s, &l) in scores.iter().zip(&labels) {
            h.push(s, l);
        }
        assert_eq!(h.mode(), PrMode::Histogram { bins: 10 });
        assert_eq!(
            h.summaries(),
            (
                average_precision(&scores, &labels),
                pr_auc_trapezoid(&scores, &labels)
            )
        );
        assert_eq!((h.num_positives(), h.num_negatives()), (2, 2));
        // Pairs (pos, neg): 0.95 > both, 0.55 ties one and beats one: (2 + 1.5)/4.
        assert_eq!(h.roc_auc(), 0.875);
        assert_eq!(h.roc_auc(), crate::roc_auc(&scores, &labels));
        let rates = |c: Vec<crate::RocPoint>| c.iter().map(|p| (p.fpr, p.tpr)).collect::<Vec<_>>();
        assert_eq!(rates(h.roc_curve()), [(0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        assert_eq!(
            rates(h.roc_curve()),
            rates(crate::roc_curve(&scores, &labels))
        );
        let before = h.clone();
        assert_eq!(
            h.merge(&PrAccumulator::new(PrMode::Exact)),
            Err(MetricsError::ConfigMismatch { what: "pr_mode" })
        );
        assert_eq!(
            h.merge(&PrAccumulator::new(PrMode::Histogram { bins: 4 })),
            Err(MetricsError::BinCountMismatch {
                expected: 10,
                actual: 4
            })
        );
        assert_eq!(h, before);
        assert_eq!(PrMode::default(), PrMode::Histogram { bins: DEFAULT_BINS });
    }
}
