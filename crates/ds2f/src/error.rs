//! Typed errors of the library. Each names the file, key or step it is about.
use std::path::PathBuf;

/// Errors in experiment configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    // The I/O error is part of the message (not a `source`), so it is printed once.
    #[error("{path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// Not valid TOML.
    #[error("{origin}: invalid TOML: {message}")]
    Syntax {
        /// The file or text.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// A key no table has.
    #[error("{origin}: unknown key `{key}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownKey {
        /// The file or text.
        origin: String,
        /// The dotted key.
        key: String,
        /// The nearest valid key.
        suggestion: Option<String>,
    },
    /// A value of the wrong type or an unknown variant.
    #[error("{origin}: {message}")]
    Value {
        /// The file or text.
        origin: String,
        /// What was wrong.
        message: String,
    },
    /// A value out of its valid range.
    #[error("config key `{key}`: {reason}")]
    Range {
        /// The dotted key.
        key: String,
        /// What is expected.
        reason: String,
    },
    /// A malformed `--set` override.
    #[error("--set {item}: {reason}")]
    Override {
        /// The override as given.
        item: String,
        /// What was wrong.
        reason: String,
    },
}

impl ConfigError {
    /// A [`ConfigError::Range`] for `key`.
    pub fn range(key: &str, reason: &str) -> Self {
        ConfigError::Range {
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Errors reading or writing checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read.
    // The I/O error is part of the message (not a `source`), so it is printed once.
    #[error("{path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file could not be written (nothing was replaced).
    #[error("{path}: cannot write checkpoint: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// Not a well-formed checkpoint.
    #[error("{path}: corrupt checkpoint: {what}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// burn could not encode or apply a record.
    #[error("{path}: {message}")]
    Record {
        /// The file.
        path: PathBuf,
        /// burn's message.
        message: String,
    },
}

/// Errors loading ImageNet-pretrained encoder weights (`model.encoder_weights`, see
/// [`crate::model::pretrained`]).
#[derive(Debug, thiserror::Error)]
pub enum PretrainedError {
    /// The configured backbone has no pretrained encoder family.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The file is missing, unreadable or not a state dict.
    #[error("{path}: cannot read encoder weights: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A tensor of the file has another shape than the encoder parameter of the same name.
    #[error("{path}: `{key}` is {found:?} in the file but {expected:?} in the encoder")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The encoder parameter.
        key: String,
        /// Its shape in the encoder.
        expected: Vec<usize>,
        /// Its shape in the file.
        found: Vec<usize>,
    },
    /// A floating-point tensor that is not float32.
    #[error("{path}: `{key}` is {dtype}; only float32 weights are loaded")]
    DType {
        /// The file.
        path: PathBuf,
        /// The file's key.
        key: String,
        /// Its element type.
        dtype: String,
    },
    /// A tensor could not be decoded or applied.
    #[error("{path}: `{key}`: {message}")]
    Load {
        /// The file.
        path: PathBuf,
        /// The encoder parameter.
        key: String,
        /// burn's message.
        message: String,
    },
    /// Not one tensor of the file is an encoder parameter.
    #[error(
        "{path}: none of its {count} tensors is a ResNet encoder parameter (it has {examples}); \
         expected torchvision's names (`conv1.weight`, `layer1.0.conv1.weight`, ...)"
    )]
    NothingMatched {
        /// The file.
        path: PathBuf,
        /// Tensors in the file.
        count: usize,
        /// Its first few keys.
        examples: String,
    },
}

/// Errors selecting a device.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Not a device name.
    #[error(
        "unknown device `{name}` (expected cpu, wgpu, wgpu:N, cuda:N, libtorch or libtorch-cuda:N)"
    )]
    Unknown {
        /// As given.
        name: String,
    },
    /// A device whose backend this binary was built without.
    #[error("device `{name}` needs a build with `--features {feature}` (see docs/gpu.md)")]
    NotBuilt {
        /// As given.
        name: String,
        /// The cargo feature.
        feature: String,
    },
}

/// Errors during training.
#[cfg(feature = "train")]
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Bad data.
    #[error(transparent)]
    Data(#[from] ds2f_data::DataError),
    /// Problems found by the up-front data check, all of them.
    #[error("{} data problem(s):\n  {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n  "))]
    DataCheck(Vec<ds2f_data::DataError>),
    /// A checkpoint could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The pretrained encoder weights (`model.encoder_weights`) could not be loaded.
    #[error(transparent)]
    EncoderWeights(#[from] PretrainedError),
    /// A file of the run folder could not be read or written.
    #[error("{path}: {message}")]
    RunFile {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The run folder already holds a run.
    #[error(
        "{path} already holds a run; continue it with --resume {path} or choose another run.name"
    )]
    RunExists {
        /// The run folder.
        path: PathBuf,
    },
    /// A loss became NaN or infinite.
    #[error(
        "epoch {epoch}, step {iteration}: the {term} loss is {value}; stopped. {}",
        resume_hint(.last_good)
    )]
    NonFinite {
        /// Epoch.
        epoch: usize,
        /// Optimiser step.
        iteration: usize,
        /// The loss term.
        term: String,
        /// Its value.
        value: f64,
        /// The checkpoint to resume from, if one was written.
        last_good: Option<PathBuf>,
    },
    /// Not enough training images for one batch.
    #[error("{images} training images is fewer than one batch of {batch} (train.batch_size)")]
    TooFewImages {
        /// Images in the training split.
        images: usize,
        /// The batch size.
        batch: usize,
    },
    /// A device's thread of a data-parallel step panicked.
    #[error("training on device {device} failed: {message}")]
    Worker {
        /// The device.
        device: String,
        /// The panic message.
        message: String,
    },
}

/// Errors during prediction and evaluation.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// Bad data.
    #[error(transparent)]
    Data(#[from] ds2f_data::DataError),
    /// The run's config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The checkpoint.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// An output file.
    #[error("{path}: {message}")]
    Output {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

fn resume_hint(last_good: &Option<PathBuf>) -> String {
    match last_good {
        Some(p) => format!("The last good checkpoint is {}", p.display()),
        None => "No checkpoint was written yet (it diverged in the first epoch).".into(),
    }
}
