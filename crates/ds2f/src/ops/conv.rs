//! 2-D convolution on the `flex` CPU backend with our kernels:
//!
//! - forward: the implicit GEMM of [`super::implicit_gemm`] (AVX-512 or AVX2, ≥ 64² output
//!   pixels), else for each tile of output rows an im2col tile of the input (at most
//!   [`COL_TILE_FLOATS`] floats) and one `gemm` `Y[Cout, T] = W[Cout, K] · col[K, T]` straight
//!   into the NCHW output; either finished by a per-channel scale, shift and ReLU when asked
//!   (a bias, a folded batch norm); depthwise convolutions keep flex's direct kernel;
//! - weight gradient: the tap-by-tap AVX-512 (or AVX2) kernel of [`super::weight_grad`] when
//!   the channel counts fill its tiles, else the same tiles as the forward and
//!   `dW[Cout, K] += dY[Cout, T] · colᵀ[T, K]`, summed in [`WEIGHT_GRAD_PARTIALS`] fixed runs;
//!   depthwise convolutions use a direct kernel (a gemm with one row is all overhead);
//! - input gradient: for stride 1, the forward convolution of `dY` with the flipped, transposed
//!   weights; other strides keep burn's transposed convolution;
//! - bias gradient: a per-channel sum.
//!
//! See the module docs of [`crate::ops`] for why.
use burn::backend::TensorMetadata;
use burn::backend::ops::ModuleOps;
use burn::backend::{Autodiff, DispatchDevice, Flex, GradientCheckpointingStrategy};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, Tensor};
use burn_autodiff::NodeId;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::FlexTensor;

use super::{f32_data as data, f32_tensor as tensor};
use rayon::prelude::*;

/// Largest im2col tile of the weight-gradient kernel, in floats (4 MiB): big enough that each
/// gemm has a long inner dimension, small enough to stay in the cache hierarchy.
const COL_TILE_FLOATS: usize = 1 << 20;

/// Tiles a convolution is split into at least (when it has that many output rows), so that
/// small layers still keep every core busy; a constant, for thread-count-independent results.
const MIN_JOBS: usize = 8;

/// Partial sums of the weight gradient at most: the tiles are split into this many contiguous
/// runs, each summed by one task, and the partial sums added in order: the result does not
/// depend on how rayon schedules the tasks.
const WEIGHT_GRAD_PARTIALS: usize = 8;

/// [`Conv2d::forward`] through [`conv2d`]: the same padding rules, the same result.
///
/// # Shapes
/// - `x`: `[batch, channels_in, height, width]`
/// - output: `[batch, channels_out, height_out, width_out]`
pub fn conv2d_module(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        // `Same` depends on the input size through a rule burn keeps private: let burn do it.
        PaddingConfig2d::Same => return conv.forward(x),
    };
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, conv.groups);
    conv2d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// [`burn::tensor::module::conv2d`], with our backward kernels when training on `flex` in f32.
///
/// # Shapes
/// - `x`: `[batch, channels_in, height, width]`
/// - `weight`: `[channels_out, channels_in / groups, kernel_height, kernel_width]`
/// - `bias`: `[channels_out]`
/// - output: `[batch, channels_out, height_out, width_out]`
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let route = flex_route(&x);
    // Parameters on another device context than the input (a plain input into an autodiff
    // module) go to burn, which converts.
    let supported = weight.dtype() == DType::F32
        && flex_route(&weight) == route
        && bias.as_ref().is_none_or(|b| flex_route(b) == route)
        && !options.is_asymmetric();
    match route {
        Some(Route::Autodiff) if supported => {}
        Some(Route::Plain) if supported => {
            let (x, weight) = plain_primitives(x, weight);
            let bias = bias.map(|b| {
                b.try_into_primitive::<Flex>()
                    .expect("the bias lives on the input's device")
            });
            return Tensor::from_primitive::<Flex>(forward(x, weight, bias, &options));
        }
        #[cfg(feature = "tch")]
        None if super::libtorch::autodiff_route(&x)
            && super::libtorch::autodiff_route(&weight)
            && bias.as_ref().is_none_or(super::libtorch::autodiff_route)
            && !options.is_asymmetric() =>
        {
            return super::libtorch::conv2d(x, weight, bias, options);
        }
        _ => {
            let out = burn::tensor::module::conv2d(x, weight, bias, options);
            #[cfg(feature = "tch")]
            let out = super::libtorch::few_channels_dense(out);
            return out;
        }
    }
    let x = x
        .try_into_primitive::<Autodiff<Flex>>()
        .expect("checked: an autodiff flex tensor");
    let weight = weight
        .try_into_primitive::<Autodiff<Flex>>()
        .expect("the weight lives on the input's device");
    let bias = bias.map(|b| {
        b.try_into_primitive::<Autodiff<Flex>>()
            .expect("the bias lives on the input's device")
    });
    Tensor::from_primitive::<Autodiff<Flex>>(conv2d_autodiff(x, weight, bias, options))
}

/// The `flex` primitives of an input and weight already routed [`Route::Plain`].
pub(super) fn plain_primitives(x: Tensor<4>, weight: Tensor<4>) -> (FlexTensor, FlexTensor) {
    let x = x
        .try_into_primitive::<Flex>()
        .expect("checked: a flex tensor");
    let weight = weight
        .try_into_primitive::<Flex>()
        .expect("checked: the weight lives on the input's device");
    (x, weight)
}

/// Which of our paths an input takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// `flex` with autodiff and no gradient checkpointing: our autodiff operation.
    Autodiff,
    /// `flex` without autodiff (inference): our forward kernel.
    Plain,
}

/// Our path for an f32 tensor on the `flex` device, `None` for every other tensor.
pub(super) fn flex_route<const D: usize>(x: &Tensor<D>) -> Option<Route> {
    if x.dtype() != DType::F32 {
        return None;
    }
    match x.device().as_dispatch() {
        DispatchDevice::Flex(_) => Some(Route::Plain),
        DispatchDevice::Autodiff(inner)
            if matches!(**inner, DispatchDevice::Flex(_))
                && inner.gradient_checkpointing_strategy()
                    == GradientCheckpointingStrategy::Disabled =>
        {
            Some(Route::Autodiff)
        }
        _ => None,
    }
}

type AdTensor = <Autodiff<Flex> as burn::backend::BackendTypes>::FloatTensorPrimitive;

/// The convolution as one autodiff operation of `Autodiff<Flex>`.
fn conv2d_autodiff(
    x: AdTensor,
    weight: AdTensor,
    bias: Option<AdTensor>,
    options: ConvOptions<2>,
) -> AdTensor {
    #[derive(Debug)]
    struct WithBias;
    #[derive(Debug)]
    struct NoBias;
    type State = (FlexTensor, FlexTensor, ConvOptions<2>);

    impl Backward<Flex, 3> for WithBias {
        type State = State;
        fn backward(self, ops: Ops<State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_w, node_b] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node);
            let (x, weight, options) = ops.state;
            if let Some(node) = node_b {
                grads.register::<Flex>(node.id, bias_grad(&grad));
            }
            let (id_x, id_w) = (node_x.map(|n| n.id), node_w.map(|n| n.id));
            register_xw(id_x, id_w, x, weight, grad, &options, grads);
        }
    }
    impl Backward<Flex, 2> for NoBias {
        type State = State;
        fn backward(self, ops: Ops<State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_w] = ops.parents;
            let grad = grads.consume::<Flex>(&ops.node);
            let (x, weight, options) = ops.state;
            let (id_x, id_w) = (node_x.map(|n| n.id), node_w.map(|n| n.id));
            register_xw(id_x, id_w, x, weight, grad, &options, grads);
        }
    }

    let state = (
        x.primitive().clone(),
        weight.primitive().clone(),
        options.clone(),
    );
    match bias {
        Some(bias) => {
            let prep = WithBias
                .prepare::<NoCheckpointing>([x.node(), weight.node(), bias.node()])
                .compute_bound()
                .stateful();
            let out = forward(
                x.into_primitive(),
                weight.into_primitive(),
                Some(bias.into_primitive()),
                &options,
            );
            match prep {
                OpsKind::Tracked(prep) => prep.finish(state, out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            }
        }
        None => {
            let prep = NoBias
                .prepare::<NoCheckpointing>([x.node(), weight.node()])
                .compute_bound()
                .stateful();
            let out = forward(x.into_primitive(), weight.into_primitive(), None, &options);
            match prep {
                OpsKind::Tracked(prep) => prep.finish(state, out),
                OpsKind::UnTracked(prep) => prep.finish(out),
            }
        }
    }
}

/// Registers the input and weight gradients of the nodes that need them.
fn register_xw(
    node_x: Option<NodeId>,
    node_w: Option<NodeId>,
    x: FlexTensor,
    weight: FlexTensor,
    grad: FlexTensor,
    options: &ConvOptions<2>,
    grads: &mut Gradients,
) {
    if let Some(id) = node_w {
        grads.register::<Flex>(id, weight_grad(&x, &grad, &weight.shape(), options));
    }
    if let Some(id) = node_x {
        grads.register::<Flex>(id, input_grad(x, weight, grad, options));
    }
}

/// `dL/db[c] = Σ_{n,y,x} dY[n, c, y, x]`.
fn bias_grad(grad: &FlexTensor) -> FlexTensor {
    let grad = grad.to_contiguous();
    let [n, c, h, w] = grad.shape().dims();
    let dy = data(&grad);
    let plane = h * w;
    let sums: Vec<f32> = (0..c)
        .into_par_iter()
        .map(|ch| {
            (0..n)
                .map(|i| sum(&dy[(i * c + ch) * plane..][..plane]))
                .sum()
        })
        .collect();
    tensor(sums, [c])
}

/// Input gradient. Stride 1: `dX = conv(dY, W')` with `W'[g·Cin_g + ci, co] = flip(W[g·Cout_g + co,
/// ci])` and padding `dilation·(k − 1) − padding`; otherwise burn's transposed convolution.
fn input_grad(
    x: FlexTensor,
    weight: FlexTensor,
    grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let [cout, cin_g, kh, kw] = weight.shape().dims();
    let [_, cin, _, _] = x.shape().dims();
    let pad = options.padding_begin();
    let full = [
        options.dilation[0] * (kh - 1),
        options.dilation[1] * (kw - 1),
    ];
    if options.stride != [1, 1] || full[0] < pad[0] || full[1] < pad[1] {
        return Flex::conv2d_x_backward(x, weight, grad, options.clone());
    }
    let groups = options.groups;
    let cout_g = cout / groups;
    let weight = weight.to_contiguous();
    let w = data(&weight);
    let k = kh * kw;
    // One (group, input channel) row of the flipped weights per task (deep layers' weights
    // are tens of MB).
    let mut flipped = vec![0.0f32; w.len()];
    flipped
        .par_chunks_mut((cout_g * k).max(1))
        .enumerate()
        .for_each(|(row, dst)| {
            let (g, ci) = (row / cin_g, row % cin_g);
            for (co, dst) in dst.chunks_exact_mut(k).enumerate() {
                let src = &w[((g * cout_g + co) * cin_g + ci) * k..][..k];
                for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                    *d = *s;
                }
            }
        });
    let flipped = tensor(flipped, [cin, cout_g, kh, kw]);
    let options = ConvOptions::new(
        [1, 1],
        [full[0] - pad[0], full[1] - pad[1]],
        options.dilation,
        groups,
    );
    forward(grad, flipped, None, &options)
}

/// Forward convolution with our fastest kernel for this CPU (see [`forward_with`]).
fn forward(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let bias = bias.map(|b| b.to_contiguous());
    let fused = Fused {
        scale: None,
        shift: bias.as_ref().map(data),
        relu: false,
    };
    forward_with(x, weight, options, &fused, Kernel::Auto)
}

/// What follows a convolution's sum for each output channel `co`:
/// `y · scale[co] + shift[co]`, then ReLU if asked: a bias, or an inference-mode batch norm
/// folded in, and its activation.
#[derive(Default)]
pub(super) struct Fused<'a> {
    pub scale: Option<&'a [f32]>,
    pub shift: Option<&'a [f32]>,
    pub relu: bool,
}

/// The forward kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kernel {
    /// The faster of the two for this CPU and shape.
    Auto,
    /// Patches packed from the image (or rows read in place) into an AVX-512 or AVX2
    /// micro-kernel, epilogue fused ([`super::implicit_gemm`]); x86-64 with AVX-512F or AVX2 +
    /// FMA only.
    ImplicitGemm,
    /// im2col tiles and the `gemm` crate, then one pass for the epilogue: every CPU.
    Im2colGemm,
}

impl Kernel {
    /// The kernel [`Kernel::Auto`] stands for on `n` images of geometry `g`.
    fn resolve(self, n: usize, g: &Geometry) -> Self {
        match self {
            Kernel::Auto
                if super::implicit_gemm::available() && super::implicit_gemm::suits(n, g) =>
            {
                Kernel::ImplicitGemm
            }
            Kernel::Auto => Kernel::Im2colGemm,
            chosen => chosen,
        }
    }
}

/// Forward convolution followed by `fused`, with `kernel`; depthwise convolutions keep flex's
/// direct kernel whichever is asked. `ImplicitGemm` needs AVX-512 or AVX2 (see
/// `implicit_gemm::available`).
pub(super) fn forward_with(
    x: FlexTensor,
    weight: FlexTensor,
    options: &ConvOptions<2>,
    fused: &Fused,
    kernel: Kernel,
) -> FlexTensor {
    let [cout, cin_g, kh, kw] = weight.shape().dims();
    let groups = options.groups;
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let [n, cin, h, w] = x.shape().dims();
    let g = Geometry::new([h, w], [kh, kw], options);
    let depthwise = cin_g == 1 && cout / groups == 1;
    let implicit = kernel.resolve(n, &g) == Kernel::ImplicitGemm && !depthwise;
    // The implicit GEMM scales the weights while packing them; the other kernels get them
    // scaled here.
    let weight = match fused.scale {
        Some(scale) if !implicit => {
            // One output channel's weights at a time (an index division per weight cost 5 %
            // of an inference).
            let per_out = weight.shape().num_elements() / cout;
            let mut scaled = data(&weight).to_vec();
            scaled
                .par_chunks_mut(per_out.max(1))
                .zip(scale)
                .for_each(|(row, &s)| row.iter_mut().for_each(|v| *v *= s));
            tensor(scaled, [cout, cin_g, kh, kw])
        }
        _ => weight,
    };
    let xs = [data(&x)];
    let problem = super::implicit_gemm::Problem {
        x: &xs,
        part_channels: &[cin],
        n,
        cin,
        weight: data(&weight),
        cout,
        groups,
        scale: if implicit { fused.scale } else { None },
    };
    if implicit {
        return implicit_forward(&problem, &g, fused);
    }
    let mut out = if depthwise {
        let out = Flex::conv2d(x.clone(), weight.clone(), None, options.clone()).to_contiguous();
        data(&out).to_vec()
    } else {
        im2col_forward(&problem, &g)
    };
    if fused.shift.is_some() || fused.relu {
        let plane = g.ho * g.wo;
        out.par_chunks_mut(plane)
            .enumerate()
            .for_each(|(i, plane)| {
                let shift = fused.shift.map_or(0.0, |s| s[i % cout]);
                for v in plane.iter_mut() {
                    *v += shift;
                    if fused.relu && *v < 0.0 {
                        *v = 0.0;
                    }
                }
            });
    }
    tensor(out, [n, cout, g.ho, g.wo])
}

/// [`forward_with`] of the channel concatenation of `parts` (one batch), without
/// building it, when the implicit GEMM runs this convolution (AVX-512 or AVX2, ungrouped,
/// large enough output); `None` otherwise.
pub(super) fn forward_parts(
    parts: &[FlexTensor],
    weight: FlexTensor,
    options: &ConvOptions<2>,
    fused: &Fused,
) -> Option<FlexTensor> {
    let [cout, cin, kh, kw] = weight.shape().dims();
    let [n, _, h, w] = parts.first()?.shape().dims();
    let g = Geometry::new([h, w], [kh, kw], options);
    let shapes_fit = parts.iter().all(|p| {
        let [pn, _, ph, pw] = p.shape().dims();
        [pn, ph, pw] == [n, h, w]
    });
    let channels: Vec<usize> = parts.iter().map(|p| p.shape().dims::<4>()[1]).collect();
    if options.groups != 1
        || !shapes_fit
        || channels.iter().sum::<usize>() != cin
        || Kernel::Auto.resolve(n, &g) != Kernel::ImplicitGemm
    {
        return None;
    }
    let weight = weight.to_contiguous();
    let parts: Vec<FlexTensor> = parts.iter().map(|p| p.to_contiguous()).collect();
    let xs: Vec<&[f32]> = parts.iter().map(data).collect();
    let problem = super::implicit_gemm::Problem {
        x: &xs,
        part_channels: &channels,
        n,
        cin,
        weight: data(&weight),
        cout,
        groups: 1,
        scale: fused.scale,
    };
    Some(implicit_forward(&problem, &g, fused))
}

/// The implicit-GEMM convolution of `problem` (whose `scale` is `fused.scale`) finished by
/// `fused`'s shift and ReLU.
fn implicit_forward(
    problem: &super::implicit_gemm::Problem,
    g: &Geometry,
    fused: &Fused,
) -> FlexTensor {
    let epilogue = super::implicit_gemm::Epilogue {
        shift: fused.shift,
        relu: fused.relu,
    };
    let out = super::implicit_gemm::conv_forward(problem, g, epilogue);
    tensor(out, [problem.n, problem.cout, g.ho, g.wo])
}

/// Per tile of output rows, `Y[Cout_g, T] = W[Cout_g, K] · col[K, T]` by gemm straight into
/// the NCHW output (flex converts to NHWC and back). `p.scale` must be `None` (scale the
/// weights first).
fn im2col_forward(p: &super::implicit_gemm::Problem, g: &Geometry) -> Vec<f32> {
    debug_assert!(p.scale.is_none() && p.x.len() == 1);
    let (xs, ws, n, cin, cout, groups) = (p.x[0], p.weight, p.n, p.cin, p.cout, p.groups);
    let cin_g = cin / groups;
    let cout_g = cout / groups;
    let k = cin_g * g.kh * g.kw;
    let plane_out = g.ho * g.wo;
    let len = n * cout * plane_out;
    // gemm overwrites (read_dst = false) every output: no zero-filling pass first.
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let tiling = g.tiling(k, n);
    let in_img = cin * g.h * g.w;
    let dst = SharedMut(out.as_mut_ptr());
    (0..tiling.jobs).into_par_iter().for_each_init(
        || vec![0.0f32; tiling.col_len],
        |col, job| {
            let (img, r0, r1) = tiling.tile(job);
            let t = (r1 - r0) * g.wo;
            let x_img = &xs[img * in_img..][..in_img];
            for_each_group(
                x_img,
                groups,
                cin_g,
                [r0, r1],
                g,
                col,
                |group, rhs, rhs_rs| {
                    let offset = (img * cout + group * cout_g) * plane_out + r0 * g.wo;
                    // SAFETY: the destination is rows [r0, r1) of channels group·cout_g.. of image
                    // img, which no other job writes; lhs is the group's cout_g × k block of the
                    // weights; rhs is k × t with row stride rhs_rs inside col or x_img.
                    unsafe {
                        gemm::gemm(
                            cout_g,
                            t,
                            k,
                            dst.at(offset),
                            1,
                            plane_out as isize,
                            false,
                            ws[group * cout_g * k..].as_ptr(),
                            1,
                            k as isize,
                            rhs,
                            1,
                            rhs_rs as isize,
                            0.0,
                            1.0,
                            false,
                            false,
                            false,
                            gemm::Parallelism::None,
                        );
                    }
                },
            );
        },
    );
    // SAFETY: the jobs' (image, row tile) pairs cover every image's rows, and each writes all
    // groups' channels of its rows.
    unsafe { out.set_len(len) };
    out
}

/// A raw output pointer shared by jobs that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub(super) struct SharedMut(pub(super) *mut f32);
// SAFETY: every use writes a region no other job touches (see the call sites).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer `offset` floats further (a method, so that closures capture the whole
    /// `Send` wrapper rather than its raw-pointer field).
    ///
    /// # Safety
    /// `offset` must stay inside the buffer.
    pub(super) unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller keeps offset inside the buffer.
        unsafe { self.0.add(offset) }
    }
}

/// Calls `f(group, matrix, stride)` with the im2col matrix (see [`col_matrix`]) of output rows
/// `[r0, r1)` of `x_img` for each group of `cin_g` input channels in turn.
#[allow(clippy::too_many_arguments)]
fn for_each_group(
    x_img: &[f32],
    groups: usize,
    cin_g: usize,
    [r0, r1]: [usize; 2],
    g: &Geometry,
    col: &mut [f32],
    mut f: impl FnMut(usize, *const f32, usize),
) {
    for group in 0..groups {
        let tile = Tile {
            c0: group * cin_g,
            cin_g,
            r0,
            r1,
        };
        let (matrix, stride) = col_matrix(x_img, &tile, g, col);
        f(group, matrix, stride);
    }
}

/// The im2col matrix (`cin_g·kh·kw` rows, `(r1 − r0)·wo` columns) of `tile`, as a pointer and
/// row stride: for a 1×1 convolution with stride 1 and no padding the input itself, otherwise
/// `col` filled by [`im2col`].
fn col_matrix(x_img: &[f32], tile: &Tile, g: &Geometry, col: &mut [f32]) -> (*const f32, usize) {
    if g.is_pointwise() {
        (
            x_img[tile.c0 * g.h * g.w + tile.r0 * g.w..].as_ptr(),
            g.h * g.w,
        )
    } else {
        im2col(x_img, tile, g, col);
        (col.as_ptr(), (tile.r1 - tile.r0) * g.wo)
    }
}

/// Weight gradient `dW[co, ci, i, j] = Σ_{n,y,x} dY[n, co, y, x] · X[n, ci, y·s + i·d − p, x·s + j·d − p]`
/// (per group), by im2col tiles and gemm, or directly for depthwise convolutions.
fn weight_grad(
    x: &FlexTensor,
    grad: &FlexTensor,
    weight_shape: &Shape,
    options: &ConvOptions<2>,
) -> FlexTensor {
    let x = x.to_contiguous();
    let grad = grad.to_contiguous();
    let [n, cin, h, w] = x.shape().dims();
    let [_, cout, ho, wo] = grad.shape().dims();
    let [_, cin_g, kh, kw] = weight_shape.dims();
    let geometry = Geometry::new([h, w], [kh, kw], options);
    debug_assert_eq!([geometry.ho, geometry.wo], [ho, wo]);
    let groups = options.groups;
    let cout_g = cout / groups;
    let (xs, dy) = (data(&x), data(&grad));
    let values = if cin_g == 1 && cout_g == 1 {
        depthwise_weight_grad(xs, dy, n, cout, &geometry)
    } else if super::weight_grad::suits(cin, cout, groups) {
        super::weight_grad::weight_grad(xs, dy, n, cin, cout, &geometry)
    } else {
        gemm_weight_grad(xs, dy, n, cin, cout, groups, &geometry)
    };
    tensor(values, [cout, cin_g, kh, kw])
}

/// Tiles of output rows over a batch (see [`Geometry::tiling`]).
struct Tiling {
    rows_per_tile: usize,
    tiles_per_image: usize,
    /// Tiles over the whole batch.
    jobs: usize,
    ho: usize,
    /// Floats of an im2col buffer (0 when the input is its own im2col matrix).
    col_len: usize,
}

impl Tiling {
    /// Image and output rows `[r0, r1)` of tile `job`.
    fn tile(&self, job: usize) -> (usize, usize, usize) {
        let (img, tile) = (job / self.tiles_per_image, job % self.tiles_per_image);
        let r0 = tile * self.rows_per_tile;
        (img, r0, (r0 + self.rows_per_tile).min(self.ho))
    }
}

/// Input channels `[c0, c0 + cin_g)` and output rows `[r0, r1)`: what one im2col matrix covers.
#[derive(Clone, Copy)]
struct Tile {
    c0: usize,
    cin_g: usize,
    r0: usize,
    r1: usize,
}

/// Sizes of one convolution.
pub(super) struct Geometry {
    pub h: usize,
    pub w: usize,
    pub ho: usize,
    pub wo: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
    pub dilation: [usize; 2],
}

impl Geometry {
    /// The geometry of a convolution of an `[h, w]` input with a `[kh, kw]` kernel.
    pub(super) fn new([h, w]: [usize; 2], [kh, kw]: [usize; 2], options: &ConvOptions<2>) -> Self {
        let pad = options.padding_begin();
        let out = |a: usize, size: usize, k: usize| {
            (size + 2 * pad[a]).saturating_sub(options.dilation[a] * (k - 1) + 1)
                / options.stride[a]
                + 1
        };
        Self {
            h,
            w,
            ho: out(0, h, kh),
            wo: out(1, w, kw),
            kh,
            kw,
            stride: options.stride,
            pad,
            dilation: options.dilation,
        }
    }

    /// A 1×1 convolution with stride 1 and no padding: its im2col matrix is the input.
    fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.pad == [0, 0]
            && self.ho == self.h
            && self.wo == self.w
    }

    /// The split of a batch of `n` images into tiles of output rows, for im2col matrices of
    /// `k` rows: tiles of at most [`COL_TILE_FLOATS`], and at least [`MIN_JOBS`] tiles over the
    /// batch when the image allows it. Depends on the shapes only, never on the thread count,
    /// so that results are the same on every machine.
    fn tiling(&self, k: usize, n: usize) -> Tiling {
        let by_size = COL_TILE_FLOATS / (k * self.wo).max(1);
        let by_jobs = (n * self.ho).div_ceil(MIN_JOBS);
        let rows_per_tile = by_size.min(by_jobs).clamp(1, self.ho.max(1));
        Tiling {
            rows_per_tile,
            tiles_per_image: self.ho.div_ceil(rows_per_tile),
            jobs: n * self.ho.div_ceil(rows_per_tile),
            ho: self.ho,
            col_len: if self.is_pointwise() {
                0
            } else {
                k * rows_per_tile * self.wo
            },
        }
    }

    /// Input coordinate of output coordinate `o` for kernel tap `t` along axis `a`, if inside.
    pub(super) fn input(&self, a: usize, o: usize, t: usize) -> Option<usize> {
        let size = if a == 0 { self.h } else { self.w };
        (o * self.stride[a] + t * self.dilation[a])
            .checked_sub(self.pad[a])
            .filter(|&i| i < size)
    }

    /// Output columns `[lo, hi)` whose input column for kernel column `j` is inside the image.
    pub(super) fn valid_cols(&self, j: usize) -> (usize, usize) {
        let (s, off) = (self.stride[1] as isize, (j * self.dilation[1]) as isize);
        let off = off - self.pad[1] as isize;
        // ix = ox·s + off ∈ [0, w)
        let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
        let hi = ((self.w as isize - 1 - off).div_euclid(s) + 1).clamp(0, self.wo as isize);
        let lo = lo.min(hi);
        (lo as usize, hi as usize)
    }
}

/// Fills `col[kk · t + (oy − r0) · wo + ox]` for `tile` of `x_img`; `t = (r1 − r0) · wo`.
fn im2col(x_img: &[f32], tile: &Tile, g: &Geometry, col: &mut [f32]) {
    let Tile { c0, cin_g, r0, r1 } = *tile;
    let t = (r1 - r0) * g.wo;
    let plane = g.h * g.w;
    for ci in 0..cin_g {
        let x_plane = &x_img[(c0 + ci) * plane..][..plane];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let kk = (ci * g.kh + i) * g.kw + j;
                let row = &mut col[kk * t..][..t];
                let (lo, hi) = g.valid_cols(j);
                for oy in r0..r1 {
                    let out = &mut row[(oy - r0) * g.wo..][..g.wo];
                    let Some(iy) = g.input(0, oy, i) else {
                        out.fill(0.0);
                        continue;
                    };
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    if lo < hi {
                        let ix0 = lo * g.stride[1] + j * g.dilation[1] - g.pad[1];
                        let src = &x_plane[iy * g.w..][..g.w];
                        if g.stride[1] == 1 {
                            out[lo..hi].copy_from_slice(&src[ix0..ix0 + hi - lo]);
                        } else {
                            for (k, o) in out[lo..hi].iter_mut().enumerate() {
                                *o = src[ix0 + k * g.stride[1]];
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn gemm_weight_grad(
    xs: &[f32],
    dy: &[f32],
    n: usize,
    cin: usize,
    cout: usize,
    groups: usize,
    g: &Geometry,
) -> Vec<f32> {
    let (cin_g, cout_g) = (cin / groups, cout / groups);
    let k = cin_g * g.kh * g.kw;
    let tiling = g.tiling(k, n);
    let len = cout * k;
    let (in_img, out_img) = (cin * g.h * g.w, cout * g.ho * g.wo);
    let jobs = tiling.jobs;
    let parts = jobs.min(WEIGHT_GRAD_PARTIALS);
    let partials: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let mut acc = vec![0.0f32; len];
            let mut col = vec![0.0f32; tiling.col_len];
            for job in part * jobs / parts..(part + 1) * jobs / parts {
                let (img, r0, r1) = tiling.tile(job);
                let t = (r1 - r0) * g.wo;
                let x_img = &xs[img * in_img..][..in_img];
                for_each_group(
                    x_img,
                    groups,
                    cin_g,
                    [r0, r1],
                    g,
                    &mut col,
                    |group, rhs, rhs_cs| {
                        let lhs = &dy[img * out_img + (group * cout_g * g.ho + r0) * g.wo..];
                        let dst = &mut acc[group * cout_g * k..][..cout_g * k];
                        // SAFETY: dst is cout_g × k with row stride k; lhs is cout_g × t with row
                        // stride ho·wo inside dy (the last row ends at most at the image's end);
                        // rhs (colᵀ) is t × k with column stride rhs_cs inside col or x_img.
                        unsafe {
                            gemm::gemm(
                                cout_g,
                                k,
                                t,
                                dst.as_mut_ptr(),
                                1,
                                k as isize,
                                true,
                                lhs.as_ptr(),
                                1,
                                (g.ho * g.wo) as isize,
                                rhs,
                                rhs_cs as isize,
                                1,
                                1.0,
                                1.0,
                                false,
                                false,
                                false,
                                gemm::Parallelism::None,
                            );
                        }
                    },
                );
            }
            acc
        })
        .collect();
    sum_in_order(partials, len)
}

/// The element-wise sum of `partials` (each `len` floats), added in their order so that the
/// result does not depend on how threads ran them; zeros when there are none.
pub(super) fn sum_in_order(partials: Vec<Vec<f32>>, len: usize) -> Vec<f32> {
    let mut partials = partials.into_iter();
    let mut total = partials.next().unwrap_or_else(|| vec![0.0f32; len]);
    for p in partials {
        total.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
    }
    total
}

fn depthwise_weight_grad(xs: &[f32], dy: &[f32], n: usize, c: usize, g: &Geometry) -> Vec<f32> {
    let (plane_in, plane_out) = (g.h * g.w, g.ho * g.wo);
    (0..c)
        .into_par_iter()
        .flat_map_iter(|ch| {
            let mut taps = vec![0.0f32; g.kh * g.kw];
            for img in 0..n {
                let x_plane = &xs[(img * c + ch) * plane_in..][..plane_in];
                let dy_plane = &dy[(img * c + ch) * plane_out..][..plane_out];
                for i in 0..g.kh {
                    for j in 0..g.kw {
                        let (lo, hi) = g.valid_cols(j);
                        if lo >= hi {
                            continue;
                        }
                        let ix0 = lo * g.stride[1] + j * g.dilation[1] - g.pad[1];
                        let mut total = 0.0f32;
                        for oy in 0..g.ho {
                            let Some(iy) = g.input(0, oy, i) else {
                                continue;
                            };
                            let d = &dy_plane[oy * g.wo + lo..oy * g.wo + hi];
                            let src = &x_plane[iy * g.w..][..g.w];
                            total += if g.stride[1] == 1 {
                                dot(d, &src[ix0..ix0 + hi - lo])
                            } else {
                                d.iter()
                                    .enumerate()
                                    .map(|(k, v)| v * src[ix0 + k * g.stride[1]])
                                    .sum()
                            };
                        }
                        taps[i * g.kw + j] += total;
                    }
                }
            }
            taps
        })
        .collect()
}

/// Dot product with eight partial sums, so that the compiler vectorises it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Sum with eight partial sums (vectorised).
fn sum(a: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for x in chunks {
        for l in 0..8 {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}
