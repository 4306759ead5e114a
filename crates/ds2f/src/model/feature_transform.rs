//! DSRL's feature transform module (FTM, Wang et al., CVPR 2020): a 1×1 convolution that maps
//! the HR segmentation logits into the SR image's channel space so that the feature-affinity
//! loss can compare the two streams. The reference keeps only a `fa` 1×1 hook (SPEC §6), so
//! this is the plain 1×1 conv with bias. Training only.
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;

/// 1×1 conv `C → image channels`.
#[derive(Module, Debug)]
pub struct FeatureTransform {
    /// The 1×1 projection.
    pub conv: Conv2d,
}

impl FeatureTransform {
    /// Builds the FTM from `num_classes` logits to `image_channels` channels.
    pub fn new(num_classes: usize, image_channels: usize, device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new([num_classes, image_channels], [1, 1]).init(device),
        }
    }

    /// # Shapes
    /// - `logits`: `[n, C, H, W]`
    /// - output: `[n, image_channels, H, W]`
    pub fn forward(&self, logits: Tensor<4>) -> Tensor<4> {
        crate::ops::conv2d_module(&self.conv, logits)
    }
}
