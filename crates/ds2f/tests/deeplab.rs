//! DeepLabV3+ DS2F (SPEC §1.3): parameter counts of the reference, the ResNet's strides and
//! dilations, MACs against PyTorch, every framework's outputs, the inference graph without
//! the SR stream, the seg-proxy bug fix, and a few Adam steps that lower the loss with
//! gradients reaching every parameter.
//!
//! PyTorch reference for the counts (torch 2.15, CPU): `/tmp/dl/ref.py` written for this test,
//! a DeepLabV3+ as `deeplab.py::DeeplabV3Plus` builds it with torchvision's parameter names:
//!
//! ```python
//! def cbr(i, o, k, s=1, d=1, relu=True):
//!     layers = [nn.Conv2d(i, o, k, s, d * (k - 1) // 2, d, bias=False), nn.BatchNorm2d(o)]
//!     if relu: layers.append(nn.ReLU())
//!     return nn.Sequential(*layers)
//! class Bottleneck(nn.Module):        # conv1 1x1, conv2 3x3 (stride, dilation), conv3 1x1 (x4)
//!     ...                             # downsample = 1x1/stride conv + BN on each stage's block 0
//! class ResNet(nn.Module):            # 7x7/2 stem, maxpool(3, 2, 1), layer4 dilation 2*[1, 2, 4]
//!     ...
//! class ASPP(nn.Module):              # cbr 1x1 + 3 cbr 3x3 at the rates, image pool, cbr 1x1, BN, ReLU
//!     ...
//! class Decoder(nn.Module):           # conv_low 256->48 (bias), bilinear, cbr 304->256, cbr 256->256
//!     ...
//! def conv_macs(model, x):            # forward hooks on every nn.Conv2d:
//!     # out_numel * (cin / groups) * kh * kw + (out_numel if bias)
//! for name, blocks in [("r50", [3, 4, 6, 3]), ("r101", [3, 4, 23, 3])]:
//!     m = DeepLab(blocks, 5, 2).eval()
//!     print(name, count(m.backbone), count(m.aspp), count(m.decoder), count(m.out_conv))
//! # r50 backbone 23508032 aspp 15535616 decoder 1303600 head 1285
//! # r101 backbone 42500160 aspp 15535616 decoder 1303600 head 1285
//! for blocks, os_, h, w in [([3,4,6,3], 8, 64, 64), ([3,4,6,3], 8, 37, 45), ([3,4,23,3], 16, 50, 70)]:
//!     print(conv_macs(DeepLab(blocks, 5, 2, os_).eval(), torch.zeros(1, 3, h, w)))
//! # (2852140288, (1, 5, 128, 128)), (1336814744, (1, 5, 74, 90)), (1570676402, (1, 5, 100, 140))
//! ```
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use ds2f::config::{ExperimentConfig, LossConfig};
use ds2f::model::complexity::{inference_macs, trainable_params};
use ds2f::model::{Backbone, Framework, ModelConfig, OutputStride, SharedFeatureKind};
use ds2f::train::Objective;

const ALL: [Framework; 8] = Framework::ALL;

fn deeplab(backbone: Backbone, framework: Framework) -> ModelConfig {
    ModelConfig {
        framework,
        backbone,
        num_classes: 5,
        ..ModelConfig::default()
    }
}

/// A deterministic LR batch, its HR mask (five classes in diagonal bands) and HR image.
fn batch(
    device: &Device,
    n: usize,
    h: usize,
    w: usize,
    r: usize,
) -> (Tensor<4>, Tensor<3, Int>, Tensor<4>) {
    let lr: Vec<f32> = (0..n * 3 * h * w)
        .map(|k| (0.37 * k as f32).sin() * 0.8)
        .collect();
    let (hh, hw) = (r * h, r * w);
    let mask: Vec<i64> = (0..n * hh * hw)
        .map(|k| {
            let (y, x) = ((k / hw) % hh, k % hw);
            ((x + 2 * y) / 7 % 5) as i64
        })
        .collect();
    let hr: Vec<f32> = (0..n * 3 * hh * hw)
        .map(|k| (0.11 * k as f32).cos() * 0.7)
        .collect();
    (
        Tensor::from_data(TensorData::new(lr, [n, 3, h, w]), device),
        Tensor::from_data(TensorData::new(mask, [n, hh, hw]), device),
        Tensor::from_data(TensorData::new(hr, [n, 3, hh, hw]), device),
    )
}

#[test]
fn parameter_counts_equal_the_reference() {
    let device = Device::default();
    // SPEC §1.3 (ResNet-101, C = 5, r = 2): backbone 42.50 M, ASPP 15.54 M, each decoder
    // 1.30 M, SR head 0.43 M; exact values from the PyTorch model of the module docs.
    let model = deeplab(Backbone::Deeplabv3plusResnet101, Framework::Ds2f).init_train(&device);
    let c = |p: &str| trainable_params(&model, p);
    assert_eq!(c("encoder.backbone"), 42_500_160);
    assert_eq!(c("encoder.aspp"), 15_535_616);
    assert_eq!(c("encoder"), 42_500_160 + 15_535_616);
    assert_eq!(c("decoder"), 1_303_600);
    assert_eq!(c("sr_branch.decoder"), 1_303_600);
    // 256·64·25 + 64·32·9 + 32·12·9.
    assert_eq!(c("sr_branch.head"), 431_488);
    assert_eq!(c("seg_head"), 256 * 5 + 5);
    // MSCG(256, 256), hidden 32: fuse 512·32 + 32, BN 64, MRCAB 1,192, MS-Conv 368,
    // linear_cross 2·(32·256 + 256), gates 2·(256·256 + 256).
    let mscg = 16_416 + 64 + 1_192 + 368 + 16_896 + 131_584;
    assert_eq!(c("shared_feature"), mscg);
    // SPEC's 61.28 M total has CAGL (0.21 M) where this has the MSCG (0.17 M): the rest,
    // 61,075,749, plus CAGL's 0.21 M is SPEC's total.
    assert_eq!(c(""), 61_075_749 + mscg);
    // With `model.shared_feature.kind = "cagl"`, the reference's model at HEAD: CAGL(256, 256)
    // is 206,816 parameters and the total SPEC's 61.28 M.
    let mut cagl = deeplab(Backbone::Deeplabv3plusResnet101, Framework::Ds2f);
    cagl.shared_feature.kind = SharedFeatureKind::Cagl;
    let model = cagl.init_train(&device);
    assert_eq!(trainable_params(&model, "shared_feature"), 206_816);
    assert_eq!(trainable_params(&model, ""), 61_282_565);
    // ResNet-50 (torchvision's 25,557,032 less its fc, 2048·1000 + 1000).
    let r50 = deeplab(Backbone::Deeplabv3plusResnet50, Framework::UnetInter).init(&device);
    assert_eq!(trainable_params(&r50, "encoder.backbone"), 23_508_032);
    assert_eq!(
        trainable_params(&r50, ""),
        23_508_032 + 15_535_616 + 1_303_600 + 1_285
    );
}

#[test]
fn parameter_paths_are_torchvision_names() {
    let device = Device::default();
    let model = deeplab(Backbone::Deeplabv3plusResnet50, Framework::UnetInter).init(&device);
    let paths: Vec<String> = ds2f::model::complexity::trainable_parameters(&model)
        .into_iter()
        .map(|p| p.path)
        .collect();
    for want in [
        "encoder.backbone.conv1.weight",
        "encoder.backbone.bn1.gamma",
        "encoder.backbone.layer1.0.conv1.weight",
        "encoder.backbone.layer1.0.downsample.conv.weight",
        "encoder.backbone.layer3.5.bn3.beta",
        "encoder.backbone.layer4.2.conv2.weight",
        "encoder.aspp.branches.3.conv.weight",
        "encoder.aspp.project_bn.gamma",
        "decoder.conv_low.bias",
        "decoder.fusion_conv.1.conv.weight",
        "seg_head.conv.weight",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want} missing");
    }
    assert!(!paths.iter().any(|p| p.contains("DeepLab")));
    // Only the first block of a stage has a shortcut projection.
    assert!(!paths.iter().any(|p| p.contains("layer2.1.downsample")));
}

#[test]
fn strides_and_dilations_follow_the_reference_scheme() {
    let device = Device::default();
    for (os, layer3_stride, rates, sizes) in [
        // OS 8: layer3 at /8 undilated, layer4 at /8 with dilations 2, 4, 8.
        (
            OutputStride::Eight,
            1,
            [1, 12, 24, 36],
            [[16, 16], [8, 8], [8, 8], [8, 8]],
        ),
        (
            OutputStride::Sixteen,
            2,
            [1, 6, 12, 18],
            [[16, 16], [8, 8], [4, 4], [4, 4]],
        ),
    ] {
        let config = ModelConfig {
            output_stride: os,
            ..deeplab(Backbone::Deeplabv3plusResnet50, Framework::UnetInter)
        };
        let model = config.init(&device);
        let encoder = model.encoder.deeplab().expect("a DeepLab encoder");
        let resnet = &encoder.backbone;
        assert_eq!(resnet.layer2[0].conv2.stride, [2, 2]);
        assert_eq!(resnet.layer3[0].conv2.stride, [layer3_stride; 2]);
        assert_eq!(resnet.layer4[0].conv2.stride, [1, 1]);
        assert!(resnet.layer3.iter().all(|b| b.conv2.dilation == [1, 1]));
        let d4: Vec<usize> = resnet.layer4.iter().map(|b| b.conv2.dilation[0]).collect();
        assert_eq!(d4, [2, 4, 8]);
        let aspp_d: Vec<usize> = encoder
            .aspp
            .branches
            .iter()
            .map(|b| b.conv.dilation[0])
            .collect();
        assert_eq!(aspp_d, rates);
        let x = Tensor::<4>::zeros([1, 3, 64, 64], &device);
        let dims: Vec<[usize; 2]> = resnet
            .forward_features(x)
            .iter()
            .map(|f| [f.dims()[2], f.dims()[3]])
            .collect();
        assert_eq!(dims, sizes, "{os:?}");
    }
}

#[test]
fn macs_match_pytorch_conv_counts() {
    // Conv MACs (bias included) from forward hooks on the PyTorch model (module docs).
    for (backbone, os, h, w, conv) in [
        (
            Backbone::Deeplabv3plusResnet50,
            OutputStride::Eight,
            64,
            64,
            2_852_140_288u64,
        ),
        (
            Backbone::Deeplabv3plusResnet50,
            OutputStride::Eight,
            37,
            45,
            1_336_814_744,
        ),
        (
            Backbone::Deeplabv3plusResnet101,
            OutputStride::Sixteen,
            50,
            70,
            1_570_676_402,
        ),
    ] {
        let config = ModelConfig {
            output_stride: os,
            ..deeplab(backbone, Framework::UnetInter)
        };
        let macs = inference_macs(&config, h, w);
        assert_eq!(macs.conv, conv, "{backbone:?} {os:?} {h}x{w}");
        // The head's two bilinear steps: C·h·w to LR, C·2h·2w to HR, among the upsampling.
        assert!(macs.upsample >= (5 * h * w + 5 * 4 * h * w) as u64);
    }
}

#[test]
fn config_keys_select_the_backbone_and_output_stride() {
    let c = ExperimentConfig::parse(
        "",
        &[
            "model.backbone=deeplabv3plus_resnet101".to_string(),
            "model.output_stride=16".to_string(),
        ],
        "t",
    )
    .unwrap();
    assert_eq!(c.model.backbone, Backbone::Deeplabv3plusResnet101);
    assert_eq!(c.model.output_stride, OutputStride::Sixteen);
    let d = ExperimentConfig::parse("", &[], "t").unwrap();
    assert_eq!(d.model.backbone, Backbone::Unet);
    assert_eq!(d.model.output_stride, OutputStride::Eight);
    let again = ExperimentConfig::parse(&c.to_toml(), &[], "t").unwrap();
    assert_eq!(again.model, c.model);
    let bad = ExperimentConfig::parse("", &["model.output_stride=12".to_string()], "t");
    let message = bad.unwrap_err().to_string();
    assert!(message.contains("model.output_stride"), "{message}");
}

#[test]
fn every_framework_gives_hr_outputs_for_odd_inputs() {
    let device = Device::default();
    for framework in ALL {
        let config = deeplab(Backbone::Deeplabv3plusResnet50, framework);
        let r = config.effective_upscale();
        let model = config.init_train(&device);
        let (x, _, _) = batch(&device, 2, 21, 19, r);
        let out = model.forward_train(x);
        let (hh, hw) = (21 * r, 19 * r);
        assert_eq!(out.seg.dims(), [2, 5, hh, hw], "{framework:?}");
        let has = |t: &Option<Tensor<4>>| t.as_ref().map(|t| t.dims());
        let sr = framework.has_sr_stream().then_some([2, 3, hh, hw]);
        assert_eq!(has(&out.sr), sr, "{framework:?}");
        let proxies = matches!(framework, Framework::Ds2f | Framework::Ssmaf);
        assert_eq!(has(&out.proxy_sr), proxies.then_some([2, 3, hh, hw]));
        let seg_proxy = proxies || framework == Framework::Supervessel;
        assert_eq!(has(&out.proxy_seg), seg_proxy.then_some([2, 5, hh, hw]));
        let pairs = match framework {
            // The decoder's two fusion convolutions, 256 channels at LR/4 = 6×5.
            Framework::Cogseg => 2,
            Framework::Dsrl => 1,
            _ => 0,
        };
        assert_eq!(out.feature_pairs.len(), pairs, "{framework:?}");
        if framework == Framework::Cogseg {
            for (a, b) in &out.feature_pairs {
                assert_eq!(a.dims(), [2, 256, 6, 5]);
                assert_eq!(b.dims(), [2, 256, 6, 5]);
            }
        }
    }
}

#[test]
fn inference_graph_is_the_segmentation_stream_alone() {
    let device = Device::default();
    for framework in [
        Framework::UnetInter,
        Framework::Ds2f,
        Framework::Supervessel,
    ] {
        let config = deeplab(Backbone::Deeplabv3plusResnet50, framework);
        let model = config.init_train(&device);
        let (x, _, _) = batch(&device, 1, 20, 24, 2);
        let full = model.forward(x.clone()).into_data();
        let seg = model.forward_train(x.clone()).seg.into_data();
        let segmenter = model.into_segmenter();
        let alone = segmenter.forward(x.clone()).into_data();
        assert_eq!(full, alone, "{framework:?}");
        assert_eq!(seg, alone, "{framework:?}");
        assert_eq!(
            trainable_params(&segmenter, ""),
            trainable_params(&config.init(&device), "")
        );
        let bytes = segmenter.clone().into_record().into_bytes().unwrap();
        let record = burn::store::ModuleRecord::from_bytes(bytes).unwrap();
        let loaded = config.init(&device).try_load_record(record).unwrap();
        assert_eq!(loaded.forward(x).into_data(), alone, "{framework:?}");
    }
}

#[test]
fn seg_proxy_uses_the_fused_feature() {
    // The reference overwrites the fused seg feature (`fusion_seg = self.out_conv(net)`,
    // SPEC §1.3 "Bug"), so its seg proxy equals the seg output; here it must differ.
    let device = Device::default();
    let model = deeplab(Backbone::Deeplabv3plusResnet50, Framework::Ds2f).init_train(&device);
    let (x, _, _) = batch(&device, 2, 16, 16, 2);
    let out = model.forward_train(x);
    let proxy = out.proxy_seg.expect("a seg proxy");
    let diff: f32 = (proxy - out.seg).abs().max().into_scalar();
    assert!(
        diff > 1e-4,
        "seg proxy equals the seg output (max diff {diff})"
    );
}

#[test]
fn ds2f_resnet50_trains_and_gradients_reach_every_parameter() {
    let config = deeplab(Backbone::Deeplabv3plusResnet50, Framework::Ds2f);
    trains_and_gradients_reach_every_parameter(config, 64);
}

#[test]
fn ds2f_resnet50_with_cagl_trains_and_gradients_reach_every_parameter() {
    // CAGL's window needs /4 features at least `down_rate` pixels wide, and with a single
    // window position its attention is a softmax over one key, which passes no gradient to q
    // and k (as in PyTorch): an LR input of 128 (/4: 32) with a 16×16 window gives 2×2.
    let mut config = deeplab(Backbone::Deeplabv3plusResnet50, Framework::Ds2f);
    config.shared_feature.kind = SharedFeatureKind::Cagl;
    config.shared_feature.down_rate = 16;
    trains_and_gradients_reach_every_parameter(config, 128);
}

/// Four Adam steps on one batch of `size`² LR images: every parameter gets a gradient on the
/// first, and the loss falls.
fn trains_and_gradients_reach_every_parameter(config: ModelConfig, size: usize) {
    let device = Device::default().autodiff();
    device.seed(11);
    let mut model = config.init_train(&device);
    let (x, y, hr) = batch(&device, 2, size, size, 2);
    let objective = Objective::new(Framework::Ds2f, &LossConfig::default(), 5, None);
    let loss_of = |model: &ds2f::model::DualStream| {
        objective
            .terms(model.forward_train(x.clone()), y.clone(), hr.clone())
            .into_iter()
            .map(|t| t.value)
            .reduce(|a, b| a.add(b))
            .expect("terms")
    };
    let mut optim = AdamConfig::new().init();
    let mut losses = Vec::new();
    for step in 0..4 {
        let loss = loss_of(&model);
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        if step == 0 {
            let missing = ds2f::train::parameters_without_gradient(&model, &grads);
            assert!(missing.is_empty(), "no gradient for {missing:?}");
        }
        model = optim.step(1e-3, model, grads);
    }
    let last: f32 = loss_of(&model).into_scalar();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(last < losses[0], "loss {losses:?} -> {last}");
}

#[test]
fn dilated_convs_wider_than_the_map_reduce_to_their_centre_tap() {
    // ASPP at OS 8 on a 64×64 input: rate 36 (and layer4's dilation 8) on an 8×8 map, where
    // every tap but the centre reads padding. ds2f's conv kernels (im2col on flex: the implicit
    // GEMM declines such dilations) and burn's own convolution must both give the 1×1
    // convolution with the centre tap, at inference and in training.
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::ops::ConvOptions;
    for device in [Device::default(), Device::default().autodiff()] {
        for d in [8, 36] {
            let conv = Conv2dConfig::new([16, 8], [3, 3])
                .with_dilation([d, d])
                .with_padding(PaddingConfig2d::Explicit(d, d, d, d))
                .with_bias(false)
                .init(&device);
            let values: Vec<f32> = (0..2 * 16 * 8 * 8)
                .map(|k| (0.23 * k as f32).sin())
                .collect();
            let x = Tensor::<4>::from_data(TensorData::new(values, [2, 16, 8, 8]), &device);
            let centre = conv.weight.val().slice([0..8, 0..16, 1..2, 1..2]);
            let want = burn::tensor::module::conv2d(
                x.clone(),
                centre,
                None,
                ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
            );
            for got in [ds2f::ops::conv2d_module(&conv, x.clone()), conv.forward(x)] {
                let diff: f32 = (got - want.clone()).abs().max().into_scalar();
                assert!(diff < 1e-5, "dilation {d}: max diff {diff}");
            }
        }
    }
}
