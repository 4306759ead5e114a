//! Weights in and out of ds2f (issue #18): the inference graph as a PyTorch-style state dict in
//! a `.safetensors` file with the run's config and test metrics as metadata and a model card
//! beside it ([`state_dict`], [`safetensors`], [`card`]), the reference implementation's
//! (imed_vision) U-Net DS2F weights into a ds2f model ([`reference`]), and the inference graph
//! of every backbone (U-Net, DeepLabV3+ ResNet-50/101, ESPNetv2) as ONNX ([`onnx`]).
//!
//! The names are PyTorch's for the same module tree: burn's BatchNorm `gamma` / `beta` become
//! `weight` / `bias`, PReLU's `alpha` becomes `weight`, and every BatchNorm gets the int64
//! `num_batches_tracked` PyTorch keeps (0: burn does not count batches, and PyTorch reads the
//! counter only when BN's momentum is `None`). Path segments that burn cannot spell (numbered
//! children) take PyTorch's names ([`state_dict::TORCH_RENAMES`]): the ResNet's shortcut is
//! torchvision's `downsample.0` / `downsample.1`, ESPNetv2's input reinforcement and pyramid
//! pooling the reference's `refin_conv.0/1` and `pspMod.0/1`. For the U-Net these are exactly
//! the `state_dict()` keys of `bench/unet.py`'s `UNetInter`, for DeepLabV3+ those of
//! `bench/deeplab.py` (torchvision's ResNet names under `encoder.backbone.`), for ESPNetv2
//! those of `bench/espnet.py`, so that `load_state_dict(..., strict=True)` accepts the file
//! (`bench/export_check.py`).
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
