//! ESPNetv2's part of the ONNX graph (SPEC §1.4, [`crate::model::espnet`]): the encoder
//! (level 1 3×3/2 CBR; three down-sampling units, each a stride-2 EESP beside a 3×3/2 average
//! pool (padded zeros counted), concatenated, plus the input reinforcement — the image
//! average-pooled to the unit's size through a 3×3 CBR and a 1×1 CB — then PReLU; EESP units
//! at /8 and /16: K-group 1×1 CBR, K depth-wise dilated 3×3 branches fused hierarchically,
//! BN + PReLU, K-group 1×1 CB, residual when the widths agree, PReLU) and the segmentation
//! decoder up to the level-1 concatenation (`proj_l4_c`, bilinear with align_corners to
//! level 3's runtime size, EESP, the PSP pooling (four 3×3/2 average pools in a row, a
//! depth-wise 3×3 each, bilinear with align_corners back, 1×1 CBR of the concatenation),
//! `project_l3`, BN + PReLU, bilinear to level 2, `project_l2` CBR, bilinear to level 1): F_seg
//! at LR/2 with `w1 + C` channels. The dropouts are the identity at inference. Every size is
//! dynamic: the pools have fixed kernels, every resize reads its target from the runtime
//! shape.
//!
//! Initializers carry the exported state dict's names: ds2f's module paths with the
//! reference's `refin_conv.0` / `refin_conv.1` (reinforcement CBR / CB) and `pspMod.0` /
//! `pspMod.1` (the decoder's EESP / PSP); PReLU slopes are `….weight`.
use super::graph::{BackboneGraph, Builder, INPUT};
use crate::export::error::ExportError;
use crate::model::espnet::layers::{Br, Cb, Cbr};
use crate::model::espnet::{Eesp, EspnetV2Decoder, EspnetV2Encoder, PspModule, StridedEesp};

/// Conv → BN → PReLU at `{p}.conv`, `{p}.bn`, `{p}.act`.
fn cbr(b: &mut Builder, x: &str, m: &Cbr, p: &str) -> Result<String, ExportError> {
    let y = b.conv_bn(x, &m.conv, &m.bn, &format!("{p}.conv"), &format!("{p}.bn"))?;
    Ok(b.prelu(&y, &m.act, &format!("{p}.act")))
}

/// Conv → BN at `{p}.conv`, `{p}.bn`.
fn cb(b: &mut Builder, x: &str, m: &Cb, p: &str) -> Result<String, ExportError> {
    b.conv_bn(x, &m.conv, &m.bn, &format!("{p}.conv"), &format!("{p}.bn"))
}

/// BN → PReLU at `{p}.bn`, `{p}.act`.
fn br(b: &mut Builder, x: &str, m: &Br, p: &str) -> String {
    let y = b.batch_norm(x, &m.bn, &format!("{p}.bn"));
    b.prelu(&y, &m.act, &format!("{p}.act"))
}

/// One EESP unit at `p`.
fn eesp(b: &mut Builder, x: &str, unit: &Eesp, p: &str) -> Result<String, ExportError> {
    let reduced = cbr(b, x, &unit.g_conv1, &format!("{p}.g_conv1"))?;
    let mut branches: Vec<String> = Vec::with_capacity(unit.spp_convs.len());
    for (i, conv) in unit.spp_convs.iter().enumerate() {
        let y = b.conv(&reduced, conv, &format!("{p}.spp_convs.{i}"))?;
        let y = match branches.last() {
            Some(previous) => {
                let previous = previous.clone();
                b.add(&y, &previous) // hierarchical feature fusion
            }
            None => y,
        };
        branches.push(y);
    }
    let parts: Vec<&str> = branches.iter().map(String::as_str).collect();
    let merged = b.concat(&parts);
    let merged = br(b, &merged, &unit.bn_pr, &format!("{p}.bn_pr"));
    let expanded = cb(b, &merged, &unit.conv_concat, &format!("{p}.conv_concat"))?;
    let Some(act) = &unit.module_act else {
        return Ok(expanded); // stride 2: the down-sampling unit activates
    };
    // At stride 1 the sizes agree; the residual is there when the widths do.
    let [_, group_in, _, _] = unit.g_conv1.conv.weight.dims();
    let in_channels = group_in * unit.g_conv1.conv.groups;
    let out_channels = unit.conv_concat.conv.weight.dims()[0];
    let y = if in_channels == out_channels {
        b.add(&expanded, x)
    } else {
        expanded
    };
    Ok(b.prelu(&y, act, &format!("{p}.module_act")))
}

/// A down-sampling unit at `p`; `image` is already at its output size (as the encoder passes
/// it).
fn strided(
    b: &mut Builder,
    x: &str,
    image: &str,
    unit: &StridedEesp,
    p: &str,
) -> Result<String, ExportError> {
    let pooled = b.avg_pool_3s2(x);
    let e = eesp(b, x, &unit.eesp, &format!("{p}.eesp"))?;
    let r = cbr(b, image, &unit.refin_cbr, &format!("{p}.refin_conv.0"))?;
    let r = cb(b, &r, &unit.refin_cb, &format!("{p}.refin_conv.1"))?;
    let merged = b.concat(&[&e, &pooled]);
    let merged = b.add(&merged, &r);
    Ok(b.prelu(&merged, &unit.activation, &format!("{p}.activation")))
}

/// The pyramid pooling at `p`.
fn psp(b: &mut Builder, x: &str, m: &PspModule, p: &str) -> Result<String, ExportError> {
    let hw = b.spatial(x);
    let mut parts = vec![x.to_string()];
    let mut pooled = x.to_string();
    for (j, stage) in m.stages.iter().enumerate() {
        pooled = b.avg_pool_3s2(&pooled);
        let y = b.conv(&pooled, stage, &format!("{p}.stages.{j}"))?;
        parts.push(b.resize_to(&y, &hw, true));
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let cat = b.concat(&parts);
    cbr(b, &cat, &m.project, &format!("{p}.project"))
}

/// The encoder and the seg decoder up to `merged_l1`, from the graph input to F_seg.
pub(super) fn graph(
    b: &mut Builder,
    enc: &EspnetV2Encoder,
    dec: &EspnetV2Decoder,
) -> Result<BackboneGraph, ExportError> {
    // The reinforcement's image pyramid.
    let image_l2 = b.avg_pool_3s2(INPUT);
    let image_l2 = b.avg_pool_3s2(&image_l2); // /4
    let image_l3 = b.avg_pool_3s2(&image_l2); // /8
    let image_l4 = b.avg_pool_3s2(&image_l3); // /16
    let l1 = cbr(b, INPUT, &enc.level1, "encoder.level1")?; // [n, w1, /2]
    let l2 = strided(b, &l1, &image_l2, &enc.level2_0, "encoder.level2_0")?; // [n, w2, /4]
    let mut l3 = strided(b, &l2, &image_l3, &enc.level3_0, "encoder.level3_0")?; // [n, w3, /8]
    for (i, unit) in enc.level3.iter().enumerate() {
        l3 = eesp(b, &l3, unit, &format!("encoder.level3.{i}"))?;
    }
    let mut l4 = strided(b, &l3, &image_l4, &enc.level4_0, "encoder.level4_0")?; // [n, w4, /16]
    for (i, unit) in enc.level4.iter().enumerate() {
        l4 = eesp(b, &l4, unit, &format!("encoder.level4.{i}"))?;
    }

    let y = cbr(b, &l4, &dec.proj_l4_c, "decoder.proj_l4_c")?; // [n, w3, /16]
    let hw3 = b.spatial(&l3);
    let y = b.resize_to(&y, &hw3, true); // [n, w3, /8]
    let merged_l3 = b.concat(&[&l3, &y]); // [n, 2·w3, /8]
    let y = eesp(b, &merged_l3, &dec.psp_eesp, "decoder.pspMod.0")?; // [n, w3, /8]
    let y = psp(b, &y, &dec.psp, "decoder.pspMod.1")?; // [n, w3, /8]
    let proj_l3 = b.conv(&y, &dec.project_l3, "decoder.project_l3")?; // [n, C, /8]
    let act_l3 = br(b, &proj_l3, &dec.act_l3, "decoder.act_l3");
    let hw2 = b.spatial(&l2);
    let up_l3 = b.resize_to(&act_l3, &hw2, true); // [n, C, /4]
    let cat_l2 = b.concat(&[&l2, &up_l3]);
    let proj_l2 = cbr(b, &cat_l2, &dec.project_l2, "decoder.project_l2")?; // [n, C, /4]
    let hw1 = b.spatial(&l1);
    let up_l2 = b.resize_to(&proj_l2, &hw1, true); // [n, C, /2]
    let merged_l1 = b.concat(&[&l1, &up_l2]); // [n, w1 + C, /2]
    Ok(BackboneGraph {
        features: merged_l1,
        in_channels: enc.level1.conv.weight.dims()[1],
        name: format!(
            "ESPNetv2 (level widths {}, {}, {}, {})",
            enc.level1.conv.weight.dims()[0],
            enc.level2_0.activation.alpha.dims()[0],
            enc.level3_0.activation.alpha.dims()[0],
            enc.level4_0.activation.alpha.dims()[0]
        ),
    })
}
