//! The k-fold split of the authors' reference code, reproduced bit for bit.
//!
//! The reference code sorts the image paths by basename and splits them with scikit-learn's
//! `KFold(n_splits=k, shuffle=True, random_state=seed)`. That shuffles `0..n` with numpy's
//! legacy `RandomState(seed).shuffle` and cuts the result into `k` contiguous folds. To get the
//! same folds without Python this module replays the same steps:
//!
//! 1. MT19937 (32-bit Mersenne Twister) seeded with the reference `init_genrand(seed)`, which is
//!    what `RandomState(int)` does (`rand_mt::Mt::new` is exactly that seeding);
//! 2. a Fisher–Yates shuffle from the last position down to 1, where position `i` swaps with a
//!    draw in `0..=i` obtained by masking 32-bit outputs to the smallest all-ones mask covering
//!    `i` and rejecting values above `i` (numpy's `random_interval`);
//! 3. fold sizes `n / k`, the first `n % k` folds one larger, each fold a contiguous slice of the
//!    shuffled indices (scikit-learn's `KFold._iter_test_indices`);
//! 4. each fold's indices in ascending order, as `KFold.split` yields them (it turns the slice
//!    into a boolean mask over `0..n` and back, which sorts it).
//!
//! The tests in `tests/kfold_sklearn.rs` compare the result against scikit-learn's own output.

use rand_mt::Mt;
use thiserror::Error;

/// Why a k-fold split cannot be made (the same conditions under which scikit-learn refuses).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KFoldError {
    /// Fewer than two folds: there would be nothing to train on.
    #[error("k-fold needs at least 2 folds, got k = {k}")]
    TooFewFolds {
        /// The number of folds asked for.
        k: usize,
    },
    /// More folds than items: some fold would be empty.
    #[error("cannot split {n} items into k = {k} folds (k must not exceed the number of items)")]
    MoreFoldsThanItems {
        /// The number of items.
        n: usize,
        /// The number of folds asked for.
        k: usize,
    },
    /// More than 2^32 items: numpy switches to 64-bit draws there, which this module does not
    /// replay (no data set of the protocol comes anywhere near).
    #[error("cannot split {n} items: at most 2^32 are supported")]
    TooManyItems {
        /// The number of items.
        n: usize,
    },
}

/// A uniform draw in `0..=max` as numpy's legacy `random_interval` makes it for `max` below
/// 2^32: 32-bit outputs masked to the smallest all-ones mask covering `max`, values above `max`
/// rejected. Needs `max >= 1` (numpy returns 0 without a draw for 0; the shuffle never asks).
fn random_interval(mt: &mut Mt, max: u32) -> u32 {
    debug_assert!(max >= 1);
    let mask = u32::MAX >> max.leading_zeros();
    loop {
        let value = mt.next_u32() & mask;
        if value <= max {
            return value;
        }
    }
}

/// `0..n` shuffled as `numpy.random.RandomState(seed).shuffle(numpy.arange(n))` leaves it.
fn legacy_shuffled_range(n: usize, seed: u32) -> Vec<usize> {
    let mut mt = Mt::new(seed);
    let mut indices: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        // The caller has checked n <= 2^32, so i < 2^32 fits.
        let j = random_interval(&mut mt, i as u32) as usize;
        indices.swap(i, j);
    }
    indices
}

/// The test indices of each fold of scikit-learn's
/// `KFold(n_splits=k, shuffle=True, random_state=seed)` over `n` items, fold by fold, each fold
/// in ascending order exactly as `KFold.split` yields its test indices.
///
/// Fails for `k < 2` and `k > n`, as scikit-learn does, and for `n > 2^32`.
pub fn kfold_test_indices(n: usize, k: usize, seed: u32) -> Result<Vec<Vec<usize>>, KFoldError> {
    if k < 2 {
        return Err(KFoldError::TooFewFolds { k });
    }
    if k > n {
        return Err(KFoldError::MoreFoldsThanItems { n, k });
    }
    if u64::try_from(n).map_or(true, |n| n > 1 << 32) {
        return Err(KFoldError::TooManyItems { n });
    }
    let shuffled = legacy_shuffled_range(n, seed);
    let (base, larger) = (n / k, n % k);
    let mut folds = Vec::with_capacity(k);
    let mut start = 0;
    for f in 0..k {
        let stop = start + base + usize::from(f < larger);
        let mut fold = shuffled[start..stop].to_vec();
        fold.sort_unstable();
        folds.push(fold);
        start = stop;
    }
    Ok(folds)
}

/// The test names of each fold when the reference code splits `names` (image basenames or
/// stems): the names are sorted first (byte order, which is Python's `sorted` on `str`), split
/// with [`kfold_test_indices`], and each fold's names are returned sorted.
///
/// Fails under the same conditions as [`kfold_test_indices`] with `n = names.len()`.
pub fn kfold_names(names: &[String], k: usize, seed: u32) -> Result<Vec<Vec<String>>, KFoldError> {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    let folds = kfold_test_indices(sorted.len(), k, seed)?;
    Ok(folds
        .into_iter()
        .map(|fold| {
            let mut fold_names: Vec<String> = fold.into_iter().map(|i| sorted[i].clone()).collect();
            fold_names.sort();
            fold_names
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first outputs of MT19937 seeded with 5489 (the reference implementation's default
    /// seed), to pin down that `Mt::new` is `init_genrand`; numpy 2.4.6 gives the same from
    /// `numpy.random.RandomState(5489)._bit_generator.random_raw(2)`.
    #[test]
    fn mt_new_is_init_genrand() {
        let mut mt = Mt::new(5489);
        assert_eq!(mt.next_u32(), 3_499_211_612);
        assert_eq!(mt.next_u32(), 581_869_302);
    }

    /// The shuffle alone against numpy 2.4.6, whose output came from
    /// `a = numpy.arange(n); numpy.random.RandomState(seed).shuffle(a); print(a.tolist())`.
    #[test]
    fn shuffle_matches_numpy_legacy_shuffle() {
        assert_eq!(
            legacy_shuffled_range(20, 0),
            [
                18, 1, 19, 8, 10, 17, 6, 13, 4, 2, 5, 14, 9, 7, 16, 11, 3, 0, 15, 12
            ]
        );
        assert_eq!(
            legacy_shuffled_range(23, 12345),
            [
                10, 19, 8, 17, 3, 12, 16, 0, 15, 7, 18, 11, 14, 6, 20, 13, 22, 21, 9, 4, 1, 5, 2
            ]
        );
        assert_eq!(legacy_shuffled_range(7, 66), [0, 5, 1, 2, 3, 6, 4]);
        assert_eq!(
            legacy_shuffled_range(15, 66),
            [6, 1, 13, 14, 8, 0, 9, 2, 11, 5, 10, 3, 7, 12, 4]
        );
        assert_eq!(legacy_shuffled_range(1, 66), [0]);
        assert!(legacy_shuffled_range(0, 66).is_empty());
    }

    #[test]
    fn random_interval_stays_in_range() {
        let mut mt = Mt::new(1);
        for max in [1u32, 2, 3, 5, 8, 1000, u32::MAX] {
            for _ in 0..100 {
                assert!(random_interval(&mut mt, max) <= max);
            }
        }
    }
}
