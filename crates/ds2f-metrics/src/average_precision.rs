//! Exact, sort-based precision–recall summaries of a binary scoring.
//!
//! Both summaries walk the precision–recall curve over **every distinct score** as a
//! threshold, from the highest down; pixels with equal scores form one threshold (one curve
//! point). At the n-th threshold, with `TP_n`/`FP_n` the positives/negatives scoring `>=` it
//! and `P` the number of positives, `P_n = TP_n/(TP_n+FP_n)` and `R_n = TP_n/P`.
//!
//! * [`average_precision`] is sklearn's `average_precision_score`:
//!   `AP = Σ_n (R_n − R_{n−1}) · P_n`, with `R_0 = 0` (a step function, no interpolation).
//! * [`pr_auc_trapezoid`] is what the reference code reports as PR-AUC:
//!   `sklearn.metrics.auc(recall, precision)` on the curve of torcheval's
//!   `BinaryPrecisionRecallCurve` (equivalently sklearn ≥ 1.1 `precision_recall_curve`),
//!   i.e. the trapezoidal area through the points `(R_n, P_n)` plus the start point
//!   `(R, P) = (0, 1)`.
//!
//! With no positive label both are `NaN` (recall is 0/0). Note the reference pipeline would
//! instead report 0.5 for the trapezoid (torcheval replaces the NaN recall by 1) and sklearn
//! 0 for AP; no such class occurs in the pooled test sets of the paper.
//!
//! `NaN` scores are skipped (the pixel is ignored), here and in [`crate::PrHistogram`].
//! For very large inputs prefer [`crate::PrHistogram`], which needs no sort and no copy.

/// One point of a precision–recall curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrPoint {
    /// The threshold: pixels scoring `>=` it are predicted positive. For a
    /// [`crate::PrHistogram`] it is the lower edge of the bin.
    pub threshold: f64,
    /// `TP/(TP+FP)` at this threshold.
    pub precision: f64,
    /// `TP/P` at this threshold.
    pub recall: f64,
}

/// Summaries of a curve given as groups `(positives, negatives)` of tied scores, highest score
/// first: returns `(average precision, trapezoidal area)`. Empty groups are allowed (they add
/// nothing). `NaN` for both when there is no positive.
pub(crate) fn summarize(groups: impl Iterator<Item = (u64, u64)>, total_pos: u64) -> (f64, f64) {
    if total_pos == 0 {
        return (f64::NAN, f64::NAN);
    }
    let total = total_pos as f64;
    let (mut tp, mut fp) = (0u64, 0u64);
    let (mut ap, mut area) = (0.0f64, 0.0f64);
    // Start point of the trapezoid: (R, P) = (0, 1).
    let (mut prev_r, mut prev_p) = (0.0f64, 1.0f64);
    for (pos, neg) in groups {
        if pos == 0 && neg == 0 {
            continue;
        }
        tp += pos;
        fp += neg;
        let p = tp as f64 / (tp + fp) as f64;
        let r = tp as f64 / total;
        ap += (r - prev_r) * p;
        area += (r - prev_r) * (p + prev_p) * 0.5;
        prev_r = r;
        prev_p = p;
    }
    (ap, area)
}

/// The curve points of groups `(threshold, positives, negatives)`, highest threshold first.
pub(crate) fn curve_points(
    groups: impl Iterator<Item = (f64, u64, u64)>,
    total_pos: u64,
) -> Vec<PrPoint> {
    let (mut tp, mut fp) = (0u64, 0u64);
    groups
        .filter(|&(_, pos, neg)| pos + neg > 0)
        .map(|(threshold, pos, neg)| {
            tp += pos;
            fp += neg;
            PrPoint {
                threshold,
                precision: tp as f64 / (tp + fp) as f64,
                recall: tp as f64 / total_pos as f64,
            }
        })
        .collect()
}

/// Sorts `(score, label)` pairs by descending score, `NaN` scores dropped.
pub(crate) fn sorted_pairs(scores: &[f32], labels: &[bool]) -> Vec<(f32, bool)> {
    assert_eq!(
        scores.len(),
        labels.len(),
        "scores and labels must have the same length"
    );
    let mut pairs: Vec<(f32, bool)> = scores
        .iter()
        .zip(labels)
        .filter(|(s, _)| !s.is_nan())
        .map(|(&s, &l)| (s, l))
        .collect();
    pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    pairs
}

/// Groups of tied scores `(score, positives, negatives)` of sorted pairs, highest first.
pub(crate) fn tie_groups(pairs: &[(f32, bool)]) -> impl Iterator<Item = (f64, u64, u64)> + '_ {
    // `-0.0` and `0.0` compare equal but are ordered by `total_cmp`; `chunk_by` with `==`
    // keeps them in one group since they are adjacent.
    pairs.chunk_by(|a, b| a.0 == b.0).map(|group| {
        let pos = group.iter().filter(|(_, l)| *l).count() as u64;
        (f64::from(group[0].0), pos, group.len() as u64 - pos)
    })
}

/// `(average precision, trapezoidal area)` of unsorted pairs, with a single sort.
pub(crate) fn exact_summaries(scores: &[f32], labels: &[bool]) -> (f64, f64) {
    let pairs = sorted_pairs(scores, labels);
    let total_pos = pairs.iter().filter(|(_, l)| *l).count() as u64;
    summarize(tie_groups(&pairs).map(|(_, p, n)| (p, n)), total_pos)
}

/// Exact average precision (sklearn's `average_precision_score`):
/// `Σ (R_n − R_{n−1}) P_n` over distinct thresholds, descending; ties are one threshold.
/// `NaN` when no label is positive. See the module docs.
///
/// Sorts a copy of the input: `O(n log n)` time, `8n` bytes.
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn average_precision(scores: &[f32], labels: &[bool]) -> f64 {
    let pairs = sorted_pairs(scores, labels);
    let total_pos = pairs.iter().filter(|(_, l)| *l).count() as u64;
    summarize(tie_groups(&pairs).map(|(_, p, n)| (p, n)), total_pos).0
}

/// Exact trapezoidal area under the precision–recall curve, like
/// `sklearn.metrics.auc(recall, precision)` on the curve from `precision_recall_curve`
/// (all distinct thresholds plus the point `(0, 1)`). This is the PR-AUC of the reference
/// code. `NaN` when no label is positive. See the module docs.
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn pr_auc_trapezoid(scores: &[f32], labels: &[bool]) -> f64 {
    let pairs = sorted_pairs(scores, labels);
    let total_pos = pairs.iter().filter(|(_, l)| *l).count() as u64;
    summarize(tie_groups(&pairs).map(|(_, p, n)| (p, n)), total_pos).1
}

/// The precision–recall curve, one point per distinct score, **highest threshold first**
/// (recall non-decreasing). The `(0, 1)` start point is not included. Recall is `NaN` when no
/// label is positive. Empty for empty input.
///
/// # Panics
/// If `scores` and `labels` differ in length.
pub fn precision_recall_curve(scores: &[f32], labels: &[bool]) -> Vec<PrPoint> {
    let pairs = sorted_pairs(scores, labels);
    let total_pos = pairs.iter().filter(|(_, l)| *l).count() as u64;
    curve_points(tie_groups(&pairs), total_pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// (label, scores, labels, expected AP, expected trapezoid).
    type ApCase = (&'static str, &'static [f32], &'static [bool], f64, f64);

    #[test]
    fn hand_computed_cases() {
        // (label, scores, labels, expected AP, expected trapezoid)
        let cases: [ApCase; 5] = [
            (
                // Thresholds 0.9, 0.8, 0.7, 0.6 give (TP, FP) = (1,0) (1,1) (2,1) (2,2):
                //   (R, P) = (1/2, 1) (1/2, 1/2) (1, 2/3) (1, 1/2).
                // AP   = 1/2·1 + 0·1/2 + 1/2·2/3 + 0·1/2 = 1/2 + 1/3 = 5/6.
                // Trap = from (0,1): 1/2·(1+1)/2 + 0 + 1/2·(1/2+2/3)/2 + 0
                //      = 1/2 + 7/24 = 19/24.
                "4 points",
                &[0.9, 0.8, 0.7, 0.6],
                &[true, false, true, false],
                5.0 / 6.0,
                19.0 / 24.0,
            ),
            (
                // Same scores shuffled: order of input does not matter.
                "4 points shuffled",
                &[0.6, 0.7, 0.9, 0.8],
                &[false, true, true, false],
                5.0 / 6.0,
                19.0 / 24.0,
            ),
            (
                // A tie at 0.5 between a positive and a negative is one threshold:
                //   (R, P) = (1/2, 1) (1, 2/3) (1, 1/2).
                // AP   = 1/2 + 1/2·2/3 = 5/6.
                // Trap = 1/2 + 1/2·(1 + 2/3)/2 = 1/2 + 5/12 = 11/12.
                "tie",
                &[0.9, 0.5, 0.5, 0.1],
                &[true, true, false, false],
                5.0 / 6.0,
                11.0 / 12.0,
            ),
            (
                // Perfect ranking: precision 1 until recall 1.
                "perfect",
                &[0.99, 0.8, 0.75, 0.3, 0.2, 0.0],
                &[true, true, true, false, false, false],
                1.0,
                1.0,
            ),
            (
                // Worst ranking, 1 positive of 4 at the bottom:
                //   (R, P) = (0, 0) (0, 0) (0, 0) (1, 1/4).
                // AP = 1·1/4 = 1/4. Trap = (0,1)→(0,0) is vertical (0), then
                //   1·(0 + 1/4)/2 = 1/8.
                "worst",
                &[0.9, 0.8, 0.7, 0.1],
                &[false, false, false, true],
                0.25,
                0.125,
            ),
        ];
        for (label, scores, labels, ap, trap) in cases {
            let got_ap = average_precision(scores, labels);
            let got_trap = pr_auc_trapezoid(scores, labels);
            assert!(close(got_ap, ap), "{label}: AP {got_ap}, expected {ap}");
            assert!(
                close(got_trap, trap),
                "{label}: trapezoid {got_trap}, expected {trap}"
            );
        }
    }

    #[test]
    fn undefined_cases_are_nan() {
        let cases: [(&str, &[f32], &[bool]); 3] = [
            ("all negative", &[0.9, 0.1, 0.4], &[false, false, false]),
            ("empty", &[], &[]),
            ("only NaN scores", &[f32::NAN, f32::NAN], &[true, false]),
        ];
        for (label, scores, labels) in cases {
            assert!(average_precision(scores, labels).is_nan(), "{label}");
            assert!(pr_auc_trapezoid(scores, labels).is_nan(), "{label}");
        }
        // All positive: precision is 1 everywhere.
        assert_eq!(average_precision(&[0.3, 0.2], &[true, true]), 1.0);
        assert_eq!(pr_auc_trapezoid(&[0.3, 0.2], &[true, true]), 1.0);
        // NaN scores are skipped: same as the "worst" case without them.
        let s = [0.9, f32::NAN, 0.8, 0.7, 0.1];
        let l = [false, true, false, false, true];
        assert!(close(average_precision(&s, &l), 0.25));
    }

    #[test]
    fn curve_points_by_hand() {
        let curve = precision_recall_curve(&[0.9, 0.5, 0.5, 0.1], &[true, true, false, false]);
        let want = [(0.9, 1.0, 0.5), (0.5, 2.0 / 3.0, 1.0), (0.1, 0.5, 1.0)];
        assert_eq!(curve.len(), want.len());
        for (point, (t, p, r)) in curve.iter().zip(want) {
            assert!(close(point.threshold, f64::from(t as f32)), "{point:?}");
            assert!(
                close(point.precision, p) && close(point.recall, r),
                "{point:?}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "same length")]
    fn length_mismatch_panics() {
        let _ = average_precision(&[0.5], &[true, false]);
    }
}
