//! ESPNetv2 (SPEC §1.4) as the backbone `model.backbone = "espnetv2"`: parameter counts
//! measured on the reference code, the config keys, every framework's shapes at odd sizes, the
//! inference graph without the SR stream, MACs against PyTorch, our convolution kernels on the
//! grouped / dilated / strided convolutions ESPNetv2 uses, and DS2F on it training through the
//! generic `DualStream` and the repo's objective: loss falling, every parameter reached by a
//! gradient.
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Int};
use ds2f::config::ExperimentConfig;
use ds2f::error::ConfigError;
use ds2f::model::complexity::{inference_macs, trainable_params};
use ds2f::model::espnet::eesp::branch_dilations;
use ds2f::model::espnet::{level_widths, unused_reference_params};
use ds2f::model::{Backbone, DualStream, Features, Framework, ModelConfig};
use ds2f::ops;
use ds2f::train::Objective;

// Parameter counts of the DS2F reference (`Qsingle/imed_vision` 91776aa,
// `imed_vision/models/segmentation/espnets.py`), torch 2.15 CPU, with the package's
// `layers/{utils,eesp,task_fusion,layernorm,cross_attention}.py` and
// `models/{classification,segmentation}/espnets.py` on the path (`create_model.BACKBONE_REGISTER`
// stubbed):
//
//     from imed_vision.models.segmentation.espnets import ESPNetV2_Seg
//     count = lambda m: sum(p.numel() for p in m.parameters())
//     for bb in ["espnetv2_s_0_5", "espnetv2_s_1_0", "espnetv2_s_2_0"]:
//         for C in [19, 5]:
//             seg = ESPNetV2_Seg(3, num_classes=C, backbone=bb)
//             ds2f = ESPNetV2_Seg(3, num_classes=C, backbone=bb, super_reso=True, upscale_rate=2)
//             dead = sum(getattr(seg.backbone, l).eesp.module_act.weight.numel()
//                        for l in ["level2_0", "level3_0", "level4_0"])
//             print(bb, C, count(seg), count(seg.backbone), count(ds2f), count(ds2f.fusion), dead)
//
// espnetv2_s_0_5 19:  99222 (backbone  62354)  ds2f  166992  fusion  6806  dead 112
// espnetv2_s_0_5  5:  96898                    ds2f  162960  fusion  5098
// espnetv2_s_1_0 19: 340474 (backbone 207158)  ds2f  507252  fusion 11158  dead 224
// espnetv2_s_1_0  5: 336582                    ds2f  501204  fusion  9002
// espnetv2_s_2_0 19: 1252538 (backbone 745686) ds2f 1789780  fusion 11158  dead 480
// espnetv2_s_2_0  5: 1245958                   ds2f 1781044  fusion  9002
//
// The official model (`sacmehta/ESPNetv2` `segmentation/cnn/SegmentationModel.py::EESPNet_Seg`,
// `classes=19`) has the same counts: 99222, 340474, 1252538 (backbones 62354, 207158, 745686).
// "dead" are the PReLUs of the stride-2 EESP units, built but never run, which we leave out.

/// `(scale, C, reference seg model, reference backbone, reference DS2F model at r = 2,
/// its fusion, dead)`.
const REFERENCE: [(f64, usize, usize, usize, usize, usize, usize); 6] = [
    (0.5, 19, 99_222, 62_354, 166_992, 6_806, 112),
    (0.5, 5, 96_898, 62_354, 162_960, 5_098, 112),
    (1.0, 19, 340_474, 207_158, 507_252, 11_158, 224),
    (1.0, 5, 336_582, 207_158, 501_204, 9_002, 224),
    (2.0, 19, 1_252_538, 745_686, 1_789_780, 11_158, 480),
    (2.0, 5, 1_245_958, 745_686, 1_781_044, 9_002, 480),
];

/// The ESPNetv2 model config of `framework` at width `scale`, `c` classes, r = 2.
fn espnet(framework: Framework, scale: f64, c: usize) -> ModelConfig {
    ModelConfig {
        framework,
        backbone: Backbone::Espnetv2,
        espnet_scale: scale,
        num_classes: c,
        ..ModelConfig::default()
    }
}

/// Every framework ESPNetv2 supports (all but CogSeg).
const SUPPORTED: [Framework; 7] = [
    Framework::Unet,
    Framework::UnetInter,
    Framework::UnetInterSr,
    Framework::Ds2f,
    Framework::Dsrl,
    Framework::Supervessel,
    Framework::Ssmaf,
];

#[test]
fn parameter_counts_match_the_reference() {
    let device = Device::default();
    for (scale, c, seg_count, backbone_count, ds2f_count, fusion, dead) in REFERENCE {
        assert_eq!(unused_reference_params(scale).unwrap(), dead, "s = {scale}");
        let seg = espnet(Framework::UnetInter, scale, c).init(&device);
        assert_eq!(
            trainable_params(&seg, "encoder"),
            backbone_count - dead,
            "s = {scale}"
        );
        assert_eq!(
            trainable_params(&seg, ""),
            seg_count - dead,
            "s = {scale}, C = {c}"
        );
        // The segmentation `project_l1`, (w1 + C)·C without bias, is the seg head's.
        let w1 = level_widths(scale).unwrap()[0];
        assert_eq!(trainable_params(&seg, "seg_head"), (w1 + c) * c);
        let ds2f = espnet(Framework::Ds2f, scale, c).init_train(&device);
        assert_eq!(
            trainable_params(&ds2f, ""),
            ds2f_count - dead,
            "s = {scale}, C = {c}"
        );
        assert_eq!(trainable_params(&ds2f, "shared_feature"), fusion);
        // The SR head on 3 channels, [64, 32], r = 2: 3·64·25 + 64·32·9 + 32·12·9.
        assert_eq!(trainable_params(&ds2f, "sr_branch.head"), 26_688);
        // The inference parts of the training model are the inference model's.
        let inference: usize = ["encoder", "decoder", "seg_head"]
            .iter()
            .map(|p| trainable_params(&ds2f, p))
            .sum();
        assert_eq!(inference, seg_count - dead);
    }
}

#[test]
fn widths_follow_the_reference_formula_and_bad_scales_name_the_key() {
    // `EspNetV2.__init__`: b = ceil(int(32 s) / 4)·4, [min(32, b), 2b, 4b, 8b] (and the official
    // `espnetv2_config.sc_ch_dict` lists the same).
    assert_eq!(level_widths(0.5).unwrap(), [16, 32, 64, 128]);
    assert_eq!(level_widths(1.0).unwrap(), [32, 64, 128, 256]);
    assert_eq!(level_widths(1.25).unwrap(), [32, 80, 160, 320]);
    assert_eq!(level_widths(1.5).unwrap(), [32, 96, 192, 384]);
    assert_eq!(level_widths(2.0).unwrap(), [32, 128, 256, 512]);
    let err = level_widths(0.75).unwrap_err();
    assert!(matches!(&err, ConfigError::Range { key, .. } if key == "model.espnet_scale"));
    assert!(err.to_string().contains("model.espnet_scale"), "{err}");
}

#[test]
fn config_keys_round_trip_and_are_checked() {
    let c = ExperimentConfig::parse(
        "",
        &[
            "model.backbone=espnetv2".to_string(),
            "model.espnet_scale=0.5".to_string(),
            "model.framework=ds2f".to_string(),
        ],
        "t",
    )
    .unwrap();
    assert_eq!(c.model.backbone, Backbone::Espnetv2);
    assert_eq!(c.model.espnet_scale, 0.5);
    assert!(
        c.to_toml().contains("backbone = \"espnetv2\""),
        "{}",
        c.to_toml()
    );
    let again = ExperimentConfig::parse(&c.to_toml(), &[], "t").unwrap();
    assert_eq!(again.model, c.model);
    // The default width is the reference's Cityscapes model, s = 2.
    let d = ExperimentConfig::parse("", &["model.backbone=espnetv2".to_string()], "t").unwrap();
    assert_eq!(d.model.espnet_scale, 2.0);
    // A width the reference has no model for names its key; so does CogSeg, whose stage-wise
    // feature loss needs equal widths in both decoders.
    for (set, key) in [
        ("model.espnet_scale=0.75", "model.espnet_scale"),
        ("model.framework=cogseg", "model.framework"),
    ] {
        let bad = ExperimentConfig::parse(
            "",
            &["model.backbone=espnetv2".to_string(), set.to_string()],
            "t",
        );
        let err = bad.unwrap_err();
        assert!(
            matches!(&err, ConfigError::Range { key: k, .. } if k == key),
            "{set}: {err}"
        );
        assert!(err.to_string().contains("model.backbone"), "{err}");
    }
    // Other backbones do not read the scale, and CogSeg stays valid on them.
    ExperimentConfig::parse(
        "",
        &[
            "model.espnet_scale=0.75".to_string(),
            "model.framework=cogseg".to_string(),
        ],
        "t",
    )
    .unwrap();
}

#[test]
fn branch_dilations_are_the_reference_order() {
    // `EESP.__init__` of the reference: dilation (k−1)/2 for k = 3, 5, 7, 9 while k ≤ r_lim,
    // else 1, unsorted.
    assert_eq!(branch_dilations(4, 13), [1, 2, 3, 4]);
    assert_eq!(branch_dilations(4, 9), [1, 2, 3, 4]);
    assert_eq!(branch_dilations(4, 7), [1, 2, 3, 1]);
    assert_eq!(branch_dilations(4, 5), [1, 2, 1, 1]);
}

#[test]
fn odd_inputs_give_r_times_the_input() {
    // The reference accepts 97×130 but returns 2·ceil(97/2) = 98 rows (and its aux output
    // 8·ceil(97/8)·r = 208): `ESPNetV2_Seg(3, 19, "espnetv2_s_1_0").eval()(randn(3,3,97,130))`
    // is [3, 19, 98, 130]. The official `EESPNet_Seg` fails at 97×130 (its ×2 steps need a
    // size divisible by 16). Here every output is r·h × r·w.
    let device = Device::default();
    let x = Tensor::<4>::random([3, 3, 97, 130], Distribution::Normal(0.0, 1.0), &device);
    for (scale, framework, r) in [(1.0, Framework::Unet, 1), (0.5, Framework::UnetInter, 2)] {
        let model = espnet(framework, scale, 19).init(&device);
        let features = model.encoder.forward(x.clone());
        let Features::Espnet(levels) = &features else {
            panic!("ESPNetv2 features expected");
        };
        let [w1, w2, w3, w4] = level_widths(scale).unwrap();
        assert_eq!(levels.l1.dims(), [3, w1, 49, 65]);
        assert_eq!(levels.l2.dims(), [3, w2, 25, 33]);
        assert_eq!(levels.l3.dims(), [3, w3, 13, 17]);
        assert_eq!(levels.l4.dims(), [3, w4, 7, 9]);
        assert_eq!(
            model.decoder.forward(&features).dims(),
            [3, w1 + 19, 49, 65]
        );
        assert_eq!(model.forward(x.clone()).dims(), [3, 19, 97 * r, 130 * r]);
    }
}

#[test]
fn every_supported_framework_gives_hr_outputs_for_odd_inputs() {
    let device = Device::default();
    let (n, h, w, c) = (2, 27, 21, 5);
    let x = Tensor::<4>::random([n, 3, h, w], Distribution::Normal(0.0, 1.0), &device);
    for framework in SUPPORTED {
        let config = espnet(framework, 0.5, c);
        let r = config.effective_upscale();
        let hr = [r * h, r * w];
        let model = config.init_train(&device);
        let out = model.forward_train(x.clone());
        assert_eq!(out.seg.dims(), [n, c, hr[0], hr[1]], "{framework:?}");
        assert_eq!(out.sr.is_some(), framework.has_sr_stream(), "{framework:?}");
        if let Some(sr) = &out.sr {
            assert_eq!(sr.dims(), [n, 3, hr[0], hr[1]], "{framework:?}");
        }
        let proxies = matches!(framework, Framework::Ds2f | Framework::Ssmaf);
        assert_eq!(out.proxy_sr.is_some(), proxies, "{framework:?}");
        if let Some(p) = &out.proxy_sr {
            assert_eq!(p.dims(), [n, 3, hr[0], hr[1]], "{framework:?}");
        }
        let proxy_seg = proxies || framework == Framework::Supervessel;
        assert_eq!(out.proxy_seg.is_some(), proxy_seg, "{framework:?}");
        if let Some(p) = &out.proxy_seg {
            assert_eq!(p.dims(), [n, c, hr[0], hr[1]], "{framework:?}");
        }
        assert_eq!(
            out.feature_pairs.len(),
            usize::from(framework == Framework::Dsrl),
            "{framework:?}"
        );
        // The inference graph alone gives the same logits (no dropout off autodiff).
        let seg = model.forward(x.clone());
        assert_eq!(
            seg.clone().into_data(),
            out.seg.into_data(),
            "{framework:?}"
        );
        assert_eq!(
            model.into_segmenter().forward(x.clone()).into_data(),
            seg.into_data(),
            "{framework:?}"
        );
    }
}

#[test]
fn the_inference_model_is_the_segmentation_stream_only() {
    let device = Device::default();
    let train = espnet(Framework::Ds2f, 0.5, 5).init_train(&device);
    let total = trainable_params(&train, "");
    let sr_part =
        trainable_params(&train, "sr_branch") + trainable_params(&train, "shared_feature");
    let segmenter = train.into_segmenter();
    assert_eq!(trainable_params(&segmenter, ""), total - sr_part);
    // Its weights, saved and loaded into the inference model built from the config, give the
    // same logits: the record holds the inference graph only, under the same paths.
    let x = Tensor::<4>::random([1, 3, 19, 23], Distribution::Normal(0.0, 1.0), &device);
    let expected = segmenter.forward(x.clone()).into_data();
    let bytes = segmenter.clone().into_record().into_bytes().unwrap();
    let record = burn::store::ModuleRecord::from_bytes(bytes).unwrap();
    let loaded = espnet(Framework::UnetInter, 0.5, 5)
        .init(&device)
        .try_load_record(record)
        .unwrap();
    assert_eq!(loaded.forward(x).into_data(), expected);
    // No path of the segmenter belongs to the SR stream.
    let paths = ds2f::model::complexity::trainable_parameters(&segmenter);
    assert!(
        paths.iter().all(|p| !p.path.starts_with("sr_")),
        "SR parameter kept"
    );
    assert!(paths.iter().any(|p| p.path == "seg_head.conv.weight"));
}

#[test]
fn macs_match_pytorch_conv_counts() {
    // Conv MACs (bias included) from forward hooks on a PyTorch ESPNetv2 written for this test
    // (`/tmp/espwire/macs.py`, torch 2.15 CPU): the reference's architecture as SPEC §1.4 and
    // `espnets.py` build it, in eval mode (the level-3 aux path off), with the reference's
    // parameter counts less the dead PReLUs (first two lines printed: 99110 = 99222 − 112,
    // 1245478 = 1245958 − 480):
    //
    //     import torch, torch.nn as nn, torch.nn.functional as F
    //     def conv(i, o, k, s=1, d=1, g=1): return nn.Conv2d(i, o, k, s, d * (k - 1) // 2, d, groups=g, bias=False)
    //     class CBR(nn.Module):
    //         def __init__(s, i, o, k, st=1, g=1): super().__init__(); s.c = conv(i, o, k, st, 1, g); s.bn = nn.BatchNorm2d(o); s.a = nn.PReLU(o)
    //         def forward(s, x): return s.a(s.bn(s.c(x)))
    //     class CB(nn.Module):
    //         def __init__(s, i, o, k, g=1): super().__init__(); s.c = conv(i, o, k, 1, 1, g); s.bn = nn.BatchNorm2d(o)
    //         def forward(s, x): return s.bn(s.c(x))
    //     class EESP(nn.Module):
    //         def __init__(s, i, o, st, r_lim, K=4):
    //             super().__init__(); n = o // K; s.st = st
    //             s.g = CBR(i, n, 1, 1, K)
    //             ds = [((3 + 2 * j) - 1) // 2 if 3 + 2 * j <= r_lim else 1 for j in range(K)]
    //             s.spp = nn.ModuleList([conv(n, n, 3, st, d, n) for d in ds])
    //             s.bn = nn.BatchNorm2d(o); s.pr = nn.PReLU(o); s.cc = CB(o, o, 1, K); s.act = nn.PReLU(o)
    //         def forward(s, x):
    //             r = s.g(x); outs = [s.spp[0](r)]
    //             for c in s.spp[1:]: outs.append(c(r) + outs[-1])
    //             y = s.cc(s.pr(s.bn(torch.cat(outs, 1))))
    //             if s.st == 2: return y
    //             if y.shape == x.shape: y = y + x
    //             return s.act(y)
    //     pool = lambda x: F.avg_pool2d(x, 3, 2, 1)
    //     class Down(nn.Module):
    //         def __init__(s, i, o, r_lim):
    //             super().__init__(); s.e = EESP(i, o - i, 2, r_lim); s.r1 = CBR(3, 3, 3); s.r2 = CB(3, o, 1); s.a = nn.PReLU(o)
    //         def forward(s, x, img):
    //             return s.a(torch.cat([s.e(x), pool(x)], 1) + s.r2(s.r1(img)))
    //     def widths(sc):
    //         b = -(-int(32 * sc) // 4) * 4
    //         return [min(32, b), 2 * b, 4 * b, 8 * b]
    //     up = lambda x, size: F.interpolate(x, size=size, mode="bilinear", align_corners=True)
    //     class Net(nn.Module):
    //         def __init__(s, sc, C, r):
    //             super().__init__(); w1, w2, w3, w4 = widths(sc); s.r = r
    //             s.l1 = CBR(3, w1, 3, 2); s.l2 = Down(w1, w2, 13); s.l30 = Down(w2, w3, 11)
    //             s.l3 = nn.ModuleList([EESP(w3, w3, 1, 9) for _ in range(3)]); s.l40 = Down(w3, w4, 9)
    //             s.l4 = nn.ModuleList([EESP(w4, w4, 1, 7) for _ in range(7)])
    //             s.p4 = CBR(w4, w3, 1); s.pe = EESP(2 * w3, w3, 1, 7)
    //             s.stages = nn.ModuleList([conv(w3, w3, 3, 1, 1, w3) for _ in range(4)]); s.pp = CBR(5 * w3, w3, 1)
    //             s.pl3 = conv(w3, C, 1); s.al3 = nn.Sequential(nn.BatchNorm2d(C), nn.PReLU(C))
    //             s.pl2 = CBR(w2 + C, C, 1); s.pl1 = conv(w1 + C, C, 1)
    //         def forward(s, x):
    //             h, w = x.shape[2:]
    //             i2 = pool(pool(x)); i3 = pool(i2); i4 = pool(i3)
    //             l1 = s.l1(x); l2 = s.l2(l1, i2); l3 = s.l30(l2, i3)
    //             for m in s.l3: l3 = m(l3)
    //             l4 = s.l40(l3, i4)
    //             for m in s.l4: l4 = m(l4)
    //             y = s.pe(torch.cat([l3, up(s.p4(l4), l3.shape[2:])], 1))
    //             parts, p = [y], y
    //             for c in s.stages: p = pool(p); parts.append(up(c(p), y.shape[2:]))
    //             y = s.al3(s.pl3(s.pp(torch.cat(parts, 1))))
    //             y = s.pl2(torch.cat([l2, up(y, l2.shape[2:])], 1))
    //             y = s.pl1(torch.cat([l1, up(y, l1.shape[2:])], 1))
    //             return up(up(y, (h, w)), (h * s.r, w * s.r))
    //     def conv_macs(model, x):
    //         total = [0]
    //         def hook(m, i, o):
    //             total[0] += o.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1] + (o.numel() if m.bias is not None else 0)
    //         for m in model.modules():
    //             if isinstance(m, nn.Conv2d): m.register_forward_hook(hook)
    //         with torch.no_grad(): y = model(x)
    //         return total[0], tuple(y.shape)
    //     count = lambda m: sum(p.numel() for p in m.parameters())
    //     for sc, C in [(0.5, 19), (2.0, 5)]:
    //         print(sc, C, count(Net(sc, C, 2)) - sum(p.numel() for n, p in Net(sc, C, 2).named_parameters() if n.split(".")[0] in ("l2", "l30", "l40") and n.endswith("e.act.weight")))
    //     for sc, C, r, h, w in [(2.0, 19, 2, 64, 128), (0.5, 5, 2, 37, 45), (1.0, 2, 1, 97, 130)]:
    //         print(sc, C, r, h, w, conv_macs(Net(sc, C, r).eval(), torch.zeros(1, 3, h, w)))
    //
    // 0.5 19 99110
    // 2.0 5 1245478
    // 2.0 19 2 64 128 (88347040, (1, 19, 128, 256))
    // 0.5 5 2 37 45 (1700420, (1, 5, 74, 90))
    // 1.0 2 1 97 130 (41381773, (1, 2, 97, 130))
    for (scale, c, framework, h, w, conv) in [
        (2.0, 19, Framework::UnetInter, 64, 128, 88_347_040u64),
        (0.5, 5, Framework::UnetInter, 37, 45, 1_700_420),
        (1.0, 2, Framework::Unet, 97, 130, 41_381_773),
    ] {
        let config = espnet(framework, scale, c);
        let r = config.effective_upscale();
        let macs = inference_macs(&config, h, w);
        assert_eq!(macs.conv, conv, "s = {scale} {h}x{w}");
        // The head's bilinear steps: C·h·w to LR, then C·rh·rw, among the upsampling.
        let head = c * h * w + if r > 1 { c * r * r * h * w } else { 0 };
        assert!(macs.upsample >= head as u64);
    }
}

/// `ds2f::ops::conv2d` against burn's convolution, output and all three gradients.
fn conv_matches_burn(shape: [usize; 4], cout: usize, kernel: usize, options: ConvOptions<2>) {
    let device = Device::default().autodiff();
    let [n, cin, h, w] = shape;
    let cin_g = cin / options.groups;
    let x = Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let weight = Tensor::<4>::random(
        [cout, cin_g, kernel, kernel],
        Distribution::Normal(0.0, 0.5),
        &device,
    );
    let out_dims = burn_conv2d(x.clone(), weight.clone(), None, options.clone()).dims();
    let upstream = Tensor::<4>::random(out_dims, Distribution::Normal(0.0, 1.0), &device);
    let run = |ours: bool| {
        let x = x.clone().detach().require_grad();
        let weight = weight.clone().detach().require_grad();
        let out = match ours {
            true => ops::conv2d(x.clone(), weight.clone(), None, options.clone()),
            false => burn_conv2d(x.clone(), weight.clone(), None, options.clone()),
        };
        let grads = (out.clone() * upstream.clone()).sum().backward();
        [
            out.inner(),
            x.grad(&grads).unwrap(),
            weight.grad(&grads).unwrap(),
        ]
    };
    let (ours, theirs) = (run(true), run(false));
    for (what, (a, b)) in ["output", "input grad", "weight grad"]
        .iter()
        .zip(ours.into_iter().zip(theirs))
    {
        assert_eq!(a.dims(), b.dims());
        let scale = b.clone().abs().max().into_scalar::<f32>().max(1e-3);
        let err = (a - b).abs().max().into_scalar::<f32>() / scale;
        assert!(
            err < 1e-4,
            "{what} {shape:?}→{cout} {options:?}: {err} ({n}·{h}·{w})"
        );
    }
}

#[test]
fn our_kernels_match_burn_on_espnet_convolutions() {
    // EESP's 4-group 1×1 reduction and expansion, at 64×64 (the implicit GEMM's range).
    conv_matches_burn(
        [2, 32, 64, 64],
        8,
        1,
        ConvOptions::new([1, 1], [0, 0], [1, 1], 4),
    );
    conv_matches_burn(
        [2, 32, 33, 17],
        32,
        1,
        ConvOptions::new([1, 1], [0, 0], [1, 1], 4),
    );
    // Depth-wise dilated 3×3 branches, stride 1 and (down-sampling units) stride 2.
    for d in [1, 3, 4] {
        conv_matches_burn(
            [2, 8, 25, 33],
            8,
            3,
            ConvOptions::new([1, 1], [d, d], [d, d], 8),
        );
        conv_matches_burn(
            [2, 8, 25, 33],
            8,
            3,
            ConvOptions::new([2, 2], [d, d], [d, d], 8),
        );
    }
    // Level 1: dense 3×3 stride 2 on the image, odd size.
    conv_matches_burn(
        [2, 3, 97, 65],
        16,
        3,
        ConvOptions::new([2, 2], [1, 1], [1, 1], 1),
    );
}

/// The repo's DS2F objective (CE, MSE, RMI on the seg proxy, SSIM on the SR proxy), summed.
fn total_loss(
    model: &DualStream,
    objective: &Objective,
    x: &Tensor<4>,
    mask: &Tensor<3, Int>,
    hr: &Tensor<4>,
) -> Tensor<1> {
    objective
        .terms(model.forward_train(x.clone()), mask.clone(), hr.clone())
        .into_iter()
        .map(|t| t.value)
        .reduce(|a, b| a + b)
        .expect("a loss term")
}

#[test]
fn ds2f_trains_and_every_parameter_gets_a_gradient() {
    let device = Device::default().autodiff();
    device.seed(11);
    let (n, h, w, c) = (2, 64, 64, 5);
    let config = espnet(Framework::Ds2f, 0.5, c);
    let r = config.effective_upscale();
    let mut model = config.init_train(&device);
    // The training's objective, with ESPNetv2's auxiliary term (weight 1, as the reference).
    let experiment = ExperimentConfig {
        model: config.clone(),
        ..ExperimentConfig::default()
    };
    let objective = Objective::from_config(&experiment);
    let x = Tensor::<4>::random([n, 3, h, w], Distribution::Uniform(-1.0, 1.0), &device);
    let hr = ds2f::model::unet::bilinear(x.clone(), [r * h, r * w], true);
    // Five classes in bands that follow the image's first channel: a learnable mapping.
    let mask: Tensor<3, Int> = ((hr.clone().narrow(1, 0, 1).squeeze_dim::<3>(1) + 1.0) * 2.499)
        .floor()
        .int();
    let out = model.forward_train(x.clone());
    let aux = out.aux.clone().expect("ESPNetv2's auxiliary output");
    assert_eq!(aux.dims(), [n, c, r * h, r * w]);
    let terms = objective.terms(out, mask.clone(), hr.clone());
    let names: Vec<&str> = terms.iter().map(|t| t.term.name()).collect();
    assert_eq!(names, ["seg", "sr", "proxy_seg", "proxy_sr", "aux"]);
    // The auxiliary term is the main loss (cross-entropy) on the auxiliary logits.
    let aux_term: f32 = terms[4].value.clone().into_scalar();
    let expected: f32 = ds2f::loss::CrossEntropy::default()
        .forward(aux, mask.clone())
        .into_scalar();
    assert!(
        (aux_term - expected).abs() < 1e-6,
        "{aux_term} vs {expected}"
    );
    // Without the auxiliary weight, or on another backbone, there is no such term.
    let mut off = experiment.clone();
    off.train.loss.aux_weight = 0.0;
    assert!(!Objective::from_config(&off).term_names().contains(&"aux"));
    let unet = ExperimentConfig::default();
    assert!(!Objective::from_config(&unet).term_names().contains(&"aux"));

    let mut optim = AdamConfig::new().init();
    let mut losses = Vec::new();
    for step in 0..8 {
        let loss = total_loss(&model, &objective, &x, &mask, &hr);
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        if step == 0 {
            let missing = ds2f::train::parameters_without_gradient(&model, &grads);
            assert!(missing.is_empty(), "no gradient for {missing:?}");
        }
        model = optim.step(5e-3, model, grads);
    }
    let last = total_loss(&model, &objective, &x, &mask, &hr).into_scalar::<f32>();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    // Seeded, so the dropout masks are fixed: the loss falls at every step, by 5 % at least
    // in all.
    losses.push(last);
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
    assert!(last < 0.95 * losses[0], "{losses:?}");

    // The inference graph is the training model's segmentation stream.
    let x_plain = x.inner();
    let model = model.valid();
    let seg = model.forward(x_plain.clone());
    assert_eq!(
        model.into_segmenter().forward(x_plain).into_data(),
        seg.into_data()
    );
}

/// `sin(seed + 0.37·j) / 2` over the elements in row-major order (the golden script's `fill`).
fn fill<const D: usize>(shape: [usize; D], seed: f64, device: &Device) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|j| ((seed + 0.37 * j as f64).sin() * 0.5) as f32)
        .collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn param<const D: usize>(t: Tensor<D>) -> burn::module::Param<Tensor<D>> {
    burn::module::Param::from_tensor(t)
}

/// Sets an EESP unit's weights as the golden script's `set_eesp(m, base)`.
fn set_eesp(m: &mut ds2f::model::espnet::Eesp, base: f64, device: &Device) {
    let d = device;
    let ones = |c: usize| Tensor::<1>::ones([c], d);
    let g = &mut m.g_conv1;
    g.conv.weight = param(fill(g.conv.weight.val().dims(), base + 1.0, d));
    let c = g.bn.gamma.val().dims()[0];
    g.bn.gamma = param(ones(c) + fill([c], base + 2.0, d));
    g.bn.beta = param(fill([c], base + 3.0, d));
    g.act.alpha = param(fill([c], base + 4.0, d));
    for (i, conv) in m.spp_convs.iter_mut().enumerate() {
        conv.weight = param(fill(conv.weight.val().dims(), base + 10.0 + i as f64, d));
    }
    let c = m.bn_pr.bn.gamma.val().dims()[0];
    m.bn_pr.bn.gamma = param(ones(c) + fill([c], base + 20.0, d));
    m.bn_pr.bn.beta = param(fill([c], base + 21.0, d));
    m.bn_pr.act.alpha = param(fill([c], base + 22.0, d));
    let cc = &mut m.conv_concat;
    cc.conv.weight = param(fill(cc.conv.weight.val().dims(), base + 30.0, d));
    cc.bn.gamma = param(ones(c) + fill([c], base + 31.0, d));
    cc.bn.beta = param(fill([c], base + 32.0, d));
    if let Some(act) = &mut m.module_act {
        act.alpha = param(fill([c], base + 40.0, d));
    }
}

/// `(sum, sum of squares, values at flat indices 0, 7, 100, last)`.
fn stats(y: Tensor<4>) -> (f64, f64, [f32; 4]) {
    let v: Vec<f32> = y.into_data().iter::<f32>().collect();
    let sum = v.iter().map(|&a| a as f64).sum();
    let sumsq = v.iter().map(|&a| (a as f64) * (a as f64)).sum();
    (sum, sumsq, [v[0], v[7], v[100], v[v.len() - 1]])
}

fn assert_stats(got: (f64, f64, [f32; 4]), want: (f64, f64, [f32; 4])) {
    assert!(
        (got.0 - want.0).abs() < 1e-3 * want.0.abs(),
        "sum {got:?} vs {want:?}"
    );
    assert!(
        (got.1 - want.1).abs() < 1e-3 * want.1.abs(),
        "sumsq {got:?} vs {want:?}"
    );
    for (a, b) in got.2.iter().zip(want.2) {
        assert!((a - b).abs() < 1e-4, "values {got:?} vs {want:?}");
    }
}

#[test]
fn eesp_units_equal_the_reference_numerically() {
    // Reference `imed_vision/layers/eesp.py` in eval mode (BN running stats 0 / 1), torch 2.15:
    //
    //     fill = lambda shape, seed: (torch.sin(seed + 0.37 * torch.arange(prod(shape),
    //                dtype=torch.float64)) * 0.5).reshape(shape).float()
    //     set_eesp(m, base): g_conv1.conv.weight ← fill(·, base+1), its BN weight ← 1+fill(base+2),
    //         bias ← fill(base+3), PReLU ← fill(base+4); spp_convs[i] ← fill(base+10+i);
    //         bn_pr BN ← 1+fill(base+20), fill(base+21), PReLU ← fill(base+22);
    //         conv_concat conv ← fill(base+30), BN ← 1+fill(base+31), fill(base+32);
    //         module_act ← fill(base+40)
    //     x = fill([2, 16, 9, 11], 50) * 2
    //     e = EESP(16, 16, stride=1, r_lim=7, K=4).eval(); set_eesp(e, 0); y = e(x)
    //     s = SESSP(16, 32, stride=2, r_lim=13, K=4, refin=True, refin_ch=3).eval()
    //     set_eesp(s.eesp, 100); refin_conv[0]: conv ← fill(201), BN ← 1+fill(202), fill(203),
    //         PReLU ← fill(204); refin_conv[1]: conv ← fill(211), BN ← 1+fill(212), fill(213);
    //         activation ← fill(220)
    //     img = fill([2, 3, 17, 21], 60) * 2; z = s(x, img)
    //     print(y.sum(), (y*y).sum(), y.flatten()[[0, 7, 100, -1]])   # and the same for z
    //
    // eesp  (2, 16, 9, 11) sum 1398.562791 sumsq 2030.709593 [-0.139213, 0.700228, -0.017979, 0.317849]
    // sessp (2, 32, 5, 6)  sum  875.081987 sumsq 1352.898040 [-0.052679, -0.050921, 0.885633, 0.151685]
    //
    // r_lim = 7 gives the branches dilations 1, 2, 3, 1 in that order (the official sorted
    // order 1, 1, 2, 3 fuses differently and would not match).
    use ds2f::model::espnet::layers::ConvInit;
    use ds2f::model::espnet::{Eesp, StridedEesp};
    let device = Device::default();
    let d = &device;
    let x = fill([2, 16, 9, 11], 50.0, d) * 2.0;
    let mut eesp = Eesp::new([16, 16], 1, 7, 4, ConvInit::Default, d);
    set_eesp(&mut eesp, 0.0, d);
    assert_stats(
        stats(eesp.forward(x.clone())),
        (
            1398.562791,
            2030.709593,
            [-0.139213, 0.700228, -0.017979, 0.317849],
        ),
    );

    let mut down = StridedEesp::new([16, 32], 3, 13, 4, ConvInit::Default, d);
    set_eesp(&mut down.eesp, 100.0, d);
    let ones = |c: usize| Tensor::<1>::ones([c], d);
    let r = &mut down.refin_cbr;
    r.conv.weight = param(fill(r.conv.weight.val().dims(), 201.0, d));
    r.bn.gamma = param(ones(3) + fill([3], 202.0, d));
    r.bn.beta = param(fill([3], 203.0, d));
    r.act.alpha = param(fill([3], 204.0, d));
    let r = &mut down.refin_cb;
    r.conv.weight = param(fill(r.conv.weight.val().dims(), 211.0, d));
    r.bn.gamma = param(ones(32) + fill([32], 212.0, d));
    r.bn.beta = param(fill([32], 213.0, d));
    down.activation.alpha = param(fill([32], 220.0, d));
    let image = fill([2, 3, 17, 21], 60.0, d) * 2.0;
    assert_stats(
        stats(down.forward(x, image)),
        (
            875.081987,
            1352.898040,
            [-0.052679, -0.050921, 0.885633, 0.151685],
        ),
    );
}
