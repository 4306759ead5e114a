//! State dicts as `.safetensors` files (the Hugging Face format PyTorch, `safetensors.torch`
//! and burn read), written atomically, with string metadata.
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use super::error::ExportError;
use super::state_dict::{StateTensor, TensorKind};

/// Writes `tensors` and `metadata` to `path` (temporary file + rename).
///
/// # Errors
/// [`ExportError::Write`] naming `path`.
pub fn write_state_dict(
    path: &Path,
    tensors: &[StateTensor],
    metadata: &BTreeMap<String, String>,
) -> Result<(), ExportError> {
    let write_err = |message: String| ExportError::Write {
        path: path.to_path_buf(),
        message,
    };
    let mut views = Vec::with_capacity(tensors.len());
    for t in tensors {
        let dtype = match t.kind {
            TensorKind::F32 => Dtype::F32,
            TensorKind::I64 => Dtype::I64,
        };
        let view = TensorView::new(dtype, t.shape.clone(), &t.data)
            .map_err(|e| write_err(format!("`{}`: {e}", t.name)))?;
        views.push((t.name.as_str(), view));
    }
    let metadata: HashMap<String, String> = metadata.clone().into_iter().collect();
    let bytes = safetensors::tensor::serialize(views, Some(metadata))
        .map_err(|e| write_err(e.to_string()))?;
    ds2f_data::io::write_atomic(path, &bytes).map_err(|e| write_err(e.to_string()))
}

/// Reads a `.safetensors` file: its tensors (sorted by name) and metadata.
///
/// # Errors
/// [`ExportError::Read`] if the file is missing or not SafeTensors, [`ExportError::DType`] for
/// a tensor neither float32 nor int64.
pub fn read_state_dict(
    path: &Path,
) -> Result<(Vec<StateTensor>, BTreeMap<String, String>), ExportError> {
    let read_err = |message: String| ExportError::Read {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| read_err(e.to_string()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| read_err(e.to_string()))?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let file = SafeTensors::deserialize(&bytes).map_err(|e| read_err(e.to_string()))?;
    let mut tensors = Vec::with_capacity(file.len());
    for (name, view) in file.tensors() {
        let kind = match view.dtype() {
            Dtype::F32 => TensorKind::F32,
            Dtype::I64 => TensorKind::I64,
            other => {
                return Err(ExportError::DType {
                    path: path.to_path_buf(),
                    key: name,
                    dtype: format!("{other:?}"),
                });
            }
        };
        tensors.push(StateTensor {
            name,
            kind,
            shape: view.shape().to_vec(),
            data: view.data().to_vec(),
        });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((tensors, metadata))
}
