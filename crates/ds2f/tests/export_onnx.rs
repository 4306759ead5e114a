//! `ds2f export --format onnx`: the U-Net inference graph written from Rust, its header fields
//! and weights read back, and the fixtures (the file, two inputs of different sizes, ds2f's own
//! probabilities) that `tools/onnx-check` runs with a pure-Rust ONNX runtime (tract).
use burn::prelude::*;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::activation::softmax;
use ds2f::export::onnx::{OPSET, onnx_model};
use ds2f::model::{ModelConfig, Segmenter};

mod onnx_fixtures;

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/unet_b4.safetensors"
);

/// The U-Net of tests/golden_unet.rs (b = 4, C = 2, r = 2) with its golden weights, BN running
/// statistics included.
fn golden_model(device: &Device) -> Segmenter {
    let mut model = ModelConfig {
        base: 4,
        ..ModelConfig::default()
    }
    .init(device);
    let mut store = SafetensorsStore::from_file(GOLDEN).with_from_adapter(PyTorchToBurnAdapter);
    model.load_from(&mut store).expect("golden weights load");
    model
}

/// A deterministic input `[n, 3, h, w]` in [−1, 1].
fn input(shape: [usize; 4]) -> Vec<f32> {
    (0..shape.iter().product::<usize>())
        .map(|k| (0.37 * k as f32).sin())
        .collect()
}

fn ds2f_probabilities(model: &Segmenter, x: &[f32], shape: [usize; 4]) -> (Vec<f32>, [usize; 4]) {
    let device = Device::flex();
    let x = Tensor::<4>::from_data(TensorData::new(x.to_vec(), shape), &device);
    let p = softmax(model.forward(x), 1);
    let dims = p.dims();
    (p.into_data().iter::<f32>().collect(), dims)
}

/// Writes the exported U-Net graph, two inputs of different sizes (batch and spatial sizes are
/// dynamic in the graph) and ds2f's probabilities for them: the fixtures that
/// `tools/onnx-check` runs with tract, a pure-Rust ONNX runtime, and compares (max abs diff
/// ≤ 1e-4). tract lives in that separate crate, outside the workspace, because as a
/// dev-dependency here it changes the features of crates burn depends on (`std` of `bytes`
/// and `regex`, `alloc` of `rand_core`, ...), so that `cargo test` would compile burn a second
/// time beside the `cargo build` of README's first command.
#[test]
fn writes_the_round_trip_fixtures_for_tract() {
    let model = golden_model(&Device::flex());
    let mut cases =
        onnx_fixtures::Cases::new("unet", &model, vec![("ds2f.version".into(), "test".into())]);
    for (k, shape) in [[2, 3, 13, 17], [1, 3, 24, 31]].into_iter().enumerate() {
        let x = input(shape);
        let (want, dims) = ds2f_probabilities(&model, &x, shape);
        assert_eq!(dims, [shape[0], 2, 2 * shape[2], 2 * shape[3]]);
        // Probabilities: at every pixel the two classes sum to 1.
        let pixels = dims[2] * dims[3];
        for n in 0..dims[0] {
            for p in 0..pixels {
                let at = n * 2 * pixels + p;
                let sum = want[at] + want[at + pixels];
                assert!((sum - 1.0).abs() < 1e-5, "{sum}");
            }
        }
        cases.add(k, &x, &shape, &want, &dims);
    }
    cases.finish();
}

#[test]
fn graph_declares_dynamic_sizes_and_its_weights() {
    let model = golden_model(&Device::flex());
    let proto = onnx_model(&model, Vec::new()).unwrap();
    assert_eq!((proto.ir_version, proto.opset), (8, OPSET));
    let g = &proto.graph;
    assert_eq!(g.inputs.len(), 1);
    assert_eq!(g.outputs[0].name, "probabilities");
    assert_eq!(
        format!("{:?}", g.inputs[0].dims),
        "[Param(\"batch\"), Value(3), Param(\"height\"), Param(\"width\")]"
    );
    // Every parameter and BN statistic of the model is an initializer (112 of bench/unet.py's
    // 134 state-dict entries: all but the 22 `num_batches_tracked`).
    let weights = g
        .initializers
        .iter()
        .filter(|t| {
            !t.name.starts_with("starts_") && !t.name.starts_with("ends_") && t.name != "upscale"
        })
        .count();
    assert_eq!(weights, 112);
    assert!(
        g.initializers
            .iter()
            .any(|t| t.name == "encoder.down1.conv.bn1.running_var")
    );
    let ops: std::collections::BTreeSet<&str> = g.nodes.iter().map(|n| n.op_type).collect();
    assert_eq!(
        ops.into_iter().collect::<Vec<_>>(),
        [
            "BatchNormalization",
            "Concat",
            "Conv",
            "MaxPool",
            "Mul",
            "Relu",
            "Resize",
            "Shape",
            "Slice",
            "Softmax"
        ]
    );
}
