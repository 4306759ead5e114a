//! SSIM loss `1 − SSIM(x, y)` exactly as the reference computes it with `pytorch_msssim.SSIM`
//! (SPEC §2): the DS2F loss on the SR proxy output of the shared-feature module.
//!
//! Separable Gaussian window (11 taps, σ = 1.5, normalised to sum 1), applied per channel with
//! **valid** padding (the map is `(h − 10) × (w − 10)`), `C1 = (k1·L)²`, `C2 = (k2·L)²`,
//! `ssim_map = (2μxμy + C1)/(μx² + μy² + C1) · (2σxy + C2)/(σx² + σy² + C2)`, the mean over the
//! map per `(n, c)` and then over `n` and `c`. As in `pytorch_msssim`, a spatial axis shorter than
//! the window is not filtered.
use crate::ops::conv2d;
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;

/// `1 − SSIM` between two images.
///
/// The reference constructs it with `data_range = 1` although its images are normalised to
/// `[−1, 1]` (a range of 2); [`SsimLoss::default`] keeps that for fidelity. `data_range: 2.0` is
/// the value that matches `[−1, 1]` images (it raises `C1`, `C2` four-fold).
#[derive(Debug, Clone)]
pub struct SsimLoss {
    /// Dynamic range `L` of the images (`C1 = (k1·L)²`, `C2 = (k2·L)²`). Reference: 1.0.
    pub data_range: f32,
    /// Gaussian window size (taps). Reference: 11.
    pub window: usize,
    /// Gaussian standard deviation. Reference: 1.5.
    pub sigma: f32,
    /// Luminance constant factor. Reference: 0.01.
    pub k1: f32,
    /// Contrast constant factor. Reference: 0.03.
    pub k2: f32,
}

impl Default for SsimLoss {
    fn default() -> Self {
        Self {
            data_range: 1.0,
            window: 11,
            sigma: 1.5,
            k1: 0.01,
            k2: 0.03,
        }
    }
}

impl SsimLoss {
    /// The normalised 1-D Gaussian window, `exp(−(k − win/2)² / 2σ²)` (as `pytorch_msssim`).
    fn gaussian(&self) -> Vec<f32> {
        let half = (self.window / 2) as f32;
        let g: Vec<f32> = (0..self.window)
            .map(|k| {
                let d = k as f32 - half;
                (-(d * d) / (2.0 * self.sigma * self.sigma)).exp()
            })
            .collect();
        let total: f32 = g.iter().sum();
        g.into_iter().map(|v| v / total).collect()
    }

    /// Separable Gaussian filter per channel, valid padding; an axis shorter than the window is
    /// left unfiltered.
    fn filter(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, channels, h, w] = x.dims();
        let g = self.gaussian();
        let taps: Vec<f32> = (0..channels).flat_map(|_| g.iter().copied()).collect();
        let device = x.device();
        let options = ConvOptions::new([1, 1], [0, 0], [1, 1], channels);
        let mut out = x;
        if h >= self.window {
            let kernel = TensorData::new(taps.clone(), [channels, 1, self.window, 1]);
            out = conv2d(
                out,
                Tensor::from_data(kernel, &device),
                None,
                options.clone(),
            );
        }
        if w >= self.window {
            let kernel = TensorData::new(taps, [channels, 1, 1, self.window]);
            out = conv2d(out, Tensor::from_data(kernel, &device), None, options);
        }
        out
    }

    /// Mean SSIM over the map, then over `n` and `c`.
    ///
    /// # Shapes
    /// - `x`, `y`: `[n, c, h, w]`, the same shape
    /// - output: `[1]`
    pub fn ssim(&self, x: Tensor<4>, y: Tensor<4>) -> Tensor<1> {
        assert_eq!(x.dims(), y.dims(), "SSIM: shapes differ");
        let [_, c, _, _] = x.dims();
        let c1 = (self.k1 * self.data_range).powi(2);
        let c2 = (self.k2 * self.data_range).powi(2);
        // One grouped convolution for the five filtered maps.
        let stacked = Tensor::cat(
            vec![
                x.clone(),
                y.clone(),
                x.clone().square(),
                y.clone().square(),
                x.mul(y),
            ],
            1,
        ); // [n, 5c, h, w]
        let f = self.filter(stacked); // [n, 5c, h', w']
        let part = |i: usize| f.clone().narrow(1, i * c, c); // [n, c, h', w']
        let (mu_x, mu_y) = (part(0), part(1));
        let (mu_xx, mu_yy, mu_xy) = (mu_x.clone().square(), mu_y.clone().square(), mu_x.mul(mu_y));
        let sigma_xx = part(2).sub(mu_xx.clone());
        let sigma_yy = part(3).sub(mu_yy.clone());
        let sigma_xy = part(4).sub(mu_xy.clone());
        let cs = sigma_xy
            .mul_scalar(2.0)
            .add_scalar(c2)
            .div(sigma_xx.add(sigma_yy).add_scalar(c2));
        let luminance = mu_xy
            .mul_scalar(2.0)
            .add_scalar(c1)
            .div(mu_xx.add(mu_yy).add_scalar(c1));
        // Every (n, c) map has the same size, so the mean of the means is the overall mean.
        luminance.mul(cs).mean()
    }

    /// `1 − SSIM(x, y)`.
    ///
    /// # Shapes
    /// - `x`: the predicted image `[n, 3, h, w]` (any channel count works)
    /// - `y`: the target image, the same shape
    /// - output: `[1]` the loss
    pub fn forward(&self, x: Tensor<4>, y: Tensor<4>) -> Tensor<1> {
        self.ssim(x, y).neg().add_scalar(1.0)
    }
}
