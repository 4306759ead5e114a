//! Contract of every framework of the paper: parameter counts of the reference (SPEC §1.1,
//! §1.2, §6), output shapes, the inference graph without the SR stream, gradients reaching every
//! parameter, and each loss term decreasing when trained alone.
use burn::module::Module;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use ds2f::config::LossConfig;
use ds2f::model::complexity::{trainable_parameters, trainable_params};
use ds2f::model::{Framework, ModelConfig};
use ds2f::train::Objective;

/// Learning rate of the one-term trainings.
const LR: f64 = 0.002;

const ALL: [Framework; 8] = Framework::ALL;

fn tiny(framework: Framework) -> ModelConfig {
    let mut config = ModelConfig {
        framework,
        base: 8,
        ..ModelConfig::default()
    };
    // MSCG at width 8: hidden 8, reduction 4 (as the `crossgl_forward` test vector).
    config.shared_feature.hidden = 8;
    config
}

/// A deterministic LR batch, its HR mask (thin diagonal "vessels") and HR image.
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
            i64::from((x + 2 * y) % 9 < 2)
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
fn ds2f_parameter_counts_equal_the_reference() {
    let device = Device::default();
    let count = |framework| {
        let config = ModelConfig {
            framework,
            ..ModelConfig::default()
        };
        let model = config.init_train(&device);
        let c = |p: &str| trainable_params(&model, p);
        (
            c(""),
            c("encoder") + c("decoder") + c("seg_head"),
            c("sr_branch.decoder"),
            c("sr_branch.head"),
            c("shared_feature"),
        )
    };
    // SPEC §1.1 table (base 64, C = 2, r = 2).
    assert_eq!(
        count(Framework::Ds2f),
        (39_194_682, 28_949_698, 10_102_400, 124_288, 18_296)
    );
    // SPEC §6: FIM 593, MAF 10,216; the other frameworks add nothing beside the SR stream.
    let sr_stream = 28_949_698 + 10_102_400 + 124_288;
    assert_eq!(count(Framework::Supervessel).4, 593);
    assert_eq!(count(Framework::Ssmaf).4, 10_216);
    assert_eq!(count(Framework::UnetInterSr).0, sr_stream);
    assert_eq!(count(Framework::Cogseg).0, sr_stream);
    // DSRL's FTM: 1×1 conv 2 → 3 with bias.
    assert_eq!(count(Framework::Dsrl).4, 9);
    assert_eq!(count(Framework::UnetInter).0, 28_949_698);
}

#[test]
fn training_outputs_have_the_hr_size_for_odd_inputs() {
    let device = Device::default();
    for framework in ALL {
        let config = tiny(framework);
        let r = config.effective_upscale();
        let model = config.init_train(&device);
        let (x, _, _) = batch(&device, 2, 13, 11, r);
        let out = model.forward_train(x);
        let (hh, hw) = (13 * r, 11 * r);
        assert_eq!(out.seg.dims(), [2, 2, hh, hw], "{framework:?}");
        let has = |t: &Option<Tensor<4>>| t.as_ref().map(|t| t.dims());
        let sr = framework.has_sr_stream().then_some([2, 3, hh, hw]);
        assert_eq!(has(&out.sr), sr, "{framework:?}");
        let proxies = matches!(framework, Framework::Ds2f | Framework::Ssmaf);
        assert_eq!(has(&out.proxy_sr), proxies.then_some([2, 3, hh, hw]));
        let seg_proxy = proxies || framework == Framework::Supervessel;
        assert_eq!(has(&out.proxy_seg), seg_proxy.then_some([2, 2, hh, hw]));
        let pairs = match framework {
            Framework::Cogseg => 4,
            Framework::Dsrl => 1,
            _ => 0,
        };
        assert_eq!(out.feature_pairs.len(), pairs, "{framework:?}");
    }
}

#[test]
fn inference_graph_is_the_segmentation_stream_alone() {
    let device = Device::default();
    for framework in ALL {
        let config = tiny(framework);
        let r = config.effective_upscale();
        let model = config.init_train(&device);
        let (x, _, _) = batch(&device, 1, 12, 10, r);
        // The training pass's seg output, the inference pass and the model with its SR stream
        // and shared module removed agree exactly (BN in eval mode: no autodiff here).
        let full = model.forward(x.clone()).into_data();
        let seg = model.forward_train(x.clone()).seg.into_data();
        let segmenter = model.into_segmenter();
        let alone = segmenter.forward(x.clone()).into_data();
        assert_eq!(full, alone, "{framework:?}");
        assert_eq!(seg, alone, "{framework:?}");
        // The exported weights hold the inference graph only, and load into the inference model.
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
fn gradients_reach_every_parameter_of_every_framework() {
    let device = Device::default().autodiff();
    for framework in ALL {
        device.seed(3);
        let config = tiny(framework);
        let r = config.effective_upscale();
        let model = config.init_train(&device);
        let (x, y, hr) = batch(&device, 2, 20, 18, r);
        let objective = Objective::new(framework, &LossConfig::default(), 2, None);
        let terms = objective.terms(model.forward_train(x), y, hr);
        let total = terms
            .into_iter()
            .map(|t| t.value)
            .reduce(|a, b| a.add(b))
            .unwrap();
        let grads = GradientsParams::from_grads(total.backward(), &model);
        let missing = ds2f::train::parameters_without_gradient(&model, &grads);
        assert!(
            missing.is_empty(),
            "{framework:?}: no gradient for {missing:?}"
        );
        assert!(trainable_parameters(&model).len() > 50, "{framework:?}");
    }
}

#[test]
fn each_loss_term_decreases_when_trained_alone() {
    let device = Device::default().autodiff();
    for framework in [
        Framework::Ds2f,
        Framework::Cogseg,
        Framework::Dsrl,
        Framework::Supervessel,
        Framework::Ssmaf,
    ] {
        let config = tiny(framework);
        let objective = Objective::new(framework, &LossConfig::default(), 2, None);
        for name in objective.term_names() {
            device.seed(5);
            let mut model = config.init_train(&device);
            let (x, y, hr) = batch(&device, 2, 20, 18, 2);
            let mut optim = SgdConfig::new().init();
            let value_of = |model: &ds2f::model::DualStream| {
                let terms = objective.terms(model.forward_train(x.clone()), y.clone(), hr.clone());
                terms
                    .into_iter()
                    .find(|t| t.term.name() == name)
                    .unwrap()
                    .value
            };
            let first: f32 = value_of(&model).into_scalar();
            for _ in 0..5 {
                let loss = value_of(&model);
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(LR, model, grads);
            }
            let last: f32 = value_of(&model).into_scalar();
            assert!(
                last < first,
                "{framework:?} term {name}: {first} -> {last} after 5 steps"
            );
        }
    }
}

#[test]
fn every_proxy_loss_choice_gives_finite_terms() {
    use ds2f::config::{GdiceKind, ProxySegKind, ProxySrKind, SegLossKind};
    let device = Device::default().autodiff();
    let model = tiny(Framework::Ds2f).init_train(&device);
    let (x, y, hr) = batch(&device, 2, 20, 18, 2);
    let out = model.forward_train(x);
    let segs = [
        (ProxySegKind::Rmi, GdiceKind::Sudre),
        (ProxySegKind::Ce, GdiceKind::Sudre),
        (ProxySegKind::Gdice, GdiceKind::Sudre),
        (ProxySegKind::Gdice, GdiceKind::Reference),
        (ProxySegKind::None, GdiceKind::Sudre),
    ];
    let srs = [ProxySrKind::Ssim, ProxySrKind::Mse, ProxySrKind::None];
    let mains = [SegLossKind::Ce, SegLossKind::Cbce, SegLossKind::Focal];
    for (k, ((proxy_seg, gdice), proxy_sr)) in segs
        .into_iter()
        .flat_map(|s| srs.into_iter().map(move |r| (s, r)))
        .enumerate()
    {
        let config = LossConfig {
            seg: mains[k % 3],
            proxy_seg,
            proxy_sr,
            gdice,
            ..LossConfig::default()
        };
        let objective = Objective::new(Framework::Ds2f, &config, 2, None);
        let terms = objective.terms(out.clone(), y.clone(), hr.clone());
        let names: Vec<&str> = terms.iter().map(|t| t.term.name()).collect();
        let mut expected = vec!["seg", "sr"];
        if proxy_seg != ProxySegKind::None {
            expected.push("proxy_seg");
        }
        if proxy_sr != ProxySrKind::None {
            expected.push("proxy_sr");
        }
        assert_eq!(names, expected, "{config:?}");
        for t in terms {
            let v: f32 = t.value.into_scalar();
            assert!(v.is_finite(), "{config:?}: {} = {v}", t.term);
        }
    }
}
