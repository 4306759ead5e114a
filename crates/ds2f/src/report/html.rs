//! `report.html`: one self-contained page per evaluation (no network, no external script or
//! style sheet): the metrics tables, a sortable per-image table (a few lines of inline JS),
//! overlay thumbnails worst first that open full size, zoomed crops of each image's worst
//! errors, the figures, the config, ds2f's version and the date. Images are files beside the
//! page, referenced by relative paths.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ds2f_metrics::{ImageResult, MeanStd, Metric, Summary};

use crate::infer::EvalReport;
use crate::report::overlay::Palette;

/// One image of the gallery; paths relative to the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageCard {
    /// Image name.
    pub name: String,
    /// The overlay thumbnail.
    pub thumbnail: String,
    /// The full-size overlay the thumbnail opens.
    pub full: String,
    /// A zoomed crop of the image's worst errors.
    pub crop: Option<String>,
}

/// Everything on the page.
#[derive(Debug, Clone)]
pub struct HtmlReport<'a> {
    /// Page title, e.g. `hrf f0 — test`.
    pub title: String,
    /// What was evaluated, e.g. `run runs/hrf/f0, checkpoint best` (shown as is).
    pub source: String,
    /// The metrics.
    pub report: &'a EvalReport,
    /// The gallery, in any order (shown worst first).
    pub images: Vec<ImageCard>,
    /// Figures `(caption, path relative to the page)`.
    pub figures: Vec<(String, String)>,
    /// The config (TOML), shown verbatim.
    pub config: Option<String>,
    /// The overlay colours, for the legend.
    pub palette: Palette,
}

/// `&`, `<`, `>`, `"` and `'` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A relative path as a URL path (each segment percent-encoded where needed).
pub fn url(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time (the date from
/// [`crate::export::card::date_of_unix_day`]).
pub fn utc_date(unix_seconds: u64) -> String {
    let date = crate::export::card::date_of_unix_day((unix_seconds / 86_400) as i64);
    let secs = unix_seconds % 86_400;
    format!("{date} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.4}")
    }
}

fn mean_std(m: MeanStd) -> String {
    if m.mean.is_nan() {
        "–".into()
    } else if m.std.is_nan() {
        format!("{:.4}", m.mean)
    } else {
        format!("{:.4} ± {:.4}", m.mean, m.std)
    }
}

const METRICS: [(Metric, &str); 8] = [
    (Metric::Dice, "Dice"),
    (Metric::Iou, "IoU"),
    (Metric::Mcc, "MCC"),
    (Metric::Bm, "BM"),
    (Metric::Recall, "Sensitivity"),
    (Metric::Specificity, "Specificity"),
    (Metric::Accuracy, "Accuracy"),
    (Metric::Precision, "Precision"),
];

/// The regions of a report: `(title, summary)`.
fn regions(report: &EvalReport) -> Vec<(&'static str, &Summary)> {
    let mut out = vec![("whole image (paper protocol)", &report.whole_image)];
    if let Some(fov) = &report.inside_fov {
        out.push(("inside the FOV", fov));
    }
    out
}

fn per_image_auc(s: &Summary, get: fn(&ImageResult) -> f64) -> MeanStd {
    MeanStd::from_values(&s.images.iter().map(get).collect::<Vec<_>>())
}

/// The headline table: one row per metric, pooled and per image for each region.
fn metrics_table(out: &mut String, report: &EvalReport) {
    let regions = regions(report);
    out.push_str("<table class=\"metrics\"><thead><tr><th>metric</th>");
    for (title, _) in &regions {
        let _ = write!(
            out,
            "<th>{} pooled</th><th>{} per image (mean ± std)</th>",
            escape(title),
            escape(title)
        );
    }
    out.push_str("</tr></thead><tbody>\n");
    for (metric, name) in METRICS {
        let _ = write!(out, "<tr><td>{name}</td>");
        for (_, s) in &regions {
            let per = s.per_image_reported().get(metric);
            let _ = write!(
                out,
                "<td>{}</td><td>{}</td>",
                num(s.reported.get(metric)),
                mean_std(per)
            );
        }
        out.push_str("</tr>\n");
    }
    type Auc = (
        &'static str,
        fn(&Summary) -> f64,
        Option<fn(&ImageResult) -> f64>,
    );
    let aucs: [Auc; 3] = [
        ("PR-AUC (AP)", |s| s.reported_average_precision, None),
        (
            "PR-AUC (trapezoid)",
            |s| s.reported_pr_auc,
            Some(|i| i.pr_auc),
        ),
        ("ROC-AUC", |s| s.reported_roc_auc, Some(|i| i.roc_auc)),
    ];
    for (name, pooled, per) in aucs {
        let _ = write!(out, "<tr><td>{name}</td>");
        for (_, s) in &regions {
            let per = per.map_or_else(|| "–".into(), |f| mean_std(per_image_auc(s, f)));
            let _ = write!(out, "<td>{}</td><td>{per}</td>", num(pooled(s)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

/// Per-class rows of a multi-class summary.
fn class_table(out: &mut String, s: &Summary) {
    out.push_str(
        "<table class=\"metrics\"><thead><tr><th>class</th><th>pixels</th><th>IoU</th>\
         <th>Dice</th><th>PR-AUC</th><th>ROC-AUC</th><th>averaged</th></tr></thead><tbody>\n",
    );
    for row in s.class_rows() {
        let pr = row.pr_auc.map_or(f64::NAN, |p| p.trapezoid);
        let roc = row.pr_auc.map_or(f64::NAN, |p| p.roc_auc);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&s.class_name(row.class)),
            row.counts.tp + row.counts.fn_,
            num(row.pooled.iou),
            num(row.pooled.dice),
            num(pr),
            num(roc),
            if row.averaged { "yes" } else { "no" }
        );
    }
    out.push_str("</tbody></table>\n");
}

/// The sortable per-image table of the FOV region (else the whole image).
fn image_table(out: &mut String, report: &EvalReport) {
    let (title, s) = *regions(report)
        .last()
        .expect("the whole image is always there");
    let _ = writeln!(
        out,
        "<p>Region: {}. Click a column to sort.</p>",
        escape(title)
    );
    out.push_str(
        "<table id=\"per-image\" class=\"sortable\"><thead><tr><th data-type=\"text\">image</th>",
    );
    for (_, name) in METRICS {
        let _ = write!(out, "<th>{name}</th>");
    }
    out.push_str("<th>PR-AUC</th><th>ROC-AUC</th></tr></thead><tbody>\n");
    for image in &s.images {
        let scores = s.image_reported(image);
        let _ = write!(
            out,
            "<tr><td><a href=\"#img-{}\">{}</a></td>",
            escape(&url(&image.name)),
            escape(&image.name)
        );
        let values = METRICS
            .iter()
            .map(|(m, _)| scores.get(*m))
            .chain([image.pr_auc, image.roc_auc]);
        for v in values {
            let key = if v.is_nan() {
                "-1".into()
            } else {
                format!("{v}")
            };
            let _ = write!(out, "<td data-v=\"{key}\">{}</td>", num(v));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1500px;\
padding:0 1em;color:#222}h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em;\
text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}\
table.sortable th{cursor:pointer}table.sortable th:after{content:' \\2195';color:#999}\
.gallery{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;padding:6px;\
width:min(100%,600px)}.card img{max-width:100%;vertical-align:top}.pair{display:flex;gap:6px}\
.pair a:first-child{flex:2}.pair a:last-child{flex:1}.legend span{display:inline-block;\
width:1em;height:1em;margin:0 .3em 0 1em;vertical-align:middle;border:1px solid #888}\
pre{background:#f6f6f6;padding:1em;overflow:auto;max-height:30em}figure{margin:1em 0}\
figure img{max-width:100%}.meta{color:#555}";

/// Sorts `#per-image` by the clicked column (numbers by `data-v`), toggling the direction.
const SCRIPT: &str = "document.querySelectorAll('table.sortable th').forEach(function(th,col){\
th.addEventListener('click',function(){var tb=th.closest('table').tBodies[0];\
var rows=Array.from(tb.rows);var up=th.dataset.dir!=='asc';th.dataset.dir=up?'asc':'desc';\
var text=th.dataset.type==='text';rows.sort(function(a,b){var x=a.cells[col],y=b.cells[col];\
var c=text?x.textContent.localeCompare(y.textContent):parseFloat(x.dataset.v)-parseFloat(y.dataset.v);\
return up?c:-c;});rows.forEach(function(r){tb.appendChild(r);});});});";

/// The page's HTML.
pub fn render(page: &HtmlReport<'_>, date: &str) -> String {
    let mut out = String::new();
    let title = escape(&page.title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title}</title><style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n\
         <p class=\"meta\">{} · {} image(s) · ds2f {} · {}</p>\n",
        escape(&page.source),
        page.report.whole_image.num_images,
        env!("CARGO_PKG_VERSION"),
        escape(date)
    );
    out.push_str("<h2>Metrics</h2>\n");
    let s = &page.report.whole_image;
    let _ = writeln!(
        out,
        "<p>At the original resolution; pooled = one confusion matrix (and one curve) over all \
         pixels of all images, the paper's numbers; per image = each image's own score, then \
         mean ± sample std. {}</p>",
        if s.num_classes > 2 {
            "Multi-class: the mean over the averaged classes."
        } else {
            "Foreground = class 1."
        }
    );
    metrics_table(&mut out, page.report);
    if s.num_classes > 2 {
        for (title, summary) in regions(page.report) {
            let _ = writeln!(out, "<h3>Classes, {}</h3>", escape(title));
            class_table(&mut out, summary);
        }
    }
    out.push_str("<p><a href=\"summary.json\">summary.json</a> · <a href=\"per_image.csv\">per_image.csv</a></p>\n");
    if !page.figures.is_empty() {
        out.push_str("<h2>Figures</h2>\n");
        for (caption, path) in &page.figures {
            let _ = writeln!(
                out,
                "<figure><a href=\"{0}\"><img src=\"{0}\" alt=\"{1}\"></a><figcaption>{1}</figcaption></figure>",
                escape(&url(path)),
                escape(caption)
            );
        }
    }
    out.push_str("<h2>Per image</h2>\n");
    image_table(&mut out, page.report);
    if !page.images.is_empty() {
        out.push_str("<h2>Overlays, worst first</h2>\n<p class=\"legend\">");
        if s.num_classes == 2 {
            for (colour, meaning) in page.palette.legend() {
                let [r, g, b] = colour.0;
                let _ = write!(
                    out,
                    "<span style=\"background:rgb({r},{g},{b})\"></span>{meaning}"
                );
            }
        } else {
            out.push_str("Each predicted class in its colour (legend under each overlay).");
        }
        out.push_str(
            "</p>\n<p>Left: the whole image (click for full size); right: the window with the \
             most errors, enlarged.</p>\n<div class=\"gallery\">\n",
        );
        // Worst first by the page's per-image region score.
        let (_, region) = *regions(page.report).last().expect("whole image");
        let dice = |name: &str| {
            region
                .images
                .iter()
                .find(|i| i.name == name)
                .map_or(f64::NAN, |i| region.image_reported(i).dice)
        };
        let mut cards: Vec<&ImageCard> = page.images.iter().collect();
        cards.sort_by(|a, b| {
            let key = |v: f64| if v.is_nan() { f64::INFINITY } else { v };
            key(dice(&a.name)).total_cmp(&key(dice(&b.name)))
        });
        for card in cards {
            let name = escape(&card.name);
            let _ = write!(
                out,
                "<div class=\"card\" id=\"img-{}\"><b>{name}</b> Dice {}<div class=\"pair\">\
                 <a href=\"{}\"><img src=\"{}\" alt=\"{name} overlay\"></a>",
                escape(&url(&card.name)),
                num(dice(&card.name)),
                escape(&url(&card.full)),
                escape(&url(&card.thumbnail))
            );
            if let Some(crop) = &card.crop {
                let _ = write!(
                    out,
                    "<a href=\"{0}\"><img src=\"{0}\" alt=\"{name} worst errors\"></a>",
                    escape(&url(crop))
                );
            }
            out.push_str("</div></div>\n");
        }
        out.push_str("</div>\n");
    }
    if let Some(config) = &page.config {
        let _ = writeln!(out, "<h2>Config</h2>\n<pre>{}</pre>", escape(config));
    }
    let _ = writeln!(out, "<script>{SCRIPT}</script>\n</body></html>");
    out
}

/// Writes `dir/report.html` atomically (dated now); returns its path.
pub fn write(dir: &Path, page: &HtmlReport<'_>) -> Result<PathBuf, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let html = render(page, &utc_date(now));
    let path = dir.join("report.html");
    ds2f_data::io::write_atomic(&path, html.as_bytes()).map_err(|e| e.to_string())?;
    Ok(path)
}

/// Every `src="…"` and `href="…"` of a page that is a relative file (not `#…`, not a URL with
/// a scheme), percent-decoded: what a check of the page's images and links reads.
pub fn local_references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let Some(end) = rest.find('"') else { break };
            let value = &rest[..end];
            if !value.starts_with('#') && !value.contains("://") && !value.starts_with("data:") {
                out.push(percent_decode(&value.replace("&amp;", "&")));
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ds2f_metrics::Evaluation;

    #[test]
    fn dates_escapes_and_urls() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        // 2024-02-29 12:34 UTC (a leap day): `date -u -d @1709210040`.
        assert_eq!(utc_date(1_709_210_040), "2024-02-29 12:34 UTC");
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
        assert_eq!(url("images/a b#1.png"), "images/a%20b%231.png");
        assert_eq!(percent_decode("images/a%20b%231.png"), "images/a b#1.png");
    }

    #[test]
    fn page_has_tables_links_and_script() {
        let mut eval = Evaluation::new(2);
        eval.add_image(
            "a<1>",
            &[1, 1, 0, 0],
            &[1, 0, 0, 0],
            Some(&[0.9, 0.4, 0.2, 0.1]),
            None,
        )
        .unwrap();
        eval.add_image("b", &[1, 0], &[1, 0], Some(&[0.8, 0.3]), None)
            .unwrap();
        let report = EvalReport {
            whole_image: eval.summary(),
            inside_fov: None,
        };
        let page = HtmlReport {
            title: "t".into(),
            source: "predictions x".into(),
            report: &report,
            images: vec![ImageCard {
                name: "a<1>".into(),
                thumbnail: "images/a<1>_thumb.jpg".into(),
                full: "images/a<1>_overlay.jpg".into(),
                crop: Some("images/a<1>_crop.png".into()),
            }],
            figures: vec![("evaluation".into(), "evaluation.png".into())],
            config: Some("[model]\nbase = 4 # <b>".into()),
            palette: Palette::OkabeIto,
        };
        let html = render(&page, "2026-01-01 00:00 UTC");
        assert!(html.contains("<td>ROC-AUC</td><td>1.0000</td>"), "{html}");
        assert!(html.contains("a&lt;1&gt;") && !html.contains("a<1>"));
        assert!(html.contains("base = 4 # &lt;b&gt;"));
        assert!(html.contains("rgb(86,180,233)"));
        assert!(html.contains(&format!("ds2f {}", env!("CARGO_PKG_VERSION"))));
        let refs = local_references(&html);
        assert_eq!(
            refs,
            [
                "evaluation.png",
                "images/a<1>_thumb.jpg",
                "images/a<1>_crop.png",
                "summary.json",
                "per_image.csv",
                "evaluation.png",
                "images/a<1>_overlay.jpg",
                "images/a<1>_crop.png",
            ]
        );
    }
}
