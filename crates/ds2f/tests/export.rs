//! `ds2f export` in the library: the U-Net's inference weights as a PyTorch state dict in
//! `.safetensors` (names, values, BN counters, metadata), read back and loaded again; the
//! names are exactly `bench/unet.py`'s `UNetInter(3, 2, base=4, r=2).state_dict().keys()`.
use std::collections::BTreeMap;

use burn::prelude::*;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use ds2f::config::ExperimentConfig;
use ds2f::export::card::keys;
use ds2f::export::{
    ExportInfo, StateTensor, TensorKind, import_reference, model_card, read_state_dict,
    torch_state_dict, write_state_dict,
};
use ds2f::model::{Framework, ModelConfig, Segmenter};

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/unet_b4.safetensors"
);

/// The PyTorch model's keys, in its order:
/// ```python
/// import sys; sys.path.insert(0, "bench")
/// from unet import UNetInter
/// print(list(UNetInter(3, 2, 4, 2).state_dict().keys()))  # torch 2.15, 134 keys
/// ```
const TORCH_KEYS: [&str; 134] = [
    "encoder.down1.conv.conv1.weight",
    "encoder.down1.conv.bn1.weight",
    "encoder.down1.conv.bn1.bias",
    "encoder.down1.conv.bn1.running_mean",
    "encoder.down1.conv.bn1.running_var",
    "encoder.down1.conv.bn1.num_batches_tracked",
    "encoder.down1.conv.conv2.weight",
    "encoder.down1.conv.bn2.weight",
    "encoder.down1.conv.bn2.bias",
    "encoder.down1.conv.bn2.running_mean",
    "encoder.down1.conv.bn2.running_var",
    "encoder.down1.conv.bn2.num_batches_tracked",
    "encoder.down2.conv.conv1.weight",
    "encoder.down2.conv.bn1.weight",
    "encoder.down2.conv.bn1.bias",
    "encoder.down2.conv.bn1.running_mean",
    "encoder.down2.conv.bn1.running_var",
    "encoder.down2.conv.bn1.num_batches_tracked",
    "encoder.down2.conv.conv2.weight",
    "encoder.down2.conv.bn2.weight",
    "encoder.down2.conv.bn2.bias",
    "encoder.down2.conv.bn2.running_mean",
    "encoder.down2.conv.bn2.running_var",
    "encoder.down2.conv.bn2.num_batches_tracked",
    "encoder.down3.conv.conv1.weight",
    "encoder.down3.conv.bn1.weight",
    "encoder.down3.conv.bn1.bias",
    "encoder.down3.conv.bn1.running_mean",
    "encoder.down3.conv.bn1.running_var",
    "encoder.down3.conv.bn1.num_batches_tracked",
    "encoder.down3.conv.conv2.weight",
    "encoder.down3.conv.bn2.weight",
    "encoder.down3.conv.bn2.bias",
    "encoder.down3.conv.bn2.running_mean",
    "encoder.down3.conv.bn2.running_var",
    "encoder.down3.conv.bn2.num_batches_tracked",
    "encoder.down4.conv.conv1.weight",
    "encoder.down4.conv.bn1.weight",
    "encoder.down4.conv.bn1.bias",
    "encoder.down4.conv.bn1.running_mean",
    "encoder.down4.conv.bn1.running_var",
    "encoder.down4.conv.bn1.num_batches_tracked",
    "encoder.down4.conv.conv2.weight",
    "encoder.down4.conv.bn2.weight",
    "encoder.down4.conv.bn2.bias",
    "encoder.down4.conv.bn2.running_mean",
    "encoder.down4.conv.bn2.running_var",
    "encoder.down4.conv.bn2.num_batches_tracked",
    "encoder.down5.conv1.weight",
    "encoder.down5.bn1.weight",
    "encoder.down5.bn1.bias",
    "encoder.down5.bn1.running_mean",
    "encoder.down5.bn1.running_var",
    "encoder.down5.bn1.num_batches_tracked",
    "encoder.down5.conv2.weight",
    "encoder.down5.bn2.weight",
    "encoder.down5.bn2.bias",
    "encoder.down5.bn2.running_mean",
    "encoder.down5.bn2.running_var",
    "encoder.down5.bn2.num_batches_tracked",
    "decoder.up6.reduce.conv.weight",
    "decoder.up6.reduce.bn.weight",
    "decoder.up6.reduce.bn.bias",
    "decoder.up6.reduce.bn.running_mean",
    "decoder.up6.reduce.bn.running_var",
    "decoder.up6.reduce.bn.num_batches_tracked",
    "decoder.up6.conv.conv1.weight",
    "decoder.up6.conv.bn1.weight",
    "decoder.up6.conv.bn1.bias",
    "decoder.up6.conv.bn1.running_mean",
    "decoder.up6.conv.bn1.running_var",
    "decoder.up6.conv.bn1.num_batches_tracked",
    "decoder.up6.conv.conv2.weight",
    "decoder.up6.conv.bn2.weight",
    "decoder.up6.conv.bn2.bias",
    "decoder.up6.conv.bn2.running_mean",
    "decoder.up6.conv.bn2.running_var",
    "decoder.up6.conv.bn2.num_batches_tracked",
    "decoder.up7.reduce.conv.weight",
    "decoder.up7.reduce.bn.weight",
    "decoder.up7.reduce.bn.bias",
    "decoder.up7.reduce.bn.running_mean",
    "decoder.up7.reduce.bn.running_var",
    "decoder.up7.reduce.bn.num_batches_tracked",
    "decoder.up7.conv.conv1.weight",
    "decoder.up7.conv.bn1.weight",
    "decoder.up7.conv.bn1.bias",
    "decoder.up7.conv.bn1.running_mean",
    "decoder.up7.conv.bn1.running_var",
    "decoder.up7.conv.bn1.num_batches_tracked",
    "decoder.up7.conv.conv2.weight",
    "decoder.up7.conv.bn2.weight",
    "decoder.up7.conv.bn2.bias",
    "decoder.up7.conv.bn2.running_mean",
    "decoder.up7.conv.bn2.running_var",
    "decoder.up7.conv.bn2.num_batches_tracked",
    "decoder.up8.reduce.conv.weight",
    "decoder.up8.reduce.bn.weight",
    "decoder.up8.reduce.bn.bias",
    "decoder.up8.reduce.bn.running_mean",
    "decoder.up8.reduce.bn.running_var",
    "decoder.up8.reduce.bn.num_batches_tracked",
    "decoder.up8.conv.conv1.weight",
    "decoder.up8.conv.bn1.weight",
    "decoder.up8.conv.bn1.bias",
    "decoder.up8.conv.bn1.running_mean",
    "decoder.up8.conv.bn1.running_var",
    "decoder.up8.conv.bn1.num_batches_tracked",
    "decoder.up8.conv.conv2.weight",
    "decoder.up8.conv.bn2.weight",
    "decoder.up8.conv.bn2.bias",
    "decoder.up8.conv.bn2.running_mean",
    "decoder.up8.conv.bn2.running_var",
    "decoder.up8.conv.bn2.num_batches_tracked",
    "decoder.up9.reduce.conv.weight",
    "decoder.up9.reduce.bn.weight",
    "decoder.up9.reduce.bn.bias",
    "decoder.up9.reduce.bn.running_mean",
    "decoder.up9.reduce.bn.running_var",
    "decoder.up9.reduce.bn.num_batches_tracked",
    "decoder.up9.conv.conv1.weight",
    "decoder.up9.conv.bn1.weight",
    "decoder.up9.conv.bn1.bias",
    "decoder.up9.conv.bn1.running_mean",
    "decoder.up9.conv.bn1.running_var",
    "decoder.up9.conv.bn1.num_batches_tracked",
    "decoder.up9.conv.conv2.weight",
    "decoder.up9.conv.bn2.weight",
    "decoder.up9.conv.bn2.bias",
    "decoder.up9.conv.bn2.running_mean",
    "decoder.up9.conv.bn2.running_var",
    "decoder.up9.conv.bn2.num_batches_tracked",
    "seg_head.conv.weight",
    "seg_head.conv.bias",
];

fn model_config() -> ModelConfig {
    ModelConfig {
        base: 4,
        ..ModelConfig::default()
    }
}

/// The U-Net of tests/golden_unet.rs with its golden weights (BN running statistics filled).
fn golden_model(device: &Device) -> Segmenter {
    let mut model = model_config().init(device);
    let mut store = SafetensorsStore::from_file(GOLDEN).with_from_adapter(PyTorchToBurnAdapter);
    let result = model.load_from(&mut store).expect("golden weights load");
    assert!(result.missing.is_empty(), "missing: {:?}", result.missing);
    model
}

fn golden_tensors() -> BTreeMap<String, StateTensor> {
    let (tensors, _) = read_state_dict(std::path::Path::new(GOLDEN)).expect("golden file reads");
    tensors.into_iter().map(|t| (t.name.clone(), t)).collect()
}

fn info() -> ExportInfo {
    let config = ExperimentConfig {
        model: model_config(),
        ..ExperimentConfig::default()
    };
    ExportInfo {
        config,
        checkpoint: "best".into(),
        epoch: 17,
        test_summary: Some(serde_json::json!({
            "whole_image": {"pooled": [
                {"iou": 0.9482814339877617, "dice": 0.9734542632753111, "mcc": 0.6387261448703584,
                 "bm": 0.6187633202333183, "precision": 0.9708042644229262, "recall": 0.9761187691007424},
                {"iou": 0.4978982934752611, "dice": 0.6647958618339721, "mcc": 0.6387261448703584,
                 "bm": 0.6187633202333183, "precision": 0.6885287548438195, "recall": 0.6426445511325759}
            ]}
        })),
        date: "2026-12-07".into(),
    }
}

fn input(device: &Device) -> (Tensor<4>, Vec<f32>) {
    let golden = golden_tensors();
    let x = &golden["input"];
    let s = &x.shape;
    let t = Tensor::<4>::from_data(
        TensorData::new(x.f32_values(), [s[0], s[1], s[2], s[3]]),
        device,
    );
    (t, golden["out_eval"].f32_values())
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn names_are_pytorchs_state_dict_keys_in_order() {
    let device = Device::flex();
    let tensors = torch_state_dict(&golden_model(&device), std::path::Path::new(GOLDEN)).unwrap();
    let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, TORCH_KEYS);
    let counters: Vec<&StateTensor> = tensors
        .iter()
        .filter(|t| t.name.ends_with(".num_batches_tracked"))
        .collect();
    // 9 double convs (2 BNs each) + 4 reductions (1 BN each).
    assert_eq!(counters.len(), 22);
    for c in counters {
        assert_eq!(c.kind, TensorKind::I64);
        assert!(c.shape.is_empty(), "{} is a scalar", c.name);
        assert_eq!(c.data, 0i64.to_le_bytes());
    }
}

#[test]
fn safetensors_round_trip_keeps_every_tensor_and_the_metadata() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let tensors = torch_state_dict(&golden_model(&device), &path).unwrap();
    let info = info();
    write_state_dict(&path, &tensors, &info.metadata()).unwrap();

    let (read, metadata) = read_state_dict(&path).unwrap();
    let mut sorted = tensors.clone();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(read, sorted, "read back == written");
    // Every parameter and BN statistic equals the PyTorch file it was loaded from, bit for bit.
    let golden = golden_tensors();
    let mut compared = 0;
    for t in read.iter().filter(|t| t.kind == TensorKind::F32) {
        let g = &golden[&t.name];
        assert_eq!(t.shape, g.shape, "{}", t.name);
        assert_eq!(t.data, g.data, "{}", t.name);
        compared += 1;
    }
    assert_eq!(compared, 134 - 22);

    assert_eq!(metadata["format"], "pt");
    assert_eq!(metadata[keys::VERSION], env!("CARGO_PKG_VERSION"));
    assert_eq!(metadata[keys::DATE], "2026-12-07");
    assert_eq!(metadata[keys::CHECKPOINT], "best (epoch 17)");
    let model: toml::Table = toml::from_str(&metadata[keys::MODEL_CONFIG]).unwrap();
    assert_eq!(model["model"]["base"].as_integer(), Some(4));
    assert_eq!(model["model"]["framework"].as_str(), Some("unet_inter"));
    let whole: ExperimentConfig = ExperimentConfig::parse(&metadata[keys::CONFIG], &[], "metadata")
        .expect("the whole config parses back");
    assert_eq!(whole.model, model_config());
    let metrics: serde_json::Value = serde_json::from_str(&metadata[keys::TEST_METRICS]).unwrap();
    assert_eq!(
        metrics["whole_image"]["pooled"][1]["iou"].as_f64(),
        Some(0.4978982934752611)
    );
}

#[test]
fn exported_file_loads_back_and_predicts_the_same() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let tensors = torch_state_dict(&golden_model(&device), &path).unwrap();
    write_state_dict(&path, &tensors, &info().metadata()).unwrap();
    let (x, want) = input(&device);

    // With burn's own PyTorch reader, as any burn user would.
    let mut model = model_config().init(&device);
    let mut store = SafetensorsStore::from_file(&path).with_from_adapter(PyTorchToBurnAdapter);
    let result = model.load_from(&mut store).unwrap();
    assert!(result.missing.is_empty(), "missing: {:?}", result.missing);
    let got: Vec<f32> = model.forward(x.clone()).into_data().iter::<f32>().collect();
    assert!(max_abs_diff(&got, &want) <= 1e-5);

    // And with `ds2f import`, whose mapping leaves ds2f's own names alone.
    let config = model_config();
    let mut dual = config.init_train(&device);
    let report = import_reference(&mut dual, &config, &path).unwrap();
    assert_eq!(report.matched.len(), 134 - 22);
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
    let got: Vec<f32> = dual
        .into_segmenter()
        .forward(x)
        .into_data()
        .iter::<f32>()
        .collect();
    assert!(max_abs_diff(&got, &want) <= 1e-5);
}

#[test]
fn model_card_has_data_config_metrics_date_and_version() {
    let mut info = info();
    info.config.model.framework = Framework::Ds2f;
    let card = model_card(&info, "hrf-f0.safetensors");
    assert!(card.starts_with("# hrf-f0.safetensors: ds2f Ds2f model"));
    assert!(card.contains(&format!("ds2f {} on 2026-12-07", env!("CARGO_PKG_VERSION"))));
    assert!(
        card.contains("| whole_image | 1 | 0.4979 | 0.6648 | 0.6387 | 0.6188 | 0.6885 | 0.6426 |")
    );
    assert!(card.contains("`UNetInter(3, 2, base=4, r=2)`"));
    assert!(card.contains("## Data"));
    assert!(card.contains("```toml\n") && card.contains("\n[data]"));
    info.test_summary = None;
    assert!(model_card(&info, "x").contains("not evaluated"));
}
