//! Training augmentation equivalent to the reference's albumentations 1.3.1 `Compose`:
//! `ColorJitter(0.4, 0.4, 0.4, 0.1)`, `HorizontalFlip`, `VerticalFlip`,
//! `ShiftScaleRotate(shift_limit=0.1, scale_limit=0, rotate_limit=60)`, each with p = 0.5, in that
//! order (SPEC §3 "Augmentation").
//!
//! Every transform draws its parameters once from the caller's RNG (a seeded
//! `rand_chacha::ChaCha8Rng` in training) and applies them to the image, and, for the geometric
//! ones, to the mask and FOV alike. The pixel arithmetic follows the uint8 code paths that
//! albumentations uses:
//! * brightness: LUT `trunc(clip(k·f, 0, 255))`;
//! * contrast: LUT `trunc(clip(k·f + mean·(1−f), 0, 255))`, `mean` = mean of the uint8 grayscale
//!   (OpenCV `RGB2GRAY`: `(4899 R + 9617 G + 1868 B + 2^13) >> 14`);
//! * saturation: `round(img·f + gray·(1−f))` in `f32` (`cv2.addWeighted`);
//! * hue: OpenCV 8-bit HSV (H in 0..180), H mapped by the LUT `trunc((k + 180·f) mod 180)`, back
//!   to RGB by OpenCV's float HSV→RGB;
//! * flips: exact permutations;
//! * shift-scale-rotate: `cv2.getRotationMatrix2D((w/2 − 0.5, h/2 − 0.5), angle, scale)` plus
//!   `(dx·w, dy·h)`, applied as `cv2.warpAffine` with OpenCV's fixed-point coordinates (10
//!   fractional bits, 1/32-pixel bilinear weights scaled by 2^15), `INTER_LINEAR` for the image,
//!   `INTER_NEAREST` for the mask and FOV, and `BORDER_REFLECT_101`.
//!
//! The RNG stream is not Python's, so individual draws differ from the reference; the
//! distributions and the pixel operations are the same.
use image::{GrayImage, RgbImage};
use rand::Rng;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::error::{DataError, Result};

/// `lo + (hi − lo)·u`, `u ∈ [0, 1)`, as Python's `random.uniform` (valid when `lo == hi`).
fn uniform<R: Rng + ?Sized>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

// ---------------------------------------------------------------------------------------------
// Colour
// ---------------------------------------------------------------------------------------------

/// OpenCV's uint8 `RGB2GRAY`: `(4899·R + 9617·G + 1868·B + 2^13) >> 14`.
pub fn rgb_to_gray_u8(p: [u8; 3]) -> u8 {
    ((4899 * p[0] as u32 + 9617 * p[1] as u32 + 1868 * p[2] as u32 + (1 << 13)) >> 14) as u8
}

/// Applies a 256-entry lookup table to every channel of every pixel.
fn apply_lut(img: &mut RgbImage, lut: &[u8; 256]) {
    img.par_iter_mut().for_each(|v| *v = lut[*v as usize]);
}

/// A LUT from `f(k)` truncated to u8 after clipping to `[0, 255]` (`np.clip(..).astype(uint8)`).
fn lut_from(f: impl Fn(f64) -> f64) -> [u8; 256] {
    std::array::from_fn(|k| f(k as f64).clamp(0.0, 255.0) as u8)
}

/// Brightness as albumentations `adjust_brightness_torchvision` on uint8: multiply by `factor`,
/// clip, truncate. `factor == 1` leaves the image untouched; `factor == 0` makes it black.
pub fn adjust_brightness(img: &mut RgbImage, factor: f64) {
    if factor == 1.0 {
        return;
    }
    if factor == 0.0 {
        img.iter_mut().for_each(|v| *v = 0);
        return;
    }
    apply_lut(img, &lut_from(|k| k * factor));
}

/// Mean of the uint8 grayscale of an image, as `cv2.cvtColor(img, RGB2GRAY).mean()`.
pub fn gray_mean(img: &RgbImage) -> f64 {
    let n = (img.width() as u64 * img.height() as u64).max(1);
    let sum: u64 = img
        .as_raw()
        .par_chunks_exact(3)
        .map(|p| rgb_to_gray_u8([p[0], p[1], p[2]]) as u64)
        .sum();
    sum as f64 / n as f64
}

/// Contrast as albumentations `adjust_contrast_torchvision` on uint8: blend with the mean of the
/// grayscale, `trunc(clip(k·f + mean·(1−f)))`. `factor == 1` is the identity; `factor == 0`
/// fills with `int(mean + 0.5)`.
pub fn adjust_contrast(img: &mut RgbImage, factor: f64) {
    if factor == 1.0 {
        return;
    }
    let mean = gray_mean(img);
    if factor == 0.0 {
        let v = (mean + 0.5) as u8;
        img.iter_mut().for_each(|x| *x = v);
        return;
    }
    apply_lut(img, &lut_from(|k| k * factor + mean * (1.0 - factor)));
}

/// Saturation as albumentations `adjust_saturation_torchvision` on uint8: `cv2.addWeighted(img,
/// f, gray, 1−f, 0)`, i.e. `round_half_even(img·f + gray·(1−f))` in `f32`, saturated.
/// `factor == 1` is the identity; `factor == 0` gives the grayscale.
pub fn adjust_saturation(img: &mut RgbImage, factor: f64) {
    if factor == 1.0 {
        return;
    }
    let alpha = factor as f32;
    let beta = (1.0 - factor) as f32;
    img.par_chunks_exact_mut(3).for_each(|p| {
        let g = rgb_to_gray_u8([p[0], p[1], p[2]]);
        if factor == 0.0 {
            p.fill(g);
            return;
        }
        let gb = g as f32 * beta;
        for v in p.iter_mut() {
            *v = (*v as f32 * alpha + gb).round_ties_even().clamp(0.0, 255.0) as u8;
        }
    });
}

/// Fixed-point shift of OpenCV's 8-bit HSV conversion.
const HSV_SHIFT: u32 = 12;

/// OpenCV's 8-bit `RGB2HSV` (H in `0..180`, S and V in `0..=255`).
pub fn rgb_to_hsv_u8(p: [u8; 3]) -> [u8; 3] {
    let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
    let v = r.max(g).max(b);
    let vmin = r.min(g).min(b);
    let diff = v - vmin;
    let round = 1i32 << (HSV_SHIFT - 1);
    // Division tables as OpenCV builds them: round((255 << 12) / v), round((180 << 12) / (6 d)).
    let sdiv = if v == 0 {
        0
    } else {
        ((255i32 << HSV_SHIFT) as f64 / v as f64).round_ties_even() as i32
    };
    let hdiv = if diff == 0 {
        0
    } else {
        ((180i32 << HSV_SHIFT) as f64 / (6.0 * diff as f64)).round_ties_even() as i32
    };
    let s = (diff * sdiv + round) >> HSV_SHIFT;
    let h_raw = if v == r {
        g - b
    } else if v == g {
        b - r + 2 * diff
    } else {
        r - g + 4 * diff
    };
    let mut h = (h_raw * hdiv + round) >> HSV_SHIFT;
    if h < 0 {
        h += 180;
    }
    [h.clamp(0, 255) as u8, s as u8, v as u8]
}

/// OpenCV's 8-bit `HSV2RGB` (H in `0..180`): float conversion, then `round_half_even(x·255)`.
pub fn hsv_to_rgb_u8(p: [u8; 3]) -> [u8; 3] {
    let s = p[1] as f32 * (1.0 / 255.0);
    let v = p[2] as f32 * (1.0 / 255.0);
    let (r, g, b) = if s == 0.0 {
        (v, v, v)
    } else {
        let mut h = p[0] as f32 * (6.0f32 / 180.0);
        h %= 6.0;
        let mut sector = h.floor() as i32;
        h -= sector as f32;
        if !(0..6).contains(&sector) {
            sector = 0;
            h = 0.0;
        }
        let vv = v;
        let pp = v * (1.0 - s);
        let q = v * (1.0 - s * h);
        let t = v * (1.0 - s * (1.0 - h));
        match sector {
            0 => (vv, t, pp),
            1 => (q, vv, pp),
            2 => (pp, vv, t),
            3 => (pp, q, vv),
            4 => (t, pp, vv),
            _ => (vv, pp, q),
        }
    };
    let to_u8 = |x: f32| (x * 255.0).round_ties_even().clamp(0.0, 255.0) as u8;
    [to_u8(r), to_u8(g), to_u8(b)]
}

/// Hue as albumentations `adjust_hue_torchvision` on uint8: shift H of the 8-bit HSV image by
/// the LUT `trunc((k + 180·factor) mod 180)`. `factor == 0` is the identity.
pub fn adjust_hue(img: &mut RgbImage, factor: f64) {
    if factor == 0.0 {
        return;
    }
    let lut: [u8; 256] =
        std::array::from_fn(|k| (k as f64 + 180.0 * factor).rem_euclid(180.0) as u8);
    img.par_chunks_exact_mut(3).for_each(|p| {
        let mut hsv = rgb_to_hsv_u8([p[0], p[1], p[2]]);
        hsv[0] = lut[hsv[0] as usize];
        p.copy_from_slice(&hsv_to_rgb_u8(hsv));
    });
}

/// `ColorJitter` settings: factor ranges `[max(0, 1−b), 1+b]` for brightness, contrast and
/// saturation, `[−hue, hue]` for hue, applied with probability `p`, image only.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorJitter {
    /// Brightness half-range `b` (factor ∈ `[1−b, 1+b]`).
    pub brightness: f64,
    /// Contrast half-range.
    pub contrast: f64,
    /// Saturation half-range.
    pub saturation: f64,
    /// Hue half-range (shift ∈ `[−hue, hue]`, in turns; at most 0.5).
    pub hue: f64,
    /// Probability of applying the transform.
    pub p: f64,
}

/// The parameters of one `ColorJitter` draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterParams {
    /// Brightness factor.
    pub brightness: f64,
    /// Contrast factor.
    pub contrast: f64,
    /// Saturation factor.
    pub saturation: f64,
    /// Hue shift (turns).
    pub hue: f64,
    /// Order of the ops: 0 brightness, 1 contrast, 2 saturation, 3 hue.
    pub order: [usize; 4],
}

impl JitterParams {
    /// Parameters that change nothing.
    pub fn identity() -> Self {
        Self {
            brightness: 1.0,
            contrast: 1.0,
            saturation: 1.0,
            hue: 0.0,
            order: [0, 1, 2, 3],
        }
    }

    /// Applies the four ops in `order` to `img`.
    pub fn apply(&self, img: &mut RgbImage) {
        for &op in &self.order {
            match op {
                0 => adjust_brightness(img, self.brightness),
                1 => adjust_contrast(img, self.contrast),
                2 => adjust_saturation(img, self.saturation),
                _ => adjust_hue(img, self.hue),
            }
        }
    }
}

impl ColorJitter {
    /// The paper's `ColorJitter(0.4, 0.4, 0.4, 0.1)` with p = 0.5.
    pub fn paper() -> Self {
        Self {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.1,
            p: 0.5,
        }
    }

    /// Draws the factors (brightness, contrast, saturation, hue, in that order) and a shuffled
    /// op order.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> JitterParams {
        let range = |x: f64| ((1.0 - x).max(0.0), 1.0 + x);
        let (b0, b1) = range(self.brightness);
        let (c0, c1) = range(self.contrast);
        let (s0, s1) = range(self.saturation);
        let brightness = uniform(rng, b0, b1);
        let contrast = uniform(rng, c0, c1);
        let saturation = uniform(rng, s0, s1);
        let hue = uniform(rng, -self.hue, self.hue);
        let mut order = [0, 1, 2, 3];
        order.shuffle(rng);
        JitterParams {
            brightness,
            contrast,
            saturation,
            hue,
            order,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Geometry
// ---------------------------------------------------------------------------------------------

/// OpenCV's `BORDER_REFLECT_101` index: `−1 → 1`, `len → len − 2`, repeated until inside
/// (`gfedcb|abcdefgh|gfedcba`). A length of 1 always gives 0.
///
/// # Panics
/// If `len == 0`.
pub fn reflect_101(p: i64, len: usize) -> usize {
    assert!(len > 0, "reflect_101 on an empty axis");
    let n = len as i64;
    if n == 1 {
        return 0;
    }
    let mut p = p;
    // One period of the reflection is 2(n−1); reduce first so huge offsets stay cheap.
    let period = 2 * (n - 1);
    if !(0..n).contains(&p) {
        p = p.rem_euclid(period);
        if p >= n {
            p = period - p;
        }
    }
    p as usize
}

/// Interpolation of [`warp_affine_u8`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interp {
    /// `INTER_NEAREST` (coordinates rounded to the nearest pixel).
    Nearest,
    /// `INTER_LINEAR` (bilinear with 1/32-pixel weights).
    Linear,
}

/// Fractional bits of OpenCV's warp coordinates (`AB_BITS`).
const AB_BITS: u32 = 10;
/// Bits of the bilinear sub-pixel table (`INTER_BITS`, 32 steps).
const INTER_BITS: u32 = 5;
/// Bits of the bilinear weights (`INTER_REMAP_COEF_BITS`).
const REMAP_BITS: u32 = 15;

/// Inverts a forward 2×3 affine matrix as `cv2.warpAffine` does (a zero determinant gives 0).
fn invert_affine(m: &[f64; 6]) -> [f64; 6] {
    let d = m[0] * m[4] - m[1] * m[3];
    let d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let a11 = m[4] * d;
    let a22 = m[0] * d;
    let a12 = -m[1] * d;
    let a21 = -m[3] * d;
    let b1 = -a11 * m[2] - a12 * m[5];
    let b2 = -a21 * m[2] - a22 * m[5];
    [a11, a12, b1, a21, a22, b2]
}

/// `cv2.warpAffine(src, m, (w, h), flags=interp, borderMode=BORDER_REFLECT_101)` on an
/// interleaved 8-bit image, with `m` the forward (source → destination) matrix in row-major
/// order. The output has the input's size.
///
/// # Panics
/// If `src.len() != w·h·channels` or the image is empty.
pub fn warp_affine_u8(
    src: &[u8],
    w: usize,
    h: usize,
    channels: usize,
    m: &[f64; 6],
    interp: Interp,
) -> Vec<u8> {
    assert_eq!(
        src.len(),
        w * h * channels,
        "warp_affine_u8: buffer is not {w}x{h}x{channels}"
    );
    assert!(
        w > 0 && h > 0 && channels > 0,
        "warp_affine_u8: empty image"
    );
    let inv = invert_affine(m);
    let scale = (1i64 << AB_BITS) as f64;
    let cn = channels;
    let round_delta: i64 = match interp {
        Interp::Nearest => 1 << (AB_BITS - 1),
        Interp::Linear => 1 << (AB_BITS - INTER_BITS - 1),
    };
    let adelta: Vec<i64> = (0..w)
        .map(|x| (inv[0] * x as f64 * scale).round_ties_even() as i64)
        .collect();
    let bdelta: Vec<i64> = (0..w)
        .map(|x| (inv[3] * x as f64 * scale).round_ties_even() as i64)
        .collect();
    let mut dst = vec![0u8; w * h * cn];
    dst.par_chunks_mut(w * cn).enumerate().for_each(|(y, out)| {
        let x0 = ((inv[1] * y as f64 + inv[2]) * scale).round_ties_even() as i64 + round_delta;
        let y0 = ((inv[4] * y as f64 + inv[5]) * scale).round_ties_even() as i64 + round_delta;
        for (x, o) in out.chunks_exact_mut(cn).enumerate() {
            match interp {
                Interp::Nearest => {
                    let sx = (x0 + adelta[x]) >> AB_BITS;
                    let sy = (y0 + bdelta[x]) >> AB_BITS;
                    let (sx, sy) = (reflect_101(sx, w), reflect_101(sy, h));
                    let s = (sy * w + sx) * cn;
                    o.copy_from_slice(&src[s..s + cn]);
                }
                Interp::Linear => {
                    let xx = (x0 + adelta[x]) >> (AB_BITS - INTER_BITS);
                    let yy = (y0 + bdelta[x]) >> (AB_BITS - INTER_BITS);
                    let mask = (1i64 << INTER_BITS) - 1;
                    let (fx, fy) = ((xx & mask) as i32, (yy & mask) as i32);
                    let (sx, sy) = (xx >> INTER_BITS, yy >> INTER_BITS);
                    // Weights (1−fx)(1−fy), fx(1−fy), (1−fx)fy, fx·fy in units of 2^-15.
                    let t = 1i32 << INTER_BITS;
                    let k = 1i32 << (REMAP_BITS - 2 * INTER_BITS);
                    let wts = [
                        (t - fx) * (t - fy) * k,
                        fx * (t - fy) * k,
                        (t - fx) * fy * k,
                        fx * fy * k,
                    ];
                    // Inside: plain neighbours; near or past a border: reflect-101 each one.
                    let inside = sx >= 0 && sy >= 0 && sx + 1 < w as i64 && sy + 1 < h as i64;
                    let (c0, c1, r0, r1) = if inside {
                        let (c, r) = (sx as usize, sy as usize);
                        (c, c + 1, r, r + 1)
                    } else {
                        (
                            reflect_101(sx, w),
                            reflect_101(sx + 1, w),
                            reflect_101(sy, h),
                            reflect_101(sy + 1, h),
                        )
                    };
                    let p = [
                        (r0 * w + c0) * cn,
                        (r0 * w + c1) * cn,
                        (r1 * w + c0) * cn,
                        (r1 * w + c1) * cn,
                    ];
                    for (c, v) in o.iter_mut().enumerate() {
                        let acc = src[p[0] + c] as i32 * wts[0]
                            + src[p[1] + c] as i32 * wts[1]
                            + src[p[2] + c] as i32 * wts[2]
                            + src[p[3] + c] as i32 * wts[3];
                        *v = ((acc + (1 << (REMAP_BITS - 1))) >> REMAP_BITS).clamp(0, 255) as u8;
                    }
                }
            }
        }
    });
    dst
}

/// `ShiftScaleRotate` settings: angle `U(−rotate_limit, rotate_limit)` degrees, scale
/// `U(1 − scale_limit, 1 + scale_limit)`, shifts `U(−shift_limit, shift_limit)` of the width and
/// height, applied with probability `p`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftScaleRotate {
    /// Shift limit as a fraction of the size.
    pub shift_limit: f64,
    /// Scale limit (the scale is drawn from `1 ± scale_limit`).
    pub scale_limit: f64,
    /// Rotation limit in degrees.
    pub rotate_limit: f64,
    /// Probability of applying the transform.
    pub p: f64,
}

/// The parameters of one `ShiftScaleRotate` draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AffineParams {
    /// Rotation angle in degrees (positive is counter-clockwise on screen, as OpenCV).
    pub angle: f64,
    /// Scale factor.
    pub scale: f64,
    /// Horizontal shift as a fraction of the width.
    pub dx: f64,
    /// Vertical shift as a fraction of the height.
    pub dy: f64,
}

impl AffineParams {
    /// The forward 2×3 matrix for a `width × height` image: `cv2.getRotationMatrix2D((w/2 − 0.5,
    /// h/2 − 0.5), angle, scale)` with `dx·w`, `dy·h` added to the translation.
    pub fn matrix(&self, width: u32, height: u32) -> [f64; 6] {
        let (w, h) = (width as f64, height as f64);
        let (cx, cy) = (w / 2.0 - 0.5, h / 2.0 - 0.5);
        let a = self.angle.to_radians();
        let alpha = a.cos() * self.scale;
        let beta = a.sin() * self.scale;
        [
            alpha,
            beta,
            (1.0 - alpha) * cx - beta * cy + self.dx * w,
            -beta,
            alpha,
            beta * cx + (1.0 - alpha) * cy + self.dy * h,
        ]
    }
}

impl ShiftScaleRotate {
    /// The paper's `ShiftScaleRotate(shift_limit=0.1, scale_limit=0, rotate_limit=60)`, p = 0.5.
    pub fn paper() -> Self {
        Self {
            shift_limit: 0.1,
            scale_limit: 0.0,
            rotate_limit: 60.0,
            p: 0.5,
        }
    }

    /// Draws angle, scale, dx, dy in that order (the albumentations order).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> AffineParams {
        let angle = uniform(rng, -self.rotate_limit, self.rotate_limit);
        let scale = uniform(rng, 1.0 - self.scale_limit, 1.0 + self.scale_limit);
        let dx = uniform(rng, -self.shift_limit, self.shift_limit);
        let dy = uniform(rng, -self.shift_limit, self.shift_limit);
        AffineParams {
            angle,
            scale,
            dx,
            dy,
        }
    }
}

/// Warps an RGB image bilinearly (`INTER_LINEAR`, reflect-101) with a forward matrix.
pub fn warp_rgb(img: &RgbImage, m: &[f64; 6]) -> RgbImage {
    let (w, h) = img.dimensions();
    let buf = warp_affine_u8(img.as_raw(), w as usize, h as usize, 3, m, Interp::Linear);
    RgbImage::from_raw(w, h, buf).expect("warp output has the right length")
}

/// Warps a mask or FOV with nearest neighbour (`INTER_NEAREST`, reflect-101), so values are
/// only copied.
pub fn warp_gray_nearest(img: &GrayImage, m: &[f64; 6]) -> GrayImage {
    let (w, h) = img.dimensions();
    let buf = warp_affine_u8(img.as_raw(), w as usize, h as usize, 1, m, Interp::Nearest);
    GrayImage::from_raw(w, h, buf).expect("warp output has the right length")
}

/// What one call of [`Augment::apply`] did, for logging and tests.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AugmentRecord {
    /// The colour jitter, when applied.
    pub color: Option<JitterParams>,
    /// Whether the horizontal flip was applied.
    pub hflip: bool,
    /// Whether the vertical flip was applied.
    pub vflip: bool,
    /// The shift-scale-rotate, when applied.
    pub affine: Option<AffineParams>,
}

/// The augmentation pipeline: colour jitter, horizontal flip, vertical flip, shift-scale-rotate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// Colour jitter (image only); `None` disables it.
    pub color_jitter: Option<ColorJitter>,
    /// Probability of the horizontal flip.
    pub hflip_p: f64,
    /// Probability of the vertical flip.
    pub vflip_p: f64,
    /// Shift-scale-rotate; `None` disables it.
    pub shift_scale_rotate: Option<ShiftScaleRotate>,
}

impl Default for Augment {
    fn default() -> Self {
        Self::paper()
    }
}

impl Augment {
    /// The reference pipeline with the paper's settings (all four transforms at p = 0.5).
    pub fn paper() -> Self {
        Self {
            color_jitter: Some(ColorJitter::paper()),
            hflip_p: 0.5,
            vflip_p: 0.5,
            shift_scale_rotate: Some(ShiftScaleRotate::paper()),
        }
    }

    /// No augmentation at all (what the reference's k-fold runs effectively train with).
    pub fn none() -> Self {
        Self {
            color_jitter: None,
            hflip_p: 0.0,
            vflip_p: 0.0,
            shift_scale_rotate: None,
        }
    }

    /// Draws every decision and parameter, in pipeline order: for each transform a
    /// `u ∈ [0, 1)` decides `u < p`, and only an applied transform then draws its parameters.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> AugmentRecord {
        let mut rec = AugmentRecord::default();
        if let Some(cj) = &self.color_jitter
            && rng.random::<f64>() < cj.p
        {
            rec.color = Some(cj.sample(rng));
        }
        rec.hflip = rng.random::<f64>() < self.hflip_p;
        rec.vflip = rng.random::<f64>() < self.vflip_p;
        if let Some(ssr) = &self.shift_scale_rotate
            && rng.random::<f64>() < ssr.p
        {
            rec.affine = Some(ssr.sample(rng));
        }
        rec
    }

    /// Augments an image with its mask and optional FOV: draws parameters once with
    /// [`Augment::sample`] and applies them with [`apply_record`].
    ///
    /// # Errors
    /// [`DataError::Invalid`] when the mask or FOV differs in size from the image.
    pub fn apply<R: Rng + ?Sized>(
        &self,
        rng: &mut R,
        image: RgbImage,
        mask: GrayImage,
        fov: Option<GrayImage>,
    ) -> Result<(RgbImage, GrayImage, Option<GrayImage>)> {
        check_same_size(&image, &mask, fov.as_ref())?;
        let rec = self.sample(rng);
        Ok(apply_record(&rec, image, mask, fov))
    }
}

fn check_same_size(image: &RgbImage, mask: &GrayImage, fov: Option<&GrayImage>) -> Result<()> {
    let d = image.dimensions();
    for (what, other) in [("mask", Some(mask)), ("fov", fov)] {
        if let Some(o) = other
            && o.dimensions() != d
        {
            return Err(DataError::Invalid {
                name: "augment input",
                reason: format!(
                    "{what} is {}x{} but the image is {}x{} (WxH)",
                    o.width(),
                    o.height(),
                    d.0,
                    d.1
                ),
            });
        }
    }
    Ok(())
}

/// Applies recorded parameters: colour to the image only; flips and the warp to image, mask and
/// FOV alike (the image bilinear, mask and FOV nearest).
pub fn apply_record(
    rec: &AugmentRecord,
    mut image: RgbImage,
    mut mask: GrayImage,
    mut fov: Option<GrayImage>,
) -> (RgbImage, GrayImage, Option<GrayImage>) {
    if let Some(c) = &rec.color {
        c.apply(&mut image);
    }
    if rec.hflip {
        image::imageops::flip_horizontal_in_place(&mut image);
        image::imageops::flip_horizontal_in_place(&mut mask);
        if let Some(f) = fov.as_mut() {
            image::imageops::flip_horizontal_in_place(f);
        }
    }
    if rec.vflip {
        image::imageops::flip_vertical_in_place(&mut image);
        image::imageops::flip_vertical_in_place(&mut mask);
        if let Some(f) = fov.as_mut() {
            image::imageops::flip_vertical_in_place(f);
        }
    }
    if let Some(a) = &rec.affine {
        let m = a.matrix(image.width(), image.height());
        image = warp_rgb(&image, &m);
        let mm = a.matrix(mask.width(), mask.height());
        mask = warp_gray_nearest(&mask, &mm);
        fov = fov.map(|f| {
            let mf = a.matrix(f.width(), f.height());
            warp_gray_nearest(&f, &mf)
        });
    }
    (image, mask, fov)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rgb(w: u32, h: u32, f: impl Fn(u32, u32, u32) -> u8) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([f(x, y, 0), f(x, y, 1), f(x, y, 2)])
        })
    }

    fn test_image(w: u32, h: u32) -> RgbImage {
        rgb(w, h, |x, y, c| {
            ((x * 37 + y * 91 + c * 53 + x * y * 7) % 256) as u8
        })
    }

    fn test_mask(w: u32, h: u32) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| image::Luma([((x / 3 + y / 2) % 3) as u8]))
    }

    #[test]
    fn flips_are_exact_permutations() {
        // 3 wide, 2 high, values 10·(row) + col.
        let m = GrayImage::from_raw(3, 2, vec![0, 1, 2, 10, 11, 12]).unwrap();
        let rec = AugmentRecord {
            hflip: true,
            ..Default::default()
        };
        let img = rgb(3, 2, |x, y, c| (10 * y + x + 100 * c) as u8);
        let (i, m2, f) = apply_record(&rec, img.clone(), m.clone(), Some(m.clone()));
        assert_eq!(m2.as_raw(), &vec![2, 1, 0, 12, 11, 10]);
        assert_eq!(f.unwrap().as_raw(), &vec![2, 1, 0, 12, 11, 10]);
        assert_eq!(i.get_pixel(0, 1).0, [12, 112, 212]);
        let rec = AugmentRecord {
            vflip: true,
            ..Default::default()
        };
        let (i, m2, _) = apply_record(&rec, img, m.clone(), None);
        assert_eq!(m2.as_raw(), &vec![10, 11, 12, 0, 1, 2]);
        assert_eq!(i.get_pixel(2, 0).0, [12, 112, 212]);
        let rec = AugmentRecord {
            hflip: true,
            vflip: true,
            ..Default::default()
        };
        let (_, m2, _) = apply_record(&rec, test_image(3, 2), m, None);
        assert_eq!(m2.as_raw(), &vec![12, 11, 10, 2, 1, 0]);
    }

    #[test]
    fn reflect_101_hand_cases() {
        assert_eq!(reflect_101(-1, 5), 1);
        assert_eq!(reflect_101(-2, 5), 2);
        assert_eq!(reflect_101(5, 5), 3);
        assert_eq!(reflect_101(6, 5), 2);
        assert_eq!(reflect_101(0, 5), 0);
        assert_eq!(reflect_101(4, 5), 4);
        // gfedcb|abcdefgh|gfedcba with n = 8: −7 → 7, 14 → 0, 15 → 1 (next period).
        assert_eq!(reflect_101(-7, 8), 7);
        assert_eq!(reflect_101(14, 8), 0);
        assert_eq!(reflect_101(15, 8), 1);
        assert_eq!(reflect_101(-3, 1), 0);
        assert_eq!(reflect_101(2, 2), 0);
    }

    #[test]
    fn zero_rotation_zero_shift_is_identity() {
        let img = test_image(7, 5);
        let mask = test_mask(7, 5);
        let a = AffineParams {
            angle: 0.0,
            scale: 1.0,
            dx: 0.0,
            dy: 0.0,
        };
        let rec = AugmentRecord {
            affine: Some(a),
            ..Default::default()
        };
        let (i, m, f) = apply_record(&rec, img.clone(), mask.clone(), Some(mask.clone()));
        assert_eq!(i, img);
        assert_eq!(m, mask);
        assert_eq!(f.unwrap(), mask);
    }

    #[test]
    fn rotation_by_90_is_a_permutation() {
        // About the centre ((n−1)/2, (n−1)/2), +90° (counter-clockwise) sends source (x, y) to
        // (y, n−1−x), so dst(X, Y) = src(n−1−Y, X).
        let n = 5u32;
        let mask = GrayImage::from_fn(n, n, |x, y| image::Luma([(y * n + x) as u8]));
        let img = rgb(n, n, |x, y, c| (y * n + x + 50 * c) as u8);
        let a = AffineParams {
            angle: 90.0,
            scale: 1.0,
            dx: 0.0,
            dy: 0.0,
        };
        let m = a.matrix(n, n);
        let rm = warp_gray_nearest(&mask, &m);
        let ri = warp_rgb(&img, &m);
        for y in 0..n {
            for x in 0..n {
                assert_eq!(
                    rm.get_pixel(x, y).0[0],
                    mask.get_pixel(n - 1 - y, x).0[0],
                    "({x},{y})"
                );
                assert_eq!(ri.get_pixel(x, y), img.get_pixel(n - 1 - y, x), "({x},{y})");
            }
        }
        let mut sorted = rm.as_raw().clone();
        sorted.sort();
        assert_eq!(sorted, (0..25).collect::<Vec<u8>>());
    }

    #[test]
    fn shift_by_one_pixel_reflects_at_the_border() {
        // dx = 1/4 of a 4-wide image shifts right by one pixel: dst(x) = src(x − 1), and the
        // column x = 0 reads src(−1) → reflect-101 → src(1).
        let mask = GrayImage::from_raw(4, 1, vec![10, 20, 30, 40]).unwrap();
        let a = AffineParams {
            angle: 0.0,
            scale: 1.0,
            dx: 0.25,
            dy: 0.0,
        };
        let m = a.matrix(4, 1);
        assert_eq!(warp_gray_nearest(&mask, &m).as_raw(), &vec![20, 10, 20, 30]);
        let img = rgb(4, 1, |x, _, _| (10 * (x + 1)) as u8);
        let out = warp_rgb(&img, &m);
        let r: Vec<u8> = out.pixels().map(|p| p.0[0]).collect();
        assert_eq!(r, vec![20, 10, 20, 30]);
        // Half a pixel: bilinear average of neighbours, (10 + 20)/2 = 15 (16/32 weights exact).
        let a = AffineParams {
            angle: 0.0,
            scale: 1.0,
            dx: 0.125,
            dy: 0.0,
        };
        let out = warp_rgb(&img, &a.matrix(4, 1));
        let r: Vec<u8> = out.pixels().map(|p| p.0[0]).collect();
        // x=0 reads −0.5: (src(−1)=20 + src(0)=10)/2 = 15; x=1 reads 0.5: 15; x=2: 25; x=3: 35.
        assert_eq!(r, vec![15, 15, 25, 35]);
    }

    #[test]
    fn neutral_colour_factors_are_identity() {
        let img = test_image(9, 6);
        let mut a = img.clone();
        adjust_brightness(&mut a, 1.0);
        adjust_contrast(&mut a, 1.0);
        adjust_saturation(&mut a, 1.0);
        adjust_hue(&mut a, 0.0);
        assert_eq!(a, img);
        let mut b = img.clone();
        JitterParams::identity().apply(&mut b);
        assert_eq!(b, img);
    }

    #[test]
    fn colour_ops_hand_values() {
        // Brightness 1.5 on 100, 200, 11 → 150, 255 (clipped), 16 (16.5 truncated).
        let mut a = rgb(1, 1, |_, _, c| [100, 200, 11][c as usize]);
        adjust_brightness(&mut a, 1.5);
        assert_eq!(a.get_pixel(0, 0).0, [150, 255, 16]);
        // Gray of (255, 0, 0) = (4899·255 + 8192) >> 14 = 76.
        assert_eq!(rgb_to_gray_u8([255, 0, 0]), 76);
        assert_eq!(rgb_to_gray_u8([255, 255, 255]), 255);
        // Contrast 0.5 on a 2-pixel image of grays 0 and 200 (mean 100): k·0.5 + 50.
        let mut c = rgb(2, 1, |x, _, _| if x == 0 { 0 } else { 200 });
        adjust_contrast(&mut c, 0.5);
        assert_eq!(c.as_raw(), &vec![50, 50, 50, 150, 150, 150]);
        // Saturation 0 gives the gray, 2 doubles the distance from gray: gray(200,100,0)=
        // (979800 + 961700 + 8192) >> 14 = 118; 2·200 − 118 = 282 → 255, 2·100 − 118 = 82,
        // 0·2 − 118 → 0.
        let mut s = rgb(1, 1, |_, _, c| [200, 100, 0][c as usize]);
        adjust_saturation(&mut s, 2.0);
        assert_eq!(s.get_pixel(0, 0).0, [255, 82, 0]);
        let mut s0 = rgb(1, 1, |_, _, c| [200, 100, 0][c as usize]);
        adjust_saturation(&mut s0, 0.0);
        assert_eq!(s0.get_pixel(0, 0).0, [118, 118, 118]);
    }

    #[test]
    fn hsv_round_trip_and_hue_shift() {
        // Pure colours: red H=0, green H=60, blue H=120 (OpenCV's half-degree units).
        assert_eq!(rgb_to_hsv_u8([255, 0, 0]), [0, 255, 255]);
        assert_eq!(rgb_to_hsv_u8([0, 255, 0]), [60, 255, 255]);
        assert_eq!(rgb_to_hsv_u8([0, 0, 255]), [120, 255, 255]);
        assert_eq!(rgb_to_hsv_u8([128, 128, 128]), [0, 0, 128]);
        assert_eq!(hsv_to_rgb_u8([60, 255, 255]), [0, 255, 0]);
        assert_eq!(hsv_to_rgb_u8([0, 0, 77]), [77, 77, 77]);
        // A hue shift of 1/3 turn (60 units) sends red to green and green to blue.
        let mut img = rgb(2, 1, |x, _, c| if c == x { 255 } else { 0 });
        adjust_hue(&mut img, 1.0 / 3.0);
        assert_eq!(img.as_raw(), &vec![0, 255, 0, 0, 0, 255]);
        // Grays are unchanged by any hue shift.
        let mut g = rgb(1, 1, |_, _, _| 90);
        adjust_hue(&mut g, 0.1);
        assert_eq!(g.get_pixel(0, 0).0, [90, 90, 90]);
    }

    #[test]
    fn mask_values_stay_a_subset() {
        let img = test_image(23, 17);
        let mask = test_mask(23, 17);
        let fov = GrayImage::from_fn(23, 17, |x, y| image::Luma([((x + y) % 2) as u8]));
        let aug = Augment {
            color_jitter: Some(ColorJitter {
                p: 1.0,
                ..ColorJitter::paper()
            }),
            hflip_p: 0.5,
            vflip_p: 0.5,
            shift_scale_rotate: Some(ShiftScaleRotate {
                p: 1.0,
                ..ShiftScaleRotate::paper()
            }),
        };
        for seed in 0..20 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let (i, m, f) = aug
                .apply(&mut rng, img.clone(), mask.clone(), Some(fov.clone()))
                .unwrap();
            assert_eq!(i.dimensions(), (23, 17));
            assert!(m.as_raw().iter().all(|&v| v <= 2), "seed {seed}");
            assert!(f.unwrap().as_raw().iter().all(|&v| v <= 1), "seed {seed}");
        }
    }

    #[test]
    fn sampled_parameters_lie_in_their_ranges() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..200 {
            let j = ColorJitter::paper().sample(&mut rng);
            for f in [j.brightness, j.contrast, j.saturation] {
                assert!((0.6..=1.4).contains(&f));
            }
            assert!((-0.1..=0.1).contains(&j.hue));
            let mut o = j.order;
            o.sort();
            assert_eq!(o, [0, 1, 2, 3]);
            let a = ShiftScaleRotate::paper().sample(&mut rng);
            assert!((-60.0..=60.0).contains(&a.angle));
            assert_eq!(a.scale, 1.0);
            assert!((-0.1..=0.1).contains(&a.dx) && (-0.1..=0.1).contains(&a.dy));
        }
    }

    #[test]
    fn seeds_are_reproducible_and_distinct() {
        let img = test_image(31, 19);
        let mask = test_mask(31, 19);
        let aug = Augment::paper();
        let run = |seed: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            aug.apply(&mut rng, img.clone(), mask.clone(), None)
                .unwrap()
        };
        assert_eq!(run(7), run(7));
        let outs: Vec<_> = (0..4).map(run).collect();
        assert!(
            outs.windows(2).any(|p| p[0] != p[1]),
            "different seeds gave identical outputs"
        );
        let recs: Vec<AugmentRecord> = (0..4)
            .map(|s| aug.sample(&mut ChaCha8Rng::seed_from_u64(s)))
            .collect();
        assert!(recs.windows(2).all(|p| p[0] != p[1]));
    }

    #[test]
    fn size_mismatch_is_an_error() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let r = Augment::paper().apply(&mut rng, test_image(5, 4), test_mask(4, 5), None);
        assert!(matches!(r, Err(DataError::Invalid { .. })));
    }
}
