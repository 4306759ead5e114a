//! The EESP unit of ESPNetv2 (Mehta et al., CVPR 2019, Fig. 1c; `EESP` of the DS2F reference
//! `imed_vision/layers/eesp.py` and of the official `nn_layers/eesp.py`): reduce with a
//! K-group point-wise convolution, K parallel depth-wise dilated 3×3 branches fused
//! hierarchically (each branch adds the previous one's output), concatenate, BN + PReLU,
//! expand with a K-group point-wise convolution (+ BN), then — at stride 1 — the residual and
//! a PReLU. At stride 2 the expanded map is returned as is: [`super::StridedEesp`] adds the
//! pooled path and the image before its own activation.
//!
//! Branch order: branch i has the receptive field of a `(3 + 2i)`-wide kernel, i.e. dilation
//! `i + 1`, falling back to dilation 1 past `r_lim`, in this order (the DS2F reference). The
//! official code sorts the receptive fields first, so a fallen-back branch moves to the front;
//! the two differ only where `r_lim < 3 + 2(K − 1)` (here: `r_lim = 7`, i.e. the level-4 units
//! and the decoder's unit), in the order of the fusion, not in the parameters.
use burn::nn::PRelu;
use burn::nn::PReluConfig;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::layers::{Br, Cb, Cbr, ConvInit, conv};

/// The dilation of each of the `k` branches for the receptive-field limit `r_lim` (see the
/// module docs).
pub fn branch_dilations(k: usize, r_lim: usize) -> Vec<usize> {
    (0..k)
        .map(|i| {
            let kernel = 3 + 2 * i;
            if kernel <= r_lim { (kernel - 1) / 2 } else { 1 }
        })
        .collect()
}

/// One EESP unit (see the module docs).
#[derive(Module, Debug)]
pub struct Eesp {
    /// K-group 1×1 reduction `in → out / K` + BN + PReLU (`g_conv1`).
    pub g_conv1: Cbr,
    /// The K depth-wise dilated 3×3 branches (`spp_convs`), each `out / K` channels.
    pub spp_convs: Vec<Conv2d>,
    /// BN + PReLU after the concatenation (`bn_pr`).
    pub bn_pr: Br,
    /// K-group 1×1 expansion `out → out` + BN (`conv_concat`).
    pub conv_concat: Cb,
    /// PReLU after the residual (`module_act`); `None` at stride 2, where the reference's is
    /// built but never run (so it is left out here: its `out` slopes would never train).
    pub module_act: Option<PRelu>,
    /// 1 or 2.
    pub stride: usize,
}

impl Eesp {
    /// Builds a unit `in_channels → out_channels` with `k` branches, receptive-field limit
    /// `r_lim` and `stride` (1 or 2).
    ///
    /// # Panics
    /// If `in_channels`, `out_channels` or `out_channels / k` is not a multiple of `k` (the
    /// grouped convolutions; PyTorch rejects the same).
    pub fn new(
        channels: [usize; 2],
        stride: usize,
        r_lim: usize,
        k: usize,
        init: ConvInit,
        device: &Device,
    ) -> Self {
        let [cin, cout] = channels;
        let n = cout / k;
        assert!(
            cout.is_multiple_of(k) && cin.is_multiple_of(k) && n.is_multiple_of(k),
            "EESP {cin} → {cout}: both, and {cout} / {k}, must be multiples of K = {k}"
        );
        Self {
            g_conv1: Cbr::new([cin, n], 1, 1, k, init, device),
            spp_convs: branch_dilations(k, r_lim)
                .into_iter()
                .map(|d| conv([n, n], 3, stride, d, n, init, device))
                .collect(),
            bn_pr: Br::new(cout, device),
            conv_concat: Cb::new([cout, cout], 1, k, init, device),
            module_act: (stride == 1)
                .then(|| PReluConfig::new().with_num_parameters(cout).init(device)),
            stride,
        }
    }

    /// # Shapes
    /// - `x`: `[n, in, h, w]`
    /// - output: `[n, out, ceil(h / stride), ceil(w / stride)]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let reduced = self.g_conv1.forward(x.clone()); // [n, out/K, h, w]
        let mut branches: Vec<Tensor<4>> = Vec::with_capacity(self.spp_convs.len());
        for conv in &self.spp_convs {
            let y = crate::ops::conv2d_module(conv, reduced.clone()); // [n, out/K, h', w']
            let y = match branches.last() {
                Some(previous) => y + previous.clone(), // hierarchical feature fusion
                None => y,
            };
            branches.push(y);
        }
        let merged = self.bn_pr.forward(Tensor::cat(branches, 1)); // [n, out, h', w']
        let expanded = self.conv_concat.forward(merged); // [n, out, h', w']
        let Some(act) = &self.module_act else {
            return expanded;
        };
        let out = match expanded.dims() == x.dims() {
            true => expanded + x,
            false => expanded,
        };
        act.forward(out)
    }
}
