//! Forward convolution as an implicit GEMM with an AVX-512 (or AVX2) micro-kernel.
//!
//! `Y[co, q] = Σ_k W[co, k] · X̃[k, q]` per image and group, where `q` runs over output pixels and
//! `k` over `(input channel, kernel row, kernel column)`. Unlike im2col + `gemm` (the portable
//! path in [`super::im2col`]), the input patches `X̃` are packed straight from the image into the
//! micro-kernel's panel layout, so every input value is copied once instead of twice; the
//! weights are packed once per call. The micro-kernel keeps an `MR × NR` block of outputs
//! (8 output channels × 48 pixels = 24 AVX-512 registers; four passes of 12 AVX2 registers
//! on CPUs without AVX-512, `avx2.rs`; a portable `scalar.rs` with the same order of
//! operations) and finishes each output in place:
//! optional per-channel shift (a bias, or a batch norm folded into the weights) and ReLU, so
//! that inference needs no separate bias, batch-norm or ReLU pass over the feature map.
//!
//! With stride 1 (every 3×3 convolution of the U-Net and the MSCG) there are no patches at all:
//! each job copies the input rows it reads once into a zero-padded block (one copy of the
//! input instead of `kh·kw`), and the micro-kernel loads its 48 pixels of every reduction step
//! straight from that block at a per-step offset. The output pixels of a row are consecutive
//! there, so a micro-tile runs on into the next row; the `dilation·(kw − 1)` positions that fall
//! into the padding between two rows are computed and never stored (masked stores). This
//! removed 11 % of the time of a 3×3 64→64 convolution, forward and backward (docs/performance.md).
//!
//! Why hand-written: the `gemm` crate packs both operands on every call and cannot take a
//! packed operand or an epilogue; no crate offers convolution kernels for burn's tensors. The
//! result of every output depends only on the weights' `k` order and `KC` blocking, never on
//! how the work is split into jobs, so it is the same for every thread count.
//!
//! The micro-kernels of each instruction set live in `avx512.rs`, `avx2.rs` and `scalar.rs`;
//! [`conv_forward_with`] resolves the instruction set once into the function pointers of
//! `MicroKernels`, which every tile then calls.
use super::{Epilogue, Geometry, Problem};
use crate::Isa;
use crate::aligned::AlignedBuf;
use crate::shared::SharedMut;
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod scalar;

/// Output channels per micro-tile.
pub(crate) const MR: usize = 8;
/// Output pixels per micro-tile (three 16-float vectors).
pub(crate) const NR: usize = 48;
/// Deepest reduction block: a weight micro-panel (`MR × KC` floats, 8 KiB) stays in L1.
const KC: usize = 256;
/// Largest packed patch block of one job, in floats (1 MiB): stays in L2 while every weight
/// micro-panel passes over it.
const PATCH_BLOCK_FLOATS: usize = 1 << 18;
/// Jobs a convolution is split into at least (when it has that many micro-tiles).
const MIN_JOBS: usize = 8;

/// Output pixels over the batch below which [`conv_forward`] is slower than im2col + `gemm`
/// (measured: 64²-pixel planes break even; at 32² and 16² with 512–1024 channels the patches,
/// re-packed by every job that splits the output channels, cost more than the kernel saves).
const MIN_PIXELS: usize = 64 * 64;

/// Whether [`conv_forward`] is the faster kernel for `n` images of this geometry.
pub fn suits(n: usize, g: &Geometry) -> bool {
    n * g.ho * g.wo >= MIN_PIXELS
}

/// The micro-kernels of one instruction set, resolved once per convolution.
#[derive(Clone, Copy)]
struct MicroKernels {
    /// `C[r, q] (=|+=) Σ_p A[p, r] · B[p, q]` for the first `out.rows` rows and `q < cols`,
    /// with A `kc × MR` and B `kc × NR` packed, put as `out` says.
    ///
    /// Safety: the CPU must have the kernel's instruction set; `a`, `b` must hold `kc·MR` and
    /// `kc·NR` floats; `out` must be valid for `out.rows` rows of `cols` floats (initialised
    /// unless `out.store`).
    packed: unsafe fn(usize, *const f32, *const f32, usize, Out<'_>),
    /// The same reading B in place: step `p` of the tile is the NR floats at
    /// `b + offsets[p]`; the tile's lanes go to the output through `stores` (offsets from `c`,
    /// row `r` of C at `c + r·ldc`).
    ///
    /// Safety: the CPU must have the kernel's instruction set; `a` must hold `kc·MR` floats,
    /// `offsets` `kc` entries, and `b + offsets[p]` NR floats for every `p`; every masked lane
    /// of `stores` must be valid in the first `out.rows` rows (initialised unless `out.store`).
    direct: unsafe fn(usize, *const f32, *const f32, *const usize, &[Store], Out<'_>),
}

impl MicroKernels {
    /// The micro-kernels of `isa`.
    ///
    /// # Panics
    /// If this CPU lacks `isa`.
    fn of(isa: Isa) -> Self {
        assert!(isa.runs_here(), "this CPU lacks {isa:?}");
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Self {
                packed: avx512::micro_kernel,
                direct: avx512::micro_kernel_direct,
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Self {
                packed: avx2::micro_kernel,
                direct: avx2::micro_kernel_direct,
            },
            _ => Self {
                packed: scalar::micro_kernel,
                direct: scalar::micro_kernel_direct,
            },
        }
    }
}
/// The convolution `problem` with `geometry`, finished by `epilogue`: `[n, cout, ho, wo]`,
/// with the micro-kernels of [`Isa::best`], reading the input rows in place where that is
/// faster.
pub fn conv_forward(problem: &Problem, g: &Geometry, epilogue: Epilogue) -> Vec<f32> {
    conv_forward_with(problem, g, epilogue, reads_rows(g), Isa::best())
}

/// Whether the micro-kernel reads the input rows in place ([`conv_forward_with`]'s `direct`):
/// stride 1, and the few columns computed in the padding of each row (`dilation·(kw − 1)`)
/// cost less than an eighth of the row.
pub fn reads_rows(g: &Geometry) -> bool {
    let junk = g.dilation[1] * (g.kw - 1);
    g.stride == [1, 1] && junk * 8 <= g.wo
}

/// [`conv_forward`] with the patches packed (`direct` false) or read in place from a padded
/// copy of the input rows (`direct` true; stride 1 only). Both add the same products in the
/// same order, so their results are equal; so are those of the two instruction sets.
///
/// # Panics
/// If this CPU lacks `isa`, or `direct` with a stride other than 1.
pub fn conv_forward_with(
    problem: &Problem,
    g: &Geometry,
    epilogue: Epilogue,
    direct: bool,
    isa: Isa,
) -> Vec<f32> {
    let kernels = MicroKernels::of(isa);
    assert!(
        !direct || g.stride == [1, 1],
        "the direct kernel needs stride 1"
    );
    let Problem {
        n,
        cin,
        cout,
        groups,
        ..
    } = *problem;
    let (cin_g, cout_g) = (cin / groups, cout / groups);
    let k = cin_g * g.kh * g.kw;
    let blocks = KBlocks::new(k);
    let packed = pack_weights(problem, epilogue.scale, g, &blocks);
    let m_panels = cout_g.div_ceil(MR);
    let plane = g.ho * g.wo;
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
        kernels,
    };
    let hw = g.h * g.w;
    debug_assert_eq!(problem.part_channels.iter().sum::<usize>(), cin);
    if direct {
        let split = Split::rows(n, g, m_panels * groups, &blocks, cin_g);
        (0..split.jobs()).into_par_iter().for_each_init(
            || (AlignedBuf::default(), Vec::new(), Vec::new()),
            |(rows, offsets, stores), job| {
                let (img, r0, r1, m0, m1) = split.job(job);
                let x_img = Image::new(problem, img, hw);
                let tiles = RowTiles::new(g, r0, r1, stores);
                for_each_group_range(m0, m1, m_panels, |group, p0, p1| {
                    for b in 0..blocks.count {
                        let (k0, k1) = blocks.range(b);
                        let c_lo = group * cin_g + k0 / (g.kh * g.kw);
                        let c_hi = group * cin_g + (k1 - 1) / (g.kh * g.kw);
                        let copy = RowCopy::fill(&x_img, g, c_lo, c_hi + 1, r0, r1, rows);
                        copy.offsets(g, k0, k1, offsets);
                        ctx.run_direct(img, group, p0, p1, b, &tiles, rows.as_slice(), offsets);
                    }
                });
            },
        );
        // SAFETY: as below: the jobs split (image, output rows, micro-panels) disjointly and
        // the first reduction block stored every valid lane of every tile.
        unsafe { out.set_len(len) };
        return out;
    }
    let split = Split::pixels(n, plane, m_panels * groups, blocks.size);
    let patch_len = split.job_len() * blocks.size;
    (0..split.jobs()).into_par_iter().for_each_init(
        || AlignedBuf::zeroed(patch_len),
        |patches, job| {
            let patches = patches.as_mut_slice();
            let (img, q0, q1, m0, m1) = split.job(job);
            let x_img = Image::new(problem, img, hw);
            for_each_group_range(m0, m1, m_panels, |group, p0, p1| {
                for b in 0..blocks.count {
                    let (k0, k1) = blocks.range(b);
                    pack_patches(&x_img, group * cin_g, g, q0, q1, k0, k1, patches);
                    ctx.run(img, group, p0, p1, q0, q1, b, patches);
                }
            });
        },
    );
    // SAFETY: the jobs wrote every output: each (image, channel, pixel) lies in exactly one
    // job's pixel range and micro-panel range, whose first reduction block stored it.
    unsafe { out.set_len(len) };
    out
}

/// Calls `f(group, p0, p1)` for the micro-panels `[p0, p1)` of each group that the (group,
/// micro-panel) indices `[m0, m1)` cover, so that grouped convolutions split over jobs too.
fn for_each_group_range(
    m0: usize,
    m1: usize,
    m_panels: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let mut m = m0;
    while m < m1 {
        let group = m / m_panels;
        let end = m1.min((group + 1) * m_panels);
        f(group, m - group * m_panels, end - group * m_panels);
        m = end;
    }
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
    kernels: MicroKernels,
}

impl Blocks<'_> {
    /// Micro-panel `panel` of `group` in reduction block `b`: its packed weights, first output
    /// channel (in the group), number of output channels, and finishing (after the last block).
    fn panel(
        &self,
        group: usize,
        panel: usize,
        b: usize,
    ) -> (&[f32], usize, usize, Option<Epilogue<'_>>) {
        let (k0, k1) = self.blocks.range(b);
        let (m_panels, cout_g) = (self.m_panels, self.cout_g);
        let co0 = panel * MR;
        let a = &self.packed
            [group * m_panels * MR * self.k + m_panels * MR * k0 + panel * MR * (k1 - k0)..];
        let shift = self.epilogue.shift.map(|s| &s[group * cout_g + co0..]);
        let last = b + 1 == self.blocks.count;
        (
            a,
            co0,
            MR.min(cout_g - co0),
            last.then_some(Epilogue {
                scale: None,
                shift,
                relu: self.epilogue.relu,
            }),
        )
    }

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
        let kc = self.blocks.len(b);
        for panel in p0..p1 {
            let (a, co0, rows, finish) = self.panel(group, panel, b);
            let mut q = q0;
            while q < q1 {
                let cols = NR.min(q1 - q);
                let pp = (q - q0) / NR;
                let c_offset = (img * self.cout + group * self.cout_g + co0) * self.plane + q;
                // SAFETY: the CPU has the kernels' ISA (`MicroKernels::of`); `a` holds MR × kc
                // packed weights and `patches` kc × NR floats at
                // micro-tile pp; the destination rows co0..co0+rows, columns q..q+cols of
                // this image's plane are written by this call alone (calls split (image,
                // pixels, micro-panels) disjointly), and were written by block 0 before later
                // blocks read them.
                unsafe {
                    let out = Out {
                        c: self.dst.at(c_offset),
                        ldc: self.plane,
                        rows,
                        store: b == 0,
                        finish,
                    };
                    let b = patches[pp * kc * NR..].as_ptr();
                    (self.kernels.packed)(kc, a.as_ptr(), b, cols, out);
                }
                q += cols;
            }
        }
    }
}

impl Blocks<'_> {
    /// [`Blocks::run`] for the direct kernel: reduction block `b` for micro-panels `[p0, p1)`
    /// of `group` over the output rows of `tiles`, reading the padded rows `rows` at
    /// `offsets` (one per reduction step of the block).
    #[allow(clippy::too_many_arguments)]
    fn run_direct(
        &self,
        img: usize,
        group: usize,
        p0: usize,
        p1: usize,
        b: usize,
        tiles: &RowTiles,
        rows: &[f32],
        offsets: &[usize],
    ) {
        let kc = self.blocks.len(b);
        debug_assert_eq!(offsets.len(), kc);
        for panel in p0..p1 {
            let (a, co0, nrows, finish) = self.panel(group, panel, b);
            let plane_offset = (img * self.cout + group * self.cout_g + co0) * self.plane;
            for (t, stores) in tiles.iter() {
                // SAFETY: the CPU has the kernels' ISA; `a` holds MR × kc packed weights; every
                // read of `rows` at
                // `offsets[p] + t + lane` stays inside it (`RowCopy` leaves NR floats of slack
                // after its last row); the stores write valid output lanes of rows co0..co0 +
                // nrows of this image, which only this call writes (calls split (image, output
                // rows, micro-panels) disjointly) and block 0 wrote before later blocks read.
                unsafe {
                    let out = Out {
                        c: self.dst.at(plane_offset),
                        ldc: self.plane,
                        rows: nrows,
                        store: b == 0,
                        finish,
                    };
                    let (a, b) = (a.as_ptr(), rows.as_ptr().add(t));
                    (self.kernels.direct)(kc, a, b, offsets.as_ptr(), stores, out);
                }
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

    fn len(&self, b: usize) -> usize {
        let (k0, k1) = self.range(b);
        k1 - k0
    }
}

/// The split of a convolution into jobs of (image, range of output positions, micro-panel
/// range). Positions are output pixels taken in micro-tiles of `unit` = NR (packed patches) or
/// output rows, `unit` = 1 (the direct kernel).
struct Split {
    n: usize,
    /// Positions per image.
    extent: usize,
    /// Positions per unit.
    unit: usize,
    /// Units per job (the last of an image may have fewer positions).
    units: usize,
    /// Position chunks per image.
    chunks: usize,
    /// Micro-panel ranges per chunk, and micro-panels in all (over the groups).
    m_splits: usize,
    m_total: usize,
}

impl Split {
    /// Chunks of `by_size` units (each weight micro-panel then passes over as many positions
    /// as the scratch allows: small images with many channels are bound by reading the
    /// weights), the micro-panels split to make up [`MIN_JOBS`], and the positions split finer
    /// only when the micro-panels cannot.
    fn new(n: usize, extent: usize, unit: usize, by_size: usize, m_total: usize) -> Self {
        let per_image = extent.div_ceil(unit).max(1);
        let mut units = by_size.clamp(1, per_image);
        let m_total = m_total.max(1);
        let m_splits = MIN_JOBS
            .div_ceil(n * per_image.div_ceil(units))
            .clamp(1, m_total);
        let position_jobs = MIN_JOBS.div_ceil(m_splits);
        if n * per_image.div_ceil(units) < position_jobs {
            let chunks_per_image = position_jobs.div_ceil(n);
            units = per_image.div_ceil(chunks_per_image).max(1);
        }
        Self {
            n,
            extent,
            unit,
            units,
            chunks: per_image.div_ceil(units),
            m_splits,
            m_total,
        }
    }

    /// The split of the packed kernel: pixel micro-tiles, as many per job as fill
    /// [`PATCH_BLOCK_FLOATS`] with `kc` reduction steps.
    fn pixels(n: usize, plane: usize, m_total: usize, kc: usize) -> Self {
        Self::new(n, plane, NR, PATCH_BLOCK_FLOATS / (kc * NR), m_total)
    }

    /// The split of the direct kernel: output rows, as many per job as keep a reduction
    /// block's row copy within [`ROW_COPY_FLOATS`].
    fn rows(n: usize, g: &Geometry, m_total: usize, blocks: &KBlocks, cin_g: usize) -> Self {
        let taps = g.kh * g.kw;
        // Channels one reduction block reads (a block may start and end inside a channel).
        let channels = (blocks.size.div_ceil(taps) + 1).min(cin_g);
        let halo = (g.kh - 1) * g.dilation[0];
        let wp = g.w + 2 * g.pad[1];
        let by_size = (ROW_COPY_FLOATS / (channels * wp).max(1)).saturating_sub(halo);
        Self::new(n, g.ho, 1, by_size, m_total)
    }

    fn jobs(&self) -> usize {
        if self.extent == 0 {
            0
        } else {
            self.n * self.chunks * self.m_splits
        }
    }

    /// Positions per job.
    fn job_len(&self) -> usize {
        self.units * self.unit
    }

    /// Image, positions `[p0, p1)` and micro-panels `[m0, m1)` of `job`.
    fn job(&self, job: usize) -> (usize, usize, usize, usize, usize) {
        let m_part = job % self.m_splits;
        let position_job = job / self.m_splits;
        let (img, chunk) = (position_job / self.chunks, position_job % self.chunks);
        let p0 = chunk * self.job_len();
        let p1 = (p0 + self.job_len()).min(self.extent);
        let m0 = m_part * self.m_total / self.m_splits;
        let m1 = (m_part + 1) * self.m_total / self.m_splits;
        (img, p0, p1, m0, m1)
    }
}

/// Largest padded row copy of one job and reduction block, in floats (512 KiB): stays in L2
/// while every weight micro-panel passes over it.
const ROW_COPY_FLOATS: usize = 1 << 17;

/// A zero-padded copy of input channels `[c_lo, c_hi)` over the padded rows that output rows
/// `[r0, r1)` read: channel `c`, padded row `py`, padded column `px` at
/// `(c − c_lo)·channel + (py − r0)·wp + px`, where padded row `py` is input row `py − pad`.
/// With stride 1, output pixel `(oy, ox)` reads padded `(oy + i·d, ox + j·d)` for tap `(i, j)`,
/// so the reads of consecutive output pixels of a row are consecutive floats, and those of
/// the next row follow after `wp − wo` columns computed in the padding and never stored.
struct RowCopy {
    /// Floats per padded row.
    wp: usize,
    /// Floats per channel.
    channel: usize,
}

impl RowCopy {
    /// Fills `buf` and describes it; `buf` keeps [`NR`] floats of slack after the last row.
    #[allow(clippy::too_many_arguments)]
    fn fill(
        x: &Image,
        g: &Geometry,
        c_lo: usize,
        c_hi: usize,
        r0: usize,
        r1: usize,
        buf: &mut AlignedBuf,
    ) -> Self {
        let wp = g.w + 2 * g.pad[1];
        let rows = (r1 - r0) + (g.kh - 1) * g.dilation[0];
        let channel = rows * wp;
        buf.resize((c_hi - c_lo) * channel + NR);
        let out = buf.as_mut_slice();
        for (c, dst) in (c_lo..c_hi).zip(out.chunks_exact_mut(channel)) {
            let plane = x.plane(c);
            for (r, row) in dst.chunks_exact_mut(wp).enumerate() {
                let iy = (r0 + r).checked_sub(g.pad[0]).filter(|&y| y < g.h);
                let Some(iy) = iy else {
                    row.fill(0.0);
                    continue;
                };
                let (left, rest) = row.split_at_mut(g.pad[1]);
                let (mid, right) = rest.split_at_mut(g.w);
                left.fill(0.0);
                mid.copy_from_slice(&plane[iy * g.w..][..g.w]);
                right.fill(0.0);
            }
        }
        out[(c_hi - c_lo) * channel..].fill(0.0);
        Self { wp, channel }
    }

    /// Where reduction steps `[k0, k1)` of the group start reading (tile position 0):
    /// `offsets[k − k0]` for step `k = (channel, kernel row, kernel column)`; `k0` counts
    /// from the group's first channel, which is `c_lo` for step `k0`'s channel.
    fn offsets(&self, g: &Geometry, k0: usize, k1: usize, offsets: &mut Vec<usize>) {
        let taps = g.kh * g.kw;
        let first = k0 / taps;
        offsets.clear();
        offsets.extend((k0..k1).map(|k| {
            let (c, tap) = (k / taps - first, k % taps);
            let (i, j) = (tap / g.kw, tap % g.kw);
            c * self.channel + i * g.dilation[0] * self.wp + j * g.dilation[1]
        }));
    }
}

/// One masked store of a tile: lane `l` of accumulator vector `v` (tile lane `16v + l`) goes
/// to `offset + l` of the output plane, for the lanes in `mask`.
#[derive(Clone, Copy)]
pub(crate) struct Store {
    pub v: usize,
    pub mask: u16,
    pub offset: isize,
}

/// The micro-tiles of NR consecutive positions over output rows `[r0, r1)` of width `wo` read
/// at pitch `wp` (see [`RowCopy`]), and the masked stores that put their valid lanes in place.
struct RowTiles<'a> {
    /// Per tile: its first position (relative to row `r0`, pitch `wp`) and its stores' range.
    tiles: Vec<(usize, std::ops::Range<usize>)>,
    stores: &'a [Store],
}

impl<'a> RowTiles<'a> {
    fn new(g: &Geometry, r0: usize, r1: usize, buf: &'a mut Vec<Store>) -> Self {
        let wp = g.w + 2 * g.pad[1];
        let wo = g.wo;
        // Positions past the last row's last output are never stored.
        let end = if r1 > r0 { (r1 - r0 - 1) * wp + wo } else { 0 };
        buf.clear();
        let mut tiles = Vec::with_capacity(end.div_ceil(NR));
        for t in (0..end).step_by(NR) {
            let first = buf.len();
            for v in 0..NR / 16 {
                let mut lane = 0;
                while lane < 16 {
                    let pos = t + 16 * v + lane;
                    if pos >= end {
                        break;
                    }
                    let (row, col) = (pos / wp, pos % wp);
                    if col >= wo {
                        // In the padding: skip to the next row's first output.
                        lane += wp - col;
                        continue;
                    }
                    let run = (wo - col).min(16 - lane).min(end - pos);
                    let mask = (((1u32 << run) - 1) << lane) as u16;
                    let offset = ((r0 + row) * wo + col) as isize - lane as isize;
                    // (lane `lane` of vector `v` is output (r0 + row, col).)
                    buf.push(Store { v, mask, offset });
                    lane += run;
                }
            }
            tiles.push((t, first..buf.len()));
        }
        let stores: &'a Vec<Store> = buf;
        Self {
            tiles,
            stores: stores.as_slice(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = (usize, &[Store])> {
        self.tiles
            .iter()
            .map(|(t, range)| (*t, &self.stores[range.clone()]))
    }
}

/// Weights in micro-panel order: per group, per reduction block, per micro-panel of MR output
/// channels, `kc` steps of MR values (zero past the last channel), times `scale[co]`.
fn pack_weights(p: &Problem, scale: Option<&[f32]>, g: &Geometry, blocks: &KBlocks) -> Vec<f32> {
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
                let s = scale.map_or(1.0, |s| s[co]);
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
    parts: Vec<&'a [f32]>,
    channels: &'a [usize],
    /// Floats per channel plane.
    plane: usize,
}

impl<'a> Image<'a> {
    /// Image `img` of the problem's input, whose channel planes hold `plane` floats.
    fn new(problem: &Problem<'a>, img: usize, plane: usize) -> Self {
        let parts = problem
            .x
            .iter()
            .zip(problem.part_channels)
            .map(|(part, &c)| &part[img * c * plane..][..c * plane])
            .collect();
        Self {
            parts,
            channels: problem.part_channels,
            plane,
        }
    }

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

/// Where a micro-kernel call puts its tile: row `r` (an output channel) at `c + r·ldc`, the
/// first `rows` rows, stored (`store`: the first reduction block) or added to what is there,
/// then finished by `finish` (after the last block: its shift and ReLU, `scale` unused).
#[derive(Clone, Copy)]
pub(crate) struct Out<'a> {
    pub c: *mut f32,
    pub ldc: usize,
    pub rows: usize,
    pub store: bool,
    pub finish: Option<Epilogue<'a>>,
}
