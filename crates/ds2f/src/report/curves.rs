//! Training curves drawn to a PNG with plotters: the progress plot in the style of nnU-Net's
//! `progress.png` from a run's `metrics.csv` (each loss term, the validation metrics with the
//! selected epochs, the learning rate, the epoch time), or loss and validation IoU / Dice alone.
//! The font is bundled (DejaVu Sans Mono, its licence beside it in `assets/`) so that no
//! system font library is needed.
use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::train::LossTerm;
use crate::train::run::{EpochRecord, RunFolder};

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

/// Draws the progress plot of a run's epochs into an RGB buffer of `width × height`: four
/// panels, training loss (total and each term the framework has), validation metrics at HR
/// (the epochs that gave a new best checkpoint marked), learning rate (log scale), seconds per
/// epoch.
pub fn render_progress(
    records: &[EpochRecord],
    width: u32,
    height: u32,
) -> Result<Vec<u8>, String> {
    ensure_font();
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mut buffer = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let panels = root.split_evenly((2, 2));
        let last = records.last().map_or(1, |r| r.epoch.max(1));
        let finite = |v: f64| v.is_finite().then_some(v);
        let max_of = |get: &dyn Fn(&EpochRecord) -> f64| {
            records
                .iter()
                .filter_map(|r| finite(get(r)))
                .fold(0.0f64, f64::max)
                .max(1e-9)
        };
        // Training loss: the total (black) and each term.
        let mut series: Vec<Series> = vec![(
            "total".into(),
            BLACK,
            records
                .iter()
                .filter_map(|r| finite(r.train_loss).map(|v| (r.epoch, v)))
                .collect(),
        )];
        for term in LossTerm::ALL {
            let points: Vec<(usize, f64)> = records
                .iter()
                .filter_map(|r| finite(r.term_loss(term)).map(|v| (r.epoch, v)))
                .collect();
            if !points.is_empty() {
                let colour = OKABE_ITO[term.index() % OKABE_ITO.len()];
                series.push((term.name().to_string(), colour, points));
            }
        }
        let top = max_of(&|r| r.train_loss).max(max_of(&|r| {
            r.term_losses
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold(0.0, f64::max)
        }));
        let mut chart = panel(&panels[0], "training loss (per term)", last, top * 1.05)?;
        draw_lines(&mut chart, series, Some(SeriesLabelPosition::UpperRight))?;

        let mut chart = panel(&panels[1], "validation (HR)", last, 1.0)?;
        let metrics: [(&str, Getter); 4] = [
            ("IoU", |r| r.val_iou),
            ("Dice", |r| r.val_dice),
            ("MCC", |r| r.val_mcc),
            ("BM", |r| r.val_bm),
        ];
        let series = metrics
            .iter()
            .enumerate()
            .map(|(k, (name, get))| {
                let points = records
                    .iter()
                    .filter_map(|r| finite(get(r)).map(|v| (r.epoch, v)));
                (name.to_string(), OKABE_ITO[k], points.collect())
            })
            .collect();
        draw_lines(&mut chart, series, None)?;
        chart
            .draw_series(
                records
                    .iter()
                    .filter(|r| r.best && r.val_dice.is_finite())
                    .map(|r| Circle::new((r.epoch, r.val_dice), 4, BLACK.filled())),
            )
            .map_err(|e| err(&e))?
            .label("new best")
            .legend(|(x, y)| Circle::new((x + 10, y), 4, BLACK.filled()));
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;

        // Learning rate on a log axis (cosine and poly schedules span decades).
        let lrs: Vec<(usize, f64)> = records
            .iter()
            .filter(|r| r.lr.is_finite() && r.lr > 0.0)
            .map(|r| (r.epoch, r.lr))
            .collect();
        let hi = lrs.iter().map(|p| p.1).fold(f64::MIN_POSITIVE, f64::max);
        let lo = lrs.iter().map(|p| p.1).fold(hi, f64::min);
        let mut chart = ChartBuilder::on(&panels[2])
            .caption("learning rate", ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0usize..last, (lo / 2.0..hi * 2.0).log_scale())
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(LineSeries::new(lrs, OKABE_ITO[4].stroke_width(2)))
            .map_err(|e| err(&e))?;

        let mut chart = panel(
            &panels[3],
            "seconds per epoch",
            last,
            max_of(&|r| r.seconds) * 1.1,
        )?;
        let times = records
            .iter()
            .filter_map(|r| finite(r.seconds).map(|v| (r.epoch, v)));
        draw_lines(
            &mut chart,
            vec![("epoch".into(), OKABE_ITO[5], times.collect())],
            None,
        )?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(buffer)
}

/// A named, coloured line of `(epoch, value)` points.
type Series = (String, RGBColor, Vec<(usize, f64)>);

/// Reads one number of an epoch.
type Getter = fn(&EpochRecord) -> f64;

/// Okabe–Ito colours (colour-blind safe), black excluded.
const OKABE_ITO: [RGBColor; 7] = [
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(240, 228, 66),
];

/// Draws each series; with `legend_at`, a legend there when there are several.
fn draw_lines<'a, 'b: 'a>(
    chart: &mut Panel<'a, 'b>,
    series: Vec<Series>,
    legend_at: Option<SeriesLabelPosition>,
) -> Result<(), String> {
    let many = series.len() > 1;
    for (name, colour, points) in series {
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
    }
    if let (true, Some(position)) = (many, legend_at) {
        legend(chart, position)?;
    }
    Ok(())
}

fn legend<'a, 'b: 'a>(
    chart: &mut Panel<'a, 'b>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(position)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())
}

/// Writes the progress plot of `records` (1200 × 800) as a PNG atomically.
pub fn save_progress(records: &[EpochRecord], path: &Path) -> Result<(), String> {
    let (w, h) = (1200, 800);
    let buffer = render_progress(records, w, h)?;
    let image = image::RgbImage::from_raw(w, h, buffer).ok_or("buffer size")?;
    ds2f_data::io::save_png_atomic(path, &image).map_err(|e| e.to_string())
}

/// Renders the curves of `points` and writes them as a PNG atomically: the progress plot
/// ([`render_progress`]) when `metrics.csv` beside `path` holds the same epochs, else loss and
/// validation IoU / Dice ([`render`]). (The trainer has the whole history and calls
/// [`save_progress`] directly.)
pub fn save(points: &[CurvePoint], path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent()
        && let Ok(records) = RunFolder::new(dir).read_metrics()
        && !records.is_empty()
        && records
            .iter()
            .map(|r| r.epoch)
            .eq(points.iter().map(|p| p.epoch))
    {
        return save_progress(&records, path);
    }
    let (w, h) = (960, 400);
    let buffer = render(points, w, h)?;
    let image = image::RgbImage::from_raw(w, h, buffer).ok_or("buffer size")?;
    ds2f_data::io::save_png_atomic(path, &image).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize, best: bool) -> EpochRecord {
        let e = epoch as f64;
        EpochRecord {
            epoch,
            iteration: epoch * 10,
            lr: 0.01 / e,
            train_loss: 2.0 / e,
            val_iou: 0.1 * e,
            val_dice: 0.15 * e,
            val_mcc: 0.12 * e,
            val_bm: f64::NAN,
            seconds: 30.0 + e,
            best,
            term_losses: [1.0 / e, 0.5 / e, 0.3 / e, 0.2 / e, f64::NAN, f64::NAN],
        }
    }

    #[test]
    fn progress_plot_from_metrics_csv() {
        let tmp = tempfile::tempdir().unwrap();
        let records: Vec<EpochRecord> = (1..=4).map(|e| record(e, e % 2 == 1)).collect();
        let run = RunFolder::new(tmp.path());
        run.write_metrics(&records).unwrap();
        let points: Vec<CurvePoint> = records
            .iter()
            .map(|r| CurvePoint {
                epoch: r.epoch,
                train_loss: r.train_loss,
                val_iou: r.val_iou,
                val_dice: r.val_dice,
            })
            .collect();
        let path = tmp.path().join("curves.png");
        save(&points, &path).unwrap();
        let png = image::open(&path).unwrap().to_rgb8();
        assert_eq!(png.dimensions(), (1200, 800), "the progress plot");
        // Each term has its colour: seg orange, SR sky blue, proxy seg green, proxy SR pink.
        for colour in &OKABE_ITO[..4] {
            let c = [colour.0, colour.1, colour.2];
            assert!(png.pixels().any(|p| p.0 == c), "{c:?} drawn");
        }
        // Without metrics.csv (or with other epochs): the two panels.
        std::fs::remove_file(tmp.path().join("metrics.csv")).unwrap();
        save(&points, &path).unwrap();
        assert_eq!(
            image::open(&path).unwrap().to_rgb8().dimensions(),
            (960, 400)
        );
    }
}
