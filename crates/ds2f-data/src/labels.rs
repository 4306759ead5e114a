//! Multi-class label maps: the lesion layouts (IDRiD, DDR), whose per-lesion binary masks are
//! merged into one label map, Cityscapes train-id masks with an ignore label, and per-class
//! pixel counts (the paper's Table I "RoI proportion").
//!
//! # Encoding
//! The lesion layouts use the reference's encoding (SPEC §4, from the evaluation script's
//! `file_map = {"MA":1,"HE":2,"EX":3,"SE":4}`): 0 = background, 1 = microaneurysms (MA),
//! 2 = haemorrhages (HE), 3 = hard exudates (EX), 4 = soft exudates (SE); with
//! [`Layout::IdridOd`] the optic disc (OD) is class 5. A lesion absent from an image has no file
//! and contributes nothing. Each lesion file is read as a binary mask with the crate's rules
//! ([`MaskKind::Binary`]: 0/1 as is, mostly 0/255 thresholded at `> 127`, anything else an error
//! naming the file), and must have its image's size ([`DataError::SizeMismatch`] naming it).
//!
//! Cityscapes masks are the `*_gtFine_labelTrainIds.png` files (made from the release's
//! `*_gtFine_labelIds.png` by cityscapesscripts' `createTrainIdLabelImgs`): 19 classes and
//! [`IGNORE_LABEL`] (255), read with [`MaskKind::ClassesOrIgnore`].
//!
//! # Overlaps
//! The reference's merge script is not in its repository. The lesion files are written in class
//! order MA, HE, EX, SE, so that a pixel marked in several files gets the **largest** id (what a
//! loop over `file_map` painting `label[mask > 0] = id` does). The optic disc, when asked for,
//! is written **first**, under the lesions, so that adding it never changes a lesion pixel (a
//! haemorrhage on the disc stays a haemorrhage).
//!
//! Measured on the 81 IDRiD images of `shared/data/idrid` (2144×1424, masks 2×2 max-pooled
//! from the release, which can only add overlap; every file is 0/255): pixels set in both
//! masks of a pair, summed over the images, and the pixels each lesion loses to later ones:
//!
//! | pair | MA&HE | MA&EX | MA&SE | HE&EX | HE&SE | EX&SE | HE&OD | MA, EX, SE & OD |
//! |---|---|---|---|---|---|---|---|---|
//! | pixels | 49 | 125 | 64 | 713 | 523 | 16 | 1,467 | 0 |
//!
//! Lesion totals: MA 289,698, HE 2,584,155, EX 2,395,005, SE 471,737 (OD 4,425,014). With the
//! later-id-wins order MA loses 238 pixels (0.082 %), HE 1,236 (0.048 %), EX 16 and SE none;
//! with the optic disc written under the lesions, OD loses its 1,467 haemorrhage pixels. So the
//! rule erases very little, MA included. Measured with Python 3 / numpy / Pillow:
//!
//! ```text
//! L = ["MA", "HE", "EX", "SE", "OD"]; pair = {p: 0 for p in itertools.combinations(L, 2)}
//! lost = {l: 0 for l in L}
//! for n in names:  # the 81 stems of images/*.jpg
//!     m = {l: np.array(Image.open(f"{root}/masks/{l}/{n}.png")) > 127
//!          for l in L if os.path.exists(f"{root}/masks/{l}/{n}.png")}
//!     for a, b in pair: pair[(a, b)] += int((m[a] & m[b]).sum()) if a in m and b in m else 0
//!     les = L[:4]
//!     for i, l in enumerate(les):
//!         later = np.zeros((1424, 2144), bool)
//!         for k in les[i + 1:]: later |= m.get(k, False)
//!         lost[l] += int((m[l] & later).sum()) if l in m else 0
//! ```
use std::fs;
use std::path::{Path, PathBuf};

use image::GrayImage;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::io::{self, IGNORE_LABEL, LoadLimits, MaskKind};
use crate::layout::{
    DiscoverOptions, Discovery, Item, Layout, index_by, layout_list, list_images, split_root, stem,
};

/// The number of Cityscapes train-id classes (road … bicycle).
pub const CITYSCAPES_CLASSES: usize = 19;

/// The Cityscapes train-id classes by id (cityscapesScripts' `labels.py`).
pub const CITYSCAPES_NAMES: [&str; CITYSCAPES_CLASSES] = [
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
];

/// The class names of `layout` by class id, when the layout defines its classes
/// (`background`, then the lesion codes; the Cityscapes names), else `None`.
pub fn class_names(layout: Layout) -> Option<Vec<String>> {
    let lesions = |od: bool| {
        let mut names = vec!["background".to_string()];
        names.extend(IDRID_LESIONS.iter().map(|l| l.code().to_string()));
        if od {
            names.push(Lesion::Od.code().to_string());
        }
        names
    };
    match layout {
        Layout::Idrid | Layout::Ddr => Some(lesions(false)),
        Layout::IdridOd => Some(lesions(true)),
        Layout::Cityscapes => Some(CITYSCAPES_NAMES.iter().map(|s| s.to_string()).collect()),
        _ => None,
    }
}

/// The split folders of a DDR release; `valid` is the reference's selection set.
pub const DDR_SPLITS: [&str; 3] = ["train", "valid", "test"];

/// The lesions of the lesion layouts, in writing order (class ids 1 to 4).
pub const IDRID_LESIONS: [Lesion; 4] = [Lesion::Ma, Lesion::He, Lesion::Ex, Lesion::Se];

/// A lesion (or the optic disc) with its folder code and class id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lesion {
    /// Microaneurysms, `MA`, class 1.
    Ma,
    /// Haemorrhages, `HE`, class 2.
    He,
    /// Hard exudates, `EX`, class 3.
    Ex,
    /// Soft exudates, `SE`, class 4.
    Se,
    /// The optic disc, `OD`, class 5 (only with [`Layout::IdridOd`]).
    Od,
}

impl Lesion {
    /// The folder name: `MA`, `HE`, `EX`, `SE` or `OD`.
    pub fn code(self) -> &'static str {
        match self {
            Lesion::Ma => "MA",
            Lesion::He => "HE",
            Lesion::Ex => "EX",
            Lesion::Se => "SE",
            Lesion::Od => "OD",
        }
    }

    /// The lesion of a folder code (`MA`, `HE`, `EX`, `SE`, `OD`; any case).
    pub fn from_code(code: &str) -> Option<Lesion> {
        [Lesion::Ma, Lesion::He, Lesion::Ex, Lesion::Se, Lesion::Od]
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(code))
    }

    /// The class id in the merged label map.
    pub fn class(self) -> u8 {
        match self {
            Lesion::Ma => 1,
            Lesion::He => 2,
            Lesion::Ex => 3,
            Lesion::Se => 4,
            Lesion::Od => 5,
        }
    }
}

/// One binary mask file and the class its foreground gets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClassMask {
    /// The class id written where the mask is set.
    pub class: u8,
    /// The binary mask file.
    pub path: PathBuf,
}

/// The binary masks merged into one item's label map.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClassMasks {
    /// Classes of the label map, background (0) included.
    pub num_classes: u8,
    /// The files present, in writing order: a pixel set in several gets the class of the last.
    /// Empty for an image without any lesion (an all-background label map).
    pub files: Vec<ClassMask>,
}

/// Fails unless masks read as `kind` can hold the `num_classes` classes of `masks`.
pub fn check_kind(masks: &ClassMasks, kind: MaskKind) -> Result<()> {
    let fits = match kind {
        MaskKind::Binary => masks.num_classes <= 2,
        MaskKind::Classes(n) | MaskKind::ClassesOrIgnore(n) => n >= masks.num_classes,
    };
    if fits {
        return Ok(());
    }
    Err(DataError::Invalid {
        name: "num_classes",
        reason: format!(
            "the lesion layout merges its masks into {} classes (0 = background, 1 = MA, \
             2 = HE, 3 = EX, 4 = SE{}), but masks are read as {} classes",
            masks.num_classes,
            if masks.num_classes > 5 {
                ", 5 = OD"
            } else {
                ""
            },
            kind.num_classes()
        ),
    })
}

/// Discovers the items of a multi-class layout ([`Layout::num_classes`] is `Some`); called by
/// [`crate::layout::discover_all`], which documents the errors.
pub(crate) fn discover_all(
    dir: &Path,
    layout: Layout,
    opts: &DiscoverOptions,
) -> Result<Discovery> {
    match layout {
        Layout::Cityscapes if opts.lesion.is_some() => Err(DataError::Invalid {
            name: "data.lesion",
            reason: format!("applies to the lesion layouts (idrid, ddr), not {layout}"),
        }),
        Layout::Cityscapes => discover_cityscapes(dir, opts),
        _ => discover_lesions(dir, layout, opts),
    }
}

/// The image folder, lesion folder and lesions (in writing order) of a lesion layout.
fn lesion_scheme(layout: Layout, root: &Path) -> (PathBuf, PathBuf, Vec<Lesion>) {
    match layout {
        Layout::Ddr => (
            root.join("image"),
            root.join("label"),
            IDRID_LESIONS.to_vec(),
        ),
        Layout::IdridOd => {
            let mut lesions = vec![Lesion::Od];
            lesions.extend(IDRID_LESIONS);
            (root.join("images"), root.join("masks"), lesions)
        }
        _ => (
            root.join("images"),
            root.join("masks"),
            IDRID_LESIONS.to_vec(),
        ),
    }
}

/// Items of IDRiD or DDR: every image with the lesion files present for its stem.
fn discover_lesions(dir: &Path, layout: Layout, opts: &DiscoverOptions) -> Result<Discovery> {
    let root = split_root(dir, layout, opts.split.as_deref())?;
    let (images_dir, lesion_root, mut lesions) = lesion_scheme(layout, &root);
    // Binary per-lesion mode: the one lesion, written as class 1.
    let binary = opts.lesion;
    if let Some(lesion) = binary {
        if !lesions.contains(&lesion) {
            return Err(DataError::Invalid {
                name: "data.lesion",
                reason: format!(
                    "`{}` is not a lesion of layout {layout} (expected one of {})",
                    lesion.code(),
                    lesions
                        .iter()
                        .map(|l| l.code())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        lesions = vec![lesion];
    }
    let class_of = |l: &Lesion| if binary.is_some() { 1 } else { l.class() };
    let mut problems = Vec::new();
    let images = index_images(&root, &images_dir, layout, |p| Some(stem(p)), &mut problems)?;
    let present: Vec<bool> = lesions
        .iter()
        .map(|l| lesion_root.join(l.code()).is_dir())
        .collect();
    let any_present = present.iter().any(|&p| p);
    if any_present && layout == Layout::IdridOd && !present[0] {
        return Err(DataError::Layout {
            path: root,
            reason: format!(
                "layout {layout} needs the optic disc masks in {}",
                lesion_root.join("OD").display()
            ),
        });
    }
    let mut files = Vec::with_capacity(lesions.len());
    for lesion in &lesions {
        let suffix = format!("_{}", lesion.code());
        // `IDRiD_01.png` as in shared/data, or the release's `IDRiD_01_MA.tif`.
        let key = move |p: &Path| {
            let s = stem(p);
            Some(s.strip_suffix(&suffix).map(str::to_owned).unwrap_or(s))
        };
        files.push(index_by(
            &lesion_root.join(lesion.code()),
            key,
            &mut problems,
        )?);
    }
    let num_classes = 1 + lesions.len() as u8;
    let mut items = Vec::with_capacity(images.len());
    for (name, image) in images {
        let class_masks = if any_present {
            Some(ClassMasks {
                num_classes,
                files: lesions
                    .iter()
                    .zip(&files)
                    .filter_map(|(l, f)| {
                        f.get(&name).map(|p| ClassMask {
                            class: class_of(l),
                            path: p.clone(),
                        })
                    })
                    .collect(),
            })
        } else if opts.require_masks {
            let codes: Vec<&str> = lesions.iter().map(|l| l.code()).collect();
            problems.push(DataError::MissingMask {
                image,
                expected: format!(
                    "per-lesion masks in {}/{{{}}}/ (layout {layout}: {})",
                    lesion_root.display(),
                    codes.join(","),
                    layout.expects()
                ),
            });
            continue;
        } else {
            None
        };
        items.push(Item {
            name,
            image,
            mask: None,
            fov: None,
            class_masks,
        });
    }
    Ok(Discovery { items, problems })
}

/// The images of `images_dir` keyed by `key`, with the folder-level errors of
/// [`crate::layout::discover_all`] (missing folder, no images, none named as expected).
fn index_images(
    root: &Path,
    images_dir: &Path,
    layout: Layout,
    key: impl Fn(&Path) -> Option<String>,
    problems: &mut Vec<DataError>,
) -> Result<std::collections::BTreeMap<String, PathBuf>> {
    if !images_dir.is_dir() {
        return Err(DataError::Layout {
            path: root.to_path_buf(),
            reason: format!(
                "no image folder {} for layout {layout} ({}); {}",
                images_dir.display(),
                layout.expects(),
                layout_list()
            ),
        });
    }
    let all = list_images(images_dir)?;
    if all.is_empty() {
        return Err(DataError::Empty {
            path: images_dir.to_path_buf(),
            expected: format!("image files for layout {layout}: {}", layout.expects()),
        });
    }
    let images = index_by(images_dir, key, problems)?;
    if images.is_empty() {
        return Err(DataError::Layout {
            path: images_dir.to_path_buf(),
            reason: format!(
                "{} image files but none named as layout {layout} expects ({})",
                all.len(),
                layout.expects()
            ),
        });
    }
    Ok(images)
}

/// The visible subfolders of `dir`, sorted.
fn subfolders(dir: &Path) -> Result<Vec<PathBuf>> {
    let io_err = |error| DataError::Io {
        path: dir.to_path_buf(),
        error,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if path.is_dir() && !hidden {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Items of Cityscapes: `leftImg8bit/<split>/<city>/N_leftImg8bit.png` with
/// `gtFine/<split>/<city>/N_gtFine_labelTrainIds.png`, named `N` (which starts with the city).
fn discover_cityscapes(dir: &Path, opts: &DiscoverOptions) -> Result<Discovery> {
    let layout = Layout::Cityscapes;
    let images_root = dir.join("leftImg8bit");
    if !images_root.is_dir() {
        return Err(DataError::Layout {
            path: dir.to_path_buf(),
            reason: format!(
                "no leftImg8bit/ folder; {layout} expects {}",
                layout.expects()
            ),
        });
    }
    let split = match opts.split.as_deref() {
        Some(s) if images_root.join(s).is_dir() => s.to_owned(),
        Some(s) => {
            return Err(DataError::Layout {
                path: dir.to_path_buf(),
                reason: format!(
                    "split folder {} does not exist",
                    images_root.join(s).display()
                ),
            });
        }
        None => {
            let splits = subfolders(&images_root)?;
            match splits.as_slice() {
                [only] => only
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                _ => {
                    let names: Vec<String> = splits
                        .iter()
                        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                        .collect();
                    return Err(DataError::Layout {
                        path: dir.to_path_buf(),
                        reason: format!(
                            "a {layout} release with splits [{}] in leftImg8bit/: choose one \
                             with the split option",
                            names.join(", ")
                        ),
                    });
                }
            }
        }
    };
    let mut problems = Vec::new();
    let split_dir = images_root.join(&split);
    let mut images = std::collections::BTreeMap::new();
    for city in subfolders(&split_dir)? {
        let found = index_by(&city, |p| strip(p, "_leftImg8bit"), &mut problems)?;
        merge_unique(&mut images, found, &mut problems);
    }
    if images.is_empty() {
        return Err(DataError::Empty {
            path: split_dir,
            expected: format!("image files for layout {layout}: {}", layout.expects()),
        });
    }
    let labels_dir = dir.join("gtFine").join(&split);
    let mut masks = std::collections::BTreeMap::new();
    if labels_dir.is_dir() {
        for city in subfolders(&labels_dir)? {
            let found = index_by(&city, |p| strip(p, "_gtFine_labelTrainIds"), &mut problems)?;
            merge_unique(&mut masks, found, &mut problems);
        }
    }
    let mut items = Vec::with_capacity(images.len());
    for (name, image) in images {
        let mask = masks.get(&name).cloned();
        if mask.is_none() && opts.require_masks {
            problems.push(DataError::MissingMask {
                image,
                expected: format!(
                    "{}/<city>/{name}_gtFine_labelTrainIds.png (made from the \
                     *_gtFine_labelIds.png files by cityscapesscripts' createTrainIdLabelImgs)",
                    labels_dir.display()
                ),
            });
            continue;
        }
        items.push(Item {
            name,
            image,
            mask,
            fov: None,
            class_masks: None,
        });
    }
    Ok(Discovery { items, problems })
}

/// `Some(prefix)` if the stem of `path` ends with `suffix`.
fn strip(path: &Path, suffix: &str) -> Option<String> {
    stem(path).strip_suffix(suffix).map(str::to_owned)
}

/// Adds `found` to `all`; a key already there is a [`DataError::DuplicateStem`].
fn merge_unique(
    all: &mut std::collections::BTreeMap<String, PathBuf>,
    found: std::collections::BTreeMap<String, PathBuf>,
    problems: &mut Vec<DataError>,
) {
    for (k, p) in found {
        match all.get(&k) {
            Some(first) => problems.push(DataError::DuplicateStem {
                first: first.clone(),
                second: p,
            }),
            None => {
                all.insert(k, p);
            }
        }
    }
}

/// Merges binary masks (non-zero = set) into one `width x height` label map, starting from
/// background 0: each mask writes its class where it is set, in order, so the last one wins.
///
/// # Errors
/// [`DataError::Invalid`] when a mask's size is not `width x height`.
pub fn merge_class_masks(width: u32, height: u32, masks: &[(u8, &GrayImage)]) -> Result<GrayImage> {
    let mut out = GrayImage::new(width, height);
    for &(class, mask) in masks {
        if mask.dimensions() != (width, height) {
            return Err(DataError::Invalid {
                name: "class mask",
                reason: format!(
                    "the mask of class {class} is {}x{}, the label map {width}x{height} (WxH)",
                    mask.width(),
                    mask.height()
                ),
            });
        }
        paint(&mut out, class, mask);
    }
    Ok(out)
}

/// Writes `class` where `mask` (of the same size) is non-zero.
fn paint(out: &mut GrayImage, class: u8, mask: &GrayImage) {
    for (o, &m) in out.iter_mut().zip(mask.iter()) {
        if m != 0 {
            *o = class;
        }
    }
}

/// [`load_label_map_with`] with the default [`LoadLimits`].
pub fn load_label_map(item: &Item, kind: MaskKind, image_size: (u32, u32)) -> Result<GrayImage> {
    load_label_map_with(item, kind, image_size, &LoadLimits::default())
}

/// The label map of `item`, whose image is `image_size = (width, height)`: its mask file read as
/// `kind`, or its per-lesion masks merged (see the module documentation; `kind` must have room
/// for the layout's classes).
///
/// # Errors
/// The errors of [`io::load_mask_with`] naming the file, [`DataError::SizeMismatch`] naming the
/// mask (or lesion) file whose size is not the image's, [`DataError::Invalid`] when `kind` has
/// fewer classes than the lesion layout, [`DataError::MissingMask`] for an item without labels.
pub fn load_label_map_with(
    item: &Item,
    kind: MaskKind,
    image_size: (u32, u32),
    limits: &LoadLimits,
) -> Result<GrayImage> {
    let (w, h) = image_size;
    let check = |path: &Path, m: &GrayImage| {
        if m.dimensions() == image_size {
            return Ok(());
        }
        Err(DataError::SizeMismatch {
            image: item.image.clone(),
            mask: path.to_path_buf(),
            image_w: w,
            image_h: h,
            mask_w: m.width(),
            mask_h: m.height(),
        })
    };
    if let Some(masks) = &item.class_masks {
        check_kind(masks, kind)?;
        let mut out = GrayImage::new(w, h);
        for file in &masks.files {
            let m = io::load_mask_with(&file.path, MaskKind::Binary, limits)?;
            check(&file.path, &m)?;
            paint(&mut out, file.class, &m);
        }
        return Ok(out);
    }
    let path = item.mask.as_ref().ok_or_else(|| DataError::MissingMask {
        image: item.image.clone(),
        expected: "a mask (this item has none)".into(),
    })?;
    let m = io::load_mask_with(path, kind, limits)?;
    check(path, &m)?;
    Ok(m)
}

/// Pixel counts per class, with the [`IGNORE_LABEL`] pixels counted apart: the class balance
/// of a dataset (the paper's Table I "RoI proportion" is the lesion classes' fraction).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassPixels {
    /// `counts[c]`: pixels of class `c`.
    pub counts: Vec<u64>,
    /// Pixels with the ignore label.
    pub ignored: u64,
}

impl ClassPixels {
    /// Zero counts for `num_classes` classes.
    pub fn new(num_classes: usize) -> Self {
        Self {
            counts: vec![0; num_classes],
            ignored: 0,
        }
    }

    /// Adds the pixels of one label map; `source` names it in errors.
    ///
    /// # Errors
    /// [`DataError::MaskValues`] naming `source` for a value that is neither a class nor
    /// [`IGNORE_LABEL`].
    pub fn add(&mut self, labels: &GrayImage, source: &Path) -> Result<()> {
        let mut hist = [0u64; 256];
        for &v in labels.iter() {
            hist[usize::from(v)] += 1;
        }
        let n = self.counts.len();
        let bad: Vec<String> = (0..256)
            .filter(|&v| hist[v] > 0 && v >= n && v != usize::from(IGNORE_LABEL))
            .map(|v| v.to_string())
            .collect();
        if !bad.is_empty() {
            return Err(DataError::MaskValues {
                path: source.to_path_buf(),
                found: format!(
                    "values {} neither below the class count {n} nor the ignore label \
                     {IGNORE_LABEL}",
                    bad.join(", ")
                ),
            });
        }
        for (c, count) in self.counts.iter_mut().enumerate() {
            *count += hist[c];
        }
        if n <= usize::from(IGNORE_LABEL) {
            self.ignored += hist[usize::from(IGNORE_LABEL)];
        }
        Ok(())
    }

    /// Adds another count of the same classes.
    ///
    /// # Errors
    /// [`DataError::Invalid`] when the class counts differ.
    pub fn merge(&mut self, other: &ClassPixels) -> Result<()> {
        if other.counts.len() != self.counts.len() {
            return Err(DataError::Invalid {
                name: "class pixels",
                reason: format!(
                    "cannot add counts of {} classes to counts of {}",
                    other.counts.len(),
                    self.counts.len()
                ),
            });
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.ignored += other.ignored;
        Ok(())
    }

    /// Pixels with a class (ignored pixels excluded).
    pub fn labelled(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Each class's share of the labelled pixels (NaN for every class when none is labelled).
    pub fn fractions(&self) -> Vec<f64> {
        let total = self.labelled() as f64;
        self.counts.iter().map(|&c| c as f64 / total).collect()
    }

    /// The ignored pixels' share of all pixels (NaN when there are none).
    pub fn ignored_fraction(&self) -> f64 {
        self.ignored as f64 / (self.labelled() + self.ignored) as f64
    }
}

/// Counts the pixels of every class over the label maps of `items` (read with
/// [`load_label_map_with`] as `kind`, in parallel), for `kind.num_classes()` classes.
///
/// # Errors
/// The first error in item order: an unreadable image header or label map, a size mismatch,
/// a value that is neither a class nor [`IGNORE_LABEL`].
pub fn class_pixels(items: &[Item], kind: MaskKind, limits: &LoadLimits) -> Result<ClassPixels> {
    let n = kind.num_classes();
    let per_item: Vec<Result<ClassPixels>> = items
        .par_iter()
        .map(|item| {
            let size = io::image_dimensions(&item.image, limits)?;
            let labels = load_label_map_with(item, kind, size, limits)?;
            let mut counts = ClassPixels::new(n);
            counts.add(&labels, item.mask.as_deref().unwrap_or(&item.image))?;
            Ok(counts)
        })
        .collect();
    let mut total = ClassPixels::new(n);
    for counts in per_item {
        total.merge(&counts?)?;
    }
    Ok(total)
}
