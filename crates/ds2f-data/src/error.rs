//! The typed errors of the data crate. Every variant names the file (or key) it is about.
use std::path::PathBuf;

/// Errors from reading, checking and preparing data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// An I/O error on a file or folder.
    // The I/O error is part of the message, not a `source`, so that it is printed once both
    // by `Display` (check-data's list) and by an error chain (`{:#}`).
    #[error("{path}: {error}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// An image that could not be decoded (truncated, not an image, unsupported).
    #[error("{path}: cannot decode image: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// A mask whose values cannot be read as class indices.
    #[error("{path}: mask values cannot be read as classes: {found}")]
    MaskValues {
        /// The mask file.
        path: PathBuf,
        /// What was found, e.g. "values 0..=200 (57 distinct), 40% of pixels neither 0 nor 255".
        found: String,
    },
    /// An image and its mask (or FOV) differ in size.
    #[error(
        "{mask}: size {mask_w}x{mask_h} (WxH) differs from its image {image} ({image_w}x{image_h})"
    )]
    SizeMismatch {
        /// The image file.
        image: PathBuf,
        /// The mask or FOV file.
        mask: PathBuf,
        /// Image width.
        image_w: u32,
        /// Image height.
        image_h: u32,
        /// Mask width.
        mask_w: u32,
        /// Mask height.
        mask_h: u32,
    },
    /// An image without its mask.
    #[error("{image}: no mask found (looked for {expected})")]
    MissingMask {
        /// The image file.
        image: PathBuf,
        /// Where the mask was expected.
        expected: String,
    },
    /// Two images share one stem, so pairing by stem is ambiguous.
    #[error("{first} and {second} have the same stem; pairing by stem is ambiguous")]
    DuplicateStem {
        /// One file.
        first: PathBuf,
        /// The other file.
        second: PathBuf,
    },
    /// A folder with no usable images.
    #[error("{path}: no images found ({expected})")]
    Empty {
        /// The folder.
        path: PathBuf,
        /// What was expected there.
        expected: String,
    },
    /// A folder whose layout is not one of the known ones.
    #[error("{path}: unknown dataset layout: {reason}")]
    Layout {
        /// The folder.
        path: PathBuf,
        /// Why no layout matched.
        reason: String,
    },
    /// An image larger than the configured limit.
    #[error("{path}: image is {width}x{height}, larger than the limit of {limit} pixels")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// The limit in pixels.
        limit: u64,
    },
    /// Several problems, one per line.
    #[error("{} problems:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Problems(Vec<DataError>),
    /// A parameter out of its valid range.
    #[error("invalid {name}: {reason}")]
    Invalid {
        /// The parameter.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, DataError>;
