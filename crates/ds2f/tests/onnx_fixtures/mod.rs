//! The round-trip fixtures that `tools/onnx-check` runs with tract (a pure-Rust ONNX runtime,
//! kept outside the workspace: see its Cargo.toml): per exported model, `cases-<stem>.tsv` in
//! `target/tmp/onnx-fixtures` (cargo's `CARGO_TARGET_TMPDIR`) listing inputs and ds2f's
//! outputs as raw little-endian `f32` files.
use std::path::PathBuf;

use ds2f::export::write_onnx;
use ds2f::model::Segmenter;

/// Where the fixtures go.
pub fn dir() -> PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("onnx-fixtures")
}

/// The cases of one exported model, written by [`Cases::finish`].
pub struct Cases {
    stem: String,
    text: String,
}

impl Cases {
    /// Writes `model`'s ONNX graph as `<stem>.onnx` and starts its list.
    pub fn new(stem: &str, model: &Segmenter, metadata: Vec<(String, String)>) -> Self {
        std::fs::create_dir_all(dir()).unwrap();
        write_onnx(&dir().join(format!("{stem}.onnx")), model, metadata).unwrap();
        Self {
            stem: stem.to_string(),
            text: "# name\tmodel\tinput\tinput shape\texpected\texpected shape\tmax abs diff\n"
                .to_string(),
        }
    }

    /// Adds case `k`: the input `x` of shape `x_dims` and ds2f's output `y` of shape `y_dims`,
    /// to be reproduced within 1e-4.
    pub fn add(&mut self, k: usize, x: &[f32], x_dims: &[usize], y: &[f32], y_dims: &[usize]) {
        let name = format!("{}_{k}", self.stem);
        for (suffix, values) in [("input", x), ("expected", y)] {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(dir().join(format!("{name}.{suffix}.f32")), bytes).unwrap();
        }
        let text = |d: &[usize]| {
            d.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        self.text.push_str(&format!(
            "{name}\t{}.onnx\t{name}.input.f32\t{}\t{name}.expected.f32\t{}\t1e-4\n",
            self.stem,
            text(x_dims),
            text(y_dims)
        ));
    }

    /// Writes `cases-<stem>.tsv`.
    pub fn finish(self) {
        std::fs::write(dir().join(format!("cases-{}.tsv", self.stem)), self.text).unwrap();
    }
}
