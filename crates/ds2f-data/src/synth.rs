//! Synthetic fundus-like images with exact vessel masks (and, with [`generate_lesions`], lesion
//! masks of the four IDRiD types): the bundled default data of the demo and of tests, so that
//! nothing needs a download.
//!
//! [`generate`] draws, deterministically from a seed (ChaCha8):
//! - a circular field of view (FOV), black outside;
//! - a reddish-orange background with a smooth radial illumination falloff, low-frequency
//!   uneven illumination, choroidal texture and a darker macula;
//! - a brighter, yellowish optic disc (left or right of the centre) with a brighter cup;
//! - 2 to 4 vessel trees growing from the optic disc (the temporal arcades curve around the
//!   macula, nasal trees head away from it), with curved paths, recursive branching and widths
//!   tapering from about 1.5% of the image width down to about 0.2% (at least 1 pixel); veins
//!   are darker, arteries lighter with a central light reflex; faint thin twigs branch off;
//! - per-pixel Gaussian noise.
//!
//! Vessels are drawn anti-aliased from their centre lines and radii; the mask holds exactly the
//! pixels whose centre lies within a vessel radius (coverage >= 1/2), so the mask and the image
//! agree. The mask is 0 outside the FOV.
use std::f32::consts::PI;
use std::fs;
use std::path::Path;

use image::{GrayImage, Luma, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{DataError, Result};
use crate::io::save_png_atomic;
use crate::labels::{ClassMask, ClassMasks};
use crate::layout::Item;

/// The smallest width and height accepted by [`write_dataset`].
pub const MIN_SIZE: u32 = 32;

/// A 2-D lattice ("value") noise in `[-1, 1]` with smooth interpolation.
struct ValueNoise {
    /// Lattice cells per side.
    cells: usize,
    /// `(cells + 1)^2` lattice values.
    values: Vec<f32>,
}

impl ValueNoise {
    fn new(rng: &mut impl Rng, cells: usize) -> Self {
        let n = (cells + 1) * (cells + 1);
        let values = (0..n).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
        Self { cells, values }
    }

    /// The noise at `(u, v)`, both in `[0, 1]`.
    fn at(&self, u: f32, v: f32) -> f32 {
        let c = self.cells as f32;
        let (fx, fy) = ((u.clamp(0.0, 1.0) * c), (v.clamp(0.0, 1.0) * c));
        let (ix, iy) = (
            (fx as usize).min(self.cells - 1),
            (fy as usize).min(self.cells - 1),
        );
        let (tx, ty) = (fx - ix as f32, fy - iy as f32);
        let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
        let row = self.cells + 1;
        let v00 = self.values[iy * row + ix];
        let v10 = self.values[iy * row + ix + 1];
        let v01 = self.values[(iy + 1) * row + ix];
        let v11 = self.values[(iy + 1) * row + ix + 1];
        let top = v00 + (v10 - v00) * sx;
        let bottom = v01 + (v11 - v01) * sx;
        top + (bottom - top) * sy
    }
}

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(1e-7);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
}

/// Where things are in one image, in pixels.
struct Geometry {
    /// FOV centre.
    cx: f32,
    cy: f32,
    /// FOV radius.
    fov_r: f32,
    /// Fovea centre and the radius of its vessel-free zone.
    fovea: (f32, f32),
    faz_r: f32,
    /// Largest and smallest vessel diameters.
    max_width: f32,
    min_width: f32,
}

/// One straight piece of a vessel centre line, with its radius and darkness.
struct Segment {
    x0: f32,
    y0: f32,
    x1: f32,
    y1: f32,
    /// Radius in pixels.
    radius: f32,
    /// Relative darkening of the green channel at the centre, in `[0, 1)`.
    contrast: f32,
    /// An artery wide enough to show a central light reflex.
    reflex: bool,
}

/// A growing vessel.
struct Branch {
    x: f32,
    y: f32,
    angle: f32,
    /// Diameter in pixels at the start.
    width: f32,
    contrast: f32,
    /// Turning rate in radians per pixel.
    curvature: f32,
    /// Length in pixels.
    length: f32,
    artery: bool,
    depth: u32,
    /// Faint twigs do not branch.
    twig: bool,
}

/// Grows one vessel tree from `root`, appending its segments.
///
/// A vessel's diameter falls from its start width to just below the minimum width along its
/// length, and each branching takes a little more off; a vessel ends where it gets too thin,
/// leaves the FOV or reaches the fovea's vessel-free zone.
fn grow(rng: &mut ChaCha8Rng, geo: &Geometry, root: Branch, segments: &mut Vec<Segment>) {
    let mut stack = vec![root];
    while let Some(mut b) = stack.pop() {
        let end_width = geo.min_width * 0.9;
        let mut start_width = b.width;
        let mut travelled = 0.0f32;
        let mut next_branch = branch_interval(rng, geo, b.width) * rng.random_range(0.3..1.0);
        let mut side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        let wiggle = 0.004 + 0.008 * rng.random::<f32>();
        let target_curvature = b.curvature;
        loop {
            let t = (travelled / b.length).min(1.0);
            let width = end_width + (start_width - end_width) * (1.0 - t).powf(0.8);
            if width < geo.min_width || t >= 1.0 {
                break;
            }
            let step = (0.5 * width).clamp(0.7, 2.0);
            // The turning rate wanders slowly around the vessel's own.
            let target = target_curvature * (1.0 - t).powi(2);
            b.curvature +=
                normal(rng) * 0.07 * step / geo.fov_r + (target - b.curvature) * 0.01 * step;
            b.angle += b.curvature * step + normal(rng) * wiggle * step.sqrt();
            let (nx, ny) = (b.x + b.angle.cos() * step, b.y + b.angle.sin() * step);
            if (nx - geo.cx).hypot(ny - geo.cy) > geo.fov_r * 0.985
                || (nx - geo.fovea.0).hypot(ny - geo.fovea.1) < geo.faz_r
            {
                break;
            }
            let radius = 0.5 * width;
            segments.push(Segment {
                x0: b.x,
                y0: b.y,
                x1: nx,
                y1: ny,
                radius,
                contrast: b.contrast,
                reflex: b.artery && radius > 2.0,
            });
            (b.x, b.y) = (nx, ny);
            travelled += step;
            next_branch -= step;
            if next_branch > 0.0 || b.twig {
                continue;
            }
            next_branch = branch_interval(rng, geo, width);
            side = -side;
            let child_width = width * rng.random_range(0.45..0.8);
            start_width *= rng.random_range(0.9..0.97);
            if child_width >= geo.min_width * 1.1 && b.depth < 8 {
                let spread = rng.random_range(0.45..1.0);
                let length = geo.fov_r
                    * rng.random_range(0.45..0.9)
                    * (child_width / geo.max_width).powf(0.5);
                stack.push(Branch {
                    x: b.x,
                    y: b.y,
                    angle: b.angle + side * spread,
                    width: child_width,
                    contrast: b.contrast * rng.random_range(0.92..1.0),
                    curvature: -side * rng.random_range(0.0..1.2) / geo.fov_r,
                    length,
                    artery: b.artery,
                    depth: b.depth + 1,
                    twig: false,
                });
            }
            if rng.random_bool(0.25) {
                // A faint thin twig on the other side.
                stack.push(Branch {
                    x: b.x,
                    y: b.y,
                    angle: b.angle - side * rng.random_range(0.6..1.4),
                    width: geo.min_width * rng.random_range(1.1..1.6),
                    contrast: rng.random_range(0.15..0.3),
                    curvature: normal(rng) / geo.fov_r,
                    length: geo.fov_r * rng.random_range(0.05..0.2),
                    artery: b.artery,
                    depth: b.depth + 1,
                    twig: true,
                });
            }
        }
    }
}

/// Pixels of length between two branchings of a vessel of diameter `width`.
fn branch_interval(rng: &mut ChaCha8Rng, geo: &Geometry, width: f32) -> f32 {
    let scale = (width / geo.max_width).powf(0.35).max(0.4);
    geo.fov_r * rng.random_range(0.07..0.18) * scale
}

/// The per-pixel result of drawing the vessels.
struct VesselLayer {
    /// Relative darkening of the green channel, 0 where there is no vessel.
    dark: Vec<f32>,
    /// 1 where a pixel centre lies within a vessel radius.
    mask: Vec<u8>,
}

/// Draws the segments anti-aliased into a `width x height` layer.
fn rasterise(segments: &[Segment], width: u32, height: u32) -> VesselLayer {
    let (w, h) = (width as usize, height as usize);
    let mut dark = vec![0.0f32; w * h];
    let mut mask = vec![0u8; w * h];
    for s in segments {
        let pad = s.radius + 1.0;
        let x_lo = (s.x0.min(s.x1) - pad).floor().max(0.0) as usize;
        let y_lo = (s.y0.min(s.y1) - pad).floor().max(0.0) as usize;
        let x_hi = ((s.x0.max(s.x1) + pad).ceil().max(0.0) as usize).min(w);
        let y_hi = ((s.y0.max(s.y1) + pad).ceil().max(0.0) as usize).min(h);
        let (dx, dy) = (s.x1 - s.x0, s.y1 - s.y0);
        let len2 = (dx * dx + dy * dy).max(1e-12);
        for y in y_lo..y_hi {
            let py = y as f32 + 0.5;
            for x in x_lo..x_hi {
                let px = x as f32 + 0.5;
                let t = (((px - s.x0) * dx + (py - s.y0) * dy) / len2).clamp(0.0, 1.0);
                let d = (px - s.x0 - t * dx).hypot(py - s.y0 - t * dy);
                let coverage = (s.radius + 0.5 - d).clamp(0.0, 1.0);
                if coverage <= 0.0 {
                    continue;
                }
                let i = y * w + x;
                if d <= s.radius {
                    mask[i] = 1;
                }
                // A rounded cross-section, lighter at the very centre of wide arteries.
                let rel = (d / s.radius.max(0.5)).min(1.0);
                let mut profile = 0.55 + 0.45 * (1.0 - rel * rel).sqrt();
                if s.reflex {
                    profile *= 1.0 - 0.35 * (-(rel / 0.3).powi(2)).exp();
                }
                // Full darkness on mask pixels (coverage >= 1/2), anti-aliased fringe outside.
                let v = s.contrast * (2.0 * coverage).min(1.0) * profile;
                if v > dark[i] {
                    dark[i] = v;
                }
            }
        }
    }
    VesselLayer { dark, mask }
}

/// Generates one synthetic fundus image of `width x height` pixels from `seed`.
///
/// Returns `(image, vessel mask, FOV)`; both masks hold 0/1. The same seed and size always give
/// the same images. Sizes below about 64 pixels give crude but valid images.
pub fn generate(seed: u64, width: u32, height: u32) -> (RgbImage, GrayImage, GrayImage) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (wf, hf) = (width as f32, height as f32);
    let short = wf.min(hf);
    let side: f32 = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    let cx = wf / 2.0 + normal(&mut rng) * 0.005 * short;
    let cy = hf / 2.0 + normal(&mut rng) * 0.005 * short;
    let fov_r = (short * rng.random_range(0.455..0.485)).max(1.0);
    let od_r = fov_r * rng.random_range(0.12..0.15);
    let od = (
        cx + side * fov_r * rng.random_range(0.38..0.46),
        cy + fov_r * rng.random_range(-0.06..0.06),
    );
    let fovea = (
        od.0 - side * fov_r * rng.random_range(0.62..0.72),
        od.1 + fov_r * rng.random_range(0.0..0.08),
    );
    let geo = Geometry {
        cx,
        cy,
        fov_r,
        fovea,
        faz_r: fov_r * 0.07,
        max_width: (0.015 * wf).max(1.5),
        min_width: (0.002 * wf).max(1.0),
    };

    // Vessel trees, each an artery and a vein leaving the disc side by side: the two temporal
    // arcades always, then up to two nasal trees.
    let n_trees = rng.random_range(2..=4usize);
    let mut segments = Vec::new();
    for k in 0..n_trees {
        let up = if k % 2 == 0 { -1.0 } else { 1.0 };
        let temporal = k < 2;
        let dir_x = if temporal { -side } else { side };
        for artery in [false, true] {
            let angle = (up * 1.0f32).atan2(dir_x * rng.random_range(0.15..0.6));
            // Turn towards the horizontal direction `dir_x`: around the macula for the arcades.
            let turn = -(angle.sin() * dir_x).signum();
            let bend_radius = if temporal {
                rng.random_range(0.55..0.75)
            } else {
                rng.random_range(0.9..1.4)
            };
            let start_angle = rng.random::<f32>() * 2.0 * PI;
            let start_r = od_r * 0.3 * rng.random::<f32>();
            let size = if temporal { 1.0 } else { 0.75 } * if artery { 0.8 } else { 1.0 };
            let root = Branch {
                x: od.0 + start_angle.cos() * start_r,
                y: od.1 + start_angle.sin() * start_r,
                angle,
                width: geo.max_width * size * rng.random_range(0.9..1.0),
                contrast: if artery {
                    rng.random_range(0.35..0.45)
                } else {
                    rng.random_range(0.5..0.65)
                },
                curvature: turn / (bend_radius * fov_r),
                length: fov_r * if temporal { 2.2 } else { 1.4 },
                artery,
                depth: 0,
                twig: false,
            };
            grow(&mut rng, &geo, root, &mut segments);
        }
    }
    let vessels = rasterise(&segments, width, height);

    // Background, colour and noise. The per-image draws come first; the per-row noise uses
    // generators seeded from the image seed and the row, so rows can be filled in parallel.
    let low = ValueNoise::new(&mut rng, 4);
    let mid = ValueNoise::new(&mut rng, 14);
    let fine = ValueNoise::new(&mut rng, 48);
    let tint = [
        rng.random_range(0.9..1.05f32),
        rng.random_range(0.85..1.1f32),
        rng.random_range(0.8..1.2f32),
    ];
    let base = [205.0 * tint[0], 92.0 * tint[1], 42.0 * tint[2]];
    let falloff = rng.random_range(0.4..0.6f32);
    let row_seed = rng.random::<u64>();

    let w = width as usize;
    let mut image = RgbImage::new(width, height);
    let mut fov = GrayImage::new(width, height);
    let fov_r2 = fov_r * fov_r;
    image
        .par_chunks_mut(3 * w.max(1))
        .zip(fov.par_chunks_mut(w.max(1)))
        .enumerate()
        .for_each(|(y, (img_row, fov_row))| {
            let mut rng = ChaCha8Rng::seed_from_u64(
                row_seed ^ (y as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            let py = y as f32 + 0.5;
            for x in 0..w {
                let px = x as f32 + 0.5;
                let d2 = (px - cx).powi(2) + (py - cy).powi(2);
                if d2 > fov_r2 {
                    continue;
                }
                fov_row[x] = 1;
                let (u, v) = (px / wf, py / hf);
                let rr = d2.sqrt() / fov_r;
                let illum = (1.0 - falloff * rr.powf(2.5) + 0.09 * low.at(u, v)).max(0.05);
                let tex = 0.05 * mid.at(u, v) + 0.03 * fine.at(u, v);
                let mut c = [
                    base[0] * illum * (1.0 + tex),
                    base[1] * illum * (1.0 + 1.4 * tex),
                    base[2] * illum * (1.0 + tex),
                ];
                // The macula: darker, mostly in green and blue.
                let dm = ((px - fovea.0).powi(2) + (py - fovea.1).powi(2)) / (0.22 * fov_r).powi(2);
                let m = (-dm).exp();
                c[0] *= 1.0 - 0.12 * m;
                c[1] *= 1.0 - 0.3 * m;
                c[2] *= 1.0 - 0.3 * m;
                // The optic disc: a bright yellowish disc with a brighter cup.
                let dd = ((px - od.0).powi(2) + (py - od.1).powi(2)).sqrt() / od_r;
                let disc = 1.0 / (1.0 + dd.powi(6));
                let cup = (-(dd / 0.45).powi(2)).exp();
                let disc_col = [250.0, 175.0 * tint[1], 95.0 * tint[2]];
                for k in 0..3 {
                    c[k] += (disc_col[k] - c[k]) * 0.8 * disc;
                    c[k] += (255.0 - c[k]) * 0.35 * cup;
                }
                // Vessels darken green most and red least.
                let dark = vessels.dark[y * w + x];
                c[0] *= 1.0 - 0.45 * dark;
                c[1] *= 1.0 - dark;
                c[2] *= 1.0 - 0.75 * dark;
                let sigma = [2.5, 2.0, 1.5];
                for k in 0..3 {
                    let value = c[k] + sigma[k] * normal(&mut rng);
                    img_row[3 * x + k] = value.round().clamp(0.0, 255.0) as u8;
                }
            }
        });
    let mask_data: Vec<u8> = vessels
        .mask
        .iter()
        .zip(fov.as_raw())
        .map(|(&m, &f)| m & f)
        .collect();
    let mask = GrayImage::from_raw(width, height, mask_data).expect("same size");
    (image, mask, fov)
}

/// The seed of image `index` of a dataset with seed `seed` (a SplitMix64 mix, so that
/// neighbouring datasets share no images).
pub fn image_seed(seed: u64, index: usize) -> u64 {
    let mut z = seed
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((index as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes `n` synthetic images in the generic layout under `dir`: `images/<prefix>NNN.png` (RGB),
/// `masks/NNN.png` and `fov/NNN.png` (0/255), image `i` generated from
/// [`image_seed`]`(seed, i)`. Names have at least three digits. Folders are created; files are
/// written atomically; existing files of the same names are replaced. Returns the items,
/// sorted by name, as [`crate::layout::discover`] would find them.
pub fn write_dataset(
    dir: impl AsRef<Path>,
    n: usize,
    width: u32,
    height: u32,
    seed: u64,
    prefix: &str,
) -> Result<Vec<Item>> {
    let dir = dir.as_ref();
    if n == 0 {
        return Err(DataError::Invalid {
            name: "n",
            reason: "a dataset needs at least one image".into(),
        });
    }
    if width < MIN_SIZE || height < MIN_SIZE {
        return Err(DataError::Invalid {
            name: "size",
            reason: format!("{width}x{height} is below the minimum {MIN_SIZE}x{MIN_SIZE}"),
        });
    }
    for sub in ["images", "masks", "fov"] {
        let d = dir.join(sub);
        fs::create_dir_all(&d).map_err(|source| DataError::Io {
            path: d,
            error: source,
        })?;
    }
    let digits = (n - 1).to_string().len().max(3);
    (0..n)
        .into_par_iter()
        .map(|i| {
            let name = format!("{prefix}{i:0digits$}");
            let (image, mask, fov) = generate(image_seed(seed, i), width, height);
            let to_255 = |m: GrayImage| {
                let (w, h) = m.dimensions();
                GrayImage::from_fn(w, h, |x, y| Luma([m.get_pixel(x, y).0[0] * 255]))
            };
            let item = Item {
                image: dir.join("images").join(format!("{name}.png")),
                mask: Some(dir.join("masks").join(format!("{name}.png"))),
                fov: Some(dir.join("fov").join(format!("{name}.png"))),
                name,
                class_masks: None,
            };
            save_png_atomic(&item.image, &image)?;
            save_png_atomic(item.mask.as_ref().expect("set"), &to_255(mask))?;
            save_png_atomic(item.fov.as_ref().expect("set"), &to_255(fov))?;
            Ok(item)
        })
        .collect()
}

/// The lesion types of [`generate_lesions`], in class order: MA, HE, EX, SE.
const LESION_CODES: [&str; 4] = ["MA", "HE", "EX", "SE"];

/// A synthetic fundus image with lesions, from [`generate_lesions`].
#[derive(Debug, Clone, PartialEq)]
pub struct LesionSample {
    /// The image, lesions painted in.
    pub image: RgbImage,
    /// One 0/1 mask per lesion type (MA, HE, EX, SE), `None` where the lesion is absent; a
    /// present lesion has at least one pixel.
    pub lesions: [Option<GrayImage>; 4],
    /// The field of view (0/1); every lesion lies inside it.
    pub fov: GrayImage,
}

impl LesionSample {
    /// The merged label map (0 = background, 1 = MA, 2 = HE, 3 = EX, 4 = SE, a later lesion
    /// winning where two overlap): what [`crate::labels::load_label_map`] reads back from the
    /// files [`write_lesion_dataset`] writes.
    pub fn label_map(&self) -> GrayImage {
        let mut out = GrayImage::new(self.image.width(), self.image.height());
        for (class, mask) in (1u8..).zip(&self.lesions) {
            if let Some(m) = mask {
                for (o, &v) in out.iter_mut().zip(m.iter()) {
                    if v != 0 {
                        *o = class;
                    }
                }
            }
        }
        out
    }
}

/// A random pixel centre inside the FOV (the image centre after 200 misses).
fn point_in_fov(rng: &mut ChaCha8Rng, fov: &GrayImage) -> (f32, f32) {
    let (w, h) = fov.dimensions();
    for _ in 0..200 {
        let (x, y) = (rng.random_range(0..w), rng.random_range(0..h));
        if fov.get_pixel(x, y).0[0] != 0 {
            return (x as f32 + 0.5, y as f32 + 0.5);
        }
    }
    (w as f32 / 2.0, h as f32 / 2.0)
}

/// Sets the pixels of `mask` whose centre lies within `r` of `(cx, cy)` and inside the FOV.
fn stamp_disc(mask: &mut GrayImage, fov: &GrayImage, cx: f32, cy: f32, r: f32) {
    let (w, h) = mask.dimensions();
    let x_lo = (cx - r).floor().max(0.0) as u32;
    let y_lo = (cy - r).floor().max(0.0) as u32;
    let x_hi = ((cx + r).ceil().max(0.0) as u32).min(w);
    let y_hi = ((cy + r).ceil().max(0.0) as u32).min(h);
    for y in y_lo..y_hi {
        for x in x_lo..x_hi {
            let d = (x as f32 + 0.5 - cx).hypot(y as f32 + 0.5 - cy);
            if d <= r && fov.get_pixel(x, y).0[0] != 0 {
                mask.put_pixel(x, y, Luma([1]));
            }
        }
    }
}

/// Generates a synthetic fundus image of `width x height` pixels (the vessels of [`generate`]
/// with the same seed) with lesion blobs of the four IDRiD types; `present[k]` says whether
/// lesion type `k` (MA, HE, EX, SE) is drawn. Deterministic per seed, size and `present`.
///
/// With `s = min(width, height)`: MA are 3 to 8 small dark red dots of radius
/// `max(1, 0.006·s)`; HE 1 to 3 dark red blots of two discs of radius `max(2, 0.02..0.045·s)`;
/// EX 2 to 4 clusters of 2 to 5 bright yellow specks of radius `max(1, 0.008..0.018·s)`; SE 1 or 2
/// pale fluffy patches of three discs of radius `max(2, 0.025..0.05·s)`. Colours are painted in
/// class order, so a pixel looks like the lesion that labels it. Lesions are clipped to the FOV.
pub fn generate_lesions(seed: u64, width: u32, height: u32, present: [bool; 4]) -> LesionSample {
    let (mut image, _, fov) = generate(seed, width, height);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1E51_0A5E_ED5E_ED01);
    let s = width.min(height) as f32;
    let mut lesions: [Option<GrayImage>; 4] = [None, None, None, None];
    for (k, slot) in lesions.iter_mut().enumerate() {
        if !present[k] {
            continue;
        }
        let mut m = GrayImage::new(width, height);
        match k {
            0 => {
                for _ in 0..rng.random_range(3..=8) {
                    let (cx, cy) = point_in_fov(&mut rng, &fov);
                    let r = (0.006 * s).max(1.0) * rng.random_range(0.8..1.2f32);
                    stamp_disc(&mut m, &fov, cx, cy, r.max(1.0));
                }
            }
            1 => {
                for _ in 0..rng.random_range(1..=3) {
                    let (cx, cy) = point_in_fov(&mut rng, &fov);
                    let r = (rng.random_range(0.02..0.045f32) * s).max(2.0);
                    let a = rng.random::<f32>() * 2.0 * PI;
                    stamp_disc(&mut m, &fov, cx, cy, r);
                    stamp_disc(&mut m, &fov, cx + a.cos() * r, cy + a.sin() * r, 0.8 * r);
                }
            }
            2 => {
                for _ in 0..rng.random_range(2..=4) {
                    let (cx, cy) = point_in_fov(&mut rng, &fov);
                    for j in 0..rng.random_range(2..=5) {
                        let spread = if j == 0 { 0.0 } else { 0.05 * s };
                        let (dx, dy) = (normal(&mut rng) * spread, normal(&mut rng) * spread);
                        let r = (rng.random_range(0.008..0.018f32) * s).max(1.0);
                        stamp_disc(&mut m, &fov, cx + dx, cy + dy, r);
                    }
                }
            }
            _ => {
                for _ in 0..rng.random_range(1..=2) {
                    let (cx, cy) = point_in_fov(&mut rng, &fov);
                    for j in 0..3 {
                        let r = (rng.random_range(0.025..0.05f32) * s).max(2.0);
                        let off = if j == 0 { 0.0 } else { 0.6 * r };
                        let a = rng.random::<f32>() * 2.0 * PI;
                        stamp_disc(&mut m, &fov, cx + a.cos() * off, cy + a.sin() * off, r);
                    }
                }
            }
        }
        // Colour (RGB) and opacity of each lesion type.
        let (colour, alpha) = [
            ([95.0f32, 25.0, 20.0], 0.85f32),
            ([110.0, 20.0, 15.0], 0.8),
            ([245.0, 225.0, 95.0], 0.9),
            ([235.0, 225.0, 195.0], 0.65),
        ][k];
        for (p, &v) in image.pixels_mut().zip(m.iter()) {
            if v != 0 {
                for (v, c) in p.0.iter_mut().zip(colour) {
                    let mixed = f32::from(*v) * (1.0 - alpha) + c * alpha;
                    *v = mixed.round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        *slot = Some(m);
    }
    LesionSample {
        image,
        lesions,
        fov,
    }
}

/// Which lesion types image `index` of [`write_lesion_dataset`] has: MA always, HE except when
/// `index % 4 == 3`, EX except when `index % 4 == 2`, SE when `index` is even. Image 0 has all
/// four, and from two images on some lesion files are missing, as in IDRiD.
pub fn lesions_present(index: usize) -> [bool; 4] {
    [
        true,
        index % 4 != 3,
        index % 4 != 2,
        index.is_multiple_of(2),
    ]
}

/// Writes `n` synthetic lesion images in the IDRiD layout under `dir`:
/// `images/<prefix>NNN.png` (RGB) and `masks/{MA,HE,EX,SE}/<prefix>NNN.png` (0/255) for the
/// lesions present ([`lesions_present`]); no file for an absent lesion. Image `i` is
/// [`generate_lesions`]`(`[`image_seed`]`(seed, i), ...)`. Read back with
/// [`crate::layout::Layout::Idrid`], the label maps have 5 classes (C = 5). Returns the items,
/// sorted by name, as [`crate::layout::discover`] finds them.
pub fn write_lesion_dataset(
    dir: impl AsRef<Path>,
    n: usize,
    width: u32,
    height: u32,
    seed: u64,
    prefix: &str,
) -> Result<Vec<Item>> {
    let dir = dir.as_ref();
    if n == 0 {
        return Err(DataError::Invalid {
            name: "n",
            reason: "a dataset needs at least one image".into(),
        });
    }
    if width < MIN_SIZE || height < MIN_SIZE {
        return Err(DataError::Invalid {
            name: "size",
            reason: format!("{width}x{height} is below the minimum {MIN_SIZE}x{MIN_SIZE}"),
        });
    }
    let mut folders = vec![dir.join("images")];
    folders.extend(LESION_CODES.iter().map(|c| dir.join("masks").join(c)));
    for d in folders {
        fs::create_dir_all(&d).map_err(|source| DataError::Io {
            path: d,
            error: source,
        })?;
    }
    let digits = (n - 1).to_string().len().max(3);
    (0..n)
        .into_par_iter()
        .map(|i| {
            let name = format!("{prefix}{i:0digits$}");
            let sample = generate_lesions(image_seed(seed, i), width, height, lesions_present(i));
            let image = dir.join("images").join(format!("{name}.png"));
            save_png_atomic(&image, &sample.image)?;
            let mut files = Vec::new();
            for ((class, code), mask) in (1u8..).zip(LESION_CODES).zip(&sample.lesions) {
                if let Some(m) = mask {
                    let path = dir.join("masks").join(code).join(format!("{name}.png"));
                    let m255 = GrayImage::from_fn(width, height, |x, y| {
                        Luma([m.get_pixel(x, y).0[0] * 255])
                    });
                    save_png_atomic(&path, &m255)?;
                    files.push(ClassMask { class, path });
                }
            }
            Ok(Item {
                name,
                image,
                mask: None,
                fov: None,
                class_masks: Some(ClassMasks {
                    num_classes: 5,
                    files,
                }),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{MaskKind, load_fov, load_mask, load_rgb};
    use crate::layout::{DiscoverOptions, Layout, discover};

    /// Vessel fraction inside the FOV.
    fn vessel_fraction(mask: &GrayImage, fov: &GrayImage) -> f64 {
        let inside = fov.iter().filter(|&&f| f == 1).count();
        let vessels = mask.iter().filter(|&&m| m == 1).count();
        vessels as f64 / inside as f64
    }

    #[test]
    fn deterministic_per_seed() {
        let a = generate(7, 160, 128);
        let b = generate(7, 160, 128);
        assert_eq!(a.0, b.0);
        assert_eq!(a.1, b.1);
        assert_eq!(a.2, b.2);
        let c = generate(8, 160, 128);
        assert_ne!(a.0, c.0);
        assert_ne!(a.1, c.1);
        assert_eq!(a.0.dimensions(), (160, 128));
    }

    #[test]
    fn plausible_vessels_inside_the_fov() {
        for seed in 0..6 {
            let (img, mask, fov) = generate(seed, 384, 384);
            assert!(mask.iter().all(|&v| v <= 1) && fov.iter().all(|&v| v <= 1));
            let frac = vessel_fraction(&mask, &fov);
            assert!(
                (0.05..0.2).contains(&frac),
                "seed {seed}: vessel fraction {frac}"
            );
            // The FOV disc covers about pi * 0.47^2 of a square image.
            let fov_frac = fov.iter().filter(|&&f| f == 1).count() as f64 / fov.len() as f64;
            assert!((0.6..0.75).contains(&fov_frac), "fov fraction {fov_frac}");
            // Vessels only inside the FOV; black outside it.
            for ((m, f), p) in mask.iter().zip(fov.iter()).zip(img.pixels()) {
                assert!(*m <= *f);
                if *f == 0 {
                    assert_eq!(p.0, [0, 0, 0]);
                }
            }
            assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
            // Vessels are darker than the background in green, inside the FOV.
            let (mut v_sum, mut v_n, mut b_sum, mut b_n) = (0u64, 0u64, 0u64, 0u64);
            for ((m, f), p) in mask.iter().zip(fov.iter()).zip(img.pixels()) {
                if *f == 1 {
                    if *m == 1 {
                        v_sum += u64::from(p.0[1]);
                        v_n += 1;
                    } else {
                        b_sum += u64::from(p.0[1]);
                        b_n += 1;
                    }
                }
            }
            let (v_mean, b_mean) = (v_sum as f64 / v_n as f64, b_sum as f64 / b_n as f64);
            assert!(
                v_mean < 0.85 * b_mean,
                "seed {seed}: vessels {v_mean}, background {b_mean}"
            );
            // Reddish-orange: red above green above blue on average inside the FOV.
            let mean = |k: usize| {
                img.pixels()
                    .zip(fov.iter())
                    .filter(|&(_, &f)| f == 1)
                    .map(|(p, _)| f64::from(p.0[k]))
                    .sum::<f64>()
                    / b_n as f64
            };
            assert!(mean(0) > mean(1) && mean(1) > mean(2));
        }
    }

    #[test]
    fn vessel_widths_taper_to_thin() {
        // At 512 wide, the thickest vessels are about 7.7 px and the thinnest 1 px: the mask has
        // both pixels deep inside wide vessels and thin one-pixel runs.
        let (_, mask, _) = generate(3, 512, 512);
        let at = |x: i64, y: i64| {
            if x < 0 || y < 0 || x >= 512 || y >= 512 {
                0
            } else {
                mask.get_pixel(x as u32, y as u32).0[0]
            }
        };
        let (mut deep, mut thin) = (0, 0);
        for y in 0..512i64 {
            for x in 0..512i64 {
                if at(x, y) == 0 {
                    continue;
                }
                let all_within = |r: i64| (-r..=r).all(|d| at(x + d, y) == 1 && at(x, y + d) == 1);
                if all_within(2) {
                    deep += 1;
                }
                if at(x - 1, y) == 0 && at(x + 1, y) == 0 || at(x, y - 1) == 0 && at(x, y + 1) == 0
                {
                    thin += 1;
                }
            }
        }
        assert!(deep > 200, "{deep} pixels inside wide vessels");
        assert!(thin > 500, "{thin} pixels of thin vessels");
    }

    #[test]
    fn dataset_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let items = write_dataset(t.path(), 3, 96, 80, 42, "").unwrap();
        assert_eq!(
            items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["000", "001", "002"]
        );
        assert_eq!(Layout::detect(t.path()).unwrap(), Layout::Generic);
        let found = discover(t.path(), Layout::Generic, &DiscoverOptions::default()).unwrap();
        assert_eq!(found, items);
        for (i, item) in found.iter().enumerate() {
            let (img, mask, fov) = generate(image_seed(42, i), 96, 80);
            assert_eq!(load_rgb(&item.image).unwrap(), img);
            let m = load_mask(item.mask.as_ref().unwrap(), MaskKind::Binary).unwrap();
            assert_eq!(m, mask);
            assert_eq!(load_fov(item.fov.as_ref().unwrap()).unwrap(), fov);
        }
        // Masks are stored as 0/255.
        let raw = image::open(found[0].mask.as_ref().unwrap())
            .unwrap()
            .to_luma8();
        assert!(raw.iter().all(|&v| v == 0 || v == 255));
        assert!(raw.contains(&255));
        assert!(crate::layout::check_items(&found, MaskKind::Binary).is_empty());
    }

    #[test]
    fn dataset_rejects_bad_parameters() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(
            write_dataset(t.path(), 0, 64, 64, 1, ""),
            Err(DataError::Invalid { name: "n", .. })
        ));
        assert!(matches!(
            write_dataset(t.path(), 2, 16, 64, 1, ""),
            Err(DataError::Invalid { name: "size", .. })
        ));
    }

    #[test]
    fn seeds_differ_per_index_and_dataset() {
        let seeds: Vec<u64> = (0..4).map(|i| image_seed(1, i)).collect();
        assert_ne!(seeds[0], seeds[1]);
        assert_ne!(image_seed(0, 1), image_seed(1, 0));
        assert_eq!(image_seed(5, 3), image_seed(5, 3));
    }

    #[test]
    fn tiny_sizes_do_not_panic() {
        for (w, h) in [(1, 1), (8, 5), (33, 64)] {
            let (img, mask, fov) = generate(1, w, h);
            assert_eq!(img.dimensions(), (w, h));
            assert_eq!(mask.dimensions(), (w, h));
            assert_eq!(fov.dimensions(), (w, h));
        }
    }
}
