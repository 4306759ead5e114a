//! Errors of [`super`]: each names the file and, where there is one, the tensor.
use std::path::PathBuf;

/// Errors exporting or importing weights.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file could not be written.
    #[error("{path}: cannot write: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A file is missing, unreadable or not a state dict.
    #[error("{path}: cannot read: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A tensor whose element type the file format or PyTorch model cannot take.
    #[error(
        "{path}: `{key}` is {dtype}; only float32 parameters (and int64 counters) are exported or imported"
    )]
    DType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        key: String,
        /// Its element type.
        dtype: String,
    },
    /// A tensor of the file has another shape than the model's parameter of the same name.
    #[error(
        "{path}: `{key}` is {found:?} in the file but {expected:?} in the configured model \
         (another model.base, model.num_classes, model.upscale or model.shared_feature.hidden?)"
    )]
    Shape {
        /// The file.
        path: PathBuf,
        /// The model parameter (ds2f's name, after the reference names are mapped).
        key: String,
        /// Its shape in the model.
        expected: Vec<usize>,
        /// Its shape in the file.
        found: Vec<usize>,
    },
    /// A tensor could not be decoded or applied.
    #[error("{path}: `{key}`: {message}")]
    Load {
        /// The file.
        path: PathBuf,
        /// The model parameter.
        key: String,
        /// burn's message.
        message: String,
    },
    /// Not one tensor of the file is a parameter of the model.
    #[error(
        "{path}: none of its {count} tensors is a parameter of the model (it has {examples}); \
         expected the reference's names (`down1.conv.conv1.conv.weight`, `out_conv.weight`, \
         `sr_seg_fusion_module.*`, ...) or ds2f's (`encoder.down1.conv.conv1.weight`, ...)"
    )]
    NothingMatched {
        /// The file.
        path: PathBuf,
        /// Tensors in the file.
        count: usize,
        /// Its first few keys.
        examples: String,
    },
    /// What the configured model asks for is not supported, naming the config key: `ds2f
    /// import` of a backbone other than the U-Net (`model.backbone`: only the reference U-Net's
    /// names are mapped), or an ONNX graph the writer cannot lay out (`model.backbone`: encoder
    /// and decoder of different backbones, or a `Same`-padded convolution; every backbone
    /// ds2f builds is written).
    #[error("{key}: {reason}")]
    Unsupported {
        /// The config key.
        key: String,
        /// Why.
        reason: String,
    },
}
