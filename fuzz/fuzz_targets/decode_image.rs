//! Image, mask and FOV decoding on arbitrary bytes: every input must give an image or a typed
//! error, never a panic, an abort or an allocation beyond the pixel limit.
#![no_main]
use std::io::Write;

use ds2f_data::io::{LoadLimits, MaskKind, load_fov_with, load_mask_with, load_rgb_with};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The loaders read files (format sniffed from the content, not the name).
    let mut file = tempfile_in_shm();
    file.write_all(data).unwrap();
    let path = file.path().to_path_buf();
    // 4 megapixels: enough for every format's corner cases, small enough to fuzz fast.
    let limits = LoadLimits {
        max_pixels: 4_000_000,
    };
    let _ = load_rgb_with(&path, &limits);
    let _ = load_mask_with(&path, MaskKind::Binary, &limits);
    let _ = load_mask_with(&path, MaskKind::Classes(5), &limits);
    let _ = load_fov_with(&path, &limits);
});

/// A named temporary file in memory where possible.
fn tempfile_in_shm() -> tempfile::NamedTempFile {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::NamedTempFile::new_in(shm).unwrap()
    } else {
        tempfile::NamedTempFile::new().unwrap()
    }
}
