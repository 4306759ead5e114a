//! Reading images, masks and field-of-view (FOV) masks, and writing PNGs atomically.
//!
//! The format of a file is detected from its content, never from its extension, so
//! `01_dr.JPG`, a PNG named `.tif` or a DRIVE GIF all load. Supported: JPEG, PNG (8 and 16 bit,
//! grey, palette, RGB, RGBA), TIFF (1, 8 and 16 bit, grey or RGB, uncompressed, LZW, Deflate,
//! PackBits), GIF and PNM (PBM/PGM/PPM).
//!
//! Conversions:
//! - [`load_rgb`] returns 8-bit RGB. Grey is replicated to the three channels, palette images are
//!   expanded, alpha is dropped (not composited), and 16-bit samples are rounded to 8 bits as
//!   `round(v * 255 / 65535)` (the `image` crate's conversion), so 65535 → 255 and 32896 → 128.
//! - [`load_mask`] returns class indices (0/1 for binary masks), see [`MaskKind`].
//! - [`load_fov`] returns 0/1.
//!
//! Every error names the file. The pixel count of an image is checked against
//! [`LoadLimits::max_pixels`] from the header, before any pixel is decoded.
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use image::codecs::png::PngEncoder;
use image::{
    DynamicImage, EncodableLayout, GrayImage, ImageBuffer, ImageDecoder, ImageReader,
    PixelWithColorType, RgbImage,
};

use crate::error::{DataError, Result};

/// Limits checked before an image is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// The largest accepted `width * height`, read from the header. Default: 100 megapixels.
    pub max_pixels: u64,
}

impl LoadLimits {
    /// The default limit: 100 megapixels (HRF images are 8.2 megapixels).
    pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;
}

impl Default for LoadLimits {
    fn default() -> Self {
        Self {
            max_pixels: Self::DEFAULT_MAX_PIXELS,
        }
    }
}

/// How the values of a mask file are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MaskKind {
    /// A binary mask, returned as 0/1. A file with values in {0, 1} is taken as is. Any other
    /// file is binarised at `> 127` if at least [`BINARY_MIN_EXTREME_FRACTION`] of its pixels
    /// are exactly 0 or 255 (this accepts anti-aliased masks such as HRF `11_h`..`13_h`);
    /// otherwise it is rejected with [`DataError::MaskValues`].
    Binary,
    /// A class-index mask with this many classes (background included): every value must be
    /// below the count. With 2 classes a {0, 255} mask is also accepted and read as 0/1.
    Classes(u8),
    /// A class-index mask with this many classes that may also mark pixels as unlabelled with
    /// [`IGNORE_LABEL`] (Cityscapes `labelTrainIds`): every value must be below the count or
    /// equal to [`IGNORE_LABEL`], which is kept as is (never binarised, even with 2 classes).
    /// A separate kind, so that a 0/255 binary mask read with 3 or more [`MaskKind::Classes`]
    /// is still an error instead of silently becoming background and ignore.
    ClassesOrIgnore(u8),
}

impl MaskKind {
    /// The number of classes, background included: 2 for [`MaskKind::Binary`].
    pub fn num_classes(self) -> usize {
        match self {
            MaskKind::Binary => 2,
            MaskKind::Classes(n) | MaskKind::ClassesOrIgnore(n) => usize::from(n),
        }
    }
}

/// The label of pixels that belong to no class (Cityscapes' `255`): kept as is by every mask
/// reader and resize of this crate, counted apart by [`crate::labels::ClassPixels`], and skipped
/// by the metrics (truth values `>= C`).
pub const IGNORE_LABEL: u8 = 255;

/// The smallest fraction of pixels that must be exactly 0 or 255 for a mask that is not 0/1 to
/// be binarised by [`MaskKind::Binary`].
pub const BINARY_MIN_EXTREME_FRACTION: f64 = 0.9;

/// The number of pixels of an image, as a 64-bit count.
fn pixel_count(width: u32, height: u32) -> u64 {
    u64::from(width) * u64::from(height)
}

/// Opens `path` and returns a reader whose format was guessed from the content.
fn open_reader(path: &Path) -> Result<ImageReader<BufReader<File>>> {
    let io_err = |source| DataError::Io {
        path: path.to_path_buf(),
        error: source,
    };
    let file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if len == 0 {
        return Err(DataError::Decode {
            path: path.to_path_buf(),
            reason: "empty file (0 bytes)".into(),
        });
    }
    let reader = ImageReader::new(BufReader::new(file))
        .with_guessed_format()
        .map_err(io_err)?;
    match reader.format() {
        None => Err(DataError::Decode {
            path: path.to_path_buf(),
            reason: "unrecognised format: the content is not JPEG, PNG, TIFF, GIF or PNM".into(),
        }),
        Some(image::ImageFormat::Jpeg) => {
            check_jpeg_complete(path)?;
            Ok(reader)
        }
        Some(_) => Ok(reader),
    }
}

/// Fails if a JPEG file has no end-of-image marker after its last start-of-scan marker.
///
/// The JPEG decoder fills the missing part of a truncated file with grey instead of failing,
/// so truncation is detected here. Neither marker can occur inside entropy-coded data (0xFF is
/// stuffed there), and an EXIF thumbnail's markers come before the main image's scan.
fn check_jpeg_complete(path: &Path) -> Result<()> {
    let bytes = fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        error: source,
    })?;
    let (mut last_sos, mut last_eoi) = (None, None);
    for (i, pair) in bytes.windows(2).enumerate() {
        if pair[0] == 0xFF {
            match pair[1] {
                0xDA => last_sos = Some(i),
                0xD9 => last_eoi = Some(i),
                _ => {}
            }
        }
    }
    match (last_sos, last_eoi) {
        (Some(sos), Some(eoi)) if eoi > sos => Ok(()),
        _ => Err(DataError::Decode {
            path: path.to_path_buf(),
            reason: "truncated JPEG: no end-of-image marker after the last scan".into(),
        }),
    }
}

/// Wraps a decoder error as [`DataError::Decode`] for `path`.
fn decode_err(path: &Path, err: image::ImageError) -> DataError {
    match err {
        image::ImageError::IoError(source) => DataError::Decode {
            path: path.to_path_buf(),
            reason: format!("truncated or unreadable: {source}"),
        },
        other => DataError::Decode {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

/// Reads only the header of `path` and returns its `(width, height)`, checking `limits`.
pub fn image_dimensions(path: impl AsRef<Path>, limits: &LoadLimits) -> Result<(u32, u32)> {
    let path = path.as_ref();
    let decoder = open_reader(path)?
        .into_decoder()
        .map_err(|e| decode_err(path, e))?;
    let (width, height) = decoder.dimensions();
    check_limits(path, width, height, limits)?;
    Ok((width, height))
}

/// Fails with [`DataError::TooLarge`] if `width * height` exceeds the limit.
fn check_limits(path: &Path, width: u32, height: u32, limits: &LoadLimits) -> Result<()> {
    if pixel_count(width, height) > limits.max_pixels {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    if width == 0 || height == 0 {
        return Err(DataError::Decode {
            path: path.to_path_buf(),
            reason: format!("image has no pixels ({width}x{height})"),
        });
    }
    Ok(())
}

/// Decodes `path` into whatever colour type it has, after checking its size against `limits`.
pub fn load_dynamic(path: impl AsRef<Path>, limits: &LoadLimits) -> Result<DynamicImage> {
    let path = path.as_ref();
    let mut reader = open_reader(path)?;
    // Our own pixel limit replaces the crate's allocation limit, which would otherwise refuse
    // large images below our limit; a 16-bit RGBA image takes 8 bytes per pixel.
    let mut crate_limits = image::Limits::default();
    crate_limits.max_alloc = Some(
        limits
            .max_pixels
            .saturating_mul(8)
            .max(crate_limits.max_alloc.unwrap_or(0)),
    );
    reader.limits(crate_limits);
    let decoder = reader.into_decoder().map_err(|e| decode_err(path, e))?;
    let (width, height) = decoder.dimensions();
    check_limits(path, width, height, limits)?;
    DynamicImage::from_decoder(decoder).map_err(|e| decode_err(path, e))
}

/// Loads an image as 8-bit RGB with the default [`LoadLimits`]. See the module documentation
/// for the conversions.
pub fn load_rgb(path: impl AsRef<Path>) -> Result<RgbImage> {
    load_rgb_with(path, &LoadLimits::default())
}

/// Loads an image as 8-bit RGB, checking `limits`.
pub fn load_rgb_with(path: impl AsRef<Path>, limits: &LoadLimits) -> Result<RgbImage> {
    Ok(match load_dynamic(path, limits)? {
        DynamicImage::ImageRgb8(img) => img,
        other => other.to_rgb8(),
    })
}

/// Reads a decoded mask as one value per pixel: grey as is, 16-bit grey as is when all values
/// are below 256 (class indices) and rounded to 8 bits otherwise, RGB only when the channels
/// agree at every pixel. Alpha is ignored.
fn mask_values(path: &Path, img: DynamicImage) -> Result<GrayImage> {
    let (width, height) = (img.width(), img.height());
    match img {
        DynamicImage::ImageLuma8(g) => Ok(g),
        DynamicImage::ImageLumaA8(_) => Ok(img.to_luma8()),
        DynamicImage::ImageLuma16(g) => Ok(gray16_values(&g)),
        DynamicImage::ImageLumaA16(_) => Ok(gray16_values(&img.to_luma16())),
        other => {
            let rgb = other.to_rgb8();
            let mut out = GrayImage::new(width, height);
            let mut differing = 0u64;
            let mut first: Option<(u32, u32, [u8; 3])> = None;
            for ((x, y, p), o) in rgb.enumerate_pixels().zip(out.pixels_mut()) {
                let [r, g, b] = p.0;
                if r != g || g != b {
                    differing += 1;
                    first.get_or_insert((x, y, [r, g, b]));
                }
                o.0[0] = r;
            }
            if let Some((x, y, [r, g, b])) = first {
                return Err(DataError::MaskValues {
                    path: path.to_path_buf(),
                    found: format!(
                        "a colour image: R, G and B differ at {differing} of {} pixels \
                         (first at x={x}, y={y}: ({r}, {g}, {b}))",
                        pixel_count(width, height)
                    ),
                });
            }
            Ok(out)
        }
    }
}

/// 16-bit grey to 8 bits: as is if all values fit in 8 bits, else rounded `v * 255 / 65535`.
fn gray16_values(g: &ImageBuffer<image::Luma<u16>, Vec<u16>>) -> GrayImage {
    let max = g.pixels().map(|p| p.0[0]).max().unwrap_or(0);
    let (w, h) = g.dimensions();
    let data = g
        .as_raw()
        .iter()
        .map(|&v| {
            if max < 256 {
                v as u8
            } else {
                ((u32::from(v) * 255 + 32767) / 65535) as u8
            }
        })
        .collect();
    GrayImage::from_raw(w, h, data).expect("same size")
}

/// A 256-bin histogram of a grey image.
fn histogram(img: &GrayImage) -> [u64; 256] {
    let mut hist = [0u64; 256];
    for &v in img.as_raw() {
        hist[usize::from(v)] += 1;
    }
    hist
}

/// A short description of the values in a histogram: range, distinct count, and the values
/// themselves when there are few.
fn describe_values(hist: &[u64; 256]) -> String {
    let present: Vec<usize> = (0..256).filter(|&v| hist[v] > 0).collect();
    let (min, max) = (present[0], present[present.len() - 1]);
    if present.len() <= 8 {
        let list: Vec<String> = present.iter().map(|v| v.to_string()).collect();
        format!("values {{{}}}", list.join(", "))
    } else {
        format!("values {min}..={max} ({} distinct)", present.len())
    }
}

/// Loads a mask as class indices, with the default [`LoadLimits`]. See [`MaskKind`].
pub fn load_mask(path: impl AsRef<Path>, kind: MaskKind) -> Result<GrayImage> {
    load_mask_with(path, kind, &LoadLimits::default())
}

/// Loads a mask as class indices, checking `limits`. See [`MaskKind`].
pub fn load_mask_with(
    path: impl AsRef<Path>,
    kind: MaskKind,
    limits: &LoadLimits,
) -> Result<GrayImage> {
    let path = path.as_ref();
    let mut mask = mask_values(path, load_dynamic(path, limits)?)?;
    let hist = histogram(&mask);
    let total: u64 = hist.iter().sum();
    let only = |allowed: &[usize]| (0..256).all(|v| hist[v] == 0 || allowed.contains(&v));
    match kind {
        MaskKind::Binary => {
            if only(&[0, 1]) {
                return Ok(mask);
            }
            let extreme = hist[0] + hist[255];
            let fraction_other = 1.0 - extreme as f64 / total as f64;
            if extreme as f64 >= BINARY_MIN_EXTREME_FRACTION * total as f64 {
                for v in mask.iter_mut() {
                    *v = u8::from(*v > 127);
                }
                Ok(mask)
            } else {
                Err(DataError::MaskValues {
                    path: path.to_path_buf(),
                    found: format!(
                        "{}, {:.1}% of pixels neither 0 nor 255 (a binary mask needs values \
                         0/1, or at least {:.0}% of pixels exactly 0 or 255)",
                        describe_values(&hist),
                        100.0 * fraction_other,
                        100.0 * BINARY_MIN_EXTREME_FRACTION
                    ),
                })
            }
        }
        MaskKind::ClassesOrIgnore(classes) => {
            let classes = usize::from(classes);
            let ignore = usize::from(IGNORE_LABEL);
            if (0..256).all(|v| hist[v] == 0 || v < classes || v == ignore) {
                return Ok(mask);
            }
            let offending: Vec<String> = (classes..ignore)
                .filter(|&v| hist[v] > 0)
                .map(|v| v.to_string())
                .collect();
            let shown = offending.len().min(10);
            Err(DataError::MaskValues {
                path: path.to_path_buf(),
                found: format!(
                    "values {}{} neither below the class count {classes} nor the ignore label \
                     {IGNORE_LABEL} ({})",
                    offending[..shown].join(", "),
                    if offending.len() > shown { ", ..." } else { "" },
                    describe_values(&hist)
                ),
            })
        }
        MaskKind::Classes(classes) => {
            let classes = usize::from(classes);
            if (0..256).all(|v| hist[v] == 0 || v < classes) {
                return Ok(mask);
            }
            if classes == 2 && only(&[0, 255]) {
                for v in mask.iter_mut() {
                    *v = u8::from(*v == 255);
                }
                return Ok(mask);
            }
            let offending: Vec<String> = (classes..256)
                .filter(|&v| hist[v] > 0)
                .map(|v| v.to_string())
                .collect();
            let shown = offending.len().min(10);
            Err(DataError::MaskValues {
                path: path.to_path_buf(),
                found: format!(
                    "values {}{} not below the class count {classes} ({})",
                    offending[..shown].join(", "),
                    if offending.len() > shown { ", ..." } else { "" },
                    describe_values(&hist)
                ),
            })
        }
    }
}

/// Loads a field-of-view mask as 0/1 with the default [`LoadLimits`]: a pixel is inside when
/// any of its colour channels is above 127 (alpha ignored). A file whose values are all 0 or 1
/// is taken as is.
pub fn load_fov(path: impl AsRef<Path>) -> Result<GrayImage> {
    load_fov_with(path, &LoadLimits::default())
}

/// Loads a field-of-view mask as 0/1, checking `limits`. See [`load_fov`].
pub fn load_fov_with(path: impl AsRef<Path>, limits: &LoadLimits) -> Result<GrayImage> {
    let path = path.as_ref();
    let img = load_dynamic(path, limits)?;
    let (w, h) = (img.width(), img.height());
    let max_channel: Vec<u8> = match img {
        DynamicImage::ImageLuma8(g) => g.into_raw(),
        DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLuma16(_) => img.to_luma8().into_raw(),
        DynamicImage::ImageLumaA16(_) => img.to_luma8().into_raw(),
        other => other
            .to_rgb8()
            .pixels()
            .map(|p| p.0[0].max(p.0[1]).max(p.0[2]))
            .collect(),
    };
    let zero_one = max_channel.iter().all(|&v| v <= 1);
    let data = if zero_one {
        max_channel
    } else {
        max_channel.iter().map(|&v| u8::from(v > 127)).collect()
    };
    Ok(GrayImage::from_raw(w, h, data).expect("same size"))
}

/// An image that can be written as PNG by [`save_png_atomic`]: [`DynamicImage`], [`GrayImage`],
/// [`RgbImage`], RGBA and 16-bit buffers.
pub trait PngImage {
    /// Encodes the image as PNG into `out`.
    fn encode_png(&self, out: &mut dyn Write) -> image::ImageResult<()>;
}

impl PngImage for DynamicImage {
    fn encode_png(&self, out: &mut dyn Write) -> image::ImageResult<()> {
        self.write_with_encoder(PngEncoder::new(out))
    }
}

impl<P> PngImage for ImageBuffer<P, Vec<P::Subpixel>>
where
    P: PixelWithColorType,
    [P::Subpixel]: EncodableLayout,
{
    fn encode_png(&self, out: &mut dyn Write) -> image::ImageResult<()> {
        self.write_with_encoder(PngEncoder::new(out))
    }
}

/// A counter that makes temporary names unique within this process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `image` as PNG to `path` atomically (see [`write_atomic_with`]).
pub fn save_png_atomic(path: impl AsRef<Path>, image: &impl PngImage) -> Result<()> {
    let path = path.as_ref();
    write_atomic_with(path, |out| {
        image.encode_png(out).map_err(|e| match e {
            image::ImageError::IoError(source) => source,
            other => std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("cannot encode as PNG: {other}"),
            ),
        })
    })
}

/// Writes `bytes` to `path` atomically (see [`write_atomic_with`]).
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path.as_ref(), |out| out.write_all(bytes))
}

/// Writes a file atomically: `write` fills a hidden temporary file in the same folder, which
/// is flushed, synced to disk and renamed over `path`, and the folder is synced. On any error
/// (a full disk included) the temporary file is removed and `path` is left as it was (absent
/// or the old file). The folder must exist.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| DataError::Invalid {
        name: "path",
        reason: format!("{} has no file name", path.display()),
    })?;
    let temp = dir.join(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let attempt = || -> std::io::Result<()> {
        let mut out = BufWriter::new(File::create(&temp)?);
        write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)
    };
    if let Err(source) = attempt() {
        let _ = fs::remove_file(&temp);
        return Err(DataError::Io {
            path: path.to_path_buf(),
            error: source,
        });
    }
    // Make the rename itself durable where the platform allows syncing a folder.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes the temporary files [`write_atomic_with`] left in `dir` when a process was killed
/// mid-write (`.<name>.tmp-<pid>-<n>`), where that process no longer runs; returns what it
/// removed. A temporary file of a living process (another `ds2f` writing into the same folder)
/// is left alone; where `/proc` is absent, only this process's own leftovers would qualify, and
/// there are none, so nothing is removed.
pub fn remove_stale_temps(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |error| DataError::Io {
        path: dir.to_path_buf(),
        error,
    };
    let proc_fs = Path::new("/proc/self").exists();
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix('.')
            .and_then(|n| n.rsplit_once(".tmp-"))
            .and_then(|(_, tail)| tail.split_once('-'))
            .and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<u32>().ok()))
        else {
            continue;
        };
        let alive = !proc_fs || process_alive(pid);
        if !alive && path.is_file() {
            fs::remove_file(&path).map_err(|error| DataError::Io {
                path: path.clone(),
                error,
            })?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// Whether process `pid` of this machine is running (`/proc/<pid>` exists; this process
/// always is). Only meaningful where `/proc` exists.
pub fn process_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Luma, Rgb, Rgba};

    #[test]
    fn stale_temporary_files_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // Linux pids stay below 2^22, so this one cannot be running.
        let dead = dir.path().join(".last.ckpt.tmp-999999999-3");
        let own = dir
            .path()
            .join(format!(".metrics.csv.tmp-{}-0", std::process::id()));
        let keep = [
            dir.path().join("last.ckpt"),
            dir.path().join(".hidden.tmp-x"),
        ];
        for p in [&dead, &own].into_iter().chain(&keep) {
            fs::write(p, b"x").unwrap();
        }
        let removed = remove_stale_temps(dir.path()).unwrap();
        assert_eq!(removed, vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(own.exists() && keep.iter().all(|p| p.exists()));
    }

    macro_rules! shared {
        ($rel:literal) => {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/", $rel)
        };
    }

    /// A small RGB test image with some structure, so that compressed formats are not trivial.
    fn pattern(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            Rgb([
                (x * 7 % 256) as u8,
                (y * 5 % 256) as u8,
                ((x ^ y) % 256) as u8,
            ])
        })
    }

    fn write_as(dir: &Path, name: &str, img: &DynamicImage, format: ImageFormat) -> PathBuf {
        let path = dir.join(name);
        img.save_with_format(&path, format).unwrap();
        path
    }

    fn truncate(path: &Path, keep: f64) {
        let bytes = fs::read(path).unwrap();
        let n = (bytes.len() as f64 * keep) as usize;
        fs::write(path, &bytes[..n]).unwrap();
    }

    fn assert_decode_err(res: Result<impl std::fmt::Debug>, path: &Path) -> String {
        match res {
            Err(e @ DataError::Decode { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&path.display().to_string()), "{msg}");
                msg
            }
            other => panic!(
                "expected Decode error for {}, got {other:?}",
                path.display()
            ),
        }
    }

    #[test]
    #[cfg_attr(no_shared_data, ignore = "needs ../shared/data")]
    fn drive_tiff_gif_mask_and_fov() {
        let img = load_rgb(shared!("drive/images/21_training.tif")).unwrap();
        assert_eq!(img.dimensions(), (565, 584));
        // A fundus photo is red-dominant inside the FOV.
        let c = img.get_pixel(282, 292).0;
        assert!(c[0] > c[2], "centre pixel {c:?}");
        let mask = load_mask(shared!("drive/masks/21_training.gif"), MaskKind::Binary).unwrap();
        assert_eq!(mask.dimensions(), (565, 584));
        let ones = mask.iter().filter(|&&v| v == 1).count() as f64;
        assert!(mask.iter().all(|&v| v <= 1));
        let frac = ones / mask.len() as f64;
        assert!((0.05..0.12).contains(&frac), "vessel fraction {frac}");
        let fov = load_fov(shared!("drive/fov/21_training.gif")).unwrap();
        assert_eq!(fov.dimensions(), (565, 584));
        assert_eq!(fov.get_pixel(282, 292).0[0], 1);
        assert_eq!(fov.get_pixel(0, 0).0[0], 0);
        let inside = fov.iter().filter(|&&v| v == 1).count() as f64 / fov.len() as f64;
        assert!((0.6..0.8).contains(&inside), "fov fraction {inside}");
        // Vessels lie inside the FOV.
        let outside_vessels = mask
            .iter()
            .zip(fov.iter())
            .filter(|&(&m, &f)| m == 1 && f == 0)
            .count();
        assert!(
            outside_vessels < 50,
            "{outside_vessels} vessel pixels outside the FOV"
        );
    }

    #[test]
    #[cfg_attr(no_shared_data, ignore = "needs ../shared/data")]
    fn hrf_antialiased_mask_binarises() {
        let path = shared!("hrf/masks/11_h.tif");
        // As stored, the mask has many grey levels.
        let raw = load_dynamic(path, &LoadLimits::default())
            .unwrap()
            .to_luma8();
        let distinct = histogram(&raw).iter().filter(|&&c| c > 0).count();
        assert!(distinct > 100, "{distinct} distinct values");
        let mask = load_mask(path, MaskKind::Binary).unwrap();
        assert_eq!(mask.dimensions(), (3504, 2336));
        assert!(mask.iter().all(|&v| v <= 1));
        let frac = mask.iter().filter(|&&v| v == 1).count() as f64 / mask.len() as f64;
        assert!((0.05..0.15).contains(&frac), "vessel fraction {frac}");
        // Not binary as classes: 2 classes needs {0,255} exactly.
        let err = load_mask(path, MaskKind::Classes(2)).unwrap_err();
        assert!(matches!(err, DataError::MaskValues { .. }), "{err}");
    }

    /// All 45 HRF masks (three anti-aliased) binarise (about 5 s in release mode).
    #[test]
    #[cfg_attr(no_shared_data, ignore = "needs ../shared/data")]
    fn hrf_all_masks_binarise() {
        let dir = Path::new(shared!("hrf/masks"));
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "tif"))
            .collect();
        names.sort();
        assert_eq!(names.len(), 45);
        for path in names {
            let raw = load_dynamic(&path, &LoadLimits::default())
                .unwrap()
                .to_luma8();
            let hist = histogram(&raw);
            let extreme = (hist[0] + hist[255]) as f64 / raw.len() as f64;
            let mask = load_mask(&path, MaskKind::Binary).unwrap();
            let frac = mask.iter().filter(|&&v| v == 1).count() as f64 / mask.len() as f64;
            eprintln!("{}: 0/255 {extreme:.4}, vessels {frac:.4}", path.display());
            assert!((0.04..0.15).contains(&frac));
        }
    }

    #[test]
    #[cfg_attr(no_shared_data, ignore = "needs ../shared/data")]
    fn hrf_uppercase_jpg_and_rgb_tiff_fov() {
        let img = load_rgb(shared!("hrf/images/01_dr.JPG")).unwrap();
        assert_eq!(img.dimensions(), (3504, 2336));
        let fov = load_fov(shared!("hrf/fov/01_dr.tif")).unwrap();
        assert_eq!(fov.dimensions(), (3504, 2336));
        assert_eq!(fov.get_pixel(1752, 1168).0[0], 1);
        assert_eq!(fov.get_pixel(0, 0).0[0], 0);
        assert_eq!(
            image_dimensions(shared!("hrf/images/01_dr.JPG"), &LoadLimits::default()).unwrap(),
            (3504, 2336)
        );
    }

    #[test]
    #[cfg_attr(no_shared_data, ignore = "needs ../shared/data")]
    fn too_large_is_checked_from_the_header() {
        let limits = LoadLimits {
            max_pixels: 1_000_000,
        };
        let path = Path::new(shared!("hrf/images/01_dr.JPG"));
        match load_rgb_with(path, &limits) {
            Err(DataError::TooLarge {
                width,
                height,
                limit,
                ..
            }) => assert_eq!((width, height, limit), (3504, 2336, 1_000_000)),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert!(matches!(
            image_dimensions(path, &limits),
            Err(DataError::TooLarge { .. })
        ));
    }

    #[test]
    fn empty_and_non_image_files() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.png");
        fs::write(&empty, b"").unwrap();
        let msg = assert_decode_err(load_rgb(&empty), &empty);
        assert!(msg.contains("empty"), "{msg}");
        let text = dir.path().join("notes.png");
        fs::write(&text, b"this is a text file, not a picture\n").unwrap();
        let msg = assert_decode_err(load_rgb(&text), &text);
        assert!(msg.contains("unrecognised"), "{msg}");
        let missing = dir.path().join("missing.png");
        assert!(matches!(load_rgb(&missing), Err(DataError::Io { .. })));
    }

    #[test]
    fn truncated_files_fail_with_decode() {
        let dir = tempfile::tempdir().unwrap();
        let img = DynamicImage::ImageRgb8(pattern(64, 48));
        for (name, format) in [
            ("a.png", ImageFormat::Png),
            ("a.jpg", ImageFormat::Jpeg),
            ("a.tif", ImageFormat::Tiff),
        ] {
            let path = write_as(dir.path(), name, &img, format);
            assert_eq!(load_rgb(&path).unwrap().dimensions(), (64, 48));
            truncate(&path, 0.5);
            assert_decode_err(load_rgb(&path), &path);
        }
    }

    #[test]
    fn format_comes_from_content_not_extension() {
        let dir = tempfile::tempdir().unwrap();
        let img = DynamicImage::ImageRgb8(pattern(10, 6));
        // A PNG named .JPG, and a PPM named .tif.
        let png = write_as(dir.path(), "x.JPG", &img, ImageFormat::Png);
        assert_eq!(load_rgb(&png).unwrap(), pattern(10, 6));
        let ppm = write_as(dir.path(), "y.tif", &img, ImageFormat::Pnm);
        assert_eq!(load_rgb(&ppm).unwrap(), pattern(10, 6));
        let gif = write_as(dir.path(), "z.gif", &img, ImageFormat::Gif);
        assert_eq!(load_rgb(&gif).unwrap().dimensions(), (10, 6));
    }

    #[test]
    fn sixteen_bit_png_rounds_to_eight_bits() {
        let dir = tempfile::tempdir().unwrap();
        let vals = [0u16, 257, 32896, 65535, 32767, 128];
        let img = ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_fn(6, 1, |x, _| {
            let v = vals[x as usize];
            image::Rgb([v, v, 65535 - v])
        });
        let path = dir.path().join("deep.png");
        save_png_atomic(&path, &img).unwrap();
        let rgb = load_rgb(&path).unwrap();
        let got: Vec<[u8; 3]> = rgb.pixels().map(|p| p.0).collect();
        assert_eq!(
            got,
            vec![
                [0, 0, 255],
                [1, 1, 254],
                [128, 128, 127],
                [255, 255, 0],
                [127, 127, 128],
                [0, 0, 255]
            ]
        );
    }

    #[test]
    fn grey_palette_and_rgba_become_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let grey = GrayImage::from_fn(4, 3, |x, y| Luma([(x * 40 + y) as u8]));
        let gpath = dir.path().join("grey.png");
        save_png_atomic(&gpath, &grey).unwrap();
        let rgb = load_rgb(&gpath).unwrap();
        assert_eq!(rgb.get_pixel(3, 2).0, [122, 122, 122]);

        let rgba = image::RgbaImage::from_fn(4, 3, |x, _| Rgba([x as u8 * 50, 9, 200, 17]));
        let apath = dir.path().join("alpha.png");
        save_png_atomic(&apath, &rgba).unwrap();
        assert_eq!(load_rgb(&apath).unwrap().get_pixel(2, 1).0, [100, 9, 200]);

        // A GIF is palette-based: its indices are expanded to the palette colours.
        let pal = RgbImage::from_fn(4, 3, |x, _| {
            if x % 2 == 0 {
                Rgb([200, 80, 30])
            } else {
                Rgb([10, 20, 30])
            }
        });
        let ppath = write_as(
            dir.path(),
            "pal.gif",
            &DynamicImage::ImageRgb8(pal.clone()),
            ImageFormat::Gif,
        );
        assert_eq!(load_rgb(&ppath).unwrap(), pal);
    }

    #[test]
    fn palette_png_is_expanded() {
        // The image crate writes no indexed PNGs, so the file is built by hand.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("indexed.png");
        fs::write(&path, indexed_png()).unwrap();
        let rgb = load_rgb(&path).unwrap();
        assert_eq!(rgb.dimensions(), (2, 1));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(rgb.get_pixel(1, 0).0, [0, 0, 255]);
        // As a mask, a palette of distinct colours is a colour image.
        let err = load_mask(&path, MaskKind::Binary).unwrap_err();
        assert!(err.to_string().contains("colour image"), "{err}");
    }

    /// A valid 2x1 8-bit indexed PNG: palette [red, blue], pixels [0, 1]. Chunks are built by
    /// hand with a stored (uncompressed) zlib block, Adler-32 computed below.
    fn indexed_png() -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut body = kind.to_vec();
            body.extend_from_slice(data);
            out.extend_from_slice(&body);
            out.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
        }
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&2u32.to_be_bytes());
        ihdr.extend_from_slice(&1u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 3, 0, 0, 0]);
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(&mut png, b"PLTE", &[255, 0, 0, 0, 0, 255]);
        let raw = [0u8, 0, 1]; // filter byte, then two indices
        let (mut a, mut b) = (1u32, 0u32);
        for &v in &raw {
            a = (a + u32::from(v)) % 65521;
            b = (b + a) % 65521;
        }
        let mut z = vec![0x78, 0x01, 0x01, 3, 0, 0xFC, 0xFF];
        z.extend_from_slice(&raw);
        z.extend_from_slice(&((b << 16) | a).to_be_bytes());
        chunk(&mut png, b"IDAT", &z);
        chunk(&mut png, b"IEND", &[]);
        png
    }

    #[test]
    fn binary_masks() {
        let dir = tempfile::tempdir().unwrap();
        // 0/1 is kept, 0/255 is binarised.
        let m01 = GrayImage::from_fn(5, 4, |x, _| Luma([u8::from(x == 2)]));
        let p01 = dir.path().join("m01.png");
        save_png_atomic(&p01, &m01).unwrap();
        assert_eq!(load_mask(&p01, MaskKind::Binary).unwrap(), m01);
        let m255 = GrayImage::from_fn(5, 4, |x, _| Luma([if x == 2 { 255 } else { 0 }]));
        let p255 = dir.path().join("m255.png");
        save_png_atomic(&p255, &m255).unwrap();
        assert_eq!(load_mask(&p255, MaskKind::Binary).unwrap(), m01);
        // A mostly 0/255 mask with a few anti-aliased edge pixels binarises at > 127.
        let aa = GrayImage::from_fn(20, 10, |x, y| {
            Luma([match (x, y) {
                (0, 0) => 128,
                (1, 0) => 127,
                (x, _) if x >= 10 => 255,
                _ => 0,
            }])
        });
        let paa = dir.path().join("aa.png");
        save_png_atomic(&paa, &aa).unwrap();
        let got = load_mask(&paa, MaskKind::Binary).unwrap();
        assert_eq!(got.get_pixel(0, 0).0[0], 1);
        assert_eq!(got.get_pixel(1, 0).0[0], 0);
        assert_eq!(got.iter().map(|&v| u32::from(v)).sum::<u32>(), 101);
        // Values {0, 3, 7} are neither 0/1 nor mostly 0/255.
        let bad = GrayImage::from_fn(6, 2, |x, _| Luma([[0, 3, 7][x as usize % 3]]));
        let pbad = dir.path().join("bad_mask.png");
        save_png_atomic(&pbad, &bad).unwrap();
        let err = load_mask(&pbad, MaskKind::Binary).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::MaskValues { .. }));
        assert!(msg.contains("bad_mask.png"), "{msg}");
        assert!(msg.contains("{0, 3, 7}"), "{msg}");
        assert!(msg.contains("66.7%"), "{msg}");
    }

    #[test]
    fn colour_mask_is_rejected_and_grey_rgb_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let grey_rgb = RgbImage::from_fn(4, 4, |x, _| {
            let v = if x < 2 { 0 } else { 255 };
            Rgb([v, v, v])
        });
        let pg = dir.path().join("greyrgb.png");
        save_png_atomic(&pg, &grey_rgb).unwrap();
        let m = load_mask(&pg, MaskKind::Binary).unwrap();
        assert_eq!(m.iter().filter(|&&v| v == 1).count(), 8);
        let colour = RgbImage::from_fn(4, 4, |x, y| Rgb([x as u8 * 60, y as u8, 0]));
        let pc = dir.path().join("photo.png");
        save_png_atomic(&pc, &colour).unwrap();
        let msg = load_mask(&pc, MaskKind::Binary).unwrap_err().to_string();
        assert!(
            msg.contains("photo.png") && msg.contains("colour image"),
            "{msg}"
        );
    }

    #[test]
    fn class_masks() {
        let dir = tempfile::tempdir().unwrap();
        let m = GrayImage::from_fn(4, 2, |x, _| Luma([x as u8]));
        let p = dir.path().join("classes.png");
        save_png_atomic(&p, &m).unwrap();
        assert_eq!(load_mask(&p, MaskKind::Classes(4)).unwrap(), m);
        let msg = load_mask(&p, MaskKind::Classes(3)).unwrap_err().to_string();
        assert!(
            msg.contains("values 3 not below the class count 3"),
            "{msg}"
        );
        let m255 = GrayImage::from_fn(4, 2, |x, _| Luma([if x > 1 { 255 } else { 0 }]));
        let p255 = dir.path().join("two.png");
        save_png_atomic(&p255, &m255).unwrap();
        let two = load_mask(&p255, MaskKind::Classes(2)).unwrap();
        assert_eq!(two.as_raw(), &[0, 0, 1, 1, 0, 0, 1, 1]);
        assert!(load_mask(&p255, MaskKind::Classes(3)).is_err());
        // 16-bit class indices stay indices.
        let m16 = ImageBuffer::<Luma<u16>, Vec<u16>>::from_fn(3, 1, |x, _| Luma([x as u16]));
        let p16 = dir.path().join("c16.png");
        save_png_atomic(&p16, &m16).unwrap();
        assert_eq!(
            load_mask(&p16, MaskKind::Classes(3)).unwrap().as_raw(),
            &[0, 1, 2]
        );
    }

    #[test]
    fn class_masks_with_ignore_label() {
        let dir = tempfile::tempdir().unwrap();
        let m = GrayImage::from_raw(4, 1, vec![0, 1, 255, 255]).unwrap();
        let p = dir.path().join("ids.png");
        save_png_atomic(&p, &m).unwrap();
        // 255 is kept as the ignore label, even with 2 classes (no 0/255 binarising).
        assert_eq!(load_mask(&p, MaskKind::ClassesOrIgnore(2)).unwrap(), m);
        assert_eq!(load_mask(&p, MaskKind::ClassesOrIgnore(19)).unwrap(), m);
        assert!(load_mask(&p, MaskKind::Classes(19)).is_err());
        let bad = GrayImage::from_raw(4, 1, vec![0, 19, 200, 255]).unwrap();
        let pb = dir.path().join("bad_ids.png");
        save_png_atomic(&pb, &bad).unwrap();
        let msg = load_mask(&pb, MaskKind::ClassesOrIgnore(19))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("bad_ids.png"), "{msg}");
        assert!(
            msg.contains(
                "values 19, 200 neither below the class count 19 nor the ignore label 255"
            ),
            "{msg}"
        );
        assert_eq!(MaskKind::ClassesOrIgnore(19).num_classes(), 19);
        assert_eq!(MaskKind::Binary.num_classes(), 2);
        assert_eq!(IGNORE_LABEL, 255);
    }

    #[test]
    fn fov_thresholds_any_channel() {
        let dir = tempfile::tempdir().unwrap();
        let img = RgbImage::from_fn(3, 1, |x, _| match x {
            0 => Rgb([0, 0, 0]),
            1 => Rgb([0, 200, 0]),
            _ => Rgb([100, 100, 100]),
        });
        let p = dir.path().join("fov.tif");
        DynamicImage::ImageRgb8(img)
            .save_with_format(&p, ImageFormat::Tiff)
            .unwrap();
        assert_eq!(load_fov(&p).unwrap().as_raw(), &[0, 1, 0]);
        let z = GrayImage::from_raw(3, 1, vec![0, 1, 1]).unwrap();
        let pz = dir.path().join("fov01.png");
        save_png_atomic(&pz, &z).unwrap();
        assert_eq!(load_fov(&pz).unwrap(), z);
    }

    #[test]
    fn atomic_save_leaves_no_temp_and_keeps_old_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.png");
        save_png_atomic(&path, &pattern(8, 8)).unwrap();
        assert_eq!(load_rgb(&path).unwrap(), pattern(8, 8));
        save_png_atomic(&path, &DynamicImage::ImageRgb8(pattern(9, 9))).unwrap();
        assert_eq!(load_rgb(&path).unwrap(), pattern(9, 9));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.png")]);
        // A missing folder is an Io error and creates nothing.
        let bad = dir.path().join("no/such/dir/x.png");
        assert!(matches!(
            save_png_atomic(&bad, &pattern(2, 2)),
            Err(DataError::Io { .. })
        ));
        // An unencodable image (32-bit float) fails without touching the old file.
        let float = DynamicImage::ImageRgb32F(image::Rgb32FImage::new(2, 2));
        assert!(save_png_atomic(&path, &float).is_err());
        assert_eq!(load_rgb(&path).unwrap(), pattern(9, 9));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn one_bit_tiff_if_supported() {
        // A hand-made 8x2 uncompressed bilevel TIFF (BlackIsZero, 1 bit per sample).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bilevel.tif");
        fs::write(&path, bilevel_tiff()).unwrap();
        let mask = load_mask(&path, MaskKind::Binary).unwrap();
        assert_eq!(mask.dimensions(), (8, 2));
        assert_eq!(mask.as_raw()[..8], [1, 0, 1, 0, 1, 0, 1, 0]);
        assert_eq!(mask.as_raw()[8..], [0, 0, 0, 0, 1, 1, 1, 1]);
    }

    /// Little-endian TIFF, one strip, rows 0b10101010 and 0b00001111.
    fn bilevel_tiff() -> Vec<u8> {
        let entries: [(u16, u16, u32, u32); 9] = [
            (256, 3, 1, 8), // ImageWidth
            (257, 3, 1, 2), // ImageLength
            (258, 3, 1, 1), // BitsPerSample
            (259, 3, 1, 1), // Compression: none
            (262, 3, 1, 1), // Photometric: BlackIsZero
            (273, 4, 1, 0), // StripOffsets, patched below
            (277, 3, 1, 1), // SamplesPerPixel
            (278, 3, 1, 2), // RowsPerStrip
            (279, 4, 1, 2), // StripByteCounts
        ];
        let ifd_len = 2 + entries.len() * 12 + 4;
        let data_offset = (8 + ifd_len) as u32;
        let mut out = b"II*\0".to_vec();
        out.extend_from_slice(&8u32.to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, kind, count, value) in entries {
            let value = if tag == 273 { data_offset } else { value };
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
            if kind == 3 {
                out.extend_from_slice(&(value as u16).to_le_bytes());
                out.extend_from_slice(&[0, 0]);
            } else {
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&[0b1010_1010, 0b0000_1111]);
        out
    }
}
