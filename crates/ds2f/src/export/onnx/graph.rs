//! The inference graph of a U-Net [`Segmenter`] as ONNX operators (opset 17): encoder, seg
//! decoder, 1×1 head, bilinear ×r (align_corners = true) and softmax over the classes. Batch,
//! height and width are dynamic: every resize takes its target size from the runtime shape
//! of the tensor it aligns to (`Shape` → `Slice` → `Concat`), as the Rust model does, so odd
//! sizes give exactly ds2f's output sizes.
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::prelude::*;

use super::proto::{
    Attribute, DataType, Dim, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfo,
};
use crate::export::error::ExportError;
use crate::model::blocks::{ConvBnRelu, DoubleConv};
use crate::model::unet::Up;
use crate::model::{Decoder, Encoder, Segmenter};

/// The graph input: `[batch, C_in, height, width]`, the LR image in [−1, 1].
pub const INPUT: &str = "input";
/// The graph output: `[batch, C, r·height, r·width]` class probabilities.
pub const OUTPUT: &str = "probabilities";
/// Opset of the default domain (Resize with `align_corners`, Softmax over one axis).
pub const OPSET: i64 = 17;

/// Builds the graph node by node.
struct Builder {
    graph: GraphProto,
    next: usize,
}

impl Builder {
    fn fresh(&mut self, what: &str) -> String {
        self.next += 1;
        format!("{what}_{}", self.next)
    }

    fn node(
        &mut self,
        op_type: &'static str,
        inputs: &[&str],
        attributes: Vec<Attribute>,
    ) -> String {
        let out = self.fresh(&op_type.to_lowercase());
        self.graph.nodes.push(NodeProto {
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![out.clone()],
            name: out.clone(),
            op_type,
            attributes,
        });
        out
    }

    fn constant(&mut self, tensor: TensorProto) -> String {
        let name = tensor.name.clone();
        self.graph.initializers.push(tensor);
        name
    }

    fn weights(&mut self, name: &str, t: Tensor<1>) -> String {
        let dims = t.dims();
        let values: Vec<f32> = t.into_data().iter::<f32>().collect();
        self.constant(TensorProto::f32(name, &dims, &values))
    }

    fn conv(&mut self, x: &str, conv: &Conv2d, name: &str) -> Result<String, ExportError> {
        let [k0, k1] = conv.kernel_size;
        let pads = match conv.padding {
            PaddingConfig2d::Explicit(t, l, b, r) => vec![t as i64, l as i64, b as i64, r as i64],
            PaddingConfig2d::Valid => vec![0; 4],
            PaddingConfig2d::Same => {
                return Err(unsupported(&format!("{name}: `Same` padding")));
            }
        };
        let weight = conv.weight.val();
        let dims = weight.dims();
        let values: Vec<f32> = weight.into_data().iter::<f32>().collect();
        let w = self.constant(TensorProto::f32(&format!("{name}.weight"), &dims, &values));
        let mut inputs = vec![x.to_string(), w];
        if let Some(bias) = &conv.bias {
            inputs.push(self.weights(&format!("{name}.bias"), bias.val()));
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        Ok(self.node(
            "Conv",
            &inputs,
            vec![
                Attribute::Ints("kernel_shape", vec![k0 as i64, k1 as i64]),
                Attribute::Ints("strides", conv.stride.iter().map(|&s| s as i64).collect()),
                Attribute::Ints(
                    "dilations",
                    conv.dilation.iter().map(|&d| d as i64).collect(),
                ),
                Attribute::Int("group", conv.groups as i64),
                Attribute::Ints("pads", pads),
            ],
        ))
    }

    fn batch_norm(&mut self, x: &str, bn: &BatchNorm, name: &str) -> String {
        let scale = self.weights(&format!("{name}.weight"), bn.gamma.val());
        let bias = self.weights(&format!("{name}.bias"), bn.beta.val());
        let mean = self.weights(&format!("{name}.running_mean"), bn.running_mean.value());
        let var = self.weights(&format!("{name}.running_var"), bn.running_var.value());
        self.node(
            "BatchNormalization",
            &[x, &scale, &bias, &mean, &var],
            vec![Attribute::Float("epsilon", bn.epsilon as f32)],
        )
    }

    fn conv_bn_relu(
        &mut self,
        x: &str,
        conv: &Conv2d,
        bn: &BatchNorm,
        conv_name: &str,
        bn_name: &str,
    ) -> Result<String, ExportError> {
        let y = self.conv(x, conv, conv_name)?;
        let y = self.batch_norm(&y, bn, bn_name);
        Ok(self.node("Relu", &[&y], vec![]))
    }

    fn double_conv(&mut self, x: &str, d: &DoubleConv, p: &str) -> Result<String, ExportError> {
        let y = self.conv_bn_relu(
            x,
            &d.conv1,
            &d.bn1,
            &format!("{p}.conv1"),
            &format!("{p}.bn1"),
        )?;
        self.conv_bn_relu(
            &y,
            &d.conv2,
            &d.bn2,
            &format!("{p}.conv2"),
            &format!("{p}.bn2"),
        )
    }

    fn reduce(&mut self, x: &str, c: &ConvBnRelu, p: &str) -> Result<String, ExportError> {
        self.conv_bn_relu(x, &c.conv, &c.bn, &format!("{p}.conv"), &format!("{p}.bn"))
    }

    fn max_pool(&mut self, x: &str) -> String {
        self.node(
            "MaxPool",
            &[x],
            vec![
                Attribute::Ints("kernel_shape", vec![3, 3]),
                Attribute::Ints("strides", vec![2, 2]),
                Attribute::Ints("pads", vec![1, 1, 1, 1]),
            ],
        )
    }

    /// Elements `[from, to)` of the runtime shape of `x` (int64, one dimension).
    fn shape_slice(&mut self, x: &str, from: i64, to: i64) -> String {
        let shape = self.node("Shape", &[x], vec![]);
        let starts = self.fresh("starts");
        let starts = self.constant(TensorProto::i64(&starts, &[from]));
        let ends = self.fresh("ends");
        let ends = self.constant(TensorProto::i64(&ends, &[to]));
        self.node("Slice", &[&shape, &starts, &ends], vec![])
    }

    /// Bilinear resize (align_corners = true) of `x` to the spatial size `hw` (int64 `[2]`).
    fn resize_to(&mut self, x: &str, hw: &str) -> String {
        let nc = self.shape_slice(x, 0, 2);
        let sizes = self.node("Concat", &[&nc, hw], vec![Attribute::Int("axis", 0)]);
        self.node(
            "Resize",
            &[x, "", "", &sizes],
            vec![
                Attribute::Str("mode", "linear".into()),
                Attribute::Str("coordinate_transformation_mode", "align_corners".into()),
            ],
        )
    }

    fn up(&mut self, x: &str, skip: &str, up: &Up, p: &str) -> Result<String, ExportError> {
        let hw = self.shape_slice(skip, 2, 4);
        let y = self.resize_to(x, &hw);
        let y = self.reduce(&y, &up.reduce, &format!("{p}.reduce"))?;
        let y = self.node("Concat", &[&y, skip], vec![Attribute::Int("axis", 1)]);
        self.double_conv(&y, &up.conv, &format!("{p}.conv"))
    }
}

fn unsupported(reason: &str) -> ExportError {
    ExportError::Unsupported {
        key: "model.backbone".into(),
        reason: format!("ONNX export: {reason}"),
    }
}

/// The ONNX model of `model`'s inference graph with `metadata` as its metadata properties.
///
/// # Errors
/// [`ExportError::Unsupported`] naming `model.backbone` for a backbone other than the U-Net
/// (the DeepLabV3+ and ESPNetv2 graphs are not written yet).
pub fn onnx_model(
    model: &Segmenter,
    metadata: Vec<(String, String)>,
) -> Result<ModelProto, ExportError> {
    let (Encoder::Unet(enc), Decoder::Unet(dec)) = (&model.encoder, &model.decoder) else {
        return Err(unsupported(
            "only the unet backbone is written (deeplabv3plus_* and espnetv2 are not yet)",
        ));
    };
    let in_channels = enc.down1.conv.conv1.weight.dims()[1];
    let classes = model.seg_head.conv.weight.dims()[0];
    let r = model.upscale() as i64;
    let mut b = Builder {
        graph: GraphProto {
            name: "ds2f".into(),
            ..GraphProto::default()
        },
        next: 0,
    };
    let mut skips = Vec::new();
    let mut x = INPUT.to_string();
    for (i, down) in [&enc.down1, &enc.down2, &enc.down3, &enc.down4]
        .into_iter()
        .enumerate()
    {
        let f = b.double_conv(&x, &down.conv, &format!("encoder.down{}.conv", i + 1))?;
        x = b.max_pool(&f);
        skips.push(f);
    }
    let mut y = b.double_conv(&x, &enc.down5, "encoder.down5")?;
    for (i, up) in [&dec.up6, &dec.up7, &dec.up8, &dec.up9]
        .into_iter()
        .enumerate()
    {
        let skip = skips[3 - i].clone();
        y = b.up(&y, &skip, up, &format!("decoder.up{}", i + 6))?;
    }
    let logits = b.conv(&y, &model.seg_head.conv, "seg_head.conv")?;
    let hw = b.shape_slice(INPUT, 2, 4);
    let rate = b.constant(TensorProto::i64("upscale", &[r, r]));
    let hr = b.node("Mul", &[&hw, &rate], vec![]);
    let hr_logits = b.resize_to(&logits, &hr);
    b.graph.nodes.push(NodeProto {
        inputs: vec![hr_logits],
        outputs: vec![OUTPUT.into()],
        name: "softmax".into(),
        op_type: "Softmax",
        attributes: vec![Attribute::Int("axis", 1)],
    });
    b.graph.inputs.push(ValueInfo {
        name: INPUT.into(),
        elem_type: DataType::Float,
        dims: vec![
            Dim::Param("batch"),
            Dim::Value(in_channels),
            Dim::Param("height"),
            Dim::Param("width"),
        ],
    });
    b.graph.outputs.push(ValueInfo {
        name: OUTPUT.into(),
        elem_type: DataType::Float,
        dims: vec![
            Dim::Param("batch"),
            Dim::Value(classes),
            Dim::Param("hr_height"),
            Dim::Param("hr_width"),
        ],
    });
    Ok(ModelProto {
        ir_version: 8,
        opset: OPSET,
        producer_name: "ds2f".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: format!(
            "ds2f U-Net inference graph: input [batch, {in_channels}, h, w] in [-1, 1] -> \
             probabilities [batch, {classes}, {r}h, {r}w] (bilinear x{r}, align_corners, softmax)"
        ),
        graph: b.graph,
        metadata,
    })
}
