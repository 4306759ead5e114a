//! Training curves (loss, validation IoU and Dice per epoch) drawn to a PNG with plotters.
//! The font is bundled (DejaVu Sans Mono, its licence beside it in `assets/`) so that no
//! system font library is needed.
use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

static FONT: Once = Once::new();

/// Registers the bundled font as plotters' `sans-serif` (once per process).
pub(crate) fn ensure_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/DejaVuSansMono.ttf");
        // Registration fails only for a malformed font, which the bundled one is not.
        let _ = register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

/// One epoch's numbers, as plotted.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation IoU (NaN when undefined).
    pub val_iou: f64,
    /// Validation Dice (NaN when undefined).
    pub val_dice: f64,
}

/// Draws loss (left panel) and validation IoU / Dice (right panel) against epochs into an RGB
/// buffer of `width × height`.
pub fn render(points: &[CurvePoint], width: u32, height: u32) -> Result<Vec<u8>, String> {
    ensure_font();
    let mut buffer = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(width / 2);
        let last = points.last().map_or(1, |p| p.epoch.max(1));
        let finite = |v: f64| v.is_finite().then_some(v);
        let max_loss = points
            .iter()
            .filter_map(|p| finite(p.train_loss))
            .fold(0.0f64, f64::max)
            .max(1e-6);
        let mut chart = panel(&left, "training loss", last, max_loss * 1.05)?;
        chart
            .draw_series(LineSeries::new(
                points
                    .iter()
                    .filter_map(|p| finite(p.train_loss).map(|v| (p.epoch, v))),
                &BLUE,
            ))
            .map_err(|e| e.to_string())?;

        let mut chart = panel(&right, "validation (HR)", last, 1.0)?;
        for (name, colour, get) in [
            (
                "IoU",
                RED,
                (|p: &CurvePoint| p.val_iou) as fn(&CurvePoint) -> f64,
            ),
            ("Dice", GREEN, |p: &CurvePoint| p.val_dice),
        ] {
            chart
                .draw_series(LineSeries::new(
                    points
                        .iter()
                        .filter_map(|p| finite(get(p)).map(|v| (p.epoch, v))),
                    &colour,
                ))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(buffer)
}

type Panel<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordusize, plotters::coord::types::RangedCoordf64>,
>;

/// One captioned panel with epochs `0..last` on x and `0..y_max` on y, its mesh drawn.
fn panel<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    last: usize,
    y_max: f64,
) -> Result<Panel<'a, 'b>, String> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0usize..last, 0f64..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// Renders the curves and writes them as a PNG atomically.
pub fn save(points: &[CurvePoint], path: &Path) -> Result<(), String> {
    let (w, h) = (960, 400);
    let buffer = render(points, w, h)?;
    let image = image::RgbImage::from_raw(w, h, buffer).ok_or("buffer size")?;
    ds2f_data::io::save_png_atomic(path, &image).map_err(|e| e.to_string())
}
