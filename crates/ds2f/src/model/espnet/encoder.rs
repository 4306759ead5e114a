//! The ESPNetv2 encoder at width multiplier s (`EspNetV2` of the DS2F reference
//! `imed_vision/models/classification/espnets.py`, `EESPNet` of the official code) with the
//! classifier, `level5_0` and `level5` removed, as both segmentation models do: a 3×3 stride-2
//! CBR (level 1, /2), then three [`StridedEesp`] units (/4, /8, /16), followed by 3 [`Eesp`]
//! units at /8 and 7 at /16. Every size works: each stage halves rounding up.
use burn::prelude::*;

use super::eesp::Eesp;
use super::layers::{Cbr, ConvInit, avg_pool_3s2};
use super::strided_eesp::StridedEesp;
use crate::error::ConfigError;

/// Parallel branches K of every EESP unit.
pub const BRANCHES: usize = 4;
/// Receptive-field limits: `level2_0`, `level3_0`, `level3`, `level4` (and `level4_0` uses the
/// `level3` one, as the reference).
const R_LIMS: [usize; 4] = [13, 11, 9, 7];
/// EESP units after `level3_0` and after `level4_0`.
const REPEATS: [usize; 2] = [3, 7];
/// The width multipliers the reference ships (`espnetv2_s_{0_5, 1_0, 1_25, 1_5, 2_0}`).
pub const SCALES: [f64; 5] = [0.5, 1.0, 1.25, 1.5, 2.0];

/// Output channels of the four encoder levels for width multiplier `scale`
/// (`model.espnet_scale`): with `b = 4·ceil(⌊32·s⌋ / 4)`, level 1 has `min(32, b)` and level
/// i > 1 has `b·2^(i−1)`: s = 0.5 → 16, 32, 64, 128; 1.0 → 32, 64, 128, 256;
/// 1.25 → 32, 80, 160, 320; 1.5 → 32, 96, 192, 384; 2.0 → 32, 128, 256, 512.
///
/// # Errors
/// [`ConfigError::Range`] naming `model.espnet_scale` for a scale the reference has no model
/// for.
pub fn level_widths(scale: f64) -> Result<[usize; 4], ConfigError> {
    if !SCALES.contains(&scale) {
        return Err(ConfigError::Range {
            key: "model.espnet_scale".into(),
            reason: format!("{scale} is not one of the ESPNetv2 widths {SCALES:?}"),
        });
    }
    let base = ((32.0 * scale).floor() as usize).div_ceil(BRANCHES) * BRANCHES;
    Ok([base.min(32), base * 2, base * 4, base * 8])
}

/// The encoder's features at each level.
#[derive(Debug, Clone)]
pub struct EspnetLevels {
    /// Level 1, `[n, w1, ceil(h/2), ceil(w/2)]`.
    pub l1: Tensor<4>,
    /// Level 2, `[n, w2, /4]`.
    pub l2: Tensor<4>,
    /// Level 3, `[n, w3, /8]`.
    pub l3: Tensor<4>,
    /// Level 4, `[n, w4, /16]`.
    pub l4: Tensor<4>,
    /// The input's `[h, w]`.
    pub input_size: [usize; 2],
}

/// The encoder (see the module docs). Field names follow the reference's state dict.
#[derive(Module, Debug)]
pub struct EspnetV2Encoder {
    /// 3×3 stride-2 CBR `image → w1`.
    pub level1: Cbr,
    /// `w1 → w2`, /4.
    pub level2_0: StridedEesp,
    /// `w2 → w3`, /8.
    pub level3_0: StridedEesp,
    /// 3 EESP units `w3 → w3`.
    pub level3: Vec<Eesp>,
    /// `w3 → w4`, /16.
    pub level4_0: StridedEesp,
    /// 7 EESP units `w4 → w4`.
    pub level4: Vec<Eesp>,
}

impl EspnetV2Encoder {
    /// Builds the encoder for `in_channels` image channels and level `widths`
    /// ([`level_widths`]), with the reference backbone's initialisation.
    ///
    /// # Panics
    /// If a width is not a multiple of [`BRANCHES`] (none of [`level_widths`]'s is not).
    pub fn new(in_channels: usize, widths: [usize; 4], device: &Device) -> Self {
        let [w1, w2, w3, w4] = widths;
        let (k, init) = (BRANCHES, ConvInit::Backbone);
        let units = |count: usize, width: usize, r_lim: usize| -> Vec<Eesp> {
            (0..count)
                .map(|_| Eesp::new([width, width], 1, r_lim, k, init, device))
                .collect()
        };
        Self {
            level1: Cbr::new([in_channels, w1], 3, 2, 1, init, device),
            level2_0: StridedEesp::new([w1, w2], in_channels, R_LIMS[0], k, init, device),
            level3_0: StridedEesp::new([w2, w3], in_channels, R_LIMS[1], k, init, device),
            level3: units(REPEATS[0], w3, R_LIMS[2]),
            level4_0: StridedEesp::new([w3, w4], in_channels, R_LIMS[2], k, init, device),
            level4: units(REPEATS[1], w4, R_LIMS[3]),
        }
    }

    /// # Shapes
    /// - `x`: `[n, image_channels, h, w]`
    /// - output: the four levels, see [`EspnetLevels`]
    pub fn forward(&self, x: Tensor<4>) -> EspnetLevels {
        let [_, _, h, w] = x.dims();
        // The image pyramid of the reinforcement, each step the pool the units use.
        let image_l2 = avg_pool_3s2(avg_pool_3s2(x.clone())); // [n, 3, /4]
        let image_l3 = avg_pool_3s2(image_l2.clone()); // [n, 3, /8]
        let image_l4 = avg_pool_3s2(image_l3.clone()); // [n, 3, /16]
        let l1 = self.level1.forward(x); // [n, w1, /2]
        let l2 = self.level2_0.forward(l1.clone(), image_l2); // [n, w2, /4]
        let l3 = self.level3_0.forward(l2.clone(), image_l3); // [n, w3, /8]
        let l3 = self.level3.iter().fold(l3, |x, unit| unit.forward(x)); // [n, w3, /8]
        let l4 = self.level4_0.forward(l3.clone(), image_l4); // [n, w4, /16]
        let l4 = self.level4.iter().fold(l4, |x, unit| unit.forward(x)); // [n, w4, /16]
        EspnetLevels {
            l1,
            l2,
            l3,
            l4,
            input_size: [h, w],
        }
    }
}
