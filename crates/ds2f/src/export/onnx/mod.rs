//! ONNX export of the inference graph (`ds2f export --format onnx`): [`graph`] holds the node
//! builder and the head, [`unet`], [`deeplab`] and [`espnet`] lay each backbone out as ONNX
//! operators, [`proto`] encodes the file.
mod deeplab;
mod espnet;
pub mod graph;
pub mod proto;
mod unet;

pub use graph::{INPUT, OPSET, OUTPUT, onnx_model};

use std::path::Path;

use super::error::ExportError;
use crate::model::Segmenter;

/// Writes `model`'s inference graph to `path` as ONNX (temporary file + rename).
///
/// # Errors
/// As [`onnx_model`], and [`ExportError::Write`] naming `path`.
pub fn write_onnx(
    path: &Path,
    model: &Segmenter,
    metadata: Vec<(String, String)>,
) -> Result<(), ExportError> {
    let bytes = onnx_model(model, metadata)?.encode();
    ds2f_data::io::write_atomic(path, &bytes).map_err(|e| ExportError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
