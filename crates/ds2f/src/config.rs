//! Experiment configuration: one TOML file per experiment, `--set key=value` overrides, unknown
//! keys rejected with the nearest valid key suggested, values range-checked.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::model::ModelConfig;

/// A whole experiment: data, model, training and evaluation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ExperimentConfig {
    /// A free-text note saying what this config is for and what it scales down.
    pub description: String,
    /// Data sources, splits and LR/HR sizes.
    pub data: DataConfig,
    /// The model.
    pub model: ModelConfig,
    /// Optimisation.
    pub train: TrainConfig,
    /// Where runs are written.
    pub run: RunConfig,
}

/// The `[data]` table. (Unknown keys are caught by `serde_ignored` in [`ExperimentConfig::parse`],
/// which can suggest the nearest key, so the tables do not use `deny_unknown_fields`.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataConfig {
    /// Dataset folder (relative paths are relative to the config file).
    pub root: PathBuf,
    /// Layout: `auto`, `generic`, `hrf`, `drive`, `chase_db1`, `stare`, `drhagis`, `fives`,
    /// `idrid`, `idrid_od`, `ddr`, `cityscapes`.
    pub layout: String,
    /// Name patterns (`*`, `?`) of the training pool; validation is carved out of it.
    pub train_include: Vec<String>,
    /// Name patterns of the test set (never used for training or model selection).
    pub test_include: Vec<String>,
    /// A separate test folder; when set, `test_include` filters it instead of `root`.
    pub test_root: Option<PathBuf>,
    /// The split of `root` to train on, for layouts with split folders (Cityscapes `train`,
    /// DDR `train`); unset: the folder itself.
    pub split: Option<String>,
    /// The split of the test folder (`test_root`, else `root`), e.g. Cityscapes' `val`.
    pub test_split: Option<String>,
    /// The split of the selection folder (`val_root`, else `root`), e.g. DDR's `valid`.
    pub val_split: Option<String>,
    /// Number of training images held out for validation (model selection).
    pub val_count: usize,
    /// An official selection set (DDR's `valid` folder): validation is every image of this
    /// folder instead of `val_count` images carved from the training pool.
    pub val_root: Option<PathBuf>,
    /// Class names by id, for tables, overlays and probability files. Empty: the layout's
    /// (IDRiD/DDR: background, MA, HE, EX, SE; Cityscapes' 19), else `class k`.
    pub class_names: Vec<String>,
    /// The lesion layouts' binary per-lesion mode (`MA`, `HE`, `EX` or `SE`): only this
    /// lesion's masks are read, as a binary task (`model.num_classes = 2`), as the reference's
    /// DDR per-lesion scripts do (SPEC §4). Unset: the merged multi-class label map.
    pub lesion: Option<String>,
    /// Select the best checkpoint on the test images instead of held-out training images, as
    /// the reference's k-fold script does (SPEC §8.6). Optimistic: only for `protocol =
    /// "reference"` experiments, which measure the difference.
    pub select_on_test: bool,
    /// LR network input size `[h, w]`; HR = r × LR.
    pub lr_size: [usize; 2],
    /// Apply the paper's augmentation (colour jitter, flips, shift-scale-rotate) in training.
    pub augment: bool,
    /// Crop every image, mask and FOV to the bounding box of its FOV mask when it is read, in
    /// training and evaluation alike (the paper's PRIME-FP20 preprocessing; needs FOV masks).
    pub crop_to_fov: bool,
    /// Data-loading worker threads (they prepare batches while the model trains).
    pub workers: usize,
    /// Batches prepared ahead of the model.
    pub prefetch: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            root: PathBuf::from("data"),
            layout: "auto".into(),
            train_include: vec!["*".into()],
            test_include: Vec::new(),
            test_root: None,
            split: None,
            test_split: None,
            val_split: None,
            val_count: 2,
            val_root: None,
            class_names: Vec::new(),
            lesion: None,
            select_on_test: false,
            lr_size: [256, 256],
            augment: true,
            crop_to_fov: false,
            workers: 1,
            prefetch: 2,
        }
    }
}

impl DataConfig {
    /// Checks the `[data]` table; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.lr_size.contains(&0) {
            return Err(ConfigError::range(
                "data.lr_size",
                "both sides must be positive",
            ));
        }
        if self.workers == 0 {
            return Err(ConfigError::range("data.workers", "must be at least 1"));
        }
        if self.prefetch == 0 {
            return Err(ConfigError::range("data.prefetch", "must be at least 1"));
        }
        Ok(())
    }
}

/// The `[train]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Epochs (paper: 300 for HRF).
    pub epochs: usize,
    /// Batch size (paper: 2).
    pub batch_size: usize,
    /// Initial learning rate of SGD (paper: 0.01).
    pub lr: f64,
    /// SGD momentum (0.9).
    pub momentum: f64,
    /// Nesterov momentum (the reference code uses it; the paper does not say).
    pub nesterov: bool,
    /// L2 weight decay on every parameter, BN included (1e-4).
    pub weight_decay: f64,
    /// Power of the poly schedule (0.9).
    pub poly_power: f64,
    /// Compute the poly schedule's length from every image of the dataset (training,
    /// validation and test: `ceil(N / batch) · epochs`) as the reference's k-fold script does,
    /// so that the LR never reaches 0 (SPEC §3, §8.6). Off: the schedule ends at 0 after the
    /// last step that really runs.
    pub schedule_on_all_images: bool,
    /// Seed of weights, data order, augmentation and the validation split.
    pub seed: u64,
    /// Optional per-class cross-entropy weights.
    pub class_weights: Option<Vec<f32>>,
    /// Loss terms and their weights.
    pub loss: LossConfig,
    /// Devices for data-parallel training, e.g. `["cuda:0", "cuda:1"]`: each step splits the
    /// batch across them, runs forward and backward on each, averages the gradients on the
    /// first and steps there (BN statistics per device, the first device's running averages
    /// kept, as PyTorch's DDP). Empty: the `--device` of the command line (default `cpu`).
    pub devices: Vec<String>,
}

/// The main segmentation loss (`train.loss.seg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegLossKind {
    /// Cross-entropy (the reference; `train.class_weights` apply).
    Ce,
    /// Class-balanced cross-entropy, β = 0.9999, weights from each batch's class counts.
    Cbce,
    /// Focal loss, γ = 2, α = 0.25.
    Focal,
}

/// The seg proxy loss on the shared module's seg output (`train.loss.proxy_seg`; Table II, III).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxySegKind {
    /// The framework's own choice: RMI for `ds2f` and `ssmaf`, CE for `supervessel`.
    Auto,
    /// 0.5·BCE + 0.5·RMI lower bound (DS2F).
    Rmi,
    /// Cross-entropy.
    Ce,
    /// Generalised Dice (Sudre et al.).
    Gdice,
    /// No seg proxy loss (Table III ablation).
    None,
}

/// The SR proxy loss on the shared module's SR output (`train.loss.proxy_sr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxySrKind {
    /// The framework's own choice: SSIM for `ds2f`, MSE for `ssmaf`.
    Auto,
    /// 1 − SSIM (DS2F).
    Ssim,
    /// Mean squared error.
    Mse,
    /// No SR proxy loss (Table III ablation).
    None,
}

/// Which generalised Dice formula `proxy_seg = "gdice"` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GdiceKind {
    /// Sudre et al. 2017 (the loss the paper cites).
    Sudre,
    /// The reference code's `DiceLoss(smooth=1, gdice=True)`, which collapses to ≈ 0 (SPEC §2).
    Reference,
}

/// The `[train.loss]` table: total = seg + MSE(SR) + α·proxy_seg + β·proxy_sr (eq. 7) +
/// `feature_weight`·feature loss (CogSeg's L1, DSRL's FA) + `aux_weight`·seg loss on
/// ESPNetv2's auxiliary output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LossConfig {
    /// Main segmentation loss.
    pub seg: SegLossKind,
    /// Seg proxy loss.
    pub proxy_seg: ProxySegKind,
    /// SR proxy loss.
    pub proxy_sr: ProxySrKind,
    /// α of eq. 7, the seg proxy weight (reference: 1).
    pub alpha: f64,
    /// β of eq. 7, the SR proxy weight (reference: 1).
    pub beta: f64,
    /// Weight of the MSE on the SR stream (reference: 1).
    pub sr_weight: f64,
    /// Weight of the feature loss of `cogseg` and `dsrl` (reference: 1).
    pub feature_weight: f64,
    /// SSIM's data range. The reference uses 1.0 on images in [−1, 1]; 2.0 is the range
    /// those images really have (SPEC §8.2).
    pub ssim_data_range: f64,
    /// The generalised Dice formula of `proxy_seg = "gdice"`.
    pub gdice: GdiceKind,
    /// Weight of the main seg loss on ESPNetv2's auxiliary output (the level-3 logits
    /// up-sampled to HR), which the reference's ESPNetv2 training adds with weight 1; 0 turns
    /// it off. Other backbones have no auxiliary output.
    pub aux_weight: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            seg: SegLossKind::Ce,
            proxy_seg: ProxySegKind::Auto,
            proxy_sr: ProxySrKind::Auto,
            alpha: 1.0,
            beta: 1.0,
            sr_weight: 1.0,
            feature_weight: 1.0,
            ssim_data_range: 1.0,
            gdice: GdiceKind::Sudre,
            aux_weight: 1.0,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 300,
            batch_size: 2,
            lr: 0.01,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-4,
            poly_power: 0.9,
            schedule_on_all_images: false,
            seed: 42,
            class_weights: None,
            loss: LossConfig::default(),
            devices: Vec::new(),
        }
    }
}

impl TrainConfig {
    /// Checks the `[train]` table and its `[train.loss]`; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| Err(ConfigError::range(key, reason));
        if self.batch_size == 0 {
            return bad("train.batch_size", "must be at least 1");
        }
        if self.devices.len() > self.batch_size {
            return bad(
                "train.devices",
                "more devices than samples in a batch (train.batch_size)",
            );
        }
        if self.epochs == 0 {
            return bad("train.epochs", "must be at least 1");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("train.lr", "must be a positive number");
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("train.momentum", "must be in [0, 1)");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("train.weight_decay", "must be zero or positive");
        }
        self.loss.validate()
    }
}

impl LossConfig {
    /// Checks the `[train.loss]` table; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("train.loss.alpha", self.alpha),
            ("train.loss.beta", self.beta),
            ("train.loss.sr_weight", self.sr_weight),
            ("train.loss.feature_weight", self.feature_weight),
            ("train.loss.aux_weight", self.aux_weight),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ConfigError::range(key, "must be zero or positive"));
            }
        }
        if !(self.ssim_data_range.is_finite() && self.ssim_data_range > 0.0) {
            return Err(ConfigError::range(
                "train.loss.ssim_data_range",
                "must be positive",
            ));
        }
        Ok(())
    }
}

/// The `[run]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunConfig {
    /// Parent folder of run folders (relative to the working directory).
    pub dir: PathBuf,
    /// Run name; the run folder is `dir/name`.
    pub name: String,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("runs"),
            name: "run".into(),
        }
    }
}

impl ExperimentConfig {
    /// Reads `path`, applies `overrides` (`key.path=value`, TOML values; bare words are
    /// strings), rejects unknown keys, resolves relative data paths against the file's folder
    /// and validates ranges.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            error: source,
        })?;
        let mut config = Self::parse(&text, overrides, &path.display().to_string())?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.data.root = resolve(base, &config.data.root);
        config.data.test_root = config.data.test_root.as_ref().map(|p| resolve(base, p));
        config.data.val_root = config.data.val_root.as_ref().map(|p| resolve(base, p));
        config.model.encoder_weights = config
            .model
            .encoder_weights
            .as_ref()
            .map(|p| resolve(base, p));
        Ok(config)
    }

    /// Parses TOML text (`origin` names it in errors), applies overrides and validates.
    pub fn parse(text: &str, overrides: &[String], origin: &str) -> Result<Self, ConfigError> {
        let mut value: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        for o in overrides {
            apply_override(&mut value, o)?;
        }
        let mut unknown = Vec::new();
        let config: Self = serde_ignored::deserialize(toml::Value::Table(value), |path| {
            unknown.push(path.to_string())
        })
        .map_err(|e| ConfigError::Value {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        if let Some(key) = unknown.first() {
            return Err(ConfigError::UnknownKey {
                origin: origin.to_string(),
                key: key.clone(),
                suggestion: suggest(key),
            });
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks value ranges, each table its own ([`DataConfig::validate`],
    /// [`ModelConfig::validate`], [`TrainConfig::validate`]), then what spans tables; errors
    /// name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.data.validate()?;
        self.model.validate()?;
        self.train.validate()?;
        if let Some(w) = &self.train.class_weights
            && w.len() != self.model.num_classes
        {
            return Err(ConfigError::range(
                "train.class_weights",
                "needs one weight per class (model.num_classes)",
            ));
        }
        Ok(())
    }

    /// The HR output size `[r·h, r·w]`.
    pub fn hr_size(&self) -> [usize; 2] {
        let r = self.model.effective_upscale();
        [self.data.lr_size[0] * r, self.data.lr_size[1] * r]
    }

    /// Serialises the resolved config (saved as `config.toml` in each run folder).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }
}

/// `p` relative to `base`, made absolute so that the config saved in a run folder still points
/// at the same data from anywhere.
fn resolve(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    std::path::absolute(&joined).unwrap_or(joined)
}

/// Applies one `a.b.c=value` override to the TOML table.
fn apply_override(table: &mut toml::Table, item: &str) -> Result<(), ConfigError> {
    let (key, raw) = item.split_once('=').ok_or_else(|| ConfigError::Override {
        item: item.to_string(),
        reason: "expected key=value".into(),
    })?;
    let key = key.trim();
    let raw = raw.trim();
    // A TOML value if it parses as one (numbers, booleans, arrays, quoted strings), else a string.
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = table;
    for part in &parts[..parts.len() - 1] {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry.as_table_mut().ok_or_else(|| ConfigError::Override {
            item: item.to_string(),
            reason: format!("`{part}` is not a table"),
        })?;
    }
    node.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// The valid key nearest to an unknown `key` (same table), by edit distance.
fn suggest(key: &str) -> Option<String> {
    let defaults = toml::Value::try_from(ExperimentConfig::default()).ok()?;
    let (parent, leaf) = match key.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, key),
    };
    let mut node = &defaults;
    if let Some(parent) = parent {
        for part in parent.split('.') {
            node = node.get(part)?;
        }
    }
    let mut names: Vec<String> = node.as_table()?.keys().cloned().collect();
    // Optional keys that serialise to nothing when unset.
    names.extend(
        [
            "test_root",
            "val_root",
            "split",
            "test_split",
            "val_split",
            "class_weights",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    names
        .into_iter()
        .map(|n| (strsim::damerau_levenshtein(leaf, &n), n))
        .filter(|(d, n)| *d <= 3.max(n.len() / 3))
        .min()
        .map(|(_, n)| match parent {
            Some(p) => format!("{p}.{n}"),
            None => n,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str, overrides: &[&str]) -> String {
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        ExperimentConfig::parse(text, &o, "test.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_keys_name_the_nearest_valid_key() {
        let cases = [
            (
                "[train]\nepoch = 3\n",
                "unknown key `train.epoch` (did you mean `train.epochs`?)",
            ),
            ("[model]\nupscal = 2\n", "did you mean `model.upscale`?"),
            ("[data]\nlr_szie = [4, 4]\n", "did you mean `data.lr_size`?"),
            ("[trian]\nepochs = 3\n", "did you mean `train`?"),
        ];
        for (text, expected) in cases {
            let message = err(text, &[]);
            assert!(message.contains(expected), "{message}");
            assert!(message.starts_with("test.toml"), "{message}");
        }
        let message = err("", &["train.batchsize=4"]);
        assert!(
            message.contains("did you mean `train.batch_size`?"),
            "{message}"
        );
    }

    #[test]
    fn out_of_range_values_name_the_key() {
        for (set, key) in [
            ("model.upscale=0", "model.upscale"),
            ("train.batch_size=0", "train.batch_size"),
            ("train.lr=-0.1", "train.lr"),
            ("data.lr_size=[0, 8]", "data.lr_size"),
        ] {
            let message = err("", &[set]);
            assert!(
                message.starts_with(&format!("config key `{key}`")),
                "{message}"
            );
        }
    }

    #[test]
    fn overrides_take_toml_values_and_bare_strings() {
        let o = [
            "train.epochs=7".to_string(),
            "model.framework=unet".to_string(),
            "data.lr_size=[32, 48]".to_string(),
            "run.name=my run".to_string(),
        ];
        let c = ExperimentConfig::parse("[train]\nepochs = 3\n", &o, "t").unwrap();
        assert_eq!(c.train.epochs, 7);
        assert_eq!(c.model.framework, crate::model::Framework::Unet);
        assert_eq!(c.data.lr_size, [32, 48]);
        assert_eq!(c.run.name, "my run");
        // Plain U-Net works at r = 1 whatever `upscale` says.
        assert_eq!(c.hr_size(), [32, 48]);
    }

    #[test]
    fn every_shipped_config_parses_and_says_what_it_is() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let c = ExperimentConfig::load(&path, &[])
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert!(
                    c.description.len() > 40,
                    "{}: no description",
                    path.display()
                );
                n += 1;
            }
        }
        assert!(n >= 6, "{n} configs");
    }

    #[test]
    fn saved_config_round_trips() {
        let c = ExperimentConfig::parse("[model]\nbase = 16\n", &[], "t").unwrap();
        let again = ExperimentConfig::parse(&c.to_toml(), &[], "t").unwrap();
        assert_eq!(c, again);
        assert_eq!(again.hr_size(), [512, 512]);
    }
}
