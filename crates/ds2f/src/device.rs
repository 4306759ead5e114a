//! Device selection by name. A GPU device is only ever chosen explicitly: with no GPU and no
//! Vulkan driver, burn's `wgpu` device hangs instead of failing, so nothing probes for one.
use burn::tensor::Device;

use crate::error::DeviceError;

/// Parses `cpu`, `wgpu`, `wgpu:N`, `cuda:N`, `libtorch` or `libtorch-cuda:N` into a device
/// (without autodiff).
///
/// `cpu` is burn's pure-Rust `flex` backend (multi-threaded with rayon). `wgpu` and `cuda`
/// exist only in builds with the cargo features of the same names; `libtorch` (CPU) and
/// `libtorch-cuda` only in builds with the `tch` feature.
pub fn select(name: &str) -> Result<Device, DeviceError> {
    let (kind, index) = match name.split_once(':') {
        Some((k, i)) => (
            k,
            Some(i.parse::<usize>().map_err(|_| DeviceError::Unknown {
                name: name.to_string(),
            })?),
        ),
        None => (name, None),
    };
    match kind {
        "cpu" | "flex" if index.is_none() => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(match index {
            Some(i) => burn::tensor::DeviceKind::DiscreteGpu(i),
            None => burn::tensor::DeviceKind::DefaultDevice,
        })),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(index.unwrap_or(0))),
        // burn marks its libtorch backend deprecated; it is the one that runs PyTorch's own
        // kernels, which is what this device is for (docs/gpu.md).
        #[cfg(feature = "tch")]
        #[allow(deprecated)]
        "libtorch" if index.is_none() => {
            // As many intra-op threads as the rest of ds2f uses (rayon's count), which is what
            // the PyTorch scripts under bench/ set too; libtorch's own default is the number of
            // physical cores.
            tch::set_num_threads(rayon::current_num_threads() as i32);
            Ok(Device::libtorch())
        }
        #[cfg(feature = "tch")]
        #[allow(deprecated)]
        "libtorch-cuda" => Ok(Device::libtorch_cuda(index.unwrap_or(0))),
        #[cfg(not(feature = "tch"))]
        "libtorch" | "libtorch-cuda" => Err(DeviceError::NotBuilt {
            name: name.to_string(),
            feature: "tch".to_string(),
        }),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => Err(DeviceError::NotBuilt {
            name: name.to_string(),
            feature: kind.to_string(),
        }),
        #[cfg(not(feature = "cuda"))]
        "cuda" => Err(DeviceError::NotBuilt {
            name: name.to_string(),
            feature: kind.to_string(),
        }),
        _ => Err(DeviceError::Unknown {
            name: name.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_and_unknown_ones_rejected() {
        assert!(select("cpu").is_ok());
        for bad in ["tpu", "cpu:1", "wgpu:x", ""] {
            let e = select(bad).unwrap_err().to_string();
            assert!(e.contains("unknown device"), "{bad}: {e}");
        }
        #[cfg(not(feature = "tch"))]
        assert!(
            select("libtorch")
                .unwrap_err()
                .to_string()
                .contains("--features tch")
        );
        #[cfg(not(feature = "cuda"))]
        assert!(
            select("cuda:0")
                .unwrap_err()
                .to_string()
                .contains("--features cuda")
        );
    }
}
