//! DeepLabV3+ (Chen et al., ECCV 2018) as the reference builds it for DS2F
//! (`imed_vision/models/segmentation/deeplab.py::DeeplabV3Plus`, SPEC §1.3): a ResNet v1.5
//! ([`resnet`]) with the reference's dilation scheme, the reference ASPP ([`aspp`]) and the
//! DeepLabV3+ decoder ([`decoder`]). The encoder of the dual-stream wiring is ResNet + ASPP
//! (both streams read the same low-level and ASPP features); each stream has its own
//! [`DeepLabDecoder`].
//!
//! | file | module | reference |
//! |---|---|---|
//! | [`resnet`] | [`ResNet`], [`Bottleneck`] | `models/classification/resnet.py::ResNet` (torchvision names) |
//! | [`aspp`] | [`Aspp`] | `deeplab.py::ASPP` |
//! | [`decoder`] | [`DeepLabDecoder`] | `deeplab.py::Decoder` |
pub mod aspp;
pub mod decoder;
pub mod resnet;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use aspp::Aspp;
pub use decoder::DeepLabDecoder;
pub use resnet::{Bottleneck, Downsample, ResNet, ResNetConfig, ResNetDepth};

/// Channels of ResNet's `layer1` output (the decoder's low-level input).
pub const LOW_CHANNELS: usize = 256;
/// Channels of ResNet's `layer4` output (the ASPP's input).
pub const HIGH_CHANNELS: usize = 2048;
/// Channels of the ASPP output and of the decoder output (F_seg, F_sr).
pub const FEATURE_CHANNELS: usize = 256;

/// The output stride of the ResNet (`model.output_stride`): how much smaller than the input
/// `layer4`'s output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(try_from = "usize", into = "usize")]
pub enum OutputStride {
    /// The vessel/lesion scripts' setting: strides `[1, 2, 1, 1]`, dilations `[1, 1, 1, 2]`,
    /// multi-grid `[1, 2, 4]`, ASPP rates `[1, 12, 24, 36]`. Not the usual OS 8 (layer3
    /// dilation 2, layer4 dilation 4): layer3 runs at /8 undilated and layer4 at /8 with
    /// dilations 2, 4, 8.
    #[default]
    Eight,
    /// The Cityscapes script's: strides `[1, 2, 2, 1]`, dilations `[1, 1, 1, 2]`, multi-grid
    /// `[1, 2, 4]`, ASPP rates `[1, 6, 12, 18]`.
    Sixteen,
}

impl TryFrom<usize> for OutputStride {
    type Error = String;

    fn try_from(v: usize) -> Result<Self, String> {
        match v {
            8 => Ok(OutputStride::Eight),
            16 => Ok(OutputStride::Sixteen),
            _ => Err(format!("model.output_stride must be 8 or 16, not {v}")),
        }
    }
}

impl From<OutputStride> for usize {
    fn from(s: OutputStride) -> usize {
        match s {
            OutputStride::Eight => 8,
            OutputStride::Sixteen => 16,
        }
    }
}

impl OutputStride {
    /// Strides of `layer1..layer4`.
    pub fn strides(self) -> [usize; 4] {
        match self {
            OutputStride::Eight => [1, 2, 1, 1],
            OutputStride::Sixteen => [1, 2, 2, 1],
        }
    }

    /// Dilations of `layer1..layer4` (layer4's is multiplied by the multi-grid).
    pub fn dilations(self) -> [usize; 4] {
        [1, 1, 1, 2]
    }

    /// ASPP rates (the first is the 1×1 branch).
    pub fn rates(self) -> [usize; 4] {
        match self {
            OutputStride::Eight => [1, 12, 24, 36],
            OutputStride::Sixteen => [1, 6, 12, 18],
        }
    }
}

/// Multi-grid of `layer4` (DeepLabV3 §3.2): block `i` has dilation `dilations[3] · grid[i]`.
pub const MULTI_GRID: [usize; 3] = [1, 2, 4];

/// What the DeepLabV3+ encoder gives its decoders.
#[derive(Debug, Clone)]
pub struct DeepLabFeatures {
    /// ResNet `layer1` output, `[n, 256, h/4, w/4]`.
    pub low: Tensor<4>,
    /// ASPP output, `[n, 256, h/os, w/os]`.
    pub high: Tensor<4>,
    /// The LR input size `[h, w]`.
    pub input_size: [usize; 2],
}

/// The shared part of DeepLabV3+: ResNet + ASPP.
#[derive(Module, Debug)]
pub struct DeepLabEncoder {
    /// ResNet v1.5 without `avgpool`/`fc` (parameter names as torchvision's).
    pub backbone: ResNet,
    /// ASPP on `layer4` (2048 → 256).
    pub aspp: Aspp,
}

impl DeepLabEncoder {
    /// Builds ResNet-`depth` with `output_stride` and its ASPP for `in_channels` inputs.
    pub fn new(
        in_channels: usize,
        depth: ResNetDepth,
        output_stride: OutputStride,
        device: &Device,
    ) -> Self {
        Self {
            backbone: ResNetConfig::new(depth, output_stride)
                .with_in_channels(in_channels)
                .init(device),
            aspp: Aspp::new(
                HIGH_CHANNELS,
                FEATURE_CHANNELS,
                FEATURE_CHANNELS,
                &output_stride.rates(),
                device,
            ),
        }
    }

    /// # Shapes
    /// - `x`: `[n, in_channels, h, w]`
    /// - output: `low` `[n, 256, h/4, w/4]`, `high` `[n, 256, h/os, w/os]` (sizes rounded up
    ///   at each stride-2 step)
    pub fn forward(&self, x: Tensor<4>) -> DeepLabFeatures {
        let [_, _, h, w] = x.dims();
        let [low, _, _, top] = self.backbone.forward_features(x); // [n, 256, h/4, w/4], [n, 2048, h/os, w/os]
        let high = self.aspp.forward(top); // [n, 256, h/os, w/os]
        DeepLabFeatures {
            low,
            high,
            input_size: [h, w],
        }
    }
}
