//! The inference graph of a [`Segmenter`] as ONNX operators (opset 17): the backbone's encoder
//! and seg decoder ([`super::unet`], [`super::deeplab`], [`super::espnet`]), the seg head's
//! 1×1 convolution, its resize to HR (the backbone's [`HeadResize`] rule) and softmax over
//! the classes. Batch, height and width are dynamic: every resize takes its target size from
//! the runtime shape of the tensor it aligns to (`Shape` → `Slice` → `Concat`), as the Rust
//! model does, so odd sizes give exactly ds2f's output sizes.
//!
//! Initializers holding weights are named as the tensors of the exported state dict
//! ([`crate::export::torch_state_dict`]), so a weight can be found under the same name in the
//! `.safetensors` export and in the ONNX file.
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PRelu, PaddingConfig2d};
use burn::prelude::*;

use super::proto::{
    Attribute, DataType, Dim, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfo,
};
use crate::export::error::ExportError;
use crate::model::blocks::ConvBnRelu;
use crate::model::{Decoder, Encoder, HeadResize, Segmenter};

/// The graph input: `[batch, C_in, height, width]`, the LR image in [−1, 1].
pub const INPUT: &str = "input";
/// The graph output: `[batch, C, r·height, r·width]` class probabilities.
pub const OUTPUT: &str = "probabilities";
/// Opset of the default domain (Resize with `align_corners`, Softmax over one axis).
pub const OPSET: i64 = 17;

/// What a backbone's part of the graph gives the head.
pub(super) struct BackboneGraph {
    /// The decoder's output F_seg (the seg head's input).
    pub features: String,
    /// Channels of the graph input.
    pub in_channels: usize,
    /// The backbone in words, for the doc string.
    pub name: String,
}

/// Builds the graph node by node.
pub(super) struct Builder {
    graph: GraphProto,
    next: usize,
}

impl Builder {
    fn fresh(&mut self, what: &str) -> String {
        self.next += 1;
        format!("{what}_{}", self.next)
    }

    /// A node with one output, named after the operator.
    pub fn node(
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

    /// A one-dimensional int64 constant with a fresh name.
    fn ints(&mut self, what: &str, values: &[i64]) -> String {
        let name = self.fresh(what);
        self.constant(TensorProto::i64(&name, values))
    }

    fn weights<const D: usize>(&mut self, name: &str, t: Tensor<D>) -> String {
        let dims = t.dims();
        let values: Vec<f32> = t.into_data().iter::<f32>().collect();
        self.constant(TensorProto::f32(name, &dims, &values))
    }

    /// `conv` with weights `{name}.weight` (and `{name}.bias`).
    ///
    /// # Errors
    /// [`ExportError::Unsupported`] for `Same` padding (no layer of ds2f has it).
    pub fn conv(&mut self, x: &str, conv: &Conv2d, name: &str) -> Result<String, ExportError> {
        let [k0, k1] = conv.kernel_size;
        let pads = match conv.padding {
            PaddingConfig2d::Explicit(t, l, b, r) => vec![t as i64, l as i64, b as i64, r as i64],
            PaddingConfig2d::Valid => vec![0; 4],
            PaddingConfig2d::Same => {
                return Err(unsupported(&format!("{name}: `Same` padding")));
            }
        };
        let w = self.weights(&format!("{name}.weight"), conv.weight.val());
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

    /// `BatchNormalization` with the running statistics (`{name}.weight`, `.bias`,
    /// `.running_mean`, `.running_var`).
    pub fn batch_norm(&mut self, x: &str, bn: &BatchNorm, name: &str) -> String {
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

    /// `Relu`.
    pub fn relu(&mut self, x: &str) -> String {
        self.node("Relu", &[x], vec![])
    }

    /// `a + b` (same shape).
    pub fn add(&mut self, a: &str, b: &str) -> String {
        self.node("Add", &[a, b], vec![])
    }

    /// Concatenation along the channels.
    pub fn concat(&mut self, parts: &[&str]) -> String {
        self.node("Concat", parts, vec![Attribute::Int("axis", 1)])
    }

    /// PReLU with one slope per channel: the slopes `{name}.weight` (`[c]`, as PyTorch's
    /// `nn.PReLU(c)`) are unsqueezed to `[c, 1, 1]` to broadcast over `[n, c, h, w]`.
    pub fn prelu(&mut self, x: &str, act: &PRelu, name: &str) -> String {
        let slope = self.weights(&format!("{name}.weight"), act.alpha.val());
        let axes = self.ints("axes", &[1, 2]);
        let slope = self.node("Unsqueeze", &[&slope, &axes], vec![]);
        self.node("PRelu", &[x, &slope], vec![])
    }

    /// Conv (`{conv_name}`) → BN (`{bn_name}`).
    pub fn conv_bn(
        &mut self,
        x: &str,
        conv: &Conv2d,
        bn: &BatchNorm,
        conv_name: &str,
        bn_name: &str,
    ) -> Result<String, ExportError> {
        let y = self.conv(x, conv, conv_name)?;
        Ok(self.batch_norm(&y, bn, bn_name))
    }

    /// Conv (`{conv_name}`) → BN (`{bn_name}`) → ReLU.
    pub fn conv_bn_relu(
        &mut self,
        x: &str,
        conv: &Conv2d,
        bn: &BatchNorm,
        conv_name: &str,
        bn_name: &str,
    ) -> Result<String, ExportError> {
        let y = self.conv_bn(x, conv, bn, conv_name, bn_name)?;
        Ok(self.relu(&y))
    }

    /// A [`ConvBnRelu`] at `{p}.conv`, `{p}.bn`.
    pub fn reduce(&mut self, x: &str, c: &ConvBnRelu, p: &str) -> Result<String, ExportError> {
        self.conv_bn_relu(x, &c.conv, &c.bn, &format!("{p}.conv"), &format!("{p}.bn"))
    }

    /// `op` (`MaxPool`, `AveragePool`) 3×3, stride 2, padding 1 (`h → ceil(h/2)`), with
    /// `extra` attributes.
    fn pool_3s2(&mut self, op: &'static str, x: &str, extra: Vec<Attribute>) -> String {
        let mut attributes = vec![
            Attribute::Ints("kernel_shape", vec![3, 3]),
            Attribute::Ints("strides", vec![2, 2]),
            Attribute::Ints("pads", vec![1, 1, 1, 1]),
        ];
        attributes.extend(extra);
        self.node(op, &[x], attributes)
    }

    /// 3×3 max-pool, stride 2, padding 1 (padding never wins).
    pub fn max_pool_3s2(&mut self, x: &str) -> String {
        self.pool_3s2("MaxPool", x, Vec::new())
    }

    /// 3×3 average pool, stride 2, padding 1, padded zeros counted (`nn.AvgPool2d(3, 2, 1)`).
    pub fn avg_pool_3s2(&mut self, x: &str) -> String {
        self.pool_3s2(
            "AveragePool",
            x,
            vec![Attribute::Int("count_include_pad", 1)],
        )
    }

    /// Mean over the spatial dimensions, `[n, c, 1, 1]`.
    pub fn global_avg_pool(&mut self, x: &str) -> String {
        self.node("GlobalAveragePool", &[x], vec![])
    }

    /// `x` broadcast to the runtime shape of `like`.
    pub fn expand_like(&mut self, x: &str, like: &str) -> String {
        let shape = self.node("Shape", &[like], vec![]);
        self.node("Expand", &[x, &shape], vec![])
    }

    /// Elements `[from, to)` of the runtime shape of `x` (int64, one dimension).
    pub fn shape_slice(&mut self, x: &str, from: i64, to: i64) -> String {
        let shape = self.node("Shape", &[x], vec![]);
        let starts = self.ints("starts", &[from]);
        let ends = self.ints("ends", &[to]);
        self.node("Slice", &[&shape, &starts, &ends], vec![])
    }

    /// The runtime spatial size `[h, w]` of `x` (int64 `[2]`).
    pub fn spatial(&mut self, x: &str) -> String {
        self.shape_slice(x, 2, 4)
    }

    /// Bilinear resize of `x` to the spatial size `hw` (int64 `[2]`), with
    /// `coordinate_transformation_mode` `align_corners` or, for PyTorch's
    /// `align_corners=False`, `half_pixel` (ONNX Runtime clamps the source coordinate at 0
    /// as PyTorch does).
    pub fn resize_to(&mut self, x: &str, hw: &str, align_corners: bool) -> String {
        let nc = self.shape_slice(x, 0, 2);
        let sizes = self.node("Concat", &[&nc, hw], vec![Attribute::Int("axis", 0)]);
        let mode = if align_corners {
            "align_corners"
        } else {
            "half_pixel"
        };
        self.node(
            "Resize",
            &[x, "", "", &sizes],
            vec![
                Attribute::Str("mode", "linear".into()),
                Attribute::Str("coordinate_transformation_mode", mode.into()),
            ],
        )
    }
}

/// [`ExportError::Unsupported`] naming `model.backbone`.
pub(super) fn unsupported(reason: &str) -> ExportError {
    ExportError::Unsupported {
        key: "model.backbone".into(),
        reason: format!("ONNX export: {reason}"),
    }
}

/// The ONNX model of `model`'s inference graph with `metadata` as its metadata properties.
///
/// # Errors
/// [`ExportError::Unsupported`] naming `model.backbone` if the encoder and decoder are of
/// different backbones (a model built from one config never is) or a layer has `Same`
/// padding (none of ds2f's has).
pub fn onnx_model(
    model: &Segmenter,
    metadata: Vec<(String, String)>,
) -> Result<ModelProto, ExportError> {
    let mut b = Builder {
        graph: GraphProto {
            name: "ds2f".into(),
            ..GraphProto::default()
        },
        next: 0,
    };
    let backbone = match (&model.encoder, &model.decoder) {
        (Encoder::Unet(enc), Decoder::Unet(dec)) => super::unet::graph(&mut b, enc, dec)?,
        (Encoder::DeepLab(enc), Decoder::DeepLab(dec)) => super::deeplab::graph(&mut b, enc, dec)?,
        (Encoder::Espnet(enc), Decoder::Espnet(dec)) => super::espnet::graph(&mut b, enc, dec)?,
        _ => {
            return Err(unsupported(
                "the encoder and decoder are of different backbones",
            ));
        }
    };
    let classes = model.seg_head.conv.weight.dims()[0];
    let r = model.upscale() as i64;
    let in_channels = backbone.in_channels;

    // The seg head: 1×1 convolution (its dropout is the identity at inference), then the
    // backbone's resize rule to HR.
    let logits = b.conv(&backbone.features, &model.seg_head.conv, "seg_head.conv")?;
    let lr = b.spatial(INPUT);
    let rate = b.constant(TensorProto::i64("upscale", &[r, r]));
    let hr = b.node("Mul", &[&lr, &rate], vec![]);
    let (hr_logits, resize) = match model.seg_head.resize {
        HeadResize::AlignCorners => (
            b.resize_to(&logits, &hr, true),
            format!("bilinear x{r} (align_corners)"),
        ),
        HeadResize::TwoStep => {
            let at_lr = b.resize_to(&logits, &lr, false);
            (
                b.resize_to(&at_lr, &hr, false),
                format!("bilinear to (h, w), then x{r} (half_pixel: align_corners=False)"),
            )
        }
        HeadResize::AlignCornersTwoStep => {
            let at_lr = b.resize_to(&logits, &lr, true);
            (
                b.resize_to(&at_lr, &hr, true),
                format!("bilinear to (h, w), then x{r} (align_corners)"),
            )
        }
    };
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
            "ds2f {} inference graph: input [batch, {in_channels}, h, w] in [-1, 1] -> \
             probabilities [batch, {classes}, {r}h, {r}w] (1x1 head, {resize}, softmax); \
             batch, h and w dynamic",
            backbone.name
        ),
        graph: b.graph,
        metadata,
    })
}
