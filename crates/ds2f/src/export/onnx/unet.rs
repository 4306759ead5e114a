//! The U-Net's part of the ONNX graph (SPEC §1.1): four `DoubleConv` + 3×3/2 max-pool stages,
//! the bottleneck, and four up stages (bilinear with align_corners to the skip's runtime size,
//! 1×1 Conv+BN+ReLU, concatenation with the skip, `DoubleConv`), output at LR with `base`
//! channels.
use super::graph::{BackboneGraph, Builder, INPUT};
use crate::export::error::ExportError;
use crate::model::blocks::DoubleConv;
use crate::model::unet::Up;
use crate::model::{UnetDecoder, UnetEncoder};

fn double_conv(b: &mut Builder, x: &str, d: &DoubleConv, p: &str) -> Result<String, ExportError> {
    let y = b.conv_bn_relu(
        x,
        &d.conv1,
        &d.bn1,
        &format!("{p}.conv1"),
        &format!("{p}.bn1"),
    )?;
    b.conv_bn_relu(
        &y,
        &d.conv2,
        &d.bn2,
        &format!("{p}.conv2"),
        &format!("{p}.bn2"),
    )
}

fn up(b: &mut Builder, x: &str, skip: &str, up: &Up, p: &str) -> Result<String, ExportError> {
    let hw = b.spatial(skip);
    let y = b.resize_to(x, &hw, true);
    let y = b.reduce(&y, &up.reduce, &format!("{p}.reduce"))?;
    let y = b.concat(&[&y, skip]);
    double_conv(b, &y, &up.conv, &format!("{p}.conv"))
}

/// Encoder and seg decoder of the U-Net, from the graph input to F_seg.
pub(super) fn graph(
    b: &mut Builder,
    enc: &UnetEncoder,
    dec: &UnetDecoder,
) -> Result<BackboneGraph, ExportError> {
    let mut skips = Vec::new();
    let mut x = INPUT.to_string();
    for (i, down) in [&enc.down1, &enc.down2, &enc.down3, &enc.down4]
        .into_iter()
        .enumerate()
    {
        let f = double_conv(b, &x, &down.conv, &format!("encoder.down{}.conv", i + 1))?;
        x = b.max_pool_3s2(&f);
        skips.push(f);
    }
    let mut y = double_conv(b, &x, &enc.down5, "encoder.down5")?;
    for (i, u) in [&dec.up6, &dec.up7, &dec.up8, &dec.up9]
        .into_iter()
        .enumerate()
    {
        let skip = skips[3 - i].clone();
        y = up(b, &y, &skip, u, &format!("decoder.up{}", i + 6))?;
    }
    Ok(BackboneGraph {
        features: y,
        in_channels: enc.down1.conv.conv1.weight.dims()[1],
        name: "U-Net".into(),
    })
}
