//! Forward convolution as an implicit GEMM with an AVX-512 micro-kernel.
//!
//! `Y[co, q] = Σ_k W[co, k] · X̃[k, q]` per image and group, where `q` runs over output pixels and
//! `k` over `(input channel, kernel row, kernel column)`. Unlike im2col + `gemm` (the portable
//! path in [`super::conv`]), the input patches `X̃` are packed straight from the image into the
//! micro-kernel's panel layout, so every input value is copied once instead of twice; the
//! weights are packed once per call. The micro-kernel keeps an `MR × NR` block of outputs
//! (8 output channels × 48 pixels = 24 AVX-512 registers) and finishes each output in place:
//! optional per-channel shift (a bias, or a batch norm folded into the weights) and ReLU, so
//! that inference needs no separate bias, batch-norm or ReLU pass over the feature map.
//!
//! Why hand-written: the `gemm` crate packs both operands on every call and cannot take a
//! packed operand or an epilogue; no crate offers convolution kernels for burn's tensors. The
//! result of every output depends only on the weights' `k` order and [`KC`] blocking, never on
//! how the work is split into jobs, so it is the same for every thread count.
use super::conv::{Geometry, SharedMut};
use rayon::prelude::*;

/// Output channels per micro-tile.
const MR: usize = 8;
/// Output pixels per micro-tile (three 16-float vectors).
const NR: usize = 48;
/// Deepest reduction block: a weight micro-panel (`MR × KC` floats, 8 KiB) stays in L1.
const KC: usize = 256;
/// Largest packed patch block of one job, in floats (1 MiB): stays in L2 while every weight
/// micro-panel passes over it.
const PATCH_BLOCK_FLOATS: usize = 1 << 18;
/// Jobs a convolution is split into at least (when it has that many micro-tiles).
const MIN_JOBS: usize = 8;

/// Whether this CPU runs the kernel (checked at run time; std caches the answer).
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Output pixels over the batch below which [`conv_forward`] is slower than im2col + `gemm`
/// (measured: 64²-pixel planes break even; at 32² and 16² with 512–1024 channels the patches,
/// re-packed by every job that splits the output channels, cost more than the kernel saves).
const MIN_PIXELS: usize = 64 * 64;

/// Whether [`conv_forward`] is the faster kernel for `n` images of this geometry.
pub(super) fn suits(n: usize, g: &Geometry) -> bool {
    n * g.ho * g.wo >= MIN_PIXELS
}

/// What is applied to each finished output of channel `co`: `max(y·1 + shift[co], 0)` with
/// the parts that are present. (A per-channel scale is folded into the weights instead.)
#[derive(Clone, Copy, Default)]
pub(super) struct Epilogue<'a> {
    /// Added per output channel: a conv bias, or a folded batch norm's shift.
    pub shift: Option<&'a [f32]>,
    /// Clamp at zero afterwards.
    pub relu: bool,
}

/// The input of one convolution: a contiguous NCHW batch and its weights.
pub(super) struct Problem<'a> {
    /// `[n, cin, h, w]` values, as one or more contiguous parts `[n, c_part, h, w]` that are
    /// concatenated along the channels (a decoder's `cat([up, skip])` is never built).
    pub x: &'a [&'a [f32]],
    /// Channels of each part of `x` (summing to `cin`).
    pub part_channels: &'a [usize],
    pub n: usize,
    pub cin: usize,
    /// `[cout, cin / groups, kh, kw]` values.
    pub weight: &'a [f32],
    pub cout: usize,
    pub groups: usize,
    /// Per-output-channel factor the weights are multiplied by while packing (folded BN).
    pub scale: Option<&'a [f32]>,
}

/// The convolution `problem` with `geometry`, finished by `epilogue`: `[n, cout, ho, wo]`.
///
/// # Panics
/// If [`available`] is false.
pub(super) fn conv_forward(problem: &Problem, g: &Geometry, epilogue: Epilogue) -> Vec<f32> {
    assert!(available(), "the implicit-GEMM kernel needs AVX-512");
    let Problem {
        x,
        n,
        cin,
        cout,
        groups,
        ..
    } = *problem;
    let (cin_g, cout_g) = (cin / groups, cout / groups);
    let k = cin_g * g.kh * g.kw;
    let blocks = KBlocks::new(k);
    let packed = pack_weights(problem, g, &blocks);
    let m_panels = cout_g.div_ceil(MR);
    let plane = g.ho * g.wo;
    let split = Split::new(n, plane, m_panels * groups, blocks.size);
    let len = n * cout * plane;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let ctx = Blocks {
        packed: &packed,
        blocks: &blocks,
        m_panels,
        cout,
        cout_g,
        k,
        plane,
        dst: SharedMut(out.as_mut_ptr()),
        epilogue,
    };
    let hw = g.h * g.w;
    debug_assert_eq!(problem.part_channels.iter().sum::<usize>(), cin);
    let patch_len = split.panels * blocks.size * NR;
    (0..split.jobs()).into_par_iter().for_each_init(
        || vec![0.0f32; patch_len],
        |patches, job| {
            let (img, q0, q1, m0, m1) = split.job(job);
            let x_img: Vec<&[f32]> = x
                .iter()
                .zip(problem.part_channels)
                .map(|(part, &c)| &part[img * c * hw..][..c * hw])
                .collect();
            let x_img = Image {
                parts: &x_img,
                channels: problem.part_channels,
                plane: hw,
            };
            // m indexes (group, micro-panel) pairs, so that grouped convolutions split too.
            let mut m = m0;
            while m < m1 {
                let group = m / m_panels;
                let end = m1.min((group + 1) * m_panels);
                let (p0, p1) = (m - group * m_panels, end - group * m_panels);
                for b in 0..blocks.count {
                    let (k0, k1) = blocks.range(b);
                    pack_patches(&x_img, group * cin_g, g, q0, q1, k0, k1, patches);
                    ctx.run(img, group, p0, p1, q0, q1, b, patches);
                }
                m = end;
            }
        },
    );
    // SAFETY: the jobs wrote every output: each (image, channel, pixel) lies in exactly one
    // job's pixel range and micro-panel range, whose first reduction block stored it.
    unsafe { out.set_len(len) };
    out
}

/// What the kernel calls of one convolution share.
struct Blocks<'a> {
    packed: &'a [f32],
    blocks: &'a KBlocks,
    m_panels: usize,
    cout: usize,
    cout_g: usize,
    k: usize,
    plane: usize,
    dst: SharedMut,
    epilogue: Epilogue<'a>,
}

impl Blocks<'_> {
    /// The kernel calls of reduction block `b` for micro-panels `[p0, p1)` of `group` over
    /// pixels `[q0, q1)` of image `img`, whose patches `patches` holds.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        img: usize,
        group: usize,
        p0: usize,
        p1: usize,
        q0: usize,
        q1: usize,
        b: usize,
        patches: &[f32],
    ) {
        let (k0, k1) = self.blocks.range(b);
        let kc = k1 - k0;
        let last = b + 1 == self.blocks.count;
        let (m_panels, cout_g) = (self.m_panels, self.cout_g);
        for panel in p0..p1 {
            let co0 = panel * MR;
            let rows = MR.min(cout_g - co0);
            let a = &self.packed
                [group * m_panels * MR * self.k + m_panels * MR * k0 + panel * MR * kc..];
            let shift = self.epilogue.shift.map(|s| &s[group * cout_g + co0..]);
            let mut q = q0;
            while q < q1 {
                let cols = NR.min(q1 - q);
                let pp = (q - q0) / NR;
                let c_offset = (img * self.cout + group * cout_g + co0) * self.plane + q;
                // SAFETY: `a` holds MR × kc packed weights and `patches` kc × NR floats at
                // micro-tile pp; the destination rows co0..co0+rows, columns q..q+cols of
                // this image's plane are written by this call alone (calls split (image,
                // pixels, micro-panels) disjointly), and were written by block 0 before later
                // blocks read them.
                unsafe {
                    micro_kernel(
                        kc,
                        a.as_ptr(),
                        patches[pp * kc * NR..].as_ptr(),
                        self.dst.at(c_offset),
                        self.plane,
                        rows,
                        cols,
                        b == 0,
                        if last {
                            Some((shift, self.epilogue.relu))
                        } else {
                            None
                        },
                    );
                }
                q += cols;
            }
        }
    }
}

/// The reduction `0..k` split into `count` nearly equal blocks of at most [`KC`].
struct KBlocks {
    count: usize,
    /// Length of every block but possibly the last.
    size: usize,
    k: usize,
}

impl KBlocks {
    fn new(k: usize) -> Self {
        let count = k.div_ceil(KC).max(1);
        Self {
            count,
            size: k.div_ceil(count),
            k,
        }
    }

    fn range(&self, b: usize) -> (usize, usize) {
        (b * self.size, ((b + 1) * self.size).min(self.k))
    }
}

/// The split of a convolution into jobs of (image, pixel range, micro-panel range).
struct Split {
    n: usize,
    plane: usize,
    /// Pixel micro-tiles (of NR) per job.
    panels: usize,
    /// Pixel chunks per image.
    chunks: usize,
    /// Micro-panel ranges per pixel chunk, and micro-panels in all (over the groups).
    m_splits: usize,
    m_total: usize,
}

impl Split {
    /// Pixel chunks as large as the patch block allows (each weight micro-panel then passes
    /// over as many pixels as possible: small images with many channels are bound by reading
    /// the weights), the micro-panels split to make up [`MIN_JOBS`], and the pixels split
    /// finer only when the micro-panels cannot.
    fn new(n: usize, plane: usize, m_total: usize, kc: usize) -> Self {
        let per_image = plane.div_ceil(NR).max(1);
        let by_size = (PATCH_BLOCK_FLOATS / (kc * NR)).max(1);
        let mut panels = by_size.min(per_image);
        let m_total = m_total.max(1);
        let m_splits = MIN_JOBS
            .div_ceil(n * per_image.div_ceil(panels))
            .clamp(1, m_total);
        let pixel_jobs = MIN_JOBS.div_ceil(m_splits);
        if n * per_image.div_ceil(panels) < pixel_jobs {
            let chunks_per_image = pixel_jobs.div_ceil(n);
            panels = per_image.div_ceil(chunks_per_image).max(1);
        }
        Self {
            n,
            plane,
            panels,
            chunks: per_image.div_ceil(panels),
            m_splits,
            m_total,
        }
    }

    fn jobs(&self) -> usize {
        self.n * self.chunks * self.m_splits
    }

    /// Image, pixels `[q0, q1)` and micro-panels `[m0, m1)` of `job`.
    fn job(&self, job: usize) -> (usize, usize, usize, usize, usize) {
        let m_part = job % self.m_splits;
        let pixel_job = job / self.m_splits;
        let (img, chunk) = (pixel_job / self.chunks, pixel_job % self.chunks);
        let q0 = chunk * self.panels * NR;
        let q1 = (q0 + self.panels * NR).min(self.plane);
        let m0 = m_part * self.m_total / self.m_splits;
        let m1 = (m_part + 1) * self.m_total / self.m_splits;
        (img, q0, q1, m0, m1)
    }
}

/// Weights in micro-panel order: per group, per reduction block, per micro-panel of MR output
/// channels, `kc` steps of MR values (zero past the last channel), times `scale[co]`.
fn pack_weights(p: &Problem, g: &Geometry, blocks: &KBlocks) -> Vec<f32> {
    let (cout_g, k) = (p.cout / p.groups, p.weight.len() / p.cout);
    debug_assert_eq!(k, p.cin / p.groups * g.kh * g.kw);
    let m_panels = cout_g.div_ceil(MR);
    let mut packed = vec![0.0f32; p.groups * m_panels * MR * k];
    // One contiguous region per (group, block, micro-panel), in order: packed in parallel
    // (the weights of the deepest layers are tens of MB).
    let mut regions = Vec::with_capacity(p.groups * blocks.count * m_panels);
    let mut rest = packed.as_mut_slice();
    for group in 0..p.groups {
        for b in 0..blocks.count {
            let (k0, k1) = blocks.range(b);
            for panel in 0..m_panels {
                let (region, tail) = rest.split_at_mut(MR * (k1 - k0));
                regions.push((group, k0, k1, panel, region));
                rest = tail;
            }
        }
    }
    regions
        .into_par_iter()
        .for_each(|(group, k0, k1, panel, region)| {
            for r in 0..MR.min(cout_g - panel * MR) {
                let co = group * cout_g + panel * MR + r;
                let s = p.scale.map_or(1.0, |s| s[co]);
                let row = &p.weight[co * k..][..k];
                for (kk, &v) in row[k0..k1].iter().enumerate() {
                    region[kk * MR + r] = v * s;
                }
            }
        });
    packed
}

/// Packs the patches of output pixels `[q0, q1)` (row-major over the output plane) for
/// reduction rows `[k0, k1)` into `out`: micro-tile `pp` holds `kc` steps of NR values
/// (pixels `q0 + pp·NR ..`), zero where a tap falls into the padding. Lanes past `q1` in the
/// last micro-tile keep old values; their outputs are never stored.
#[allow(clippy::too_many_arguments)]
fn pack_patches(
    x_img: &Image,
    c0: usize,
    g: &Geometry,
    q0: usize,
    q1: usize,
    k0: usize,
    k1: usize,
    out: &mut [f32],
) {
    let kc = k1 - k0;
    let taps = g.kh * g.kw;
    // The pixel range cut at output-row and micro-tile boundaries: the same for every
    // reduction row, so computed once (the divisions cost more than the short copies).
    let mut segments = Vec::new();
    let mut q = q0;
    while q < q1 {
        let (oy, ox) = (q / g.wo, q % g.wo);
        let (pp, lane) = ((q - q0) / NR, (q - q0) % NR);
        let len = (NR - lane).min(g.wo - ox).min(q1 - q);
        segments.push(Segment {
            oy,
            ox,
            len,
            offset: pp * kc * NR + lane,
        });
        q += len;
    }
    for kk in k0..k1 {
        let (ci, tap) = (kk / taps, kk % taps);
        let (i, j) = (tap / g.kw, tap % g.kw);
        let x_plane = x_img.plane(c0 + ci);
        let (lo, hi) = g.valid_cols(j);
        let step = (kk - k0) * NR;
        let mut row = (usize::MAX, None);
        for s in &segments {
            if row.0 != s.oy {
                row = (
                    s.oy,
                    g.input(0, s.oy, i).map(|iy| &x_plane[iy * g.w..][..g.w]),
                );
            }
            let dst = &mut out[s.offset + step..][..s.len];
            fill_segment(dst, s.ox, row.1, lo, hi, g, j);
        }
    }
}

/// One image of the input, as the parts it is concatenated from.
struct Image<'a> {
    parts: &'a [&'a [f32]],
    channels: &'a [usize],
    /// Floats per channel plane.
    plane: usize,
}

impl<'a> Image<'a> {
    /// The plane of input channel `c`.
    fn plane(&self, mut c: usize) -> &'a [f32] {
        for (part, &channels) in self.parts.iter().zip(self.channels) {
            if c < channels {
                return &part[c * self.plane..][..self.plane];
            }
            c -= channels;
        }
        panic!("channel {c} past the input's channels")
    }
}

/// Output pixels `(oy, ox..ox + len)` and where they start in a packed patch block (without
/// the reduction step's offset).
struct Segment {
    oy: usize,
    ox: usize,
    len: usize,
    offset: usize,
}

/// `dst[t] = x[iy, (ox + t)·s + j·d − p]` for output columns `ox + t` in `[lo, hi)`, else 0.
fn fill_segment(
    dst: &mut [f32],
    ox: usize,
    src_row: Option<&[f32]>,
    lo: usize,
    hi: usize,
    g: &Geometry,
    j: usize,
) {
    let Some(src) = src_row else {
        dst.fill(0.0);
        return;
    };
    let end = ox + dst.len();
    let (a, b) = (lo.clamp(ox, end), hi.clamp(ox, end));
    dst[..a - ox].fill(0.0);
    dst[b.max(a) - ox..].fill(0.0);
    if a < b {
        let ix0 = a * g.stride[1] + j * g.dilation[1] - g.pad[1];
        let inner = &mut dst[a - ox..b - ox];
        if g.stride[1] == 1 {
            inner.copy_from_slice(&src[ix0..ix0 + (b - a)]);
        } else {
            for (t, v) in inner.iter_mut().enumerate() {
                *v = src[ix0 + t * g.stride[1]];
            }
        }
    }
}

/// `C[r, q] (=|+=) Σ_p A[p, r] · B[p, q]` for `r < rows`, `q < cols`, with A `kc × MR` and B
/// `kc × NR` packed; `C` has row stride `ldc`. With `finish`, the shift and ReLU follow.
///
/// # Safety
/// AVX-512F must be available; `a`, `b` must hold `kc·MR` and `kc·NR` floats; `c` must be
/// valid for `rows` rows of `cols` floats at stride `ldc` (initialised unless `store`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_kernel(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    store: bool,
    finish: Option<(Option<&[f32]>, bool)>,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 3]; MR];
    for p in 0..kc {
        // SAFETY (whole block): p < kc keeps both reads inside the packed panels.
        unsafe {
            let bp = b.add(p * NR);
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(16));
            let b2 = _mm512_loadu_ps(bp.add(32));
            let ap = a.add(p * MR);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(r));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
                row[2] = _mm512_fmadd_ps(av, b2, row[2]);
            }
        }
    }
    let zero = _mm512_setzero_ps();
    for (r, row) in acc.iter().enumerate().take(rows) {
        for (v, &value) in row.iter().enumerate() {
            let valid = cols.saturating_sub(v * 16).min(16);
            if valid == 0 {
                break;
            }
            let mask: __mmask16 = if valid == 16 {
                0xffff
            } else {
                (1u16 << valid) - 1
            };
            // SAFETY: the masked lanes lie inside row r's `cols` floats.
            unsafe {
                let ptr = c.add(r * ldc + v * 16);
                let mut value = value;
                if !store {
                    value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, ptr));
                }
                if let Some((shift, relu)) = finish {
                    if let Some(shift) = shift {
                        value = _mm512_add_ps(value, _mm512_set1_ps(shift[r]));
                    }
                    if relu {
                        value = _mm512_max_ps(value, zero);
                    }
                }
                _mm512_mask_storeu_ps(ptr, mask, value);
            }
        }
    }
}

/// Never called: [`available`] is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_kernel(
    _: usize,
    _: *const f32,
    _: *const f32,
    _: *mut f32,
    _: usize,
    _: usize,
    _: usize,
    _: bool,
    _: Option<(Option<&[f32]>, bool)>,
) {
    unreachable!("the implicit-GEMM kernel runs on x86-64 only")
}

#[cfg(test)]
mod tests {
    use super::super::conv::{Fused, Kernel, forward_with};
    use super::super::f32_tensor as tensor;
    use super::super::{f32_data, test_values as values};
    use super::*;
    use burn::backend::TensorMetadata;
    use burn::tensor::ops::ConvOptions;

    struct Case {
        n: usize,
        cin: usize,
        cout: usize,
        size: [usize; 2],
        kernel: [usize; 2],
        stride: usize,
        pad: usize,
        dilation: usize,
        groups: usize,
    }

    /// Both kernels on `case`, with `fused`; returns the largest difference relative to the
    /// largest output, and the output shape.
    fn compare(case: &Case, fused: &Fused) -> (f32, Vec<usize>) {
        let Case {
            n,
            cin,
            cout,
            size: [h, w],
            kernel: [kh, kw],
            ..
        } = *case;
        let x = values(n * cin * h * w, 1);
        let wts = values(cout * cin / case.groups * kh * kw, 2);
        let options = ConvOptions::new(
            [case.stride; 2],
            [case.pad; 2],
            [case.dilation; 2],
            case.groups,
        );
        let run = |kernel| {
            let out = forward_with(
                tensor(x.clone(), [n, cin, h, w]),
                tensor(wts.clone(), [cout, cin / case.groups, kh, kw]),
                &options,
                fused,
                kernel,
            );
            (f32_data(&out).to_vec(), out.shape().dims::<4>().to_vec())
        };
        let (ours, shape) = run(Kernel::ImplicitGemm);
        let (reference, reference_shape) = run(Kernel::Im2colGemm);
        assert_eq!(shape, reference_shape);
        let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let err = ours
            .iter()
            .zip(&reference)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        (err / scale.max(1e-12), shape)
    }

    fn case(cin: usize, cout: usize, size: [usize; 2], kernel: usize, pad: usize) -> Case {
        Case {
            n: 2,
            cin,
            cout,
            size,
            kernel: [kernel; 2],
            stride: 1,
            pad,
            dilation: 1,
            groups: 1,
        }
    }

    #[test]
    fn implicit_gemm_equals_im2col_gemm() {
        if !available() {
            eprintln!("no AVX-512 on this CPU: only the portable kernel runs here");
            return;
        }
        let cases = [
            // First U-Net layer, odd sizes: pixel tails in every micro-tile row.
            case(3, 64, [37, 41], 3, 1),
            // K = 576: three reduction blocks accumulated in the output.
            case(64, 64, [33, 50], 3, 1),
            // Pointwise, K = 300 (two blocks), 20 outputs (a partial micro-panel).
            case(300, 20, [9, 11], 1, 0),
            // One output channel (a segmentation head) and a 1×1 image.
            case(32, 1, [13, 7], 3, 1),
            case(16, 16, [1, 1], 3, 1),
            Case {
                stride: 2,
                pad: 2,
                ..case(16, 12, [21, 30], 5, 2)
            },
            Case {
                dilation: 2,
                ..case(8, 8, [19, 23], 3, 2)
            },
            Case {
                groups: 4,
                ..case(16, 24, [17, 18], 3, 1)
            },
            Case {
                kernel: [2, 3],
                n: 3,
                ..case(5, 9, [10, 12], 2, 0)
            },
            // Large enough for several pixel chunks per image.
            Case {
                n: 1,
                ..case(32, 40, [96, 131], 3, 1)
            },
        ];
        for (i, c) in cases.iter().enumerate() {
            let (err, shape) = compare(c, &Fused::default());
            assert!(err < 2e-6, "case {i} {shape:?}: relative error {err}");
        }
    }

    #[test]
    fn fused_epilogue_equals_the_separate_passes() {
        if !available() {
            eprintln!("no AVX-512 on this CPU: only the portable kernel runs here");
            return;
        }
        let scale = values(24, 3);
        let shift = values(24, 4);
        for relu in [false, true] {
            let fused = Fused {
                scale: Some(&scale),
                shift: Some(&shift),
                relu,
            };
            for c in [case(7, 24, [15, 33], 3, 1), case(64, 24, [5, 70], 1, 0)] {
                let (err, shape) = compare(&c, &fused);
                assert!(err < 2e-6, "relu {relu} {shape:?}: relative error {err}");
            }
        }
    }
}
