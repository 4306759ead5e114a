//! ASPP for the Table V ablation ("ASPP" replacing MS-Conv). The reference `Gate` keeps the
//! commented line `self.msconv = ASPP(in_ch, in_ch, rates=[1, 12, 24, 36])`; the repo's only
//! `ASPP` is `imed_vision/models/segmentation/deeplab.py::ASPP` (DeepLabV3 §3.3), which this
//! module reproduces layer by layer:
//!
//! - branch 1: 1×1 conv (no bias) → BN → ReLU, to `branch_channels` (hard-coded 256 there);
//! - branches 2–4: 3×3 conv (no bias) with dilation = padding = rates 12, 24, 36 → BN → ReLU;
//! - branch 5 (image pooling): global average pool → 1×1 conv (no bias) → BN → ReLU →
//!   broadcast to the input size;
//! - concatenation (5 × 256) → 1×1 conv (no bias) → BN → ReLU (the `Conv2d` wrapper) → BN →
//!   ReLU (the reference's `nn.Sequential` adds a second BN + ReLU) back to `out_channels`.
//!
//! Unlike torchvision's ASPP there is no dropout; the double BN in the projection is kept
//! because it is what the reference would have run. On a batch of one, the image-pooling
//! branch's BN in training mode sees one value per channel (PyTorch raises an error there;
//! burn returns β).
use crate::ops::Activation;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::prelude::*;

use super::{conv, global_avg_pool};

/// Branch width of the reference ASPP (hard-coded 256 in `deeplab.py`).
pub const ASPP_BRANCH_CHANNELS: usize = 256;

/// Atrous rates of the reference line in `Gate` (`rates=[1, 12, 24, 36]`; the 1 is the 1×1
/// branch).
pub const ASPP_RATES: [usize; 4] = [1, 12, 24, 36];

/// Conv (no bias) → BN → ReLU (the reference's `Conv2d` wrapper).
#[derive(Module, Debug)]
pub struct AsppBranch {
    /// The convolution.
    pub conv: Conv2d,
    /// Its batch norm.
    pub bn: BatchNorm,
}

impl AsppBranch {
    fn new(channels: [usize; 2], kernel: usize, dilation: usize, device: &Device) -> Self {
        Self {
            conv: conv(channels, kernel, dilation, 1, false, device),
            bn: BatchNormConfig::new(channels[1]).init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[n, c_in, h, w]`
    /// - output: `[n, c_out, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        crate::ops::conv_bn(&self.conv, &self.bn, x, Activation::Relu)
    }
}

/// The reference DeepLab ASPP (see the module docs).
#[derive(Module, Debug)]
pub struct Aspp {
    /// Branches 1–4: the 1×1 branch, then one 3×3 dilated branch per further rate.
    pub branches: Vec<AsppBranch>,
    /// Branch 5: image pooling (1×1 conv + BN + ReLU on the pooled features).
    pub image_pool: AsppBranch,
    /// Projection 1×1 conv + BN + ReLU of the concatenation.
    pub project: AsppBranch,
    /// The second BN (+ ReLU) of the reference's projection.
    pub project_bn: BatchNorm,
}

impl Aspp {
    /// Builds an ASPP `in_channels → out_channels` with `branch_channels` per branch and the
    /// given rates (the first rate is the 1×1 branch, whose dilation has no effect).
    ///
    /// # Panics
    /// If `rates` is empty.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        branch_channels: usize,
        rates: &[usize],
        device: &Device,
    ) -> Self {
        assert!(!rates.is_empty(), "ASPP needs at least one rate");
        let mut branches = vec![AsppBranch::new(
            [in_channels, branch_channels],
            1,
            1,
            device,
        )];
        branches.extend(
            rates[1..]
                .iter()
                .map(|&r| AsppBranch::new([in_channels, branch_channels], 3, r, device)),
        );
        let concat = branch_channels * (branches.len() + 1);
        Self {
            branches,
            image_pool: AsppBranch::new([in_channels, branch_channels], 1, 1, device),
            project: AsppBranch::new([concat, out_channels], 1, 1, device),
            project_bn: BatchNormConfig::new(out_channels).init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[n, c_in, h, w]`
    /// - output: `[n, c_out, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, _, h, w] = x.dims();
        let mut outs: Vec<Tensor<4>> = self
            .branches
            .iter()
            .map(|b| b.forward(x.clone())) // [n, b, h, w]
            .collect();
        let pooled = self.image_pool.forward(global_avg_pool(x)); // [n, b, 1, 1]
        let b = pooled.dims()[1];
        outs.push(pooled.expand([n, b, h, w])); // [n, b, h, w]
        let net = self.project.forward(Tensor::cat(outs, 1)); // [n, c_out, h, w]
        crate::ops::batch_norm_act(&self.project_bn, net, crate::ops::Activation::Relu) // [n, c_out, h, w]
    }
}
