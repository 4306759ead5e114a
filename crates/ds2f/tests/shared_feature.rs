//! Shared-feature modules (MSCG and its ablations, FIM, MAF): golden forwards against the
//! reference's test vector and PyTorch, parameter counts of the reference, shapes and gradient
//! flow for every variant, and the config's TOML form.
//!
//! Goldens: `test_vectors.json` `crossgl_forward` (the authors' `CrossGL`, SPEC §10) and
//! `tests/golden/make_shared_feature.py` (PyTorch 2.13, eval mode), which prints the constants
//! below. Parameters are filled in visiting order (= PyTorch `named_parameters()` order) with
//! `amp·sin(0.61·k + idx)`; BN running statistics stay 0 / 1.
use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Gradients;
use ds2f::model::complexity::{trainable_parameters, trainable_params};
use ds2f::model::shared_feature::fim::channel_shuffle;
use ds2f::model::shared_feature::{
    AttentionBlock, Cagl, ContextBlock, Fim, GateForm, Maf, MsConvParts, Mscg, SharedFeatureConfig,
    SharedFeatureKind,
};

/// Per output: its sum and its first 8 values.
type Golden = &'static [(f32, [f32; 8])];

// python3 tests/golden/make_shared_feature.py: Mscg(4, 4, hidden=8, r=4), amp 0.2 (the
// reference's CrossGL; test_vectors.json has the sums 24.294113159179688, -28.384109497070312).
const CROSSGL_DEFAULT: Golden = &[
    (
        24.294111,
        [
            0.51059353, 0.629864, 0.7417108, 0.84424424, 0.93571556, 1.0145972, 1.0795403,
            1.1294286,
        ],
    ),
    (
        -28.38411,
        [
            -0.5702862,
            -0.79846895,
            -0.97118634,
            -1.0739429,
            -1.0980824,
            -1.0414575,
            -0.90880007,
            -0.711249,
        ],
    ),
];
// The variants below: Mscg(4, 4, hidden=8, r=4, **variant), amp 1.0.
const DEFAULT_AMP1: Golden = &[
    (
        60.12816,
        [
            -1.03638, -0.6427618, -1.8846205, -1.1406696, -1.0525523, 0.31100333, -1.1136084,
            -3.5587277,
        ],
    ),
    (
        -118.20614,
        [
            -1.838401, -1.9143572, -2.703418, -2.0580864, -1.5489683, -0.885673, -0.773719,
            -1.7699186,
        ],
    ),
];

const MRCAB_GPOOL: Golden = &[
    (
        63.848812,
        [
            -2.04732, -1.8620589, -4.130746, -3.6455407, -2.9158025, -1.766779, -1.4725368,
            -2.9812422,
        ],
    ),
    (
        -103.95993,
        [
            -2.1396153, -2.5087235, -3.7554688, -3.2808175, -2.367147, -1.5847901, -1.164576,
            -2.1148858,
        ],
    ),
];

const RCAB: Golden = &[
    (
        230.52048,
        [
            -12.1546545,
            -9.409126,
            -1.7246832,
            -3.1853266,
            -6.126126,
            -5.478175,
            -6.201293,
            -9.353825,
        ],
    ),
    (
        -320.83463,
        [
            -9.041182, -5.325249, -2.5347433, -3.0242114, -4.129322, -3.6658654, -3.5585117,
            -2.3437307,
        ],
    ),
];

const ASPP: Golden = &[
    (
        -28.484951,
        [
            14.478482, 12.147953, 8.700966, 8.594759, 7.3038416, 5.3899155, 4.0265527, 0.7714919,
        ],
    ),
    (
        160.22205,
        [
            15.384369, 7.799548, 1.5359876, -2.2233667, -7.553447, -12.722515, -21.42376,
            -27.141874,
        ],
    ),
];

const SELF_ATTENTION: Golden = &[
    (
        48.414986,
        [
            4.577904, 1.4720751, -0.5505905, -1.2071105, -1.8272285, -3.304834, 3.9053326,
            2.8914244,
        ],
    ),
    (
        178.16576,
        [
            7.7065825, 2.1553195, -1.8801963, -5.277089, -9.708937, -13.625355, -15.148889,
            -14.659894,
        ],
    ),
];

const NO_ONE_BY_ONE_NO_POOL: Golden = &[
    (
        58.803654,
        [
            -1.0272324,
            -0.44625226,
            -1.6975659,
            -1.0084667,
            -1.5055842,
            -0.3840295,
            -1.7309883,
            -3.347682,
        ],
    ),
    (
        21.741375,
        [
            -1.816986, -2.0141585, -2.9573715, -2.403903, -1.9619609, -1.2692765, -1.1858144,
            -2.1435103,
        ],
    ),
];

const NO_DEPTHWISE: Golden = &[
    (
        89.545044,
        [
            -4.5305357, -3.5897791, -4.7247376, -5.0465784, -5.9120793, -4.711302, -3.249005,
            -3.0856757,
        ],
    ),
    (
        -152.17982,
        [
            -2.868559, -2.8283703, -3.5416117, -3.161266, -3.247077, -2.0815487, -1.7174824,
            -2.5042589,
        ],
    ),
];

const PAPER_GATE_PLAIN: Golden = &[
    (
        878.80786,
        [
            0.5394261, 0.24697985, 0.36162466, 0.4885593, 0.5727351, 0.6435887, 0.8128315,
            0.8099587,
        ],
    ),
    (
        1179.2733,
        [
            2.8062816,
            0.30340898,
            0.059389234,
            0.20134634,
            0.25213647,
            -0.9536328,
            -0.82623386,
            -0.63879263,
        ],
    ),
];

// Fim(3, 2, hidden=8) on sr (1,3,6,7) = sin(0.13k+0.3), seg (1,2,6,7) = cos(0.29k+2.0), amp 0.2.
const FIM: Golden = &[(
    -0.41515914,
    [
        -0.6063517,
        -0.96004343,
        -1.2333782,
        -1.4033718,
        -1.4567301,
        -1.3884059,
        -1.203649,
        -0.9180062,
    ],
)];

// Maf(4, 4, hidden=8, groups=4), amp 0.2.
const MAF: Golden = &[
    (
        21.431534,
        [
            0.42638597, 0.6023221, 0.7676127, 0.92038095, 1.0569973, 1.1765686, 1.2739456,
            1.3502247,
        ],
    ),
    (
        -3.7024355,
        [
            -0.60543615,
            -0.9671731,
            -1.2510254,
            -1.4288192,
            -1.4839839,
            -1.4134909,
            -1.2257605,
            -0.93312526,
        ],
    ),
];

// ---------------------------------------------------------------------------------- helpers

/// Fills every parameter (not the BN running statistics) in visiting order with
/// `amp·sin(0.61·k + idx)`, and records `(path, shape)` of what it filled.
struct SinFill {
    amp: f64,
    idx: usize,
    stack: Vec<String>,
    filled: Vec<(String, Vec<usize>)>,
}

impl ModuleMapper for SinFill {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let leaf = self.stack.last().map(String::as_str).unwrap_or("");
        if leaf.starts_with("running_") {
            return param;
        }
        let (amp, idx) = (self.amp, self.idx as f64);
        self.idx += 1;
        let mut shape = Vec::new();
        let param = param.map(|t| {
            let dims = t.dims();
            shape = dims.to_vec();
            let n: usize = dims.iter().product();
            let data: Vec<f32> = (0..n)
                .map(|k| (amp * (0.61 * k as f64 + idx).sin()) as f32)
                .collect();
            let grad = t.is_require_grad();
            Tensor::<D>::from_data(TensorData::new(data, dims), &t.device()).set_require_grad(grad)
        });
        self.filled.push((self.stack.join("."), shape));
        param
    }
}

fn sin_fill<M: Module>(module: M, amp: f64) -> (M, Vec<(String, Vec<usize>)>) {
    let mut fill = SinFill {
        amp,
        idx: 0,
        stack: Vec::new(),
        filled: Vec::new(),
    };
    let module = module.map(&mut fill);
    (module, fill.filled)
}

/// `f(a·k + b)` over the flat index k.
fn closed(shape: [usize; 4], a: f64, b: f64, f: fn(f64) -> f64, device: &Device) -> Tensor<4> {
    let n: usize = shape.iter().product();
    let data: Vec<f32> = (0..n).map(|k| f(a * k as f64 + b) as f32).collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn sr_seg(shape: [usize; 4], device: &Device) -> (Tensor<4>, Tensor<4>) {
    (
        closed(shape, 0.13, 0.3, f64::sin, device),
        closed(shape, 0.29, 2.0, f64::cos, device),
    )
}

fn assert_golden(what: &str, outs: &[Tensor<4>], want: Golden) {
    assert_eq!(outs.len(), want.len(), "{what}: outputs");
    for (i, (out, (sum, first))) in outs.iter().zip(want).enumerate() {
        let got: Vec<f32> = out.clone().into_data().iter::<f32>().collect();
        let got_sum: f32 = got.iter().sum();
        let tol = |w: f32| 1e-5 + 2e-5 * w.abs();
        assert!(
            (got_sum - sum).abs() <= tol(*sum),
            "{what}[{i}]: sum {got_sum} vs {sum}"
        );
        for (k, (g, w)) in got.iter().zip(first).enumerate() {
            assert!((g - w).abs() <= tol(*w), "{what}[{i}][{k}]: {g} vs {w}");
        }
    }
}

fn small_config() -> SharedFeatureConfig {
    SharedFeatureConfig {
        hidden: 8,
        reduction: 4,
        ..SharedFeatureConfig::default()
    }
}

// ---------------------------------------------------------------------------------- goldens

/// `param_order` of `crossgl_forward` in test_vectors.json (PyTorch names and shapes).
const CROSSGL_PARAM_ORDER: &[(&str, &[usize])] = &[
    ("fusion_conv.0.weight", &[8, 8, 1, 1]),
    ("fusion_conv.0.bias", &[8]),
    ("fusion_conv.1.weight", &[8]),
    ("fusion_conv.1.bias", &[8]),
    ("fusion_conv.3.rcab.conv1.weight", &[8, 1, 3, 3]),
    ("fusion_conv.3.rcab.conv1.bias", &[8]),
    ("fusion_conv.3.rcab.conv2.weight", &[8, 1, 3, 3]),
    ("fusion_conv.3.rcab.conv2.bias", &[8]),
    ("fusion_conv.3.rcab.se.0.weight", &[2, 8, 1, 1]),
    ("fusion_conv.3.rcab.se.0.bias", &[2]),
    ("fusion_conv.3.rcab.se.2.weight", &[8, 2, 1, 1]),
    ("fusion_conv.3.rcab.se.2.bias", &[8]),
    ("fusion_conv.3.msconv.convs.0.weight", &[2, 2, 1, 1]),
    ("fusion_conv.3.msconv.convs.0.bias", &[2]),
    ("fusion_conv.3.msconv.convs.1.weight", &[2, 1, 3, 3]),
    ("fusion_conv.3.msconv.convs.1.bias", &[2]),
    ("fusion_conv.3.msconv.convs.2.weight", &[2, 1, 3, 3]),
    ("fusion_conv.3.msconv.convs.2.bias", &[2]),
    ("fusion_conv.3.msconv.convs.3.conv.weight", &[2, 2, 1, 1]),
    ("fusion_conv.3.msconv.convs.3.conv.bias", &[2]),
    ("fusion_conv.3.msconv.norm.weight", &[8]),
    ("fusion_conv.3.msconv.norm.bias", &[8]),
    ("linear_cross_sr.0.weight", &[4, 8, 1, 1]),
    ("linear_cross_sr.0.bias", &[4]),
    ("linear_cross_seg.0.weight", &[4, 8, 1, 1]),
    ("linear_cross_seg.0.bias", &[4]),
    ("gate_sr.weight", &[4, 4, 1, 1]),
    ("gate_sr.bias", &[4]),
    ("gate_seg.weight", &[4, 4, 1, 1]),
    ("gate_seg.bias", &[4]),
];

#[test]
fn crossgl_forward_matches_the_reference_test_vector() {
    let device = Device::flex(); // plain device: BN uses its running statistics
    let mscg = Mscg::new(4, 4, &small_config(), &device);
    let keys = mscg.torch_keys();
    let (mscg, filled) = sin_fill(mscg, 0.2);

    // The visiting order is the PyTorch named_parameters() order, names and shapes alike.
    let torch: Vec<&str> = keys
        .iter()
        .filter(|(burn, _)| !burn.contains("running_"))
        .map(|(_, torch)| torch.as_str())
        .collect();
    let want: Vec<&str> = CROSSGL_PARAM_ORDER.iter().map(|(n, _)| *n).collect();
    assert_eq!(torch, want);
    let shapes: Vec<&[usize]> = filled.iter().map(|(_, s)| s.as_slice()).collect();
    let want_shapes: Vec<&[usize]> = CROSSGL_PARAM_ORDER.iter().map(|(_, s)| *s).collect();
    assert_eq!(shapes, want_shapes);
    assert!(keys.contains(&(
        "fusion_bn.running_var".to_string(),
        "fusion_conv.1.running_var".to_string()
    )));

    let (sr, seg) = sr_seg([1, 4, 6, 7], &device);
    let (out_sr, out_seg) = mscg.forward(sr, seg);
    assert_eq!(out_sr.dims(), [1, 4, 6, 7]);
    // test_vectors.json crossgl_forward, from the authors' CrossGL.
    let reference: Golden = &[
        (
            24.294113,
            [
                0.51059353, 0.629864, 0.7417108, 0.84424424, 0.93571556, 1.0145972, 1.0795402,
                1.1294287,
            ],
        ),
        (
            -28.38411,
            [
                -0.5702862,
                -0.79846895,
                -0.97118634,
                -1.0739429,
                -1.0980824,
                -1.0414575,
                -0.90880007,
                -0.711249,
            ],
        ),
    ];
    assert_golden(
        "crossgl_forward",
        &[out_sr.clone(), out_seg.clone()],
        reference,
    );
    assert_golden(
        "crossgl_default (torch)",
        &[out_sr, out_seg],
        CROSSGL_DEFAULT,
    );
}

#[test]
fn mscg_variants_match_pytorch() {
    let device = Device::flex();
    let base = small_config();
    let cases: [(&str, SharedFeatureConfig, Golden); 8] = [
        ("default_amp1", base.clone(), DEFAULT_AMP1),
        (
            "mrcab_gpool",
            SharedFeatureConfig {
                attention: AttentionBlock::MrcabGpool,
                ..base.clone()
            },
            MRCAB_GPOOL,
        ),
        (
            "rcab",
            SharedFeatureConfig {
                attention: AttentionBlock::Rcab,
                ..base.clone()
            },
            RCAB,
        ),
        (
            "aspp",
            SharedFeatureConfig {
                context: ContextBlock::Aspp,
                ..base.clone()
            },
            ASPP,
        ),
        (
            "self_attention",
            SharedFeatureConfig {
                context: ContextBlock::SelfAttention,
                ..base.clone()
            },
            SELF_ATTENTION,
        ),
        (
            "no_one_by_one_no_pool",
            SharedFeatureConfig {
                ms_conv: MsConvParts {
                    one_by_one: false,
                    image_pool: false,
                    depthwise: true,
                },
                ..base.clone()
            },
            NO_ONE_BY_ONE_NO_POOL,
        ),
        (
            "no_depthwise",
            SharedFeatureConfig {
                ms_conv: MsConvParts {
                    depthwise: false,
                    ..MsConvParts::default()
                },
                ..base.clone()
            },
            NO_DEPTHWISE,
        ),
        (
            "paper_gate_plain",
            SharedFeatureConfig {
                gate: GateForm::Paper,
                fuse_norm: false,
                inner_residual: false,
                ..base.clone()
            },
            PAPER_GATE_PLAIN,
        ),
    ];
    for (name, config, golden) in cases {
        let (mscg, _) = sin_fill(Mscg::new(4, 4, &config, &device), 1.0);
        let (sr, seg) = sr_seg([1, 4, 6, 7], &device);
        let (a, b) = mscg.forward(sr, seg);
        assert_golden(name, &[a, b], golden);
    }
}

#[test]
fn fim_and_maf_match_pytorch() {
    let device = Device::flex();
    let (fim, _) = sin_fill(Fim::new(3, 2, 8, &device), 0.2);
    let sr = closed([1, 3, 6, 7], 0.13, 0.3, f64::sin, &device);
    let seg = closed([1, 2, 6, 7], 0.29, 2.0, f64::cos, &device);
    assert_golden("fim", &[fim.forward(sr, seg)], FIM);

    let (maf, _) = sin_fill(Maf::new(4, 4, 8, 4, &device), 0.2);
    let (sr, seg) = sr_seg([1, 4, 6, 7], &device);
    let (a, b) = maf.forward(sr, seg);
    assert_golden("maf", &[a, b], MAF);
}

#[test]
fn channel_shuffle_is_torch_order() {
    let device = Device::flex();
    let x = Tensor::<4>::from_data(
        TensorData::new(vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0], [1, 6, 1, 1]),
        &device,
    );
    let got: Vec<f32> = channel_shuffle(x, 3).into_data().iter::<f32>().collect();
    assert_eq!(got, [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);
}

// ---------------------------------------------------------------------------------- counts

#[test]
fn parameter_counts_match_the_reference() {
    let device = Device::flex();
    let mscg = Mscg::new(64, 64, &SharedFeatureConfig::default(), &device);
    let count = |p| trainable_params(&mscg, p);
    // SPEC §1.2 table.
    assert_eq!(count("fusion_conv"), 4_128);
    assert_eq!(count("fusion_bn"), 64);
    assert_eq!(count("gate.rcab"), 1_192);
    assert_eq!(count("gate.msconv"), 368);
    assert_eq!(count("linear_cross_sr") + count("linear_cross_seg"), 4_224);
    assert_eq!(count("gate_sr") + count("gate_seg"), 8_320);
    assert_eq!(count(""), 18_296);
    // The reference code's FIM(3, 2, 8) and MAF(64, 64, 32, 4) (SPEC §6).
    assert_eq!(trainable_params(&Fim::new(3, 2, 8, &device), ""), 593);
    assert_eq!(
        trainable_params(&Maf::new(64, 64, 32, 4, &device), ""),
        10_216
    );
}

#[test]
fn ablation_parameter_counts() {
    let device = Device::flex();
    let count = |config: SharedFeatureConfig| {
        trainable_params(&Mscg::new(64, 64, &config, &device), "gate.")
    };
    let base = SharedFeatureConfig::default();
    // MRCAB 1,192 + MS-Conv 368.
    assert_eq!(count(base.clone()), 1_560);
    // The same parameters with gpool.
    let gpool = SharedFeatureConfig {
        attention: AttentionBlock::MrcabGpool,
        ..base.clone()
    };
    assert_eq!(count(gpool), 1_560);
    // RCAB: 2 × (32·32·9 + 32) + 552 = 19,048, + 368.
    let rcab = SharedFeatureConfig {
        attention: AttentionBlock::Rcab,
        ..base.clone()
    };
    assert_eq!(count(rcab), 19_416);
    // ASPP: 32·256 + 3·(9·32·256) + 32·256 + 1280·32 convs, 5·512 + 2·64 BN.
    let aspp = SharedFeatureConfig {
        context: ContextBlock::Aspp,
        ..base.clone()
    };
    assert_eq!(count(aspp), 1_192 + 278_528 + 2_688);
    // Self-attention: q, k 32→4, v 32→32 (with bias), γ.
    let att = SharedFeatureConfig {
        context: ContextBlock::SelfAttention,
        ..base.clone()
    };
    assert_eq!(count(att), 1_192 + 2 * 132 + 1_056 + 1);
    // Without depthwise: groups 2, 3 are full 8→8 3×3 convs (576 + 8 each, was 72 + 8).
    let full = SharedFeatureConfig {
        ms_conv: MsConvParts {
            depthwise: false,
            ..MsConvParts::default()
        },
        ..base
    };
    assert_eq!(count(full), 1_560 + 2 * (576 - 72));
}

// ---------------------------------------------------------------------------------- contract

/// Paths of trainable parameters whose gradient is missing or all zero.
fn dead_params<M: Module>(module: &M, grads: Gradients) -> Vec<String> {
    assert!(!trainable_parameters(module).is_empty(), "no parameters");
    let grads = GradientsParams::from_grads(grads, module);
    ds2f::train::parameters_without_gradient(module, &grads)
}

/// A loss that weights every output element differently (a plain sum is blind to what a
/// training-mode BN feeds straight into it).
fn weighted_sum(x: Tensor<4>) -> Tensor<1> {
    let w = closed(x.dims(), 0.37, 0.1, f64::sin, &x.device());
    (x * w).sum()
}

fn all_variants() -> Vec<SharedFeatureConfig> {
    let mut contexts = vec![
        (ContextBlock::Aspp, MsConvParts::default()),
        (ContextBlock::SelfAttention, MsConvParts::default()),
    ];
    for bits in 0..8u8 {
        let parts = MsConvParts {
            one_by_one: bits & 1 != 0,
            image_pool: bits & 2 != 0,
            depthwise: bits & 4 != 0,
        };
        contexts.push((ContextBlock::MsConv, parts));
    }
    let mut configs = Vec::new();
    for attention in [
        AttentionBlock::Mrcab,
        AttentionBlock::MrcabGpool,
        AttentionBlock::Rcab,
    ] {
        for &(context, ms_conv) in &contexts {
            for gate in [GateForm::Code, GateForm::Paper] {
                // fuse_norm × inner_residual cycle through all four combinations.
                let i = configs.len();
                configs.push(SharedFeatureConfig {
                    attention,
                    context,
                    ms_conv,
                    gate,
                    fuse_norm: i % 2 == 0,
                    inner_residual: (i / 2) % 2 == 0,
                    ..SharedFeatureConfig::default()
                });
            }
        }
    }
    configs
}

#[test]
fn every_variant_keeps_shapes_and_trains_every_parameter() {
    let plain = Device::flex();
    let autodiff = plain.clone().autodiff();
    let configs = all_variants();
    assert_eq!(configs.len(), 60);
    for config in configs {
        // Eval: odd sizes, batch 1.
        let mscg = Mscg::new(64, 64, &config, &plain);
        let (sr, seg) = sr_seg([1, 64, 9, 13], &plain);
        let (a, b) = mscg.forward(sr, seg);
        assert_eq!(
            (a.dims(), b.dims()),
            ([1, 64, 9, 13], [1, 64, 9, 13]),
            "{config:?}"
        );

        // Training: batch 2 (with one sample, a training-mode BN sees a spatially constant
        // channel, such as the image pool's, as all-equal values and passes no gradient).
        // The sin fill makes the self-attention γ non-zero, so q, k and v get gradients.
        let (mscg, _) = sin_fill(Mscg::new(64, 64, &config, &autodiff), 0.2);
        let (sr, seg) = sr_seg([2, 64, 9, 13], &autodiff);
        let (a, b) = mscg.forward(sr, seg);
        assert_eq!((a.dims(), b.dims()), ([2, 64, 9, 13], [2, 64, 9, 13]));
        let grads = (weighted_sum(a) + weighted_sum(b)).backward();
        let dead = dead_params(&mscg, grads);
        assert!(dead.is_empty(), "{config:?}: no gradient for {dead:?}");
    }
}

#[test]
fn fim_and_maf_keep_shapes_and_train_every_parameter() {
    let autodiff = Device::flex().autodiff();
    let fim = Fim::new(3, 2, 8, &autodiff);
    let sr = closed([2, 3, 9, 13], 0.13, 0.3, f64::sin, &autodiff);
    let seg = closed([2, 2, 9, 13], 0.29, 2.0, f64::cos, &autodiff);
    let out = fim.forward(sr, seg);
    assert_eq!(out.dims(), [2, 2, 9, 13]);
    let dead = dead_params(&fim, weighted_sum(out).backward());
    assert!(dead.is_empty(), "FIM: no gradient for {dead:?}");

    let maf = Maf::new(64, 64, 32, 4, &autodiff);
    let (sr, seg) = sr_seg([2, 64, 9, 13], &autodiff);
    let (a, b) = maf.forward(sr, seg);
    assert_eq!((a.dims(), b.dims()), ([2, 64, 9, 13], [2, 64, 9, 13]));
    let dead = dead_params(&maf, (weighted_sum(a) + weighted_sum(b)).backward());
    assert!(dead.is_empty(), "MAF: no gradient for {dead:?}");
}

// ---------------------------------------------------------------------------------- config

#[test]
fn config_reads_its_toml_table() {
    let config: SharedFeatureConfig = toml::from_str(
        r#"
        hidden = 16
        attention = "mrcab_gpool"
        context = "self_attention"
        gate = "paper"
        fuse_norm = false
        [ms_conv]
        image_pool = false
        "#,
    )
    .unwrap();
    assert_eq!(
        config,
        SharedFeatureConfig {
            hidden: 16,
            attention: AttentionBlock::MrcabGpool,
            context: ContextBlock::SelfAttention,
            gate: GateForm::Paper,
            fuse_norm: false,
            ms_conv: MsConvParts {
                image_pool: false,
                ..MsConvParts::default()
            },
            ..SharedFeatureConfig::default()
        }
    );
    let empty: SharedFeatureConfig = toml::from_str("").unwrap();
    assert_eq!(empty, SharedFeatureConfig::default());
    let text = toml::to_string(&SharedFeatureConfig::default()).unwrap();
    assert!(text.contains("context = \"ms_conv\""), "{text}");
    assert_eq!(
        toml::from_str::<SharedFeatureConfig>(&text).unwrap(),
        SharedFeatureConfig::default()
    );
    // Unknown keys are caught by the experiment config, which names the nearest valid key.
    let parse = |text: &str| {
        ds2f::config::ExperimentConfig::parse(text, &[], "t.toml")
            .unwrap_err()
            .to_string()
    };
    let message = parse("[model.shared_feature]\nhiden = 3\n");
    assert!(
        message.contains("did you mean `model.shared_feature.hidden`?"),
        "{message}"
    );
    let message = parse("[model.shared_feature.ms_conv]\none_by_on = true\n");
    assert!(
        message.contains("did you mean `model.shared_feature.ms_conv.one_by_one`?"),
        "{message}"
    );
    assert!(toml::from_str::<SharedFeatureConfig>("context = \"msconv\"").is_err());
}

// ---------------------------------------------------------------------------------- CAGL

// python3 tests/golden/make_shared_feature.py: Cagl(4, 4, hidden=8, r=4, down_rate=2,
// heads=2), amp 1.0, on the MSCG inputs (1, 4, 6, 7).
const CAGL: Golden = &[
    (
        18.53281,
        [
            0.2955204, 0.4168937, 0.5376781, 0.7316177, 1.3916042, 1.62549, 1.7638714, 0.9356289,
        ],
    ),
    (
        -5.3191886,
        [
            -0.8318163, -1.2916734, -1.0757679, -0.9934967, -1.0013365, -0.9528822, -0.8262419,
            -1.2522852,
        ],
    ),
];

/// The PyTorch `state_dict()` keys of that model (printed by the same script).
const CAGL_KEYS: &[&str] = &[
    "fu_se.1.weight",
    "fu_se.1.bias",
    "fu_se.3.weight",
    "fu_se.3.bias",
    "fuse.weight",
    "fuse.bias",
    "global_att.layer_scaler",
    "global_att.ffn_scaler",
    "global_att.down_conv.weight",
    "global_att.down_conv.bias",
    "global_att.q_proj.0.weight",
    "global_att.q_proj.0.bias",
    "global_att.q_proj.1.weight",
    "global_att.q_proj.1.bias",
    "global_att.q_proj.1.running_mean",
    "global_att.q_proj.1.running_var",
    "global_att.k_proj.0.weight",
    "global_att.k_proj.0.bias",
    "global_att.k_proj.1.weight",
    "global_att.k_proj.1.bias",
    "global_att.k_proj.1.running_mean",
    "global_att.k_proj.1.running_var",
    "global_att.v_proj.0.weight",
    "global_att.v_proj.0.bias",
    "global_att.v_proj.1.weight",
    "global_att.v_proj.1.bias",
    "global_att.v_proj.1.running_mean",
    "global_att.v_proj.1.running_var",
    "global_att.ffn.0.weight",
    "global_att.ffn.0.bias",
    "global_att.ffn.2.weight",
    "global_att.ffn.2.bias",
    "local_conv.0.weight",
    "local_conv.0.bias",
    "local_conv.2.weight",
    "local_conv.2.bias",
    "out_x.0.weight",
    "out_x.0.bias",
    "out_y.0.weight",
    "out_y.0.bias",
];

fn cagl_config(hidden: usize, down_rate: usize, heads: usize) -> SharedFeatureConfig {
    SharedFeatureConfig {
        kind: SharedFeatureKind::Cagl,
        hidden,
        down_rate,
        heads,
        ..SharedFeatureConfig::default()
    }
}

#[test]
fn cagl_matches_pytorch_with_the_reference_names() {
    let device = Device::flex();
    let cagl = Cagl::new(4, 4, &cagl_config(8, 2, 2), &device);
    let keys: Vec<String> = cagl.torch_keys().into_iter().map(|(_, t)| t).collect();
    // burn keeps no `num_batches_tracked`; every other key, in PyTorch's order.
    assert_eq!(keys, CAGL_KEYS);
    let (cagl, _) = sin_fill(cagl, 1.0);
    let (sr, seg) = sr_seg([1, 4, 6, 7], &device);
    let (a, b) = cagl.forward(sr, seg);
    assert_eq!((a.dims(), b.dims()), ([1, 4, 6, 7], [1, 4, 6, 7]));
    assert_golden("cagl", &[a, b], CAGL);
}

#[test]
fn cagl_has_the_reference_parameter_count_and_trains_every_parameter() {
    let device = Device::flex();
    // SPEC §1.3: CAGL(256, 256) is 0.21 M; 206,816 exactly (PyTorch, the script above):
    // SE 131,712, fuse 16,416, global 40,416, local 1,376, out 16,896.
    let cagl = Cagl::new(256, 256, &cagl_config(32, 32, 4), &device);
    let count = |p| trainable_params(&cagl, p);
    assert_eq!(count("fu_se_reduce") + count("fu_se_expand"), 131_712);
    assert_eq!(count("global_att"), 40_416);
    assert_eq!(count(""), 206_816);

    let autodiff = device.autodiff();
    let (cagl, _) = sin_fill(Cagl::new(16, 8, &cagl_config(8, 4, 4), &autodiff), 0.5);
    let sr = closed([2, 16, 9, 13], 0.13, 0.3, f64::sin, &autodiff);
    let seg = closed([2, 8, 9, 13], 0.29, 2.0, f64::cos, &autodiff);
    let (a, b) = cagl.forward(sr, seg);
    assert_eq!((a.dims(), b.dims()), ([2, 16, 9, 13], [2, 8, 9, 13]));
    let dead = dead_params(&cagl, (weighted_sum(a) + weighted_sum(b)).backward());
    assert!(dead.is_empty(), "CAGL: no gradient for {dead:?}");
}

#[test]
fn cagl_is_chosen_by_the_kind_key() {
    let config: SharedFeatureConfig =
        toml::from_str("kind = \"cagl\"\ndown_rate = 16\nheads = 2").unwrap();
    assert_eq!(config, {
        let mut c = cagl_config(32, 16, 2);
        c.reduction = 4;
        c
    });
}
