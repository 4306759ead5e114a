//! burn operations that run ds2f's own CPU kernels (crate `ds2f_kernels`) where burn's are slow,
//! and burn's own operations everywhere else. Glue only: no raw-slice kernel and no `unsafe`
//! here.
//!
//! Each function here computes what the burn operation(s) it names compute, on every device
//! (up to float rounding). Where it runs is one decision, [`Route::of`] its operands, taken once
//! per call:
//! - [`Route::FlexAutodiff`] (training on the pure-Rust CPU device): a convolution, batch norm
//!   or `tanh` is one autodiff operation whose passes are our kernels;
//! - [`Route::Flex`] (inference on it): the convolution uses the same forward kernel, a
//!   convolution + batch norm (+ ReLU) is one fused kernel ([`conv_bn`]), and bilinear resizing
//!   and max pooling have kernels of their own;
//! - [`Route::LibTorchAutodiff`] / [`Route::LibTorch`] (`tch` feature): a convolution, batch
//!   norm or whole block is one operation differentiated by libtorch's own kernels
//!   (`libtorch/`);
//! - [`Route::Burn`] (GPU devices, other dtypes, gradient checkpointing, operands on different
//!   devices): burn's operation, chosen by the op itself (no caller routes).
//!
//! docs/performance.md measures the difference; `ds2f_kernels` says why each kernel is
//! hand-written.

mod batch_norm;
mod conv;
mod conv_bn;
mod gelu;
#[cfg(feature = "tch")]
mod libtorch;
mod resample;
mod tanh;

pub use batch_norm::{batch_norm_act, batch_norm_module};
pub use conv::{conv2d, conv2d_module};
pub use conv_bn::{Activation, conv_bn, conv_bn_cat};
pub use gelu::{gelu, gelu_composed};
pub use resample::{
    bilinear, bilinear_inference, bilinear_separable, max_pool_inference, max_pool2d,
};
pub use tanh::tanh;

use burn::backend::{DispatchDevice, GradientCheckpointingStrategy};
use burn::tensor::{Bytes, DType, Shape, Tensor};
use burn_flex::{FlexTensor, Layout};

/// The device family a tensor lives on, whatever its dtype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// The pure-Rust CPU device (`flex`), with or without autodiff.
    Flex,
    /// The libtorch device (`tch` feature), with or without autodiff.
    LibTorch,
    /// A GPU device (wgpu, cuda).
    Other,
}

/// Where an operation runs: the one routing decision of every op of this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// f32 on `flex` without autodiff (inference): our forward kernels.
    Flex,
    /// f32 on `flex` with autodiff and no gradient checkpointing: our autodiff operations.
    FlexAutodiff,
    /// f32 on libtorch without autodiff (`tch` feature): libtorch graphs at inference.
    LibTorch,
    /// f32 on libtorch with autodiff and no gradient checkpointing (`tch` feature): one burn
    /// operation differentiated by libtorch.
    LibTorchAutodiff,
    /// Every other case (a GPU device, another dtype, gradient checkpointing, operands on
    /// different routes): burn's own operation, on a device of this family.
    Burn(Family),
}

impl Route {
    /// The route of an operation on `x` alone.
    pub fn of<const D: usize>(x: &Tensor<D>) -> Route {
        let device = x.device();
        let (family, autodiff, checkpointing) = match device.as_dispatch() {
            DispatchDevice::Autodiff(inner) => (
                family(inner),
                true,
                inner.gradient_checkpointing_strategy() != GradientCheckpointingStrategy::Disabled,
            ),
            plain => (family(plain), false, false),
        };
        if x.dtype() != DType::F32 || checkpointing {
            return Route::Burn(family);
        }
        match (family, autodiff) {
            (Family::Flex, false) => Route::Flex,
            (Family::Flex, true) => Route::FlexAutodiff,
            (Family::LibTorch, false) => Route::LibTorch,
            (Family::LibTorch, true) => Route::LibTorchAutodiff,
            (Family::Other, _) => Route::Burn(Family::Other),
        }
    }

    /// The route of an operation on the operands of `self` and on `t`: the same when `t`'s
    /// is, else burn's operation.
    pub fn and<const D: usize>(self, t: &Tensor<D>) -> Route {
        if Route::of(t) == self {
            self
        } else {
            Route::Burn(self.family())
        }
    }

    /// [`Route::and`] for an optional operand (none: unchanged).
    pub fn and_some<const D: usize>(self, t: Option<&Tensor<D>>) -> Route {
        t.map_or(self, |t| self.and(t))
    }

    /// The device family of the route.
    pub fn family(self) -> Family {
        match self {
            Route::Flex | Route::FlexAutodiff => Family::Flex,
            Route::LibTorch | Route::LibTorchAutodiff => Family::LibTorch,
            Route::Burn(family) => family,
        }
    }
}

/// The family of a device (for an autodiff device, of the device it wraps).
fn family(device: &DispatchDevice) -> Family {
    match device {
        DispatchDevice::Flex(_) => Family::Flex,
        DispatchDevice::Autodiff(inner) => family(inner),
        #[cfg(feature = "tch")]
        DispatchDevice::LibTorch(_) => Family::LibTorch,
        #[allow(unreachable_patterns)]
        _ => Family::Other,
    }
}

/// Whether `x` lives on the pure-Rust CPU device (`flex`, with or without autodiff, any
/// dtype): `Route::of(x).family() == Family::Flex`.
pub fn on_flex<const D: usize>(x: &Tensor<D>) -> bool {
    Route::of(x).family() == Family::Flex
}

/// A contiguous f32 `flex` tensor holding `values`.
fn f32_tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape.into()),
        DType::F32,
    )
}

/// The values of a contiguous f32 `flex` tensor (callers make it contiguous first).
fn f32_data(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}
