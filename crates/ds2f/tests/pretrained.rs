//! `model.encoder_weights`: torchvision ResNet state dicts (`.pth` and `.safetensors`) loaded
//! into the DeepLabV3+ ResNet-50 by burn-store, and its output against PyTorch on the loaded
//! weights.
//!
//! The fixtures are made by `tests/golden/make_resnet50_stem.py` (torch 2.15 CPU; run it from
//! the workspace root, it rewrites them byte for byte): a torchvision-layout ResNet-50 state dict
//! cut to the stem and `layer1.0` (a full ResNet-50 is 100 MB), seed 0, random weights and BN
//! running statistics, plus a stand-in `fc.weight` [4, 2048] / `fc.bias` [4]:
//! `resnet50_stem.pth` (`torch.save(model.state_dict())`, 32 keys with the 6
//! `num_batches_tracked`), `resnet50_stem.safetensors` (the same 26 float tensors) and
//! `resnet50_bad_conv1.pth` (only `conv1.weight`, 3×3 instead of 7×7).
use std::path::{Path, PathBuf};

use burn::prelude::*;
use ds2f::config::ExperimentConfig;
use ds2f::error::{ConfigError, PretrainedError};
use ds2f::model::deeplab::{OutputStride, ResNet, ResNetConfig, ResNetDepth};
use ds2f::model::pretrained::{ENCODER_PREFIX, load_resnet_weights};
use ds2f::model::{Backbone, ModelConfig, load_encoder_weights};
use safetensors::tensor::{Dtype, TensorView};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn resnet50(device: &Device) -> ResNet {
    ResNetConfig::new(ResNetDepth::R50, OutputStride::Eight).init(device)
}

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

/// Parameters and BN running statistics the fixture sets: conv1, bn1 (γ, β, mean, var) and,
/// in `layer1.0`, conv1..3, bn1..3, `downsample.conv` and `downsample.bn`.
const MATCHED: usize = 5 + 4 * 5;
/// A ResNet-50 has 16 bottlenecks of 15 tensors, 4 shortcuts of 5 and a stem of 5.
const RESNET50_TENSORS: usize = 16 * 15 + 4 * 5 + 5;

#[test]
fn pth_and_safetensors_report_the_same_matches_in_model_paths() {
    let device = Device::flex();
    let config = ModelConfig {
        backbone: Backbone::Deeplabv3plusResnet50,
        ..ModelConfig::default()
    };
    for file in ["resnet50_stem.pth", "resnet50_stem.safetensors"] {
        let mut model = config.init(&device);
        let report = load_encoder_weights(&mut model.encoder, &golden(file)).unwrap();
        assert_eq!(report.path, golden(file));
        assert_eq!(report.matched.len(), MATCHED, "{file}");
        assert_eq!(report.missing.len(), RESNET50_TENSORS - MATCHED, "{file}");
        // fc.* unused; num_batches_tracked (in the .pth) not reported.
        assert_eq!(report.unexpected, ["fc.bias", "fc.weight"], "{file}");
        for name in [
            "conv1.weight",
            "bn1.gamma",
            "bn1.running_var",
            "layer1.0.downsample.conv.weight",
            "layer1.0.downsample.bn.beta",
            "layer1.0.downsample.bn.running_mean",
            "layer1.0.bn3.running_mean",
        ] {
            let full = format!("{ENCODER_PREFIX}{name}");
            assert!(report.matched.contains(&full), "{file}: {full} matched");
        }
        for name in ["layer1.1.conv1.weight", "layer4.2.bn3.gamma"] {
            let full = format!("{ENCODER_PREFIX}{name}");
            assert!(report.missing.contains(&full), "{file}: {full} missing");
        }
        let text = report.to_string();
        assert!(
            text.contains("25 tensors loaded, 240 encoder tensors not in the file"),
            "{text}"
        );
        assert!(text.contains("unused: fc.bias, fc.weight"), "{text}");
        // The stem's weights are the file's: conv1.weight[0, 0, 0, :3] from the .pth.
        let encoder = model.encoder.deeplab().unwrap();
        let w: Vec<f32> = encoder
            .backbone
            .conv1
            .weight
            .val()
            .slice([0..1, 0..1, 0..1, 0..3])
            .into_data()
            .iter::<f32>()
            .collect();
        // torch.load("resnet50_stem.pth")["conv1.weight"][0, 0, 0, :3].tolist()
        let want = [0.114_163_53_f32, 0.078_033_38, 0.107_828_21];
        for (g, w) in w.iter().zip(want) {
            assert!((g - w).abs() < 1e-7, "{file}: conv1.weight {g} vs {w}");
        }
    }
}

/// ds2f's stem + `layer1.0` on the loaded weights (eval BN: the running statistics are the
/// file's) against the PyTorch module the fixture was saved from, run in float64:
///
/// ```python
/// c, h, w = torch.meshgrid(torch.arange(3.0), torch.arange(29.0), torch.arange(35.0), indexing="ij")
/// x = torch.sin(0.37 * c + 0.11 * h + 0.05 * w)[None].double()
/// y = m.double()(x)   # m: Stem() of make_resnet50_stem.py, eval mode
/// y.shape, y.sum(), (y * y).sum(), y[0, 0].flatten(), y[0, :8].sum((1, 2))
/// ```
#[test]
fn stem_and_first_bottleneck_match_pytorch_for_both_formats() {
    let device = Device::flex();
    let x: Vec<f32> = (0..3 * 29 * 35)
        .map(|i| {
            let (c, h, w) = (i / (29 * 35), (i / 35) % 29, i % 35);
            (0.37 * c as f64 + 0.11 * h as f64 + 0.05 * w as f64).sin() as f32
        })
        .collect();
    for file in ["resnet50_stem.pth", "resnet50_stem.safetensors"] {
        let mut resnet = resnet50(&device);
        let report = load_resnet_weights(&mut resnet, &golden(file)).unwrap();
        assert!(
            report
                .matched
                .contains(&"layer1.0.conv2.weight".to_string())
        );
        // Only the loaded block: forward_features[0] is then the output of layer1.0.
        resnet.layer1.truncate(1);
        let input = Tensor::<4>::from_data(TensorData::new(x.clone(), [1, 3, 29, 35]), &device);
        let [f1, ..] = resnet.forward_features(input);
        assert_eq!(f1.dims(), [1, 256, 8, 9], "{file}");
        let y = values(f1.clone());
        let sum: f64 = y.iter().map(|&v| v as f64).sum();
        let sq: f64 = y.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let rel = |got: f64, want: f64, what: &str| {
            assert!(
                (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                "{file}: {what} {got} vs {want}"
            );
        };
        rel(sum, 9159.46443202514, "sum");
        rel(sq, 16000.226197613862, "sum of squares");
        let channel_sums = [
            95.42702179553541,
            38.35717724817482,
            22.826243765321692,
            5.239216241649363,
            27.51555257511599,
            72.59152123630335,
            26.27545726773304,
            63.034855373238216,
        ];
        for (c, want) in channel_sums.into_iter().enumerate() {
            let got: f64 = y[c * 72..(c + 1) * 72].iter().map(|&v| v as f64).sum();
            rel(got, want, &format!("channel {c} sum"));
        }
        #[rustfmt::skip]
        let channel0 = [
            1.036070342976854, 1.2000581838117044, 1.1820837433250628, 1.0493943079315167,
            1.0312572715525803, 1.034606001739269, 1.0507832159141672, 1.0787733454616824,
            0.9417054971903791, 1.43863776523706, 1.5353707962393646, 1.5443839197265687,
            1.510205392069335, 1.4483382086963519, 1.4307741580415085, 1.3902858124508242,
            1.2114779988344007, 0.918462915782815, 1.3523202811973374, 1.3406731547571145,
            1.3697229309912775, 1.4541368718978718, 1.4738809036066536, 1.5063644655069506,
            1.4370704854867964, 1.2012978267636993, 0.8942055374977502, 1.1624710614697362,
            1.2884436744843413, 1.4736640978884639, 1.537229989393091, 1.535940331295486,
            1.4142881958322668, 1.2693597398364924, 1.000346820469503, 0.6450232475897317,
            1.1412422586455326, 1.282708744313032, 1.4764070216755083, 1.3880391510008465,
            1.2367601664640662, 0.8999073986475871, 0.6407726798031734, 1.3870992543455318,
            1.1746578262979488, 0.9908733451256517, 1.007831004741616, 1.196374798086197,
            0.8639916712984507, 0.8300833594196658, 1.2143694115834045, 1.633913750859649,
            2.2104448699639625, 1.107342836916126, 0.741727431630388, 1.1174626123725087,
            1.219188376033372, 1.6862395427176713, 2.012693601987755, 2.387849160722207,
            2.658930459224765, 2.9518916541456983, 1.3946894989010843, 0.8629000469176786,
            1.0334019741614102, 1.0794341131408343, 1.1644411330603572, 1.3788050709041562,
            1.671578034624023, 1.8393589903211378, 1.6778895724304301, 1.4766124801059728,
        ];
        for (i, (&g, w)) in y[..72].iter().zip(channel0).enumerate() {
            assert!(
                (g as f64 - w).abs() < 1e-4,
                "{file}: y[0, 0, {}, {}] = {g} vs {w}",
                i / 9,
                i % 9
            );
        }
    }
}

#[test]
fn a_shape_mismatch_names_the_key_and_both_shapes_and_changes_nothing() {
    let device = Device::flex();
    let mut resnet = resnet50(&device);
    let before = values(resnet.conv1.weight.val());
    let path = golden("resnet50_bad_conv1.pth");
    let err = load_resnet_weights(&mut resnet, &path).unwrap_err();
    match &err {
        PretrainedError::Shape {
            path: p,
            key,
            expected,
            found,
        } => {
            assert_eq!(p, &path);
            assert_eq!(key, "conv1.weight");
            assert_eq!(expected, &[64, 3, 7, 7]);
            assert_eq!(found, &[64, 3, 3, 3]);
        }
        other => panic!("expected a shape error, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains("resnet50_bad_conv1.pth"), "{text}");
    assert!(
        text.contains("[64, 3, 3, 3]") && text.contains("[64, 3, 7, 7]"),
        "{text}"
    );
    assert_eq!(values(resnet.conv1.weight.val()), before);

    // Through the encoder the key is the model path.
    let config = ModelConfig {
        backbone: Backbone::Deeplabv3plusResnet50,
        ..ModelConfig::default()
    };
    let mut model = config.init(&device);
    let err = load_encoder_weights(&mut model.encoder, &path).unwrap_err();
    assert!(
        err.to_string().contains("`encoder.backbone.conv1.weight`"),
        "{err}"
    );
}

#[test]
fn missing_and_unreadable_files_are_errors_naming_the_path() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let junk_pth = tmp.path().join("junk.pth");
    let junk_st = tmp.path().join("junk.safetensors");
    std::fs::write(&junk_pth, b"not a pickle at all").unwrap();
    std::fs::write(&junk_st, b"\x05\x00\x00\x00\x00\x00\x00\x00{oops").unwrap();
    for path in [tmp.path().join("absent.pth"), junk_pth, junk_st] {
        let mut resnet = resnet50(&device);
        let err = load_resnet_weights(&mut resnet, &path).unwrap_err();
        assert!(
            matches!(&err, PretrainedError::Read { path: p, .. } if p == &path),
            "{}: {err}",
            path.display()
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}

/// Writes a SafeTensors file of `(name, dtype, shape)` tensors filled with zero bytes.
fn write_safetensors(path: &Path, tensors: &[(&str, Dtype, Vec<usize>)]) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, d, s)| vec![0u8; s.iter().product::<usize>() * d.bitsize() / 8])
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, d, s), b)| (n.to_string(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

#[test]
fn a_file_without_encoder_keys_or_with_half_precision_is_refused() {
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    // A full-model checkpoint under another prefix matches nothing.
    let prefixed = tmp.path().join("prefixed.safetensors");
    write_safetensors(
        &prefixed,
        &[
            ("module.conv1.weight", Dtype::F32, vec![64, 3, 7, 7]),
            ("fc.weight", Dtype::F32, vec![4, 2048]),
        ],
    );
    let mut resnet = resnet50(&device);
    let err = load_resnet_weights(&mut resnet, &prefixed).unwrap_err();
    assert!(
        matches!(&err, PretrainedError::NothingMatched { count: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("`module.conv1.weight`"), "{err}");

    let half = tmp.path().join("half.safetensors");
    write_safetensors(&half, &[("conv1.weight", Dtype::F16, vec![64, 3, 7, 7])]);
    let err = load_resnet_weights(&mut resnet, &half).unwrap_err();
    match &err {
        PretrainedError::DType { key, .. } => assert_eq!(key, "conv1.weight"),
        other => panic!("expected a dtype error, got {other}"),
    }
}

#[test]
fn the_unet_backbone_refuses_encoder_weights_naming_the_key() {
    // Refused when the config is read, naming the key ...
    let text = "[model]\nbackbone = \"unet\"\nbase = 4\nencoder_weights = \"w.pth\"\n";
    let err = ExperimentConfig::parse(text, &[], "test").unwrap_err();
    assert!(err.to_string().contains("model.encoder_weights"), "{err}");
    // ... and by the model check and the loader themselves.
    let config = ModelConfig {
        backbone: Backbone::Unet,
        base: 4,
        encoder_weights: Some(PathBuf::from("w.pth")),
        ..ModelConfig::default()
    };
    assert_eq!(config.encoder_weights, Some(PathBuf::from("w.pth")));
    let err = config.check_encoder_weights().unwrap_err();
    assert!(
        matches!(&err, ConfigError::Range { key, .. } if key == "model.encoder_weights"),
        "{err}"
    );
    let device = Device::flex();
    let mut model = config.init(&device);
    // Checked before the file: this one does not exist.
    let err = load_encoder_weights(&mut model.encoder, Path::new("w.pth")).unwrap_err();
    assert!(
        matches!(&err, PretrainedError::Config(ConfigError::Range { key, .. }) if key == "model.encoder_weights"),
        "{err}"
    );
    assert!(err.to_string().contains("`model.encoder_weights`"), "{err}");

    let deeplab = ExperimentConfig::parse(
        "[model]\nbackbone = \"deeplabv3plus_resnet101\"\nencoder_weights = \"w.pth\"\n",
        &[],
        "test",
    )
    .unwrap();
    deeplab.model.check_encoder_weights().unwrap();
}

/// The trainer loads the weights of a fresh run before creating its folder: a bad
/// `model.encoder_weights` stops it with the error and leaves no run behind.
#[test]
fn training_stops_on_bad_encoder_weights_before_creating_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ds2f_data::synth::write_dataset(&data, 5, 48, 40, 3, "").unwrap();
    let device = Device::flex();
    for (backbone, weights) in [
        ("unet", golden("resnet50_stem.pth")),
        ("deeplabv3plus_resnet50", golden("resnet50_bad_conv1.pth")),
    ] {
        let text = format!(
            "[data]\nroot = {:?}\nval_count = 1\nlr_size = [24, 20]\n\
             [model]\nbackbone = \"{backbone}\"\nbase = 4\nencoder_weights = {:?}\n[train]\nepochs = 1\n",
            data.display().to_string(),
            weights.display().to_string()
        );
        let config = match ExperimentConfig::parse(&text, &[], "test") {
            Ok(config) => config,
            Err(e) => {
                // The U-Net has no pretrained family: refused before any training.
                assert_eq!(backbone, "unet");
                assert!(e.to_string().contains("model.encoder_weights"), "{e}");
                continue;
            }
        };
        let splits = ds2f::dataset::split(
            &config.data,
            config.train.seed,
            ds2f::dataset::mask_kind(config.model.num_classes),
        )
        .unwrap();
        let run = tmp.path().join(backbone);
        let err = ds2f::train::train(
            &config,
            &splits,
            &run,
            std::slice::from_ref(&device),
            false,
            &mut ds2f::train::Silent,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`encoder.backbone.conv1.weight`"), "{text}");
        assert!(
            matches!(err, ds2f::error::TrainError::EncoderWeights(_)),
            "{text}"
        );
        assert!(!run.exists(), "{backbone}: no run folder");
    }
}
