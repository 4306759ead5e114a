//! `ds2f export --format onnx`: the U-Net inference graph written from Rust, run by a pure-Rust
//! ONNX runtime (tract) and compared with ds2f's own probabilities on two input sizes from the
//! same file (batch and spatial sizes are dynamic), and the file's header fields read back.
use burn::prelude::*;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::activation::softmax;
use ds2f::export::onnx::{OPSET, onnx_model};
use ds2f::export::write_onnx;
use ds2f::model::{Backbone, ModelConfig, Segmenter};

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

/// tract's half of the test, apart so that its prelude does not meet burn's.
mod tract_run {
    use tract_onnx::prelude::*;

    /// Runs the ONNX file at `path` on `x` of `shape`: (values, output shape).
    pub fn probabilities(
        path: &std::path::Path,
        x: &[f32],
        shape: [usize; 4],
    ) -> (Vec<f32>, Vec<usize>) {
        let plan = tract_onnx::onnx()
            .model_for_path(path)
            .expect("tract reads the file")
            .with_input_fact(0, f32::fact(shape).into())
            .expect("input fact")
            .into_optimized()
            .expect("tract optimises the graph")
            .into_runnable()
            .expect("runnable");
        let input = Tensor::from_shape(&shape, x).expect("input tensor");
        let out = plan.run(tvec!(input.into())).expect("tract runs the graph");
        let view = out[0].to_array_view::<f32>().expect("float output");
        (view.iter().copied().collect(), view.shape().to_vec())
    }
}

#[test]
fn tract_runs_the_exported_graph_like_ds2f_at_two_sizes() {
    let model = golden_model(&Device::flex());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("unet.onnx");
    write_onnx(&path, &model, vec![("ds2f.version".into(), "test".into())]).unwrap();
    for shape in [[2, 3, 13, 17], [1, 3, 24, 31]] {
        let x = input(shape);
        let (want, want_dims) = ds2f_probabilities(&model, &x, shape);
        let (got, got_dims) = tract_run::probabilities(&path, &x, shape);
        assert_eq!(got_dims, want_dims.to_vec(), "{shape:?}");
        assert_eq!(want_dims, [shape[0], 2, 2 * shape[2], 2 * shape[3]]);
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-4, "{shape:?}: max abs diff {worst}");
    }
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

#[test]
fn other_backbones_are_refused_naming_the_key() {
    let model = ModelConfig {
        backbone: Backbone::Deeplabv3plusResnet50,
        ..ModelConfig::default()
    }
    .init(&Device::flex());
    let err = onnx_model(&model, Vec::new()).unwrap_err();
    assert!(
        err.to_string().starts_with("model.backbone: ONNX export"),
        "{err}"
    );
}
