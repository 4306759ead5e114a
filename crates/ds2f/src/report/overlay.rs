//! Prediction overlays. Binary tasks in the colours of the paper's Fig. 5: ground truth only
//! green, prediction only red, both yellow; without ground truth the prediction is red.
//! Multi-class tasks paint each predicted class in its colour, the lesions as the paper's
//! Fig. 6 (EX red, HE green, MA blue, SE pink), Cityscapes in its official palette, with a
//! legend below the image.
use image::{GrayImage, Rgb, RgbImage};
use plotters::prelude::*;

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

/// The colours of a binary overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Palette {
    /// The paper's Fig. 5: truth only green, prediction only red, both yellow.
    #[default]
    Paper,
    /// Colour-blind safe (Okabe–Ito): truth only sky blue, prediction only orange, both
    /// white; distinct under protanopia, deuteranopia and tritanopia.
    OkabeIto,
}

impl Palette {
    /// `(truth only, prediction only, both)`.
    pub fn colours(self) -> [Rgb<u8>; 3] {
        match self {
            Palette::Paper => [GROUND_TRUTH_ONLY, PREDICTION_ONLY, BOTH],
            Palette::OkabeIto => [
                Rgb([86, 180, 233]),
                Rgb([230, 159, 0]),
                Rgb([255, 255, 255]),
            ],
        }
    }

    /// The words of a legend: `(colour, what it means)`.
    pub fn legend(self) -> [(Rgb<u8>, &'static str); 3] {
        let [t, p, b] = self.colours();
        [
            (b, "hit (both)"),
            (p, "false alarm (prediction only)"),
            (t, "miss (truth only)"),
        ]
    }
}

/// Paints `prediction` (and `truth`, if given; both 0 = background, non-zero = foreground,
/// row-major at the image's size) over `image`. Background pixels keep the image, dimmed to
/// 60 % so the colours stand out.
pub fn overlay(image: &RgbImage, prediction: &[u8], truth: Option<&[u8]>) -> RgbImage {
    overlay_with(image, prediction, truth, Palette::Paper)
}

/// [`overlay`] in the colours of `palette`.
pub fn overlay_with(
    image: &RgbImage,
    prediction: &[u8],
    truth: Option<&[u8]>,
    palette: Palette,
) -> RgbImage {
    let [truth_only, prediction_only, both] = palette.colours();
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
            (true, true) => both,
            (true, false) => prediction_only,
            (false, true) => truth_only,
            (false, false) => Rgb(px.0.map(|v| (v as u16 * 3 / 5) as u8)),
        };
    }
    out
}

/// The colour of class `class` named `name`: the paper's Fig. 6 colours for the lesions, the
/// Cityscapes palette for its 19 classes, and a fixed distinct colour otherwise.
pub fn class_colour(name: &str, class: usize) -> Rgb<u8> {
    let known = match name {
        "EX" => Some([255, 0, 0]),
        "HE" => Some([0, 255, 0]),
        "MA" => Some([0, 0, 255]),
        "SE" => Some([255, 105, 180]),
        "OD" => Some([255, 255, 0]),
        // Cityscapes' own colours of its train ids (cityscapesScripts `labels.py`).
        "road" => Some([128, 64, 128]),
        "sidewalk" => Some([244, 35, 232]),
        "building" => Some([70, 70, 70]),
        "wall" => Some([102, 102, 156]),
        "fence" => Some([190, 153, 153]),
        "pole" => Some([153, 153, 153]),
        "traffic light" => Some([250, 170, 30]),
        "traffic sign" => Some([220, 220, 0]),
        "vegetation" => Some([107, 142, 35]),
        "terrain" => Some([152, 251, 152]),
        "sky" => Some([70, 130, 180]),
        "person" => Some([220, 20, 60]),
        "rider" => Some([255, 0, 0]),
        "car" => Some([0, 0, 142]),
        "truck" => Some([0, 0, 70]),
        "bus" => Some([0, 60, 100]),
        "train" => Some([0, 80, 100]),
        "motorcycle" => Some([0, 0, 230]),
        "bicycle" => Some([119, 11, 32]),
        _ => None,
    };
    // Otherwise a fixed sequence of well-separated colours (Okabe–Ito, colour-blind safe).
    const CYCLE: [[u8; 3]; 7] = [
        [230, 159, 0],
        [86, 180, 233],
        [0, 158, 115],
        [240, 228, 66],
        [0, 114, 178],
        [213, 94, 0],
        [204, 121, 167],
    ];
    Rgb(known.unwrap_or(CYCLE[class.saturating_sub(1) % CYCLE.len()]))
}

/// Paints every pixel whose predicted label `c` has a colour (`colours[c]`, `None` = keep
/// the image) over `image`; unpainted pixels are dimmed to 60 % as in [`overlay`].
pub fn class_overlay(image: &RgbImage, labels: &[u8], colours: &[Option<Rgb<u8>>]) -> RgbImage {
    let n = (image.width() * image.height()) as usize;
    assert_eq!(labels.len(), n, "labels have the image's size");
    let mut out = image.clone();
    for (px, &label) in out.pixels_mut().zip(labels) {
        *px = match colours.get(usize::from(label)).copied().flatten() {
            Some(colour) => colour,
            None => Rgb(px.0.map(|v| (v as u16 * 3 / 5) as u8)),
        };
    }
    out
}

/// `image` with a white band below it naming each colour of `entries` (class name, colour),
/// so that a multi-class overlay reads without the docs.
pub fn with_legend(image: &RgbImage, entries: &[(String, Rgb<u8>)]) -> Result<RgbImage, String> {
    crate::report::curves::ensure_font();
    let (w, h) = image.dimensions();
    let band = (h / 16).clamp(20, 48);
    let mut buffer = vec![255u8; (w * band * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (w, band)).into_drawing_area();
        let size = band * 3 / 5;
        let font = ("sans-serif", size as f64).into_font().color(&BLACK);
        let mut x = (band / 4) as i32;
        let y = ((band - size) / 2) as i32;
        for (name, colour) in entries {
            let fill = RGBColor(colour[0], colour[1], colour[2]).filled();
            root.draw(&Rectangle::new(
                [(x, y), (x + size as i32, y + size as i32)],
                fill,
            ))
            .map_err(|e| e.to_string())?;
            x += size as i32 + (band / 5) as i32;
            root.draw_text(name, &font, (x, y))
                .map_err(|e| e.to_string())?;
            let (tw, _) = root
                .estimate_text_size(name, &font)
                .map_err(|e| e.to_string())?;
            x += tw as i32 + (band / 2) as i32;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    let mut out = RgbImage::from_pixel(w, h + band, Rgb([255, 255, 255]));
    image::imageops::replace(&mut out, image, 0, 0);
    let legend = RgbImage::from_raw(w, band, buffer).expect("w × band RGB pixels");
    image::imageops::replace(&mut out, &legend, 0, i64::from(h));
    Ok(out)
}

/// The overlay of a prediction: binary tasks as [`overlay`] (Fig. 5, with the ground truth
/// when given); multi-class tasks as [`class_overlay`] of the prediction in each class's
/// [`class_colour`] (Fig. 6; the ground truth is not drawn) with a legend of the classes.
pub fn labelled_overlay(
    image: &RgbImage,
    labels: &[u8],
    truth: Option<&[u8]>,
    class_names: &[String],
) -> Result<RgbImage, String> {
    labelled_overlay_with(image, labels, truth, class_names, Palette::Paper)
}

/// [`labelled_overlay`] with binary tasks in the colours of `palette`.
pub fn labelled_overlay_with(
    image: &RgbImage,
    labels: &[u8],
    truth: Option<&[u8]>,
    class_names: &[String],
    palette: Palette,
) -> Result<RgbImage, String> {
    if class_names.len() <= 2 {
        return Ok(overlay_with(image, labels, truth, palette));
    }
    let colours: Vec<Option<Rgb<u8>>> = class_names
        .iter()
        .enumerate()
        // Class 0 is background and stays the image, unless it is a real class (Cityscapes'
        // road).
        .map(|(k, name)| {
            (k > 0 || (name != "background" && !name.starts_with("class ")))
                .then(|| class_colour(name, k))
        })
        .collect();
    let entries: Vec<(String, Rgb<u8>)> = class_names
        .iter()
        .zip(&colours)
        .filter_map(|(name, c)| c.map(|c| (name.clone(), c)))
        .collect();
    with_legend(&class_overlay(image, labels, &colours), &entries)
}

/// The top-left corner of the `size × size` window (clamped to the image) holding the most
/// `errors` (row-major, `width × height`), by a summed-area table; the first such window in
/// row-major order wins ties.
pub fn worst_window(errors: &[bool], width: u32, height: u32, size: u32) -> (u32, u32) {
    let (w, h) = (width as usize, height as usize);
    assert_eq!(errors.len(), w * h, "one flag per pixel");
    let (sw, sh) = (size.min(width) as usize, size.min(height) as usize);
    // sat[(y)(w+1) + x] = errors in [0, x) × [0, y).
    let mut sat = vec![0u32; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0u32;
        for x in 0..w {
            row += u32::from(errors[y * w + x]);
            sat[(y + 1) * (w + 1) + x + 1] = sat[y * (w + 1) + x + 1] + row;
        }
    }
    let at = |x: usize, y: usize| sat[y * (w + 1) + x];
    let (mut best, mut best_xy) = (0u32, (0, 0));
    for y in 0..=h - sh {
        for x in 0..=w - sw {
            let n = at(x + sw, y + sh) + at(x, y) - at(x + sw, y) - at(x, y + sh);
            if n > best {
                (best, best_xy) = (n, (x as u32, y as u32));
            }
        }
    }
    best_xy
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

    #[test]
    fn okabe_ito_palette_and_worst_window() {
        let image = RgbImage::from_pixel(3, 1, Rgb([100, 50, 200]));
        let o = overlay_with(&image, &[1, 1, 0], Some(&[1, 0, 1]), Palette::OkabeIto);
        assert_eq!(o.get_pixel(0, 0), &Rgb([255, 255, 255]));
        assert_eq!(o.get_pixel(1, 0), &Rgb([230, 159, 0]));
        assert_eq!(o.get_pixel(2, 0), &Rgb([86, 180, 233]));
        // 6×4 image, errors at (4,2), (5,2), (5,3) and a lone one at (0,0): the 2×2 window
        // with three errors starts at (4, 2).
        let mut errors = vec![false; 24];
        for (x, y) in [(4, 2), (5, 2), (5, 3), (0, 0)] {
            errors[y * 6 + x] = true;
        }
        assert_eq!(worst_window(&errors, 6, 4, 2), (4, 2));
        // A window larger than the image is the image.
        assert_eq!(worst_window(&errors, 6, 4, 10), (0, 0));
        assert_eq!(worst_window(&[false; 24], 6, 4, 2), (0, 0));
    }

    #[test]
    fn classes_take_the_colours_of_figure_6_and_a_legend() {
        assert_eq!(class_colour("EX", 3), Rgb([255, 0, 0]));
        assert_eq!(class_colour("HE", 2), Rgb([0, 255, 0]));
        assert_eq!(class_colour("MA", 1), Rgb([0, 0, 255]));
        assert_eq!(class_colour("road", 0), Rgb([128, 64, 128]));
        assert_ne!(class_colour("a", 1), class_colour("b", 2));
        let image = RgbImage::from_pixel(3, 1, Rgb([100, 50, 200]));
        let colours = [None, Some(Rgb([0, 0, 255])), Some(Rgb([0, 255, 0]))];
        let o = class_overlay(&image, &[0, 1, 2], &colours);
        assert_eq!(o.get_pixel(0, 0), &Rgb([60, 30, 120]));
        assert_eq!(o.get_pixel(1, 0), &Rgb([0, 0, 255]));
        assert_eq!(o.get_pixel(2, 0), &Rgb([0, 255, 0]));

        let image = RgbImage::from_pixel(200, 100, Rgb([10, 20, 30]));
        let entries = [
            ("MA".to_string(), Rgb([0, 0, 255])),
            ("HE".to_string(), Rgb([0, 255, 0])),
        ];
        let legend = with_legend(&image, &entries).expect("drawn");
        assert_eq!(legend.dimensions(), (200, 120));
        assert_eq!(
            legend.get_pixel(5, 5),
            &Rgb([10, 20, 30]),
            "the image is kept above"
        );
        let band: Vec<&Rgb<u8>> = (100..120)
            .flat_map(|y| (0..200).map(move |x| (x, y)))
            .map(|(x, y)| legend.get_pixel(x, y))
            .collect();
        assert!(band.contains(&&Rgb([0, 0, 255])), "MA swatch");
        assert!(band.contains(&&Rgb([0, 255, 0])), "HE swatch");
        assert!(
            band.iter().any(|p| p.0[0] < 100 && p.0 == [p.0[0]; 3]),
            "dark text"
        );
    }
}
