//! `ops::tanh` against burn's `tanh`: values, and the gradient from the kept output.
use burn::prelude::*;
use burn::tensor::Distribution;

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// Hand values: tanh(0.5) = 0.46211716, 1 − tanh²(0.5) = 0.78644773; tanh(−2) = −0.96402758,
/// 1 − tanh²(−2) = 0.07065082; tanh(0) = 0, derivative 1.
#[test]
fn hand_values_and_derivatives() {
    let device = Device::flex().autodiff();
    let x = Tensor::<1>::from_floats([0.5, -2.0, 0.0], &device).require_grad();
    let y = ds2f::ops::tanh(x.clone());
    let grads = y.clone().sum().backward();
    let dx = values(x.grad(&grads).expect("input gradient"));
    let (want_y, want_dx) = (
        [0.462_117_16, -0.964_027_6, 0.0],
        [0.786_447_7, 0.070_650_82, 1.0],
    );
    for (got, want) in values(y.inner()).into_iter().zip(want_y) {
        assert!((got - want).abs() < 1e-6, "tanh: {got} vs {want}");
    }
    for (got, want) in dx.into_iter().zip(want_dx) {
        assert!((got - want).abs() < 1e-6, "tanh': {got} vs {want}");
    }
}

/// A 4-D tensor with an upstream gradient: output and input gradient equal burn's autodiff
/// `tanh` (which recomputes `tanh` in its backward).
#[test]
fn four_d_equals_burn() {
    let device = Device::flex().autodiff();
    device.seed(31);
    let shape = [2, 3, 40, 37]; // several parallel chunks
    let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.5), &device);
    let upstream = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let mut results = Vec::new();
    for ours in [true, false] {
        let x = x.clone().detach().require_grad();
        let y = if ours {
            ds2f::ops::tanh(x.clone())
        } else {
            burn::tensor::activation::tanh(x.clone())
        };
        let grads = (y.clone() * upstream.clone()).sum().backward();
        results.push((values(y.inner()), values(x.grad(&grads).expect("gradient"))));
    }
    let ((y1, g1), (y2, g2)) = (&results[0], &results[1]);
    for (a, b) in y1.iter().zip(y2) {
        assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
    }
    for (a, b) in g1.iter().zip(g2) {
        assert!((a - b).abs() <= 2e-6 * b.abs().max(1.0), "{a} vs {b}");
    }
    // Plain flex is burn's operation.
    let plain = ds2f::ops::tanh(x.clone().inner());
    assert_eq!(
        values(plain),
        values(burn::tensor::activation::tanh(x.inner()))
    );
}
