//! Channels-last memory order for libtorch's oneDNN convolutions at inference, and back to
//! NCHW for the few-channel outputs that libtorch's up-sampling is slow on.
use burn::backend::libtorch::TchTensor;
use burn::backend::{DispatchDevice, LibTorch};
use burn::tensor::Tensor;

use super::torch;

/// `x` (`[n, c, h, w]`) in channels-last memory order: itself when it already is, else a copy.
pub(super) fn channels_last(x: tch::Tensor) -> tch::Tensor {
    if is_channels_last(&x) {
        x
    } else {
        // tch 0.22 has no memory-format argument: NHWC order by a permuted copy, viewed back.
        x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    }
}

/// Whether the strides of `x` (`[n, c, h, w]`) are those of a dense NHWC tensor.
fn is_channels_last(x: &tch::Tensor) -> bool {
    let (size, stride) = (x.size(), x.stride());
    size.len() == 4 && {
        let [_, c, _, w] = [size[0], size[1], size[2], size[3]];
        stride == [size[2] * w * c, 1, w * c, c]
    }
}

/// A convolution's output at inference on the libtorch device, back in NCHW order when it has
/// fewer than 16 channels (the class logits): libtorch's bilinear up-sampling after it
/// vectorises over the channels of a channels-last tensor and over the width of an NCHW one,
/// 3–5× slower on 2 channels (HRF size, 17 vs 4–7 ms). Every other tensor as it is.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`, returned with the same shape
pub(in crate::ops) fn few_channels_dense(x: Tensor<4>) -> Tensor<4> {
    if x.dims()[1] >= 16 || !matches!(x.device().as_dispatch(), DispatchDevice::LibTorch(_)) {
        return x;
    }
    let t = torch(x);
    let t = if is_channels_last(&t) {
        t.contiguous()
    } else {
        t
    };
    Tensor::from_primitive::<LibTorch>(TchTensor::new(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[n, c, h, w]` holding 0, 1, 2, … in NCHW order.
    fn counting(dims: [i64; 4]) -> tch::Tensor {
        tch::Tensor::arange(
            dims.iter().product::<i64>(),
            (tch::Kind::Float, tch::Device::Cpu),
        )
        .view(dims)
    }

    #[test]
    fn channels_last_keeps_values_and_shape_and_reorders_memory() {
        let x = counting([2, 3, 4, 5]);
        assert!(!is_channels_last(&x));
        let y = channels_last(x.shallow_clone());
        assert_eq!(y.size(), [2, 3, 4, 5]);
        assert_eq!(y.stride(), [60, 1, 15, 3]);
        assert!(is_channels_last(&y));
        assert_eq!(
            f64::try_from((&y - &x).abs().max()).expect("a scalar"),
            0.0,
            "same values at every index"
        );
        // Already channels-last: the same tensor, no copy.
        let z = channels_last(y.shallow_clone());
        assert_eq!(z.data_ptr(), y.data_ptr());
    }

    #[test]
    fn class_logits_leave_channels_last_and_features_keep_it() {
        let wrap = |t: tch::Tensor| Tensor::<4>::from_primitive::<LibTorch>(TchTensor::new(t));
        let strides = |t: Tensor<4>| {
            t.try_into_primitive::<LibTorch>()
                .expect("libtorch")
                .tensor
                .stride()
        };
        // 2 channels (logits): back to NCHW, same values.
        let logits = channels_last(counting([1, 2, 3, 4]));
        let dense = few_channels_dense(wrap(logits.shallow_clone()));
        assert_eq!(
            dense.clone().into_data(),
            wrap(counting([1, 2, 3, 4])).into_data()
        );
        assert_eq!(strides(dense), [24, 12, 4, 1]);
        // 16 channels (features): left channels-last.
        let features = wrap(channels_last(counting([1, 16, 3, 4])));
        assert_eq!(strides(few_channels_dense(features)), [192, 1, 64, 16]);
    }
}
