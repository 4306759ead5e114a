//! Making one training sample exactly as the reference dataset does (SPEC §3, "Making the LR
//! input and HR target"), after augmentation:
//! * HR image = cv2 cubic resize of the (augmented) original to `(r·h, r·w)`, copied as is when
//!   the original already has that size;
//! * LR image = cv2 cubic resize of the **original** (not of the HR image) to `(h, w)`;
//! * mask and FOV → HR size by half-pixel-centred nearest neighbour (the reference uses
//!   OpenCV's rule, which shifts targets by a pixel when sizes differ by a few pixels;
//!   see [`crate::resize::nearest_index_centered`]);
//! * images normalised as albumentations `Normalize(mean=0.5, std=0.5, max_pixel_value=255)`,
//!   i.e. `(x − 127.5)·(1/127.5)` in `f32` (= `(x/255 − 0.5)/0.5`), in CHW layout.
//!
//! Sizes here are `(height, width)`, as in the reference's `output_size`.
use image::{GrayImage, RgbImage};

use crate::error::{DataError, Result};
use crate::resize::{resize_cubic_rgb, resize_nearest_centered_gray};

/// One training sample: normalised LR input and HR target, HR mask, optional HR FOV.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// LR image, `[3, h, w]` CHW, values in `[−1, 1]`.
    pub lr: Vec<f32>,
    /// HR image, `[3, r·h, r·w]` CHW, values in `[−1, 1]`.
    pub hr: Vec<f32>,
    /// HR mask, `[r·h, r·w]` row-major class indices.
    pub mask: Vec<u8>,
    /// HR FOV, `[r·h, r·w]` row-major 0/1, when the dataset has one.
    pub fov: Option<Vec<u8>>,
    /// LR size `(h, w)`.
    pub lr_size: (u32, u32),
    /// HR size `(r·h, r·w)`.
    pub hr_size: (u32, u32),
    /// The item's name (e.g. the image stem).
    pub name: String,
}

/// The reference normalisation of one uint8 value: `(x − 127.5)·(1/127.5)` in `f32`.
pub fn normalize_u8(x: u8) -> f32 {
    const MEAN: f32 = 0.5 * 255.0;
    const INV_STD: f32 = 1.0 / (0.5 * 255.0);
    (x as f32 - MEAN) * INV_STD
}

/// An RGB image as normalised `[3, h, w]` CHW `f32`.
pub fn normalize_chw(img: &RgbImage) -> Vec<f32> {
    let plane = img.width() as usize * img.height() as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, p) in img.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = normalize_u8(p[c]);
        }
    }
    out
}

fn check_size(name: &'static str, (h, w): (u32, u32)) -> Result<()> {
    if h == 0 || w == 0 {
        return Err(DataError::Invalid {
            name,
            reason: format!("size (h, w) = ({h}, {w}) must be > 0"),
        });
    }
    Ok(())
}

/// The HR size `(r·h, r·w)` for an LR size `(h, w)`.
///
/// # Errors
/// [`DataError::Invalid`] when `r == 0`, a side is 0, or the product overflows.
pub fn hr_size(lr_size: (u32, u32), r: u32) -> Result<(u32, u32)> {
    check_size("lr_size", lr_size)?;
    if r < 1 {
        return Err(DataError::Invalid {
            name: "scale r",
            reason: format!("r = {r}, must be ≥ 1"),
        });
    }
    let mul = |v: u32| {
        v.checked_mul(r).ok_or_else(|| DataError::Invalid {
            name: "scale r",
            reason: format!("{v}·{r} overflows"),
        })
    };
    Ok((mul(lr_size.0)?, mul(lr_size.1)?))
}

/// Builds one sample from the (augmented) original image, its mask and optional FOV.
///
/// `lr_size` is `(h, w)`; `r ≥ 1` is the super-resolution factor.
///
/// # Errors
/// [`DataError::Invalid`] for `r == 0`, an empty size or image, or a mask/FOV whose size differs
/// from the image.
pub fn make_sample(
    image: &RgbImage,
    mask: &GrayImage,
    fov: Option<&GrayImage>,
    lr_size: (u32, u32),
    r: u32,
    name: impl Into<String>,
) -> Result<Sample> {
    let hr = hr_size(lr_size, r)?;
    check_size("image size", (image.height(), image.width()))?;
    for (what, other) in [("mask", Some(mask)), ("fov", fov)] {
        if let Some(o) = other
            && o.dimensions() != image.dimensions()
        {
            return Err(DataError::Invalid {
                name: "sample input",
                reason: format!(
                    "{what} is {}x{} but the image is {}x{} (WxH)",
                    o.width(),
                    o.height(),
                    image.width(),
                    image.height()
                ),
            });
        }
    }
    let (hr_h, hr_w) = hr;
    let (lr_h, lr_w) = lr_size;
    let hr_img = if image.dimensions() == (hr_w, hr_h) {
        image.clone()
    } else {
        resize_cubic_rgb(image, hr_w, hr_h)
    };
    let lr_img = resize_cubic_rgb(image, lr_w, lr_h);
    let mask_hr = resize_nearest_centered_gray(mask, hr_w, hr_h).into_raw();
    let fov_hr = fov.map(|f| resize_nearest_centered_gray(f, hr_w, hr_h).into_raw());
    Ok(Sample {
        lr: normalize_chw(&lr_img),
        hr: normalize_chw(&hr_img),
        mask: mask_hr,
        fov: fov_hr,
        lr_size,
        hr_size: hr,
        name: name.into(),
    })
}

/// The network input for inference: cv2 cubic resize of `image` to `lr_size = (h, w)`, then the
/// same normalisation, `[3, h, w]` CHW.
///
/// # Errors
/// [`DataError::Invalid`] for an empty size or image.
pub fn lr_input(image: &RgbImage, lr_size: (u32, u32)) -> Result<Vec<f32>> {
    check_size("lr_size", lr_size)?;
    check_size("image size", (image.height(), image.width()))?;
    Ok(normalize_chw(&resize_cubic_rgb(
        image, lr_size.1, lr_size.0,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize::{resize_cubic_u8, resize_nearest_centered_u8};

    fn image(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 19 + y * 7) as u8,
                (x * 3 + y * 29) as u8,
                ((x ^ y) * 11) as u8,
            ])
        })
    }

    fn mask(w: u32, h: u32) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| image::Luma([((x + 2 * y) % 3) as u8]))
    }

    #[test]
    fn normalisation_values() {
        assert_eq!(normalize_u8(0), -1.0);
        assert_eq!(normalize_u8(255), 1.0);
        assert!((normalize_u8(128) - 0.003_921_569).abs() < 1e-7);
        let img = RgbImage::from_raw(2, 1, vec![0, 255, 51, 255, 0, 102]).unwrap();
        let chw = normalize_chw(&img);
        // Plane R = [0, 255], G = [255, 0], B = [51, 102] → 51: −0.6, 102: −0.2.
        assert_eq!(&chw[..4], &[-1.0, 1.0, 1.0, -1.0]);
        assert!((chw[4] + 0.6).abs() < 1e-6 && (chw[5] + 0.2).abs() < 1e-6);
    }

    #[test]
    fn sample_follows_the_reference_recipe() {
        let img = image(17, 13);
        let m = mask(17, 13);
        let fov = GrayImage::from_fn(17, 13, |x, _| image::Luma([(x > 3) as u8]));
        let s = make_sample(&img, &m, Some(&fov), (6, 9), 2, "a").unwrap();
        assert_eq!(
            (s.lr_size, s.hr_size, s.name.as_str()),
            ((6, 9), (12, 18), "a")
        );
        assert_eq!(
            (s.lr.len(), s.hr.len(), s.mask.len()),
            (3 * 54, 3 * 216, 216)
        );
        // LR comes from the original, not from the HR image.
        let lr_direct = resize_cubic_u8(img.as_raw(), 17, 13, 3, 9, 6);
        assert_eq!(s.lr[0], normalize_u8(lr_direct[0]));
        assert_eq!(s.lr[54 + 10], normalize_u8(lr_direct[10 * 3 + 1]));
        let hr_direct = resize_cubic_u8(img.as_raw(), 17, 13, 3, 18, 12);
        assert_eq!(s.hr[2 * 216 + 100], normalize_u8(hr_direct[100 * 3 + 2]));
        assert_eq!(
            s.mask,
            resize_nearest_centered_u8(m.as_raw(), 17, 13, 1, 18, 12)
        );
        assert_eq!(
            s.fov.unwrap(),
            resize_nearest_centered_u8(fov.as_raw(), 17, 13, 1, 18, 12)
        );
        assert!(s.mask.iter().all(|&v| v <= 2));
    }

    #[test]
    fn hr_sized_original_is_copied() {
        let img = image(18, 12);
        let m = mask(18, 12);
        let s = make_sample(&img, &m, None, (6, 9), 2, "b").unwrap();
        assert_eq!(s.hr, normalize_chw(&img));
        assert_eq!(s.mask, m.into_raw());
        assert_eq!(s.fov, None);
        // r = 1: LR and HR are the same resize.
        let s1 = make_sample(&img, &mask(18, 12), None, (5, 7), 1, "c").unwrap();
        assert_eq!(s1.lr, s1.hr);
        assert_eq!(lr_input(&img, (5, 7)).unwrap(), s1.lr);
    }

    #[test]
    fn invalid_arguments_are_errors() {
        let img = image(8, 8);
        let m = mask(8, 8);
        let inv = |r: Result<Sample>| matches!(r, Err(DataError::Invalid { .. }));
        assert!(inv(make_sample(&img, &m, None, (4, 4), 0, "x")));
        assert!(inv(make_sample(&img, &m, None, (0, 4), 2, "x")));
        assert!(inv(make_sample(&img, &mask(8, 7), None, (4, 4), 2, "x")));
        assert!(inv(make_sample(
            &img,
            &m,
            Some(&mask(7, 8)),
            (4, 4),
            2,
            "x"
        )));
        assert!(matches!(
            lr_input(&img, (4, 0)),
            Err(DataError::Invalid { .. })
        ));
        assert!(hr_size((u32::MAX, 1), 2).is_err());
    }
}
