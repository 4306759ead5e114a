//! The paired tests of `ds2f_protocol::stats` against golden values from scipy 1.17.1
//! (numpy 2.4.6), produced by this snippet (its output is pasted in `GOLDEN` below):
//!
//! ```python
//! import scipy
//! from scipy import stats
//! def per_image(n):
//!     a = [0.70 + ((37 * i + 5) % 101) / 1009 for i in range(n)]
//!     b = [0.68 + ((53 * i + 11) % 103) / 997 for i in range(n)]
//!     return a, b
//! def grid(n, base_b, shift):
//!     a = [(40 + (7 * i) % 13) / 64 for i in range(n)]
//!     b = [(base_b + (5 * i + shift) % 11) / 64 for i in range(n)]
//!     return a, b
//! cases = {
//!     "folds": ([0.812, 0.847, 0.829, 0.861, 0.835], [0.798, 0.840, 0.833, 0.846, 0.829]),
//!     "folds_nan": ([0.812, float("nan"), 0.847, 0.829, 0.861, 0.9, 0.835],
//!                   [0.798, 0.5, 0.840, 0.833, 0.846, float("nan"), 0.829]),
//!     **{f"per_image({n})": per_image(n) for n in (45, 50, 51, 60)},
//!     **{f"grid{args}": grid(*args) for args in
//!        ((9, 41, 0), (10, 40, 0), (13, 40, 1), (14, 40, 1), (20, 40, 0), (30, 40, 3))},
//! }
//! print("scipy", scipy.__version__)
//! for name, (a, b) in cases.items():
//!     t = stats.ttest_rel(a, b, nan_policy="omit")
//!     w = stats.wilcoxon(a, b, nan_policy="omit")
//!     print(name, float(t.statistic), float(t.pvalue), float(w.statistic), float(w.pvalue))
//! ```
//!
//! `per_image` and `grid` are rebuilt below with the same arithmetic (integer remainders, one
//! correctly rounded division and addition), so the inputs are bit-identical to scipy's.
//! `grid` puts every score on a 1/64 grid, so its differences are exact and tie and zero
//! exactly where intended.
//!
//! Tolerances, relative: the Wilcoxon statistics (half-integers) exactly; t statistics and
//! Wilcoxon p-values 1e-13; t p-values 2e-12.
//! - t statistics differ from numpy's only by summation order (numpy sums pairwise): 0 to
//!   2e-16 observed.
//! - Exact and permutation p-values are dyadic fractions on both sides (0 observed); the normal
//!   approximation's tail is statrs' regularized incomplete gamma against scipy's ndtr, 1.5e-15
//!   observed (statrs' erfc, and so its `Normal`, would be off by up to 1e-10).
//! - t p-values come from statrs' regularized incomplete beta function, whose continued
//!   fraction stops early: up to 7.1e-13 observed (grid(30, 40, 3)), while scipy's stdtr is
//!   exact there to 1e-16 (checked with mpmath at 40 digits).

use ds2f_protocol::stats::{
    PAIRED_T_TEST, Test, WILCOXON_EXACT, WILCOXON_NORMAL, WILCOXON_PERMUTATION, paired_t_test,
    wilcoxon_signed_rank,
};

/// Relative tolerance of t statistics and Wilcoxon p-values (see above).
const RELATIVE: f64 = 1e-13;
/// Relative tolerance of t-test p-values (see above).
const RELATIVE_T_P: f64 = 2e-12;

fn per_image(n: usize) -> (Vec<f64>, Vec<f64>) {
    let a = (0..n)
        .map(|i| 0.70 + ((37 * i + 5) % 101) as f64 / 1009.0)
        .collect();
    let b = (0..n)
        .map(|i| 0.68 + ((53 * i + 11) % 103) as f64 / 997.0)
        .collect();
    (a, b)
}

fn grid(n: usize, base_b: usize, shift: usize) -> (Vec<f64>, Vec<f64>) {
    let a = (0..n).map(|i| (40 + (7 * i) % 13) as f64 / 64.0).collect();
    let b = (0..n)
        .map(|i| (base_b + (5 * i + shift) % 11) as f64 / 64.0)
        .collect();
    (a, b)
}

fn folds() -> (Vec<f64>, Vec<f64>) {
    (
        vec![0.812, 0.847, 0.829, 0.861, 0.835],
        vec![0.798, 0.840, 0.833, 0.846, 0.829],
    )
}

fn assert_close(what: &str, got: f64, expected: f64, tolerance: f64) {
    let error = (got - expected).abs() / expected.abs();
    assert!(
        error <= tolerance,
        "{what}: got {got:e}, scipy {expected:e}, relative error {error:e}"
    );
}

fn check_t(test: Test, n: usize, statistic: f64, p_value: f64) {
    assert_eq!(test.method, PAIRED_T_TEST);
    assert_eq!(test.n, n);
    assert_close("t statistic", test.statistic, statistic, RELATIVE);
    assert_close("t p-value", test.p_value, p_value, RELATIVE_T_P);
}

fn check_w(test: Test, method: &str, n: usize, statistic: f64, p_value: f64) {
    assert_eq!(test.method, method);
    assert_eq!(test.n, n);
    assert_eq!(test.statistic, statistic);
    assert_close("Wilcoxon p-value", test.p_value, p_value, RELATIVE);
}

// Output of the snippet at the top (scipy 1.17.1):
// scipy 1.17.1
// folds 2.225688168098207 0.0900411479617237 1.0 0.125
// folds_nan 2.225688168098207 0.0900411479617237 1.0 0.125
// per_image(45) 2.9865725137298185 0.0045974006003246335 285.0 0.00792520797853058
// per_image(50) 3.2150647626305195 0.0023100710292015105 342.0 0.0037864469724659955
// per_image(51) 3.078746199078731 0.0033715380179692393 373.0 0.006561724316772726
// per_image(60) 3.057332113332901 0.003353375487036956 546.0 0.00659898477038669
// grid(9, 41, 0) -0.7295775932462079 0.4864581379294284 16.5 0.515625
// grid(10, 40, 0) 0.29184499580648465 0.7770204284231451 20.0 0.8203125
// grid(13, 40, 1) 0.7801011759323061 0.45044493418477427 30.0 0.51806640625
// grid(14, 40, 1) 0.7810061936289645 0.44878819698675676 30.0 0.47950012218695337
// grid(20, 40, 0) 0.16938783307712385 0.8672820196027293 92.0 0.903830108496317
// grid(30, 40, 3) 1.2740228916146714 0.21277119747948367 155.0 0.2725397996554928

/// A 5-fold comparison: one Dice per fold and method, no ties, exact Wilcoxon distribution.
#[test]
fn five_folds() {
    let (a, b) = folds();
    check_t(
        paired_t_test(&a, &b).unwrap(),
        5,
        2.225688168098207,
        0.0900411479617237,
    );
    check_w(
        wilcoxon_signed_rank(&a, &b).unwrap(),
        WILCOXON_EXACT,
        5,
        1.0,
        0.125,
    );
    // Swapping the samples flips t and leaves min(W+, W-) and both p-values.
    let swapped = paired_t_test(&b, &a).unwrap();
    assert_close("swapped t", swapped.statistic, -2.225688168098207, RELATIVE);
    check_w(
        wilcoxon_signed_rank(&b, &a).unwrap(),
        WILCOXON_EXACT,
        5,
        1.0,
        0.125,
    );
}

/// 45 and 50 per-image pairs without ties: still the exact distribution (n <= 50).
#[test]
fn per_image_exact() {
    let (a, b) = per_image(45);
    check_t(
        paired_t_test(&a, &b).unwrap(),
        45,
        2.9865725137298185,
        0.0045974006003246335,
    );
    check_w(
        wilcoxon_signed_rank(&a, &b).unwrap(),
        WILCOXON_EXACT,
        45,
        285.0,
        0.00792520797853058,
    );
    let (a, b) = per_image(50);
    check_t(
        paired_t_test(&a, &b).unwrap(),
        50,
        3.2150647626305195,
        0.0023100710292015105,
    );
    check_w(
        wilcoxon_signed_rank(&a, &b).unwrap(),
        WILCOXON_EXACT,
        50,
        342.0,
        0.0037864469724659955,
    );
}

/// 51 and 60 pairs without ties: the normal approximation (n > 50).
#[test]
fn per_image_normal() {
    let (a, b) = per_image(51);
    check_t(
        paired_t_test(&a, &b).unwrap(),
        51,
        3.078746199078731,
        0.0033715380179692393,
    );
    check_w(
        wilcoxon_signed_rank(&a, &b).unwrap(),
        WILCOXON_NORMAL,
        51,
        373.0,
        0.006561724316772726,
    );
    let (a, b) = per_image(60);
    check_t(
        paired_t_test(&a, &b).unwrap(),
        60,
        3.057332113332901,
        0.003353375487036956,
    );
    check_w(
        wilcoxon_signed_rank(&a, &b).unwrap(),
        WILCOXON_NORMAL,
        60,
        546.0,
        0.00659898477038669,
    );
}

/// Ties or zeros in at most 13 pairs: every sign assignment is counted.
#[test]
fn small_with_ties_or_zeros() {
    // Ties, no zero difference.
    let (a, b) = grid(9, 41, 0);
    check_t(
        paired_t_test(&a, &b).unwrap(),
        9,
        -0.7295775932462079,
        0.4864581379294284,
    );
    check_w(
        wilcoxon_signed_rank(&a, &b).unwrap(),
        WILCOXON_PERMUTATION,
        9,
        16.5,
        0.515625,
    );
    // One zero difference, no ties: 9 ranks used.
    let (a, b) = grid(10, 40, 0);
    check_t(
        paired_t_test(&a, &b).unwrap(),
        10,
        0.29184499580648465,
        0.7770204284231451,
    );
    check_w(
        wilcoxon_signed_rank(&a, &b).unwrap(),
        WILCOXON_PERMUTATION,
        9,
        20.0,
        0.8203125,
    );
    // Ties and one zero at the largest size counted exactly.
    let (a, b) = grid(13, 40, 1);
    check_t(
        paired_t_test(&a, &b).unwrap(),
        13,
        0.7801011759323061,
        0.45044493418477427,
    );
    check_w(
        wilcoxon_signed_rank(&a, &b).unwrap(),
        WILCOXON_PERMUTATION,
        12,
        30.0,
        0.51806640625,
    );
}

/// Ties and zeros in more than 13 pairs: the normal approximation with the tie correction,
/// even below 51 pairs.
#[test]
fn larger_with_ties_and_zeros() {
    for (args, n_w, t, t_p, w, w_p) in [
        (
            (14, 40, 1),
            12,
            0.7810061936289645,
            0.44878819698675676,
            30.0,
            0.47950012218695337,
        ),
        (
            (20, 40, 0),
            19,
            0.16938783307712385,
            0.8672820196027293,
            92.0,
            0.903830108496317,
        ),
        (
            (30, 40, 3),
            28,
            1.2740228916146714,
            0.21277119747948367,
            155.0,
            0.2725397996554928,
        ),
    ] {
        let (a, b) = grid(args.0, args.1, args.2);
        check_t(paired_t_test(&a, &b).unwrap(), args.0, t, t_p);
        check_w(
            wilcoxon_signed_rank(&a, &b).unwrap(),
            WILCOXON_NORMAL,
            n_w,
            w,
            w_p,
        );
    }
}

/// Pairs with a NaN on either side are dropped (scipy's `nan_policy='omit'`): the folds with
/// two such pairs added give the folds' results.
#[test]
fn nan_pairs_dropped() {
    let nan = f64::NAN;
    let a = [0.812, nan, 0.847, 0.829, 0.861, 0.9, 0.835];
    let b = [0.798, 0.5, 0.840, 0.833, 0.846, nan, 0.829];
    check_t(
        paired_t_test(&a, &b).unwrap(),
        5,
        2.225688168098207,
        0.0900411479617237,
    );
    check_w(
        wilcoxon_signed_rank(&a, &b).unwrap(),
        WILCOXON_EXACT,
        5,
        1.0,
        0.125,
    );
}

/// Nothing to test: too few pairs, zero variance, no non-zero difference.
#[test]
fn none_cases() {
    let nan = f64::NAN;
    assert_eq!(paired_t_test(&[], &[]), None);
    assert_eq!(paired_t_test(&[0.8], &[0.7]), None);
    assert_eq!(paired_t_test(&[0.8, nan], &[0.7, 0.6]), None);
    // All differences equal (here exactly 1/8): zero variance.
    assert_eq!(
        paired_t_test(&[0.5, 0.75, 1.0], &[0.375, 0.625, 0.875]),
        None
    );
    assert_eq!(paired_t_test(&[0.5, 0.75], &[0.5, 0.75]), None);

    assert_eq!(wilcoxon_signed_rank(&[], &[]), None);
    assert_eq!(wilcoxon_signed_rank(&[nan, 0.5], &[0.5, nan]), None);
    assert_eq!(
        wilcoxon_signed_rank(&[0.5, 0.75, 0.9], &[0.5, 0.75, 0.9]),
        None
    );
    // One non-zero difference is enough to rank.
    let single = wilcoxon_signed_rank(&[0.5, 0.75], &[0.5, 0.7]).unwrap();
    assert_eq!((single.statistic, single.p_value, single.n), (0.0, 1.0, 1));
}

#[test]
#[should_panic(expected = "same length")]
fn different_lengths_panic() {
    let _ = paired_t_test(&[0.1, 0.2], &[0.1]);
}

/// The result serializes to JSON and reads back from a non-`'static` string, the method name
/// included. (A permutation case: its statistic and p-value are short dyadic fractions, which
/// serde_json's default float parsing reads back exactly.)
#[test]
fn serde_round_trip() {
    let (a, b) = grid(9, 41, 0);
    let test = wilcoxon_signed_rank(&a, &b).unwrap();
    let json = serde_json::to_string(&test).unwrap();
    let back: Test = serde_json::from_str(&json).unwrap();
    assert_eq!(back, test);
    let unknown = json.replace(WILCOXON_PERMUTATION, "sign test");
    assert!(serde_json::from_str::<Test>(&unknown).is_err());
}
