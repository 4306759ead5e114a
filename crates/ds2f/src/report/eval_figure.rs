//! The evaluation figure (`evaluation.png`): pooled precision–recall and ROC curves (whole image
//! and inside the FOV, or one per class) and a bar chart of each image's score, worst first.
use std::path::Path;

use ds2f_metrics::PrAccumulator;
use plotters::prelude::*;

use crate::report::curves::ensure_font;

/// One labelled pair of pooled curves.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveSet {
    /// Legend, e.g. `whole image (AP 0.81)`.
    pub label: String,
    /// `(recall, precision)`, recall rising, starting at `(0, 1)`.
    pub pr: Vec<(f64, f64)>,
    /// `(FPR, TPR)`, from `(0, 0)` to `(1, 1)`.
    pub roc: Vec<(f64, f64)>,
}

/// Drops points closer than `step` (in both coordinates) to the last kept one, keeping the
/// first and last: a 65536-bin histogram's curve drawn with a few hundred points.
fn thin(points: Vec<(f64, f64)>, step: f64) -> Vec<(f64, f64)> {
    let n = points.len();
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (i, p) in points.into_iter().enumerate() {
        let far = out
            .last()
            .is_none_or(|q| (p.0 - q.0).abs() >= step || (p.1 - q.1).abs() >= step);
        if far || i + 1 == n {
            out.push(p);
        }
    }
    out
}

impl CurveSet {
    /// The curves of one pooled accumulator.
    pub fn of(label: impl Into<String>, acc: &PrAccumulator) -> Self {
        let pr = std::iter::once((0.0, 1.0))
            .chain(acc.curve().iter().map(|p| (p.recall, p.precision)))
            .collect();
        let roc = std::iter::once((0.0, 0.0))
            .chain(acc.roc_curve().iter().map(|p| (p.fpr, p.tpr)))
            .collect();
        Self {
            label: label.into(),
            pr: thin(pr, 1e-3),
            roc: thin(roc, 1e-3),
        }
    }
}

/// A panel: title, x label, y label, and which curve of a set it draws.
type Axes = (
    &'static str,
    &'static str,
    &'static str,
    fn(&CurveSet) -> &[(f64, f64)],
);

const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Draws the PR panel, the ROC panel and (when `bars` is not empty) the per-image bars of
/// `metric` into an RGB buffer of `width × height`.
pub fn render(
    curves: &[CurveSet],
    bars: &[(String, f64)],
    metric: &str,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, String> {
    ensure_font();
    let mut buffer = vec![0u8; (width * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let panels = root.split_evenly((1, 3));
        let axes: [Axes; 2] = [
            ("precision-recall (pooled)", "recall", "precision", |c| {
                &c.pr
            }),
            ("ROC (pooled)", "false positive rate", "sensitivity", |c| {
                &c.roc
            }),
        ];
        for ((title, x, y, get), area) in axes.into_iter().zip(panels.iter()) {
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(48)
                .build_cartesian_2d(0f64..1f64, 0f64..1.02f64)
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc(x)
                .y_desc(y)
                .draw()
                .map_err(err)?;
            if curves.is_empty() {
                chart
                    .draw_series(std::iter::once(Text::new(
                        "no probabilities",
                        (0.3, 0.5),
                        ("sans-serif", 16),
                    )))
                    .map_err(err)?;
            }
            for (k, set) in curves.iter().enumerate() {
                let colour = COLOURS[k % COLOURS.len()];
                chart
                    .draw_series(LineSeries::new(
                        get(set).iter().copied(),
                        colour.stroke_width(2),
                    ))
                    .map_err(err)?
                    .label(set.label.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                    });
            }
            if !curves.is_empty() {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .position(SeriesLabelPosition::LowerLeft)
                    .label_font(("sans-serif", 13))
                    .draw()
                    .map_err(err)?;
            }
        }
        if !bars.is_empty() {
            draw_bars(&panels[2], bars, metric)?;
        }
        root.present().map_err(err)?;
    }
    Ok(buffer)
}

/// Horizontal bars, worst image at the top, with the mean as a dashed line.
fn draw_bars(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    bars: &[(String, f64)],
    metric: &str,
) -> Result<(), String> {
    let mut sorted: Vec<&(String, f64)> = bars.iter().collect();
    // Worst first (top), NaN last.
    sorted.sort_by(|a, b| {
        let key = |v: f64| if v.is_nan() { f64::INFINITY } else { v };
        key(a.1).total_cmp(&key(b.1))
    });
    let n = sorted.len();
    let longest = sorted.iter().map(|(name, _)| name.len()).max().unwrap_or(4);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{metric} per image (worst at top)"),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size((longest as u32 * 8).clamp(40, 160))
        .build_cartesian_2d(0f64..1f64, (0..n).into_segmented())
        .map_err(err)?;
    let names: Vec<String> = sorted.iter().map(|(name, _)| name.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(metric)
        .y_labels(n.min(40))
        .y_label_formatter(&|v: &SegmentValue<usize>| match v {
            // Top to bottom: the worst image at the top.
            SegmentValue::CenterOf(i) if *i < n => names[n - 1 - i].clone(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(sorted.iter().enumerate().map(|(i, (_, v))| {
            let row = n - 1 - i;
            let v = if v.is_nan() { 0.0 } else { *v };
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(row)),
                    (v, SegmentValue::Exact(row + 1)),
                ],
                COLOURS[0].filled(),
            );
            bar.set_margin(2, 2, 0, 0);
            bar
        }))
        .map_err(err)?;
    let defined: Vec<f64> = bars.iter().map(|b| b.1).filter(|v| !v.is_nan()).collect();
    if !defined.is_empty() {
        let mean = defined.iter().sum::<f64>() / defined.len() as f64;
        chart
            .draw_series(DashedLineSeries::new(
                [
                    (mean, SegmentValue::Exact(0)),
                    (mean, SegmentValue::Exact(n)),
                ],
                6,
                4,
                COLOURS[1].stroke_width(2),
            ))
            .map_err(err)?
            .label(format!("mean {mean:.4}"))
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], COLOURS[1].stroke_width(2))
            });
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// Renders the figure (1500 × 480) and writes it as a PNG atomically.
pub fn save(
    curves: &[CurveSet],
    bars: &[(String, f64)],
    metric: &str,
    path: &Path,
) -> Result<(), String> {
    let (w, h) = (1500, 480);
    let buffer = render(curves, bars, metric, w, h)?;
    let image = image::RgbImage::from_raw(w, h, buffer).ok_or("buffer size")?;
    ds2f_data::io::save_png_atomic(path, &image).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ds2f_metrics::PrMode;

    #[test]
    fn curves_start_at_their_corners_and_thin() {
        let mut acc = PrAccumulator::new(PrMode::Histogram { bins: 10 });
        for (s, l) in [(0.95f32, true), (0.55, true), (0.55, false), (0.15, false)] {
            acc.push(s, l);
        }
        let set = CurveSet::of("x", &acc);
        assert_eq!(
            set.pr,
            [(0.0, 1.0), (0.5, 1.0), (1.0, 2.0 / 3.0), (1.0, 0.5)]
        );
        assert_eq!(set.roc, [(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        let many: Vec<(f64, f64)> = (0..=1000).map(|i| (i as f64 / 1000.0, 0.5)).collect();
        let thinned = thin(many, 0.0095);
        assert_eq!(thinned.len(), 101);
        assert_eq!(thinned.last(), Some(&(1.0, 0.5)));
    }

    #[test]
    fn draws_curves_and_bars() {
        let set = CurveSet {
            label: "whole".into(),
            pr: vec![(0.0, 1.0), (1.0, 0.5)],
            roc: vec![(0.0, 0.0), (0.2, 0.9), (1.0, 1.0)],
        };
        let bars = vec![
            ("a".to_string(), 0.8),
            ("b".to_string(), 0.6),
            ("c".into(), f64::NAN),
        ];
        let buf = render(&[set], &bars, "Dice", 900, 300).unwrap();
        let blue = buf.chunks(3).filter(|p| p == &[0, 114, 178]).count();
        assert!(blue > 500, "curves and bars in blue: {blue} pixels");
        // Without probabilities the panels say so, and nothing fails.
        render(&[], &bars, "Dice", 900, 300).unwrap();
    }
}
