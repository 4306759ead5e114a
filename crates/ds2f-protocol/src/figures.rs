//! Figures for an experiment report, drawn with plotters into PNG files: a paired per-image
//! scatter (baseline against variant), a metric against the super-resolution rate (the paper's
//! Fig. 4) and box plots of a metric per variant.
//!
//! Each figure is rendered into an RGB buffer by a private `render_*` function that also
//! reports where its data landed in pixels, so that the tests can check pixels against the
//! data; the public functions only add the PNG encoding and the atomic write.
use std::path::{Path, PathBuf};
use std::sync::Once;

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// Why a figure could not be made; every variant names the file it was meant for.
#[derive(Debug, thiserror::Error)]
pub enum FigureError {
    /// plotters failed to draw (a message, as plotters' errors are generic over the backend).
    #[error("drawing figure {}: {message}", path.display())]
    Draw {
        /// The figure's file.
        path: PathBuf,
        /// What plotters reported.
        message: String,
    },
    /// The PNG could not be encoded.
    #[error("encoding figure {}: {source}", path.display())]
    Encode {
        /// The figure's file.
        path: PathBuf,
        /// The encoder's error.
        source: image::ImageError,
    },
    /// The PNG could not be written or moved into place (the error names the file).
    #[error("writing figure: {source}")]
    Write {
        /// The figure's file.
        path: PathBuf,
        /// The error of the atomic write.
        source: ds2f_data::DataError,
    },
}

/// One curve of [`rate_plot`]: a model variant's metric at each super-resolution rate.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSeries {
    /// Legend entry.
    pub name: String,
    /// `(rate, mean, std)`: the upscale rate (2 for ×2), and the metric's mean and standard
    /// deviation over folds or repeats. Points with a non-finite rate or mean are skipped; a
    /// non-finite std draws no error bar.
    pub points: Vec<(f64, f64, f64)>,
}

static FONT: Once = Once::new();

/// Registers the bundled font under "sans-serif", so that no system font library is needed.
fn ensure_font() {
    FONT.call_once(|| {
        // The workspace's one font file lives with the ds2f crate (licence beside it).
        let bytes: &'static [u8] = include_bytes!("../../ds2f/assets/DejaVuSansMono.ttf");
        // Registration fails only for a malformed font, which the bundled one is not.
        let _ = register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

/// Categorical colours (the "tab10" palette), one per series or variant.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of series or variant `i` (the palette repeats).
fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// `c` blended with white (`t` = 0 keeps `c`, 1 gives white), as an opaque colour so that its
/// pixels are exactly this value.
fn lighten(c: RGBColor, t: f64) -> RGBColor {
    let mix = |v: u8| (v as f64 + (255.0 - v as f64) * t).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// The grey of reference lines (the diagonal).
const GREY: RGBColor = RGBColor(150, 150, 150);

/// Axis range for `values`: the finite minimum to maximum padded by 5 % of the span on each
/// side (±0.05 when all values are equal), clamped to [0, 1] when every value is in [0, 1]
/// (scores such as Dice); `None` when no value is finite.
pub(crate) fn axis_range(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.into_iter().filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return None;
    }
    let unit = lo >= 0.0 && hi <= 1.0;
    let pad = if hi > lo { 0.05 * (hi - lo) } else { 0.05 };
    let (mut a, mut b) = (lo - pad, hi + pad);
    if unit {
        a = a.max(0.0);
        b = b.min(1.0);
    }
    Some((a, b))
}

/// Quartiles (Q1, median, Q3) of `sorted` (ascending, finite) by linear interpolation between
/// closest ranks: the p-quantile is at 0-based position p·(n − 1) (numpy's default, Hyndman and
/// Fan's type 7). `None` for no values.
pub(crate) fn quartiles(sorted: &[f64]) -> Option<(f64, f64, f64)> {
    if sorted.is_empty() {
        return None;
    }
    let at = |p: f64| {
        let pos = p * (sorted.len() - 1) as f64;
        let i = pos.floor() as usize;
        let frac = pos - i as f64;
        match sorted.get(i + 1) {
            Some(next) => sorted[i] + frac * (next - sorted[i]),
            None => sorted[i],
        }
    };
    Some((at(0.25), at(0.5), at(0.75)))
}

/// What a box plot draws for one group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct BoxStats {
    /// First quartile (bottom of the box).
    pub q1: f64,
    /// Median (line in the box).
    pub median: f64,
    /// Third quartile (top of the box).
    pub q3: f64,
    /// Lower whisker: the smallest value not below Q1 − 1.5·IQR (Tukey).
    pub low: f64,
    /// Upper whisker: the largest value not above Q3 + 1.5·IQR (Tukey).
    pub high: f64,
}

/// [`BoxStats`] of the finite `values` (quartiles by [`quartiles`]); `None` when none is finite.
pub(crate) fn box_stats(values: &[f64]) -> Option<BoxStats> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let (q1, median, q3) = quartiles(&sorted)?;
    let iqr = q3 - q1;
    let (lo_fence, hi_fence) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
    let low = sorted
        .iter()
        .copied()
        .find(|&v| v >= lo_fence)
        .unwrap_or(q1);
    let high = sorted
        .iter()
        .rev()
        .copied()
        .find(|&v| v <= hi_fence)
        .unwrap_or(q3);
    Some(BoxStats {
        q1,
        median,
        q3,
        low,
        high,
    })
}

/// A p-value as printed in captions: three decimals, four below 0.01, scientific below 0.001.
pub(crate) fn format_p(p: f64) -> String {
    if p >= 0.01 {
        format!("{p:.3}")
    } else if p >= 0.001 {
        format!("{p:.4}")
    } else {
        format!("{p:.1e}")
    }
}

/// A rate as an axis label: "×2", or "×1.50" for a fractional rate.
fn format_rate(r: f64) -> String {
    if (r - r.round()).abs() < 1e-9 {
        format!("×{}", r.round() as i64)
    } else {
        format!("×{r:.2}")
    }
}

/// A pixel position (x right, y down), where the tests look for a datum.
type Pixel = (i32, i32);

/// A pixel rectangle `(left, top, right, bottom)`.
type PixelRect = (i32, i32, i32, i32);

/// An RGB buffer of `width × height` pixels, as plotters' bitmap backend fills it.
struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: u32, height: u32) -> Self {
        Canvas {
            width,
            height,
            pixels: vec![255; (width * height * 3) as usize],
        }
    }
}

/// plotters' error as a message (its error types are generic over the backend).
fn msg<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Encodes `canvas` as PNG and writes it to `path` atomically: to a temporary file first, then
/// renamed over `path`, so that a reader never sees half a file; the temporary file is removed
/// on error.
fn save(path: &Path, canvas: Canvas) -> Result<(), FigureError> {
    let image =
        image::RgbImage::from_raw(canvas.width, canvas.height, canvas.pixels).ok_or_else(|| {
            FigureError::Draw {
                path: path.to_owned(),
                message: "pixel buffer does not match the figure's size".into(),
            }
        })?;
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|source| FigureError::Encode {
            path: path.to_owned(),
            source,
        })?;
    ds2f_data::io::write_atomic(path, &bytes).map_err(|source| FigureError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Renders with `render` and saves to `path`, naming `path` in a drawing error.
fn render_and_save<F>(path: &Path, render: F) -> Result<(), FigureError>
where
    F: FnOnce() -> Result<Canvas, String>,
{
    let canvas = render().map_err(|message| FigureError::Draw {
        path: path.to_owned(),
        message,
    })?;
    save(path, canvas)
}

/// Where the paired plot's square data range `lo..hi` (same on both axes) landed in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PairedFrame {
    lo: f64,
    hi: f64,
    /// Pixel of data point (lo, lo): the plot area's lower left corner.
    origin: (i32, i32),
    /// Pixel of data point (hi, hi): the plot area's upper right corner.
    corner: (i32, i32),
}

/// Marker radius of the paired plot, in pixels.
const PAIRED_RADIUS: i32 = 4;

/// A linear f64 axis with ticks exactly at `ticks` (the rates present, or one per variant)
/// rather than at round numbers; labels come from the mesh's label formatter. (plotters'
/// `with_key_points` does the same but loses the f64 axis's label formatting.)
struct TickedAxis {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl TickedAxis {
    fn new(range: Range<f64>, ticks: Vec<f64>) -> Self {
        TickedAxis {
            inner: range.into(),
            ticks,
        }
    }
}

impl Ranged for TickedAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        // Bold points only: no light grid lines between the ticks.
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

/// Size of the paired plot.
const PAIRED_SIZE: (u32, u32) = (700, 700);

/// Draws one point per test image: x = the baseline's score, y = the variant's, on equal axes
/// with the y = x diagonal, so that points above the diagonal are images where the variant
/// scored higher. A caption counts them and gives the paired test's p-value when known
/// (Wilcoxon signed-rank, computed by the caller). Pairs with a non-finite value are skipped.
pub fn paired_plot(
    path: &Path,
    metric: &str,
    baseline: &str,
    variant: &str,
    pairs: &[(f64, f64)],
    p_value: Option<f64>,
) -> Result<(), FigureError> {
    render_and_save(path, || {
        render_paired(metric, baseline, variant, pairs, p_value).map(|(canvas, _)| canvas)
    })
}

/// The caption of the paired plot: how many finite pairs, on how many the variant is higher
/// (ties count for neither), and the p-value when given.
fn paired_caption(variant: &str, pairs: &[(f64, f64)], p_value: Option<f64>) -> String {
    let finite: Vec<_> = pairs
        .iter()
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    let higher = finite.iter().filter(|(a, b)| b > a).count();
    let mut text = format!("n = {}, {variant} higher on {higher}", finite.len());
    if let Some(p) = p_value {
        text.push_str(&format!(", p = {} (Wilcoxon)", format_p(p)));
    }
    text
}

/// Renders the paired plot; also returns where its data range landed in pixels.
fn render_paired(
    metric: &str,
    baseline: &str,
    variant: &str,
    pairs: &[(f64, f64)],
    p_value: Option<f64>,
) -> Result<(Canvas, PairedFrame), String> {
    ensure_font();
    let points: Vec<(f64, f64)> = pairs
        .iter()
        .copied()
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    let (lo, hi) = axis_range(points.iter().flat_map(|&(a, b)| [a, b])).unwrap_or((0.0, 1.0));
    let (width, height) = PAIRED_SIZE;
    let mut canvas = Canvas::new(width, height);
    let frame;
    {
        let root =
            BitMapBackend::with_buffer(&mut canvas.pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(msg)?;
        let title = format!("{metric} per test image: {variant} vs {baseline}");
        let body = root.titled(&title, ("sans-serif", 20)).map_err(msg)?;
        let (body_w, body_h) = body.dim_in_pixel();
        let (plot, footer) = body.split_vertically(body_h.saturating_sub(30));
        footer
            .draw_text(
                &paired_caption(variant, pairs, p_value),
                &("sans-serif", 15).into_text_style(&footer),
                (10, 5),
            )
            .map_err(msg)?;
        // Square plot area: the label areas and margins take (x: 60 + 30, y: 45 + 20) pixels;
        // whatever width is left over goes to the right margin.
        let (_, plot_h) = plot.dim_in_pixel();
        let side = (plot_h as i32 - 65).min(body_w as i32 - 90);
        let right = 15 + (body_w as i32 - 90 - side).max(0);
        let mut chart = ChartBuilder::on(&plot)
            .margin(10)
            .margin_left(15)
            .margin_right(right)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, lo..hi)
            .map_err(msg)?;
        chart
            .configure_mesh()
            .x_desc(format!("{baseline} ({metric})"))
            .y_desc(format!("{variant} ({metric})"))
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(msg)?;
        chart
            .draw_series(LineSeries::new([(lo, lo), (hi, hi)], GREY.stroke_width(1)))
            .map_err(msg)?;
        let marker = colour(0);
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, PAIRED_RADIUS, marker.filled())),
            )
            .map_err(msg)?;
        frame = PairedFrame {
            lo,
            hi,
            origin: chart.backend_coord(&(lo, lo)),
            corner: chart.backend_coord(&(hi, hi)),
        };
        root.present().map_err(msg)?;
    }
    Ok((canvas, frame))
}

/// Size of the rate plot.
const RATE_SIZE: (u32, u32) = (800, 500);

/// Marker radius of the rate plot, in pixels.
const RATE_RADIUS: i32 = 5;

/// Draws the metric against the super-resolution rate (the paper's Fig. 4): the rate on a
/// log2 axis with a tick at each rate present ("×2", "×4", "×8"), one line with markers and
/// ±std error bars per series, and a legend.
pub fn rate_plot(path: &Path, metric: &str, series: &[RateSeries]) -> Result<(), FigureError> {
    render_and_save(path, || {
        render_rate(metric, series).map(|(canvas, _)| canvas)
    })
}

/// Sideways shift of series `i` of `n` (in log2 units), so that error bars at the same rate
/// do not hide each other.
fn dodge(i: usize, n: usize) -> f64 {
    (i as f64 - (n as f64 - 1.0) / 2.0) * 0.04
}

/// The finite points of `s`, sorted by rate (the order the line joins them in).
fn rate_points(s: &RateSeries) -> Vec<(f64, f64, f64)> {
    let mut points: Vec<_> = s
        .points
        .iter()
        .copied()
        .filter(|&(r, m, _)| r.is_finite() && r > 0.0 && m.is_finite())
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// Renders the rate plot; also returns, per series, the pixel of each drawn marker (in the
/// order of [`rate_points`]).
fn render_rate(metric: &str, series: &[RateSeries]) -> Result<(Canvas, Vec<Vec<Pixel>>), String> {
    ensure_font();
    let all: Vec<Vec<(f64, f64, f64)>> = series.iter().map(rate_points).collect();
    let mut ticks: Vec<f64> = all.iter().flatten().map(|p| p.0.log2()).collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    let (x_lo, x_hi) = match (ticks.first(), ticks.last()) {
        (Some(&a), Some(&b)) => {
            let pad = if b > a {
                0.25 * (b - a) / ticks.len() as f64 + 0.2
            } else {
                0.5
            };
            (a - pad, b + pad)
        }
        _ => (0.5, 3.5),
    };
    let spread = |&(_, m, s): &(f64, f64, f64)| {
        let s = if s.is_finite() { s.abs() } else { 0.0 };
        [m - s, m + s]
    };
    let (y_lo, y_hi) = axis_range(all.iter().flatten().flat_map(spread)).unwrap_or((0.0, 1.0));

    let (width, height) = RATE_SIZE;
    let mut canvas = Canvas::new(width, height);
    let mut pixels = Vec::with_capacity(series.len());
    {
        let root =
            BitMapBackend::with_buffer(&mut canvas.pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(msg)?;
        let label = |x: &f64| format_rate(2f64.powf(*x));
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("{metric} against the super-resolution rate"),
                ("sans-serif", 20),
            )
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(TickedAxis::new(x_lo..x_hi, ticks.clone()), y_lo..y_hi)
            .map_err(msg)?;
        chart
            .configure_mesh()
            .x_label_formatter(&label)
            .x_desc("upscale rate")
            .y_desc(metric)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(msg)?;
        for (i, (s, points)) in series.iter().zip(&all).enumerate() {
            let c = colour(i);
            let x_of = |r: f64| r.log2() + dodge(i, series.len());
            for &(r, m, sd) in points.iter().filter(|p| p.2.is_finite()) {
                let (x, sd) = (x_of(r), sd.abs());
                chart
                    .draw_series([
                        PathElement::new(vec![(x, m - sd), (x, m + sd)], c.stroke_width(1)),
                        PathElement::new(vec![(x - 0.04, m - sd), (x + 0.04, m - sd)], c),
                        PathElement::new(vec![(x - 0.04, m + sd), (x + 0.04, m + sd)], c),
                    ])
                    .map_err(msg)?;
            }
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|&(r, m, _)| (x_of(r), m)),
                    c.stroke_width(2),
                ))
                .map_err(msg)?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (20, 0)], c.stroke_width(2))
                        + Circle::new((10, 0), RATE_RADIUS - 1, c.filled())
                });
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|&(r, m, _)| Circle::new((x_of(r), m), RATE_RADIUS, c.filled())),
                )
                .map_err(msg)?;
            pixels.push(
                points
                    .iter()
                    .map(|&(r, m, _)| chart.backend_coord(&(x_of(r), m)))
                    .collect(),
            );
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .label_font(("sans-serif", 14))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(msg)?;
        }
        root.present().map_err(msg)?;
    }
    Ok((canvas, pixels))
}

/// Size of the box plot.
const BOX_SIZE: (u32, u32) = (800, 500);

/// Half the width of a box, in units of the distance between variants.
const BOX_HALF: f64 = 0.25;

/// Draws, per variant (on the x axis), the distribution of a metric over folds or images: a
/// box from Q1 to Q3 with the median ([`quartiles`]: linear interpolation, numpy's default),
/// Tukey whiskers (the most extreme values within 1.5 IQR of the box), and every value as a
/// point, spread sideways by a fixed jitter so that equal values stay visible.
pub fn box_plot(
    path: &Path,
    metric: &str,
    groups: &[(String, Vec<f64>)],
) -> Result<(), FigureError> {
    render_and_save(path, || {
        render_box(metric, groups).map(|(canvas, _)| canvas)
    })
}

/// Sideways offset of a group's `j`-th point, within ±0.6 of the box's half width: the
/// fractional parts of multiples of the golden ratio, so deterministic and evenly spread.
fn jitter(j: usize) -> f64 {
    let golden = 0.618_033_988_749_895;
    ((j as f64 * golden).fract() - 0.5) * 1.2 * BOX_HALF
}

/// Renders the box plot; also returns, per group, the pixel rectangle of its box
/// `(left, top, right, bottom)` (`None` for a group without finite values).
fn render_box(
    metric: &str,
    groups: &[(String, Vec<f64>)],
) -> Result<(Canvas, Vec<Option<PixelRect>>), String> {
    ensure_font();
    let n = groups.len().max(1);
    let (y_lo, y_hi) =
        axis_range(groups.iter().flat_map(|(_, v)| v.iter().copied())).unwrap_or((0.0, 1.0));
    let keys: Vec<f64> = (0..groups.len()).map(|i| i as f64).collect();
    let (width, height) = BOX_SIZE;
    let mut canvas = Canvas::new(width, height);
    let mut boxes = Vec::with_capacity(groups.len());
    {
        let root =
            BitMapBackend::with_buffer(&mut canvas.pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(msg)?;
        let label = |x: &f64| {
            let i = x.round();
            if i >= 0.0 && (x - i).abs() < 1e-9 {
                groups
                    .get(i as usize)
                    .map(|g| g.0.clone())
                    .unwrap_or_default()
            } else {
                String::new()
            }
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{metric} per variant"), ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(TickedAxis::new(-0.5..n as f64 - 0.5, keys), y_lo..y_hi)
            .map_err(msg)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&label)
            .y_desc(metric)
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 15))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(msg)?;
        for (i, (_, values)) in groups.iter().enumerate() {
            let Some(st) = box_stats(values) else {
                boxes.push(None);
                continue;
            };
            let (x, c) = (i as f64, colour(i));
            let (left, right) = (x - BOX_HALF, x + BOX_HALF);
            let cap = BOX_HALF / 2.0;
            chart
                .draw_series([
                    Rectangle::new([(left, st.q1), (right, st.q3)], lighten(c, 0.6).filled()),
                    Rectangle::new([(left, st.q1), (right, st.q3)], c.stroke_width(2)),
                ])
                .map_err(msg)?;
            chart
                .draw_series([
                    PathElement::new(vec![(x, st.q3), (x, st.high)], c.stroke_width(2)),
                    PathElement::new(vec![(x, st.q1), (x, st.low)], c.stroke_width(2)),
                    PathElement::new(
                        vec![(x - cap, st.high), (x + cap, st.high)],
                        c.stroke_width(2),
                    ),
                    PathElement::new(
                        vec![(x - cap, st.low), (x + cap, st.low)],
                        c.stroke_width(2),
                    ),
                    PathElement::new(
                        vec![(left, st.median), (right, st.median)],
                        BLACK.stroke_width(2),
                    ),
                ])
                .map_err(msg)?;
            let dark = RGBColor(c.0 / 2, c.1 / 2, c.2 / 2);
            chart
                .draw_series(
                    values
                        .iter()
                        .filter(|v| v.is_finite())
                        .enumerate()
                        .map(|(j, &v)| Circle::new((x + jitter(j), v), 3, dark.filled())),
                )
                .map_err(msg)?;
            let (l, t) = chart.backend_coord(&(left, st.q3));
            let (r, b) = chart.backend_coord(&(right, st.q1));
            boxes.push(Some((l, t, r, b)));
        }
        root.present().map_err(msg)?;
    }
    Ok((canvas, boxes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// The RGB value of pixel (x, y).
    fn pixel(c: &Canvas, x: i32, y: i32) -> RGBColor {
        let i = ((y as u32 * c.width + x as u32) * 3) as usize;
        RGBColor(c.pixels[i], c.pixels[i + 1], c.pixels[i + 2])
    }

    /// Every pixel (x, y) whose colour is exactly `want`.
    fn pixels_of(c: &Canvas, want: RGBColor) -> Vec<(i32, i32)> {
        let mut out = Vec::new();
        for y in 0..c.height as i32 {
            for x in 0..c.width as i32 {
                if pixel(c, x, y) == want {
                    out.push((x, y));
                }
            }
        }
        out
    }

    /// Decodes the PNG at `path`, checks its size and that it is not blank (many colours).
    /// Temporary files of an atomic write left in `dir` (there must be none).
    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    fn check_png(path: &Path, size: (u32, u32)) {
        let image = image::open(path).unwrap().to_rgb8();
        assert_eq!(image.dimensions(), size);
        let colours: HashSet<[u8; 3]> = image.pixels().map(|p| p.0).collect();
        assert!(colours.len() > 10, "{} colours only", colours.len());
        let left = leftovers(path.parent().unwrap());
        assert!(left.is_empty(), "temporary files left behind: {left:?}");
    }

    #[test]
    fn axis_range_pads_and_clamps() {
        let (a, b) = axis_range([0.2, f64::NAN, 0.6]).unwrap();
        assert!(close(a, 0.18) && close(b, 0.62), "{a} {b}");
        assert_eq!(axis_range([0.0, 1.0]), Some((0.0, 1.0)));
        let (a, b) = axis_range([2.0, 4.0]).unwrap();
        assert!(close(a, 1.9) && close(b, 4.1), "{a} {b}");
        let (a, b) = axis_range([3.0, 3.0]).unwrap();
        assert!(close(a, 2.95) && close(b, 3.05), "{a} {b}");
        assert_eq!(axis_range([1.0]), Some((0.95, 1.0)));
        assert_eq!(axis_range([f64::NAN, f64::INFINITY]), None);
    }

    #[test]
    fn quartiles_interpolate_linearly() {
        // Positions 7·0.25 = 1.75, 3.5 and 5.25 between 0-based ranks.
        let eight = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        assert_eq!(quartiles(&eight), Some((2.75, 4.5, 6.25)));
        assert_eq!(quartiles(&[1.0, 2.0, 3.0, 4.0, 5.0]), Some((2.0, 3.0, 4.0)));
        assert_eq!(quartiles(&[7.0]), Some((7.0, 7.0, 7.0)));
        assert_eq!(quartiles(&[]), None);
    }

    #[test]
    fn box_stats_use_tukey_whiskers() {
        // Q1 = 3, median = 5, Q3 = 7, IQR = 4: fences -3 and 13 leave 100 out.
        let values = [100.0, 1.0, 2.0, 3.0, f64::NAN, 4.0, 5.0, 6.0, 7.0, 8.0];
        let st = box_stats(&values).unwrap();
        assert_eq!(
            st,
            BoxStats {
                q1: 3.0,
                median: 5.0,
                q3: 7.0,
                low: 1.0,
                high: 8.0
            }
        );
        assert_eq!(box_stats(&[f64::NAN]), None);
    }

    #[test]
    fn labels_format() {
        assert_eq!(format_p(0.0012), "0.0012");
        assert_eq!(format_p(0.5), "0.500");
        assert_eq!(format_p(1.2e-5), "1.2e-5");
        assert_eq!(format_rate(2.0), "×2");
        assert_eq!(format_rate(1.5), "×1.50");
        let pairs = [(0.5, 0.6), (0.7, 0.6), (0.4, 0.4), (f64::NAN, 0.9)];
        assert_eq!(
            paired_caption("ds2f", &pairs, Some(0.0012)),
            "n = 3, ds2f higher on 1, p = 0.0012 (Wilcoxon)"
        );
        assert_eq!(paired_caption("ds2f", &[], None), "n = 0, ds2f higher on 0");
    }

    /// Points `offset` above (positive) or below the diagonal, spread over [0.3, 0.7].
    fn offset_pairs(offset: f64) -> Vec<(f64, f64)> {
        (0..20)
            .map(|i| {
                let x = 0.3 + 0.02 * i as f64;
                (x, x + offset)
            })
            .collect()
    }

    /// Checks that the marker colour lies only on the side of the diagonal where the data is,
    /// and that it covers each point's pixel.
    fn check_side(offset: f64) {
        let pairs = offset_pairs(offset);
        let (canvas, f) = render_paired("Dice", "unet", "ds2f", &pairs, None).unwrap();
        let mut all = pairs.iter().flat_map(|&(x, y)| [x, y]);
        assert!(all.all(|v| f.lo < v && v < f.hi), "{f:?}");
        let to_px = |v: f64, axis: usize| {
            let (a, b) = if axis == 0 {
                (f.origin.0, f.corner.0)
            } else {
                (f.origin.1, f.corner.1)
            };
            a as f64 + (v - f.lo) / (f.hi - f.lo) * (b - a) as f64
        };
        for &(x, y) in &pairs {
            let p = (to_px(x, 0).round() as i32, to_px(y, 1).round() as i32);
            assert_eq!(pixel(&canvas, p.0, p.1), colour(0), "no marker at {p:?}");
        }
        let marked = pixels_of(&canvas, colour(0));
        assert!(
            marked.len() > pairs.len() * 10,
            "{} marker pixels",
            marked.len()
        );
        for (px, py) in marked {
            // The diagonal's pixel row at column px (screen y grows downwards).
            let t = (px - f.origin.0) as f64 / (f.corner.0 - f.origin.0) as f64;
            let line_y = f.origin.1 as f64 + t * (f.corner.1 - f.origin.1) as f64;
            let above = (py as f64) < line_y;
            assert_eq!(
                above,
                offset > 0.0,
                "marker pixel ({px}, {py}), diagonal at {line_y}"
            );
        }
    }

    #[test]
    fn paired_markers_stay_on_their_side_of_the_diagonal() {
        check_side(0.15);
        check_side(-0.15);
    }

    #[test]
    fn rate_markers_land_on_a_log2_axis() {
        let series = [
            RateSeries {
                name: "ds2f".into(),
                points: vec![(8.0, 0.62, 0.04), (2.0, 0.85, 0.02), (4.0, 0.78, 0.03)],
            },
            RateSeries {
                name: "unet_inter".into(),
                points: vec![(2.0, 0.80, 0.03), (4.0, 0.66, f64::NAN), (8.0, 0.45, 0.05)],
            },
        ];
        let (canvas, pixels) = render_rate("Dice", &series).unwrap();
        assert_eq!(pixels.len(), 2);
        for (i, points) in pixels.iter().enumerate() {
            assert_eq!(points.len(), 3);
            for &(x, y) in points {
                assert_eq!(pixel(&canvas, x, y), colour(i), "series {i} at ({x}, {y})");
            }
            // Sorted by rate; ×4 halfway between ×2 and ×8 on the log axis.
            let (x2, x4, x8) = (points[0].0, points[1].0, points[2].0);
            assert!(x2 < x4 && x4 < x8);
            assert!((2 * x4 - x2 - x8).abs() <= 1, "{x2} {x4} {x8}");
        }
        // Higher Dice is higher on screen.
        assert!(pixels[0][0].1 < pixels[0][2].1);
    }

    #[test]
    fn box_fill_stays_within_its_quartiles() {
        let groups = vec![
            ("ds2f".to_string(), vec![0.81, 0.84, 0.86, 0.88, 0.83]),
            ("unet_inter".to_string(), vec![0.70, 0.75, 0.72, 0.78, 0.40]),
            ("empty".to_string(), vec![f64::NAN]),
        ];
        let (canvas, boxes) = render_box("Dice", &groups).unwrap();
        assert_eq!(boxes[2], None);
        for (i, rect) in boxes.iter().take(2).enumerate() {
            let (l, t, r, b) = rect.unwrap();
            assert!(l < r && t < b, "{rect:?}");
            let fill = pixels_of(&canvas, lighten(colour(i), 0.6));
            assert!(fill.len() > 100, "{} fill pixels", fill.len());
            for (x, y) in fill {
                assert!(
                    (l..=r).contains(&x) && (t..=b).contains(&y),
                    "({x}, {y}) outside {rect:?}"
                );
            }
        }
        // The better variant's box is higher up.
        assert!(boxes[0].unwrap().3 < boxes[1].unwrap().1);
    }

    #[test]
    fn figures_are_written_as_pngs() {
        let dir = tempfile::tempdir().unwrap();
        let paired = dir.path().join("paired.png");
        let pairs: Vec<(f64, f64)> = (0..45)
            .map(|i| {
                let b = 0.55 + 0.008 * i as f64;
                (b, b + 0.05 * ((i % 7) as f64 - 1.5) / 3.0)
            })
            .chain([(f64::NAN, 0.5)])
            .collect();
        paired_plot(&paired, "Dice", "unet_inter", "ds2f", &pairs, Some(0.0012)).unwrap();
        check_png(&paired, PAIRED_SIZE);

        let rate = dir.path().join("rate.png");
        let series: Vec<RateSeries> = ["ds2f", "unet_inter", "unet_lr"]
            .iter()
            .enumerate()
            .map(|(i, name)| RateSeries {
                name: name.to_string(),
                points: [2.0, 4.0, 8.0]
                    .iter()
                    .map(|&r: &f64| {
                        (
                            r,
                            0.9 - 0.05 * i as f64 - 0.07 * r.log2(),
                            0.02 + 0.01 * r.log2(),
                        )
                    })
                    .collect(),
            })
            .collect();
        rate_plot(&rate, "Dice", &series).unwrap();
        check_png(&rate, RATE_SIZE);

        let boxes = dir.path().join("box.png");
        let groups: Vec<(String, Vec<f64>)> = ["ds2f", "unet_inter", "unet_lr", "bicubic"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let values = (0..10)
                    .map(|j| 0.85 - 0.06 * i as f64 + 0.01 * ((j * 7 % 10) as f64 - 4.5))
                    .collect();
                (name.to_string(), values)
            })
            .collect();
        box_plot(&boxes, "Dice", &groups).unwrap();
        check_png(&boxes, BOX_SIZE);

        // To look at the figures: DS2F_FIGURE_SAMPLES=<folder> keeps a copy of each.
        if let Ok(keep) = std::env::var("DS2F_FIGURE_SAMPLES") {
            std::fs::create_dir_all(&keep).unwrap();
            for name in ["paired.png", "rate.png", "box.png"] {
                std::fs::copy(dir.path().join(name), Path::new(&keep).join(name)).unwrap();
            }
        }
    }

    #[test]
    fn empty_inputs_still_draw() {
        let dir = tempfile::tempdir().unwrap();
        paired_plot(&dir.path().join("p.png"), "Dice", "a", "b", &[], None).unwrap();
        rate_plot(&dir.path().join("r.png"), "Dice", &[]).unwrap();
        box_plot(&dir.path().join("b.png"), "Dice", &[]).unwrap();
        for name in ["p.png", "r.png", "b.png"] {
            assert!(dir.path().join(name).exists());
        }
    }

    #[test]
    fn unwritable_path_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("fig.png");
        let err = box_plot(&path, "Dice", &[("a".into(), vec![0.5, 0.6])]).unwrap_err();
        assert!(matches!(err, FigureError::Write { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(leftovers(path.parent().unwrap()).is_empty() && !path.exists());
    }
}
