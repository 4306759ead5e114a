//! Paired tests of a method against a baseline, as the paper's protocol uses them: over the
//! folds of a k-fold experiment (one score per fold and method) and over the test images (one
//! score per image and method).
//!
//! Both tests reproduce scipy (`scipy.stats.ttest_rel` and `scipy.stats.wilcoxon` with its
//! defaults and `nan_policy='omit'`), so that numbers from this crate and from a Python
//! notebook agree; `tests/stats_scipy.rs` holds the golden values and the scipy version.
//! The per-sample mean and standard deviation live in `ds2f_metrics::MeanStd`.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};
use statrs::function::gamma::gamma_ur;

/// [`Test::method`] of [`paired_t_test`].
pub const PAIRED_T_TEST: &str = "paired t-test";
/// [`Test::method`] of [`wilcoxon_signed_rank`] when the null distribution of the rank sum
/// was counted exactly (no ties, no zero differences, at most 50 pairs).
pub const WILCOXON_EXACT: &str = "Wilcoxon signed-rank (exact)";
/// [`Test::method`] of [`wilcoxon_signed_rank`] when ties or zero differences were present
/// in at most 13 pairs: every one of the 2^n sign assignments was counted (scipy's
/// permutation test, deterministic at that size).
pub const WILCOXON_PERMUTATION: &str = "Wilcoxon signed-rank (exact permutation)";
/// [`Test::method`] of [`wilcoxon_signed_rank`] for the normal approximation with the tie
/// correction of the variance and no continuity correction.
pub const WILCOXON_NORMAL: &str = "Wilcoxon signed-rank (normal approximation)";

/// Every value [`Test::method`] can take; deserialization maps a name back onto one of them.
const METHODS: [&str; 4] = [
    PAIRED_T_TEST,
    WILCOXON_EXACT,
    WILCOXON_PERMUTATION,
    WILCOXON_NORMAL,
];

/// The result of a two-sided paired test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Test {
    /// The test statistic: Student's t for [`paired_t_test`], min(W+, W-) for
    /// [`wilcoxon_signed_rank`] (scipy's two-sided convention).
    pub statistic: f64,
    /// The two-sided p-value.
    pub p_value: f64,
    /// The number of pairs the test used: pairs with a NaN are left out, and the Wilcoxon
    /// test also leaves out pairs whose difference is zero.
    pub n: usize,
    /// Which test, and for Wilcoxon which null distribution (one of the constants of this
    /// module, e.g. [`WILCOXON_EXACT`]).
    pub method: &'static str,
}

/// [`Test`] as read from a file, with the method name owned; it is then matched against the
/// known names.
#[derive(Deserialize)]
struct TestRecord {
    statistic: f64,
    p_value: f64,
    n: usize,
    method: String,
}

// By hand rather than derived: the derive would borrow the `&'static str` and so accept
// only `'static` input.
impl<'de> Deserialize<'de> for Test {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let record = TestRecord::deserialize(deserializer)?;
        let method = METHODS
            .iter()
            .find(|&&known| known == record.method)
            .copied()
            .ok_or_else(|| serde::de::Error::unknown_variant(&record.method, &METHODS))?;
        Ok(Test {
            statistic: record.statistic,
            p_value: record.p_value,
            n: record.n,
            method,
        })
    }
}

/// The differences `a[i] - b[i]` of the pairs in which neither value is NaN (scipy's
/// `nan_policy='omit'` for paired samples).
///
/// # Panics
/// When `a` and `b` differ in length (scipy raises an error there too).
fn paired_differences(a: &[f64], b: &[f64]) -> Vec<f64> {
    assert_eq!(a.len(), b.len(), "paired samples must have the same length");
    a.iter()
        .zip(b)
        .filter(|(x, y)| !x.is_nan() && !y.is_nan())
        .map(|(x, y)| x - y)
        .collect()
}

/// Two-sided paired t-test of `a` against `b`, equal to `scipy.stats.ttest_rel(a, b,
/// nan_policy='omit')`: t = mean(d) / (sd(d) / sqrt(n)) with d = a - b, sd with n - 1 in
/// the denominator, and the p-value from Student's t with n - 1 degrees of freedom.
///
/// Pairs with a NaN on either side are dropped first. `None` when fewer than two pairs remain,
/// or when all differences are equal: the variance is zero there and t says nothing (scipy
/// returns NaN for all-zero differences, and for equal non-zero ones an infinite t with
/// p = 0, or a huge t made of the rounding error of the mean).
///
/// # Panics
/// When `a` and `b` differ in length.
pub fn paired_t_test(a: &[f64], b: &[f64]) -> Option<Test> {
    let d = paired_differences(a, b);
    let n = d.len();
    if n < 2 || d.iter().all(|&x| x == d[0]) {
        return None;
    }
    let count = n as f64;
    let mean = d.iter().sum::<f64>() / count;
    // As scipy: the second central moment, then scaled by n / (n - 1).
    let moment = d.iter().map(|&x| (x - mean) * (x - mean)).sum::<f64>() / count;
    let variance = moment * (count / (count - 1.0));
    let statistic = mean / (variance / count).sqrt();
    let student = StudentsT::new(0.0, 1.0, count - 1.0).expect("n - 1 >= 1 degrees of freedom");
    // statrs' incomplete beta function: within a few 1e-12 relative of scipy's stdtr.
    let p_value = (2.0 * student.sf(statistic.abs())).min(1.0);
    Some(Test {
        statistic,
        p_value,
        n,
        method: PAIRED_T_TEST,
    })
}

/// Two-sided Wilcoxon signed-rank test of `a` against `b`, equal to
/// `scipy.stats.wilcoxon(a, b, nan_policy='omit')` with its defaults (zero differences
/// dropped, no continuity correction, `method='auto'`).
///
/// The absolute differences are ranked with average ranks for ties; the statistic is
/// min(W+, W-), the smaller of the rank sums of the positive and of the negative differences.
/// Which null distribution gives the p-value follows scipy's `'auto'` (scipy 1.17), where n
/// counts the pairs left after dropping NaNs, zero differences included:
/// - n <= 50, no ties and no zeros: the exact distribution of W+ ([`WILCOXON_EXACT`]),
///   p = 2 min(P(W <= W+), P(W >= W+)) capped at 1;
/// - n <= 13 with ties or zeros: all 2^n sign assignments of the (average) ranks, the same
///   formula on that distribution ([`WILCOXON_PERMUTATION`]);
/// - otherwise the normal approximation with the tie-corrected variance
///   ([`WILCOXON_NORMAL`]).
///
/// Pairs with a NaN on either side are dropped first. `None` when no non-zero difference
/// remains (scipy returns NaN or p = 1 there, with nothing ranked).
///
/// # Panics
/// When `a` and `b` differ in length.
pub fn wilcoxon_signed_rank(a: &[f64], b: &[f64]) -> Option<Test> {
    let d = paired_differences(a, b);
    let n_total = d.len();
    let zeros = d.iter().filter(|&&x| x == 0.0).count();
    let nonzero: Vec<f64> = d.into_iter().filter(|&x| x != 0.0).collect();
    let n = nonzero.len();
    if n == 0 {
        return None;
    }

    // Twice the average ranks of |d|, so that half ranks stay integers: a tie group at the
    // 0-based sorted positions i..=j has the average rank (i + 1 + j + 1) / 2.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&x, &y| nonzero[x].abs().total_cmp(&nonzero[y].abs()));
    let mut twice_rank = vec![0u64; n];
    let mut tie_term = 0.0; // sum over tie groups of t^3 - t
    let mut has_ties = false;
    let mut start = 0;
    while start < n {
        let value = nonzero[order[start]].abs();
        let mut end = start;
        while end + 1 < n && nonzero[order[end + 1]].abs() == value {
            end += 1;
        }
        for &index in &order[start..=end] {
            twice_rank[index] = (start + end + 2) as u64;
        }
        let t = (end - start + 1) as f64;
        if end > start {
            has_ties = true;
            tie_term += t * t * t - t;
        }
        start = end + 1;
    }
    let twice_plus: u64 = (0..n)
        .filter(|&i| nonzero[i] > 0.0)
        .map(|i| twice_rank[i])
        .sum();
    let twice_total = (n * (n + 1)) as u64;
    let twice_minus = twice_total - twice_plus;
    let statistic = twice_plus.min(twice_minus) as f64 / 2.0;

    let (p_value, method) = if n_total > 50 || ((has_ties || zeros > 0) && n_total > 13) {
        let count = n as f64;
        let r_plus = twice_plus as f64 / 2.0;
        let mean = count * (count + 1.0) * 0.25;
        let se = ((count * (count + 1.0) * (2.0 * count + 1.0) - tie_term / 2.0) / 24.0).sqrt();
        let z = (r_plus - mean) / se;
        (normal_two_sided_p(z), WILCOXON_NORMAL)
    } else {
        // Both exact paths: the rank sum over every subset of the ranks, each subset being
        // one sign assignment with probability 2^-n. Without ties the ranks are 1..=n and
        // this is the exact null distribution of W+.
        let counts = subset_sum_counts(&twice_rank);
        let below: u64 = counts[..=twice_plus as usize].iter().sum();
        let above: u64 = counts[twice_plus as usize..].iter().sum();
        // Counts and 2^n (n <= 50) are exact in f64, so the quotient is correctly rounded.
        let p = 2.0 * below.min(above) as f64 / (n as f64).exp2();
        let method = if has_ties || zeros > 0 {
            WILCOXON_PERMUTATION
        } else {
            WILCOXON_EXACT
        };
        (p.min(1.0), method)
    };
    Some(Test {
        statistic,
        p_value,
        n,
        method,
    })
}

/// P(|Z| >= |z|) for a standard normal Z, i.e. 2 Phi(-|z|) = erfc(|z| / sqrt 2), written as
/// the regularized upper incomplete gamma function Q(1/2, z^2 / 2): statrs' `erfc` (and so
/// its `Normal`) is accurate to only about 1e-10 relative, its incomplete gamma matches
/// scipy's `ndtr` to about 1e-15.
fn normal_two_sided_p(z: f64) -> f64 {
    let x = z * z / 2.0;
    if x == 0.0 {
        1.0
    } else if x.is_infinite() {
        0.0
    } else {
        gamma_ur(0.5, x)
    }
}

/// `counts[s]` = the number of subsets of `values` whose sum is `s`, for s = 0..=sum(values).
/// At most 50 values here, so the counts (at most 2^50) fit a u64.
fn subset_sum_counts(values: &[u64]) -> Vec<u64> {
    let total: u64 = values.iter().sum();
    let mut counts = vec![0u64; total as usize + 1];
    counts[0] = 1;
    let mut reached = 0usize;
    for &value in values {
        let value = value as usize;
        // Downwards, so that each value is used at most once per subset.
        for s in (0..=reached).rev() {
            counts[s + value] += counts[s];
        }
        reached += value;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::normal_two_sided_p;

    /// Against scipy 1.17.1: `for z in [1e-3, 0.1, 1.0, 2.5, 5.0, 8.0, 12.0, 30.0]:
    /// print(z, repr(float(2 * scipy.special.ndtr(-z))))`.
    #[test]
    fn normal_tail_matches_scipy() {
        let golden = [
            (1e-3, 0.9992021155721779),
            (0.1, 0.920344325445942),
            (1.0, 0.31731050786291415),
            (2.5, 0.012419330651552265),
            (5.0, 5.733031437583866e-07),
            (8.0, 1.244192114854348e-15),
            (12.0, 3.552964224155306e-33),
            (30.0, 9.813427854295816e-198),
        ];
        for (z, p) in golden {
            for z in [z, -z] {
                let got = normal_two_sided_p(z);
                let error = (got - p).abs() / p;
                assert!(error < 1e-12, "z = {z}: {got:e} against {p:e} ({error:e})");
            }
        }
        assert_eq!(normal_two_sided_p(0.0), 1.0);
        assert_eq!(normal_two_sided_p(f64::INFINITY), 0.0);
    }
}
