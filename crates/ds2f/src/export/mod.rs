//! Weights in and out of ds2f (issue #18): the inference graph as a PyTorch-style state dict in
//! a `.safetensors` file with the run's config and test metrics as metadata and a model card
//! beside it ([`state_dict`], [`safetensors`], [`card`]), and the reference implementation's
//! (imed_vision) U-Net DS2F weights into a ds2f model ([`reference`]), and the U-Net's inference
//! graph as ONNX ([`onnx`]).
//!
//! The names are PyTorch's for the same module tree: burn's BatchNorm `gamma` / `beta` become
//! `weight` / `bias`, PReLU's `alpha` becomes `weight`, and every BatchNorm gets the int64
//! `num_batches_tracked` PyTorch keeps (0: burn does not count batches, and PyTorch reads the
//! counter only when BN's momentum is `None`). For the U-Net these are exactly the
//! `state_dict()` keys of `bench/unet.py`'s `UNetInter`, so that
//! `load_state_dict(..., strict=True)` accepts the file (`bench/export_check.py`).
pub mod card;
pub mod error;
pub mod onnx;
pub mod reference;
pub mod safetensors;
pub mod state_dict;

pub use card::{ExportInfo, model_card, utc_date};
pub use error::ExportError;
pub use onnx::write_onnx;
pub use reference::{ImportReport, import_reference};
pub use safetensors::{read_state_dict, write_state_dict};
pub use state_dict::{StateTensor, TORCH_RENAMES, TensorKind, torch_name, torch_state_dict};
