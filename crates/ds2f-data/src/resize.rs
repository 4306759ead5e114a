//! OpenCV-exact resizing of 8-bit images: `cv2.resize(..., INTER_CUBIC)` and `INTER_NEAREST`.
//!
//! The cubic path follows OpenCV's uint8 fixed-point scheme and matches every value of the
//! OpenCV 5.0 reference vectors:
//! * the kernel is Keys' cubic with A = −0.75, evaluated in `f32`;
//! * source coordinates use half-pixel centres, `sx = (dx + 0.5)·(in/out) − 0.5`, with no
//!   anti-aliasing when shrinking (a 4× downscale samples only 4 taps and aliases);
//! * borders replicate (tap indices are clamped into the image);
//! * each tap weight is `round_half_even(w · 2048)`, and the four weights are then corrected to
//!   sum to exactly 2048 (the weight with the largest rounding remainder absorbs each unit of
//!   error); a horizontal pass produces `i32` rows (`Σ src·wx`), a vertical pass sums
//!   `Σ row·wy`, divides by 2^22 rounding half to even, and saturates to `0..=255`.
//!
//! The sum correction and the ties-to-even final rounding are what the OpenCV 5.0 reference
//! vectors require: plain rounding of the weights mismatches 9 of 351 values by one level, and
//! `(v + 2^21) >> 22` mismatches the exact tie 94.5 → 94 of the 8×8 → 3×5 example.
//!
//! Indices and weights are computed once per column and per row; the horizontal pass runs once per
//! source row that is actually used, and both passes are parallel over rows with rayon.
use image::{GrayImage, ImageBuffer, Pixel, RgbImage};
use rayon::prelude::*;

/// Number of fractional bits of OpenCV's resize weights (`INTER_RESIZE_COEF_BITS`).
const COEF_BITS: u32 = 11;
/// `INTER_RESIZE_COEF_SCALE` = 2048.
const COEF_SCALE: f32 = (1 << COEF_BITS) as f32;
/// The shift of the final rounding: two passes of 11 bits each.
const FINAL_SHIFT: u32 = 2 * COEF_BITS;
/// The Keys cubic parameter OpenCV uses.
const CUBIC_A: f32 = -0.75;

/// The four cubic weights for a fractional offset `x ∈ [0, 1)`, in OpenCV's `f32` evaluation
/// order (the last weight is `1 − the other three`).
fn cubic_weights(x: f32) -> [f32; 4] {
    let a = CUBIC_A;
    let x1 = x + 1.0;
    let w0 = ((a * x1 - 5.0 * a) * x1 + 8.0 * a) * x1 - 4.0 * a;
    let w1 = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    let y = 1.0 - x;
    let w2 = ((a + 2.0) * y - (a + 3.0)) * y * y + 1.0;
    let w3 = 1.0 - w0 - w1 - w2;
    [w0, w1, w2, w3]
}

/// Rounds four kernel weights to fixed point with 11 fractional bits (`round_half_even(w·2048)`),
/// then corrects the sum to exactly 2048: while the sum is short (long), the weight with the
/// largest positive (negative) rounding remainder is raised (lowered) by one, the first on ties.
fn fixed_point_weights(w: [f32; 4]) -> [i32; 4] {
    let scaled = w.map(|v| v * COEF_SCALE);
    let mut c = scaled.map(|v| v.round_ties_even().clamp(-32768.0, 32767.0) as i32);
    let target = 1i32 << COEF_BITS;
    let mut sum: i32 = c.iter().sum();
    while sum != target {
        let step = if sum < target { 1 } else { -1 };
        let mut best = 0;
        let mut best_rem = f32::NEG_INFINITY;
        for k in 0..4 {
            let rem = (scaled[k] - c[k] as f32) * step as f32;
            if rem > best_rem {
                best_rem = rem;
                best = k;
            }
        }
        c[best] += step;
        sum += step;
    }
    c
}

/// `v / 2^22` rounded to the nearest integer, ties to even, in exact integer arithmetic.
fn round_shift_ties_even(v: i32) -> i32 {
    let q = v >> FINAL_SHIFT;
    let r = v - (q << FINAL_SHIFT);
    let half = 1i32 << (FINAL_SHIFT - 1);
    if r > half || (r == half && q & 1 == 1) {
        q + 1
    } else {
        q
    }
}

/// Precomputed taps along one axis: for every output position, four clamped source indices and
/// four fixed-point weights.
struct CubicTaps {
    idx: Vec<[usize; 4]>,
    coef: Vec<[i32; 4]>,
}

impl CubicTaps {
    fn new(src_len: usize, dst_len: usize) -> Self {
        // OpenCV: inv_scale = (double)dst/src; scale = 1/inv_scale.
        let scale = 1.0 / (dst_len as f64 / src_len as f64);
        let last = src_len as i64 - 1;
        let mut idx = Vec::with_capacity(dst_len);
        let mut coef = Vec::with_capacity(dst_len);
        for d in 0..dst_len {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let fl = f.floor();
            let s = fl as i64;
            let w = cubic_weights(f - fl);
            idx.push(std::array::from_fn(|k| {
                (s - 1 + k as i64).clamp(0, last) as usize
            }));
            coef.push(fixed_point_weights(w));
        }
        Self { idx, coef }
    }
}

/// Resize an interleaved 8-bit image exactly as OpenCV's `cv2.resize(src, (dst_w, dst_h),
/// interpolation=cv2.INTER_CUBIC)`.
///
/// `src` is row-major `h × w × channels`; the result is `dst_h × dst_w × channels`. A size equal to
/// the input returns a copy (as OpenCV does).
///
/// # Panics
/// If `src.len() != w·h·channels`, if `channels == 0`, or if the input is empty while the output
/// is not.
pub fn resize_cubic_u8(
    src: &[u8],
    w: usize,
    h: usize,
    channels: usize,
    dst_w: usize,
    dst_h: usize,
) -> Vec<u8> {
    check_args(src, w, h, channels, dst_w, dst_h);
    if dst_w == 0 || dst_h == 0 {
        return Vec::new();
    }
    if dst_w == w && dst_h == h {
        return src.to_vec();
    }
    let cn = channels;
    let xt = CubicTaps::new(w, dst_w);
    let yt = CubicTaps::new(h, dst_h);
    let row_len = dst_w * cn;

    // Which source rows the vertical pass reads, and where their horizontal results live.
    let mut slot = vec![usize::MAX; h];
    let mut used = Vec::new();
    for taps in &yt.idx {
        for &r in taps {
            if slot[r] == usize::MAX {
                slot[r] = used.len();
                used.push(r);
            }
        }
    }

    // Horizontal pass: one i32 row per used source row.
    let mut hbuf = vec![0i32; used.len() * row_len];
    hbuf.par_chunks_mut(row_len)
        .zip(used.par_iter())
        .for_each(|(out, &r)| {
            let srow = &src[r * w * cn..(r + 1) * w * cn];
            for (dx, (idx, coef)) in xt.idx.iter().zip(&xt.coef).enumerate() {
                let o = &mut out[dx * cn..(dx + 1) * cn];
                for (c, v) in o.iter_mut().enumerate() {
                    *v = srow[idx[0] * cn + c] as i32 * coef[0]
                        + srow[idx[1] * cn + c] as i32 * coef[1]
                        + srow[idx[2] * cn + c] as i32 * coef[2]
                        + srow[idx[3] * cn + c] as i32 * coef[3];
                }
            }
        });

    // Vertical pass with the fixed-point rounding and saturation.
    let mut dst = vec![0u8; dst_h * row_len];
    dst.par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(dy, out)| {
            let rows: [&[i32]; 4] = std::array::from_fn(|k| {
                let s = slot[yt.idx[dy][k]];
                &hbuf[s * row_len..(s + 1) * row_len]
            });
            let b = yt.coef[dy];
            for (x, o) in out.iter_mut().enumerate() {
                let v =
                    rows[0][x] * b[0] + rows[1][x] * b[1] + rows[2][x] * b[2] + rows[3][x] * b[3];
                *o = round_shift_ties_even(v).clamp(0, 255) as u8;
            }
        });
    dst
}

/// The nearest-neighbour source index of output position `d`, as OpenCV's `INTER_NEAREST`:
/// `min(floor(d · (1 / (dst/src))), src − 1)` in `f64`. This equals `floor(d·src/dst)`, the
/// PyTorch `nearest` rule, for all sizes used in practice.
pub fn nearest_index(d: usize, src_len: usize, dst_len: usize) -> usize {
    let scale = 1.0 / (dst_len as f64 / src_len as f64);
    ((d as f64 * scale).floor() as usize).min(src_len.saturating_sub(1))
}

/// The half-pixel-centred nearest-neighbour source index of output position `d` (PyTorch's
/// `nearest-exact`): `min(floor((d + 0.5) · src/dst), src − 1)`.
///
/// ds2f uses this rule for masks, in training (original → HR) and in evaluation (HR →
/// original), because it is consistent with the half-pixel geometry of the cubic image resize
/// and its round trip between sizes that differ by a few pixels is the identity. OpenCV's rule
/// ([`nearest_index`]) is not: for DRIVE's width 565 and an HR width of 566 it maps HR pixel
/// `x` to original pixel `x − 1`, so the targets are shifted by one pixel against the image.
pub fn nearest_index_centered(d: usize, src_len: usize, dst_len: usize) -> usize {
    let s = ((d as f64 + 0.5) * src_len as f64 / dst_len as f64).floor() as usize;
    s.min(src_len.saturating_sub(1))
}

/// Resize an interleaved 8-bit image with OpenCV's `INTER_NEAREST` (source index
/// `floor(dst·in/out)`). Values are copied, never mixed, so class indices survive.
///
/// # Panics
/// As [`resize_cubic_u8`].
pub fn resize_nearest_u8(
    src: &[u8],
    w: usize,
    h: usize,
    channels: usize,
    dst_w: usize,
    dst_h: usize,
) -> Vec<u8> {
    resize_nearest_with(src, w, h, channels, dst_w, dst_h, nearest_index)
}

/// Resize an interleaved 8-bit image by half-pixel-centred nearest neighbour
/// ([`nearest_index_centered`]), the rule ds2f uses for masks and FOVs.
///
/// # Panics
/// As [`resize_cubic_u8`].
pub fn resize_nearest_centered_u8(
    src: &[u8],
    w: usize,
    h: usize,
    channels: usize,
    dst_w: usize,
    dst_h: usize,
) -> Vec<u8> {
    resize_nearest_with(src, w, h, channels, dst_w, dst_h, nearest_index_centered)
}

fn resize_nearest_with(
    src: &[u8],
    w: usize,
    h: usize,
    channels: usize,
    dst_w: usize,
    dst_h: usize,
    index: fn(usize, usize, usize) -> usize,
) -> Vec<u8> {
    check_args(src, w, h, channels, dst_w, dst_h);
    if dst_w == 0 || dst_h == 0 {
        return Vec::new();
    }
    let cn = channels;
    let xs: Vec<usize> = (0..dst_w).map(|d| index(d, w, dst_w) * cn).collect();
    let row_len = dst_w * cn;
    let mut dst = vec![0u8; dst_h * row_len];
    dst.par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(dy, out)| {
            let sy = index(dy, h, dst_h);
            let srow = &src[sy * w * cn..(sy + 1) * w * cn];
            for (o, &sx) in out.chunks_exact_mut(cn).zip(&xs) {
                o.copy_from_slice(&srow[sx..sx + cn]);
            }
        });
    dst
}

fn check_args(src: &[u8], w: usize, h: usize, channels: usize, dst_w: usize, dst_h: usize) {
    assert!(channels > 0, "resize: channels must be > 0");
    assert_eq!(
        src.len(),
        w * h * channels,
        "resize: buffer of {} bytes is not {w}x{h}x{channels}",
        src.len()
    );
    assert!(
        (w > 0 && h > 0) || dst_w == 0 || dst_h == 0,
        "resize: cannot resize an empty {w}x{h} image to {dst_w}x{dst_h}"
    );
}

/// [`resize_cubic_u8`] on an RGB image; the new size is given as (width, height).
pub fn resize_cubic_rgb(img: &RgbImage, dst_w: u32, dst_h: u32) -> RgbImage {
    on_image(img, dst_w, dst_h, resize_cubic_u8)
}

/// [`resize_cubic_u8`] on a one-channel image; the new size is given as (width, height).
pub fn resize_cubic_gray(img: &GrayImage, dst_w: u32, dst_h: u32) -> GrayImage {
    on_image(img, dst_w, dst_h, resize_cubic_u8)
}

/// [`resize_nearest_u8`] on an RGB image; the new size is given as (width, height).
pub fn resize_nearest_rgb(img: &RgbImage, dst_w: u32, dst_h: u32) -> RgbImage {
    on_image(img, dst_w, dst_h, resize_nearest_u8)
}

/// [`resize_nearest_u8`] on a one-channel image (a mask or FOV); the new size is given as
/// (width, height).
pub fn resize_nearest_gray(img: &GrayImage, dst_w: u32, dst_h: u32) -> GrayImage {
    on_image(img, dst_w, dst_h, resize_nearest_u8)
}

/// [`resize_nearest_centered_u8`] on a grey image; `dst_w`, `dst_h` as (width, height).
pub fn resize_nearest_centered_gray(img: &GrayImage, dst_w: u32, dst_h: u32) -> GrayImage {
    on_image(img, dst_w, dst_h, resize_nearest_centered_u8)
}

/// A resize of an interleaved buffer: `(src, w, h, channels, dst_w, dst_h) -> dst`.
type RawResize = fn(&[u8], usize, usize, usize, usize, usize) -> Vec<u8>;

/// Applies a raw interleaved-buffer resize to an 8-bit image buffer of any channel count.
fn on_image<P: Pixel<Subpixel = u8>>(
    img: &ImageBuffer<P, Vec<u8>>,
    dst_w: u32,
    dst_h: u32,
    resize: RawResize,
) -> ImageBuffer<P, Vec<u8>> {
    let (w, h) = img.dimensions();
    let channels = usize::from(P::CHANNEL_COUNT);
    let buf = resize(
        img.as_raw(),
        w as usize,
        h as usize,
        channels,
        dst_w as usize,
        dst_h as usize,
    );
    ImageBuffer::from_raw(dst_w, dst_h, buf).expect("resize output has the right length")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str) -> serde_json::Value {
        let path = format!("{}/../../tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap()
    }

    /// Flattens nested JSON arrays of integers in row-major order.
    fn flat(v: &serde_json::Value, out: &mut Vec<u8>) {
        match v {
            serde_json::Value::Array(a) => a.iter().for_each(|x| flat(x, out)),
            x => out.push(x.as_u64().unwrap() as u8),
        }
    }

    fn input_13x17x3() -> Vec<u8> {
        (0..13 * 17 * 3)
            .map(|k: usize| ((k * 37 + (k / 7) * 11) % 256) as u8)
            .collect()
    }

    fn mask_13x17() -> Vec<u8> {
        (0..13 * 17)
            .map(|k: usize| if (k * 7).is_multiple_of(3) { 255 } else { 0 })
            .collect()
    }

    /// Compares and reports every differing value (index, got, want).
    fn assert_same(got: &[u8], want: &[u8], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let diffs: Vec<(usize, u8, u8)> = got
            .iter()
            .zip(want)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| (i, *a, *b))
            .collect();
        assert!(
            diffs.is_empty(),
            "{what}: {} values differ (index, got, want): {diffs:?}",
            diffs.len()
        );
    }

    fn check_cubic(key: &str, dst_w: usize, dst_h: usize) {
        let v = load("test_vectors_resize.json");
        let mut want = Vec::new();
        flat(&v[key], &mut want);
        let got = resize_cubic_u8(&input_13x17x3(), 17, 13, 3, dst_w, dst_h);
        assert_same(&got, &want, key);
    }

    #[test]
    fn cubic_down_matches_cv2() {
        check_cubic("cubic_down_to_h6_w9", 9, 6);
    }

    #[test]
    fn cubic_up_matches_cv2() {
        check_cubic("cubic_up_to_h26_w34", 34, 26);
    }

    #[test]
    fn cubic_mixed_matches_cv2() {
        check_cubic("cubic_to_h10_w7", 7, 10);
    }

    #[test]
    fn cubic_8x8_to_3x5_matches_cv2() {
        let v = load("test_vectors.json");
        let e = &v["cv2_resize_cubic_8x8_to_h3_w5"];
        let mut input = Vec::new();
        flat(&e["input_uint8"], &mut input);
        let mut want = Vec::new();
        flat(&e["output"], &mut want);
        let got = resize_cubic_u8(&input, 8, 8, 1, 5, 3);
        assert_same(&got, &want, "cv2_resize_cubic_8x8_to_h3_w5");
    }

    #[test]
    fn nearest_matches_cv2() {
        let v = load("test_vectors_resize.json");
        for (key, w, h) in [
            ("nearest_up_to_h26_w34", 34, 26),
            ("nearest_down_to_h6_w9", 9, 6),
        ] {
            let mut want = Vec::new();
            flat(&v[key], &mut want);
            let got = resize_nearest_u8(&mask_13x17(), 17, 13, 1, w, h);
            assert_same(&got, &want, key);
        }
    }

    #[test]
    fn cubic_weights_sum_to_one_and_interpolate() {
        // At offset 0 the kernel is (0, 1, 0, 0); at 0.5 it is symmetric.
        assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
        let w = cubic_weights(0.5);
        assert_eq!(w, [-0.09375, 0.59375, 0.59375, -0.09375]);
        let t = CubicTaps::new(4, 8);
        // 2× upscale: fx = 0.25 or 0.75 at every position; first position looks left of 0.
        assert_eq!(t.idx[0], [0, 0, 0, 1]);
        assert_eq!(t.idx[7], [2, 3, 3, 3]);
        assert_eq!(t.coef[1].iter().sum::<i32>(), 2048);
    }

    #[test]
    fn weight_sum_correction_and_tie_rounding() {
        // 13 → 6 rows, first row: weights ·2048 = (−155.56, 988.15, 1433.19, −217.78) round to
        // (−156, 988, 1433, −218), sum 2047; the largest remainder (+0.44, first weight) takes
        // the missing unit. The cv2 vector pins this choice (value 59 at flat index 15).
        let t = CubicTaps::new(13, 6);
        assert_eq!(t.coef[0], [-155, 988, 1433, -218]);
        assert!(t.coef.iter().all(|c| c.iter().sum::<i32>() == 2048));
        // Ties round to even: 94.5 → 94, 95.5 → 96; other values to nearest; negatives floor
        // correctly.
        let s = 1i32 << 22;
        assert_eq!(round_shift_ties_even(94 * s + s / 2), 94);
        assert_eq!(round_shift_ties_even(95 * s + s / 2), 96);
        assert_eq!(round_shift_ties_even(94 * s + s / 2 + 1), 95);
        assert_eq!(round_shift_ties_even(-s / 2 - 1), -1);
        assert_eq!(round_shift_ties_even(-s / 2), 0);
    }

    #[test]
    fn same_size_is_identity_and_constant_stays_constant() {
        let src = input_13x17x3();
        assert_eq!(resize_cubic_u8(&src, 17, 13, 3, 17, 13), src);
        let flat_img = vec![200u8; 13 * 17 * 3];
        for (w, h) in [(9, 6), (34, 26), (7, 10), (5, 40)] {
            let out = resize_cubic_u8(&flat_img, 17, 13, 3, w, h);
            assert!(out.iter().all(|&v| v == 200), "{w}x{h}");
        }
    }

    #[test]
    fn centered_nearest_round_trips_between_close_sizes() {
        // Training maps the original to HR, evaluation maps HR back: the composition must be the
        // identity (DRIVE: 565 wide, HR 566; 584 high, HR 584), which OpenCV's rule is not.
        for (orig, hr) in [(565, 566), (584, 584), (17, 18), (13, 26)] {
            for u in 0..orig {
                let x = nearest_index_centered(u, hr, orig);
                assert_eq!(
                    nearest_index_centered(x, orig, hr),
                    u,
                    "{orig}->{hr}, u = {u}"
                );
            }
        }
        assert_eq!(
            nearest_index(300, 565, 566),
            299,
            "OpenCV's rule shifts by one"
        );
        assert_eq!(nearest_index_centered(300, 565, 566), 299);
        assert_eq!(nearest_index_centered(100, 565, 566), 100);
        // Exact factors: 2:1 down takes the second of each pair, 1:2 up duplicates.
        assert_eq!(
            (0..4)
                .map(|d| nearest_index_centered(d, 8, 4))
                .collect::<Vec<_>>(),
            [1, 3, 5, 7]
        );
        assert_eq!(
            (0..6)
                .map(|d| nearest_index_centered(d, 3, 6))
                .collect::<Vec<_>>(),
            [0, 0, 1, 1, 2, 2]
        );
    }

    #[test]
    fn nearest_index_rule() {
        // floor(d·in/out): 13 → 26 repeats every source twice, 17 → 9 samples 0,1,3,5,7,9,11,13,15.
        let up: Vec<usize> = (0..26).map(|d| nearest_index(d, 13, 26)).collect();
        assert_eq!(&up[..6], &[0, 0, 1, 1, 2, 2]);
        let down: Vec<usize> = (0..9).map(|d| nearest_index(d, 17, 9)).collect();
        assert_eq!(down, vec![0, 1, 3, 5, 7, 9, 11, 13, 15]);
    }

    #[test]
    fn wrappers_keep_layout() {
        let img = RgbImage::from_raw(17, 13, input_13x17x3()).unwrap();
        let out = resize_cubic_rgb(&img, 9, 6);
        assert_eq!(out.dimensions(), (9, 6));
        assert_eq!(
            out.as_raw(),
            &resize_cubic_u8(img.as_raw(), 17, 13, 3, 9, 6)
        );
        let m = GrayImage::from_raw(17, 13, mask_13x17()).unwrap();
        let mo = resize_nearest_gray(&m, 34, 26);
        assert_eq!(mo.get_pixel(2, 0).0[0], m.get_pixel(1, 0).0[0]);
        assert_eq!(resize_cubic_gray(&m, 17, 13), m);
        assert_eq!(resize_nearest_rgb(&img, 17, 13), img);
    }
}
