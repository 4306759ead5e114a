//! Multi-class layouts (IDRiD, DDR, Cityscapes), their label maps through resizing and
//! augmentation, per-class pixel counts and the synthetic lesion dataset.
use std::fs;
use std::path::{Path, PathBuf};

use ds2f_data::augment::{AffineParams, AugmentRecord, apply_record, warp_gray_nearest};
use ds2f_data::io::{LoadLimits, MaskKind, save_png_atomic};
use ds2f_data::labels::{
    ClassMask, ClassPixels, Lesion, class_pixels, load_label_map, load_label_map_with,
    merge_class_masks,
};
use ds2f_data::layout::{DiscoverOptions, Item, Layout, check_items, discover};
use ds2f_data::pair::make_sample;
use ds2f_data::resize::{
    nearest_index_centered, resize_nearest_centered_gray, resize_nearest_gray,
};
use ds2f_data::synth::{generate_lesions, image_seed, lesions_present, write_lesion_dataset};
use ds2f_data::{DataError, IGNORE_LABEL};
use image::{GrayImage, ImageFormat, Luma, Rgb, RgbImage};

/// Writes a `w x h` RGB PNG at `root/rel`, creating folders.
fn image_at(root: &Path, rel: &str, w: u32, h: u32) -> PathBuf {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = RgbImage::from_fn(w, h, |x, y| Rgb([(40 * x) as u8, (50 * y) as u8, 90]));
    save_png_atomic(&path, &img).unwrap();
    path
}

/// Writes a grey PNG of `rows` (equal lengths) at `root/rel`, creating folders.
fn grey_at(root: &Path, rel: &str, rows: &[&[u8]]) -> PathBuf {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    save_png_atomic(&path, &grey(rows)).unwrap();
    path
}

fn grey(rows: &[&[u8]]) -> GrayImage {
    let (w, h) = (rows[0].len() as u32, rows.len() as u32);
    GrayImage::from_fn(w, h, |x, y| Luma([rows[y as usize][x as usize]]))
}

/// A 6x4 binary mask, 255 at the listed `(x, y)`.
fn dots(points: &[(usize, usize)]) -> Vec<Vec<u8>> {
    let mut rows = vec![vec![0u8; 6]; 4];
    for &(x, y) in points {
        rows[y][x] = 255;
    }
    rows
}

fn write_dots(root: &Path, rel: &str, points: &[(usize, usize)]) -> PathBuf {
    let rows = dots(points);
    let refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
    grey_at(root, rel, &refs)
}

fn strict() -> DiscoverOptions {
    DiscoverOptions::default()
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap().to_string_lossy().into_owned()
}

/// An IDRiD folder: image `a` with all four lesions and the optic disc, overlapping; image `b`
/// with only a haemorrhage file, named as in the original release (`b_HE.tif`).
fn idrid_folder(root: &Path) {
    image_at(root, "images/a.png", 6, 4);
    image_at(root, "images/b.png", 6, 4);
    write_dots(root, "masks/MA/a.png", &[(0, 0), (1, 0), (2, 1)]);
    write_dots(root, "masks/HE/a.png", &[(1, 0), (2, 0), (2, 1), (3, 1)]);
    write_dots(root, "masks/EX/a.png", &[(2, 0), (3, 0), (3, 1), (4, 2)]);
    // SE as 0/1, which the binary rules take as is.
    grey_at(
        root,
        "masks/SE/a.png",
        &[
            &[0, 0, 0, 1, 0, 0],
            &[0, 0, 0, 0, 0, 0],
            &[0, 0, 0, 0, 1, 0],
            &[0, 0, 0, 0, 0, 1],
        ],
    );
    write_dots(root, "masks/OD/a.png", &[(0, 0), (0, 3), (5, 3)]);
    let he = dots(&[(5, 0), (5, 1)]);
    let he = GrayImage::from_fn(6, 4, |x, y| Luma([he[y as usize][x as usize]]));
    he.save_with_format(root.join("masks/HE/b_HE.tif"), ImageFormat::Tiff)
        .unwrap();
}

#[test]
fn idrid_merges_lesions_later_id_wins() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    idrid_folder(r);
    assert_eq!(Layout::detect(r).unwrap(), Layout::Idrid);
    let items = discover(r, Layout::Idrid, &strict()).unwrap();
    assert_eq!(items.len(), 2);
    let (a, b) = (&items[0], &items[1]);
    assert_eq!((a.name.as_str(), b.name.as_str()), ("a", "b"));
    assert!(a.mask.is_none() && a.fov.is_none() && a.has_labels());
    let files: Vec<(u8, String)> = a
        .class_masks
        .as_ref()
        .unwrap()
        .files
        .iter()
        .map(|f| (f.class, rel(r, &f.path)))
        .collect();
    assert_eq!(
        files,
        [
            (1, "masks/MA/a.png".to_string()),
            (2, "masks/HE/a.png".to_string()),
            (3, "masks/EX/a.png".to_string()),
            (4, "masks/SE/a.png".to_string()),
        ]
    );
    assert_eq!(a.class_masks.as_ref().unwrap().num_classes, 5);
    // Missing lesion files: b has only its haemorrhage.
    assert_eq!(
        b.class_masks.as_ref().unwrap().files,
        [ClassMask {
            class: 2,
            path: r.join("masks/HE/b_HE.tif")
        }]
    );
    let kind = Layout::Idrid.mask_kind(5);
    assert_eq!(kind, MaskKind::Classes(5));
    // Overlaps: MA&HE at (1,0) and (2,1) -> HE; HE&EX at (2,0), (3,1) -> EX; EX&SE at (3,0),
    // (4,2) -> SE.
    let want = grey(&[
        &[1, 2, 3, 4, 0, 0],
        &[0, 0, 2, 3, 0, 0],
        &[0, 0, 0, 0, 4, 0],
        &[0, 0, 0, 0, 0, 4],
    ]);
    assert_eq!(load_label_map(a, kind, (6, 4)).unwrap(), want);
    let want_b = grey(&[
        &[0, 0, 0, 0, 0, 2],
        &[0, 0, 0, 0, 0, 2],
        &[0, 0, 0, 0, 0, 0],
        &[0, 0, 0, 0, 0, 0],
    ]);
    assert_eq!(load_label_map(b, kind, (6, 4)).unwrap(), want_b);
    assert!(check_items(&items, kind).is_empty());

    // With the optic disc: class 5, written first, so (0,0) stays MA and (5,3) stays SE.
    let items = discover(r, Layout::IdridOd, &strict()).unwrap();
    let a = &items[0];
    assert_eq!(a.class_masks.as_ref().unwrap().num_classes, 6);
    assert_eq!(a.class_masks.as_ref().unwrap().files[0].class, 5);
    let want_od = grey(&[
        &[1, 2, 3, 4, 0, 0],
        &[0, 0, 2, 3, 0, 0],
        &[0, 0, 0, 0, 4, 0],
        &[5, 0, 0, 0, 0, 4],
    ]);
    assert_eq!(
        load_label_map(a, Layout::IdridOd.mask_kind(6), (6, 4)).unwrap(),
        want_od
    );
    // Read with too few classes: an error naming the class count, never a silent clip.
    for kind in [MaskKind::Classes(5), MaskKind::Binary] {
        match load_label_map(a, kind, (6, 4)) {
            Err(DataError::Invalid { name, reason }) => {
                assert_eq!(name, "num_classes");
                assert!(reason.contains("6 classes"), "{reason}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }
    let problems = check_items(&items, MaskKind::Classes(5));
    assert_eq!(problems.len(), 1, "{problems:?}");
}

#[test]
fn lesion_size_and_value_errors_name_the_file() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    image_at(r, "images/c.png", 6, 4);
    image_at(r, "images/d.png", 6, 4);
    write_dots(r, "masks/MA/c.png", &[(1, 1)]);
    grey_at(
        r,
        "masks/EX/c.png",
        &[&[0, 255, 0, 0, 0], &[0; 5], &[0; 5], &[0; 5]],
    );
    grey_at(
        r,
        "masks/SE/d.png",
        &[&[0, 3, 7, 0, 3, 7], &[0, 3, 7, 0, 3, 7], &[0; 6], &[0; 6]],
    );
    let items = discover(r, Layout::Idrid, &strict()).unwrap();
    let kind = MaskKind::Classes(5);
    match load_label_map(&items[0], kind, (6, 4)) {
        Err(e @ DataError::SizeMismatch { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("masks/EX/c.png"), "{msg}");
            assert!(msg.contains("5x4") && msg.contains("6x4"), "{msg}");
        }
        other => panic!("expected SizeMismatch, got {other:?}"),
    }
    match load_label_map(&items[1], kind, (6, 4)) {
        Err(e @ DataError::MaskValues { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("masks/SE/d.png"), "{msg}");
            assert!(msg.contains("{0, 3, 7}"), "{msg}");
        }
        other => panic!("expected MaskValues, got {other:?}"),
    }
    let problems = check_items(&items, kind);
    let msgs: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 2, "{msgs:#?}");
    assert!(matches!(
        problems[0],
        DataError::SizeMismatch { mask_w: 5, .. }
    ));
    assert!(msgs[0].contains("masks/EX/c.png"));
    assert!(matches!(problems[1], DataError::MaskValues { .. }));
    assert!(msgs[1].contains("masks/SE/d.png"));
}

#[test]
fn lesion_folder_without_masks() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    image_at(r, "images/e.png", 6, 4);
    fs::create_dir_all(r.join("masks/MA")).unwrap();
    // Lesion folders present but no file for e: an all-background label map.
    let items = discover(r, Layout::Idrid, &strict()).unwrap();
    assert_eq!(items[0].class_masks.as_ref().unwrap().files, []);
    let labels = load_label_map(&items[0], MaskKind::Classes(5), (6, 4)).unwrap();
    assert!(labels.iter().all(|&v| v == 0));
    // No lesion folder at all: missing ground truth, unless masks are not required.
    fs::remove_dir_all(r.join("masks")).unwrap();
    match discover(r, Layout::Idrid, &strict()) {
        Err(DataError::MissingMask { image, expected }) => {
            assert!(image.ends_with("images/e.png"));
            assert!(expected.contains("{MA,HE,EX,SE}"), "{expected}");
        }
        other => panic!("expected MissingMask, got {other:?}"),
    }
    let opts = DiscoverOptions {
        require_masks: false,
        ..Default::default()
    };
    let items = discover(r, Layout::Idrid, &opts).unwrap();
    assert!(items[0].class_masks.is_none() && !items[0].has_labels());
    assert!(matches!(
        load_label_map(&items[0], MaskKind::Classes(5), (6, 4)),
        Err(DataError::MissingMask { .. })
    ));
    // Asking for the optic disc where there is none is a layout error.
    write_dots(r, "masks/MA/e.png", &[(0, 0)]);
    match discover(r, Layout::IdridOd, &strict()) {
        Err(DataError::Layout { reason, .. }) => assert!(reason.contains("OD"), "{reason}"),
        other => panic!("expected Layout, got {other:?}"),
    }
}

#[test]
fn ddr_splits_and_tif_labels() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    for split in ["train", "valid", "test"] {
        let img = RgbImage::from_pixel(6, 4, Rgb([150, 80, 40]));
        let dir = r.join(split).join("image");
        fs::create_dir_all(&dir).unwrap();
        for stem in ["007-1774-100", "007-1775-100"] {
            img.save_with_format(dir.join(format!("{stem}.jpg")), ImageFormat::Jpeg)
                .unwrap();
        }
        for (code, points) in [
            ("EX", &[(0usize, 0usize), (1, 0)][..]),
            ("MA", &[(1, 0), (2, 2)][..]),
            ("HE", &[(2, 2), (3, 3)][..]),
        ] {
            let d = r.join(split).join("label").join(code);
            fs::create_dir_all(&d).unwrap();
            let rows = dots(points);
            let m = GrayImage::from_fn(6, 4, |x, y| Luma([rows[y as usize][x as usize]]));
            m.save_with_format(d.join("007-1774-100.tif"), ImageFormat::Tiff)
                .unwrap();
        }
        fs::create_dir_all(r.join(split).join("label/SE")).unwrap();
    }
    assert_eq!(Layout::detect(r).unwrap(), Layout::Ddr);
    assert_eq!(Layout::detect(r.join("valid")).unwrap(), Layout::Ddr);
    match discover(r, Layout::Ddr, &strict()) {
        Err(DataError::Layout { reason, .. }) => {
            assert!(reason.contains("train and valid and test"), "{reason}")
        }
        other => panic!("expected Layout, got {other:?}"),
    }
    let opts = DiscoverOptions {
        split: Some("valid".into()),
        ..Default::default()
    };
    let items = discover(r, Layout::Ddr, &opts).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].name, "007-1774-100");
    assert!(items[0].image.ends_with("valid/image/007-1774-100.jpg"));
    let files: Vec<(u8, String)> = items[0]
        .class_masks
        .as_ref()
        .unwrap()
        .files
        .iter()
        .map(|f| (f.class, rel(r, &f.path)))
        .collect();
    assert_eq!(
        files,
        [
            (1, "valid/label/MA/007-1774-100.tif".to_string()),
            (2, "valid/label/HE/007-1774-100.tif".to_string()),
            (3, "valid/label/EX/007-1774-100.tif".to_string()),
        ]
    );
    // EX wins over MA at (1,0); HE over MA at (2,2).
    let want = grey(&[
        &[3, 3, 0, 0, 0, 0],
        &[0, 0, 0, 0, 0, 0],
        &[0, 0, 2, 0, 0, 0],
        &[0, 0, 0, 2, 0, 0],
    ]);
    let kind = Layout::Ddr.mask_kind(5);
    assert_eq!(load_label_map(&items[0], kind, (6, 4)).unwrap(), want);
    // The second image has no lesion file at all: all background.
    assert_eq!(items[1].class_masks.as_ref().unwrap().files, []);
    assert!(check_items(&items, kind).is_empty());
    // The split folder itself works too.
    let items = discover(r.join("test"), Layout::Ddr, &strict()).unwrap();
    assert!(items[0].image.ends_with("test/image/007-1774-100.jpg"));

    // Binary per-lesion mode (the reference's DDR per-lesion scripts): only MA, as class 1,
    // without the EX and HE pixels that overwrite it in the merged map.
    let opts = DiscoverOptions {
        split: Some("valid".into()),
        lesion: Some(Lesion::Ma),
        ..Default::default()
    };
    let items = discover(r, Layout::Ddr, &opts).unwrap();
    let masks = items[0].class_masks.as_ref().unwrap();
    assert_eq!(masks.num_classes, 2);
    assert_eq!(
        masks.files,
        [ClassMask {
            class: 1,
            path: r.join("valid/label/MA/007-1774-100.tif")
        }]
    );
    let want_ma = grey(&[
        &[0, 1, 0, 0, 0, 0],
        &[0, 0, 0, 0, 0, 0],
        &[0, 0, 1, 0, 0, 0],
        &[0, 0, 0, 0, 0, 0],
    ]);
    assert_eq!(
        load_label_map(&items[0], MaskKind::Binary, (6, 4)).unwrap(),
        want_ma
    );
    assert!(check_items(&items, MaskKind::Binary).is_empty());
    assert_eq!(Lesion::from_code("ex"), Some(Lesion::Ex));
    assert_eq!(Lesion::from_code("XX"), None);
    // The optic disc is no DDR lesion, and a vessel layout has no lesions.
    let od = DiscoverOptions {
        split: Some("valid".into()),
        lesion: Some(Lesion::Od),
        ..Default::default()
    };
    match discover(r, Layout::Ddr, &od) {
        Err(DataError::Invalid { name, reason }) => {
            assert_eq!(name, "data.lesion");
            assert!(reason.contains("`OD`"), "{reason}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let vessels = DiscoverOptions {
        lesion: Some(Lesion::Ex),
        ..Default::default()
    };
    match discover(r.join("valid"), Layout::Generic, &vessels) {
        Err(DataError::Invalid { name, .. }) => assert_eq!(name, "data.lesion"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// A Cityscapes tree with train (two cities) and val splits; the `labelTrainIds` of
/// `aachen_000000_000019` hold classes 0, 5, 18 and the ignore label.
fn cityscapes_folder(root: &Path) {
    for (split, city, name) in [
        ("train", "aachen", "aachen_000000_000019"),
        ("train", "bremen", "bremen_000001_000019"),
        ("val", "lindau", "lindau_000000_000019"),
    ] {
        image_at(
            root,
            &format!("leftImg8bit/{split}/{city}/{name}_leftImg8bit.png"),
            4,
            3,
        );
        let gt = format!("gtFine/{split}/{city}/{name}");
        grey_at(
            root,
            &format!("{gt}_gtFine_labelTrainIds.png"),
            &[&[0, 0, 5, 255], &[18, 5, 5, 255], &[0, 255, 18, 0]],
        );
        // The release's other files are not masks of this layout.
        grey_at(
            root,
            &format!("{gt}_gtFine_labelIds.png"),
            &[&[7u8, 7, 26, 0][..]; 3],
        );
        image_at(root, &format!("{gt}_gtFine_color.png"), 4, 3);
    }
}

#[test]
fn cityscapes_train_ids_keep_the_ignore_label() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    cityscapes_folder(r);
    assert_eq!(Layout::detect(r).unwrap(), Layout::Cityscapes);
    match discover(r, Layout::Cityscapes, &strict()) {
        Err(DataError::Layout { reason, .. }) => {
            assert!(reason.contains("train, val"), "{reason}")
        }
        other => panic!("expected Layout, got {other:?}"),
    }
    let opts = DiscoverOptions {
        split: Some("train".into()),
        ..Default::default()
    };
    let items = discover(r, Layout::Cityscapes, &opts).unwrap();
    let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["aachen_000000_000019", "bremen_000001_000019"]);
    assert_eq!(
        rel(r, items[1].mask.as_ref().unwrap()),
        "gtFine/train/bremen/bremen_000001_000019_gtFine_labelTrainIds.png"
    );
    assert_eq!(Layout::Cityscapes.num_classes(), Some(19));
    let kind = Layout::Cityscapes.mask_kind(19);
    assert_eq!(kind, MaskKind::ClassesOrIgnore(19));
    let labels = load_label_map(&items[0], kind, (4, 3)).unwrap();
    assert_eq!(
        labels,
        grey(&[&[0, 0, 5, 255], &[18, 5, 5, 255], &[0, 255, 18, 0]])
    );
    assert!(check_items(&items, kind).is_empty());
    // Strict class indices reject the ignore label, naming the file.
    let err = load_label_map(&items[0], MaskKind::Classes(19), (4, 3)).unwrap_err();
    assert!(err.to_string().contains("labelTrainIds.png"), "{err}");
    // A value that is neither a class nor 255 is an error naming the file.
    let bad = grey_at(
        r,
        "gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png",
        &[&[0, 19, 5, 255], &[0; 4], &[0; 4]],
    );
    match load_label_map(&items[0], kind, (4, 3)) {
        Err(e @ DataError::MaskValues { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&bad.display().to_string()), "{msg}");
            assert!(msg.contains("values 19 neither"), "{msg}");
        }
        other => panic!("expected MaskValues, got {other:?}"),
    }
    // The single-image split needs no split option; a missing label file is named.
    fs::remove_file(r.join("gtFine/val/lindau/lindau_000000_000019_gtFine_labelTrainIds.png"))
        .unwrap();
    fs::remove_dir_all(r.join("leftImg8bit/train")).unwrap();
    match discover(r, Layout::Cityscapes, &strict()) {
        Err(DataError::MissingMask { image, expected }) => {
            assert!(image.ends_with("lindau_000000_000019_leftImg8bit.png"));
            assert!(expected.contains("lindau_000000_000019_gtFine_labelTrainIds.png"));
        }
        other => panic!("expected MissingMask, got {other:?}"),
    }
}

/// A 13x17 label map using every id 0..=4 and the ignore label.
fn label_pattern() -> GrayImage {
    let ids = [0u8, 1, 2, 3, 4, IGNORE_LABEL];
    GrayImage::from_fn(17, 13, |x, y| Luma([ids[((x / 2 + y * 3) % 6) as usize]]))
}

#[test]
fn nearest_resizes_keep_label_ids_exact() {
    let src = label_pattern();
    let ids: Vec<u8> = vec![0, 1, 2, 3, 4, 255];
    for (w, h) in [(34, 26), (9, 6), (18, 12), (17, 13), (51, 39), (5, 40)] {
        for out in [
            resize_nearest_centered_gray(&src, w, h),
            resize_nearest_gray(&src, w, h),
        ] {
            assert_eq!(out.dimensions(), (w, h));
            assert!(out.iter().all(|v| ids.contains(v)));
        }
        // The centred rule (training masks, evaluation) copies exactly the chosen source pixel.
        let out = resize_nearest_centered_gray(&src, w, h);
        for (x, y, p) in out.enumerate_pixels() {
            let sx = nearest_index_centered(x as usize, 17, w as usize) as u32;
            let sy = nearest_index_centered(y as usize, 13, h as usize) as u32;
            assert_eq!(p.0[0], src.get_pixel(sx, sy).0[0]);
        }
    }
    // An integer upscale repeats each pixel: every count, 255 included, is exactly 3·3 times.
    let count = |m: &GrayImage, v: u8| m.iter().filter(|&&p| p == v).count();
    let up = resize_nearest_centered_gray(&src, 51, 39);
    for &v in &ids {
        assert_eq!(count(&up, v), 9 * count(&src, v), "id {v}");
    }
    // The training sample's HR mask, r = 2 from an LR size of (13, 17): exact pixel repeats.
    let image = RgbImage::from_pixel(17, 13, Rgb([100, 50, 20]));
    let sample = make_sample(&image, &src, None, (13, 17), 2, "x").unwrap();
    let hr = GrayImage::from_raw(34, 26, sample.mask).unwrap();
    assert_eq!(hr, resize_nearest_centered_gray(&src, 34, 26));
    for &v in &ids {
        assert_eq!(count(&hr, v), 4 * count(&src, v), "id {v}");
    }
}

#[test]
fn augmentation_never_interpolates_labels() {
    let src = label_pattern();
    let ids = [0u8, 1, 2, 3, 4, 255];
    // A 37° rotation with a shift: nearest neighbour with reflect-101, so every output value
    // is a copied input value (no fill value is introduced).
    let affine = AffineParams {
        angle: 37.0,
        scale: 1.0,
        dx: 0.07,
        dy: -0.05,
    };
    let m = affine.matrix(17, 13);
    let warped = warp_gray_nearest(&src, &m);
    assert!(warped.iter().all(|v| ids.contains(v)));
    // Values in the middle of uniform runs are reproduced, and mixing would have made others:
    // the warped map still holds every id.
    for v in ids {
        assert!(warped.contains(&v), "id {v} lost");
    }
    let rec = AugmentRecord {
        color: None,
        hflip: true,
        vflip: true,
        affine: Some(affine),
    };
    let image = RgbImage::from_pixel(17, 13, Rgb([100, 50, 20]));
    let (_, mask, _) = apply_record(&rec, image, src.clone(), None);
    assert!(mask.iter().all(|v| ids.contains(v)));
}

#[test]
fn class_pixel_fractions() {
    // 4x3 = 12 pixels: class 0 ×4, 1 ×2, 2 ×3, 4 ×1, ignore ×2.
    let m = grey(&[&[0, 0, 1, 255], &[2, 2, 2, 0], &[0, 1, 4, 255]]);
    let mut px = ClassPixels::new(5);
    px.add(&m, Path::new("m.png")).unwrap();
    assert_eq!(px.counts, [4, 2, 3, 0, 1]);
    assert_eq!(px.ignored, 2);
    assert_eq!(px.labelled(), 10);
    assert_eq!(px.fractions(), [0.4, 0.2, 0.3, 0.0, 0.1]);
    assert_eq!(px.ignored_fraction(), 2.0 / 12.0);
    // Adding again doubles every count; a value above the classes names the source.
    let mut twice = px.clone();
    twice.merge(&px).unwrap();
    assert_eq!(twice.counts, [8, 4, 6, 0, 2]);
    assert!(twice.merge(&ClassPixels::new(3)).is_err());
    let err = ClassPixels::new(4)
        .add(&m, Path::new("labels/m.png"))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("labels/m.png") && msg.contains("values 4 neither"),
        "{msg}"
    );
    assert!(ClassPixels::new(5).fractions().iter().all(|f| f.is_nan()));

    // Over the items of a folder: Cityscapes train, two copies of one 12-pixel map with
    // classes 0 ×4, 5 ×3, 18 ×2 and 3 ignored pixels.
    let t = tempfile::tempdir().unwrap();
    cityscapes_folder(t.path());
    let opts = DiscoverOptions {
        split: Some("train".into()),
        ..Default::default()
    };
    let items = discover(t.path(), Layout::Cityscapes, &opts).unwrap();
    let px = class_pixels(
        &items,
        MaskKind::ClassesOrIgnore(19),
        &LoadLimits::default(),
    )
    .unwrap();
    let mut want = vec![0u64; 19];
    (want[0], want[5], want[18]) = (8, 6, 4);
    assert_eq!(px.counts, want);
    assert_eq!(px.ignored, 6);
    assert_eq!(px.fractions()[5], 6.0 / 18.0);
    // And over a lesion folder: a's merged map of test idrid_merges_lesions_later_id_wins.
    let t = tempfile::tempdir().unwrap();
    idrid_folder(t.path());
    let items = discover(t.path(), Layout::Idrid, &strict()).unwrap();
    let px = class_pixels(&items[..1], MaskKind::Classes(5), &LoadLimits::default()).unwrap();
    assert_eq!(px.counts, [16, 1, 2, 2, 3]);
    assert_eq!(px.ignored, 0);
}

#[test]
fn merge_is_last_wins_and_checks_sizes() {
    let a = grey(&[&[1, 1, 0], &[0, 0, 0]]);
    let b = grey(&[&[0, 255, 255], &[0, 0, 0]]);
    let merged = merge_class_masks(3, 2, &[(1, &a), (3, &b)]).unwrap();
    assert_eq!(merged, grey(&[&[1, 3, 3], &[0, 0, 0]]));
    let reversed = merge_class_masks(3, 2, &[(3, &b), (1, &a)]).unwrap();
    assert_eq!(reversed, grey(&[&[1, 1, 3], &[0, 0, 0]]));
    assert!(merge_class_masks(4, 2, &[(1, &a)]).is_err());
}

#[test]
fn synthetic_lesion_dataset_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let items = write_lesion_dataset(r, 4, 96, 80, 7, "syn_").unwrap();
    assert_eq!(Layout::detect(r).unwrap(), Layout::Idrid);
    let found = discover(r, Layout::Idrid, &strict()).unwrap();
    assert_eq!(found, items);
    let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["syn_000", "syn_001", "syn_002", "syn_003"]);
    let kind = Layout::Idrid.mask_kind(5);
    assert!(check_items(&items, kind).is_empty());
    let mut total = ClassPixels::new(5);
    for (i, item) in items.iter().enumerate() {
        let sample = generate_lesions(image_seed(7, i), 96, 80, lesions_present(i));
        // Files exist exactly for the lesions present.
        let classes: Vec<u8> = item
            .class_masks
            .as_ref()
            .unwrap()
            .files
            .iter()
            .map(|f| f.class)
            .collect();
        let want: Vec<u8> = (1..=4)
            .filter(|&c| lesions_present(i)[usize::from(c) - 1])
            .collect();
        assert_eq!(classes, want, "image {i}");
        assert_eq!(ds2f_data::io::load_rgb(&item.image).unwrap(), sample.image);
        let labels = load_label_map(item, kind, (96, 80)).unwrap();
        assert_eq!(labels, sample.label_map(), "image {i}");
        total.add(&labels, &item.image).unwrap();
        // Lesions lie inside the FOV, and a present lesion has pixels.
        for (m, present) in sample.lesions.iter().zip(lesions_present(i)) {
            assert_eq!(m.is_some(), present);
            if let Some(m) = m {
                assert!(m.contains(&1));
                assert!(m.iter().zip(sample.fov.iter()).all(|(&l, &f)| l <= f));
            }
        }
    }
    // Every class appears; lesions are a small minority, MA the smallest, as in IDRiD.
    assert!(total.counts.iter().all(|&c| c > 0), "{:?}", total.counts);
    let f = total.fractions();
    assert!(f[0] > 0.85, "{f:?}");
    assert!(f[1] < f[2] && f[1] < f[3], "{f:?}");
    // Deterministic: the same seed writes the same files.
    let t2 = tempfile::tempdir().unwrap();
    let again = write_lesion_dataset(t2.path(), 4, 96, 80, 7, "syn_").unwrap();
    for (a, b) in items.iter().zip(&again) {
        assert_eq!(fs::read(&a.image).unwrap(), fs::read(&b.image).unwrap());
        let (fa, fb) = (
            &a.class_masks.as_ref().unwrap().files,
            &b.class_masks.as_ref().unwrap().files,
        );
        for (x, y) in fa.iter().zip(fb) {
            assert_eq!(fs::read(&x.path).unwrap(), fs::read(&y.path).unwrap());
        }
    }
    // Exudates look bright and haemorrhages dark: green inside against the FOV's mean.
    let s = generate_lesions(image_seed(7, 0), 96, 80, [true; 4]);
    let labels = s.label_map();
    let mean_green = |class: u8| {
        let v: Vec<f64> = s
            .image
            .pixels()
            .zip(labels.iter().zip(s.fov.iter()))
            .filter(|&(_, (&l, &f))| l == class && f == 1)
            .map(|(p, _)| f64::from(p.0[1]))
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let background = mean_green(0);
    assert!(
        mean_green(3) > background + 60.0,
        "EX {} vs {background}",
        mean_green(3)
    );
    assert!(
        mean_green(2) < background,
        "HE {} vs {background}",
        mean_green(2)
    );
}

#[test]
fn items_serialise_without_class_masks_as_before() {
    let item = Item {
        name: "01".into(),
        image: "images/01.png".into(),
        mask: Some("masks/01.png".into()),
        fov: None,
        class_masks: None,
    };
    let json = serde_json::to_string(&item).unwrap();
    assert_eq!(
        json,
        r#"{"name":"01","image":"images/01.png","mask":"masks/01.png","fov":null}"#
    );
    assert_eq!(serde_json::from_str::<Item>(&json).unwrap(), item);
}

/// IDRiD from `shared/data/idrid` (beside the repository, as in CI). Counts measured with
/// Python 3 / numpy / Pillow, painting `label[np.array(Image.open(f)) > 127] = id` for the
/// files present in the order (OD = 5 first when asked), MA = 1, HE = 2, EX = 3, SE = 4:
/// IDRiD_01 {0: 3011497, 1: 1928, 2: 9262, 3: 30369} (no SE file), with OD
/// {0: 2957752, 1: 1928, 2: 9262, 3: 30369, 5: 53745}; IDRiD_03
/// {0: 2924897, 1: 3291, 2: 42789, 3: 81220, 4: 859}.
#[test]
#[cfg_attr(no_shared_data, ignore = "needs ../shared/data")]
fn shared_idrid() {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/idrid"
    ));
    assert!(
        dir.is_dir(),
        "{} not found: the real-data tests need shared/data beside the repository",
        dir.display()
    );
    assert_eq!(Layout::detect(dir).unwrap(), Layout::Idrid);
    let items = discover(dir, Layout::Idrid, &strict()).unwrap();
    assert_eq!(items.len(), 81);
    let with = |class: u8| {
        items
            .iter()
            .filter(|i| {
                i.class_masks
                    .as_ref()
                    .unwrap()
                    .files
                    .iter()
                    .any(|f| f.class == class)
            })
            .count()
    };
    // 81 MA, 80 HE (not IDRiD_43), 81 EX and 40 SE files.
    assert_eq!([with(1), with(2), with(3), with(4)], [81, 80, 81, 40]);
    let two: Vec<Item> = items
        .into_iter()
        .filter(|i| i.name == "IDRiD_01" || i.name == "IDRiD_03")
        .collect();
    assert_eq!(two.len(), 2);
    let kind = Layout::Idrid.mask_kind(5);
    assert!(check_items(&two, kind).is_empty());
    let counts = |item: &Item, kind: MaskKind| {
        let labels = load_label_map(item, kind, (2144, 1424)).unwrap();
        let mut px = ClassPixels::new(kind.num_classes());
        px.add(&labels, &item.image).unwrap();
        px.counts
    };
    assert_eq!(counts(&two[0], kind), [3011497, 1928, 9262, 30369, 0]);
    assert_eq!(counts(&two[1], kind), [2924897, 3291, 42789, 81220, 859]);
    let total = class_pixels(&two, kind, &LoadLimits::default()).unwrap();
    assert_eq!(
        total.counts,
        [
            3011497 + 2924897,
            1928 + 3291,
            9262 + 42789,
            30369 + 81220,
            859
        ]
    );
    // With the optic disc as class 5, written under the lesions.
    let od = discover(dir, Layout::IdridOd, &strict()).unwrap();
    let first = od.iter().find(|i| i.name == "IDRiD_01").unwrap();
    assert_eq!(
        counts(first, Layout::IdridOd.mask_kind(6)),
        [2957752, 1928, 9262, 30369, 0, 53745]
    );
    // A size mismatch against a wrong image size names the lesion file.
    let err = load_label_map_with(&two[0], kind, (2144, 1423), &LoadLimits::default()).unwrap_err();
    assert!(err.to_string().contains("masks/MA/IDRiD_01.png"), "{err}");
}
