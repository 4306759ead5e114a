//! 2-D convolution as a burn operation on the `flex` CPU backend, with the kernels of
//! `ds2f_kernels::conv`:
//!
//! - forward: the implicit GEMM (AVX-512 or AVX2, ≥ 64² output pixels) or im2col + `gemm`,
//!   finished by a per-channel scale, shift and ReLU when asked (a bias, a folded batch norm);
//!   depthwise convolutions keep flex's direct kernel;
//! - weight gradient: the tap-by-tap kernel when the channel counts fill its tiles, else
//!   im2col + `gemm`; depthwise convolutions a direct kernel;
//! - input gradient: for stride 1, the forward convolution of `dY` with the flipped,
//!   transposed weights; other strides keep burn's transposed convolution;
//! - bias gradient: a per-channel sum.
//!
//! See the module docs of [`crate::ops`] for the routing and `ds2f_kernels` for why.
use burn::backend::TensorMetadata;
use burn::backend::ops::ModuleOps;
use burn::backend::{Autodiff, Flex};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Shape, Tensor};
use burn_autodiff::NodeId;
use burn_autodiff::checkpoint::base::Checkpointer;
use burn_autodiff::checkpoint::strategy::NoCheckpointing;
use burn_autodiff::grads::Gradients;
use burn_autodiff::ops::{Backward, Ops, OpsKind};
use burn_flex::FlexTensor;
use ds2f_kernels::conv::{self as kernels, Epilogue, Geometry, Kernel, Problem};

use super::{Route, f32_data as data, f32_tensor as tensor};

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

/// [`burn::tensor::module::conv2d`], with our kernels on `flex` in f32 (training and
/// inference) and libtorch's differentiation on the libtorch device; burn's operation
/// everywhere else.
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
    // Parameters on another device context than the input (a plain input into an autodiff
    // module) go to burn, which converts.
    let route = Route::of(&x).and(&weight).and_some(bias.as_ref());
    match route {
        _ if options.is_asymmetric() => {}
        Route::Flex => {
            let (x, weight) = plain_primitives(x, weight);
            let bias = bias.map(|b| {
                b.try_into_primitive::<Flex>()
                    .expect("routed: the bias lives on the input's device")
            });
            return Tensor::from_primitive::<Flex>(forward(x, weight, bias, &options));
        }
        Route::FlexAutodiff => {
            let x = x
                .try_into_primitive::<Autodiff<Flex>>()
                .expect("routed: an autodiff flex tensor");
            let weight = weight
                .try_into_primitive::<Autodiff<Flex>>()
                .expect("routed: the weight lives on the input's device");
            let bias = bias.map(|b| {
                b.try_into_primitive::<Autodiff<Flex>>()
                    .expect("routed: the bias lives on the input's device")
            });
            return Tensor::from_primitive::<Autodiff<Flex>>(conv2d_autodiff(
                x, weight, bias, options,
            ));
        }
        #[cfg(feature = "tch")]
        Route::LibTorchAutodiff => return super::libtorch::conv2d(x, weight, bias, options),
        _ => {}
    }
    let out = burn::tensor::module::conv2d(x, weight, bias, options);
    #[cfg(feature = "tch")]
    let out = super::libtorch::few_channels_dense(out);
    out
}

/// The `flex` primitives of an input and weight routed [`Route::Flex`].
pub(super) fn plain_primitives(x: Tensor<4>, weight: Tensor<4>) -> (FlexTensor, FlexTensor) {
    let x = x
        .try_into_primitive::<Flex>()
        .expect("routed: a flex tensor");
    let weight = weight
        .try_into_primitive::<Flex>()
        .expect("routed: the weight lives on the input's device");
    (x, weight)
}

/// The kernels' geometry of a convolution of an `[h, w]` input with a `[kh, kw]` kernel
/// (symmetric padding).
pub(super) fn geometry(hw: [usize; 2], k: [usize; 2], options: &ConvOptions<2>) -> Geometry {
    Geometry::new(
        hw,
        k,
        options.stride,
        options.padding_begin(),
        options.dilation,
    )
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
    tensor(kernels::bias_grad(data(&grad), n, c, h * w), [c])
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
    let weight = weight.to_contiguous();
    let flipped = kernels::flip_weights(data(&weight), cout, cin_g, kh * kw, groups);
    let flipped = tensor(flipped, [cin, cout / groups, kh, kw]);
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
    let epilogue = Epilogue {
        scale: None,
        shift: bias.as_ref().map(data),
        relu: false,
    };
    forward_with(x, weight, options, &epilogue, Kernel::Auto)
}

/// Forward convolution followed by `epilogue`, with `kernel`; depthwise convolutions keep
/// flex's direct kernel whichever is asked.
pub(super) fn forward_with(
    x: FlexTensor,
    weight: FlexTensor,
    options: &ConvOptions<2>,
    epilogue: &Epilogue,
    kernel: Kernel,
) -> FlexTensor {
    let [cout, cin_g, kh, kw] = weight.shape().dims();
    let groups = options.groups;
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let [n, cin, h, w] = x.shape().dims();
    let g = geometry([h, w], [kh, kw], options);
    if cin_g == 1 && cout / groups == 1 {
        // Depthwise: flex's direct kernel on the scaled weights, then the rest of the epilogue.
        let weight = match epilogue.scale {
            Some(scale) => tensor(
                kernels::scale_weights(data(&weight), scale),
                [cout, cin_g, kh, kw],
            ),
            None => weight,
        };
        let out = Flex::conv2d(x, weight, None, options.clone()).to_contiguous();
        let mut out = data(&out).to_vec();
        kernels::finish(&mut out, cout, g.ho * g.wo, epilogue);
        return tensor(out, [n, cout, g.ho, g.wo]);
    }
    let xs = [data(&x)];
    let problem = Problem {
        x: &xs,
        part_channels: &[cin],
        n,
        cin,
        weight: data(&weight),
        cout,
        groups,
    };
    let out = kernels::forward(&problem, &g, epilogue, kernel);
    tensor(out, [n, cout, g.ho, g.wo])
}

/// Whether [`forward_parts`] runs the convolution of the channel concatenation of `parts`
/// without building it: the implicit GEMM runs it (AVX-512 or AVX2, ungrouped, large enough
/// output) and the parts agree in batch and size.
pub(super) fn parts_fit(
    parts: &[FlexTensor],
    weight: &FlexTensor,
    options: &ConvOptions<2>,
) -> bool {
    let [_, cin, kh, kw] = weight.shape().dims();
    let Some(first) = parts.first() else {
        return false;
    };
    let [n, _, h, w] = first.shape().dims();
    let g = geometry([h, w], [kh, kw], options);
    let shapes_fit = parts.iter().all(|p| {
        let [pn, _, ph, pw] = p.shape().dims();
        [pn, ph, pw] == [n, h, w]
    });
    let channels: usize = parts.iter().map(|p| p.shape().dims::<4>()[1]).sum();
    options.groups == 1
        && shapes_fit
        && channels == cin
        && Kernel::Auto.resolve(n, &g) == Kernel::ImplicitGemm
}

/// [`forward_with`] of the channel concatenation of `parts` (one batch), without building
/// it, by the implicit GEMM (callers check [`parts_fit`]).
pub(super) fn forward_parts(
    parts: &[FlexTensor],
    weight: FlexTensor,
    options: &ConvOptions<2>,
    epilogue: &Epilogue,
) -> FlexTensor {
    let [cout, cin, kh, kw] = weight.shape().dims();
    let [n, _, h, w] = parts[0].shape().dims();
    let g = geometry([h, w], [kh, kw], options);
    let channels: Vec<usize> = parts.iter().map(|p| p.shape().dims::<4>()[1]).collect();
    let weight = weight.to_contiguous();
    let parts: Vec<FlexTensor> = parts.iter().map(|p| p.to_contiguous()).collect();
    let xs: Vec<&[f32]> = parts.iter().map(data).collect();
    let problem = Problem {
        x: &xs,
        part_channels: &channels,
        n,
        cin,
        weight: data(&weight),
        cout,
        groups: 1,
    };
    let out = kernels::forward(&problem, &g, epilogue, Kernel::ImplicitGemm);
    tensor(out, [n, cout, g.ho, g.wo])
}

/// Weight gradient `dW[co, ci, i, j] = Σ_{n,y,x} dY[n, co, y, x] · X[n, ci, y·s + i·d − p, x·s + j·d − p]`
/// (per group), by the fastest kernel for this CPU and shape.
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
    let g = geometry([h, w], [kh, kw], options);
    debug_assert_eq!([g.ho, g.wo], [ho, wo]);
    let values = kernels::weight_gradient(data(&x), data(&grad), n, cin, cout, options.groups, &g);
    tensor(values, [cout, cin_g, kh, kw])
}
