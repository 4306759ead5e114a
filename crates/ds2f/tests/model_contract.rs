//! Model contract: shapes for odd sizes, parameter counts of the reference.
use burn::prelude::*;
use ds2f::model::{Framework, ModelConfig};

#[test]
fn unet_base64_two_classes_has_reference_parameter_count() {
    let device = Device::default();
    let model = ModelConfig::default().init(&device);
    // SPEC §1.1: inference path (encoder + seg decoder + out_conv) = 28,949,698.
    assert_eq!(
        ds2f::model::complexity::trainable_params(&model, ""),
        28_949_698
    );
}

#[test]
fn odd_input_sizes_give_r_times_the_input() {
    let device = Device::default();
    for (h, w, r) in [(13, 17, 2), (33, 20, 3), (16, 16, 1)] {
        let config = ModelConfig {
            base: 4,
            upscale: r,
            ..ModelConfig::default()
        };
        let model = config.init(&device);
        let x = Tensor::<4>::zeros([2, 3, h, w], &device);
        assert_eq!(model.forward(x).dims(), [2, 2, r * h, r * w]);
    }
    let plain = ModelConfig {
        base: 4,
        framework: Framework::Unet,
        upscale: 4,
        ..ModelConfig::default()
    }
    .init(&device);
    let x = Tensor::<4>::zeros([1, 3, 9, 7], &device);
    assert_eq!(plain.forward(x).dims(), [1, 2, 9, 7]);
}

#[test]
fn parts_add_up_to_the_whole() {
    let device = Device::default();
    let model = ModelConfig::default().init(&device);
    let count = |p| ds2f::model::complexity::trainable_params(&model, p);
    // Seg head: 64·2 weights + 2 biases.
    assert_eq!(count("seg_head"), 130);
    assert_eq!(
        count("encoder") + count("decoder") + count("seg_head"),
        count("")
    );
}

#[test]
fn macs_match_ptflops() {
    use ds2f::model::complexity::inference_macs;
    // bench/ptflops_unet.json (ptflops 0.7.5 on bench/unet.py, and on the authors' `Unet` for
    // the paper column; b = 64, C = 2, r = 2, batch 1, eval mode).
    let config = ModelConfig::default();
    for (h, w, plain, paper) in [
        (512, 512, 193_452_310_528u64, 198_711_967_744u64),
        (648, 704, 336_963_968_000, 346_118_491_136),
        (584, 876, 378_455_406_528, 388_725_386_688),
        (256, 256, 48_363_077_632, 49_677_991_936),
        (73, 101, 5_817_073_730, 5_969_000_450),
    ] {
        let m = inference_macs(&config, h, w);
        assert_eq!(m.total(), plain, "{h}x{w}");
        assert_eq!(m.paper_total(), paper, "{h}x{w}");
    }
    // Per kind, b = 16 at 64x96 (ptflops' ReLU and pool counts are twice the elements).
    let small = ModelConfig {
        base: 16,
        ..ModelConfig::default()
    };
    let m = inference_macs(&small, 64, 96);
    assert_eq!(
        [m.conv, m.batch_norm, 2 * m.relu, 2 * m.pool, m.upsample],
        [284_405_760, 1_867_776, 1_867_776, 368_640, 417_792]
    );
    assert_eq!(inference_macs(&small, 65, 97).total(), 325_861_530);
}
