//! The DeepLabV3+ decoder (`deeplab.py::Decoder(256, 256)`, SPEC §1.3): the low-level
//! features through a 1×1 conv to 48 channels (with bias, no BN or ReLU: the reference's
//! `nn.Conv2d`), the ASPP output resized bilinearly (align_corners = false) to their size,
//! concatenation (304 channels) and two 3×3 Conv+BN+ReLU to 256 channels: F_seg (or F_sr for
//! the SR stream's copy) at LR/4.
use crate::model::blocks::{ConvBnRelu, ConvBnReluConfig};
use crate::model::unet::bilinear;
use crate::ops::Activation;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;

use super::{DeepLabFeatures, FEATURE_CHANNELS, LOW_CHANNELS};

/// Width of the projected low-level features.
pub const LOW_PROJECTED: usize = 48;

/// The DeepLabV3+ decoder (see the module docs).
#[derive(Module, Debug)]
pub struct DeepLabDecoder {
    /// 1×1 conv with bias, 256 → 48 (no BN, no ReLU).
    pub conv_low: Conv2d,
    /// `fusion_conv.0`: 3×3 Conv+BN+ReLU 304 → 256; `fusion_conv.1`: 3×3 Conv+BN+ReLU
    /// 256 → 256.
    pub fusion_conv: Vec<ConvBnRelu>,
}

impl DeepLabDecoder {
    /// Builds the decoder (low-level 256 channels, ASPP 256 channels, output 256).
    pub fn new(device: &Device) -> Self {
        Self {
            conv_low: Conv2dConfig::new([LOW_CHANNELS, LOW_PROJECTED], [1, 1]).init(device),
            fusion_conv: vec![
                ConvBnReluConfig::new(LOW_PROJECTED + FEATURE_CHANNELS, FEATURE_CHANNELS)
                    .with_kernel(3)
                    .init(device),
                ConvBnReluConfig::new(FEATURE_CHANNELS, FEATURE_CHANNELS)
                    .with_kernel(3)
                    .init(device),
            ],
        }
    }

    /// # Shapes
    /// - `features`: `low` `[n, 256, h4, w4]`, `high` `[n, 256, h', w']`
    /// - output: `[n, 256, h4, w4]`
    pub fn forward(&self, features: &DeepLabFeatures) -> Tensor<4> {
        let [_, last] = self.forward_levels(features);
        last
    }

    /// Both fusion convolutions' outputs (the decoder's levels for CogSeg's feature loss).
    ///
    /// # Shapes
    /// - output: `[n, 256, h4, w4]` each
    pub fn forward_levels(&self, features: &DeepLabFeatures) -> [Tensor<4>; 2] {
        let low = crate::ops::conv2d_module(&self.conv_low, features.low.clone()); // [n, 48, h4, w4]
        let [_, _, h, w] = low.dims();
        let high = bilinear(features.high.clone(), [h, w], false); // [n, 256, h4, w4]
        let first = &self.fusion_conv[0];
        let f1 = crate::ops::conv_bn_cat(&first.conv, &first.bn, vec![low, high], Activation::Relu); // [n, 256, h4, w4]
        let f2 = self.fusion_conv[1].forward(f1.clone()); // [n, 256, h4, w4]
        [f1, f2]
    }
}
