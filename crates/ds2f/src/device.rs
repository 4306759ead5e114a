//! Device selection by name. A GPU device is only ever chosen explicitly: with no GPU and no
//! Vulkan driver, burn's `wgpu` device hangs instead of failing, so nothing probes for one.
use burn::tensor::Device;

use crate::error::DeviceError;

/// Parses `cpu`, `wgpu`, `wgpu:N` or `cuda:N` into a device (without autodiff).
///
/// `cpu` is burn's pure-Rust `flex` backend (multi-threaded with rayon). `wgpu` and `cuda`
/// exist only in builds with the cargo features of the same names.
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
        #[cfg(not(feature = "cuda"))]
        assert!(
            select("cuda:0")
                .unwrap_err()
                .to_string()
                .contains("--features cuda")
        );
    }
}
