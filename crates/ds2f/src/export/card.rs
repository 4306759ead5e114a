//! What travels with exported weights: the metadata of the `.safetensors` file and the model
//! card (`README.md` beside it: data, config, metrics, date, ds2f version).
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::config::ExperimentConfig;
use crate::model::deeplab::ResNetDepth;
use crate::model::{Backbone, HeadResize, ModelConfig};

/// Metadata keys of an exported file (besides `format = "pt"`, which tells Hugging Face tools
/// the names are PyTorch's).
pub mod keys {
    /// ds2f's version (`CARGO_PKG_VERSION`).
    pub const VERSION: &str = "ds2f.version";
    /// The UTC date of the export (`YYYY-MM-DD`).
    pub const DATE: &str = "ds2f.date";
    /// The `[model]` table as TOML (how to rebuild the network).
    pub const MODEL_CONFIG: &str = "ds2f.model_config";
    /// The run's whole resolved config as TOML.
    pub const CONFIG: &str = "ds2f.config";
    /// The run's test evaluation (`evaluation/test/summary.json`), as JSON, if there is one.
    pub const TEST_METRICS: &str = "ds2f.test_metrics";
    /// Which checkpoint was exported (`best` or `last`) and its epoch.
    pub const CHECKPOINT: &str = "ds2f.checkpoint";
    /// The inference graph in one line (`encoder + decoder + seg_head + bilinear ×r + softmax`).
    pub const GRAPH: &str = "ds2f.graph";
}

/// What an export records about the run it came from.
#[derive(Debug, Clone)]
pub struct ExportInfo {
    /// The run's resolved config.
    pub config: ExperimentConfig,
    /// `best` or `last`.
    pub checkpoint: String,
    /// Epochs completed when the checkpoint was written (0 when unknown).
    pub epoch: usize,
    /// `evaluation/test/summary.json` of the run, if present.
    pub test_summary: Option<serde_json::Value>,
    /// The export date, `YYYY-MM-DD` (UTC).
    pub date: String,
}

impl ExportInfo {
    /// The `.safetensors` metadata (see [`keys`]).
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("format".into(), "pt".into());
        m.insert(keys::VERSION.into(), env!("CARGO_PKG_VERSION").into());
        m.insert(keys::DATE.into(), self.date.clone());
        m.insert(keys::MODEL_CONFIG.into(), self.model_toml());
        m.insert(keys::CONFIG.into(), self.config.to_toml());
        m.insert(
            keys::CHECKPOINT.into(),
            format!("{} (epoch {})", self.checkpoint, self.epoch),
        );
        m.insert(keys::GRAPH.into(), graph_line(&self.config));
        if let Some(summary) = &self.test_summary {
            m.insert(keys::TEST_METRICS.into(), summary.to_string());
        }
        m
    }

    /// The `[model]` table alone, as TOML.
    pub fn model_toml(&self) -> String {
        let mut table = toml::Table::new();
        table.insert(
            "model".into(),
            toml::Value::try_from(&self.config.model).expect("the model config serialises"),
        );
        toml::to_string(&table).expect("a TOML table serialises")
    }
}

/// The inference graph in words.
fn graph_line(config: &ExperimentConfig) -> String {
    let m = &config.model;
    format!(
        "{:?} encoder + decoder + 1x1 seg head + bilinear x{} (input [n, {}, h, w] in [-1, 1], \
         output [n, {}, {}h, {}w] logits; softmax over dim 1 gives the probabilities)",
        m.backbone,
        m.effective_upscale(),
        m.in_channels,
        m.num_classes,
        m.effective_upscale(),
        m.effective_upscale()
    )
}

/// The backbone's own keys in words (`, base width 16`, `, output stride 8`, `, scale 2`).
fn backbone_settings(m: &ModelConfig) -> String {
    match m.backbone {
        Backbone::Unet => format!(", base width {}", m.base),
        Backbone::Deeplabv3plusResnet50 | Backbone::Deeplabv3plusResnet101 => {
            format!(", output stride {}", usize::from(m.output_stride))
        }
        Backbone::Espnetv2 => format!(", width multiplier {}", m.espnet_scale),
    }
}

/// How the seg head's logits reach HR, in words.
fn head_steps(resize: HeadResize, r: usize) -> String {
    match resize {
        HeadResize::AlignCorners => format!("bilinear ×{r} (align_corners = true)"),
        HeadResize::TwoStep => {
            format!("bilinear to the LR size, then ×{r} (align_corners = false)")
        }
        HeadResize::AlignCornersTwoStep => {
            format!("bilinear to the LR size, then ×{r} (align_corners = true)")
        }
    }
}

/// The PyTorch module of `bench/` that takes the exported state dict, as a call.
fn pytorch_module(m: &ModelConfig) -> String {
    let (cin, c, r) = (m.in_channels, m.num_classes, m.effective_upscale());
    match (m.backbone, m.backbone.resnet_depth()) {
        (Backbone::Unet, _) => format!(
            "`bench/unet.py`'s `UNetInter({cin}, {c}, base={}, r={r})`",
            m.base
        ),
        (Backbone::Espnetv2, _) => format!(
            "`bench/espnet.py`'s `EspNetV2Seg({cin}, {c}, scale={}, r={r})`",
            m.espnet_scale
        ),
        (_, depth) => format!(
            "`bench/deeplab.py`'s `DeepLabV3Plus({cin}, {c}, depth={}, output_stride={}, r={r})`",
            if depth == Some(ResNetDepth::R50) {
                50
            } else {
                101
            },
            usize::from(m.output_stride)
        ),
    }
}

/// The model card: a Markdown `README.md` for the exported file `file_name`.
pub fn model_card(info: &ExportInfo, file_name: &str) -> String {
    let c = &info.config;
    let m = &c.model;
    let r = m.effective_upscale();
    let mut s = String::new();
    let _ = writeln!(s, "# {file_name}: ds2f {:?} model\n", m.framework);
    let _ = writeln!(
        s,
        "Exported by ds2f {} on {} from the `{}` checkpoint (epoch {}) of run `{}`.\n",
        env!("CARGO_PKG_VERSION"),
        info.date,
        info.checkpoint,
        info.epoch,
        c.run.dir.join(&c.run.name).display()
    );
    let _ = writeln!(s, "## Model\n");
    let _ = writeln!(
        s,
        "- framework `{:?}`, backbone `{:?}`{}, {} classes, {} input channels",
        m.framework,
        m.backbone,
        backbone_settings(m),
        m.num_classes,
        m.in_channels
    );
    let _ = writeln!(
        s,
        "- inference graph: encoder + seg decoder + 1×1 seg head, then {} to HR (the SR \
         stream and shared-feature module are training-only and not in the file)",
        head_steps(m.head_resize(), r)
    );
    let _ = writeln!(
        s,
        "- input: `[n, {}, h, w]`, RGB scaled to [−1, 1] (`(x / 255 − 0.5) / 0.5`) after an \
         OpenCV-exact bicubic resize to the LR size {:?} (h × w); output: `[n, {}, {r}h, {r}w]` \
         logits, softmax over dim 1",
        m.in_channels, c.data.lr_size, m.num_classes
    );
    let _ = writeln!(
        s,
        "- weights: PyTorch `state_dict` names; {} loads them with \
         `load_state_dict(strict=True)` (`bench/export_check.py`)\n",
        pytorch_module(m)
    );
    let _ = writeln!(s, "## Data\n");
    let _ = writeln!(
        s,
        "- root `{}` (layout `{}`)",
        c.data.root.display(),
        c.data.layout
    );
    if !c.data.test_include.is_empty() {
        let _ = writeln!(
            s,
            "- test images ({}): {}",
            c.data.test_include.len(),
            c.data.test_include.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "- trained {} epochs, seed {}\n",
        c.train.epochs, c.train.seed
    );
    let _ = writeln!(s, "## Test metrics\n");
    match &info.test_summary {
        Some(summary) => s.push_str(&metrics_table(summary)),
        None => s.push_str("No `evaluation/test/summary.json` in the run: not evaluated.\n"),
    }
    let _ = writeln!(s, "\n## Config\n\n```toml\n{}```", c.to_toml());
    s
}

/// Pooled per-class metrics of a `summary.json` (whole image and inside the FOV) as a
/// Markdown table.
fn metrics_table(summary: &serde_json::Value) -> String {
    const METRICS: [&str; 6] = ["iou", "dice", "mcc", "bm", "precision", "recall"];
    let mut s = String::from("| region | class |");
    for m in METRICS {
        let _ = write!(s, " {m} |");
    }
    s.push_str("\n|---|---|");
    s.push_str(&"---|".repeat(METRICS.len()));
    s.push('\n');
    let mut rows = 0;
    for region in ["whole_image", "inside_fov"] {
        let Some(pooled) = summary[region]["pooled"].as_array() else {
            continue;
        };
        for (class, values) in pooled.iter().enumerate() {
            let _ = write!(s, "| {region} | {class} |");
            for m in METRICS {
                match values[m].as_f64() {
                    Some(v) => {
                        let _ = write!(s, " {v:.4} |");
                    }
                    None => s.push_str(" – |"),
                }
            }
            s.push('\n');
            rows += 1;
        }
    }
    if rows == 0 {
        return "The run's `summary.json` has no pooled metrics.\n".into();
    }
    s.push_str("\nPooled over the test images at their original resolution.\n");
    s
}

/// Today's date in UTC, `YYYY-MM-DD`.
pub fn utc_date() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    date_of_unix_day((secs / 86_400) as i64)
}

/// The proleptic Gregorian date of day `days` since 1970-01-01 (the civil-from-days rule:
/// 400-year eras of 146 097 days, years starting in March so that the leap day is last).
pub fn date_of_unix_day(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::date_of_unix_day;

    #[test]
    fn unix_days_to_dates() {
        // date -u -d @0, @951782400 (2000-02-29), @1796642106 (a run's `finished`).
        assert_eq!(date_of_unix_day(0), "1970-01-01");
        assert_eq!(date_of_unix_day(951_782_400 / 86_400), "2000-02-29");
        assert_eq!(date_of_unix_day(1_796_642_106 / 86_400), "2026-12-07");
        assert_eq!(date_of_unix_day(-1), "1969-12-31");
    }
}
