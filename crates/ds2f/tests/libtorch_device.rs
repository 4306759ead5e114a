//! Training on the libtorch device (`tch` feature) computes what training on the pure-Rust CPU
//! device computes: our convolution and batch-norm operations, which hand their backward pass
//! to libtorch's autograd there, against the `flex` ones; then a whole DS2F training step (all
//! four outputs, all losses) with the same weights and batch: the loss terms, the gradient of
//! every parameter and the updated running statistics.
//!
//! Built only with `--features tch`, which needs PyTorch 2.9.0 at build time (docs/gpu.md):
//!
//! ```text
//! LIBTORCH_USE_PYTORCH=1 cargo test --release -p ds2f --features tch --test libtorch_device
//! ```
#![cfg(feature = "tch")]

use burn::module::Module;
use burn::nn::BatchNormConfig;
use burn::optim::GradientsParams;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use ds2f::config::{ExperimentConfig, LossConfig};
use ds2f::model::complexity::trainable_parameters;
use ds2f::model::{Framework, ModelConfig};
use ds2f::ops::{self, Activation};
use ds2f::train::Objective;

fn libtorch() -> Device {
    ds2f::device::select("libtorch")
        .expect("a tch build")
        .autodiff()
}

/// `max |a − b| / max |b|`, both read back to the host.
fn rel_err(a: TensorData, b: TensorData) -> f32 {
    rel_err_floor(a, b, 1e-6)
}

/// `max |a − b| / max(max |b|, floor)`.
fn rel_err_floor(a: TensorData, b: TensorData, floor: f32) -> f32 {
    let a = a.try_to_vec::<f32>().expect("f32");
    let b = b.try_to_vec::<f32>().expect("f32");
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(floor, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

fn random(dims: [usize; 4], seed: u64) -> TensorData {
    let flex = Device::flex();
    flex.seed(seed);
    Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &flex).into_data()
}

/// DS2F at base 8, r = 2: every part of the model, small enough for a test.
fn small_ds2f() -> ModelConfig {
    ModelConfig {
        framework: Framework::Ds2f,
        base: 8,
        upscale: 2,
        ..ExperimentConfig::default().model
    }
}

#[test]
fn convolution_and_batch_norm_match_flex() {
    // (input, weight, stride, padding, dilation, groups, bias): the models' geometries.
    let cases = [
        ([2, 8, 13, 17], [6, 8, 3, 3], 1, 1, 1, 1, true),
        ([2, 8, 13, 17], [8, 8, 3, 3], 1, 2, 2, 1, false),
        ([2, 8, 13, 17], [8, 1, 3, 3], 1, 1, 1, 8, false),
        ([1, 4, 16, 16], [5, 4, 1, 1], 2, 0, 1, 1, true),
    ];
    for (i, (xd, wd, stride, pad, dil, groups, bias)) in cases.into_iter().enumerate() {
        let options = ConvOptions::new([stride; 2], [pad; 2], [dil; 2], groups);
        let x = random(xd, 10 + i as u64);
        let w = random(wd, 20 + i as u64);
        let b = TensorData::new((0..wd[0]).map(|c| c as f32 * 0.1 - 0.2).collect(), [wd[0]]);
        let run = |device: &Device| {
            let x = Tensor::<4>::from_data(x.clone(), device).require_grad();
            let w = Tensor::<4>::from_data(w.clone(), device).require_grad();
            let b = bias.then(|| Tensor::<1>::from_data(b.clone(), device).require_grad());
            let mut bn = BatchNormConfig::new(wd[0]).init(device);
            let z = ops::conv2d(x.clone(), w.clone(), b.clone(), options.clone());
            // Plus a residual: through a training-mode batch norm alone, a bias has no gradient.
            let y = ops::batch_norm_act(&bn, z.clone(), Activation::Relu) + z.mul_scalar(0.5);
            // A non-uniform upstream gradient: every output position counts differently.
            let upstream = Tensor::<4>::from_data(random(y.dims(), 30), device);
            let grads = (y.clone() * upstream).sum().backward();
            let mut out = vec![
                y.inner().into_data(),
                x.grad(&grads).expect("dx").into_data(),
                w.grad(&grads).expect("dw").into_data(),
                bn.gamma.val().grad(&grads).expect("dgamma").into_data(),
                bn.beta.val().grad(&grads).expect("dbeta").into_data(),
            ];
            if let Some(b) = b {
                out.push(b.grad(&grads).expect("db").into_data());
            }
            bn = bn.no_grad();
            out.push(bn.running_mean.value_sync().into_data());
            out.push(bn.running_var.value_sync().into_data());
            out
        };
        let ours = run(&libtorch());
        let reference = run(&Device::flex().autodiff());
        let names = ["y", "dx", "dw", "dgamma", "dbeta", "db", "mean", "var"];
        let names = names.iter().filter(|n| bias || **n != "db");
        for ((name, a), b) in names.zip(ours).zip(reference) {
            let err = rel_err(a, b);
            assert!(err < 1e-4, "case {i}, {name}: relative error {err}");
        }
    }
}

#[test]
fn ds2f_training_step_matches_flex() {
    let flex = Device::flex().autodiff();
    flex.seed(5);
    let config = small_ds2f();
    let model = config.init_train(&flex);
    let (n, h, w) = (2, 24, 20);
    let x = Tensor::<4>::random([n, 3, h, w], Distribution::Uniform(-1.0, 1.0), &flex);
    let y = Tensor::<3, Int>::random([n, 2 * h, 2 * w], Distribution::Uniform(0.0, 2.0), &flex);
    let hr = Tensor::<4>::random(
        [n, 3, 2 * h, 2 * w],
        Distribution::Uniform(-1.0, 1.0),
        &flex,
    );
    let objective = Objective::new(Framework::Ds2f, &LossConfig::default(), 2, None);
    let step = |device: &Device| {
        // The same weights, as parameters (leaves) of a model built on `device`.
        let model = config
            .init_train(device)
            .load_record(model.clone().into_record());
        let terms = objective.terms(
            model.forward_train(x.clone().to_device(device)),
            y.clone().to_device(device),
            hr.clone().to_device(device),
        );
        let values: Vec<(String, f32)> = terms
            .iter()
            .map(|t| {
                (
                    t.term.name().to_string(),
                    t.value.clone().into_scalar::<f32>(),
                )
            })
            .collect();
        let total = terms
            .into_iter()
            .map(|t| t.value)
            .reduce(|a, b| a.add(b))
            .expect("the seg term");
        let grads = GradientsParams::from_grads(total.backward(), &model);
        let mut gradients = Vec::new();
        for p in trainable_parameters(&model) {
            let numel = p.shape.iter().product::<usize>();
            let g = match p.shape.len() {
                1 => grads.get::<1>(p.id),
                2 => grads.get::<2>(p.id).map(|g| g.reshape([numel])),
                3 => grads.get::<3>(p.id).map(|g| g.reshape([numel])),
                4 => grads.get::<4>(p.id).map(|g| g.reshape([numel])),
                _ => None,
            };
            let g = g.unwrap_or_else(|| panic!("no gradient for {}", p.path));
            gradients.push((p.path, g.into_data()));
        }
        let bn = &model.encoder.unet().expect("a U-Net").down1.conv.bn1;
        let stats = (
            bn.running_mean.value_sync().into_data(),
            bn.running_var.value_sync().into_data(),
        );
        (values, gradients, stats)
    };
    let (values, gradients, stats) = step(&libtorch());
    let (ref_values, ref_gradients, ref_stats) = step(&flex);
    assert_eq!(values.len(), 4, "{values:?}");
    for ((name, v), (_, r)) in values.iter().zip(&ref_values) {
        assert!(
            (v - r).abs() <= 1e-4 * r.abs().max(1.0),
            "{name}: {v} vs {r}"
        );
    }
    assert_eq!(gradients.len(), ref_gradients.len());
    // The bias of a convolution followed by a training-mode batch norm (MSCG's fusion conv, an
    // image-pooling branch) has a gradient of zero up to rounding: measured against the largest
    // gradient of the model, not its own.
    let largest = ref_gradients
        .iter()
        .flat_map(|(_, r)| r.iter::<f32>())
        .fold(0.0f32, |m, v| m.max(v.abs()));
    for ((path, g), (_, r)) in gradients.into_iter().zip(ref_gradients) {
        let err = rel_err_floor(g, r, 1e-3 * largest);
        assert!(err < 2e-3, "gradient of {path}: relative error {err}");
    }
    assert!(rel_err(stats.0, ref_stats.0) < 1e-4, "running mean");
    assert!(rel_err(stats.1, ref_stats.1) < 1e-4, "running variance");
}

#[test]
fn ds2f_inference_matches_flex() {
    // Inference folds each batch norm into its convolution on libtorch (ops::conv_bn) and
    // resizes with libtorch's bilinear kernel: the same segmentation logits as on the CPU.
    let flex = Device::flex();
    flex.seed(9);
    let config = small_ds2f();
    // A few training-mode passes move the running statistics away from their initial 0 / 1,
    // so that the folding is exercised.
    let ad = flex.clone().autodiff();
    let trained = config.init_train(&ad);
    for _ in 0..2 {
        let x = Tensor::<4>::random([2, 3, 24, 20], Distribution::Uniform(-1.0, 1.0), &ad);
        let _ = trained.forward_train(x);
    }
    let model = trained.valid().into_segmenter();
    let x = Tensor::<4>::random([1, 3, 24, 20], Distribution::Uniform(-1.0, 1.0), &flex);
    let reference = model.forward(x.clone()).into_data();
    let lt = ds2f::device::select("libtorch").expect("a tch build");
    let ours = model.to_device(&lt).forward(x.to_device(&lt)).into_data();
    let err = rel_err(ours, reference);
    assert!(err < 1e-4, "logits: relative error {err}");
}
