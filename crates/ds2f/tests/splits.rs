//! The configured data: a pattern that matches nothing is an error naming it; the
//! reference's k-fold protocol (select on the test images, schedule from the whole dataset)
//! when asked for, and only then; the FOV crop of PRIME-FP20.
use ds2f::config::ExperimentConfig;
use ds2f::dataset::{mask_kind, split};
use ds2f::train::{RunFolder, Silent, train};

fn config(data: &std::path::Path, extra: &str) -> ExperimentConfig {
    let text = format!(
        "[data]\nroot = {:?}\nval_count = 2\nlr_size = [24, 20]\ntest_include = [\"00[01]\"]\n\
         {extra}\n[model]\nframework = \"unet_inter\"\nbase = 4\n[train]\nepochs = 2\n\
         batch_size = 2\nseed = 3\n",
        data.display().to_string()
    );
    ExperimentConfig::parse(&text, &[], "test").unwrap()
}

#[test]
fn a_pattern_that_matches_no_image_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ds2f_data::synth::write_dataset(&data, 8, 48, 40, 1, "").unwrap();
    let ok = config(&data, "");
    let s = split(&ok.data, 3, mask_kind(2)).unwrap();
    assert_eq!(
        s.test.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["000", "001"]
    );
    assert_eq!((s.train.len(), s.val.len()), (4, 2));
    for (key, list, pattern) in [
        ("data.test_include", ["000", "01_g"], "01_g"),
        ("data.train_include", ["*", "training_*"], "training_*"),
    ] {
        let mut c = ok.clone();
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        if key == "data.test_include" {
            c.data.test_include = list;
        } else {
            c.data.train_include = list;
        }
        let e = split(&c.data, 3, mask_kind(2)).unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
        assert!(e.contains(&format!("`{pattern}` matches no image")), "{e}");
    }
}

#[test]
fn the_reference_protocol_selects_on_the_test_images_and_never_reaches_lr_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    ds2f_data::synth::write_dataset(&data, 9, 48, 40, 1, "").unwrap();
    let clean = config(&data, "");
    let reference = config(&data, "select_on_test = true");
    let s = split(&reference.data, 3, mask_kind(2)).unwrap();
    assert_eq!(s.val.len(), 2);
    assert_eq!(
        s.val.iter().map(|i| &i.name).collect::<Vec<_>>(),
        s.test.iter().map(|i| &i.name).collect::<Vec<_>>()
    );
    assert_eq!(s.train.len(), 7, "nothing carved out for validation");

    // Schedule: clean ends at 0 after the last step; the reference's T = ceil(9 / 2) · 2 = 10
    // while only 3 · 2 = 6 steps run (7 training images, batch 2, drop_last).
    let mut with_schedule = reference.clone();
    with_schedule.train.schedule_on_all_images = true;
    let device = burn::prelude::Device::flex();
    let mut last_lr = Vec::new();
    for (name, c) in [("clean", &clean), ("reference", &with_schedule)] {
        let s = split(&c.data, 3, mask_kind(2)).unwrap();
        let run = tmp.path().join(name);
        train(
            c,
            &s,
            &run,
            std::slice::from_ref(&device),
            false,
            &mut Silent,
        )
        .unwrap();
        let history = RunFolder::new(&run).read_metrics().unwrap();
        last_lr.push(history.last().unwrap().lr);
    }
    let init = clean.train.lr;
    // metrics.csv keeps 7 significant digits of the LR.
    let close = |a: f64, b: f64| ((a - b) / b).abs() < 1e-6;
    // Clean: 5 training images, 2 steps an epoch, 4 steps; the last (i = 3) uses
    // (1 − 2/3)^0.9 and the scheduler holds 0 after it.
    assert!(
        close(last_lr[0], init * (1.0f64 / 3.0).powf(0.9)),
        "{last_lr:?}"
    );
    // Reference: 7 training images, 3 steps an epoch; the last of 6 (i = 5) uses (1 − 4/10)^0.9.
    assert!(close(last_lr[1], init * 0.6f64.powf(0.9)), "{last_lr:?}");
}

#[test]
fn crop_to_fov_cuts_image_mask_and_fov_to_the_fov_box() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let items = ds2f_data::synth::write_dataset(&data, 1, 96, 80, 2, "").unwrap();
    let item = &items[0];
    // A FOV whose box is columns 10..=69, rows 5..=44 (two separate blobs).
    let mut fov = image::GrayImage::new(96, 80);
    for (x, y) in [(10, 20), (69, 44), (30, 5), (31, 6)] {
        fov.put_pixel(x, y, image::Luma([255]));
    }
    fov.save(item.fov.as_ref().unwrap()).unwrap();
    let (image, mask, _) = ds2f::dataset::load_item(item, mask_kind(2)).unwrap();
    let (ci, cm, cf) = ds2f::dataset::load_item_with(item, mask_kind(2), true).unwrap();
    assert_eq!(ci.dimensions(), (60, 40));
    assert_eq!(cm.dimensions(), (60, 40));
    let cf = cf.unwrap();
    assert_eq!(cf.dimensions(), (60, 40));
    assert_eq!(ci.get_pixel(0, 0), image.get_pixel(10, 5));
    assert_eq!(ci.get_pixel(59, 39), image.get_pixel(69, 44));
    assert_eq!(cm.get_pixel(20, 15), mask.get_pixel(30, 20));
    assert_ne!(cf.get_pixel(0, 15).0, [0], "inside the FOV");
    // Off: untouched.
    let (same, _, _) = ds2f::dataset::load_item_with(item, mask_kind(2), false).unwrap();
    assert_eq!(same, image);
    // No FOV, or an empty one: an error naming the key and the image.
    let mut no_fov = item.clone();
    no_fov.fov = None;
    let e = ds2f::dataset::load_item_with(&no_fov, mask_kind(2), true)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data.crop_to_fov") && e.contains("no FOV mask"),
        "{e}"
    );
    image::GrayImage::new(96, 80)
        .save(item.fov.as_ref().unwrap())
        .unwrap();
    let e = ds2f::dataset::load_item_with(item, mask_kind(2), true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("is empty") && e.contains("000"), "{e}");
}

/// A Cityscapes-layout folder with `train` and `val` splits: `n` 32x16 images per split, train
/// ids 0..19 and the ignore label 255 in each label file.
fn write_cityscapes(root: &std::path::Path, split: &str, n: usize) {
    let images = root.join("leftImg8bit").join(split).join("aachen");
    let labels = root.join("gtFine").join(split).join("aachen");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::create_dir_all(&labels).unwrap();
    for i in 0..n {
        let name = format!("aachen_{i:06}_000019");
        image::RgbImage::from_pixel(32, 16, image::Rgb([90, 60, 30]))
            .save(images.join(format!("{name}_leftImg8bit.png")))
            .unwrap();
        image::GrayImage::from_fn(32, 16, |x, _| {
            image::Luma([if x == 0 { 255 } else { (x % 19) as u8 }])
        })
        .save(labels.join(format!("{name}_gtFine_labelTrainIds.png")))
        .unwrap();
    }
}

#[test]
fn splits_of_one_release_train_select_and_test() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cityscapes");
    write_cityscapes(&root, "train", 5);
    write_cityscapes(&root, "val", 3);
    let text = |extra: &str| {
        format!(
            "[data]\nroot = {:?}\nlayout = \"cityscapes\"\nsplit = \"train\"\n{extra}\n\
             [model]\nnum_classes = 19\n",
            root.display().to_string()
        )
    };
    // Test on `val`, select on 2 images carved from `train`.
    let c =
        ExperimentConfig::parse(&text("test_split = \"val\"\nval_count = 2"), &[], "t").unwrap();
    let s = split(&c.data, 3, mask_kind(19)).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (3, 2, 3));
    assert!(
        s.test
            .iter()
            .all(|i| i.image.to_string_lossy().contains("/val/"))
    );
    assert!(
        s.train
            .iter()
            .chain(&s.val)
            .all(|i| i.image.to_string_lossy().contains("/train/"))
    );
    // Select on the whole `val` split (the official selection set), test on it too is not
    // asked here: no test split, so no test images.
    let c = ExperimentConfig::parse(&text("val_split = \"val\""), &[], "t").unwrap();
    let s = split(&c.data, 3, mask_kind(19)).unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (5, 3, 0));
    // The label maps keep 255 (ignore) and the train ids.
    let (_, labels, _) = ds2f::dataset::load_item(&s.val[0], mask_kind(19)).unwrap();
    assert_eq!(labels.get_pixel(0, 0).0[0], 255);
    assert_eq!(labels.get_pixel(20, 3).0[0], 1);
    // A class count other than the layout's is refused, naming the key.
    let e = split(&c.data, 3, mask_kind(5)).unwrap_err().to_string();
    assert!(e.contains("model.num_classes"), "{e}");
}
