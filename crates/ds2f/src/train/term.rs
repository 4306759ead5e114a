//! The loss terms of a training step, named once: the objective computes them, `metrics.csv`
//! has a `loss_<name>` column for each, the curves draw each, and a non-finite value names its
//! term in the error.
use std::fmt;

/// One term of the training objective (eq. 7 of the paper, plus ESPNetv2's auxiliary loss).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LossTerm {
    /// The segmentation loss on the HR logits (CE, class-balanced CE or focal).
    Seg,
    /// The SR stream's MSE against the HR image.
    Sr,
    /// The seg proxy loss (RMI, CE or generalised Dice) on the shared module's seg output.
    ProxySeg,
    /// The SR proxy loss (SSIM or MSE) on the shared module's SR output.
    ProxySr,
    /// CogSeg's L1 or DSRL's feature-affinity loss.
    Feature,
    /// ESPNetv2's auxiliary loss: the seg loss on the level-3 logits up-sampled to HR.
    Aux,
}

impl LossTerm {
    /// Every term, in the order of `metrics.csv`'s columns (new terms go at the end, so that
    /// older files keep their column positions).
    pub const ALL: [LossTerm; 6] = [
        LossTerm::Seg,
        LossTerm::Sr,
        LossTerm::ProxySeg,
        LossTerm::ProxySr,
        LossTerm::Feature,
        LossTerm::Aux,
    ];

    /// Number of terms.
    pub const COUNT: usize = Self::ALL.len();

    /// The name used in logs, errors, `metrics.csv` (`loss_<name>`) and the curves.
    pub fn name(self) -> &'static str {
        match self {
            LossTerm::Seg => "seg",
            LossTerm::Sr => "sr",
            LossTerm::ProxySeg => "proxy_seg",
            LossTerm::ProxySr => "proxy_sr",
            LossTerm::Feature => "feature",
            LossTerm::Aux => "aux",
        }
    }

    /// Position in [`LossTerm::ALL`] (and in per-term arrays such as
    /// [`super::EpochRecord::term_losses`]).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The term named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for LossTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_index_and_parse_back() {
        for (k, term) in LossTerm::ALL.into_iter().enumerate() {
            assert_eq!(term.index(), k);
            assert_eq!(LossTerm::from_name(term.name()), Some(term));
        }
        assert_eq!(LossTerm::from_name("loss"), None);
        // The first five are the columns of metrics.csv files written before `aux` existed.
        let names: Vec<&str> = LossTerm::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(
            names,
            ["seg", "sr", "proxy_seg", "proxy_sr", "feature", "aux"]
        );
    }
}
