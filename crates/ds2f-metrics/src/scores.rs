//! The per-class ratios of the paper, derived from one-vs-rest [`Counts`].
//!
//! ```text
//! iou = TP/(TP+FN+FP)        dice = 2TP/(2TP+FN+FP)
//! precision = TP/(TP+FP)     recall = TP/(TP+FN)    specificity = TN/(TN+FP)
//! accuracy = (TP+TN)/(TP+FP+FN+TN)
//! mcc = (TP·TN − FP·FN)/sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))
//! bm  = recall + specificity − 1      (informedness)
//! ```
//!
//! **Undefined ratios are `NaN`, never silently 0.** A ratio is undefined when its denominator
//! is 0; `bm` is `NaN` when recall or specificity is; `mcc` is `NaN` when any of the four
//! factors under the root is 0 (sklearn returns 0 there; the float reference code divides
//! 0/0 and gets NaN, as we do). Consequences, fixed by the tests:
//!
//! | case                              | iou | dice | prec | rec | spec | acc | mcc | bm  |
//! |-----------------------------------|-----|------|------|-----|------|-----|-----|-----|
//! | empty truth, empty pred (TP=FP=FN=0) | NaN | NaN | NaN | NaN | 1  | 1   | NaN | NaN |
//! | all-positive truth, all-positive pred | 1 | 1   | 1    | 1   | NaN  | 1   | NaN | NaN |
//! | positives in truth, empty pred    | 0   | 0    | NaN  | 0   | 1    | TN/N | NaN | 0  |
//!
//! All arithmetic is in `f64` (MCC's products too), so counts of 1e9 and more do not
//! overflow.

use serde::{Deserialize, Serialize};

use crate::confusion::Counts;

/// The metrics of one class. `NaN` marks an undefined value (see the module docs); in JSON it
/// is written as `null`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Intersection over union (Jaccard), `TP/(TP+FP+FN)`.
    #[serde(with = "crate::serde_nan")]
    pub iou: f64,
    /// Dice (F1), `2TP/(2TP+FP+FN)`.
    #[serde(with = "crate::serde_nan")]
    pub dice: f64,
    /// Matthews correlation coefficient.
    #[serde(with = "crate::serde_nan")]
    pub mcc: f64,
    /// Bookmaker informedness, `recall + specificity − 1`.
    #[serde(with = "crate::serde_nan")]
    pub bm: f64,
    /// Precision (positive predictive value), `TP/(TP+FP)`.
    #[serde(with = "crate::serde_nan")]
    pub precision: f64,
    /// Recall (sensitivity), `TP/(TP+FN)`.
    #[serde(with = "crate::serde_nan")]
    pub recall: f64,
    /// Specificity, `TN/(TN+FP)`.
    #[serde(with = "crate::serde_nan")]
    pub specificity: f64,
    /// One-vs-rest accuracy, `(TP+TN)/total`.
    #[serde(with = "crate::serde_nan")]
    pub accuracy: f64,
}

/// `num / den` in `f64`; `NaN` when `den == 0` (including 0/0).
fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 { f64::NAN } else { num / den }
}

impl Scores {
    /// All metrics `NaN`.
    pub const NAN: Scores = Scores {
        iou: f64::NAN,
        dice: f64::NAN,
        mcc: f64::NAN,
        bm: f64::NAN,
        precision: f64::NAN,
        recall: f64::NAN,
        specificity: f64::NAN,
        accuracy: f64::NAN,
    };

    /// Computes every metric from the counts (see the module docs for the `NaN` convention).
    pub fn from_counts(counts: &Counts) -> Scores {
        let tp = counts.tp as f64;
        let fp = counts.fp as f64;
        let fn_ = counts.fn_ as f64;
        let tn = counts.tn as f64;
        let recall = ratio(tp, tp + fn_);
        let specificity = ratio(tn, tn + fp);
        let mcc_den = ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
        Scores {
            iou: ratio(tp, tp + fp + fn_),
            dice: ratio(2.0 * tp, 2.0 * tp + fp + fn_),
            mcc: ratio(tp * tn - fp * fn_, mcc_den),
            bm: recall + specificity - 1.0,
            precision: ratio(tp, tp + fp),
            recall,
            specificity,
            accuracy: ratio(tp + tn, tp + fp + fn_ + tn),
        }
    }

    /// The value of one metric.
    pub fn get(&self, metric: Metric) -> f64 {
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

    /// Mutable access to one metric.
    pub fn get_mut(&mut self, metric: Metric) -> &mut f64 {
        match metric {
            Metric::Iou => &mut self.iou,
            Metric::Dice => &mut self.dice,
            Metric::Mcc => &mut self.mcc,
            Metric::Bm => &mut self.bm,
            Metric::Precision => &mut self.precision,
            Metric::Recall => &mut self.recall,
            Metric::Specificity => &mut self.specificity,
            Metric::Accuracy => &mut self.accuracy,
        }
    }

    /// Metric-wise [`nanmean`] over several score sets (e.g. over lesion classes 1..C−1).
    /// All `NaN` for an empty slice.
    pub fn nanmean(all: &[Scores]) -> Scores {
        let mut out = Scores::NAN;
        for metric in Metric::ALL {
            *out.get_mut(metric) = nanmean(all.iter().map(|s| s.get(metric)));
        }
        out
    }
}

/// Mean of the values that are not `NaN`; `NaN` if there are none (like `numpy.nanmean`).
pub fn nanmean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .into_iter()
        .filter(|v| !v.is_nan())
        .fold((0.0, 0u64), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

/// Names one field of [`Scores`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// [`Scores::iou`].
    Iou,
    /// [`Scores::dice`].
    Dice,
    /// [`Scores::mcc`].
    Mcc,
    /// [`Scores::bm`].
    Bm,
    /// [`Scores::precision`].
    Precision,
    /// [`Scores::recall`].
    Recall,
    /// [`Scores::specificity`].
    Specificity,
    /// [`Scores::accuracy`].
    Accuracy,
}

impl Metric {
    /// Every metric, in the field order of [`Scores`].
    pub const ALL: [Metric; 8] = [
        Metric::Iou,
        Metric::Dice,
        Metric::Mcc,
        Metric::Bm,
        Metric::Precision,
        Metric::Recall,
        Metric::Specificity,
        Metric::Accuracy,
    ];

    /// The field name, as in JSON (`"iou"`, `"dice"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Iou => "iou",
            Metric::Dice => "dice",
            Metric::Mcc => "mcc",
            Metric::Bm => "bm",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::Specificity => "specificity",
            Metric::Accuracy => "accuracy",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: f64 = f64::NAN;

    /// Equal, treating NaN == NaN, within `tol` relative.
    fn same(a: f64, b: f64, tol: f64) -> bool {
        (a.is_nan() && b.is_nan()) || (a - b).abs() <= tol * b.abs().max(1e-300) || a == b
    }

    fn assert_scores(got: &Scores, want: [f64; 8], label: &str) {
        for (metric, w) in Metric::ALL.into_iter().zip(want) {
            let g = got.get(metric);
            assert!(
                same(g, w, 1e-12),
                "{label}: {} = {g}, expected {w}",
                metric.name()
            );
        }
    }

    #[test]
    fn edge_cases_by_hand() {
        // Order: iou, dice, mcc, bm, precision, recall, specificity, accuracy.
        let cases: [(&str, Counts, [f64; 8]); 6] = [
            (
                // Nothing to find, nothing found: only TN.
                "empty truth & empty pred",
                Counts {
                    tp: 0,
                    fp: 0,
                    fn_: 0,
                    tn: 100,
                },
                [N, N, N, N, N, N, 1.0, 1.0],
            ),
            (
                // Whole image positive and predicted positive.
                "all-positive image, all-positive pred",
                Counts {
                    tp: 100,
                    fp: 0,
                    fn_: 0,
                    tn: 0,
                },
                [1.0, 1.0, N, N, 1.0, 1.0, N, 1.0],
            ),
            (
                // Whole image positive, half of it found.
                "all-positive image, half found",
                Counts {
                    tp: 50,
                    fp: 0,
                    fn_: 50,
                    tn: 0,
                },
                [0.5, 100.0 / 150.0, N, N, 1.0, 0.5, N, 0.5],
            ),
            (
                // 10 positive pixels, prediction all negative: recall 0, spec 1, bm 0.
                "all-negative prediction",
                Counts {
                    tp: 0,
                    fp: 0,
                    fn_: 10,
                    tn: 90,
                },
                [0.0, 0.0, N, 0.0, N, 0.0, 1.0, 0.9],
            ),
            (
                // Empty truth, 5 false alarms: iou 0, precision 0, recall 0/0.
                "empty truth, false alarms",
                Counts {
                    tp: 0,
                    fp: 5,
                    fn_: 0,
                    tn: 95,
                },
                [0.0, 0.0, N, N, 0.0, N, 0.95, 0.95],
            ),
            (
                // tp 6 fp 2 fn 3 tn 9:
                // iou 6/11, dice 12/17, precision 6/8, recall 6/9, spec 9/11, acc 15/20,
                // mcc (54-6)/sqrt(8*9*11*12) = 48/sqrt(9504), bm 6/9 + 9/11 - 1.
                "generic",
                Counts {
                    tp: 6,
                    fp: 2,
                    fn_: 3,
                    tn: 9,
                },
                [
                    6.0 / 11.0,
                    12.0 / 17.0,
                    48.0 / 9504f64.sqrt(),
                    6.0 / 9.0 + 9.0 / 11.0 - 1.0,
                    0.75,
                    6.0 / 9.0,
                    9.0 / 11.0,
                    0.75,
                ],
            ),
        ];
        for (label, counts, want) in cases {
            assert_scores(&Scores::from_counts(&counts), want, label);
        }
        // No pixel at all: everything undefined.
        assert_scores(
            &Scores::from_counts(&Counts::default()),
            [N; 8],
            "no pixels",
        );
    }

    #[test]
    fn mcc_does_not_overflow_on_huge_counts() {
        // tp = tn = 3e9, fp = fn = 1e9: (9e18 - 1e18) / sqrt(4e9^4) = 8e18 / 16e18 = 0.5.
        let counts = Counts {
            tp: 3_000_000_000,
            fp: 1_000_000_000,
            fn_: 1_000_000_000,
            tn: 3_000_000_000,
        };
        let s = Scores::from_counts(&counts);
        assert!((s.mcc - 0.5).abs() < 1e-15, "mcc {}", s.mcc);
        assert!((s.iou - 0.6).abs() < 1e-15);
        // 2e8 pixels per class, perfectly separated: mcc 1.
        let perfect = Counts {
            tp: 200_000_000,
            fp: 0,
            fn_: 0,
            tn: 300_000_000,
        };
        assert_eq!(Scores::from_counts(&perfect).mcc, 1.0);
    }

    #[test]
    fn nanmean_skips_nan() {
        let cases: [(&[f64], f64); 4] = [
            (&[1.0, 2.0, 3.0], 2.0),
            (&[1.0, N, 3.0], 2.0),
            (&[N, N], N),
            (&[], N),
        ];
        for (values, want) in cases {
            assert!(
                same(nanmean(values.iter().copied()), want, 0.0),
                "{values:?}"
            );
        }
    }

    #[test]
    fn json_round_trip_keeps_nan() {
        let s = Scores::from_counts(&Counts {
            tp: 0,
            fp: 0,
            fn_: 0,
            tn: 7,
        });
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"iou\":null"), "{json}");
        assert!(json.contains("\"specificity\":1.0"), "{json}");
        let back: Scores = serde_json::from_str(&json).unwrap();
        assert_scores(&back, [N, N, N, N, N, N, 1.0, 1.0], "round trip");
    }
}
