//! The reference implementation's weights in ds2f: a state dict of imed_vision's U-Net DS2F
//! (`imed_vision/models/segmentation/unet.py::Unet`, SPEC §1.1, with `CrossGL` of §1.2) saved by
//! `torch.save(model.state_dict())` (`.pth`) or as `.safetensors`, loaded into the configured
//! model by the loader of `model.encoder_weights` ([`crate::model::pretrained`]) with the
//! reference's names mapped to ds2f's ([`REFERENCE_NAMES`]).
//!
//! The reference wraps each convolution in its `Conv2d` (`.conv` + `.norm_layer`), calls the
//! decoder stages `up6..up9` / `sr_up6..sr_up9` and their 1×1 reduction `upsample_conv`, the
//! seg head `out_conv`, the SR head the `nn.Sequential` `sr_module` (convolutions at 0, 2, 4;
//! one 1×1 convolution at r = 1) and the MSCG `sr_seg_fusion_module`, whose first
//! `nn.Sequential` `fusion_conv` holds the 1×1 fuse conv (0), its BN (1) and the `Gate` (3).
//! A state dict saved from `nn.DataParallel` (`module.` before every key) loads too, and so
//! does one with ds2f's own names (a `ds2f export` file: no key needs mapping).
//!
//! Keys that remain unmatched are reported, not refused (a U-Net+Inter state dict has no SR
//! stream; a DS2F one imported into `unet_inter` leaves the SR stream unused), except when no
//! key matches at all; a tensor whose shape differs from the parameter's is an error naming
//! the key.
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::PretrainedError;
use crate::model::pretrained::load_state_dict;
use crate::model::{Backbone, DualStream, ModelConfig};

use super::error::ExportError;

/// The mapping from the reference's state-dict keys to ds2f's parameter paths (regex,
/// replacement), applied in order to every key of the file. ds2f's BN `gamma` / `beta` are
/// found under PyTorch's `weight` / `bias` by the loader.
pub const REFERENCE_NAMES: [(&str, &str); 23] = [
    // nn.DataParallel / DistributedDataParallel checkpoints.
    (r"^module\.", ""),
    // Encoder: Downsample.conv = DoubleConv(conv1, conv2), each the reference's Conv2d.
    (
        r"^down([1-4])\.conv\.conv([12])\.conv\.",
        "encoder.down$1.conv.conv$2.",
    ),
    (
        r"^down([1-4])\.conv\.conv([12])\.norm_layer\.",
        "encoder.down$1.conv.bn$2.",
    ),
    (r"^down5\.conv([12])\.conv\.", "encoder.down5.conv$1."),
    (r"^down5\.conv([12])\.norm_layer\.", "encoder.down5.bn$1."),
    // Decoders: Upsample(upsample_conv, conv = DoubleConv).
    (
        r"^(sr_)?up([6-9])\.upsample_conv\.conv\.",
        "${1}decoder.up$2.reduce.conv.",
    ),
    (
        r"^(sr_)?up([6-9])\.upsample_conv\.norm_layer\.",
        "${1}decoder.up$2.reduce.bn.",
    ),
    (
        r"^(sr_)?up([6-9])\.conv\.conv([12])\.conv\.",
        "${1}decoder.up$2.conv.conv$3.",
    ),
    (
        r"^(sr_)?up([6-9])\.conv\.conv([12])\.norm_layer\.",
        "${1}decoder.up$2.conv.bn$3.",
    ),
    // The SR decoder sits in ds2f's `sr_branch` (after the two rules above: `sr_decoder.`).
    (r"^sr_decoder\.", "sr_branch.decoder."),
    // Heads.
    (r"^out_conv\.", "seg_head.conv."),
    (r"^sr_module\.0\.", "sr_branch.head.conv1."),
    (r"^sr_module\.2\.", "sr_branch.head.conv2."),
    (r"^sr_module\.4\.", "sr_branch.head.conv3."),
    (r"^sr_module\.(weight|bias)$", "sr_branch.head.conv3.$1"),
    // CrossGL = MSCG.
    (
        r"^sr_seg_fusion_module\.fusion_conv\.0\.",
        "shared_feature.fusion_conv.",
    ),
    (
        r"^sr_seg_fusion_module\.fusion_conv\.1\.",
        "shared_feature.fusion_bn.",
    ),
    (
        r"^sr_seg_fusion_module\.fusion_conv\.3\.rcab\.se\.0\.",
        "shared_feature.gate.rcab.se_reduce.",
    ),
    (
        r"^sr_seg_fusion_module\.fusion_conv\.3\.rcab\.se\.2\.",
        "shared_feature.gate.rcab.se_expand.",
    ),
    (
        r"^sr_seg_fusion_module\.fusion_conv\.3\.rcab\.(conv[12])\.",
        "shared_feature.gate.rcab.$1.",
    ),
    // msconv.convs.{0,1,2}, msconv.convs.3.conv (the image pool) and msconv.norm keep their
    // names.
    (
        r"^sr_seg_fusion_module\.fusion_conv\.3\.msconv\.",
        "shared_feature.gate.msconv.",
    ),
    (
        r"^sr_seg_fusion_module\.linear_cross_(sr|seg)\.0\.",
        "shared_feature.linear_cross_$1.",
    ),
    (
        r"^sr_seg_fusion_module\.gate_(sr|seg)\.",
        "shared_feature.gate_$1.",
    ),
];

/// What an import loaded and what it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The file.
    pub path: PathBuf,
    /// ds2f parameters (and BN statistics) set from the file, in the model's order.
    pub matched: Vec<String>,
    /// Parameters of the configured model the file does not have (they keep their
    /// initialisation), sorted.
    pub missing: Vec<String>,
    /// Keys of the file (after mapping) with no parameter in the model; `num_batches_tracked`
    /// left out, sorted.
    pub unexpected: Vec<String>,
}

impl fmt::Display for ImportReport {
    /// A summary line, then every missing and unexpected name (an import is reviewed once).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} tensors matched, {} parameters of the model missing from the file (kept at \
             their initialisation), {} tensors of the file unexpected (unused)",
            self.path.display(),
            self.matched.len(),
            self.missing.len(),
            self.unexpected.len()
        )?;
        for (what, names) in [("missing", &self.missing), ("unexpected", &self.unexpected)] {
            for name in names {
                write!(f, "\n  {what}: {name}")?;
            }
        }
        Ok(())
    }
}

/// Loads the reference state dict at `path` into `model` (built from `config` by
/// [`ModelConfig::init_train`]): encoder, seg decoder, seg head and, where the framework has
/// them, SR decoder, SR head and MSCG.
///
/// # Errors
/// [`ExportError::Unsupported`] naming `model.backbone` for a backbone other than the U-Net
/// (the mapping covers SPEC §1.1/§1.2); [`ExportError::Read`], [`ExportError::Shape`],
/// [`ExportError::DType`], [`ExportError::Load`] and [`ExportError::NothingMatched`] from the
/// loader. On error `model` is unchanged.
pub fn import_reference(
    model: &mut DualStream,
    config: &ModelConfig,
    path: &Path,
) -> Result<ImportReport, ExportError> {
    if config.backbone != Backbone::Unet {
        return Err(ExportError::Unsupported {
            key: "model.backbone".into(),
            reason: format!(
                "{:?}: only the reference's U-Net names (SPEC §1.1, §1.2) are mapped; the \
                 unet backbone imports",
                config.backbone
            ),
        });
    }
    let report =
        load_state_dict(model, path, "", &REFERENCE_NAMES).map_err(|e| from_loader(e, path))?;
    Ok(ImportReport {
        path: report.path,
        matched: report.matched,
        missing: report.missing,
        unexpected: report.unexpected,
    })
}

/// The loader's errors in the import's words.
fn from_loader(error: PretrainedError, path: &Path) -> ExportError {
    let path = path.to_path_buf();
    match error {
        PretrainedError::Read { message, .. } => ExportError::Read { path, message },
        PretrainedError::Shape {
            key,
            expected,
            found,
            ..
        } => ExportError::Shape {
            path,
            key,
            expected,
            found,
        },
        PretrainedError::DType { key, dtype, .. } => ExportError::DType { path, key, dtype },
        PretrainedError::Load { key, message, .. } => ExportError::Load { path, key, message },
        PretrainedError::NothingMatched {
            count, examples, ..
        } => ExportError::NothingMatched {
            path,
            count,
            examples,
        },
        PretrainedError::Config(e) => ExportError::Unsupported {
            key: "model".into(),
            reason: e.to_string(),
        },
    }
}
