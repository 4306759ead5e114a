//! Data for ds2f, with no tensor library: dataset layouts, image and mask I/O, multi-class label
//! maps, OpenCV-exact resizing, augmentation, LR/HR pair making, a prefetching loader and
//! synthetic fundus images.
#![warn(missing_docs)]

pub mod augment;
pub mod error;
pub mod io;
pub mod labels;
pub mod layout;
pub mod loader;
pub mod pair;
pub mod resize;
pub mod synth;

pub use error::DataError;
pub use io::IGNORE_LABEL;
pub use layout::{Item, Layout};
