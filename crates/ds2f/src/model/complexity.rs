//! Parameter and MAC counts of the inference graph.
use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::prelude::*;

/// A trainable parameter: its module path, id and shape.
#[derive(Debug, Clone)]
pub struct TrainableParam {
    /// Dotted module path, e.g. `encoder.down1.conv.conv1.weight`.
    pub path: String,
    /// The parameter's id (the key of its gradient).
    pub id: ParamId,
    /// Its shape.
    pub shape: Vec<usize>,
}

/// Collects float tensors with their paths. BN running statistics are among them (burn keeps
/// them as parameters; PyTorch's `parameters()` and the paper do not count them).
struct TrainableCollector {
    path: Vec<String>,
    found: Vec<TrainableParam>,
}

impl ModuleVisitor for TrainableCollector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.found.push(TrainableParam {
            path: self.path.join("."),
            id: param.id,
            shape: param.lazy_shape().to_vec(),
        });
    }
}

/// Every float tensor of `module` (BN running statistics included), in visiting order.
pub fn float_tensors<M: Module>(module: &M) -> Vec<TrainableParam> {
    let mut collector = TrainableCollector {
        path: Vec::new(),
        found: Vec::new(),
    };
    module.visit(&mut collector);
    collector.found
}

/// Every trainable parameter of `module`, in visiting order.
pub fn trainable_parameters<M: Module>(module: &M) -> Vec<TrainableParam> {
    float_tensors(module)
        .into_iter()
        .filter(|p| !(p.path.ends_with("running_mean") || p.path.ends_with("running_var")))
        .collect()
}

/// Number of trainable parameters of `module` whose path starts with `prefix` (`""`: all),
/// counted as PyTorch counts `parameters()`.
pub fn trainable_params<M: Module>(module: &M, prefix: &str) -> usize {
    trainable_parameters(module)
        .iter()
        .filter(|p| p.path.starts_with(prefix))
        .map(|p| p.shape.iter().product::<usize>())
        .sum()
}

/// Operation counts of the inference graph by kind, in ptflops' units (bench/ptflops_unet.json
/// records how ptflops 0.7.5 counts each kind, read from its source and checked against it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MacBreakdown {
    /// Convolutions: output positions × (k² · C_in / groups) · C_out, plus one per output
    /// element for a bias.
    pub conv: u64,
    /// Batch norm: two per input element (affine).
    pub batch_norm: u64,
    /// ReLU: elements passing through a ReLU (once each).
    pub relu: u64,
    /// Pooling: input elements of the max-pools and of DeepLab's global average pool (once
    /// each).
    pub pool: u64,
    /// Bilinear up-sampling: output elements.
    pub upsample: u64,
}

impl MacBreakdown {
    /// What ptflops reports for this model: it counts each ReLU and max-pool twice (the
    /// module hook and the patched functional call inside it).
    pub fn total(&self) -> u64 {
        self.conv + self.batch_norm + 2 * self.relu + 2 * self.pool + self.upsample
    }

    /// What ptflops reports for the authors' `Unet` (U-Net backbone only: the quirk is that
    /// model's), i.e. the paper's "GFLOPs" column: their
    /// model shares one `nn.ReLU` instance among its 34 conv blocks (SR decoder included), and
    /// ptflops adds a shared module's count once per parent, so every ReLU counts 35 times.
    /// Kept to compare with the paper's tables; [`MacBreakdown::total`] is the honest count.
    pub fn paper_total(&self) -> u64 {
        self.conv + self.batch_norm + 35 * self.relu + 2 * self.pool + self.upsample
    }
}

struct MacCounter {
    m: MacBreakdown,
}

impl MacCounter {
    fn conv(&mut self, cin: usize, cout: usize, k: usize, hw: [usize; 2], bias: bool) {
        let pos = (hw[0] * hw[1]) as u64;
        self.m.conv += pos * (k * k * cin * cout) as u64 + if bias { pos * cout as u64 } else { 0 };
    }

    fn conv_bn_relu(&mut self, cin: usize, cout: usize, k: usize, hw: [usize; 2]) {
        self.conv(cin, cout, k, hw, false);
        let n = (cout * hw[0] * hw[1]) as u64;
        self.m.batch_norm += 2 * n;
        self.m.relu += n;
    }

    fn double_conv(&mut self, cin: usize, cout: usize, hw: [usize; 2]) {
        self.conv_bn_relu(cin, cout, 3, hw);
        self.conv_bn_relu(cout, cout, 3, hw);
    }

    /// Conv (no bias) + BN without activation.
    fn conv_bn(&mut self, cin: usize, cout: usize, k: usize, hw: [usize; 2]) {
        self.conv(cin, cout, k, hw, false);
        self.m.batch_norm += 2 * (cout * hw[0] * hw[1]) as u64;
    }

    fn relu(&mut self, c: usize, hw: [usize; 2]) {
        self.m.relu += (c * hw[0] * hw[1]) as u64;
    }

    fn upsample(&mut self, c: usize, hw: [usize; 2]) {
        self.m.upsample += (c * hw[0] * hw[1]) as u64;
    }
}

/// `s` after a convolution or pool of stride `stride` that keeps the size at stride 1
/// (`ceil(s / stride)`).
fn strided(s: [usize; 2], stride: usize) -> [usize; 2] {
    [s[0].div_ceil(stride), s[1].div_ceil(stride)]
}

/// MACs of the inference graph (encoder, seg decoder, head, bilinear ×r) for one LR input of
/// `h × w`, counted op by op as ptflops counts a model in eval mode (SPEC §7).
pub fn inference_macs(config: &super::ModelConfig, h: usize, w: usize) -> MacBreakdown {
    match (config.backbone, config.backbone.resnet_depth()) {
        (super::Backbone::Espnetv2, _) => espnet_macs(config, h, w),
        (_, None) => unet_macs(config, h, w),
        (_, Some(depth)) => deeplab_macs(config, depth, h, w),
    }
}

/// [`inference_macs`] of the U-Net.
fn unet_macs(config: &super::ModelConfig, h: usize, w: usize) -> MacBreakdown {
    let b = config.base;
    let r = config.effective_upscale();
    let mut c = MacCounter {
        m: MacBreakdown::default(),
    };
    let half = |s: [usize; 2]| [s[0].div_ceil(2), s[1].div_ceil(2)];
    // Encoder: sizes of the four skips and the bottleneck.
    let mut sizes = vec![[h, w]];
    for _ in 0..4 {
        sizes.push(half(*sizes.last().expect("non-empty")));
    }
    let widths = [b, 2 * b, 4 * b, 8 * b, 16 * b];
    let mut cin = config.in_channels;
    for (k, (&s, &cout)) in sizes.iter().zip(&widths).enumerate() {
        c.double_conv(cin, cout, s);
        if k < 4 {
            c.m.pool += (cout * s[0] * s[1]) as u64;
        }
        cin = cout;
    }
    // Decoder: up6..up9.
    for k in (0..4).rev() {
        let s = sizes[k];
        let (in1, out) = (widths[k + 1], widths[k]);
        c.m.upsample += (in1 * s[0] * s[1]) as u64;
        c.conv_bn_relu(in1, out, 1, s);
        c.double_conv(2 * out, out, s);
    }
    // Head and bilinear ×r.
    c.conv(b, config.num_classes, 1, [h, w], true);
    if r > 1 {
        c.m.upsample += (config.num_classes * h * r * w * r) as u64;
    }
    c.m
}

/// [`inference_macs`] of DeepLabV3+: ResNet (stem, max-pool, bottlenecks with their
/// shortcut projections; the residual sums are not counted, as ptflops does not), ASPP (four
/// branches, global average pool, pooled branch, broadcast counted as a bilinear resize, as
/// the reference calls `F.interpolate`, projection with its second BN + ReLU), decoder, head
/// and the two bilinear steps to HR (the second only when r > 1, as the reference).
fn deeplab_macs(
    config: &super::ModelConfig,
    depth: super::deeplab::ResNetDepth,
    h: usize,
    w: usize,
) -> MacBreakdown {
    use super::deeplab::{FEATURE_CHANNELS as F, HIGH_CHANNELS, LOW_CHANNELS, decoder};
    let r = config.effective_upscale();
    let mut c = MacCounter {
        m: MacBreakdown::default(),
    };
    // Stem: 7×7/2 conv + BN + ReLU, 3×3/2 max-pool.
    let s1 = strided([h, w], 2);
    c.conv_bn_relu(config.in_channels, 64, 7, s1);
    c.m.pool += (64 * s1[0] * s1[1]) as u64;
    let mut s = strided(s1, 2);
    let low = s;
    let mut cin = 64;
    let strides = config.output_stride.strides();
    for (l, &blocks) in depth.blocks().iter().enumerate() {
        let planes = 64 << l;
        for i in 0..blocks {
            let stride = if i == 0 { strides[l] } else { 1 };
            let out = strided(s, stride);
            c.conv_bn_relu(cin, planes, 1, s);
            c.conv_bn_relu(planes, planes, 3, out);
            c.conv_bn(planes, 4 * planes, 1, out);
            if i == 0 {
                c.conv_bn(cin, 4 * planes, 1, out);
            }
            c.relu(4 * planes, out);
            cin = 4 * planes;
            s = out;
        }
    }
    // ASPP at the output stride.
    c.conv_bn_relu(HIGH_CHANNELS, F, 1, s);
    for _ in 0..3 {
        c.conv_bn_relu(HIGH_CHANNELS, F, 3, s);
    }
    c.m.pool += (HIGH_CHANNELS * s[0] * s[1]) as u64;
    c.conv_bn_relu(HIGH_CHANNELS, F, 1, [1, 1]);
    c.upsample(F, s);
    c.conv_bn_relu(5 * F, F, 1, s);
    c.m.batch_norm += 2 * (F * s[0] * s[1]) as u64;
    c.relu(F, s);
    // Decoder at /4.
    c.conv(LOW_CHANNELS, decoder::LOW_PROJECTED, 1, low, true);
    c.upsample(F, low);
    c.conv_bn_relu(decoder::LOW_PROJECTED + F, F, 3, low);
    c.conv_bn_relu(F, F, 3, low);
    // Head: 1×1, bilinear to LR, then ×r.
    c.conv(F, config.num_classes, 1, low, true);
    c.upsample(config.num_classes, [h, w]);
    if r > 1 {
        c.upsample(config.num_classes, [h * r, w * r]);
    }
    c.m
}

/// ESPNetv2 at `model.espnet_scale` (SPEC §1.4): encoder levels 1–4 with the image pyramid,
/// the segmentation decoder, `project_l1` (the seg head), bilinear to LR and ×r. Every PReLU
/// counts as a ReLU, every average pool (the image pyramid, the stride-2 units' and the
/// pyramid pooling's) as a pool of its input elements, every bilinear as its output elements.
///
/// Only the convolution count is checked against PyTorch (`tests/espnet.rs`); the other kinds
/// follow [`MacBreakdown`]'s rules, and [`MacBreakdown::total`]'s doubling of ReLU and pool
/// counts is what ptflops does on the U-Net, not checked on ESPNetv2's PReLUs and functional
/// pools.
///
/// # Panics
/// On a scale [`super::ModelConfig::validate`] refuses.
fn espnet_macs(config: &super::ModelConfig, h: usize, w: usize) -> MacBreakdown {
    use super::espnet::encoder::BRANCHES as K;
    let [w1, w2, w3, w4] = super::espnet::level_widths(config.espnet_scale)
        .expect("model.espnet_scale is checked by ModelConfig::validate");
    let (c_out, image, r) = (
        config.num_classes,
        config.in_channels,
        config.effective_upscale(),
    );
    let mut c = MacCounter {
        m: MacBreakdown::default(),
    };
    let area = |s: [usize; 2]| (s[0] * s[1]) as u64;
    let half = |s: [usize; 2]| strided(s, 2);
    // Conv with groups, BN, PReLU.
    let cbr = |c: &mut MacCounter, cin: usize, cout: usize, k: usize, g: usize, s: [usize; 2]| {
        c.conv(cin / g, cout, k, s, false);
        c.m.batch_norm += 2 * cout as u64 * area(s);
        c.relu(cout, s);
    };
    let cb = |c: &mut MacCounter, cin: usize, cout: usize, g: usize, s: [usize; 2]| {
        c.conv(cin / g, cout, 1, s, false);
        c.m.batch_norm += 2 * cout as u64 * area(s);
    };
    // An EESP unit `cin → cout` at stride `stride` on input size `s`.
    let eesp = |c: &mut MacCounter, cin: usize, cout: usize, stride: usize, s: [usize; 2]| {
        let n = cout / K;
        let out = strided(s, stride);
        cbr(c, cin, n, 1, K, s); // g_conv1
        for _ in 0..K {
            c.conv(1, n, 3, out, false); // depth-wise dilated branch
        }
        c.m.batch_norm += 2 * cout as u64 * area(out); // bn_pr
        c.relu(cout, out);
        cb(c, cout, cout, K, out); // conv_concat
        if stride == 1 {
            c.relu(cout, out); // module_act
        }
    };
    // A stride-2 unit `cin → cout` on input size `s` (the image already pooled to s/2).
    let strided_eesp = |c: &mut MacCounter, cin: usize, cout: usize, s: [usize; 2]| {
        let out = half(s);
        c.m.pool += cin as u64 * area(s);
        eesp(c, cin, cout - cin, 2, s);
        cbr(c, image, image, 3, 1, out); // refin_cbr
        cb(c, image, cout, 1, out); // refin_cb
        c.relu(cout, out); // activation
    };
    // Encoder.
    let s0 = [h, w];
    let (s1, s2) = (half(s0), half(half(s0)));
    let (s3, s4) = (half(s2), half(half(s2)));
    for s in [s0, s1, s2, s3] {
        c.m.pool += image as u64 * area(s); // the image pyramid down to /16
    }
    cbr(&mut c, image, w1, 3, 1, s1); // level1
    strided_eesp(&mut c, w1, w2, s1);
    strided_eesp(&mut c, w2, w3, s2);
    for _ in 0..3 {
        eesp(&mut c, w3, w3, 1, s3);
    }
    strided_eesp(&mut c, w3, w4, s3);
    for _ in 0..7 {
        eesp(&mut c, w4, w4, 1, s4);
    }
    // Decoder.
    cbr(&mut c, w4, w3, 1, 1, s4); // proj_l4_c
    c.upsample(w3, s3);
    eesp(&mut c, 2 * w3, w3, 1, s3); // pspMod.0
    let mut p = s3;
    for _ in 0..4 {
        c.m.pool += w3 as u64 * area(p);
        p = half(p);
        c.conv(1, w3, 3, p, false); // depth-wise stage
        c.upsample(w3, s3);
    }
    cbr(&mut c, 5 * w3, w3, 1, 1, s3); // pspMod.1 project
    c.conv(w3, c_out, 1, s3, false); // project_l3
    c.m.batch_norm += 2 * c_out as u64 * area(s3); // act_l3
    c.relu(c_out, s3);
    c.upsample(c_out, s2);
    cbr(&mut c, w2 + c_out, c_out, 1, 1, s2); // project_l2
    c.upsample(c_out, s1);
    // Head: project_l1, bilinear to LR (the reference's ×2), ×r.
    c.conv(w1 + c_out, c_out, 1, s1, false);
    c.upsample(c_out, s0);
    if r > 1 {
        c.upsample(c_out, [h * r, w * r]);
    }
    c.m
}
