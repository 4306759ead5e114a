//! [`ClassMean`]: which classes the headline scalars (mIoU, mDice, MCC, BM, mAUC, ...) average.
//!
//! The paper reports, per SPEC §5, the foreground mean for lesions (`nanmean` over classes
//! `1..C−1`, background excluded; for `C = 2` this is class 1 itself, the vessel convention)
//! and the mean over all 19 classes for Cityscapes. Classes whose value is undefined (`NaN`,
//! e.g. a class absent from truth and prediction) are left out of the mean, like `numpy.nanmean`.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::scores::{Scores, nanmean};

/// Which classes a headline scalar averages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassMean {
    /// `nanmean` over classes `1..C−1` (background excluded): vessels (`C = 2`: class 1) and
    /// lesions (MA, HE, EX, SE).
    #[default]
    Foreground,
    /// `nanmean` over every class `0..C−1`: Cityscapes mIoU.
    All,
}

impl ClassMean {
    /// The averaged classes for `num_classes` classes.
    pub fn classes(self, num_classes: usize) -> Range<usize> {
        match self {
            ClassMean::Foreground => 1.min(num_classes)..num_classes,
            ClassMean::All => 0..num_classes,
        }
    }

    /// Whether `class` is averaged.
    pub fn includes(self, class: usize, num_classes: usize) -> bool {
        self.classes(num_classes).contains(&class)
    }

    /// Metric-wise `nanmean` of the averaged classes of `per_class` (index = class).
    pub fn mean_scores(self, per_class: &[Scores]) -> Scores {
        Scores::nanmean(&per_class[self.classes(per_class.len())])
    }

    /// `nanmean` of the averaged classes of `per_class` (index = class).
    pub fn mean(self, per_class: &[f64]) -> f64 {
        nanmean(per_class[self.classes(per_class.len())].iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_means() {
        assert_eq!(ClassMean::Foreground.classes(5), 1..5);
        assert_eq!(ClassMean::All.classes(19), 0..19);
        assert!(!ClassMean::Foreground.includes(0, 5) && ClassMean::All.includes(0, 5));
        // Foreground over [0.9, NaN, 0.2, 0.4] skips the background and the NaN: 0.3.
        let values = [0.9, f64::NAN, 0.2, 0.4];
        assert!((ClassMean::Foreground.mean(&values) - 0.3).abs() < 1e-15);
        assert!((ClassMean::All.mean(&values) - 0.5).abs() < 1e-15);
        assert!(ClassMean::Foreground.mean(&[0.9, f64::NAN]).is_nan());
        assert_eq!(ClassMean::Foreground.mean(&[0.9, 0.1]), 0.1);
        assert_eq!(
            serde_json::to_string(&[ClassMean::Foreground, ClassMean::All]).unwrap(),
            r#"["foreground","all"]"#
        );
    }
}
