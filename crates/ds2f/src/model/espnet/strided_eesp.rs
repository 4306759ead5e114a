//! The down-sampling unit of ESPNetv2 (`SESSP` of the DS2F reference, `DownSampler` of the
//! official code): a stride-2 [`Eesp`] beside a 3×3 stride-2 average pool of the input,
//! concatenated (EESP first, as the reference; the official code puts the pool first), plus
//! the "input reinforcement": the image, average-pooled to the same size, through a 3×3
//! CBR and a 1×1 CB, added; then a PReLU.
use burn::nn::{PRelu, PReluConfig};
use burn::prelude::*;

use super::eesp::Eesp;
use super::layers::{Cb, Cbr, ConvInit, avg_pool_3s2};

/// One down-sampling unit (see the module docs).
#[derive(Module, Debug)]
pub struct StridedEesp {
    /// Stride-2 EESP `in → out − in`.
    pub eesp: Eesp,
    /// Reinforcement: 3×3 CBR `image → image` channels (`refin_conv.0`).
    pub refin_cbr: Cbr,
    /// Reinforcement: 1×1 CB `image → out` channels (`refin_conv.1`).
    pub refin_cb: Cb,
    /// PReLU over the sum (`activation`).
    pub activation: PRelu,
}

impl StridedEesp {
    /// Builds a unit `in_channels → out_channels` (`out > in`) reinforced from an image of
    /// `image_channels` channels, with `k` branches and receptive-field limit `r_lim`.
    ///
    /// # Panics
    /// If `out_channels − in_channels` or `in_channels` is not a multiple of `k`.
    pub fn new(
        channels: [usize; 2],
        image_channels: usize,
        r_lim: usize,
        k: usize,
        init: ConvInit,
        device: &Device,
    ) -> Self {
        let [cin, cout] = channels;
        Self {
            eesp: Eesp::new([cin, cout - cin], 2, r_lim, k, init, device),
            refin_cbr: Cbr::new([image_channels, image_channels], 3, 1, 1, init, device),
            refin_cb: Cb::new([image_channels, cout], 1, 1, init, device),
            activation: PReluConfig::new().with_num_parameters(cout).init(device),
        }
    }

    /// `image` is average-pooled (3×3, stride 2) until its height is that of the output, as
    /// the reference loops; the encoder passes it already at that size.
    ///
    /// # Shapes
    /// - `x`: `[n, in, h, w]`
    /// - `image`: `[n, image_channels, H, W]` with `H ≥ ceil(h/2)`, reaching `ceil(h/2)`
    ///   (and `ceil(w/2)`) by halving
    /// - output: `[n, out, ceil(h/2), ceil(w/2)]`
    pub fn forward(&self, x: Tensor<4>, image: Tensor<4>) -> Tensor<4> {
        let pooled = avg_pool_3s2(x.clone()); // [n, in, h/2, w/2]
        let [_, _, ho, _] = pooled.dims();
        let eesp = self.eesp.forward(x); // [n, out − in, h/2, w/2]
        let mut image = image;
        while image.dims()[2] > ho {
            image = avg_pool_3s2(image);
        }
        assert_eq!(
            image.dims()[2..],
            pooled.dims()[2..],
            "the image does not halve to the feature size"
        );
        let reinforcement = self.refin_cb.forward(self.refin_cbr.forward(image)); // [n, out, h/2, w/2]
        let merged = Tensor::cat(vec![eesp, pooled], 1) + reinforcement; // [n, out, h/2, w/2]
        self.activation.forward(merged)
    }
}
