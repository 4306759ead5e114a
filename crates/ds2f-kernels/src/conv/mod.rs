//! 2-D convolution kernels on NCHW `f32` slices:
//!
//! - forward: the implicit GEMM of [`implicit_gemm`] (AVX-512 or AVX2, ≥ 64² output pixels),
//!   else for each tile of output rows an im2col tile of the input (at most
//!   [`im2col::COL_TILE_FLOATS`] floats) and one `gemm` `Y[Cout, T] = W[Cout, K] · col[K, T]`
//!   straight into the NCHW output ([`im2col`]); either finished by one [`Epilogue`]
//!   (per-channel scale, shift, ReLU: a bias, a folded batch norm);
//! - weight gradient: the tap-by-tap kernel of [`weight_grad`] when the channel counts fill its
//!   tiles, else im2col tiles and `dW[Cout, K] += dY[Cout, T] · colᵀ[T, K]`
//!   ([`im2col::gemm_weight_grad`]); depthwise convolutions a direct kernel;
//! - input gradient: for stride 1, the forward convolution of `dY` with the weights of
//!   [`flip_weights`]; bias gradient: [`bias_grad`].
//!
//! Every result depends only on the shapes, never on the thread count.
pub mod im2col;
pub mod implicit_gemm;
pub mod weight_grad;

use crate::Isa;
use rayon::prelude::*;

/// What follows a convolution's sum for each output channel `co`:
/// `y · scale[co] + shift[co]`, then ReLU if asked: a bias, or an inference-mode batch norm
/// folded in, and its activation. (The implicit GEMM folds `scale` into the weights while
/// packing them and applies the rest as it stores each finished tile.)
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// Multiplies output channel `co` (folded into the weights).
    pub scale: Option<&'a [f32]>,
    /// Added per output channel: a conv bias, or a folded batch norm's shift.
    pub shift: Option<&'a [f32]>,
    /// Clamp at zero afterwards.
    pub relu: bool,
}

impl Epilogue<'_> {
    /// Whether it changes anything after the sum (besides `scale`).
    pub fn finishes(&self) -> bool {
        self.shift.is_some() || self.relu
    }
}

/// The input of one convolution: a contiguous NCHW batch and its weights.
pub struct Problem<'a> {
    /// `[n, cin, h, w]` values, as one or more contiguous parts `[n, c_part, h, w]` that are
    /// concatenated along the channels (a decoder's `cat([up, skip])` is never built).
    pub x: &'a [&'a [f32]],
    /// Channels of each part of `x` (summing to `cin`).
    pub part_channels: &'a [usize],
    /// Images.
    pub n: usize,
    /// Input channels.
    pub cin: usize,
    /// `[cout, cin / groups, kh, kw]` values.
    pub weight: &'a [f32],
    /// Output channels.
    pub cout: usize,
    /// Groups.
    pub groups: usize,
}

/// Sizes of one convolution.
#[derive(Clone, Debug)]
pub struct Geometry {
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output height.
    pub ho: usize,
    /// Output width.
    pub wo: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (rows, columns).
    pub stride: [usize; 2],
    /// Padding before the first row and column (symmetric: the same after the last).
    pub pad: [usize; 2],
    /// Dilation (rows, columns).
    pub dilation: [usize; 2],
}

impl Geometry {
    /// The geometry of a convolution of an `[h, w]` input with a `[kh, kw]` kernel.
    pub fn new(
        [h, w]: [usize; 2],
        [kh, kw]: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 2],
        dilation: [usize; 2],
    ) -> Self {
        let out = |a: usize, size: usize, k: usize| {
            (size + 2 * pad[a]).saturating_sub(dilation[a] * (k - 1) + 1) / stride[a] + 1
        };
        Self {
            h,
            w,
            ho: out(0, h, kh),
            wo: out(1, w, kw),
            kh,
            kw,
            stride,
            pad,
            dilation,
        }
    }

    /// A 1×1 convolution with stride 1 and no padding: its im2col matrix is the input.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.pad == [0, 0]
            && self.ho == self.h
            && self.wo == self.w
    }

    /// Input coordinate of output coordinate `o` for kernel tap `t` along axis `a`, if inside.
    pub fn input(&self, a: usize, o: usize, t: usize) -> Option<usize> {
        let size = if a == 0 { self.h } else { self.w };
        (o * self.stride[a] + t * self.dilation[a])
            .checked_sub(self.pad[a])
            .filter(|&i| i < size)
    }

    /// Output columns `[lo, hi)` whose input column for kernel column `j` is inside the image.
    pub fn valid_cols(&self, j: usize) -> (usize, usize) {
        let (s, off) = (self.stride[1] as isize, (j * self.dilation[1]) as isize);
        let off = off - self.pad[1] as isize;
        // ix = ox·s + off ∈ [0, w)
        let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
        let hi = ((self.w as isize - 1 - off).div_euclid(s) + 1).clamp(0, self.wo as isize);
        let lo = lo.min(hi);
        (lo as usize, hi as usize)
    }
}

/// The forward kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// The faster of the two for this CPU and shape.
    Auto,
    /// Patches packed from the image (or rows read in place) into the micro-kernel of
    /// [`Isa::best`], epilogue fused ([`implicit_gemm`]).
    ImplicitGemm,
    /// im2col tiles and the `gemm` crate, then one pass for the epilogue: every CPU.
    Im2colGemm,
}

impl Kernel {
    /// The kernel [`Kernel::Auto`] stands for on `n` images of geometry `g`: the implicit GEMM
    /// where this CPU has a SIMD instruction set and the output is large enough.
    pub fn resolve(self, n: usize, g: &Geometry) -> Self {
        match self {
            Kernel::Auto if Isa::best().is_simd() && implicit_gemm::suits(n, g) => {
                Kernel::ImplicitGemm
            }
            Kernel::Auto => Kernel::Im2colGemm,
            chosen => chosen,
        }
    }
}

/// The convolution `problem` with geometry `g` finished by `epilogue`, with `kernel`:
/// `[n, cout, ho, wo]`. Grouped and ungrouped; depthwise convolutions are the caller's (flex
/// has a direct kernel for them: see [`scale_weights`] and [`finish`]). A problem of several
/// input parts needs the implicit GEMM (see [`Kernel::resolve`]).
pub fn forward(problem: &Problem, g: &Geometry, epilogue: &Epilogue, kernel: Kernel) -> Vec<f32> {
    if kernel.resolve(problem.n, g) == Kernel::ImplicitGemm {
        return implicit_gemm::conv_forward(problem, g, *epilogue);
    }
    assert_eq!(problem.x.len(), 1, "im2col + gemm takes one input part");
    let scaled;
    let weight = match epilogue.scale {
        Some(scale) => {
            scaled = scale_weights(problem.weight, scale);
            &scaled[..]
        }
        None => problem.weight,
    };
    let unscaled = Problem { weight, ..*problem };
    let mut out = im2col::forward(&unscaled, g);
    finish(&mut out, problem.cout, g.ho * g.wo, epilogue);
    out
}

/// The weights `[cout, …]` with output channel `co`'s multiplied by `scale[co]`.
pub fn scale_weights(weight: &[f32], scale: &[f32]) -> Vec<f32> {
    // One output channel's weights at a time (an index division per weight cost 5 % of an
    // inference).
    let per_out = weight.len() / scale.len().max(1);
    let mut scaled = weight.to_vec();
    scaled
        .par_chunks_mut(per_out.max(1))
        .zip(scale)
        .for_each(|(row, &s)| row.iter_mut().for_each(|v| *v *= s));
    scaled
}

/// Applies `epilogue`'s shift and ReLU (not its scale) in place to NCHW planes of `plane`
/// floats with `cout` channels.
pub fn finish(out: &mut [f32], cout: usize, plane: usize, epilogue: &Epilogue) {
    if !epilogue.finishes() {
        return;
    }
    out.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(i, plane)| {
            let shift = epilogue.shift.map_or(0.0, |s| s[i % cout]);
            for v in plane.iter_mut() {
                *v += shift;
                if epilogue.relu && *v < 0.0 {
                    *v = 0.0;
                }
            }
        });
}

/// The weight gradient `dW` (`[cout, cin / groups, kh, kw]`) of the NCHW input `x`
/// (`[n, cin, h, w]`) and output gradient `dy` (`[n, cout, ho, wo]`): the direct depthwise
/// kernel, the tap-by-tap kernel of [`weight_grad`] where it suits, else im2col + `gemm`.
pub fn weight_gradient(
    x: &[f32],
    dy: &[f32],
    n: usize,
    cin: usize,
    cout: usize,
    groups: usize,
    g: &Geometry,
) -> Vec<f32> {
    let (cin_g, cout_g) = (cin / groups, cout / groups);
    if cin_g == 1 && cout_g == 1 {
        im2col::depthwise_weight_grad(x, dy, n, cout, g)
    } else if weight_grad::suits(cin, cout, groups) {
        weight_grad::weight_grad(x, dy, n, cin, cout, g)
    } else {
        im2col::gemm_weight_grad(x, dy, n, cin, cout, groups, g)
    }
}

/// `dL/db[c] = Σ_{n,y,x} dY[n, c, y, x]` of a contiguous `[n, c, plane]` gradient.
pub fn bias_grad(dy: &[f32], n: usize, c: usize, plane: usize) -> Vec<f32> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            (0..n)
                .map(|i| im2col::sum(&dy[(i * c + ch) * plane..][..plane]))
                .sum()
        })
        .collect()
}

/// The weights of the input gradient as a forward convolution (stride 1):
/// `W'[g·Cin_g + ci, co] = flip(W[g·Cout_g + co, ci])`, `[cin, cout / groups, kh, kw]` from
/// `[cout, cin / groups, kh, kw]`.
pub fn flip_weights(w: &[f32], cout: usize, cin_g: usize, taps: usize, groups: usize) -> Vec<f32> {
    let cout_g = cout / groups;
    let k = taps;
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
    flipped
}
