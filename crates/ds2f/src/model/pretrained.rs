//! ImageNet-pretrained encoder weights (`model.encoder_weights`): a torchvision ResNet state
//! dict that the user supplies (nothing is downloaded), read with burn-store's own readers —
//! [`PytorchStore`] for a `torch.save(model.state_dict())` file (`.pth`, `.pt`, anything not
//! `.safetensors`), [`SafetensorsStore`] for a `.safetensors` file — and applied to the ResNet
//! of the DeepLabV3+ encoder.
//!
//! The ResNet's parameter paths are torchvision's ([`super::deeplab::resnet`]), so keys match by
//! name; the only remapping is torchvision's `downsample.0` / `downsample.1` to
//! `downsample.conv` / `downsample.bn`, and burn-store's [`PyTorchToBurnAdapter`] finds BN's
//! `weight` / `bias` for burn's `gamma` / `beta`. BN running statistics load too;
//! `num_batches_tracked` has no counterpart and is not reported. Everything else of the file
//! that has no place in the ResNet (torchvision's `fc.*`, say) is reported as unexpected, and
//! every ResNet parameter the file lacks as missing (it keeps its initialisation): a partial
//! file is allowed, a file matching nothing is not. A tensor whose shape differs from the
//! parameter's is an error naming both shapes, and so is a non-float32 tensor; on any error the
//! module is left as it was.
use std::fmt;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{
    ApplyError, ApplyResult, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore,
    SafetensorsStore,
};
use burn::tensor::DType;

use super::Encoder;
use super::deeplab::ResNet;
use crate::error::{ConfigError, PretrainedError};

/// The config key this module serves.
pub const CONFIG_KEY: &str = "model.encoder_weights";

/// Where the ResNet sits in the model's parameter tree ([`load_encoder_weights`]'s report names
/// parameters under it).
pub const ENCODER_PREFIX: &str = "encoder.backbone.";

/// Key remapping from torchvision's names to the ResNet's (regex, replacement).
const REMAP: [(&str, &str); 2] = [
    (r"\.downsample\.0\.", ".downsample.conv."),
    (r"\.downsample\.1\.", ".downsample.bn."),
];

/// BN's batch counter: in every torchvision state dict, with no counterpart in burn's BN.
const IGNORED_SUFFIX: &str = ".num_batches_tracked";

/// What loading a weights file did: which parameters it set and what did not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderWeightsReport {
    /// The file.
    pub path: PathBuf,
    /// Parameters (and BN running statistics) set from the file, in visiting order.
    pub matched: Vec<String>,
    /// Encoder parameters the file does not have (they keep their initialisation), sorted.
    pub missing: Vec<String>,
    /// Keys of the file with no encoder parameter (after the `downsample` remapping;
    /// `num_batches_tracked` left out), sorted.
    pub unexpected: Vec<String>,
}

impl fmt::Display for EncoderWeightsReport {
    /// A one-line summary and, for `missing` and `unexpected`, up to ten names each.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "encoder weights {}: {} tensors loaded, {} encoder tensors not in the file (kept at \
             their initialisation), {} tensors of the file unused",
            self.path.display(),
            self.matched.len(),
            self.missing.len(),
            self.unexpected.len()
        )?;
        for (what, names) in [("missing", &self.missing), ("unused", &self.unexpected)] {
            if names.is_empty() {
                continue;
            }
            let shown: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
            write!(f, "\n  {what}: {}", shown.join(", "))?;
            if names.len() > shown.len() {
                write!(f, " ... and {} more", names.len() - shown.len())?;
            }
        }
        Ok(())
    }
}

/// The file formats read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// A pickled PyTorch state dict (`torch.save`), read by [`PytorchStore`].
    Pytorch,
    /// A SafeTensors file, read by [`SafetensorsStore`].
    Safetensors,
}

impl WeightsFormat {
    /// `.safetensors` files are SafeTensors; anything else is taken for a `torch.save` file.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("safetensors") => WeightsFormat::Safetensors,
            _ => WeightsFormat::Pytorch,
        }
    }
}

/// Loads the torchvision ResNet weights at `path` into the DeepLabV3+ encoder's ResNet; the
/// report names parameters by their model path (`encoder.backbone.conv1.weight`, ...).
///
/// # Errors
/// [`PretrainedError::Config`] naming `model.encoder_weights` if `encoder` is the U-Net's or
/// ESPNetV2's (no torchvision family), and the errors of [`load_resnet_weights`].
pub fn load_encoder_weights(
    encoder: &mut Encoder,
    path: &Path,
) -> Result<EncoderWeightsReport, PretrainedError> {
    match encoder {
        Encoder::DeepLab(e) => load_into(&mut e.backbone, path, ENCODER_PREFIX),
        Encoder::Unet(_) | Encoder::Espnet(_) => Err(no_pretrained_family().into()),
    }
}

/// The config error of `model.encoder_weights` on a backbone without a pretrained family.
pub(crate) fn no_pretrained_family() -> ConfigError {
    ConfigError::Range {
        key: CONFIG_KEY.into(),
        reason: "only the DeepLabV3+ ResNets (deeplabv3plus_resnet50 / _resnet101) load \
                 torchvision weights; the unet and espnetv2 backbones have no pretrained family"
            .into(),
    }
}

/// Loads the torchvision ResNet weights at `path` into `resnet`; the report names parameters
/// by their path in the ResNet (`conv1.weight`, `layer1.0.downsample.conv.weight`, ...).
///
/// # Errors
/// [`PretrainedError::Read`] if the file is missing or unreadable, [`PretrainedError::Shape`]
/// or [`PretrainedError::DType`] for a tensor that does not fit its parameter, and
/// [`PretrainedError::NothingMatched`] if no tensor of the file is a ResNet parameter. On error
/// `resnet` is unchanged.
pub fn load_resnet_weights(
    resnet: &mut ResNet,
    path: &Path,
) -> Result<EncoderWeightsReport, PretrainedError> {
    load_into(resnet, path, "")
}

fn load_into(
    resnet: &mut ResNet,
    path: &Path,
    prefix: &str,
) -> Result<EncoderWeightsReport, PretrainedError> {
    load_state_dict(resnet, path, prefix, &REMAP)
}

/// Loads the PyTorch state dict at `path` (`.pth` or `.safetensors`, see [`WeightsFormat`])
/// into `module`: the file's keys are rewritten by `remap` (regex, replacement; applied in
/// order), BN `weight` / `bias` find burn's `gamma` / `beta`, and the report names parameters
/// with `prefix` before their path in `module`. The loader of `model.encoder_weights`, also
/// used by [`crate::export`] to import the reference implementation's weights.
///
/// # Errors
/// As [`load_resnet_weights`]; on error `module` is unchanged.
pub(crate) fn load_state_dict<M: Module + Clone>(
    module: &mut M,
    path: &Path,
    prefix: &str,
    remap: &[(&str, &str)],
) -> Result<EncoderWeightsReport, PretrainedError> {
    let resnet = module;
    let read_err = |message: String| PretrainedError::Read {
        path: path.to_path_buf(),
        message,
    };
    // The readers' own message for a missing file does not name it.
    std::fs::metadata(path).map_err(|e| read_err(e.to_string()))?;
    // Applied to a copy (the tensors are shared, not copied) so that an error leaves `resnet`
    // as it was.
    let mut candidate = resnet.clone();
    let result = match WeightsFormat::of(path) {
        WeightsFormat::Pytorch => {
            let mut store = PytorchStore::from_file(path)
                .allow_partial(true)
                .validate(false)
                // Renumbering gaps would move `layer1.2` onto `layer1.1` in a partial file.
                .map_indices_contiguous(false);
            for &(from, to) in remap {
                store = store.with_key_remapping(from, to);
            }
            apply(&mut candidate, &mut store, path)?
        }
        WeightsFormat::Safetensors => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .allow_partial(true)
                .validate(false);
            for &(from, to) in remap {
                store = store.with_key_remapping(from, to);
            }
            apply(&mut candidate, &mut store, path)?
        }
    };
    let named = |p: &String| format!("{prefix}{p}");
    if let Some(error) = result.errors.first() {
        return Err(match error {
            ApplyError::ShapeMismatch {
                path: key,
                expected,
                found,
            } => PretrainedError::Shape {
                path: path.to_path_buf(),
                key: named(key),
                expected: expected.to_vec(),
                found: found.to_vec(),
            },
            ApplyError::DTypeMismatch {
                path: key, found, ..
            } => PretrainedError::DType {
                path: path.to_path_buf(),
                key: named(key),
                dtype: format!("{found:?}"),
            },
            ApplyError::AdapterError { path: key, message }
            | ApplyError::LoadError { path: key, message } => PretrainedError::Load {
                path: path.to_path_buf(),
                key: named(key),
                message: message.clone(),
            },
        });
    }
    let unexpected: Vec<String> = result
        .unused
        .iter()
        .filter(|k| !k.ends_with(IGNORED_SUFFIX))
        .cloned()
        .collect();
    if result.applied.is_empty() {
        return Err(PretrainedError::NothingMatched {
            path: path.to_path_buf(),
            count: result.unused.len(),
            examples: first_keys(&result.unused),
        });
    }
    *resnet = candidate;
    Ok(EncoderWeightsReport {
        path: path.to_path_buf(),
        matched: result.applied.iter().map(named).collect(),
        missing: result.missing.iter().map(|(p, _)| named(p)).collect(),
        unexpected,
    })
}

/// Checks the element types of the file (float tensors must be float32; integer ones such as
/// `num_batches_tracked` are left to the applier, which uses none of them) and applies it.
fn apply<M: Module + Clone, S: ModuleStore>(
    resnet: &mut M,
    store: &mut S,
    path: &Path,
) -> Result<ApplyResult, PretrainedError> {
    let read_err = |e: S::Error| PretrainedError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let tensors = store.get_all_tensors().map_err(read_err)?;
    if let Some(t) = tensors
        .values()
        .find(|t| t.dtype.is_float() && t.dtype != DType::F32)
    {
        return Err(PretrainedError::DType {
            path: path.to_path_buf(),
            key: t.name.clone(),
            dtype: format!("{:?}", t.dtype),
        });
    }
    resnet.load_from(store).map_err(read_err)
}

/// Up to five keys, quoted, for an error message.
fn first_keys(keys: &[String]) -> String {
    let shown: Vec<String> = keys.iter().take(5).map(|k| format!("`{k}`")).collect();
    match keys.len() {
        0 => "no tensors".into(),
        n if n > shown.len() => format!("{}, ...", shown.join(", ")),
        _ => shown.join(", "),
    }
}
