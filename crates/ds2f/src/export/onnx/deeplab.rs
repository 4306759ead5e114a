//! DeepLabV3+'s part of the ONNX graph (SPEC §1.3, [`crate::model::deeplab`]): the ResNet v1.5
//! (7×7/2 stem Conv+BN+ReLU, 3×3/2 max-pool, bottleneck stages with the configured strides,
//! dilations and multi-grid, as the model's convolutions carry them), the ASPP (1×1 and three
//! dilated 3×3 branches, the image-pooling branch `GlobalAveragePool` → 1×1 Conv+BN+ReLU →
//! `Expand` to the feature size, the 1×1 projection and the reference's second BN + ReLU), and
//! the decoder (1×1 low-level projection with bias, ASPP output resized bilinearly with
//! `half_pixel` (align_corners = false) to the low-level features' runtime size,
//! concatenation, two 3×3 Conv+BN+ReLU): F_seg at LR/4 with 256 channels. Every size is
//! dynamic (the pooling is global, every resize reads its target from the runtime shape).
//!
//! The ResNet's initializers carry torchvision's names under `encoder.backbone.`
//! (`downsample.0` / `downsample.1` for ds2f's `downsample.conv` / `downsample.bn`), as the
//! safetensors export does.
use super::graph::{BackboneGraph, Builder, INPUT};
use crate::export::error::ExportError;
use crate::model::deeplab::{Aspp, Bottleneck, DeepLabDecoder, DeepLabEncoder};

/// One bottleneck block at `p` (`encoder.backbone.layer2.0`).
fn bottleneck(
    b: &mut Builder,
    x: &str,
    block: &Bottleneck,
    p: &str,
) -> Result<String, ExportError> {
    let identity = match &block.downsample {
        Some(d) => b.conv_bn(
            x,
            &d.conv,
            &d.bn,
            &format!("{p}.downsample.0"),
            &format!("{p}.downsample.1"),
        )?,
        None => x.to_string(),
    };
    let y = b.conv_bn_relu(
        x,
        &block.conv1,
        &block.bn1,
        &format!("{p}.conv1"),
        &format!("{p}.bn1"),
    )?;
    let y = b.conv_bn_relu(
        &y,
        &block.conv2,
        &block.bn2,
        &format!("{p}.conv2"),
        &format!("{p}.bn2"),
    )?;
    let y = b.conv_bn(
        &y,
        &block.conv3,
        &block.bn3,
        &format!("{p}.conv3"),
        &format!("{p}.bn3"),
    )?;
    let y = b.add(&y, &identity);
    Ok(b.relu(&y))
}

/// The ASPP at `p` (`encoder.aspp`) on `x`.
fn aspp(b: &mut Builder, x: &str, aspp: &Aspp, p: &str) -> Result<String, ExportError> {
    let mut outs = Vec::with_capacity(aspp.branches.len() + 1);
    for (j, branch) in aspp.branches.iter().enumerate() {
        outs.push(b.conv_bn_relu(
            x,
            &branch.conv,
            &branch.bn,
            &format!("{p}.branches.{j}.conv"),
            &format!("{p}.branches.{j}.bn"),
        )?);
    }
    let pooled = b.global_avg_pool(x); // [n, c_in, 1, 1]
    let pooled = b.conv_bn_relu(
        &pooled,
        &aspp.image_pool.conv,
        &aspp.image_pool.bn,
        &format!("{p}.image_pool.conv"),
        &format!("{p}.image_pool.bn"),
    )?; // [n, 256, 1, 1]
    // Bilinear from 1×1 (align_corners = false) is a broadcast.
    let first = outs[0].clone();
    outs.push(b.expand_like(&pooled, &first)); // [n, 256, h, w]
    let parts: Vec<&str> = outs.iter().map(String::as_str).collect();
    let cat = b.concat(&parts);
    let y = b.conv_bn_relu(
        &cat,
        &aspp.project.conv,
        &aspp.project.bn,
        &format!("{p}.project.conv"),
        &format!("{p}.project.bn"),
    )?;
    let y = b.batch_norm(&y, &aspp.project_bn, &format!("{p}.project_bn"));
    Ok(b.relu(&y))
}

/// ResNet + ASPP and the seg decoder, from the graph input to F_seg.
pub(super) fn graph(
    b: &mut Builder,
    enc: &DeepLabEncoder,
    dec: &DeepLabDecoder,
) -> Result<BackboneGraph, ExportError> {
    let net = &enc.backbone;
    let y = b.conv_bn_relu(
        INPUT,
        &net.conv1,
        &net.bn1,
        "encoder.backbone.conv1",
        "encoder.backbone.bn1",
    )?; // [n, 64, h/2, w/2]
    let mut y = b.max_pool_3s2(&y); // [n, 64, h/4, w/4]
    let mut low = None;
    for (l, layer) in [&net.layer1, &net.layer2, &net.layer3, &net.layer4]
        .into_iter()
        .enumerate()
    {
        for (i, block) in layer.iter().enumerate() {
            y = bottleneck(
                b,
                &y,
                block,
                &format!("encoder.backbone.layer{}.{i}", l + 1),
            )?;
        }
        if l == 0 {
            low = Some(y.clone()); // [n, 256, h/4, w/4]
        }
    }
    let low = low.expect("layer1 runs first");
    let high = aspp(b, &y, &enc.aspp, "encoder.aspp")?; // [n, 256, h/os, w/os]

    let low = b.conv(&low, &dec.conv_low, "decoder.conv_low")?; // [n, 48, h/4, w/4]
    let hw = b.spatial(&low);
    let high = b.resize_to(&high, &hw, false); // [n, 256, h/4, w/4]
    let mut y = b.concat(&[&low, &high]); // [n, 304, h/4, w/4]
    for (j, fusion) in dec.fusion_conv.iter().enumerate() {
        y = b.reduce(&y, fusion, &format!("decoder.fusion_conv.{j}"))?;
    }
    let depth = net.layer1.len() + net.layer2.len() + net.layer3.len() + net.layer4.len();
    Ok(BackboneGraph {
        features: y,
        in_channels: net.conv1.weight.dims()[1],
        name: format!("DeepLabV3+ ResNet-{}", 3 * depth + 2),
    })
}
