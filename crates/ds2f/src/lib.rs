//! ds2f: dual-stream super-resolution semantic learning for medical image segmentation
//! (Qiu, Hu et al., IEEE TPAMI 2023) on burn. LR image in, HR segmentation out.
//!
//! Modules: [`model`] (networks), [`infer`] (prediction and evaluation at the original size),
//! [`report`] (overlays, curves), [`ops`] (burn operations on ds2f's CPU kernels), [`checkpoint`], [`config`], [`dataset`] (splits and
//! batches); [`loss`] and [`train`] only with the `train` feature, so an inference-only build
//! never compiles training code.
#![warn(missing_docs)]
// Every raw-slice kernel and every `unsafe` line is in the crate `ds2f_kernels`.
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod config;
pub mod dataset;
pub mod device;
pub mod error;
pub mod export;
pub mod infer;
pub mod model;
pub mod ops;
pub mod report;

#[cfg(feature = "train")]
pub mod loss;
#[cfg(feature = "train")]
pub mod train;
