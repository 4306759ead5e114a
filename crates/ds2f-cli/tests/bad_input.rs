//! Every bad input of issue #5 through the `ds2f` binary: the exit code, and a message that
//! names the file or key and says what was expected. `check-data` lists every problem of a
//! folder at once; `train` refuses the same folder before any work, listing them too.
use std::path::Path;
use std::process::{Command, Output};

use image::{GrayImage, ImageBuffer, Luma, Rgb, RgbImage};

fn ds2f(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ds2f"))
        .args(args)
        .output()
        .expect("ds2f runs")
}

fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn rgb(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 5) as u8, (y * 3) as u8, ((x + y) * 2) as u8])
    })
}

fn mask(w: u32, h: u32) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| {
        Luma([if (x + 2 * y) % 9 < 2 { 255 } else { 0 }])
    })
}

/// Encodes `img` in the format of `name`'s extension and returns the bytes.
fn encoded(img: &RgbImage, name: &str) -> Vec<u8> {
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join(name);
    img.save(&path).unwrap();
    std::fs::read(path).unwrap()
}

/// A generic-layout folder with two good items and one item per kind of problem.
fn bad_folder(root: &Path) {
    let (images, masks) = (root.join("images"), root.join("masks"));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&masks).unwrap();
    let (w, h) = (48, 40);
    for good in ["good1", "good2"] {
        rgb(w, h).save(images.join(format!("{good}.png"))).unwrap();
        mask(w, h).save(masks.join(format!("{good}.png"))).unwrap();
    }
    let with_mask = |stem: &str| mask(w, h).save(masks.join(format!("{stem}.png"))).unwrap();
    // Zero-byte file.
    std::fs::write(images.join("zero.png"), b"").unwrap();
    with_mask("zero");
    // Truncated JPEG, PNG and TIFF (first half of a valid file).
    for (stem, ext) in [("cut_jpg", "jpg"), ("cut_png", "png"), ("cut_tif", "tif")] {
        let bytes = encoded(&rgb(w, h), &format!("x.{ext}"));
        std::fs::write(
            images.join(format!("{stem}.{ext}")),
            &bytes[..bytes.len() / 2],
        )
        .unwrap();
        with_mask(stem);
    }
    // A text file with an image extension.
    std::fs::write(images.join("text.png"), "not an image at all").unwrap();
    with_mask("text");
    // An image without a mask.
    rgb(w, h).save(images.join("nomask.png")).unwrap();
    // A mask of another size.
    rgb(w, h).save(images.join("size.png")).unwrap();
    mask(w, h - 10).save(masks.join("size.png")).unwrap();
    // A mask whose values are neither {0,1}, {0,255} nor class indices.
    rgb(w, h).save(images.join("values.png")).unwrap();
    GrayImage::from_fn(w, h, |x, y| Luma([((x * 7 + y * 13) % 200) as u8]))
        .save(masks.join("values.png"))
        .unwrap();
    // Two images with one stem.
    rgb(w, h).save(images.join("dup.png")).unwrap();
    rgb(w, h).save(images.join("dup.jpg")).unwrap();
    with_mask("dup");
    // Images that are not 8-bit RGB: converted, not refused.
    let grey16: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_fn(w, h, |x, y| Luma([(x * 1000 + y * 7) as u16]));
    grey16.save(images.join("grey16.png")).unwrap();
    with_mask("grey16");
    GrayImage::from_fn(w, h, |x, _| Luma([x as u8]))
        .save(images.join("grey8.png"))
        .unwrap();
    with_mask("grey8");
    std::fs::write(images.join("palette.gif"), encoded(&rgb(w, h), "x.gif")).unwrap();
    with_mask("palette");
    // A 12000×12000 PNG (a header claiming it; refused before decoding, limit named).
    std::fs::write(images.join("huge.png"), huge_png_header(12_000, 12_000)).unwrap();
    with_mask("huge");
}

/// An 8-bit RGB PNG whose header says `w × h`, with an empty zlib stream as its pixel data
/// (a decoder that trusted the header would allocate `w·h·3` bytes).
fn huge_png_header(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let empty_zlib = [0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01];
    for (kind, data) in [
        (b"IHDR", &ihdr[..]),
        (b"IDAT", &empty_zlib[..]),
        (b"IEND", &[]),
    ] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
    }
    out
}

/// (substring of the file named, substring of what was found or expected)
const EXPECTED: [(&str, &str); 11] = [
    ("images/zero.png", "empty file (0 bytes)"),
    ("images/cut_jpg.jpg", "truncated JPEG"),
    ("images/cut_png.png", "cannot decode image"),
    ("images/cut_tif.tif", "cannot decode image"),
    ("images/text.png", "not JPEG, PNG, TIFF, GIF or PNM"),
    ("images/nomask.png", "no mask found"),
    ("masks/size.png", "differs from its image"),
    ("masks/values.png", "mask values cannot be read as classes"),
    ("images/dup.jpg", "same stem"),
    ("images/huge.png", "12000x12000, larger than the limit"),
    ("", "10 problem(s) in"),
];

#[test]
fn check_data_lists_every_problem_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    bad_folder(tmp.path());
    let out = ds2f(&["check-data", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = all_output(&out);
    for (file, what) in EXPECTED {
        assert!(
            text.lines().any(|l| l.contains(file) && l.contains(what)),
            "expected a line naming `{file}` with `{what}` in:\n{text}"
        );
    }
    // Converted, not refused: 16-bit grey, 8-bit grey, palette GIF.
    for fine in ["grey16", "grey8", "palette", "good1"] {
        assert!(!text.contains(fine), "{fine} reported:\n{text}");
    }
}

#[test]
fn train_refuses_bad_data_before_any_work_and_lists_it() {
    let tmp = tempfile::tempdir().unwrap();
    bad_folder(&tmp.path().join("data"));
    let config = tmp.path().join("c.toml");
    std::fs::write(
        &config,
        "[data]\nroot = \"data\"\nlr_size = [20, 24]\nval_count = 1\n[model]\nbase = 4\n\
         [train]\nepochs = 1\n[run]\ndir = \"runs\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ds2f"))
        .args(["train", "--config", config.to_str().unwrap()])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = all_output(&out);
    for (file, what) in &EXPECTED[..10] {
        assert!(
            text.contains(file) && text.contains(what),
            "`{file}` / `{what}` missing from:\n{text}"
        );
    }
    // Nothing was written: no run folder, no checkpoint.
    assert!(!tmp.path().join("runs").join("run").exists(), "{text}");
}

#[test]
fn empty_or_missing_folders_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(empty.join("images")).unwrap();
    std::fs::create_dir_all(empty.join("masks")).unwrap();
    let out = ds2f(&["check-data", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = all_output(&out);
    assert!(
        text.contains("empty/images") && text.contains("no images found"),
        "{text}"
    );

    let missing = tmp.path().join("nowhere");
    let out = ds2f(&["check-data", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(all_output(&out).contains("nowhere"), "{}", all_output(&out));
}

#[test]
fn bad_config_values_name_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.toml");
    let cases = [
        ("[model]\nupscal = 2\n", "did you mean `model.upscale`?"),
        ("[train.loss]\nproxy_sr = \"ssmi\"\n", "proxy_sr"),
        ("[model]\nframework = \"ds3f\"\n", "ds3f"),
        (
            "[model.shared_feature]\ngroups = 1\n",
            "model.shared_feature.groups",
        ),
        (
            "[model.shared_feature]\nhidden = 30\n",
            "model.shared_feature.hidden",
        ),
        ("[train.loss]\nalpha = -1.0\n", "train.loss.alpha"),
        ("[model]\nupscale = 0\n", "model.upscale"),
        ("[train]\nbatch_size = 0\n", "train.batch_size"),
        ("[train]\nlr = -0.01\n", "train.lr"),
    ];
    for (text, expected) in cases {
        std::fs::write(&config, text).unwrap();
        let out = ds2f(&["train", "--config", config.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{text}");
        let message = all_output(&out);
        assert!(message.contains(expected), "{text}: {message}");
        assert!(
            message.contains("c.toml") || message.contains("config key"),
            "{message}"
        );
    }
}
