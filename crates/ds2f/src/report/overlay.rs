//! Prediction overlays in the colours of the paper's Fig. 5: ground truth only green,
//! prediction only red, both yellow; without ground truth the prediction is red.
use image::{GrayImage, Rgb, RgbImage};

/// Colour of a pixel labelled vessel (or lesion) in the ground truth only (a miss).
pub const GROUND_TRUTH_ONLY: Rgb<u8> = Rgb([0, 255, 0]);
/// Colour of a pixel predicted but not in the ground truth (a false alarm).
pub const PREDICTION_ONLY: Rgb<u8> = Rgb([255, 0, 0]);
/// Colour of a pixel in both (a hit).
pub const BOTH: Rgb<u8> = Rgb([255, 255, 0]);

/// A predicted label map as a PNG-ready grey image: binary masks (two classes) as 0/255 so
/// that they are visible, class indices otherwise.
pub fn mask_image(labels: &[u8], num_classes: usize, width: u32, height: u32) -> GrayImage {
    let pixels = if num_classes == 2 {
        labels
            .iter()
            .map(|&l| if l > 0 { 255 } else { 0 })
            .collect()
    } else {
        labels.to_vec()
    };
    GrayImage::from_raw(width, height, pixels).expect("labels have width × height entries")
}

/// Paints `prediction` (and `truth`, if given; both 0 = background, non-zero = foreground,
/// row-major at the image's size) over `image`. Background pixels keep the image, dimmed to
/// 60 % so the colours stand out.
pub fn overlay(image: &RgbImage, prediction: &[u8], truth: Option<&[u8]>) -> RgbImage {
    let n = (image.width() * image.height()) as usize;
    assert_eq!(prediction.len(), n, "prediction has the image's size");
    if let Some(t) = truth {
        assert_eq!(t.len(), n, "ground truth has the image's size");
    }
    let mut out = image.clone();
    for (i, px) in out.pixels_mut().enumerate() {
        let p = prediction[i] != 0;
        let t = truth.is_some_and(|t| t[i] != 0);
        *px = match (p, t) {
            (true, true) => BOTH,
            (true, false) => PREDICTION_ONLY,
            (false, true) => GROUND_TRUTH_ONLY,
            (false, false) => Rgb(px.0.map(|v| (v as u16 * 3 / 5) as u8)),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_follow_figure_5() {
        let image = RgbImage::from_pixel(4, 1, Rgb([100, 50, 200]));
        let pred = [1, 1, 0, 0];
        let truth = [1, 0, 1, 0];
        let o = overlay(&image, &pred, Some(&truth));
        assert_eq!(o.get_pixel(0, 0), &BOTH);
        assert_eq!(o.get_pixel(1, 0), &PREDICTION_ONLY);
        assert_eq!(o.get_pixel(2, 0), &GROUND_TRUTH_ONLY);
        assert_eq!(o.get_pixel(3, 0), &Rgb([60, 30, 120]));
        let o = overlay(&image, &pred, None);
        assert_eq!(o.get_pixel(0, 0), &PREDICTION_ONLY);
        assert_eq!(o.get_pixel(2, 0), &Rgb([60, 30, 120]));
    }
}
