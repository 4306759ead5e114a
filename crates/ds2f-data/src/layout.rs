//! Dataset layouts: finding the images of a folder and pairing each with its mask and FOV.
//!
//! Every layout yields [`Item`]s sorted by name. The layouts and where their files are expected
//! (`dir` is the folder given to [`discover`]):
//!
//! | layout | images | masks (first observer) | FOV |
//! |---|---|---|---|
//! | [`Layout::Generic`] | `images/*` | `masks/<stem>.*` | `fov/<stem>.*` (optional folder) |
//! | [`Layout::Hrf`] | `images/NN_x.jpg` | `manual1/NN_x.tif` | `mask/NN_x_mask.tif` |
//! | [`Layout::Drive`] | `images/NN_split.tif` | `1st_manual/NN_manual1.gif` | `mask/NN_split_mask.gif` |
//! | [`Layout::ChaseDb1`] | `Image_NNL.jpg` (flat) | `Image_NNL_1stHO.png` | none |
//! | [`Layout::Stare`] | `imNNNN.ppm` in `dir` or `dir/stare-images/` | `imNNNN.ah.ppm` in the image folder or `dir/labels-ah/` | none |
//! | [`Layout::Drhagis`] | `Fundus_Images/N.jpg` | `Manual_Segmentations/N_manual_orig.png` | `Mask_images/N_mask_orig.png` |
//! | [`Layout::Fives`] | `Original/N_X.png` | `Ground truth/N_X.png` | none |
//! | [`Layout::Idrid`], [`Layout::IdridOd`] | `images/IDRiD_NN.jpg` | `masks/{MA,HE,EX,SE[,OD]}/IDRiD_NN.png`, merged | none |
//! | [`Layout::Ddr`] | `<split>/image/N.jpg` | `<split>/label/{EX,HE,MA,SE}/N.tif`, merged | none |
//! | [`Layout::Cityscapes`] | `leftImg8bit/<split>/<city>/N_leftImg8bit.png` | `gtFine/<split>/<city>/N_gtFine_labelTrainIds.png` | none |
//!
//! The multi-class layouts (the last three rows) are described in [`crate::labels`]: a lesion
//! layout's item has one binary mask file per lesion present ([`Item::class_masks`]), merged
//! into one label map by [`crate::labels::load_label_map`]; a missing lesion file means the
//! lesion is absent.
//!
//! Splits: DRIVE (`training/`, `test/`) and FIVES (`train/`, `test/`) releases hold one
//! subfolder per split. [`discover`] accepts either the split folder itself (e.g.
//! `DRIVE/training`) or the release folder together with [`DiscoverOptions::split`]; given the
//! release folder without a split it fails with [`DataError::Layout`] naming the splits, since
//! FIVES reuses names across splits. For the other layouts `split`, when set, selects the
//! subfolder `dir/<split>` first; DDR's splits are `train`, `valid` and `test` (like DRIVE,
//! the release folder needs one), and Cityscapes' split is a subfolder of `leftImg8bit/` and
//! `gtFine/` (`train`, `val`, `test`).
//!
//! Files are matched by name with extensions in any case (`.JPG`, `.tif`); hidden files
//! (starting with `.`) and files whose extension is not an image format (`.txt`, `SHA256SUMS`)
//! are ignored. Compressed STARE files (`.ppm.gz`) must be decompressed first.
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::io::{self, LoadLimits, MaskKind};
use crate::labels::{self, ClassMasks};

/// One image with its optional mask and field-of-view mask.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Item {
    /// The image's name: its file stem (`21_training`, `01_dr`, `Image_01L`).
    pub name: String,
    /// The image file.
    pub image: PathBuf,
    /// The ground-truth mask, if found.
    pub mask: Option<PathBuf>,
    /// The field-of-view mask, if the dataset has one.
    pub fov: Option<PathBuf>,
    /// The per-class binary masks merged into this item's label map, for the lesion layouts
    /// ([`Layout::Idrid`], [`Layout::IdridOd`], [`Layout::Ddr`]), whose `mask` is `None`;
    /// `None` for every other layout, and for lesion images discovered without ground truth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_masks: Option<ClassMasks>,
}

impl Item {
    /// Whether the item has ground truth: a mask file, or per-class masks (possibly none
    /// present, i.e. an all-background label map).
    pub fn has_labels(&self) -> bool {
        self.mask.is_some() || self.class_masks.is_some()
    }
}

/// A known dataset folder layout. Serialised in lowercase (`generic`, `chasedb1`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `images/`, `masks/`, optional `fov/`, paired by file stem.
    Generic,
    /// The original HRF release: `images/`, `manual1/`, `mask/`.
    Hrf,
    /// One split of the DRIVE release: `images/`, `1st_manual/`, `mask/`.
    Drive,
    /// CHASE_DB1: one flat folder of `Image_NNL.jpg` and `Image_NNL_1stHO.png`.
    ChaseDb1,
    /// STARE: `imNNNN.ppm` and `imNNNN.ah.ppm`.
    Stare,
    /// DR HAGIS: `Fundus_Images/`, `Manual_Segmentations/`, `Mask_images/`.
    Drhagis,
    /// One split of FIVES: `Original/` and `Ground truth/`.
    Fives,
    /// IDRiD lesion segmentation: `images/` and one folder of binary masks per lesion under
    /// `masks/` (`MA`, `HE`, `EX`, `SE`), merged into 0 = background, 1 = MA, 2 = HE, 3 = EX,
    /// 4 = SE (5 classes). See [`crate::labels`].
    Idrid,
    /// [`Layout::Idrid`] with the optic disc (`masks/OD/`) as class 5 (6 classes), written
    /// under the lesions so that no lesion pixel changes. Config name `idrid_od`.
    #[serde(rename = "idrid_od")]
    IdridOd,
    /// One split of DDR lesion segmentation: `image/` and `label/{EX,HE,MA,SE}/`, merged with
    /// the IDRiD encoding (5 classes).
    Ddr,
    /// Cityscapes fine annotations as train ids: 19 classes, [`crate::io::IGNORE_LABEL`] kept.
    Cityscapes,
}

impl Layout {
    /// All layouts, in the order [`Layout::detect`] tries them ([`Layout::IdridOd`] is never
    /// detected: [`Layout::Idrid`] comes first and matches the same folders).
    pub const ALL: [Layout; 11] = [
        Layout::Cityscapes,
        Layout::Ddr,
        Layout::Idrid,
        Layout::IdridOd,
        Layout::Fives,
        Layout::Drhagis,
        Layout::Drive,
        Layout::Hrf,
        Layout::Generic,
        Layout::ChaseDb1,
        Layout::Stare,
    ];

    /// The lowercase name, as in serde and [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            Layout::Generic => "generic",
            Layout::Hrf => "hrf",
            Layout::Drive => "drive",
            Layout::ChaseDb1 => "chasedb1",
            Layout::Stare => "stare",
            Layout::Drhagis => "drhagis",
            Layout::Fives => "fives",
            Layout::Idrid => "idrid",
            Layout::IdridOd => "idrid_od",
            Layout::Ddr => "ddr",
            Layout::Cityscapes => "cityscapes",
        }
    }

    /// The number of classes (background included) the layout's label maps have, for the
    /// multi-class layouts: 5 for IDRiD and DDR, 6 for IDRiD with the optic disc, 19 for
    /// Cityscapes (whose ignore label is not a class). `None` for the binary vessel layouts,
    /// whose class count is the config's.
    pub fn num_classes(self) -> Option<usize> {
        match self {
            Layout::Idrid | Layout::Ddr => Some(5),
            Layout::IdridOd => Some(6),
            Layout::Cityscapes => Some(labels::CITYSCAPES_CLASSES),
            _ => None,
        }
    }

    /// How this layout's masks are read for `num_classes` classes: Cityscapes masks as
    /// [`MaskKind::ClassesOrIgnore`], other masks as [`MaskKind::Binary`] for 2 classes and
    /// [`MaskKind::Classes`] otherwise. (The lesion layouts' per-lesion files are always read as
    /// binary masks; the kind bounds the merged label map.)
    pub fn mask_kind(self, num_classes: usize) -> MaskKind {
        let n = num_classes.min(255) as u8;
        match self {
            Layout::Cityscapes => MaskKind::ClassesOrIgnore(n),
            _ if num_classes == 2 => MaskKind::Binary,
            _ => MaskKind::Classes(n),
        }
    }

    /// What the layout expects, for messages.
    pub fn expects(self) -> &'static str {
        match self {
            Layout::Generic => "images/, masks/ and optional fov/ with matching file stems",
            Layout::Hrf => "images/NN_x.jpg, manual1/NN_x.tif, mask/NN_x_mask.tif",
            Layout::Drive => {
                "[training|test/]images/NN_split.tif, 1st_manual/NN_manual1.gif, \
                 mask/NN_split_mask.gif"
            }
            Layout::ChaseDb1 => "Image_NNL.jpg with Image_NNL_1stHO.png in one folder",
            Layout::Stare => "imNNNN.ppm with imNNNN.ah.ppm (or stare-images/ and labels-ah/)",
            Layout::Drhagis => {
                "Fundus_Images/N.jpg, Manual_Segmentations/N_manual_orig.png, \
                 Mask_images/N_mask_orig.png"
            }
            Layout::Fives => "[train|test/]Original/N_X.png with Ground truth/N_X.png",
            Layout::Idrid => "images/N.jpg with masks/{MA,HE,EX,SE}/N.png (missing = absent)",
            Layout::IdridOd => "images/N.jpg with masks/{MA,HE,EX,SE,OD}/N.png (missing = absent)",
            Layout::Ddr => {
                "[train|valid|test/]image/N.jpg with label/{EX,HE,MA,SE}/N.tif (missing = absent)"
            }
            Layout::Cityscapes => {
                "leftImg8bit/<split>/<city>/N_leftImg8bit.png with \
                 gtFine/<split>/<city>/N_gtFine_labelTrainIds.png"
            }
        }
    }

    /// Guesses the layout of `dir` from its folder and file names (see the module table).
    /// A DRIVE or FIVES release folder (with split subfolders) is recognised too.
    pub fn detect(dir: impl AsRef<Path>) -> Result<Layout> {
        let dir = dir.as_ref();
        let meta = fs::metadata(dir).map_err(|source| DataError::Io {
            path: dir.to_path_buf(),
            error: source,
        })?;
        if !meta.is_dir() {
            return Err(DataError::Layout {
                path: dir.to_path_buf(),
                reason: "not a folder".into(),
            });
        }
        for layout in Layout::ALL {
            if layout.matches(dir) {
                return Ok(layout);
            }
        }
        Err(DataError::Layout {
            path: dir.to_path_buf(),
            reason: format!("no known layout matches; {}", layout_list()),
        })
    }

    /// Whether `dir` (or one of its split subfolders) looks like this layout.
    fn matches(self, dir: &Path) -> bool {
        let any_split = |splits: &[&str], f: &dyn Fn(&Path) -> bool| {
            f(dir) || splits.iter().any(|s| f(&dir.join(s)))
        };
        match self {
            Layout::Idrid | Layout::IdridOd => {
                dir.join("images").is_dir()
                    && labels::IDRID_LESIONS
                        .iter()
                        .any(|l| dir.join("masks").join(l.code()).is_dir())
            }
            Layout::Ddr => any_split(&labels::DDR_SPLITS, &|d| {
                d.join("image").is_dir() && d.join("label").is_dir()
            }),
            Layout::Cityscapes => dir.join("leftImg8bit").is_dir() && dir.join("gtFine").is_dir(),
            Layout::Fives => any_split(&["train", "test"], &|d| {
                d.join("Original").is_dir() && d.join("Ground truth").is_dir()
            }),
            Layout::Drhagis => dir.join("Fundus_Images").is_dir(),
            Layout::Drive => any_split(&["training", "test"], &|d| {
                d.join("images").is_dir()
                    && (d.join("1st_manual").is_dir()
                        || (d.join("mask").is_dir()
                            && list_images(&d.join("images")).is_ok_and(|files| {
                                files.iter().any(|f| {
                                    let s = stem(f);
                                    s.ends_with("_training") || s.ends_with("_test")
                                })
                            })))
            }),
            Layout::Hrf => dir.join("images").is_dir() && dir.join("manual1").is_dir(),
            Layout::Generic => dir.join("images").is_dir(),
            Layout::ChaseDb1 => list_images(dir).is_ok_and(|files| {
                files.iter().any(|f| {
                    let s = stem(f);
                    s.starts_with("Image_") && s.ends_with("_1stHO")
                })
            }),
            Layout::Stare => [dir.to_path_buf(), dir.join("stare-images")]
                .iter()
                .any(|d| list_images(d).is_ok_and(|files| files.iter().any(|f| is_stare(f)))),
        }
    }
}

/// A one-line list of the layouts and what each expects.
pub(crate) fn layout_list() -> String {
    let parts: Vec<String> = Layout::ALL
        .iter()
        .map(|l| format!("{} ({})", l.name(), l.expects()))
        .collect();
    format!("known layouts: {}", parts.join("; "))
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layout {
    type Err = DataError;

    /// Parses a lowercase layout name (case-insensitive; `chase_db1` and `chase` are accepted).
    fn from_str(s: &str) -> Result<Layout> {
        let lower = s.to_ascii_lowercase();
        let name = match lower.as_str() {
            "chase_db1" | "chase" => "chasedb1",
            "dr_hagis" | "drhagis" => "drhagis",
            other => other,
        };
        Layout::ALL
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or_else(|| DataError::Invalid {
                name: "layout",
                reason: format!(
                    "unknown layout {s:?}; expected one of {}",
                    Layout::ALL.map(|l| l.name()).join(", ")
                ),
            })
    }
}

/// Options of [`discover`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoverOptions {
    /// Fail with [`DataError::MissingMask`] when an image has no mask. Set to `false` for
    /// folders of images to predict on, which have no masks. Default: `true`.
    pub require_masks: bool,
    /// A split subfolder to read (`training`/`test` for DRIVE, `train`/`test` for FIVES, any
    /// subfolder name for the others). Default: none, i.e. `dir` itself.
    pub split: Option<String>,
    /// The lesion layouts' binary mode (the reference's DDR per-lesion scripts, SPEC §4): only
    /// this lesion's masks are read, as class 1 of a binary label map. Other layouts refuse it.
    /// Default: none (the merged multi-class map).
    pub lesion: Option<crate::labels::Lesion>,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        Self {
            require_masks: true,
            split: None,
            lesion: None,
        }
    }
}

/// Extensions (lowercase) of the image formats that can be decoded.
const IMAGE_EXTENSIONS: [&str; 11] = [
    "png", "jpg", "jpeg", "jpe", "tif", "tiff", "gif", "ppm", "pgm", "pbm", "pnm",
];

/// Whether `path` has an image extension (any case).
pub(crate) fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The file stem as a string (lossy).
pub(crate) fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A STARE image (`imNNNN.ppm`), not a label (`imNNNN.ah.ppm`, `imNNNN.vk.ppm`).
fn is_stare(path: &Path) -> bool {
    let s = stem(path);
    s.starts_with("im")
        && s.len() > 2
        && s[2..].bytes().all(|b| b.is_ascii_digit())
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ppm"))
}

/// The image files directly in `dir`, sorted by path: hidden files, folders and files without
/// an image extension are skipped.
pub(crate) fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let io_err = |source| DataError::Io {
        path: dir.to_path_buf(),
        error: source,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_file() && has_image_extension(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Every image file of a plain folder, as items without masks (for prediction on a folder
/// that has no dataset layout). Names are file stems; two files with one stem are an error.
pub fn images_in(dir: impl AsRef<Path>) -> Result<Vec<Item>> {
    let dir = dir.as_ref();
    let files = list_images(dir)?;
    if files.is_empty() {
        return Err(DataError::Empty {
            path: dir.to_path_buf(),
            expected: "image files".into(),
        });
    }
    let mut items: Vec<Item> = Vec::with_capacity(files.len());
    for image in files {
        let name = stem(&image);
        if let Some(prev) = items.iter().find(|i| i.name == name) {
            return Err(DataError::DuplicateStem {
                first: prev.image.clone(),
                second: image,
            });
        }
        items.push(Item {
            name,
            image,
            mask: None,
            fov: None,
            class_masks: None,
        });
    }
    Ok(items)
}

/// The image files of `dir` keyed by `key(file)`, skipping files for which `key` is `None`.
/// Two files with one key are a [`DataError::DuplicateStem`].
pub(crate) fn index_by(
    dir: &Path,
    key: impl Fn(&Path) -> Option<String>,
    problems: &mut Vec<DataError>,
) -> Result<BTreeMap<String, PathBuf>> {
    let mut map: BTreeMap<String, PathBuf> = BTreeMap::new();
    if !dir.is_dir() {
        return Ok(map);
    }
    for file in list_images(dir)? {
        let Some(k) = key(&file) else { continue };
        if let Some(first) = map.get(&k) {
            // Keep the first file; the pairing of this stem is reported as a problem.
            problems.push(DataError::DuplicateStem {
                first: first.clone(),
                second: file,
            });
            continue;
        }
        map.insert(k, file);
    }
    Ok(map)
}

/// From a file to the key it is indexed under (`None`: not a file of this kind).
type KeyFn = Box<dyn Fn(&Path) -> Option<String>>;
/// From an item name to the key of its mask or FOV.
type NameFn = Box<dyn Fn(&str) -> String>;

/// How a layout names things, relative to the (split) root folder.
struct Scheme {
    /// Folder of the images.
    images: PathBuf,
    /// Which image files count, and the item name of each.
    image_name: KeyFn,
    /// Folders searched for masks, in order.
    mask_dirs: Vec<PathBuf>,
    /// The key under which an item's mask is indexed, from a mask file.
    mask_key: KeyFn,
    /// The key of the mask for an item name.
    mask_for: NameFn,
    /// Folder of the FOV masks, if any.
    fov_dir: Option<PathBuf>,
    /// The key under which an item's FOV is indexed, from a FOV file.
    fov_key: KeyFn,
    /// The key of the FOV for an item name.
    fov_for: NameFn,
}

/// Returns `Some(prefix)` if the stem of `path` ends with `suffix`.
fn strip_suffix(path: &Path, suffix: &str) -> Option<String> {
    stem(path).strip_suffix(suffix).map(str::to_owned)
}

/// The naming scheme of `layout` with its files under `root`.
fn scheme(layout: Layout, root: &Path) -> Scheme {
    let any = |p: &Path| Some(stem(p));
    let same = |n: &str| n.to_owned();
    match layout {
        Layout::Generic => Scheme {
            images: root.join("images"),
            image_name: Box::new(any),
            mask_dirs: vec![root.join("masks")],
            mask_key: Box::new(any),
            mask_for: Box::new(same),
            fov_dir: Some(root.join("fov")),
            fov_key: Box::new(any),
            fov_for: Box::new(same),
        },
        Layout::Hrf => Scheme {
            images: root.join("images"),
            image_name: Box::new(any),
            mask_dirs: vec![root.join("manual1")],
            mask_key: Box::new(any),
            mask_for: Box::new(same),
            fov_dir: Some(root.join("mask")),
            fov_key: Box::new(|p| strip_suffix(p, "_mask")),
            fov_for: Box::new(same),
        },
        Layout::Drive => Scheme {
            images: root.join("images"),
            image_name: Box::new(any),
            mask_dirs: vec![root.join("1st_manual")],
            mask_key: Box::new(|p| strip_suffix(p, "_manual1")),
            // `21_training` -> `21` (the number before the first underscore).
            mask_for: Box::new(|n| n.split('_').next().unwrap_or(n).to_owned()),
            fov_dir: Some(root.join("mask")),
            fov_key: Box::new(|p| strip_suffix(p, "_mask")),
            fov_for: Box::new(same),
        },
        Layout::ChaseDb1 => Scheme {
            images: root.to_path_buf(),
            image_name: Box::new(|p| {
                let s = stem(p);
                (s.starts_with("Image_") && !s.ends_with("HO")).then_some(s)
            }),
            mask_dirs: vec![root.to_path_buf()],
            mask_key: Box::new(|p| strip_suffix(p, "_1stHO")),
            mask_for: Box::new(same),
            fov_dir: None,
            fov_key: Box::new(any),
            fov_for: Box::new(same),
        },
        Layout::Stare => {
            let images = if list_images(root).is_ok_and(|f| f.iter().any(|p| is_stare(p))) {
                root.to_path_buf()
            } else {
                root.join("stare-images")
            };
            Scheme {
                mask_dirs: vec![images.clone(), root.join("labels-ah")],
                images,
                image_name: Box::new(|p| is_stare(p).then(|| stem(p))),
                mask_key: Box::new(|p| strip_suffix(p, ".ah")),
                mask_for: Box::new(same),
                fov_dir: None,
                fov_key: Box::new(any),
                fov_for: Box::new(same),
            }
        }
        Layout::Drhagis => Scheme {
            images: root.join("Fundus_Images"),
            image_name: Box::new(any),
            mask_dirs: vec![root.join("Manual_Segmentations")],
            mask_key: Box::new(|p| strip_suffix(p, "_manual_orig")),
            mask_for: Box::new(same),
            fov_dir: Some(root.join("Mask_images")),
            fov_key: Box::new(|p| strip_suffix(p, "_mask_orig")),
            fov_for: Box::new(same),
        },
        Layout::Fives => Scheme {
            images: root.join("Original"),
            image_name: Box::new(any),
            mask_dirs: vec![root.join("Ground truth")],
            mask_key: Box::new(any),
            mask_for: Box::new(same),
            fov_dir: None,
            fov_key: Box::new(any),
            fov_for: Box::new(same),
        },
        Layout::Idrid | Layout::IdridOd | Layout::Ddr | Layout::Cityscapes => {
            unreachable!("{layout} is discovered by crate::labels::discover_all")
        }
    }
}

/// The folder holding the files of one split: `dir/split` when a split is given, else `dir`,
/// except that a DRIVE or FIVES release folder without a split is an error.
pub(crate) fn split_root(dir: &Path, layout: Layout, split: Option<&str>) -> Result<PathBuf> {
    if let Some(split) = split {
        let root = dir.join(split);
        if !root.is_dir() {
            return Err(DataError::Layout {
                path: dir.to_path_buf(),
                reason: format!("split folder {} does not exist", root.display()),
            });
        }
        return Ok(root);
    }
    let (marker, splits): (&str, &[&str]) = match layout {
        Layout::Drive => ("images", &["training", "test"]),
        Layout::Fives => ("Original", &["train", "test"]),
        Layout::Ddr => ("image", &labels::DDR_SPLITS),
        _ => return Ok(dir.to_path_buf()),
    };
    if dir.join(marker).is_dir() {
        return Ok(dir.to_path_buf());
    }
    let present: Vec<&str> = splits
        .iter()
        .copied()
        .filter(|s| dir.join(s).join(marker).is_dir())
        .collect();
    match present.as_slice() {
        [only] => Ok(dir.join(only)),
        [] => Err(DataError::Layout {
            path: dir.to_path_buf(),
            reason: format!(
                "no {marker}/ folder and no split subfolder ({}); {} expects {}",
                splits.join(", "),
                layout,
                layout.expects()
            ),
        }),
        _ => Err(DataError::Layout {
            path: dir.to_path_buf(),
            reason: format!(
                "a {layout} release with splits {}: choose one with the split option or pass \
                 the split folder",
                present.join(" and ")
            ),
        }),
    }
}

/// Finds the images of `dir` in `layout` and pairs each with its mask and FOV; the items are
/// sorted by name. See the module documentation for the layouts and splits.
///
/// Errors: [`DataError::Layout`] when the layout's image folder is missing or has no image of
/// the expected names, [`DataError::Empty`] when it has no images at all,
/// [`DataError::DuplicateStem`] when two images (or two masks) share a name, and
/// [`DataError::MissingMask`] when `opts.require_masks` and an image has no mask.
pub fn discover(
    dir: impl AsRef<Path>,
    layout: Layout,
    opts: &DiscoverOptions,
) -> Result<Vec<Item>> {
    let found = discover_all(dir, layout, opts)?;
    let mut problems = found.problems;
    match problems.len() {
        0 => Ok(found.items),
        1 => Err(problems.remove(0)),
        _ => Err(DataError::Problems(problems)),
    }
}

/// What [`discover_all`] found: the usable items and every pairing problem (duplicate stems,
/// missing masks), so that a check can list them all at once.
#[derive(Debug)]
pub struct Discovery {
    /// Items whose pairing is unambiguous and complete.
    pub items: Vec<Item>,
    /// Duplicate stems and (when masks are required) images without a mask.
    pub problems: Vec<DataError>,
}

/// Like [`discover`], but pairing problems are collected instead of stopping at the first.
/// Folder-level problems (no such folder, no images, unknown layout) are still errors.
pub fn discover_all(
    dir: impl AsRef<Path>,
    layout: Layout,
    opts: &DiscoverOptions,
) -> Result<Discovery> {
    let mut problems = Vec::new();
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(DataError::Io {
            path: dir.to_path_buf(),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "folder not found"),
        });
    }
    if layout.num_classes().is_some() {
        return labels::discover_all(dir, layout, opts);
    }
    if opts.lesion.is_some() {
        return Err(DataError::Invalid {
            name: "data.lesion",
            reason: format!("applies to the lesion layouts (idrid, ddr), not {layout}"),
        });
    }
    let root = split_root(dir, layout, opts.split.as_deref())?;
    let s = scheme(layout, &root);
    if !s.images.is_dir() {
        return Err(DataError::Layout {
            path: root.clone(),
            reason: format!(
                "no image folder {} for layout {layout} ({}); {}",
                s.images.display(),
                layout.expects(),
                layout_list()
            ),
        });
    }
    let all_images = list_images(&s.images)?;
    if all_images.is_empty() {
        return Err(DataError::Empty {
            path: s.images.clone(),
            expected: format!("image files for layout {layout}: {}", layout.expects()),
        });
    }
    let images = index_by(&s.images, &s.image_name, &mut problems)?;
    if images.is_empty() {
        return Err(DataError::Layout {
            path: s.images.clone(),
            reason: format!(
                "{} image files but none named as layout {layout} expects ({}); {}",
                all_images.len(),
                layout.expects(),
                layout_list()
            ),
        });
    }
    let mut masks = BTreeMap::new();
    for d in &s.mask_dirs {
        for (k, p) in index_by(d, &s.mask_key, &mut problems)? {
            if let Some(first) = masks.get(&k) {
                if first != &p {
                    problems.push(DataError::DuplicateStem {
                        first: PathBuf::clone(first),
                        second: p,
                    });
                }
            } else {
                masks.insert(k, p);
            }
        }
    }
    let fovs = match &s.fov_dir {
        Some(d) => index_by(d, &s.fov_key, &mut problems)?,
        None => BTreeMap::new(),
    };
    let mut items = Vec::with_capacity(images.len());
    for (name, image) in images {
        let mask_key = (s.mask_for)(&name);
        let mask = masks.get(&mask_key).cloned();
        if mask.is_none() && opts.require_masks {
            let dirs: Vec<String> = s
                .mask_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            problems.push(DataError::MissingMask {
                image,
                expected: format!(
                    "a mask for {mask_key:?} in {} (layout {layout}: {})",
                    dirs.join(" or "),
                    layout.expects()
                ),
            });
            continue;
        }
        let fov = fovs.get(&(s.fov_for)(&name)).cloned();
        items.push(Item {
            name,
            image,
            mask,
            fov,
            class_masks: None,
        });
    }
    Ok(Discovery { items, problems })
}

/// Checks every item with the default [`LoadLimits`]; see [`check_items_with`].
pub fn check_items(items: &[Item], kind: MaskKind) -> Vec<DataError> {
    check_items_with(items, kind, &LoadLimits::default())
}

/// Decodes every image, mask and FOV of `items` (in parallel) and returns all the problems
/// found, in item order: decode and I/O errors, mask values not readable as `kind`, and masks
/// or FOVs whose size differs from their image. The per-lesion masks of the lesion layouts are
/// each checked as binary masks, and a label map with more classes than `kind` has is reported
/// once, first. An empty result means the data is usable.
pub fn check_items_with(items: &[Item], kind: MaskKind, limits: &LoadLimits) -> Vec<DataError> {
    let mut problems: Vec<DataError> = items
        .iter()
        .find_map(|i| i.class_masks.as_ref())
        .and_then(|c| labels::check_kind(c, kind).err())
        .into_iter()
        .collect();
    problems.extend(
        items
            .par_iter()
            .map(|item| check_item(item, kind, limits))
            .collect::<Vec<_>>()
            .into_iter()
            .flatten(),
    );
    problems
}

/// The problems of one item.
fn check_item(item: &Item, kind: MaskKind, limits: &LoadLimits) -> Vec<DataError> {
    let mut problems = Vec::new();
    let image_size = match io::load_rgb_with(&item.image, limits) {
        Ok(img) => Some(img.dimensions()),
        Err(e) => {
            problems.push(e);
            None
        }
    };
    let check_size = |path: &Path, size: (u32, u32), problems: &mut Vec<DataError>| {
        if let Some((iw, ih)) = image_size
            && (iw, ih) != size
        {
            problems.push(DataError::SizeMismatch {
                image: item.image.clone(),
                mask: path.to_path_buf(),
                image_w: iw,
                image_h: ih,
                mask_w: size.0,
                mask_h: size.1,
            });
        }
    };
    if let Some(mask) = &item.mask {
        match io::load_mask_with(mask, kind, limits) {
            Ok(m) => check_size(mask, m.dimensions(), &mut problems),
            Err(e) => problems.push(e),
        }
    }
    if let Some(fov) = &item.fov {
        match io::load_fov_with(fov, limits) {
            Ok(f) => check_size(fov, f.dimensions(), &mut problems),
            Err(e) => problems.push(e),
        }
    }
    for file in item.class_masks.iter().flat_map(|c| &c.files) {
        match io::load_mask_with(&file.path, MaskKind::Binary, limits) {
            Ok(m) => check_size(&file.path, m.dimensions(), &mut problems),
            Err(e) => problems.push(e),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, RgbImage};

    macro_rules! shared {
        ($rel:literal) => {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/", $rel)
        };
    }

    /// Writes a tiny PNG (content irrelevant to pairing) at `root/rel`, creating folders.
    fn touch(root: &Path, rel: &str) {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let img = GrayImage::from_pixel(4, 3, Luma([255]));
        img.save_with_format(&path, image::ImageFormat::Png)
            .unwrap();
    }

    fn names(items: &[Item]) -> Vec<&str> {
        items.iter().map(|i| i.name.as_str()).collect()
    }

    fn rel(root: &Path, p: &Option<PathBuf>) -> Option<String> {
        p.as_ref()
            .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
    }

    fn strict() -> DiscoverOptions {
        DiscoverOptions::default()
    }

    #[test]
    fn generic_pairs_by_stem_any_case() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for f in [
            "images/b.JPG",
            "images/a.png",
            "images/.hidden.png",
            "images/notes.txt",
            "images/SHA256SUMS",
            "masks/a.tif",
            "masks/b.PNG",
            "fov/a.gif",
        ] {
            if f.ends_with("txt") || f.ends_with("SUMS") {
                fs::create_dir_all(r.join("images")).unwrap();
                fs::write(r.join(f), "x").unwrap();
            } else {
                touch(r, f);
            }
        }
        assert_eq!(Layout::detect(r).unwrap(), Layout::Generic);
        let items = discover(r, Layout::Generic, &strict()).unwrap();
        assert_eq!(names(&items), ["a", "b"]);
        assert_eq!(
            rel(r, &Some(items[1].image.clone())).unwrap(),
            "images/b.JPG"
        );
        assert_eq!(rel(r, &items[0].mask).unwrap(), "masks/a.tif");
        assert_eq!(rel(r, &items[1].mask).unwrap(), "masks/b.PNG");
        assert_eq!(rel(r, &items[0].fov).unwrap(), "fov/a.gif");
        assert_eq!(items[1].fov, None);
    }

    #[test]
    fn generic_errors() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        touch(r, "images/01.png");
        touch(r, "images/02.png");
        touch(r, "masks/01.png");
        // Missing mask: named, and where it was looked for.
        match discover(r, Layout::Generic, &strict()) {
            Err(DataError::MissingMask { image, expected }) => {
                assert!(image.ends_with("images/02.png"));
                assert!(expected.contains("masks"), "{expected}");
                assert!(expected.contains("\"02\""), "{expected}");
            }
            other => panic!("expected MissingMask, got {other:?}"),
        }
        // Without required masks, the item simply has none.
        let opts = DiscoverOptions {
            require_masks: false,
            ..Default::default()
        };
        let items = discover(r, Layout::Generic, &opts).unwrap();
        assert_eq!(items.len(), 2);
        assert!(items[0].mask.is_some() && items[1].mask.is_none());
        // Duplicate stems.
        touch(r, "images/01.jpg");
        match discover(r, Layout::Generic, &opts) {
            Err(DataError::DuplicateStem { first, second }) => {
                assert!(first.ends_with("01.jpg") && second.ends_with("01.png"));
            }
            other => panic!("expected DuplicateStem, got {other:?}"),
        }
        // No images at all.
        let e = tempfile::tempdir().unwrap();
        fs::create_dir_all(e.path().join("images")).unwrap();
        fs::write(e.path().join("images/readme.txt"), "x").unwrap();
        assert!(matches!(
            discover(e.path(), Layout::Generic, &opts),
            Err(DataError::Empty { .. })
        ));
        // Nothing recognisable.
        let n = tempfile::tempdir().unwrap();
        fs::write(n.path().join("readme.txt"), "x").unwrap();
        match Layout::detect(n.path()) {
            Err(DataError::Layout { reason, .. }) => {
                for l in Layout::ALL {
                    assert!(reason.contains(l.name()), "{reason}");
                }
            }
            other => panic!("expected Layout, got {other:?}"),
        }
        match discover(n.path(), Layout::Hrf, &opts) {
            Err(e @ DataError::Layout { .. }) => {
                assert!(e.to_string().contains("manual1"), "{e}")
            }
            other => panic!("expected Layout, got {other:?}"),
        }
    }

    #[test]
    fn hrf_release() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for f in [
            "images/01_dr.JPG",
            "images/01_h.jpg",
            "manual1/01_dr.tif",
            "manual1/01_h.tif",
            "mask/01_dr_mask.tif",
            "mask/01_h_mask.tif",
        ] {
            touch(r, f);
        }
        assert_eq!(Layout::detect(r).unwrap(), Layout::Hrf);
        let items = discover(r, Layout::Hrf, &strict()).unwrap();
        assert_eq!(names(&items), ["01_dr", "01_h"]);
        assert_eq!(rel(r, &items[0].mask).unwrap(), "manual1/01_dr.tif");
        assert_eq!(rel(r, &items[1].fov).unwrap(), "mask/01_h_mask.tif");
    }

    #[test]
    fn drive_release_with_splits() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for f in [
            "training/images/21_training.tif",
            "training/images/22_training.tif",
            "training/1st_manual/21_manual1.gif",
            "training/1st_manual/22_manual1.gif",
            "training/mask/21_training_mask.gif",
            "training/mask/22_training_mask.gif",
            "test/images/01_test.tif",
            "test/1st_manual/01_manual1.gif",
            "test/2nd_manual/01_manual2.gif",
            "test/mask/01_test_mask.gif",
        ] {
            touch(r, f);
        }
        assert_eq!(Layout::detect(r).unwrap(), Layout::Drive);
        assert_eq!(Layout::detect(r.join("test")).unwrap(), Layout::Drive);
        // The release folder needs a split.
        match discover(r, Layout::Drive, &strict()) {
            Err(DataError::Layout { reason, .. }) => assert!(reason.contains("split"), "{reason}"),
            other => panic!("expected Layout, got {other:?}"),
        }
        let opts = DiscoverOptions {
            split: Some("training".into()),
            ..Default::default()
        };
        let items = discover(r, Layout::Drive, &opts).unwrap();
        assert_eq!(names(&items), ["21_training", "22_training"]);
        assert_eq!(
            rel(r, &items[1].mask).unwrap(),
            "training/1st_manual/22_manual1.gif"
        );
        assert_eq!(
            rel(r, &items[0].fov).unwrap(),
            "training/mask/21_training_mask.gif"
        );
        // The split folder itself works too.
        let items = discover(r.join("test"), Layout::Drive, &strict()).unwrap();
        assert_eq!(names(&items), ["01_test"]);
        assert!(items[0].mask.as_ref().unwrap().ends_with("01_manual1.gif"));
    }

    #[test]
    fn chase_stare_drhagis() {
        let t = tempfile::tempdir().unwrap();
        let chase = t.path().join("chase");
        for f in [
            "Image_01L.jpg",
            "Image_01L_1stHO.png",
            "Image_01L_2ndHO.png",
            "Image_01R.jpg",
            "Image_01R_1stHO.png",
        ] {
            touch(&chase, f);
        }
        assert_eq!(Layout::detect(&chase).unwrap(), Layout::ChaseDb1);
        let items = discover(&chase, Layout::ChaseDb1, &strict()).unwrap();
        assert_eq!(names(&items), ["Image_01L", "Image_01R"]);
        assert!(
            items[0]
                .mask
                .as_ref()
                .unwrap()
                .ends_with("Image_01L_1stHO.png")
        );
        assert_eq!(items[0].fov, None);

        let stare = t.path().join("stare");
        for f in [
            "stare-images/im0001.ppm",
            "stare-images/im0002.ppm",
            "labels-ah/im0001.ah.ppm",
            "labels-ah/im0002.ah.ppm",
            "labels-vk/im0001.vk.ppm",
        ] {
            touch(&stare, f);
        }
        assert_eq!(Layout::detect(&stare).unwrap(), Layout::Stare);
        let items = discover(&stare, Layout::Stare, &strict()).unwrap();
        assert_eq!(names(&items), ["im0001", "im0002"]);
        assert!(
            items[1]
                .mask
                .as_ref()
                .unwrap()
                .ends_with("labels-ah/im0002.ah.ppm")
        );
        // Flat STARE folder.
        let flat = t.path().join("stare_flat");
        for f in ["im0003.ppm", "im0003.ah.ppm", "im0003.vk.ppm"] {
            touch(&flat, f);
        }
        assert_eq!(Layout::detect(&flat).unwrap(), Layout::Stare);
        let items = discover(&flat, Layout::Stare, &strict()).unwrap();
        assert_eq!(names(&items), ["im0003"]);
        assert!(items[0].mask.as_ref().unwrap().ends_with("im0003.ah.ppm"));

        let hagis = t.path().join("hagis");
        for f in [
            "Fundus_Images/1.jpg",
            "Fundus_Images/10.jpg",
            "Manual_Segmentations/1_manual_orig.png",
            "Manual_Segmentations/10_manual_orig.png",
            "Mask_images/1_mask_orig.png",
            "Mask_images/10_mask_orig.png",
        ] {
            touch(&hagis, f);
        }
        assert_eq!(Layout::detect(&hagis).unwrap(), Layout::Drhagis);
        let items = discover(&hagis, Layout::Drhagis, &strict()).unwrap();
        assert_eq!(names(&items), ["1", "10"]);
        assert!(
            items[1]
                .mask
                .as_ref()
                .unwrap()
                .ends_with("10_manual_orig.png")
        );
        assert!(items[1].fov.as_ref().unwrap().ends_with("10_mask_orig.png"));
    }

    #[test]
    fn fives_splits() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for split in ["train", "test"] {
            for f in [
                "Original/1_A.png",
                "Ground truth/1_A.png",
                "Original/2_D.png",
                "Ground truth/2_D.png",
            ] {
                touch(r, &format!("{split}/{f}"));
            }
        }
        assert_eq!(Layout::detect(r).unwrap(), Layout::Fives);
        assert!(matches!(
            discover(r, Layout::Fives, &strict()),
            Err(DataError::Layout { .. })
        ));
        let opts = DiscoverOptions {
            split: Some("test".into()),
            ..Default::default()
        };
        let items = discover(r, Layout::Fives, &opts).unwrap();
        assert_eq!(names(&items), ["1_A", "2_D"]);
        assert_eq!(rel(r, &items[0].mask).unwrap(), "test/Ground truth/1_A.png");
        assert!(matches!(
            discover(
                r,
                Layout::Fives,
                &DiscoverOptions {
                    split: Some("val".into()),
                    ..Default::default()
                }
            ),
            Err(DataError::Layout { .. })
        ));
    }

    #[test]
    fn layout_names_round_trip() {
        for l in Layout::ALL {
            let json = serde_json::to_string(&l).unwrap();
            assert_eq!(json, format!("\"{}\"", l.name()));
            assert_eq!(serde_json::from_str::<Layout>(&json).unwrap(), l);
            assert_eq!(l.name().parse::<Layout>().unwrap(), l);
        }
        assert_eq!("CHASE_DB1".parse::<Layout>().unwrap(), Layout::ChaseDb1);
        assert!("kitti".parse::<Layout>().is_err());
    }

    #[test]
    #[cfg_attr(no_shared_data, ignore = "needs ../shared/data")]
    fn shared_drive_and_hrf() {
        let drive = Path::new(shared!("drive"));
        assert_eq!(Layout::detect(drive).unwrap(), Layout::Generic);
        let items = discover(drive, Layout::Generic, &strict()).unwrap();
        assert_eq!(items.len(), 40);
        assert_eq!(items[0].name, "01_test");
        assert!(items.iter().any(|i| i.name == "21_training"));
        assert!(items.iter().all(|i| i.mask.is_some() && i.fov.is_some()));
        assert!(
            items[0]
                .mask
                .as_ref()
                .unwrap()
                .ends_with("masks/01_test.gif")
        );

        let hrf = Path::new(shared!("hrf"));
        let items = discover(hrf, Layout::Generic, &strict()).unwrap();
        assert_eq!(items.len(), 45);
        assert!(items.iter().all(|i| i.mask.is_some() && i.fov.is_some()));
        let dr = items.iter().find(|i| i.name == "01_dr").unwrap();
        assert!(dr.image.ends_with("images/01_dr.JPG"));
        let g = items.iter().find(|i| i.name == "01_g").unwrap();
        assert!(g.image.ends_with("images/01_g.jpg"));
        // A real check: the DRIVE items 21..22 are clean.
        let two: Vec<Item> = discover(drive, Layout::Generic, &strict())
            .unwrap()
            .into_iter()
            .filter(|i| i.name == "21_training" || i.name == "22_training")
            .collect();
        assert_eq!(two.len(), 2);
        let problems = check_items(&two, MaskKind::Binary);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn check_items_reports_every_problem() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for d in ["images", "masks", "fov"] {
            fs::create_dir_all(r.join(d)).unwrap();
        }
        let img = RgbImage::from_pixel(8, 6, Rgb([120, 60, 30]));
        let good_mask = GrayImage::from_fn(8, 6, |x, _| Luma([if x < 4 { 0 } else { 255 }]));
        let small_mask = GrayImage::from_pixel(7, 6, Luma([0]));
        let bad_values = GrayImage::from_fn(8, 6, |x, _| Luma([[0, 3, 7][x as usize % 3]]));
        for n in ["a", "b", "c", "d"] {
            io::save_png_atomic(r.join(format!("images/{n}.png")), &img).unwrap();
        }
        io::save_png_atomic(r.join("masks/a.png"), &good_mask).unwrap();
        io::save_png_atomic(r.join("fov/a.png"), &good_mask).unwrap();
        io::save_png_atomic(r.join("masks/b.png"), &small_mask).unwrap();
        io::save_png_atomic(r.join("fov/b.png"), &small_mask).unwrap();
        io::save_png_atomic(r.join("masks/c.png"), &bad_values).unwrap();
        fs::write(r.join("masks/d.png"), b"").unwrap();
        // Truncate image c.
        let bytes = fs::read(r.join("images/c.png")).unwrap();
        fs::write(r.join("images/c.png"), &bytes[..bytes.len() / 2]).unwrap();
        let items = discover(r, Layout::Generic, &strict()).unwrap();
        let problems = check_items(&items, MaskKind::Binary);
        let msgs: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 5, "{msgs:#?}");
        assert!(matches!(
            problems[0],
            DataError::SizeMismatch {
                mask_w: 7,
                image_w: 8,
                ..
            }
        ));
        assert!(msgs[0].contains("masks/b.png"));
        assert!(matches!(problems[1], DataError::SizeMismatch { .. }));
        assert!(msgs[1].contains("fov/b.png"));
        assert!(matches!(problems[2], DataError::Decode { .. }));
        assert!(msgs[2].contains("images/c.png"));
        assert!(matches!(problems[3], DataError::MaskValues { .. }));
        assert!(msgs[3].contains("masks/c.png"));
        assert!(matches!(problems[4], DataError::Decode { .. }));
        assert!(msgs[4].contains("masks/d.png"));
    }
}
