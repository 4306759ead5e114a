//! The U-Net+Inter forward pass, loss and gradients against PyTorch 2.13 on the same weights
//! (`tests/golden/unet_b4.safetensors`, made by `tests/golden/make_unet_b4.py` from
//! `bench/unet.py`: b = 4, C = 2, r = 2, input 2×3×13×17, parameters filled with
//! `0.3·sin(0.61·k + idx)`, BN running stats filled too).
use burn::prelude::*;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use ds2f::loss::CrossEntropy;
use ds2f::model::{ModelConfig, Segmenter};
use safetensors::SafeTensors;

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/unet_b4.safetensors"
);

fn tensor(file: &SafeTensors, name: &str) -> (Vec<f32>, Vec<usize>) {
    let view = file
        .tensor(name)
        .unwrap_or_else(|_| panic!("{name} in golden file"));
    let data = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (data, view.shape().to_vec())
}

fn model(device: &Device) -> Segmenter {
    let config = ModelConfig {
        base: 4,
        ..ModelConfig::default()
    };
    let mut model = config.init(device);
    let mut store = SafetensorsStore::from_file(GOLDEN).with_from_adapter(PyTorchToBurnAdapter);
    let result = model.load_from(&mut store).expect("golden weights load");
    assert!(result.missing.is_empty(), "missing: {:?}", result.missing);
    model
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let worst = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= tol, "{what}: max abs diff {worst} > {tol}");
}

fn input(file: &SafeTensors, device: &Device) -> Tensor<4> {
    let (x, shape) = tensor(file, "input");
    Tensor::<4>::from_data(
        TensorData::new(x, [shape[0], shape[1], shape[2], shape[3]]),
        device,
    )
}

#[test]
fn eval_forward_matches_pytorch() {
    let bytes = std::fs::read(GOLDEN).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let device = Device::flex();
    let out = model(&device).forward(input(&file, &device));
    assert_eq!(out.dims(), [2, 2, 26, 34]);
    let (want, _) = tensor(&file, "out_eval");
    let got: Vec<f32> = out.into_data().iter::<f32>().collect();
    assert_close(&got, &want, 1e-5, "out_eval");
}

#[test]
fn train_forward_loss_and_gradients_match_pytorch() {
    let bytes = std::fs::read(GOLDEN).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let device = Device::flex().autodiff();
    let model = model(&device);
    let out = model.forward(input(&file, &device));
    let (want, _) = tensor(&file, "out_train");
    let got: Vec<f32> = out.clone().into_data().iter::<f32>().collect();
    assert_close(&got, &want, 1e-4, "out_train");

    let (labels, _) = tensor(&file, "labels");
    let labels: Vec<i64> = labels.iter().map(|&v| v as i64).collect();
    let target = Tensor::<3, Int>::from_data(TensorData::new(labels, [2, 26, 34]), &device);
    let loss = CrossEntropy::default().forward(out, target);
    let (ce, _) = tensor(&file, "ce_train");
    let value = loss.clone().into_scalar::<f32>();
    assert!((value - ce[0]).abs() < 1e-5, "ce {value} vs {}", ce[0]);

    let grads = loss.backward();
    let check = |g: Option<Tensor<1>>, name: &str| {
        let g: Vec<f32> = g.expect("gradient").into_data().iter::<f32>().collect();
        let (want, _) = tensor(&file, name);
        assert_close(&g, &want, 1e-5, name);
    };
    let head = &model.seg_head.conv;
    check(
        head.bias.as_ref().unwrap().val().grad(&grads),
        "grad_seg_head_bias",
    );
    check(
        head.weight.val().grad(&grads).map(|g| g.flatten(0, 3)),
        "grad_seg_head_weight",
    );
    check(
        model
            .encoder
            .unet()
            .expect("a U-Net encoder")
            .down1
            .conv
            .conv1
            .weight
            .val()
            .grad(&grads)
            .map(|g| g.flatten(0, 3)),
        "grad_encoder_down1_conv_conv1_weight",
    );
}
