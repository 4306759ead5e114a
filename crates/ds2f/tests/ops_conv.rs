//! `ds2f::ops::conv2d` against burn's own convolution: same output and the same gradients for
//! the input, the weight and the bias, over the geometries the models use (3×3, 1×1, dilated,
//! grouped, depthwise) and the ones they might (strides, odd sizes, asymmetric kernels).
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor};
use ds2f::ops;

/// One case: input [n, cin, h, w], weight [cout, cin/groups, kh, kw].
struct Case {
    n: usize,
    cin: usize,
    cout: usize,
    hw: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    bias: bool,
}

fn max_rel_err(a: Tensor<4>, b: Tensor<4>) -> f32 {
    let scale = b.clone().abs().max().into_scalar::<f32>().max(1e-3);
    (a - b).abs().max().into_scalar::<f32>() / scale
}

fn check(case: Case) {
    let device = Device::flex().autodiff();
    device.seed(7);
    let [h, w] = case.hw;
    let x = Tensor::<4>::random(
        [case.n, case.cin, h, w],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let weight = Tensor::<4>::random(
        [
            case.cout,
            case.cin / case.groups,
            case.kernel[0],
            case.kernel[1],
        ],
        Distribution::Normal(0.0, 0.5),
        &device,
    );
    let bias = case
        .bias
        .then(|| Tensor::<1>::random([case.cout], Distribution::Normal(0.0, 1.0), &device));
    let options = ConvOptions::new(case.stride, case.padding, case.dilation, case.groups);
    // A non-uniform upstream gradient (the same for both), so that every output position counts
    // differently. Drawn once: tests run in parallel and share burn's seeded generator.
    let out_dims = burn_conv2d(x.clone(), weight.clone(), bias.clone(), options.clone()).dims();
    let upstream = Tensor::<4>::random(out_dims, Distribution::Normal(0.0, 1.0), &device);
    let mut results = Vec::new();
    for ours in [true, false] {
        let x = x.clone().detach().require_grad();
        let weight = weight.clone().detach().require_grad();
        let bias = bias.clone().map(|b| b.detach().require_grad());
        let out = if ours {
            ops::conv2d(x.clone(), weight.clone(), bias.clone(), options.clone())
        } else {
            burn_conv2d(x.clone(), weight.clone(), bias.clone(), options.clone())
        };
        let grads = (out.clone() * upstream.clone()).sum().backward();
        let gx = x.grad(&grads).expect("input gradient");
        let gw = weight.grad(&grads).expect("weight gradient");
        let gb = bias.map(|b| b.grad(&grads).expect("bias gradient"));
        results.push((out.inner(), gx, gw, gb));
    }
    let (ours, theirs) = (results.remove(0), results.remove(0));
    assert_eq!(ours.0.dims(), theirs.0.dims());
    assert!(max_rel_err(ours.0, theirs.0) < 1e-5, "output");
    assert!(max_rel_err(ours.1, theirs.1) < 1e-4, "input gradient");
    assert!(max_rel_err(ours.2, theirs.2) < 1e-4, "weight gradient");
    if let (Some(a), Some(b)) = (ours.3, theirs.3) {
        let err =
            (a - b.clone()).abs().max().into_scalar::<f32>() / b.abs().max().into_scalar::<f32>();
        assert!(err < 1e-4, "bias gradient {err}");
    }
}

fn case(cin: usize, cout: usize, kernel: usize, padding: usize) -> Case {
    Case {
        n: 2,
        cin,
        cout,
        hw: [13, 17],
        kernel: [kernel, kernel],
        stride: [1, 1],
        padding: [padding, padding],
        dilation: [1, 1],
        groups: 1,
        bias: true,
    }
}

#[test]
fn conv3x3_same_padding_with_and_without_bias() {
    check(case(5, 7, 3, 1));
    check(Case {
        bias: false,
        ..case(8, 4, 3, 1)
    });
}

#[test]
fn conv1x1_and_valid_padding() {
    check(case(6, 3, 1, 0));
    check(case(3, 5, 3, 0));
}

#[test]
fn dilated_and_asymmetric_kernels() {
    check(Case {
        dilation: [2, 3],
        padding: [2, 3],
        ..case(4, 4, 3, 0)
    });
    check(Case {
        kernel: [1, 3],
        padding: [0, 1],
        ..case(3, 6, 1, 0)
    });
}

#[test]
fn grouped_and_depthwise() {
    check(Case {
        groups: 4,
        ..case(8, 12, 3, 1)
    });
    // Depthwise, as in MS-Conv and SSIM.
    check(Case {
        groups: 6,
        dilation: [2, 2],
        padding: [2, 2],
        ..case(6, 6, 3, 0)
    });
    // Depthwise with a channel multiplier goes through the gemm path.
    check(Case {
        groups: 3,
        ..case(3, 6, 3, 1)
    });
}

#[test]
fn strided_and_single_image() {
    check(Case {
        stride: [2, 2],
        ..case(4, 6, 3, 1)
    });
    check(Case {
        stride: [2, 1],
        groups: 4,
        ..case(4, 4, 3, 1)
    });
    check(Case {
        n: 1,
        hw: [40, 9],
        ..case(3, 2, 5, 2)
    });
}

#[test]
fn large_input_spans_several_tiles() {
    // K = 64·9 = 576 → 1 MiFloat tiles of 24 rows at width 75: several tiles per image.
    check(Case {
        hw: [70, 75],
        ..case(64, 8, 3, 1)
    });
}

#[test]
fn module_wrapper_equals_conv2d_forward() {
    let device = Device::flex().autodiff();
    device.seed(3);
    let conv = Conv2dConfig::new([3, 5], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 2, 1, 2))
        .init(&device);
    let x = Tensor::<4>::random([1, 3, 9, 8], Distribution::Normal(0.0, 1.0), &device);
    let ours = ops::conv2d_module(&conv, x.clone());
    let theirs = conv.forward(x);
    assert_eq!(ours.dims(), [1, 5, 9, 10]);
    assert!(max_rel_err(ours, theirs) < 1e-6);
    // Inference (no autodiff) takes burn's path and gives the same numbers.
    let plain = Device::flex();
    let conv = Conv2dConfig::new([3, 5], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 2, 1, 2))
        .init(&plain);
    let x = Tensor::<4>::random([1, 3, 9, 8], Distribution::Normal(0.0, 1.0), &plain);
    assert!(max_rel_err(ops::conv2d_module(&conv, x.clone()), conv.forward(x)) < 1e-6);
}

#[test]
fn gradients_do_not_depend_on_the_thread_count() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        pool.install(|| {
            let device = Device::flex().autodiff();
            // Fixed values, not the seeded generator (shared with tests running in parallel).
            let values = |shape: [usize; 4], k: f32| {
                let n: usize = shape.iter().product();
                let v: Vec<f32> = (0..n).map(|i| (i as f32 * k).sin()).collect();
                Tensor::<4>::from_data(burn::tensor::TensorData::new(v, shape), &device)
            };
            let x = values([3, 16, 37, 29], 0.37).require_grad();
            let w = values([8, 16, 3, 3], 1.13).require_grad();
            let out = ops::conv2d(
                x.clone(),
                w.clone(),
                None,
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            );
            let grads = (out.clone() * out).sum().backward();
            let gw: Vec<f32> = w
                .grad(&grads)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            let gx: Vec<f32> = x
                .grad(&grads)
                .unwrap()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap();
            (gw, gx)
        })
    };
    let one = run(1);
    for threads in [2, 3] {
        let other = run(threads);
        assert!(
            one.0 == other.0,
            "weight gradient differs with {threads} threads"
        );
        assert!(
            one.1 == other.1,
            "input gradient differs with {threads} threads"
        );
    }
}

/// `ops::batch_norm_act` against burn's `BatchNorm::forward` (then `relu`) in training mode,
/// without and with the fused ReLU: output, gradients of the input, gamma and beta, and the
/// running statistics afterwards.
#[test]
fn batch_norm_training_equals_burn() {
    use burn::nn::BatchNormConfig;
    use ds2f::ops::Activation;
    let device = Device::flex().autodiff();
    device.seed(9);
    // Two separate layers with the same non-trivial affine parameters (clones would share
    // their running statistics).
    let gamma = Tensor::<1>::random([6], Distribution::Normal(1.0, 0.3), &device);
    let beta = Tensor::<1>::random([6], Distribution::Normal(0.0, 0.5), &device);
    let layer = || {
        let mut bn = BatchNormConfig::new(6).init(&device);
        bn.gamma = burn::module::Param::from_tensor(gamma.clone().detach());
        bn.beta = burn::module::Param::from_tensor(beta.clone().detach());
        bn
    };
    let x = Tensor::<4>::random([3, 6, 7, 5], Distribution::Normal(0.5, 2.0), &device);
    let upstream = Tensor::<4>::random([3, 6, 7, 5], Distribution::Normal(0.0, 1.0), &device);
    for activation in [Activation::Identity, Activation::Relu] {
        let mut results = Vec::new();
        for ours in [true, false] {
            let layer = layer();
            let x = x.clone().detach().require_grad();
            let out = if ours {
                ds2f::ops::batch_norm_act(&layer, x.clone(), activation)
            } else {
                let y = layer.forward(x.clone());
                match activation {
                    Activation::Identity => y,
                    Activation::Relu => burn::tensor::activation::relu(y),
                }
            };
            let grads = (out.clone() * upstream.clone()).sum().backward();
            let gx = x.grad(&grads).expect("input gradient");
            let gg = layer.gamma.grad(&grads).expect("gamma gradient");
            let gb = layer.beta.grad(&grads).expect("beta gradient");
            let rm = layer.running_mean.value();
            let rv = layer.running_var.value();
            results.push((out.inner(), gx, gg, gb, rm, rv));
        }
        let (a, b) = (results.remove(0), results.remove(0));
        if activation == Activation::Relu {
            // A real mix of clipped and passed values, so the mask matters.
            let zeros = b.0.clone().equal_elem(0.0).int().sum().into_scalar::<i64>();
            assert!((200..430).contains(&zeros), "{zeros} of 630 clipped");
        }
        let what = format!("{activation:?}");
        assert!(max_rel_err(a.0, b.0) < 1e-5, "{what} output");
        assert!(max_rel_err(a.1, b.1) < 1e-4, "{what} input gradient");
        let close1 = |p: Tensor<1>, q: Tensor<1>| {
            let scale = q.clone().abs().max().into_scalar::<f32>().max(1e-3);
            (p - q).abs().max().into_scalar::<f32>() / scale
        };
        assert!(close1(a.2, b.2) < 1e-4, "{what} gamma gradient");
        assert!(close1(a.3, b.3) < 1e-4, "{what} beta gradient");
        assert!(
            close1(a.4.inner(), b.4.inner()) < 1e-5,
            "{what} running mean"
        );
        assert!(
            close1(a.5.inner(), b.5.inner()) < 1e-5,
            "{what} running variance"
        );
    }
}

/// `ops::conv_bn` at inference (plain `flex`: batch norm folded into the convolution, ReLU in
/// its epilogue) against burn's three operations, with non-trivial running statistics, a conv
/// bias and both activations; and with autodiff (training) it is the three operations.
#[test]
fn conv_bn_inference_equals_the_three_operations() {
    use burn::module::{Param, RunningState};
    use burn::nn::BatchNormConfig;
    use burn::tensor::activation::relu;
    let device = Device::flex();
    // Drawn in one place (tests share burn's seeded generator).
    device.seed(11);
    let x = Tensor::<4>::random([2, 5, 19, 23], Distribution::Normal(0.0, 1.0), &device);
    let mut conv = Conv2dConfig::new([5, 12], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    conv.bias = Some(Param::from_tensor(Tensor::<1>::random(
        [12],
        Distribution::Normal(0.0, 1.0),
        &device,
    )));
    let mut bn = BatchNormConfig::new(12).init(&device);
    let stat =
        |mean: f64, std: f64| Tensor::<1>::random([12], Distribution::Normal(mean, std), &device);
    bn.gamma = Param::from_tensor(stat(1.0, 0.5));
    bn.beta = Param::from_tensor(stat(0.0, 0.5));
    bn.running_mean = RunningState::new(stat(0.3, 1.0));
    bn.running_var = RunningState::new(stat(2.0, 0.5).abs() + 0.1);
    // A small image (im2col + gemm on every CPU) and one of 64×70 output pixels (the
    // implicit-GEMM kernel where the CPU has AVX-512 or AVX2).
    let large = Tensor::<4>::random([1, 5, 64, 70], Distribution::Normal(0.0, 1.0), &device);
    for x in [x.clone(), large] {
        let dims = x.dims();
        let three = bn.forward(conv.forward(x.clone()));
        let fused = ops::conv_bn(&conv, &bn, x.clone(), ops::Activation::Identity);
        assert_eq!(fused.dims(), [dims[0], 12, dims[2], dims[3]]);
        assert!(
            max_rel_err(fused, three.clone()) < 1e-5,
            "identity {dims:?}"
        );
        let fused = ops::conv_bn(&conv, &bn, x.clone(), ops::Activation::Relu);
        let negatives = three
            .clone()
            .lower_elem(0.0)
            .int()
            .sum()
            .into_scalar::<i64>();
        assert!(negatives > 100, "the case exercises the ReLU: {negatives}");
        assert!(max_rel_err(fused, relu(three)) < 1e-5, "relu {dims:?}");
    }

    // With autodiff the batch norm trains: batch statistics, not the running ones.
    let ad = Device::flex().autodiff();
    let conv = Conv2dConfig::new([5, 12], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&ad);
    let bn = BatchNormConfig::new(12).init(&ad);
    let x = Tensor::<4>::from_data(x.to_data(), &ad);
    let three = relu(bn.forward(conv.forward(x.clone())));
    let bn2 = BatchNormConfig::new(12).init(&ad);
    let ours = ops::conv_bn(&conv, &bn2, x, ops::Activation::Relu);
    assert!(max_rel_err(ours, three) < 1e-5, "training");
}

/// `ops::conv_bn_cat` equals `ops::conv_bn` of the concatenation: at inference on a plane large
/// enough for the implicit-GEMM kernel (which then reads the parts directly) and on a small one
/// (concatenated), and in training.
#[test]
fn conv_bn_cat_equals_conv_bn_of_the_concatenation() {
    use burn::module::{Param, RunningState};
    use burn::nn::BatchNormConfig;
    for device in [Device::flex(), Device::flex().autodiff()] {
        device.seed(12);
        let conv = Conv2dConfig::new([7, 10], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false)
            .init(&device);
        let mut bn = BatchNormConfig::new(10).init(&device);
        let stat = |m: f64| Tensor::<1>::random([10], Distribution::Normal(m, 0.5), &device);
        bn.gamma = Param::from_tensor(stat(1.0));
        bn.beta = Param::from_tensor(stat(0.0));
        bn.running_mean = RunningState::new(stat(0.2));
        bn.running_var = RunningState::new(stat(1.0).abs() + 0.2);
        for size in [[66, 70], [9, 13]] {
            let a = Tensor::<4>::random(
                [1, 3, size[0], size[1]],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let b = Tensor::<4>::random(
                [1, 4, size[0], size[1]],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let whole = Tensor::cat(vec![a.clone(), b.clone()], 1);
            let reference = ops::conv_bn(&conv, &bn, whole, ops::Activation::Relu);
            let parts = ops::conv_bn_cat(&conv, &bn, vec![a, b], ops::Activation::Relu);
            assert_eq!(parts.dims(), [1, 10, size[0], size[1]]);
            let err = max_rel_err(parts, reference);
            assert!(
                err < 1e-6,
                "{size:?} autodiff {}: {err}",
                device.is_autodiff()
            );
        }
    }
}
