//! `ds2f import`: a state dict with the reference implementation's (imed_vision) names loads
//! into ds2f's DS2F and gives PyTorch's outputs — segmentation, SR image and both MSCG proxies
//! (`tests/golden/reference_unet_b4.pth` and `reference_unet_b4_io.safetensors`, made by
//! `tests/golden/make_reference_import.py`: U-Net DS2F, base 4, C = 2, r = 2, input 1×3×13×17,
//! every tensor filled deterministically, BN running statistics included).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use ds2f::export::{ExportError, import_reference, read_state_dict};
use ds2f::model::{Backbone, Framework, ModelConfig};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// 245 keys in the file, 36 of them BN `num_batches_tracked` counters (ds2f has none).
const FILE_KEYS: usize = 245;
const COUNTERS: usize = 36;

fn config(framework: Framework) -> ModelConfig {
    ModelConfig {
        framework,
        base: 4,
        ..ModelConfig::default()
    }
}

fn io() -> BTreeMap<String, (Vec<f32>, Vec<usize>)> {
    let (tensors, _) = read_state_dict(&golden("reference_unet_b4_io.safetensors")).unwrap();
    tensors
        .into_iter()
        .map(|t| (t.name.clone(), (t.f32_values(), t.shape.clone())))
        .collect()
}

fn input(io: &BTreeMap<String, (Vec<f32>, Vec<usize>)>, device: &Device) -> Tensor<4> {
    let (x, s) = &io["input"];
    Tensor::<4>::from_data(TensorData::new(x.clone(), [s[0], s[1], s[2], s[3]]), device)
}

fn assert_close(got: Tensor<4>, want: &(Vec<f32>, Vec<usize>), what: &str) {
    assert_eq!(got.dims().to_vec(), want.1, "{what}: shape");
    let got: Vec<f32> = got.into_data().iter::<f32>().collect();
    let worst = got
        .iter()
        .zip(&want.0)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-4, "{what}: max abs diff {worst}");
}

#[test]
fn reference_ds2f_state_dict_imports_completely_and_gives_pytorchs_outputs() {
    let device = Device::flex();
    let config = config(Framework::Ds2f);
    let mut model = config.init_train(&device);
    let report = import_reference(&mut model, &config, &golden("reference_unet_b4.pth")).unwrap();
    assert!(report.missing.is_empty(), "missing: {:?}", report.missing);
    assert!(
        report.unexpected.is_empty(),
        "unexpected: {:?}",
        report.unexpected
    );
    assert_eq!(report.matched.len(), FILE_KEYS - COUNTERS);
    for name in [
        "encoder.down1.conv.bn1.gamma",
        "sr_branch.decoder.up6.reduce.conv.weight",
        "sr_branch.head.conv3.weight",
        "shared_feature.fusion_bn.running_var",
        "shared_feature.gate.rcab.se_expand.bias",
        "shared_feature.gate.msconv.convs.3.conv.weight",
        "shared_feature.linear_cross_seg.weight",
    ] {
        assert!(report.matched.iter().any(|m| m == name), "{name} matched");
    }

    // On a non-autodiff device BN uses its running statistics, as PyTorch's eval mode.
    let io = io();
    let out = model.forward_train(input(&io, &device));
    assert_close(out.seg, &io["seg"], "seg");
    assert_close(out.sr.unwrap(), &io["sr"], "sr");
    assert_close(out.proxy_seg.unwrap(), &io["proxy_seg"], "proxy_seg");
    assert_close(out.proxy_sr.unwrap(), &io["proxy_sr"], "proxy_sr");
}

#[test]
fn a_framework_without_sr_stream_reports_it_as_unexpected() {
    let device = Device::flex();
    let config = config(Framework::UnetInter);
    let mut model = config.init_train(&device);
    let report = import_reference(&mut model, &config, &golden("reference_unet_b4.pth")).unwrap();
    assert!(report.missing.is_empty());
    assert!(
        report
            .unexpected
            .iter()
            .all(|k| k.starts_with("sr_branch.") || k.starts_with("shared_feature."))
    );
    // SR decoder (4 stages × 3 conv/BN pairs × 5 tensors) + SR head (3) + MSCG (34), no counters.
    assert_eq!(report.unexpected.len(), 4 * 3 * 5 + 3 + 34);
    let io = io();
    assert_close(
        model.into_segmenter().forward(input(&io, &device)),
        &io["seg"],
        "seg",
    );
    let text = report.to_string();
    assert!(
        text.contains("unexpected: sr_branch.head.conv1.weight"),
        "{text}"
    );
}

#[test]
fn a_shape_mismatch_names_the_key_and_leaves_the_model_unchanged() {
    let device = Device::flex();
    let config = ModelConfig {
        base: 8,
        ..config(Framework::Ds2f)
    };
    let mut model = config.init_train(&device);
    let before = head_weights(&model);
    let err = import_reference(&mut model, &config, &golden("reference_unet_b4.pth")).unwrap_err();
    match &err {
        ExportError::Shape {
            key,
            expected,
            found,
            ..
        } => {
            assert_eq!(key, "encoder.down1.conv.conv1.weight");
            assert_eq!(expected, &vec![8, 3, 3, 3]);
            assert_eq!(found, &vec![4, 3, 3, 3]);
        }
        other => panic!("expected a shape error, got {other}"),
    }
    assert!(err.to_string().contains("reference_unet_b4.pth"));
    let after = head_weights(&model);
    assert_eq!(before, after);
}

#[test]
fn other_backbones_and_foreign_files_are_refused() {
    let device = Device::flex();
    let config = ModelConfig {
        backbone: Backbone::Deeplabv3plusResnet50,
        ..ModelConfig::default()
    };
    let mut model = config.init_train(&device);
    let err = import_reference(&mut model, &config, &golden("reference_unet_b4.pth")).unwrap_err();
    assert!(err.to_string().starts_with("model.backbone:"), "{err}");

    // A torchvision ResNet stem: not one key is a U-Net parameter.
    let config = config_unet();
    let mut model = config.init_train(&device);
    let err = import_reference(&mut model, &config, &golden("resnet50_stem.pth")).unwrap_err();
    assert!(matches!(err, ExportError::NothingMatched { .. }), "{err}");

    let err = import_reference(&mut model, &config, &golden("no_such_file.pth")).unwrap_err();
    assert!(matches!(err, ExportError::Read { .. }), "{err}");
    assert!(err.to_string().contains("no_such_file.pth"));
}

fn head_weights(model: &ds2f::model::DualStream) -> Vec<f32> {
    let w = model.seg_head.conv.weight.val();
    w.into_data().iter::<f32>().collect()
}

fn config_unet() -> ModelConfig {
    config(Framework::Ds2f)
}
