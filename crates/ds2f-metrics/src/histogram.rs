//! [`PrHistogram`]: a memory-bounded, mergeable accumulator for PR-AUC over a whole dataset.
//!
//! Scores in `[0, 1]` are binned into `B` equal bins (default [`DEFAULT_BINS`] = 65536);
//! per bin the number of positive and negative pixels is kept (`16·B` bytes). Bin `k` holds
//! scores in `[k/B, (k+1)/B)`, the last bin also holds `1.0`; scores below 0 go to bin 0 and
//! above 1 to the last bin; `NaN` scores are skipped. The curve is then walked bin by bin,
//! highest first, treating each bin as one threshold — exactly what the sort-based
//! [`crate::average_precision`] / [`crate::pr_auc_trapezoid`] do when all scores of a bin are
//! equal (e.g. scores on bin centres). Otherwise the error is bounded by the within-bin
//! reordering, tiny for `B = 65536` (bin width 1.5e-5).

use crate::average_precision::{PrPoint, curve_points, summarize};
use crate::error::{MetricsError, check_len};
use crate::roc::{RocPoint, roc_area, roc_points};

/// Default number of bins of a [`PrHistogram`].
pub const DEFAULT_BINS: usize = 65536;

/// Histogram of positive and negative scores on `[0, 1]`; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrHistogram {
    positives: Vec<u64>,
    negatives: Vec<u64>,
}

impl Default for PrHistogram {
    /// A histogram with [`DEFAULT_BINS`] bins.
    fn default() -> Self {
        Self::new(DEFAULT_BINS)
    }
}

impl PrHistogram {
    /// An empty histogram with `num_bins` bins on `[0, 1]`.
    ///
    /// # Panics
    /// If `num_bins == 0`.
    pub fn new(num_bins: usize) -> Self {
        assert!(num_bins > 0, "PrHistogram needs at least one bin");
        Self {
            positives: vec![0; num_bins],
            negatives: vec![0; num_bins],
        }
    }

    /// Number of bins `B`.
    pub fn num_bins(&self) -> usize {
        self.positives.len()
    }

    /// Number of positive pixels added.
    pub fn num_positives(&self) -> u64 {
        self.positives.iter().sum()
    }

    /// Number of negative pixels added.
    pub fn num_negatives(&self) -> u64 {
        self.negatives.iter().sum()
    }

    /// The bin of a (non-NaN) score: `floor(score·B)`, clamped to `0..B`.
    #[inline]
    fn bin(&self, score: f32) -> usize {
        let b = self.positives.len();
        // `as usize` saturates: negative values give 0.
        ((f64::from(score) * b as f64) as usize).min(b - 1)
    }

    /// Adds one pixel. `NaN` scores are skipped.
    #[inline]
    pub fn push(&mut self, score: f32, label: bool) {
        if score.is_nan() {
            return;
        }
        let k = self.bin(score);
        if label {
            self.positives[k] += 1;
        } else {
            self.negatives[k] += 1;
        }
    }

    /// Adds every pixel: `scores[i]` is the probability of the positive class, `labels[i]`
    /// whether the pixel is positive.
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

    /// Like [`add`](Self::add), counting only pixels where `region[i]` is true.
    ///
    /// # Errors
    /// [`MetricsError::LengthMismatch`] if the lengths differ (`self` is then unchanged).
    pub fn add_masked(
        &mut self,
        scores: &[f32],
        labels: &[bool],
        region: &[bool],
    ) -> Result<(), MetricsError> {
        check_len("labels", scores.len(), labels.len())?;
        check_len("region", scores.len(), region.len())?;
        for ((&s, &l), &inside) in scores.iter().zip(labels).zip(region) {
            if inside {
                self.push(s, l);
            }
        }
        Ok(())
    }

    /// Adds the counts of `other`.
    ///
    /// # Errors
    /// [`MetricsError::BinCountMismatch`] if the bin counts differ.
    pub fn merge(&mut self, other: &PrHistogram) -> Result<(), MetricsError> {
        if other.num_bins() != self.num_bins() {
            return Err(MetricsError::BinCountMismatch {
                expected: self.num_bins(),
                actual: other.num_bins(),
            });
        }
        for (a, b) in self.positives.iter_mut().zip(&other.positives) {
            *a += b;
        }
        for (a, b) in self.negatives.iter_mut().zip(&other.negatives) {
            *a += b;
        }
        Ok(())
    }

    /// Bins as `(positives, negatives)`, highest bin first.
    fn groups(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.positives
            .iter()
            .zip(&self.negatives)
            .rev()
            .map(|(&p, &n)| (p, n))
    }

    /// Average precision `Σ (R_n − R_{n−1}) P_n`, one threshold per non-empty bin (see
    /// [`crate::average_precision`]). `NaN` without positives.
    pub fn average_precision(&self) -> f64 {
        summarize(self.groups(), self.num_positives()).0
    }

    /// `(average precision, trapezoidal PR-AUC)` in one walk over the bins.
    pub fn summaries(&self) -> (f64, f64) {
        summarize(self.groups(), self.num_positives())
    }

    /// Trapezoidal PR-AUC, one point per non-empty bin plus `(0, 1)` (see
    /// [`crate::pr_auc_trapezoid`]). `NaN` without positives.
    pub fn pr_auc_trapezoid(&self) -> f64 {
        summarize(self.groups(), self.num_positives()).1
    }

    /// Area under the ROC curve, one threshold per non-empty bin (see [`crate::roc_auc`]);
    /// `NaN` without positives or negatives.
    pub fn roc_auc(&self) -> f64 {
        roc_area(self.groups(), self.num_positives(), self.num_negatives())
    }

    /// The ROC curve, one point per non-empty bin, highest threshold (lower bin edge) first.
    pub fn roc_curve(&self) -> Vec<RocPoint> {
        roc_points(
            self.edge_groups(),
            self.num_positives(),
            self.num_negatives(),
        )
    }

    /// Bins as `(lower edge k/B, positives, negatives)`, highest bin first.
    fn edge_groups(&self) -> impl Iterator<Item = (f64, u64, u64)> + '_ {
        let b = self.num_bins() as f64;
        let n = self.num_bins();
        self.groups()
            .enumerate()
            .map(move |(i, (p, q))| ((n - 1 - i) as f64 / b, p, q))
    }

    /// The curve, one point per non-empty bin, highest threshold first; the threshold is the
    /// bin's lower edge `k/B`. Recall is `NaN` without positives.
    pub fn curve(&self) -> Vec<PrPoint> {
        curve_points(self.edge_groups(), self.num_positives())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::average_precision::{average_precision, pr_auc_trapezoid, precision_recall_curve};

    /// Tiny deterministic generator (Knuth's MMIX LCG), upper bits as a uniform in [0, 1).
    struct Lcg(u64);

    impl Lcg {
        fn next_f64(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn agrees_with_exact_on_random_data() {
        let mut rng = Lcg(42);
        for (n, pos_rate, separation) in
            [(20_000, 0.1, 0.3), (50_000, 0.02, 0.5), (5_000, 0.5, 0.0)]
        {
            let mut scores = Vec::with_capacity(n);
            let mut labels = Vec::with_capacity(n);
            for _ in 0..n {
                let label = rng.next_f64() < pos_rate;
                let shift = if label { separation } else { 0.0 };
                let s = (rng.next_f64() * (1.0 - separation) + shift) as f32;
                scores.push(s);
                labels.push(label);
            }
            let mut hist = PrHistogram::default();
            hist.add(&scores, &labels).unwrap();
            let (ap, trap) = (
                average_precision(&scores, &labels),
                pr_auc_trapezoid(&scores, &labels),
            );
            let (hap, htrap) = (hist.average_precision(), hist.pr_auc_trapezoid());
            assert!(
                (ap - hap).abs() < 1e-3,
                "n {n}: AP exact {ap} vs histogram {hap}"
            );
            assert!(
                (trap - htrap).abs() < 1e-3,
                "n {n}: trapezoid exact {trap} vs histogram {htrap}"
            );
            assert!(ap > 0.0 && ap <= 1.0);
        }
    }

    #[test]
    fn exact_on_bin_centres() {
        let bins = 1000;
        let mut rng = Lcg(7);
        let mut scores = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..10_000 {
            // Few distinct centres so that many ties occur.
            let k = (rng.next_f64() * 200.0) as usize * 5;
            let s = ((k as f64 + 0.5) / bins as f64) as f32;
            scores.push(s);
            labels.push(rng.next_f64() < (k as f64 / bins as f64));
        }
        let mut hist = PrHistogram::new(bins);
        hist.add(&scores, &labels).unwrap();
        assert_eq!(
            hist.average_precision(),
            average_precision(&scores, &labels)
        );
        assert_eq!(hist.pr_auc_trapezoid(), pr_auc_trapezoid(&scores, &labels));
        let exact_curve = precision_recall_curve(&scores, &labels);
        let hist_curve = hist.curve();
        assert_eq!(exact_curve.len(), hist_curve.len());
        for (e, h) in exact_curve.iter().zip(&hist_curve) {
            assert_eq!((e.precision, e.recall), (h.precision, h.recall));
            assert!(
                e.threshold - h.threshold > 0.0 && e.threshold - h.threshold < 1.0 / bins as f64
            );
        }
    }

    /// (label, scores, labels, expected AP, expected trapezoid).
    type ApCase = (&'static str, &'static [f32], &'static [bool], f64, f64);

    #[test]
    fn hand_computed_cases() {
        // The 4-point example of `average_precision`: AP 5/6, trapezoid 19/24.
        let cases: [ApCase; 3] = [
            (
                "4 points",
                &[0.9, 0.8, 0.7, 0.6],
                &[true, false, true, false],
                5.0 / 6.0,
                19.0 / 24.0,
            ),
            (
                "perfect",
                &[1.0, 0.9, 0.2, 0.0],
                &[true, true, false, false],
                1.0,
                1.0,
            ),
            // 100 bins. Out-of-range scores are clamped into the end bins: 1.5 ranks with 1.0 and -1
            // with 0.0. Groups: {1.5+, 1.0-} (R, P) = (1/2, 1/2); {0.5+} (1, 2/3);
            // {0.0-, -1-} (1, 2/5). AP = 1/2·1/2 + 1/2·2/3 = 7/12.
            // Trap = 1/2·(1 + 1/2)/2 + 1/2·(1/2 + 2/3)/2 = 3/8 + 7/24 = 2/3.
            (
                "clamped",
                &[1.5, 1.0, 0.5, 0.0, -1.0],
                &[true, false, true, false, false],
                7.0 / 12.0,
                2.0 / 3.0,
            ),
        ];
        for (label, scores, labels, ap, trap) in cases {
            let mut hist = PrHistogram::new(100);
            hist.add(scores, labels).unwrap();
            assert!(
                (hist.average_precision() - ap).abs() < 1e-12,
                "{label}: AP {}",
                hist.average_precision()
            );
            assert!(
                (hist.pr_auc_trapezoid() - trap).abs() < 1e-12,
                "{label}: trap {}",
                hist.pr_auc_trapezoid()
            );
        }
        let mut negatives_only = PrHistogram::default();
        negatives_only.add(&[0.1, 0.9], &[false, false]).unwrap();
        assert!(negatives_only.average_precision().is_nan());
        assert!(negatives_only.pr_auc_trapezoid().is_nan());
        assert!(PrHistogram::default().average_precision().is_nan());
    }

    #[test]
    fn merge_and_mask() {
        let scores: Vec<f32> = (0..999).map(|i| ((i * 37) % 101) as f32 / 100.0).collect();
        let labels: Vec<bool> = (0..999)
            .map(|i| (i * 37) % 101 > 40 && i % 3 != 0)
            .collect();
        let mut whole = PrHistogram::new(128);
        whole.add(&scores, &labels).unwrap();
        let mut a = PrHistogram::new(128);
        let mut b = PrHistogram::new(128);
        a.add(&scores[..500], &labels[..500]).unwrap();
        b.add(&scores[500..], &labels[500..]).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a, whole);
        assert_eq!(whole.num_positives() + whole.num_negatives(), 999);

        let region: Vec<bool> = (0..999).map(|i| i % 4 != 1).collect();
        let mut masked = PrHistogram::new(128);
        masked.add_masked(&scores, &labels, &region).unwrap();
        let mut subset = PrHistogram::new(128);
        for i in (0..999).filter(|&i| region[i]) {
            subset.push(scores[i], labels[i]);
        }
        assert_eq!(masked, subset);

        assert_eq!(
            a.merge(&PrHistogram::new(64)),
            Err(MetricsError::BinCountMismatch {
                expected: 128,
                actual: 64
            })
        );
        assert_eq!(
            a.add(&[0.5], &[]),
            Err(MetricsError::LengthMismatch {
                what: "labels",
                expected: 1,
                actual: 0
            })
        );
        assert_eq!(a, whole);
    }
}
