//! Writes an experiment's report files into its folder, each atomically: `results.md`,
//! `results.csv`, `results.json`, `per_image.csv` and the figures under `figures/`.
use std::path::{Path, PathBuf};

use crate::error::ProtocolError;
use crate::experiment::{ExperimentFile, RunSpec};
use crate::figures::{self, RateSeries};
use crate::report::{self, RunResult};

/// Writes every report file; returns the path of `results.md`.
pub fn write_all(
    file: &ExperimentFile,
    plan: &[RunSpec],
    results: &[RunResult],
    dir: &Path,
) -> Result<PathBuf, ProtocolError> {
    let built = report::build(file, plan, results);
    let metric = report::metric_by_name(&file.test_metric).unwrap_or(ds2f_metrics::Metric::Dice);
    let title = report::Column::Metric(metric).title();
    let fig_dir = dir.join("figures");
    std::fs::create_dir_all(&fig_dir).map_err(|e| ProtocolError::io(&fig_dir, e))?;
    let mut figures: Vec<(String, PathBuf)> = Vec::new();

    // Per-image pairs of each variant against the baseline.
    for row in &built.variants {
        if row.name == file.baseline {
            continue;
        }
        let pairs = report::image_pairs(results, &row.name, &file.baseline, metric);
        if pairs.is_empty() {
            continue;
        }
        let name = format!("paired_{}_{}.png", metric.name(), row.name);
        let p = row
            .images
            .get(metric.name())
            .and_then(|c| c.test.as_ref())
            .map(|t| t.p_value);
        figures::paired_plot(
            &fig_dir.join(&name),
            title,
            &file.baseline,
            &row.name,
            &pairs,
            p,
        )
        .map_err(|e| ProtocolError::io(&fig_dir.join(&name), e))?;
        figures.push((
            format!(
                "{} per test image, {} against {}",
                title, row.name, file.baseline
            ),
            PathBuf::from("figures").join(name),
        ));
    }

    // The distribution over runs of the pooled test metric.
    let groups: Vec<(String, Vec<f64>)> = built
        .variants
        .iter()
        .map(|row| {
            let values = row
                .per_fold
                .values()
                .filter_map(|m| m.get(metric.name()).copied())
                .collect();
            (row.name.clone(), values)
        })
        .filter(|(_, v): &(String, Vec<f64>)| !v.is_empty())
        .collect();
    if !groups.is_empty() {
        let name = format!("runs_{}.png", metric.name());
        figures::box_plot(&fig_dir.join(&name), title, &groups)
            .map_err(|e| ProtocolError::io(&fig_dir.join(&name), e))?;
        figures.push((
            format!("{title} per run (pooled over its test images)"),
            PathBuf::from("figures").join(name),
        ));
    }

    // Metric against the SR rate (paper Fig. 4) when the variants differ in `model.upscale`.
    if let Some(series) = rate_series(file, &built) {
        let name = format!("rate_{}.png", metric.name());
        figures::rate_plot(&fig_dir.join(&name), title, &series)
            .map_err(|e| ProtocolError::io(&fig_dir.join(&name), e))?;
        figures.push((
            format!("{title} against the up-sampling rate"),
            PathBuf::from("figures").join(name),
        ));
    }

    write_atomic(&dir.join("results.csv"), built.csv().as_bytes())?;
    write_atomic(
        &dir.join("per_image.csv"),
        report::per_image_csv(results).as_bytes(),
    )?;
    let json = serde_json::to_vec_pretty(&built).map_err(|e| ProtocolError::Corrupt {
        path: dir.join("results.json"),
        message: e.to_string(),
    })?;
    write_atomic(&dir.join("results.json"), &json)?;
    let md_path = dir.join("results.md");
    write_atomic(&md_path, built.markdown(&figures).as_bytes())?;
    Ok(md_path)
}

/// When every variant sets `model.upscale`, one series per group of variants that agree on
/// everything but the rate and the LR size (the paper keeps the HR output fixed and divides
/// it by the rate), with the rate as x.
fn rate_series(file: &ExperimentFile, built: &report::Report) -> Option<Vec<RateSeries>> {
    let mut series: Vec<RateSeries> = Vec::new();
    for v in &file.variants {
        let rate = v.set.iter().find_map(|s| {
            let (k, val) = s.split_once('=')?;
            (k.trim() == "model.upscale")
                .then(|| val.trim().parse::<f64>().ok())
                .flatten()
        })?;
        let rest: Vec<&str> = v
            .set
            .iter()
            .filter(|s| {
                let key = s.split_once('=').map_or("", |(k, _)| k.trim());
                key != "model.upscale" && key != "data.lr_size"
            })
            .map(String::as_str)
            .collect();
        let label = if rest.is_empty() {
            "all".to_string()
        } else {
            rest.join(" ")
        };
        let row = built.variants.iter().find(|r| r.name == v.name)?;
        let cell = row.folds.get(built.test_metric.as_str())?;
        let Some(mean) = cell.stats.mean else {
            continue;
        };
        let std = cell.stats.std.unwrap_or(0.0);
        match series.iter_mut().find(|s| s.name == label) {
            Some(s) => s.points.push((rate, mean, std)),
            None => series.push(RateSeries {
                name: label,
                points: vec![(rate, mean, std)],
            }),
        }
    }
    let rates: std::collections::BTreeSet<u64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0 as u64))
        .collect();
    (rates.len() > 1).then_some(series)
}

/// Writes `bytes` to `path` atomically (`ds2f_data::io::write_atomic`: a temporary name unique
/// to the process and the write, since several workers may rewrite the tables at once).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ProtocolError> {
    Ok(ds2f_data::io::write_atomic(path, bytes)?)
}
