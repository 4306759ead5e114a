//! The poly learning-rate schedule of the reference (`imed_vision/comm/scheduler/poly.py`),
//! stepped after every optimiser step.

/// `lr = init · (1 − step/T)^power`, where the scheduler's step counter starts at −1 and is
/// advanced after each optimiser step, so iterations 0 and 1 both use `init`.
///
/// The reference computes T from the whole dataset in k-fold runs, so its LR never reaches 0
/// (SPEC §8.6); ds2f builds the schedule with [`PolyLr::ending_at_zero`] from the number of
/// iterations that really run, so the scheduler holds exactly 0 after the last step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolyLr {
    /// Initial learning rate.
    pub init: f64,
    /// Total iterations T.
    pub total: usize,
    /// Power (0.9).
    pub power: f64,
}

impl PolyLr {
    /// A schedule over `iterations` optimiser steps whose value after the last step is 0.
    pub fn ending_at_zero(init: f64, iterations: usize, power: f64) -> Self {
        Self {
            init,
            total: iterations.saturating_sub(1).max(1),
            power,
        }
    }

    /// The learning rate used by iteration `i` (0-based).
    pub fn lr_at(&self, i: usize) -> f64 {
        if i == 0 {
            return self.init;
        }
        let step = (i - 1) as f64;
        let frac = (1.0 - step / self.total as f64).max(0.0);
        self.init * frac.powf(self.power)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `poly_lr_example` of test_vectors.json (HRF k-fold: T = 6900, 5400 iterations run).
    #[test]
    fn matches_reference_vectors() {
        let s = PolyLr {
            init: 0.01,
            total: 6900,
            power: 0.9,
        };
        let first5 = [
            0.01,
            0.01,
            0.009998695642721616,
            0.009997391266536624,
            0.009996086871442012,
        ];
        for (i, expected) in first5.iter().enumerate() {
            assert!((s.lr_at(i) - expected).abs() < 1e-12, "iteration {i}");
        }
        assert!((s.lr_at(5399) - 0.0025353548830507494).abs() < 1e-12);
    }

    #[test]
    fn reaches_zero_after_the_last_step() {
        let s = PolyLr::ending_at_zero(0.1, 10, 0.9);
        // The value the scheduler holds after the 10th step (iteration index 9).
        assert_eq!(s.lr_at(10), 0.0);
        assert!(s.lr_at(9) > 0.0);
        let lrs: Vec<f64> = (0..10).map(|i| s.lr_at(i)).collect();
        assert!(lrs.windows(2).all(|w| w[1] <= w[0]));
    }
}
