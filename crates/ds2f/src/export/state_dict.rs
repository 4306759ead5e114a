//! A module's tensors under PyTorch's names: what `torch.nn.Module.state_dict()` of the same
//! module tree holds (see [`super`] for the renaming rules).
use burn::module::Module;
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{BurnToPyTorchAdapter, ModuleAdapter, ModuleContext, ModuleSnapshot};
use burn::tensor::DType;

use super::error::ExportError;

/// Element type of a [`StateTensor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorKind {
    /// float32 (every parameter and BN running statistic).
    F32,
    /// int64 (BN's `num_batches_tracked`).
    I64,
}

/// One entry of a state dict: name, type, shape and little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct StateTensor {
    /// PyTorch name (`encoder.down1.conv.bn1.weight`).
    pub name: String,
    /// Element type.
    pub kind: TensorKind,
    /// Shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// Raw little-endian data.
    pub data: Vec<u8>,
}

impl StateTensor {
    /// The float32 values (empty for an int64 tensor).
    pub fn f32_values(&self) -> Vec<f32> {
        match self.kind {
            TensorKind::F32 => self
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            TensorKind::I64 => Vec::new(),
        }
    }
}

/// burn's PyTorch adapter (BN `gamma`/`beta` → `weight`/`bias`, Linear transposed) plus PReLU's
/// `alpha` → `weight`, which it leaves alone.
#[derive(Debug, Clone, Default)]
struct TorchNames;

impl ModuleAdapter for TorchNames {
    fn adapt(&self, tensor: PackTensor, ctx: ModuleContext<'_>) -> PackTensor {
        let mut tensor = BurnToPyTorchAdapter.adapt(tensor, ctx);
        if ctx.module_type() == Some("Struct:PRelu") && tensor.name.ends_with(".alpha") {
            let keep = tensor.name.len() - "alpha".len();
            tensor.name.truncate(keep);
            tensor.name.push_str("weight");
        }
        tensor
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// Path segments whose PyTorch name differs from ds2f's field name (burn field names cannot be
/// numbers): torchvision's ResNet shortcut `downsample.0` / `downsample.1`, and the
/// reference ESPNetv2's `refin_conv.0` / `refin_conv.1` (the down-sampling unit's input
/// reinforcement) and `pspMod.0` / `pspMod.1` (the decoder's EESP and PSP). Matched with the
/// dots around them, so `refin_cb` never matches inside `refin_cbr`.
pub const TORCH_RENAMES: [(&str, &str); 6] = [
    (".downsample.conv.", ".downsample.0."),
    (".downsample.bn.", ".downsample.1."),
    (".refin_cbr.", ".refin_conv.0."),
    (".refin_cb.", ".refin_conv.1."),
    (".psp_eesp.", ".pspMod.0."),
    (".psp.", ".pspMod.1."),
];

/// `name` (a ds2f parameter path, BN/PReLU already renamed) under PyTorch's name
/// ([`TORCH_RENAMES`]).
pub fn torch_name(name: &str) -> String {
    TORCH_RENAMES
        .iter()
        .fold(name.to_string(), |n, (from, to)| n.replace(from, to))
}

/// The suffix of a BN running statistic only BatchNorm has; a `num_batches_tracked` goes
/// beside each.
const RUNNING_VAR: &str = ".running_var";

/// `module`'s parameters and BN statistics under PyTorch's names ([`TORCH_RENAMES`] applied),
/// in the module's order, with
/// an int64 `num_batches_tracked` (0) after each BatchNorm's `running_var` (PyTorch's order
/// within a BN: `weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`).
///
/// # Errors
/// [`ExportError::DType`] for a parameter that is not float32 (`origin` names the model in
/// the message), [`ExportError::Read`] if a tensor cannot be read back from its device.
pub fn torch_state_dict<M: Module>(
    module: &M,
    origin: &std::path::Path,
) -> Result<Vec<StateTensor>, ExportError> {
    let tensors = module.collect(None, Some(Box::new(TorchNames)), true);
    let mut out = Vec::with_capacity(tensors.len() * 5 / 4);
    for tensor in tensors {
        let (name, dtype, shape, _, bytes) =
            tensor.into_parts().map_err(|e| ExportError::Read {
                path: origin.to_path_buf(),
                message: e.to_string(),
            })?;
        if dtype != DType::F32 {
            return Err(ExportError::DType {
                path: origin.to_path_buf(),
                key: name,
                dtype: format!("{dtype:?}"),
            });
        }
        let name = torch_name(&name);
        let counter = name
            .strip_suffix(RUNNING_VAR)
            .map(|bn| format!("{bn}.num_batches_tracked"));
        out.push(StateTensor {
            name,
            kind: TensorKind::F32,
            shape: shape.iter().copied().collect(),
            data: bytes.to_vec(),
        });
        if let Some(name) = counter {
            out.push(StateTensor {
                name,
                kind: TensorKind::I64,
                shape: Vec::new(),
                data: 0i64.to_le_bytes().to_vec(),
            });
        }
    }
    Ok(out)
}
