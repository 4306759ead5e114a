//! The error type of this crate: input shapes that do not fit together.

use std::fmt;

/// Why an accumulation was refused. When a method returns an error, the accumulator it was
/// called on is left unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsError {
    /// Two slices that must describe the same pixels have different lengths.
    LengthMismatch {
        /// Which input has the wrong length (e.g. `"pred"`, `"region"`).
        what: &'static str,
        /// The length it should have (the length of the first input).
        expected: usize,
        /// The length it has.
        actual: usize,
    },
    /// A predicted class index is not below the number of classes.
    PredictionOutOfRange {
        /// Pixel index of the first offending value.
        index: usize,
        /// The offending value.
        value: u8,
        /// The number of classes of the accumulator.
        num_classes: usize,
    },
    /// A ground-truth class index is neither below the number of classes nor the ignore
    /// label (e.g. a mask value 7 with 5 classes, or 255 without an ignore label).
    TruthOutOfRange {
        /// Pixel index of the first offending value.
        index: usize,
        /// The offending value.
        value: u8,
        /// The number of classes of the accumulator.
        num_classes: usize,
        /// The ignore label in force (`None`: none).
        ignore_label: Option<u8>,
    },
    /// Two accumulators with different numbers of classes cannot be merged.
    ClassCountMismatch {
        /// Number of classes of the receiver.
        expected: usize,
        /// Number of classes of the argument.
        actual: usize,
    },
    /// Two histograms with different numbers of bins cannot be merged.
    BinCountMismatch {
        /// Number of bins of the receiver.
        expected: usize,
        /// Number of bins of the argument.
        actual: usize,
    },
    /// The number of classes is outside `2..=256`.
    ClassCount {
        /// The number asked for.
        num_classes: usize,
    },
    /// A histogram needs at least one bin.
    ZeroBins,
    /// Class names were given, but not one per class.
    ClassNames {
        /// The number of classes.
        expected: usize,
        /// The number of names given.
        actual: usize,
    },
    /// Two evaluations with different settings cannot be merged.
    ConfigMismatch {
        /// Which setting differs (`"class_mean"`, `"ignore_label"`, `"class_names"`,
        /// `"pr_mode"`).
        what: &'static str,
    },
    /// The probability slice has a length that matches no supported layout
    /// (see [`crate::Evaluation::add_image`]).
    ProbabilityLayout {
        /// Length of the probability slice.
        len: usize,
        /// Number of pixels of the image.
        pixels: usize,
        /// Number of classes.
        num_classes: usize,
    },
    /// Probabilities were given for some images but not for others, which would make the
    /// pooled PR-AUC cover only part of the test set.
    InconsistentProbabilities {
        /// Name of the image that broke the rule.
        image: String,
    },
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LengthMismatch {
                what,
                expected,
                actual,
            } => write!(
                f,
                "length mismatch: `{what}` has {actual} elements, expected {expected}"
            ),
            Self::PredictionOutOfRange {
                index,
                value,
                num_classes,
            } => write!(
                f,
                "predicted class {value} at pixel {index} is out of range for {num_classes} classes"
            ),
            Self::TruthOutOfRange {
                index,
                value,
                num_classes,
                ignore_label,
            } => {
                write!(
                    f,
                    "true class {value} at pixel {index} is out of range for {num_classes} classes"
                )?;
                match ignore_label {
                    Some(label) => write!(f, " and is not the ignore label {label}"),
                    None => write!(f, " (no ignore label)"),
                }
            }
            Self::ClassCount { num_classes } => {
                write!(f, "{num_classes} classes: between 2 and 256 are supported")
            }
            Self::ZeroBins => write!(f, "a PR histogram needs at least one bin"),
            Self::ClassNames { expected, actual } => write!(
                f,
                "{actual} class names given for {expected} classes (give one per class or none)"
            ),
            Self::ConfigMismatch { what } => {
                write!(f, "cannot merge evaluations with different `{what}`")
            }
            Self::ClassCountMismatch { expected, actual } => {
                write!(f, "cannot merge: {actual} classes, expected {expected}")
            }
            Self::BinCountMismatch { expected, actual } => {
                write!(
                    f,
                    "cannot merge histograms: {actual} bins, expected {expected}"
                )
            }
            Self::ProbabilityLayout {
                len,
                pixels,
                num_classes,
            } => write!(
                f,
                "probability slice of length {len} fits neither {num_classes} x {pixels} \
                 (class-major planes of every class) nor {} x {pixels} (planes of classes \
                 1..{num_classes}, accepted when the background is not averaged)",
                num_classes - 1
            ),
            Self::InconsistentProbabilities { image } => write!(
                f,
                "image `{image}`: probabilities must be given for every image or for none"
            ),
        }
    }
}

impl std::error::Error for MetricsError {}

/// Returns an error unless `actual == expected`.
pub(crate) fn check_len(
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), MetricsError> {
    if expected == actual {
        Ok(())
    } else {
        Err(MetricsError::LengthMismatch {
            what,
            expected,
            actual,
        })
    }
}
