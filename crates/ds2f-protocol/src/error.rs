//! Errors of the protocol crate; each names the file, key or run it is about.
use std::path::PathBuf;

/// What can go wrong reading an experiment, planning it, claiming runs or writing its report.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The experiment file is malformed or inconsistent.
    #[error("{origin}: {message}")]
    Experiment {
        /// The file (or text origin).
        origin: String,
        /// What is wrong.
        message: String,
    },
    /// The split scheme cannot split these images.
    #[error("split: {message}")]
    Split {
        /// What is wrong.
        message: String,
    },
    /// A `--shard` value that is not `K/N` with 1 ≤ K ≤ N.
    #[error("--shard `{text}`: expected K/N with 1 <= K <= N, e.g. 2/4")]
    Shard {
        /// The text given.
        text: String,
    },
    /// A file could not be read or written.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        message: String,
    },
    /// A report file could not be written (the error names it).
    #[error(transparent)]
    Data(#[from] ds2f_data::DataError),
    /// A run folder's file has unexpected content.
    #[error("{}: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl ProtocolError {
    /// An I/O error about `path`.
    pub fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}
