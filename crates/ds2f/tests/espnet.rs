//! ESPNetv2 (SPEC §1.4): parameter counts measured on the reference code, shapes at odd
//! sizes, our convolution kernels on the grouped / dilated / strided convolutions ESPNetv2
//! uses, and the DS2F form training: loss falling, every parameter reached by a gradient.
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Int};
use ds2f::error::ConfigError;
use ds2f::loss::{CrossEntropy, Mse};
use ds2f::model::complexity::trainable_params;
use ds2f::model::espnet::eesp::branch_dilations;
use ds2f::model::espnet::{EspnetV2Config, EspnetV2Ds2f, level_widths};
use ds2f::ops;

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

/// `(scale, C, reference seg model, reference backbone, reference DS2F model at r = 2, dead)`.
const REFERENCE: [(f64, usize, usize, usize, usize, usize); 6] = [
    (0.5, 19, 99_222, 62_354, 166_992, 112),
    (0.5, 5, 96_898, 62_354, 162_960, 112),
    (1.0, 19, 340_474, 207_158, 507_252, 224),
    (1.0, 5, 336_582, 207_158, 501_204, 224),
    (2.0, 19, 1_252_538, 745_686, 1_789_780, 480),
    (2.0, 5, 1_245_958, 745_686, 1_781_044, 480),
];

#[test]
fn parameter_counts_match_the_reference() {
    let device = Device::default();
    for (scale, c, seg_count, backbone_count, ds2f_count, dead) in REFERENCE {
        let config = EspnetV2Config::new(scale, 3, c, 2);
        assert_eq!(
            config.unused_reference_params().unwrap(),
            dead,
            "s = {scale}"
        );
        let seg = config.init_seg(&device).unwrap();
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
        let ds2f = config.init_ds2f(&device).unwrap();
        assert_eq!(
            trainable_params(&ds2f, ""),
            ds2f_count - dead,
            "s = {scale}, C = {c}"
        );
        // The SR head on 3 channels, [64, 32], r = 2: 3·64·25 + 64·32·9 + 32·12·9.
        assert_eq!(trainable_params(&ds2f, "sr_head"), 26_688);
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
    for (scale, r) in [(1.0, 1), (0.5, 2)] {
        let model = EspnetV2Config::new(scale, 3, 19, r)
            .init_seg(&device)
            .unwrap();
        let levels = model.encoder.forward(x.clone());
        let [w1, w2, w3, w4] = level_widths(scale).unwrap();
        assert_eq!(levels.l1.dims(), [3, w1, 49, 65]);
        assert_eq!(levels.l2.dims(), [3, w2, 25, 33]);
        assert_eq!(levels.l3.dims(), [3, w3, 13, 17]);
        assert_eq!(levels.l4.dims(), [3, w4, 7, 9]);
        let features = model.decoder.forward_merged(&levels);
        assert_eq!(features.merged_l1.dims(), [3, w1 + 19, 49, 65]);
        assert_eq!(features.proj_l3.dims(), [3, 19, 13, 17]);
        assert_eq!(model.forward(x.clone()).dims(), [3, 19, 97 * r, 130 * r]);
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

/// Sum of the reference's training losses: CE on seg, aux and seg proxy, MSE on SR and SR
/// proxy (`scripts/cityscape_train.py` with CE + MSE).
fn total_loss(
    model: &EspnetV2Ds2f,
    x: &Tensor<4>,
    mask: &Tensor<3, Int>,
    hr: &Tensor<4>,
) -> Tensor<1> {
    let out = model.forward_train(x.clone());
    let (ce, mse) = (CrossEntropy::default(), Mse);
    let o = out.outputs;
    ce.forward(o.seg, mask.clone())
        + ce.forward(out.aux_l3, mask.clone())
        + ce.forward(o.proxy_seg.unwrap(), mask.clone())
        + mse.forward(o.sr.unwrap(), hr.clone())
        + mse.forward(o.proxy_sr.unwrap(), hr.clone())
}

#[test]
fn ds2f_trains_and_every_parameter_gets_a_gradient() {
    let device = Device::default().autodiff();
    device.seed(11);
    let (n, h, w, r, c) = (2, 64, 64, 2, 5);
    let mut model = EspnetV2Config::new(0.5, 3, c, r)
        .init_ds2f(&device)
        .unwrap();
    let x = Tensor::<4>::random([n, 3, h, w], Distribution::Uniform(-1.0, 1.0), &device);
    let hr = ds2f::model::unet::bilinear(x.clone(), [r * h, r * w], true);
    // Five classes in bands that follow the image's first channel: a learnable mapping.
    let mask: Tensor<3, Int> = ((hr.clone().narrow(1, 0, 1).squeeze_dim::<3>(1) + 1.0) * 2.499)
        .floor()
        .int();
    let out = model.forward_train(x.clone());
    assert_eq!(out.outputs.seg.dims(), [n, c, r * h, r * w]);
    assert_eq!(out.aux_l3.dims(), [n, c, r * h, r * w]);
    assert_eq!(out.outputs.proxy_seg.unwrap().dims(), [n, c, r * h, r * w]);
    assert_eq!(out.outputs.sr.unwrap().dims(), [n, 3, r * h, r * w]);
    assert_eq!(out.outputs.proxy_sr.unwrap().dims(), [n, 3, r * h, r * w]);
    assert!(out.outputs.feature_pairs.is_empty());

    let mut optim = AdamConfig::new().init();
    let mut losses = Vec::new();
    for step in 0..6 {
        let loss = total_loss(&model, &x, &mask, &hr);
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        if step == 0 {
            let missing = ds2f::train::parameters_without_gradient(&model, &grads);
            assert!(missing.is_empty(), "no gradient for {missing:?}");
        }
        model = optim.step(2e-3, model, grads);
    }
    let last = total_loss(&model, &x, &mask, &hr).into_scalar::<f32>();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    // Seeded, so the dropout masks are fixed: the loss falls at every step (5.25 → 4.89 when
    // written), by 5 % at least in all.
    losses.push(last);
    assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
    assert!(last < 0.95 * losses[0], "{losses:?}");

    // The inference graph is the training model's segmentation stream.
    let x_plain = x.inner();
    let model = model.valid();
    let seg = model.forward(x_plain.clone());
    assert_eq!(
        model.into_seg().forward(x_plain).into_data(),
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
