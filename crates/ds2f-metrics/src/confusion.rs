//! The confusion matrix `M[true][pred]` over `C` classes and the one-vs-rest [`Counts`] of a class.
//!
//! [`ConfusionMatrix::add`] mirrors the reference `bincount(C·y + ŷ)` accumulation: ground-truth
//! values `>= C` are **ignored** (like an ignore index such as 255), while predicted values
//! `>= C` are an error, since a prediction comes from an argmax and must always be a valid class.
//! [`ConfusionMatrix::add_labels`] is the strict form used by [`crate::Evaluation`]: only the
//! ignore label is skipped and any other truth `>= C` is an error, so that a mask read with the
//! wrong class count cannot silently vanish from the metrics.

use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, check_len};
use crate::scores::Scores;

/// Largest supported number of classes: labels are `u8`.
pub const MAX_CLASSES: usize = 256;

/// The default ignore label: ground-truth pixels with this value are not evaluated (Cityscapes'
/// `255`; the same value as the data crate's ignore label).
pub const DEFAULT_IGNORE_LABEL: u8 = 255;

/// One-vs-rest counts of one class, derived from a [`ConfusionMatrix`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Counts {
    /// True positives: `M[c][c]`.
    pub tp: u64,
    /// False positives: column sum of `c` minus `tp`.
    pub fp: u64,
    /// False negatives: row sum of `c` minus `tp`.
    #[serde(rename = "fn")]
    pub fn_: u64,
    /// True negatives: total minus `tp + fp + fn_`.
    pub tn: u64,
}

impl Counts {
    /// Total number of pixels counted (`tp + fp + fn_ + tn`).
    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.fn_ + self.tn
    }

    /// Component-wise sum of two counts.
    pub fn sum(&self, other: &Counts) -> Counts {
        Counts {
            tp: self.tp + other.tp,
            fp: self.fp + other.fp,
            fn_: self.fn_ + other.fn_,
            tn: self.tn + other.tn,
        }
    }
}

/// Confusion matrix over `C` classes (`2 <= C <= 256`), counts `M[true][pred]` as `u64`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfusionMatrix {
    num_classes: usize,
    /// Row-major `C × C`, index `true * C + pred`.
    matrix: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `num_classes` classes.
    ///
    /// # Panics
    /// If `num_classes < 2` or `num_classes > 256` ([`MAX_CLASSES`]).
    pub fn new(num_classes: usize) -> Self {
        assert!(
            (2..=MAX_CLASSES).contains(&num_classes),
            "ConfusionMatrix needs 2..=256 classes, got {num_classes}"
        );
        Self {
            num_classes,
            matrix: vec![0; num_classes * num_classes],
        }
    }

    /// Builds a matrix from rows (`rows[true][pred]`).
    ///
    /// # Panics
    /// If the rows are not square or the class count is outside `2..=256`.
    pub fn from_rows(rows: &[Vec<u64>]) -> Self {
        let mut cm = Self::new(rows.len());
        for (t, row) in rows.iter().enumerate() {
            assert_eq!(
                row.len(),
                rows.len(),
                "row {t} of the confusion matrix is not square"
            );
            cm.matrix[t * rows.len()..(t + 1) * rows.len()].copy_from_slice(row);
        }
        cm
    }

    /// Number of classes `C`.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The count `M[truth][pred]`.
    ///
    /// # Panics
    /// If either index is `>= C`.
    pub fn get(&self, truth: usize, pred: usize) -> u64 {
        assert!(
            truth < self.num_classes && pred < self.num_classes,
            "class index out of range"
        );
        self.matrix[truth * self.num_classes + pred]
    }

    /// The matrix as rows, `rows[true][pred]`.
    pub fn rows(&self) -> Vec<Vec<u64>> {
        self.matrix
            .chunks_exact(self.num_classes)
            .map(<[u64]>::to_vec)
            .collect()
    }

    /// Number of pixels counted (ignored pixels excluded).
    pub fn total(&self) -> u64 {
        self.matrix.iter().sum()
    }

    /// Adds every pixel: `truth[i]` is the true class, `pred[i]` the predicted class.
    ///
    /// Pixels whose truth is `>= C` are ignored (ignore index, e.g. 255).
    ///
    /// # Errors
    /// [`MetricsError::LengthMismatch`] if the slices differ in length,
    /// [`MetricsError::PredictionOutOfRange`] if a prediction is `>= C` (even on an ignored
    /// pixel). On error `self` is unchanged.
    pub fn add(&mut self, truth: &[u8], pred: &[u8]) -> Result<(), MetricsError> {
        check_len("pred", truth.len(), pred.len())?;
        let c = self.num_classes;
        let mut local = vec![0u64; c * c];
        for (index, (&t, &p)) in truth.iter().zip(pred).enumerate() {
            let (t, p) = (usize::from(t), usize::from(p));
            if p >= c {
                return Err(self.out_of_range(index, p));
            }
            if t < c {
                local[t * c + p] += 1;
            }
        }
        self.add_flat(&local);
        Ok(())
    }

    /// Like [`add`](Self::add), counting only pixels where `region[i]` is true (e.g. inside the
    /// field of view). Predictions outside the region are not checked.
    ///
    /// # Errors
    /// As [`add`](Self::add), plus a length mismatch of `region`. On error `self` is unchanged.
    pub fn add_masked(
        &mut self,
        truth: &[u8],
        pred: &[u8],
        region: &[bool],
    ) -> Result<(), MetricsError> {
        check_len("pred", truth.len(), pred.len())?;
        check_len("region", truth.len(), region.len())?;
        let c = self.num_classes;
        let mut local = vec![0u64; c * c];
        for (index, ((&t, &p), &inside)) in truth.iter().zip(pred).zip(region).enumerate() {
            if !inside {
                continue;
            }
            let (t, p) = (usize::from(t), usize::from(p));
            if p >= c {
                return Err(self.out_of_range(index, p));
            }
            if t < c {
                local[t * c + p] += 1;
            }
        }
        self.add_flat(&local);
        Ok(())
    }

    /// Strict accumulation. Adds every pixel where `region` (if given) is true and the truth is
    /// not `ignore_label`; every counted truth must then be `< C`.
    ///
    /// Predictions are checked on every pixel of the region, ignored ones included (they come
    /// from an argmax); pixels outside the region are not looked at. An `ignore_label < C`
    /// removes that class's pixels from the truth side only.
    ///
    /// # Errors
    /// [`MetricsError::LengthMismatch`] for `pred` or `region`,
    /// [`MetricsError::PredictionOutOfRange`] for a prediction `>= C`,
    /// [`MetricsError::TruthOutOfRange`] for a truth `>= C` that is not the ignore label; the
    /// first offending pixel is named. On error `self` is unchanged.
    pub fn add_labels(
        &mut self,
        truth: &[u8],
        pred: &[u8],
        region: Option<&[bool]>,
        ignore_label: Option<u8>,
    ) -> Result<(), MetricsError> {
        check_len("pred", truth.len(), pred.len())?;
        if let Some(region) = region {
            check_len("region", truth.len(), region.len())?;
        }
        let c = self.num_classes;
        let mut local = vec![0u64; c * c];
        for (index, (&t, &p)) in truth.iter().zip(pred).enumerate() {
            if region.is_some_and(|r| !r[index]) {
                continue;
            }
            let p = usize::from(p);
            if p >= c {
                return Err(self.out_of_range(index, p));
            }
            if Some(t) == ignore_label {
                continue;
            }
            let t_idx = usize::from(t);
            if t_idx >= c {
                return Err(MetricsError::TruthOutOfRange {
                    index,
                    value: t,
                    num_classes: c,
                    ignore_label,
                });
            }
            local[t_idx * c + p] += 1;
        }
        self.add_flat(&local);
        Ok(())
    }

    /// Adds the counts of `other` to `self`.
    ///
    /// # Errors
    /// [`MetricsError::ClassCountMismatch`] if the class counts differ.
    pub fn merge(&mut self, other: &ConfusionMatrix) -> Result<(), MetricsError> {
        if other.num_classes != self.num_classes {
            return Err(MetricsError::ClassCountMismatch {
                expected: self.num_classes,
                actual: other.num_classes,
            });
        }
        self.add_flat(&other.matrix);
        Ok(())
    }

    /// One-vs-rest counts of `class`: TP=`M[c][c]`, FP=colsum−TP, FN=rowsum−TP,
    /// TN=total−TP−FP−FN.
    ///
    /// # Panics
    /// If `class >= C`.
    pub fn counts(&self, class: usize) -> Counts {
        let c = self.num_classes;
        assert!(class < c, "class {class} out of range for {c} classes");
        let tp = self.matrix[class * c + class];
        let row: u64 = self.matrix[class * c..(class + 1) * c].iter().sum();
        let col: u64 = (0..c).map(|t| self.matrix[t * c + class]).sum();
        let fp = col - tp;
        let fn_ = row - tp;
        let tn = self.total() - tp - fp - fn_;
        Counts { tp, fp, fn_, tn }
    }

    /// [`Scores`] of `class` (see [`counts`](Self::counts)).
    ///
    /// # Panics
    /// If `class >= C`.
    pub fn scores(&self, class: usize) -> Scores {
        Scores::from_counts(&self.counts(class))
    }

    /// [`Scores`] of every class, index = class.
    pub fn all_scores(&self) -> Vec<Scores> {
        (0..self.num_classes).map(|c| self.scores(c)).collect()
    }

    /// Overall pixel accuracy `trace / total` (NaN when empty). For `C == 2` it equals the
    /// per-class [`Scores::accuracy`].
    pub fn overall_accuracy(&self) -> f64 {
        let c = self.num_classes;
        let trace: u64 = (0..c).map(|k| self.matrix[k * c + k]).sum();
        trace as f64 / self.total() as f64
    }

    fn add_flat(&mut self, flat: &[u64]) {
        for (m, &x) in self.matrix.iter_mut().zip(flat) {
            *m += x;
        }
    }

    fn out_of_range(&self, index: usize, value: usize) -> MetricsError {
        MetricsError::PredictionOutOfRange {
            index,
            // `value` came from a u8.
            value: value as u8,
            num_classes: self.num_classes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Truth/pred vectors realising a given binary confusion matrix `[[tn, fp], [fn, tp]]`.
    fn binary_pixels(m: [[usize; 2]; 2]) -> (Vec<u8>, Vec<u8>) {
        let mut truth = Vec::new();
        let mut pred = Vec::new();
        for (t, row) in m.iter().enumerate() {
            for (p, &n) in row.iter().enumerate() {
                truth.extend(std::iter::repeat_n(t as u8, n));
                pred.extend(std::iter::repeat_n(p as u8, n));
            }
        }
        (truth, pred)
    }

    #[test]
    fn counts_of_binary_matrix() {
        let (truth, pred) = binary_pixels([[52, 47], [22, 23]]);
        let mut cm = ConfusionMatrix::new(2);
        cm.add(&truth, &pred).unwrap();
        assert_eq!(cm.rows(), vec![vec![52, 47], vec![22, 23]]);
        assert_eq!(cm.total(), 144);
        let expected = [
            (
                1,
                Counts {
                    tp: 23,
                    fp: 47,
                    fn_: 22,
                    tn: 52,
                },
            ),
            (
                0,
                Counts {
                    tp: 52,
                    fp: 22,
                    fn_: 47,
                    tn: 23,
                },
            ),
        ];
        for (class, want) in expected {
            assert_eq!(cm.counts(class), want, "class {class}");
        }
        assert_eq!(cm.overall_accuracy(), 75.0 / 144.0);
    }

    #[test]
    fn counts_of_three_classes() {
        // M[true][pred]:
        //   [[5, 1, 0],
        //    [2, 3, 1],
        //    [0, 4, 6]]
        let cm = ConfusionMatrix::from_rows(&[vec![5, 1, 0], vec![2, 3, 1], vec![0, 4, 6]]);
        // total 22.
        let cases = [
            // class 0: tp 5, col 7 -> fp 2, row 6 -> fn 1, tn 22-8 = 14
            (
                0,
                Counts {
                    tp: 5,
                    fp: 2,
                    fn_: 1,
                    tn: 14,
                },
            ),
            // class 1: tp 3, col 8 -> fp 5, row 6 -> fn 3, tn 22-11 = 11
            (
                1,
                Counts {
                    tp: 3,
                    fp: 5,
                    fn_: 3,
                    tn: 11,
                },
            ),
            // class 2: tp 6, col 7 -> fp 1, row 10 -> fn 4, tn 22-11 = 11
            (
                2,
                Counts {
                    tp: 6,
                    fp: 1,
                    fn_: 4,
                    tn: 11,
                },
            ),
        ];
        for (class, want) in cases {
            assert_eq!(cm.counts(class), want, "class {class}");
            assert_eq!(cm.counts(class).total(), 22);
        }
    }

    #[test]
    fn ignored_truth_values_are_skipped() {
        let truth = [0u8, 1, 255, 2, 7, 1];
        let pred = [0u8, 1, 1, 0, 1, 1];
        let mut cm = ConfusionMatrix::new(2);
        cm.add(&truth, &pred).unwrap();
        // Counted: (0,0), (1,1), (1,1); truth 255, 2, 7 ignored.
        assert_eq!(cm.rows(), vec![vec![1, 0], vec![0, 2]]);
    }

    #[test]
    fn masked_equals_unmasked_on_subset() {
        let truth = [0u8, 1, 1, 0, 1, 0, 0, 1];
        let pred = [0u8, 1, 0, 1, 1, 0, 1, 1];
        let region = [true, false, true, true, false, true, false, true];
        let mut masked = ConfusionMatrix::new(2);
        masked.add_masked(&truth, &pred, &region).unwrap();
        let (t_sub, p_sub): (Vec<u8>, Vec<u8>) = truth
            .iter()
            .zip(&pred)
            .zip(&region)
            .filter(|(_, inside)| **inside)
            .map(|((&t, &p), _)| (t, p))
            .unzip();
        let mut subset = ConfusionMatrix::new(2);
        subset.add(&t_sub, &p_sub).unwrap();
        assert_eq!(masked, subset);
        // Hand count of the 5 kept pixels (0,0) (1,0) (0,1) (0,0) (1,1).
        assert_eq!(masked.rows(), vec![vec![2, 1], vec![1, 1]]);
        let mut unmasked = ConfusionMatrix::new(2);
        unmasked.add(&truth, &pred).unwrap();
        assert_eq!(unmasked.rows(), vec![vec![2, 2], vec![1, 3]]);
    }

    #[test]
    fn merge_equals_single_accumulation() {
        let truth: Vec<u8> = (0..1000u32).map(|i| ((i * 7 + 3) % 3) as u8).collect();
        let pred: Vec<u8> = (0..1000u32).map(|i| ((i * 11 + 1) % 3) as u8).collect();
        let mut whole = ConfusionMatrix::new(3);
        whole.add(&truth, &pred).unwrap();
        let mut a = ConfusionMatrix::new(3);
        let mut b = ConfusionMatrix::new(3);
        a.add(&truth[..321], &pred[..321]).unwrap();
        b.add(&truth[321..], &pred[321..]).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a, whole);
        assert_eq!(whole.total(), 1000);
    }

    #[test]
    fn errors_leave_matrix_unchanged() {
        let mut cm = ConfusionMatrix::new(2);
        cm.add(&[1, 0], &[1, 1]).unwrap();
        let before = cm.clone();
        let cases: Vec<(Result<(), MetricsError>, MetricsError)> = vec![
            (
                cm.add(&[0, 1, 1], &[0, 1]),
                MetricsError::LengthMismatch {
                    what: "pred",
                    expected: 3,
                    actual: 2,
                },
            ),
            (
                cm.add(&[0, 1, 1], &[0, 1, 2]),
                MetricsError::PredictionOutOfRange {
                    index: 2,
                    value: 2,
                    num_classes: 2,
                },
            ),
            (
                cm.add_masked(&[0, 1], &[0, 1], &[true]),
                MetricsError::LengthMismatch {
                    what: "region",
                    expected: 2,
                    actual: 1,
                },
            ),
            (
                cm.merge(&ConfusionMatrix::new(3)),
                MetricsError::ClassCountMismatch {
                    expected: 2,
                    actual: 3,
                },
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, Err(want));
        }
        assert_eq!(cm, before);
        // Out-of-range predictions outside the region are not looked at.
        cm.add_masked(&[0, 1], &[9, 1], &[false, true]).unwrap();
        assert_eq!(cm.rows(), vec![vec![0, 1], vec![0, 2]]);
    }

    #[test]
    fn add_labels_skips_only_the_ignore_label() {
        let truth = [0u8, 1, 255, 2, 1, 255, 0];
        let pred = [0u8, 2, 1, 2, 1, 0, 1];
        let region = [true, true, true, true, false, true, true];
        let mut cm = ConfusionMatrix::new(3);
        cm.add_labels(&truth, &pred, Some(&region), Some(255))
            .unwrap();
        // Counted: (0,0) (1,2) (2,2) (0,1); pixel 4 outside, 2 and 5 ignored.
        assert_eq!(cm.rows(), vec![vec![1, 1, 0], vec![0, 0, 1], vec![0, 0, 1]]);
        // Without a region the same plus (1,1); equal to the lenient `add` here.
        let mut all = ConfusionMatrix::new(3);
        all.add_labels(&truth, &pred, None, Some(255)).unwrap();
        let mut lenient = ConfusionMatrix::new(3);
        lenient.add(&truth, &pred).unwrap();
        assert_eq!(all, lenient);
        assert_eq!(all.total(), 5);
        // An ignore label inside the class range drops that class from the truth side.
        let mut no_zero = ConfusionMatrix::new(3);
        no_zero
            .add_labels(&[0, 1, 2], &[1, 1, 0], None, Some(0))
            .unwrap();
        assert_eq!(
            no_zero.rows(),
            vec![vec![0, 0, 0], vec![0, 1, 0], vec![1, 0, 0]]
        );

        let before = cm.clone();
        let cases = [
            (
                cm.add_labels(&[0, 7], &[0, 0], None, Some(255)),
                MetricsError::TruthOutOfRange {
                    index: 1,
                    value: 7,
                    num_classes: 3,
                    ignore_label: Some(255),
                },
            ),
            (
                cm.add_labels(&[0, 255], &[0, 0], None, None),
                MetricsError::TruthOutOfRange {
                    index: 1,
                    value: 255,
                    num_classes: 3,
                    ignore_label: None,
                },
            ),
            (
                cm.add_labels(&[255, 0], &[3, 0], None, Some(255)),
                MetricsError::PredictionOutOfRange {
                    index: 0,
                    value: 3,
                    num_classes: 3,
                },
            ),
            (
                cm.add_labels(&[0, 0], &[0, 0], Some(&[true]), Some(255)),
                MetricsError::LengthMismatch {
                    what: "region",
                    expected: 2,
                    actual: 1,
                },
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, Err(want));
        }
        assert_eq!(cm, before);
        // Nothing outside the region is looked at.
        cm.add_labels(&[9, 0], &[9, 0], Some(&[false, true]), None)
            .unwrap();
        assert_eq!(cm.get(0, 0), 2);
    }

    #[test]
    #[should_panic(expected = "2..=256 classes")]
    fn one_class_panics() {
        let _ = ConfusionMatrix::new(1);
    }
}
