//! The paper's protocol (k-fold and repeated experiments, paired statistics, tables and
//! figures) as plain Rust, without a tensor library: everything here works on file names,
//! numbers and run folders, so that it can be tested against scikit-learn and scipy directly
//! and reused to score any tool's runs.
pub mod claim;
pub mod error;
pub mod experiment;
pub mod figures;
pub mod kfold;
pub mod output;
pub mod report;
pub mod stats;

pub use error::ProtocolError;
