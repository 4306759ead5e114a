//! The receiver operating characteristic: exact, sort-based [`roc_auc`] (sklearn's
//! `roc_auc_score`) and the ROC walk over groups of tied scores that [`crate::PrHistogram`] and
//! [`crate::ExactPr`] share.
//!
//! The curve goes through `(FPR, TPR) = (0, 0)` and one point per **distinct score** (ties are
//! one threshold, a diagonal step), highest first, ending at `(1, 1)`; the AUC is its
//! trapezoidal area, which equals the probability that a random positive scores above a random
//! negative, ties counting one half. `NaN` without positives or without negatives (sklearn
//! raises). `NaN` scores are skipped.

use crate::average_precision::{sorted_pairs, tie_groups};

/// One point of a ROC curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RocPoint {
    /// The threshold: pixels scoring `>=` it are predicted positive (a histogram bin's lower
    /// edge).
    pub threshold: f64,
    /// False positive rate `FP/N`.
    pub fpr: f64,
    /// True positive rate (sensitivity) `TP/P`.
    pub tpr: f64,
}

/// The trapezoidal ROC area of groups `(positives, negatives)` of tied scores, highest first.
pub(crate) fn roc_area(groups: impl Iterator<Item = (u64, u64)>, pos: u64, neg: u64) -> f64 {
    if pos == 0 || neg == 0 {
        return f64::NAN;
    }
    // Twice the area in units of one positive × one negative, summed exactly in integers
    // while it fits (it does below 2^32 pixels of each kind), then divided once.
    let (mut tp, mut area2) = (0u128, 0u128);
    for (p, n) in groups {
        // The trapezoid over this group: width n, heights tp and tp + p.
        area2 += u128::from(n) * (2 * tp + u128::from(p));
        tp += u128::from(p);
    }
    area2 as f64 / (2.0 * pos as f64 * neg as f64)
}

/// The ROC points of groups `(threshold, positives, negatives)`, highest threshold first,
/// without the `(0, 0)` start point; empty groups are skipped.
pub(crate) fn roc_points(
    groups: impl Iterator<Item = (f64, u64, u64)>,
    pos: u64,
    neg: u64,
) -> Vec<RocPoint> {
    let (mut tp, mut fp) = (0u64, 0u64);
    groups
        .filter(|&(_, p, n)| p + n > 0)
        .map(|(threshold, p, n)| {
            tp += p;
            fp += n;
            RocPoint {
                threshold,
                fpr: fp as f64 / neg as f64,
                tpr: tp as f64 / pos as f64,
            }
        })
        .collect()
}

/// Exact area under the ROC curve (sklearn's `roc_auc_score`); `NaN` when every label is the
/// same. Sorts a copy: `O(n log n)`.
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> f64 {
    let pairs = sorted_pairs(scores, labels);
    let pos = pairs.iter().filter(|(_, l)| *l).count() as u64;
    let neg = pairs.len() as u64 - pos;
    roc_area(tie_groups(&pairs).map(|(_, p, n)| (p, n)), pos, neg)
}

/// The exact ROC curve, one point per distinct score, highest threshold first, `(0, 0)` not
/// included.
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn roc_curve(scores: &[f32], labels: &[bool]) -> Vec<RocPoint> {
    let pairs = sorted_pairs(scores, labels);
    let pos = pairs.iter().filter(|(_, l)| *l).count() as u64;
    let neg = pairs.len() as u64 - pos;
    roc_points(tie_groups(&pairs), pos, neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand cases, checked against sklearn 1.9.1:
    /// ```python
    /// from sklearn.metrics import roc_auc_score, roc_curve
    /// roc_auc_score([1,0,1,0], [0.9,0.8,0.7,0.6])                     # 0.75
    /// roc_auc_score([1,1,0,0], [0.9,0.5,0.5,0.1])                     # 0.875
    /// y = [1,0,1,1,0,0,1,0,0,0]
    /// s = [0.95,0.85,0.85,0.65,0.55,0.45,0.35,0.35,0.25,0.05]
    /// roc_auc_score(y, s)                                             # 0.7916666666666667
    /// roc_curve(y, s)  # fpr 0 0 1/6 1/6 1/2 2/3 1, tpr 0 .25 .5 .75 .75 1 1
    /// ```
    #[test]
    fn matches_sklearn() {
        let cases: [(&[f32], &[bool], f64); 3] = [
            (&[0.9, 0.8, 0.7, 0.6], &[true, false, true, false], 0.75),
            (&[0.9, 0.5, 0.5, 0.1], &[true, true, false, false], 0.875),
            (
                &[0.95, 0.85, 0.85, 0.65, 0.55, 0.45, 0.35, 0.35, 0.25, 0.05],
                &[
                    true, false, true, true, false, false, true, false, false, false,
                ],
                19.0 / 24.0,
            ),
        ];
        for (scores, labels, want) in cases {
            let got = roc_auc(scores, labels);
            assert!((got - want).abs() < 1e-15, "{scores:?}: {got} != {want}");
        }
        let (s, l) = (cases[2].0, cases[2].1);
        let curve = roc_curve(s, l);
        let fpr: Vec<f64> = curve.iter().map(|p| p.fpr).collect();
        let tpr: Vec<f64> = curve.iter().map(|p| p.tpr).collect();
        // sklearn's points after its (0, 0) start, plus the two it drops as collinear
        // (drop_intermediate): (2/6, 3/4) at 0.55 and (5/6, 1) at 0.25.
        let sixth = |k: f64| k / 6.0;
        let want_fpr = [
            0.0,
            sixth(1.0),
            sixth(1.0),
            sixth(2.0),
            sixth(3.0),
            sixth(4.0),
        ];
        assert_eq!(fpr[..6], want_fpr);
        assert_eq!(fpr[6..], [sixth(5.0), 1.0]);
        assert_eq!(tpr, [0.25, 0.5, 0.75, 0.75, 0.75, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn undefined_without_both_classes() {
        assert!(roc_auc(&[0.1, 0.2], &[true, true]).is_nan());
        assert!(roc_auc(&[0.1, 0.2], &[false, false]).is_nan());
        assert!(roc_auc(&[], &[]).is_nan());
        // A NaN score is skipped: what is left is perfectly ranked.
        assert_eq!(roc_auc(&[0.9, f32::NAN, 0.1], &[true, true, false]), 1.0);
    }
}
