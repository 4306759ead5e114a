//! The experiment file: a base config, variants (sets of config overrides), a split scheme,
//! a baseline and optional out-of-distribution test sets; and the plan it expands to, one
//! ordinary run per (variant, fold or repeat).
//!
//! ```toml
//! description = "HRF 5-fold: U-Net+Inter vs DS2F"
//! base = "../configs/hrf-f0-compare-cpu.toml"   # relative to this file
//! baseline = "unet_inter"
//!
//! [split]
//! scheme = "kfold"      # or "repeats" (seeds = [...]) or "official"
//! k = 5
//! seed = 66
//!
//! [[variants]]
//! name = "unet_inter"
//! set = ["model.framework=unet_inter"]
//!
//! [[variants]]
//! name = "ds2f"
//! set = ["model.framework=ds2f"]
//!
//! [[ood]]
//! name = "drive"
//! root = "../../shared/data/drive"
//! include = ["*_test"]
//! ```
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;

/// How the test images of each run are chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
pub enum SplitScheme {
    /// The reference's k-fold: scikit-learn `KFold(n_splits = k, shuffle = True,
    /// random_state = seed)` over the base config's images sorted by name; each fold is
    /// once the test set. `folds` runs only some of them (e.g. `[0, 1]`).
    Kfold {
        /// Number of folds (the paper: 5).
        k: usize,
        /// `random_state` of the shuffle (the reference: 66).
        #[serde(default = "default_kfold_seed")]
        seed: u32,
        /// The folds to run (default: all).
        #[serde(default)]
        folds: Option<Vec<usize>>,
    },
    /// Independent trainings on the base config's own split, one per seed (the reference's
    /// "five runs" for FIVES, IDRiD and DDR). The seed sets `train.seed`: weights, data
    /// order and augmentation; the validation images stay those of the base config's seed.
    Repeats {
        /// One run per seed.
        seeds: Vec<u64>,
    },
    /// One run per variant on the base config's own split (e.g. the dataset's official
    /// train/test split).
    Official,
}

fn default_kfold_seed() -> u32 {
    66
}

/// How model selection and the schedule see the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Selection on validation images carved from the training folds; the test fold is
    /// never seen before the test.
    #[default]
    Clean,
    /// The reference code's k-fold protocol (SPEC §8.6), only to show the difference: the
    /// best checkpoint is selected on the test fold and the poly schedule's length is
    /// computed from the whole dataset. Results are optimistic and say so.
    Reference,
}

/// One row of the tables: a name and the config overrides that make it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Short name (a folder name and a table row), e.g. `ds2f-no-rmi`.
    pub name: String,
    /// `key=value` overrides on top of the base config and the experiment's own `set`.
    #[serde(default)]
    pub set: Vec<String>,
    /// What the variant is (shown in the report).
    #[serde(default)]
    pub description: String,
}

/// An out-of-distribution test set: every finished run is evaluated on it too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OodSet {
    /// Column name in the tables and evaluation folder `evaluation/ood-<name>/`.
    pub name: String,
    /// Data folder (relative to the experiment file), any layout ds2f reads.
    pub root: PathBuf,
    /// Name patterns of the images to use (default: all).
    #[serde(default)]
    pub include: Vec<String>,
}

/// An experiment file, as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    /// What the experiment is and, for a CPU-scaled one, what it scales down.
    pub description: String,
    /// The base config (relative to the experiment file).
    pub base: PathBuf,
    /// Overrides applied to every variant (before the variant's own).
    #[serde(default)]
    pub set: Vec<String>,
    /// The variant every other is tested against.
    pub baseline: String,
    /// The split scheme.
    pub split: SplitScheme,
    /// Clean (default) or the reference's leaky protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// The variants, in table order.
    pub variants: Vec<Variant>,
    /// Out-of-distribution test sets.
    #[serde(default)]
    pub ood: Vec<OodSet>,
    /// Metric of the paired tests and figures: `dice` (default), `iou`, `mcc` or `bm`.
    #[serde(default = "default_metric")]
    pub test_metric: String,
}

fn default_metric() -> String {
    "dice".into()
}

/// The metrics the tables and tests know by name.
pub const METRICS: [&str; 4] = ["iou", "dice", "mcc", "bm"];

impl ExperimentFile {
    /// Reads and checks `path`; relative paths in it (`base`, OOD roots) are made relative to
    /// its folder.
    pub fn load(path: &Path) -> Result<Self, ProtocolError> {
        let text = std::fs::read_to_string(path).map_err(|e| ProtocolError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut file = Self::parse(&text, &path.display().to_string())?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &Path| {
            let joined = if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            };
            std::fs::canonicalize(&joined)
                .or_else(|_| std::path::absolute(&joined))
                .unwrap_or(joined)
        };
        file.base = resolve(&file.base);
        for o in &mut file.ood {
            o.root = resolve(&o.root);
        }
        Ok(file)
    }

    /// Parses TOML text (`origin` names it in errors) and checks it.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ProtocolError> {
        let file: Self = toml::from_str(text).map_err(|e| ProtocolError::Experiment {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        file.check(origin)?;
        Ok(file)
    }

    fn check(&self, origin: &str) -> Result<(), ProtocolError> {
        let bad = |message: String| {
            Err(ProtocolError::Experiment {
                origin: origin.to_string(),
                message,
            })
        };
        if self.variants.is_empty() {
            return bad("`variants` is empty: give at least one [[variants]] table".into());
        }
        for (i, v) in self.variants.iter().enumerate() {
            if !is_folder_name(&v.name) {
                return bad(format!(
                    "variant name `{}` must be letters, digits, `-`, `_` or `.`",
                    v.name
                ));
            }
            if self.variants[..i].iter().any(|w| w.name == v.name) {
                return bad(format!("variant `{}` is given twice", v.name));
            }
            for s in self.set.iter().chain(&v.set) {
                if !s.contains('=') {
                    return bad(format!(
                        "override `{s}` of `{}`: expected key=value",
                        v.name
                    ));
                }
            }
        }
        if !self.variants.iter().any(|v| v.name == self.baseline) {
            return bad(format!(
                "baseline `{}` is not a variant (variants: {})",
                self.baseline,
                self.variant_names().join(", ")
            ));
        }
        if !METRICS.contains(&self.test_metric.as_str()) {
            return bad(format!(
                "test_metric `{}`: expected one of {}",
                self.test_metric,
                METRICS.join(", ")
            ));
        }
        match &self.split {
            SplitScheme::Kfold { k, folds, .. } => {
                if *k < 2 {
                    return bad(format!("split.k = {k}: needs at least 2 folds"));
                }
                if let Some(f) = folds.iter().flatten().find(|f| **f >= *k) {
                    return bad(format!("split.folds: fold {f} does not exist (k = {k})"));
                }
            }
            SplitScheme::Repeats { seeds } => {
                if seeds.is_empty() {
                    return bad("split.seeds is empty".into());
                }
                if self.protocol == Protocol::Reference {
                    return bad(
                        "protocol = \"reference\" is the reference's k-fold protocol; use it \
                         with scheme = \"kfold\""
                            .into(),
                    );
                }
            }
            SplitScheme::Official => {
                if self.protocol == Protocol::Reference {
                    return bad(
                        "protocol = \"reference\" is the reference's k-fold protocol; use it \
                         with scheme = \"kfold\""
                            .into(),
                    );
                }
            }
        }
        for (i, o) in self.ood.iter().enumerate() {
            if !is_folder_name(&o.name) {
                return bad(format!("OOD set name `{}` is not a folder name", o.name));
            }
            if self.ood[..i].iter().any(|p| p.name == o.name) {
                return bad(format!("OOD set `{}` is given twice", o.name));
            }
        }
        Ok(())
    }

    /// The variant names, in table order.
    pub fn variant_names(&self) -> Vec<String> {
        self.variants.iter().map(|v| v.name.clone()).collect()
    }
}

fn is_folder_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// One fold or repeat of the split scheme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    /// Folder name and table label: `f0`…, `seed42`…, or `official`.
    pub name: String,
    /// Overrides this unit adds (the test images of a fold, the seed of a repeat).
    pub set: Vec<String>,
    /// The test images of a fold (empty for the other schemes: the base config's).
    pub test_names: Vec<String>,
}

/// One run of the plan: a variant on a unit, in its own ordinary run folder.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// Variant name.
    pub variant: String,
    /// Unit (fold or repeat) name.
    pub unit: String,
    /// The run folder, `<experiment>/runs/<variant>/<unit>`.
    pub dir: PathBuf,
    /// Every override on top of the base config, in the order applied: the experiment's
    /// `set`, the variant's, the unit's, the protocol's, then `run.dir` and `run.name`.
    pub overrides: Vec<String>,
}

/// The units of `scheme`; `names` are the base config's image names (only k-fold uses them).
pub fn units(scheme: &SplitScheme, names: &[String]) -> Result<Vec<Unit>, ProtocolError> {
    Ok(match scheme {
        SplitScheme::Kfold { k, seed, folds } => {
            let all =
                crate::kfold::kfold_names(names, *k, *seed).map_err(|e| ProtocolError::Split {
                    message: format!("{e} ({} images)", names.len()),
                })?;
            all.into_iter()
                .enumerate()
                .filter(|(f, _)| folds.as_ref().is_none_or(|list| list.contains(f)))
                .map(|(f, test)| Unit {
                    name: format!("f{f}"),
                    set: vec![format!("data.test_include={}", toml_list(&test))],
                    test_names: test,
                })
                .collect()
        }
        SplitScheme::Repeats { seeds } => seeds
            .iter()
            .map(|s| Unit {
                name: format!("seed{s}"),
                set: vec![format!("train.seed={s}")],
                test_names: Vec::new(),
            })
            .collect(),
        SplitScheme::Official => vec![Unit {
            name: "official".into(),
            set: Vec::new(),
            test_names: Vec::new(),
        }],
    })
}

/// Exact-name patterns for a TOML list: glob metacharacters escaped.
fn toml_list(names: &[String]) -> String {
    let quoted: Vec<String> = names
        .iter()
        .map(|n| toml::Value::String(glob::Pattern::escape(n)).to_string())
        .collect();
    format!("[{}]", quoted.join(", "))
}

/// The runs of the experiment, unit-major (every variant of the first fold, then of the
/// second, ...) so that complete folds accumulate first; `dir` is the experiment folder.
pub fn plan(file: &ExperimentFile, units: &[Unit], dir: &Path) -> Vec<RunSpec> {
    let protocol: Vec<String> = match file.protocol {
        Protocol::Clean => Vec::new(),
        Protocol::Reference => vec![
            "data.select_on_test=true".into(),
            "train.schedule_on_all_images=true".into(),
        ],
    };
    let mut runs = Vec::new();
    for unit in units {
        for v in &file.variants {
            let parent = dir.join("runs").join(&v.name);
            let mut overrides: Vec<String> = file.set.clone();
            overrides.extend(v.set.iter().cloned());
            overrides.extend(unit.set.iter().cloned());
            overrides.extend(protocol.iter().cloned());
            overrides.push(format!(
                "run.dir={}",
                toml::Value::String(parent.display().to_string())
            ));
            overrides.push(format!("run.name={}", unit.name));
            runs.push(RunSpec {
                variant: v.name.clone(),
                unit: unit.name.clone(),
                dir: parent.join(&unit.name),
                overrides,
            });
        }
    }
    runs
}

/// The runs this worker takes when the pending runs are shared by `count` workers: every
/// `count`-th one, starting at `index` (0-based).
pub fn shard<T: Clone>(pending: &[T], index: usize, count: usize) -> Vec<T> {
    pending
        .iter()
        .skip(index)
        .step_by(count.max(1))
        .cloned()
        .collect()
}

/// Parses `K/N` (1-based K, as people count shards) into a 0-based index and a count.
pub fn parse_shard(text: &str) -> Result<(usize, usize), ProtocolError> {
    let bad = || ProtocolError::Shard {
        text: text.to_string(),
    };
    let (k, n) = text.split_once('/').ok_or_else(bad)?;
    let k: usize = k.trim().parse().map_err(|_| bad())?;
    let n: usize = n.trim().parse().map_err(|_| bad())?;
    if n == 0 || k == 0 || k > n {
        return Err(bad());
    }
    Ok((k - 1, n))
}

/// The shard of a SLURM array job: `SLURM_ARRAY_TASK_ID` (taken relative to
/// `SLURM_ARRAY_TASK_MIN`, default 0) of `SLURM_ARRAY_TASK_COUNT`, when both are set.
pub fn slurm_shard(get: impl Fn(&str) -> Option<String>) -> Option<(usize, usize)> {
    let id: usize = get("SLURM_ARRAY_TASK_ID")?.trim().parse().ok()?;
    let count: usize = get("SLURM_ARRAY_TASK_COUNT")?.trim().parse().ok()?;
    let min: usize = get("SLURM_ARRAY_TASK_MIN")
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or(0);
    let index = id.checked_sub(min)?;
    (count > 0 && index < count).then_some((index, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
description = "test"
base = "base.toml"
baseline = "a"
set = ["train.epochs=1"]
[split]
scheme = "kfold"
k = 3
seed = 66
[[variants]]
name = "a"
set = ["model.framework=unet_inter"]
[[variants]]
name = "b"
set = ["model.framework=ds2f"]
"#;

    #[test]
    fn plan_is_unit_major_and_orders_overrides() {
        let file = ExperimentFile::parse(FILE, "e.toml").unwrap();
        let names: Vec<String> = (0..7).map(|i| format!("im{i}")).collect();
        let units = units(&file.split, &names).unwrap();
        assert_eq!(units.len(), 3);
        let mut all: Vec<String> = units.iter().flat_map(|u| u.test_names.clone()).collect();
        all.sort();
        assert_eq!(all, names, "each image tested exactly once");
        let runs = plan(&file, &units, Path::new("/x"));
        let order: Vec<(&str, &str)> = runs
            .iter()
            .map(|r| (r.variant.as_str(), r.unit.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("a", "f0"),
                ("b", "f0"),
                ("a", "f1"),
                ("b", "f1"),
                ("a", "f2"),
                ("b", "f2")
            ]
        );
        let r = &runs[1];
        assert_eq!(r.dir, Path::new("/x/runs/b/f0"));
        assert_eq!(r.overrides[0], "train.epochs=1");
        assert_eq!(r.overrides[1], "model.framework=ds2f");
        assert!(r.overrides[2].starts_with("data.test_include=[\"im"));
        assert_eq!(r.overrides[3], "run.dir=\"/x/runs/b\"");
        assert_eq!(r.overrides[4], "run.name=f0");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let cases = [
            (
                FILE.replace("baseline = \"a\"", "baseline = \"c\""),
                "baseline `c`",
            ),
            (FILE.replace("k = 3", "k = 1"), "at least 2 folds"),
            (FILE.replace("name = \"b\"", "name = \"a\""), "given twice"),
            (FILE.replace("seed = 66", "sed = 66"), "unknown field `sed`"),
            (
                FILE.replace("name = \"b\"", "name = \"b/c\""),
                "variant name",
            ),
            (
                FILE.replace("k = 3", "k = 3\nfolds = [3]"),
                "fold 3 does not exist",
            ),
        ];
        for (text, expected) in cases {
            let e = ExperimentFile::parse(&text, "e.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{e}");
            assert!(e.starts_with("e.toml"), "{e}");
        }
    }

    #[test]
    fn shards_split_the_pending_runs_without_overlap() {
        let pending: Vec<usize> = (0..10).collect();
        let mut seen = Vec::new();
        for k in 0..3 {
            seen.extend(shard(&pending, k, 3));
        }
        seen.sort();
        assert_eq!(seen, pending);
        assert_eq!(shard(&pending, 1, 3), [1, 4, 7]);
        assert_eq!(parse_shard("2/3").unwrap(), (1, 3));
        for bad in ["0/3", "4/3", "x", "1/0", "1-3"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        let env = |k: &str| match k {
            "SLURM_ARRAY_TASK_ID" => Some("5".to_string()),
            "SLURM_ARRAY_TASK_COUNT" => Some("4".to_string()),
            "SLURM_ARRAY_TASK_MIN" => Some("3".to_string()),
            _ => None,
        };
        assert_eq!(slurm_shard(env), Some((2, 4)));
        assert_eq!(slurm_shard(|_| None), None);
    }
}
