//! `bilinear_separable` (the resize GPU devices use, since burn 0.22.1's GPU backends have no
//! bilinear backward) against burn's `interpolate` on the CPU: same output and the same input
//! gradient, for both `align_corners` modes, up and down, per axis.
use burn::tensor::{Device, Distribution, Tensor};
use ds2f::model::unet::{bilinear, bilinear_separable};

fn max_abs(t: Tensor<4>) -> f32 {
    t.abs().max().into_scalar::<f32>()
}

#[test]
fn separable_bilinear_equals_interpolate_with_gradients() {
    let device = Device::flex().autodiff();
    device.seed(21);
    let x = Tensor::<4>::random([2, 3, 7, 9], Distribution::Normal(0.0, 1.0), &device);
    // Up both ways (the decoder), down, mixed, and one axis unchanged.
    let sizes = [[14, 18], [13, 17], [4, 5], [3, 20], [7, 4]];
    let upstreams: Vec<Tensor<4>> = sizes
        .iter()
        .map(|&[h, w]| Tensor::random([2, 3, h, w], Distribution::Normal(0.0, 1.0), &device))
        .collect();
    for (size, upstream) in sizes.into_iter().zip(upstreams) {
        for align in [true, false] {
            let mut results = Vec::new();
            for separable in [true, false] {
                let x = x.clone().detach().require_grad();
                let y = if separable {
                    bilinear_separable(x.clone(), size, align)
                } else {
                    bilinear(x.clone(), size, align)
                };
                let grads = (y.clone() * upstream.clone()).sum().backward();
                results.push((y.inner(), x.grad(&grads).expect("input gradient")));
            }
            let (a, b) = (results.remove(0), results.remove(0));
            assert_eq!(a.0.dims(), [2, 3, size[0], size[1]]);
            let out_err = max_abs(a.0 - b.0.clone()) / max_abs(b.0);
            let grad_err = max_abs(a.1 - b.1.clone()) / max_abs(b.1);
            assert!(out_err < 1e-6, "{size:?} align {align}: output {out_err}");
            assert!(
                grad_err < 1e-5,
                "{size:?} align {align}: gradient {grad_err}"
            );
        }
    }
}

/// The inference kernels (`ops::bilinear_inference`, `ops::max_pool_inference`, used on plain
/// `flex`) against burn's `interpolate` and `max_pool2d`; on an autodiff device they decline.
#[test]
fn inference_kernels_equal_burn() {
    use burn::tensor::module::{interpolate, max_pool2d};
    use burn::tensor::ops::{InterpolateMode, InterpolateOptions, MaxPoolOptions};
    let device = Device::flex();
    device.seed(22);
    let x = Tensor::<4>::random([2, 3, 11, 14], Distribution::Normal(0.0, 1.0), &device);
    for size in [[22, 28], [21, 27], [5, 6], [11, 30], [1, 1]] {
        for align in [true, false] {
            let ours = ds2f::ops::bilinear_inference(&x, size, align).expect("plain flex");
            let theirs = interpolate(
                x.clone(),
                InterpolateOptions::new(InterpolateMode::Bilinear)
                    .with_align_corners(align)
                    .with_output_size(size),
            );
            assert_eq!(ours.dims(), theirs.dims());
            let err = max_abs(ours - theirs.clone()) / max_abs(theirs);
            assert!(err < 1e-6, "{size:?} align {align}: {err}");
        }
    }
    for (k, s, p) in [(3, 2, 1), (2, 2, 0), (3, 1, 1), (5, 3, 2)] {
        let ours = ds2f::ops::max_pool_inference(&x, k, s, p).expect("plain flex");
        let theirs = max_pool2d(
            x.clone(),
            MaxPoolOptions::new([k, k])
                .with_stride([s, s])
                .with_padding([p, p]),
        );
        assert_eq!(ours.dims(), theirs.dims(), "k {k} s {s} p {p}");
        // Max pooling selects values: exactly equal.
        assert_eq!(max_abs(ours - theirs), 0.0, "k {k} s {s} p {p}");
    }
    let ad = Device::flex().autodiff();
    let x = Tensor::<4>::from_data(x.to_data(), &ad);
    assert!(ds2f::ops::bilinear_inference(&x, [4, 4], true).is_none());
    assert!(ds2f::ops::max_pool_inference(&x, 3, 2, 1).is_none());
}
