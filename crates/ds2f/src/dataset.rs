//! From an experiment config to the data the trainer and evaluator use: the train / validation
//! / test split, the LR/HR samples, and batches as tensors.
use std::path::Path;
use std::sync::{Arc, OnceLock};

use burn::prelude::*;
use ds2f_data::DataError;
use ds2f_data::augment::Augment;
use ds2f_data::error::Result;
use ds2f_data::io::{LoadLimits, MaskKind, load_fov, load_rgb_with};
use ds2f_data::labels::Lesion;
use ds2f_data::labels::load_label_map;
use ds2f_data::layout::{DiscoverOptions, Discovery, Item, Layout, discover, discover_all};
use ds2f_data::loader::{Batch, SampleSource};
use ds2f_data::pair::{Sample, make_sample};
use image::{GrayImage, RgbImage};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;

use crate::config::{DataConfig, ExperimentConfig};

/// The three disjoint sets of an experiment.
#[derive(Debug, Clone, Default)]
pub struct Splits {
    /// Training images.
    pub train: Vec<Item>,
    /// Validation images (model selection), carved out of the training pool.
    pub val: Vec<Item>,
    /// Test images (never seen in training or selection).
    pub test: Vec<Item>,
}

/// The mask reading rule for `num_classes` classes: binary (0/1, 0/255, anti-aliased grey
/// binarised at > 127) for two classes, class indices otherwise, where 255 is the ignore label
/// ([`ds2f_data::IGNORE_LABEL`], Cityscapes' convention) that every loss and metric skips.
pub fn mask_kind(num_classes: usize) -> MaskKind {
    if num_classes == 2 {
        MaskKind::Binary
    } else {
        MaskKind::ClassesOrIgnore(num_classes.min(255) as u8)
    }
}

/// Finds the items of a folder in the configured (or detected) layout.
pub fn discover_items(
    dir: &Path,
    layout: &str,
    split: Option<&str>,
    require_masks: bool,
) -> Result<Vec<Item>> {
    let layout = parse_layout(dir, layout)?;
    let opts = DiscoverOptions {
        require_masks,
        split: split.map(str::to_string),
        ..Default::default()
    };
    discover(dir, layout, &opts)
}

/// Like [`discover_items`], but pairing problems (duplicate stems, missing masks) are
/// collected beside the usable items instead of failing at the first.
pub fn discover_items_all(dir: &Path, layout: &str, split: Option<&str>) -> Result<Discovery> {
    let layout = parse_layout(dir, layout)?;
    let opts = DiscoverOptions {
        split: split.map(str::to_string),
        ..Default::default()
    };
    discover_all(dir, layout, &opts)
}

/// [`discover_items_all`] with the data config's layout and binary lesion mode
/// (`data.lesion`).
pub fn discover_data(dir: &Path, data: &DataConfig, split: Option<&str>) -> Result<Discovery> {
    let layout = parse_layout(dir, &data.layout)?;
    let opts = DiscoverOptions {
        require_masks: true,
        split: split.map(str::to_string),
        lesion: lesion_of(data)?,
    };
    discover_all(dir, layout, &opts)
}

/// The lesion of `data.lesion`, if set.
pub fn lesion_of(data: &DataConfig) -> Result<Option<Lesion>> {
    data.lesion
        .as_deref()
        .map(|code| {
            Lesion::from_code(code).ok_or_else(|| DataError::Invalid {
                name: "data.lesion",
                reason: format!("unknown lesion `{code}` (expected MA, HE, EX or SE)"),
            })
        })
        .transpose()
}

/// `auto` (detected from the folder) or a layout name.
fn parse_layout(dir: &Path, layout: &str) -> Result<Layout> {
    if layout == "auto" {
        return Layout::detect(dir);
    }
    layout.parse::<Layout>().map_err(|_| DataError::Invalid {
        name: "data.layout",
        reason: format!(
            "unknown layout `{layout}` (expected auto, {})",
            Layout::ALL.map(|l| l.name()).join(", ")
        ),
    })
}

/// The configured layout (`auto` detected from `data.root`).
pub fn layout_of(data: &DataConfig) -> Result<Layout> {
    parse_layout(&data.root, &data.layout)
}

/// A layout that defines its classes (IDRiD, DDR: 5; `idrid_od`: 6; Cityscapes: 19) needs
/// `model.num_classes` to say the same.
fn check_class_count(data: &DataConfig, num_classes: usize) -> Result<()> {
    let layout_classes = match lesion_of(data)? {
        Some(_) => Some(2),
        None => layout_of(data)?.num_classes(),
    };
    match layout_classes {
        Some(n) if n != num_classes => Err(DataError::Invalid {
            name: "model.num_classes",
            reason: match &data.lesion {
                Some(code) => format!(
                    "is {num_classes}, but data.lesion = \"{code}\" makes a binary task (2 classes)"
                ),
                None => format!(
                    "is {num_classes}, but the `{}` layout of {} has {n} classes",
                    layout_of(data)?.name(),
                    data.root.display()
                ),
            },
        }),
        _ => Ok(()),
    }
}

/// The class names of the configured data, by class id: `data.class_names` when given, else
/// the layout's (`background`, `MA`, `HE`, `EX`, `SE` for the lesion layouts; Cityscapes'),
/// else `background` / `foreground` for two classes and `class k` otherwise.
pub fn class_names(data: &DataConfig, num_classes: usize) -> Vec<String> {
    if data.class_names.len() == num_classes {
        return data.class_names.clone();
    }
    if let (Ok(Some(lesion)), 2) = (lesion_of(data), num_classes) {
        return vec!["background".into(), lesion.code().into()];
    }
    if let Some(names) = layout_of(data)
        .ok()
        .and_then(ds2f_data::labels::class_names)
        .filter(|n| n.len() == num_classes)
    {
        return names;
    }
    if num_classes == 2 {
        return vec!["background".into(), "foreground".into()];
    }
    (0..num_classes).map(|k| format!("class {k}")).collect()
}

/// Which classes the headline metrics average: every class for Cityscapes (its mIoU over the
/// 19 classes), the foreground classes otherwise (the paper's lesion and vessel convention).
pub fn class_mean(data: &DataConfig) -> ds2f_metrics::ClassMean {
    match layout_of(data) {
        Ok(Layout::Cityscapes) => ds2f_metrics::ClassMean::All,
        _ => ds2f_metrics::ClassMean::Foreground,
    }
}

fn matches_any(patterns: &[glob::Pattern], name: &str) -> bool {
    patterns.iter().any(|p| p.matches(name))
}

fn compile(patterns: &[String], key: &'static str) -> Result<Vec<glob::Pattern>> {
    patterns
        .iter()
        .map(|p| {
            glob::Pattern::new(p).map_err(|e| DataError::Invalid {
                name: key,
                reason: format!("bad pattern `{p}`: {e}"),
            })
        })
        .collect()
}

/// Splits the configured data: the test set is `test_include` (of `test_root`, or of `root`),
/// the training pool is `train_include` of `root` minus the test set, and `val_count` images of
/// the pool, drawn with `seed`, are held out for validation.
///
/// A folder with pairing problems (missing masks, duplicate stems) fails with every problem of
/// both folders at once, decode problems of the pairable items (masks read as `kind`)
/// included, as `ds2f check-data` lists them.
pub fn split(data: &DataConfig, seed: u64, kind: MaskKind) -> Result<Splits> {
    check_class_count(data, kind.num_classes())?;
    let train_patterns = compile(&data.train_include, "data.train_include")?;
    let test_patterns = compile(&data.test_include, "data.test_include")?;
    let mut found = discover_data(&data.root, data, data.split.as_deref())?;
    let mut found_test = match (&data.test_root, &data.test_split) {
        (Some(dir), split) => Some(discover_data(dir, data, split.as_deref())?),
        // Another split of the same release (Cityscapes' `val`).
        (None, Some(split)) => Some(discover_data(&data.root, data, Some(split))?),
        (None, None) => None,
    };
    let mut problems = std::mem::take(&mut found.problems);
    problems.extend(
        found_test
            .iter_mut()
            .flat_map(|d| std::mem::take(&mut d.problems)),
    );
    if !problems.is_empty() {
        for d in std::iter::once(&found).chain(&found_test) {
            problems.extend(ds2f_data::layout::check_items(&d.items, kind));
        }
        return Err(DataError::Problems(problems));
    }
    let items = found.items;
    let separate_test = found_test.is_some();
    // A pattern that matches nothing is a typo: without this check a wrong test pattern
    // leaves no test image and trains on everything.
    let test_pool: &[Item] = found_test.as_ref().map_or(&items, |d| &d.items);
    for (patterns, list, key, pool) in [
        (
            &train_patterns,
            &data.train_include,
            "data.train_include",
            &items[..],
        ),
        (
            &test_patterns,
            &data.test_include,
            "data.test_include",
            test_pool,
        ),
    ] {
        if let Some((_, text)) = patterns
            .iter()
            .zip(list)
            .find(|(p, _)| !pool.iter().any(|i| p.matches(&i.name)))
        {
            return Err(DataError::Invalid {
                name: key,
                reason: format!(
                    "pattern `{text}` matches no image in {} ({} images)",
                    data.test_root
                        .as_ref()
                        .filter(|_| key == "data.test_include")
                        .unwrap_or(&data.root)
                        .display(),
                    pool.len()
                ),
            });
        }
    }
    let test = match found_test {
        Some(d) => d
            .items
            .into_iter()
            .filter(|i| test_patterns.is_empty() || matches_any(&test_patterns, &i.name))
            .collect(),
        None => items
            .iter()
            .filter(|i| matches_any(&test_patterns, &i.name))
            .cloned()
            .collect::<Vec<_>>(),
    };
    let mut pool: Vec<Item> = items
        .into_iter()
        .filter(|i| matches_any(&train_patterns, &i.name))
        .filter(|i| separate_test || !matches_any(&test_patterns, &i.name))
        .collect();
    if data.val_root.is_some() || data.val_split.is_some() {
        // An official selection split (DDR's `valid`): every image of that folder or split.
        let dir = data.val_root.as_ref().unwrap_or(&data.root);
        let found_val = discover_data(dir, data, data.val_split.as_deref())?;
        if !found_val.problems.is_empty() {
            let mut problems = found_val.problems;
            problems.extend(ds2f_data::layout::check_items(&found_val.items, kind));
            return Err(DataError::Problems(problems));
        }
        if found_val.items.is_empty() {
            return Err(DataError::Invalid {
                name: "data.val_root",
                reason: format!("{}: no images", dir.display()),
            });
        }
        return Ok(Splits {
            train: pool,
            val: found_val.items,
            test,
        });
    }
    if data.select_on_test {
        // The reference's k-fold protocol: the test images double as the selection set.
        return Ok(Splits {
            train: pool,
            val: test.clone(),
            test,
        });
    }
    if pool.len() <= data.val_count {
        return Err(DataError::Invalid {
            name: "data.val_count",
            reason: format!(
                "{} training images in {} after the test set is removed; need more than \
                 val_count = {}",
                pool.len(),
                data.root.display(),
                data.val_count
            ),
        });
    }
    let mut order: Vec<usize> = (0..pool.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x05EE_D0F5_A11D));
    let mut held: Vec<usize> = order[..data.val_count].to_vec();
    held.sort_unstable();
    let mut val = Vec::with_capacity(held.len());
    for &i in held.iter().rev() {
        val.push(pool.remove(i));
    }
    val.reverse();
    Ok(Splits {
        train: pool,
        val,
        test,
    })
}

/// A decoded original: image, class-index mask, optional FOV.
pub type Decoded = (RgbImage, GrayImage, Option<GrayImage>);

/// Loads one item at its original size, checking that its label files (one mask, or the
/// per-lesion masks merged into one label map) and FOV match the image.
pub fn load_item(item: &Item, kind: MaskKind) -> Result<Decoded> {
    let image = load_rgb_with(&item.image, &LoadLimits::default())?;
    if !item.has_labels() {
        return Err(DataError::MissingMask {
            image: item.image.clone(),
            expected: "a mask (this item has none)".into(),
        });
    }
    let mask = load_label_map(item, kind, image.dimensions())?;
    let fov = item.fov.as_ref().map(load_fov).transpose()?;
    for (path, other) in item.fov.iter().zip(&fov) {
        if other.dimensions() != image.dimensions() {
            return Err(DataError::SizeMismatch {
                image: item.image.clone(),
                mask: path.clone(),
                image_w: image.width(),
                image_h: image.height(),
                mask_w: other.width(),
                mask_h: other.height(),
            });
        }
    }
    Ok((image, mask, fov))
}

/// [`load_item`], then with `crop_to_fov` the image, mask and FOV cropped to the bounding box
/// of the FOV's non-zero pixels: the paper's preprocessing of PRIME-FP20, whose ultra-wide-field
/// photographs are mostly outside the field of view (SPEC §3). An item without a FOV mask, or
/// with an empty one, is an error naming the file.
pub fn load_item_with(item: &Item, kind: MaskKind, crop_to_fov: bool) -> Result<Decoded> {
    let (image, mask, fov) = load_item(item, kind)?;
    if !crop_to_fov {
        return Ok((image, mask, fov));
    }
    let bad = |reason: String| DataError::Invalid {
        name: "data.crop_to_fov",
        reason: format!("{}: {reason}", item.image.display()),
    };
    let fov = fov.ok_or_else(|| bad("no FOV mask to crop to".into()))?;
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in fov.enumerate_pixels() {
        if p.0[0] != 0 {
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
        }
    }
    if x0 > x1 {
        return Err(bad(format!(
            "its FOV mask {} is empty",
            item.fov
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string())
        )));
    }
    let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
    let crop = |g: &GrayImage| image::imageops::crop_imm(g, x0, y0, w, h).to_image();
    Ok((
        image::imageops::crop_imm(&image, x0, y0, w, h).to_image(),
        crop(&mask),
        Some(crop(&fov)),
    ))
}

/// Makes LR/HR samples of a list of items, decoding each original once and keeping it in
/// memory (decoding a 3504×2336 JPEG costs more than a training step's data work).
pub struct ItemSource {
    items: Vec<Item>,
    cache: Vec<OnceLock<Arc<Decoded>>>,
    kind: MaskKind,
    lr_size: [usize; 2],
    upscale: usize,
    augment: Option<Augment>,
    crop_to_fov: bool,
}

impl ItemSource {
    /// A source over `items` for the config's sizes; `augment` applies the paper's pipeline.
    pub fn new(items: Vec<Item>, config: &ExperimentConfig, augment: bool) -> Self {
        let cache = (0..items.len()).map(|_| OnceLock::new()).collect();
        Self {
            items,
            cache,
            kind: mask_kind(config.model.num_classes),
            lr_size: config.data.lr_size,
            upscale: config.model.effective_upscale(),
            augment: augment.then(Augment::paper),
            crop_to_fov: config.data.crop_to_fov,
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items.
    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// The decoded original of item `index` (decoded on first use).
    pub fn decoded(&self, index: usize) -> Result<Arc<Decoded>> {
        if let Some(d) = self.cache[index].get() {
            return Ok(d.clone());
        }
        let d = Arc::new(load_item_with(
            &self.items[index],
            self.kind,
            self.crop_to_fov,
        )?);
        Ok(self.cache[index].get_or_init(|| d).clone())
    }

    /// The (augmented, when configured) LR/HR sample of item `index`, drawn with `rng`.
    pub fn sample(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample> {
        let decoded = self.decoded(index)?;
        let (image, mask, fov) = &*decoded;
        let name = &self.items[index].name;
        let lr = (self.lr_size[0] as u32, self.lr_size[1] as u32);
        let r = self.upscale as u32;
        match &self.augment {
            Some(augment) => {
                let (image, mask, fov) =
                    augment.apply(rng, image.clone(), mask.clone(), fov.clone())?;
                make_sample(&image, &mask, fov.as_ref(), lr, r, name)
            }
            None => make_sample(image, mask, fov.as_ref(), lr, r, name),
        }
    }
}

impl SampleSource for ItemSource {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn load(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample> {
        self.sample(index, rng)
    }
}

/// A batch as tensors on `device`: the LR images `[n, 3, h, w]` and HR masks `[n, rh, rw]`.
pub fn batch_tensors(batch: &Batch, device: &Device) -> (Tensor<4>, Tensor<3, Int>) {
    let n = batch.n;
    let (h, w) = (batch.lr_size.0 as usize, batch.lr_size.1 as usize);
    let lr = Tensor::<4>::from_data(TensorData::new(batch.lr.clone(), [n, 3, h, w]), device);
    let (hh, hw) = (batch.hr_size.0 as usize, batch.hr_size.1 as usize);
    let mask: Vec<i64> = batch.mask.iter().map(|&v| i64::from(v)).collect();
    let mask = Tensor::<3, Int>::from_data(TensorData::new(mask, [n, hh, hw]), device);
    (lr, mask)
}

/// The batch's HR images (the SR target, normalised to [−1, 1]), `[n, 3, r·h, r·w]`.
pub fn hr_tensor(batch: &Batch, device: &Device) -> Tensor<4> {
    let (hh, hw) = (batch.hr_size.0 as usize, batch.hr_size.1 as usize);
    Tensor::<4>::from_data(
        TensorData::new(batch.hr.clone(), [batch.n, 3, hh, hw]),
        device,
    )
}
