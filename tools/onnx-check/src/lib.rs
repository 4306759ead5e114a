//! Reads the round-trip fixtures that ds2f's tests write (`cases-*.tsv` and raw little-endian
//! `f32` files in one folder, see crates/ds2f/tests/export_onnx.rs) and runs each ONNX file with
//! tract.
use std::path::{Path, PathBuf};

use tract_onnx::prelude::*;

/// One fixture: an ONNX file, an input, and ds2f's output for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// Name, for messages.
    pub name: String,
    /// The ONNX file.
    pub model: PathBuf,
    /// The input values, row-major.
    pub input: Vec<f32>,
    /// The input shape.
    pub input_shape: Vec<usize>,
    /// ds2f's output for the input, row-major.
    pub expected: Vec<f32>,
    /// ds2f's output shape.
    pub expected_shape: Vec<usize>,
    /// The largest absolute difference allowed.
    pub tolerance: f32,
}

/// The fixture folder: `DS2F_ONNX_FIXTURES`, else `target/tmp/onnx-fixtures` of the ds2f
/// workspace (where cargo puts `CARGO_TARGET_TMPDIR` with the default target folder).
pub fn fixture_dir() -> PathBuf {
    match std::env::var_os("DS2F_ONNX_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp/onnx-fixtures"),
    }
}

fn read_f32(path: &Path) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() % 4 != 0 {
        return Err(format!(
            "{}: {} bytes, not a whole number of f32",
            path.display(),
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn parse_shape(text: &str, what: &str) -> Result<Vec<usize>, String> {
    text.split(',')
        .map(|d| {
            d.trim()
                .parse()
                .map_err(|_| format!("{what}: bad dimension `{d}`"))
        })
        .collect()
}

/// Reads every `dir/cases-*.tsv` (one per test that writes fixtures; lines `name, model,
/// input, input shape, expected, expected shape, tolerance`, tab-separated; `#` starts a
/// comment) and the files they name.
///
/// # Errors
/// A message naming the file or line when anything is missing or malformed, or when there is
/// no list at all.
pub fn read_cases(dir: &Path) -> Result<Vec<Case>, String> {
    let missing = |what: String| {
        format!(
            "{what} (the fixtures are written by the ds2f workspace's tests: run \
             `cargo test --release --workspace` first, or set DS2F_ONNX_FIXTURES)"
        )
    };
    let entries = std::fs::read_dir(dir).map_err(|e| missing(format!("{}: {e}", dir.display())))?;
    let mut lists: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("cases-") && n.ends_with(".tsv"))
        })
        .collect();
    lists.sort();
    if lists.is_empty() {
        return Err(missing(format!("{}: no cases-*.tsv", dir.display())));
    }
    let mut cases = Vec::new();
    for list in &lists {
        cases.extend(read_list(dir, list)?);
    }
    Ok(cases)
}

/// The cases of one list file.
fn read_list(dir: &Path, list: &Path) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(list).map_err(|e| format!("{}: {e}", list.display()))?;
    let mut cases = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let at = |what: &str| format!("{}:{} {what}", list.display(), n + 1);
        let f: Vec<&str> = line.split('\t').collect();
        let [
            name,
            model,
            input,
            input_shape,
            expected,
            expected_shape,
            tolerance,
        ] = f[..]
        else {
            return Err(at(&format!("has {} fields, expected 7", f.len())));
        };
        let case = Case {
            name: name.to_string(),
            model: dir.join(model),
            input: read_f32(&dir.join(input))?,
            input_shape: parse_shape(input_shape, &at("input shape"))?,
            expected: read_f32(&dir.join(expected))?,
            expected_shape: parse_shape(expected_shape, &at("expected shape"))?,
            tolerance: tolerance
                .parse()
                .map_err(|_| at(&format!("bad tolerance `{tolerance}`")))?,
        };
        for (values, shape, what) in [
            (&case.input, &case.input_shape, "input"),
            (&case.expected, &case.expected_shape, "expected"),
        ] {
            if values.len() != shape.iter().product::<usize>() {
                return Err(at(&format!(
                    "{what} has {} values for shape {shape:?}",
                    values.len()
                )));
            }
        }
        cases.push(case);
    }
    Ok(cases)
}

/// Runs the ONNX file `model` on `input` of `shape` with tract, optimised as a deployment
/// would: the first output's values and shape.
///
/// # Errors
/// tract's message when it cannot read, optimise or run the graph.
pub fn run(model: &Path, input: &[f32], shape: &[usize]) -> TractResult<(Vec<f32>, Vec<usize>)> {
    let plan = tract_onnx::onnx()
        .model_for_path(model)?
        .with_input_fact(0, f32::fact(shape).into())?
        .into_optimized()?
        .into_runnable()?;
    let x = Tensor::from_shape(shape, input)?;
    let out = plan.run(tvec!(x.into()))?;
    let view = out[0].to_array_view::<f32>()?;
    Ok((view.iter().copied().collect(), view.shape().to_vec()))
}

/// The largest absolute difference between `a` and `b` (NaN anywhere counts as infinite).
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (x - y).abs();
            if d.is_nan() { f32::INFINITY } else { d }
        })
        .fold(0.0, f32::max)
}
