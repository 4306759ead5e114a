//! Training losses. Each loss is its own small type.
pub mod ce;

pub use ce::CrossEntropy;
