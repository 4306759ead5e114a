//! The run folder: `config.toml` (resolved), `metrics.csv`, `curves.png`,
//! `checkpoints/{best,last}.ckpt`. Every file is written atomically.
use std::path::{Path, PathBuf};

use super::LossTerm;
use crate::config::ExperimentConfig;
use crate::error::TrainError;
use crate::report::curves;

/// One line of `metrics.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRecord {
    /// Epoch (1-based).
    pub epoch: usize,
    /// Optimiser steps done after this epoch.
    pub iteration: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation IoU at HR (selection metric).
    pub val_iou: f64,
    /// Validation Dice at HR.
    pub val_dice: f64,
    /// Validation MCC at HR.
    pub val_mcc: f64,
    /// Validation BM at HR.
    pub val_bm: f64,
    /// Wall time of the epoch (training + validation + checkpoints).
    pub seconds: f64,
    /// Whether this epoch gave a new best checkpoint.
    pub best: bool,
    /// Mean weighted value of each loss term, indexed by [`LossTerm::index`]; NaN for a term
    /// the objective does not have.
    pub term_losses: [f64; LossTerm::COUNT],
}

impl EpochRecord {
    /// The mean weighted value of `term` (NaN when the objective does not have it).
    pub fn term_loss(&self, term: LossTerm) -> f64 {
        self.term_losses[term.index()]
    }
}

/// The columns of `metrics.csv` before the per-term ones (`loss_<name>` for each of
/// [`LossTerm::ALL`]).
const FIXED_COLUMNS: [&str; 10] = [
    "epoch",
    "iteration",
    "lr",
    "train_loss",
    "val_iou",
    "val_dice",
    "val_mcc",
    "val_bm",
    "seconds",
    "best",
];

/// The header line of `metrics.csv`.
fn header() -> String {
    let terms = LossTerm::ALL.iter().map(|t| format!("loss_{}", t.name()));
    FIXED_COLUMNS
        .iter()
        .map(|c| c.to_string())
        .chain(terms)
        .collect::<Vec<_>>()
        .join(",")
}

/// Paths and files of one run.
#[derive(Debug, Clone)]
pub struct RunFolder {
    dir: PathBuf,
}

impl RunFolder {
    /// The run in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `checkpoints/last.ckpt`: model, optimiser and state after the latest epoch.
    pub fn last_checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoints").join("last.ckpt")
    }

    /// `checkpoints/best.ckpt`: the model of the best validation epoch.
    pub fn best_checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoints").join("best.ckpt")
    }

    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// `metrics.csv`.
    pub fn metrics_path(&self) -> PathBuf {
        self.dir.join("metrics.csv")
    }

    /// Creates the folder for a new run and saves the resolved config; refuses to overwrite
    /// an existing run.
    pub fn create(&self, config: &ExperimentConfig) -> Result<(), TrainError> {
        if self.last_checkpoint().exists() {
            return Err(TrainError::RunExists {
                path: self.dir.clone(),
            });
        }
        let checkpoints = self.dir.join("checkpoints");
        std::fs::create_dir_all(&checkpoints).map_err(|e| TrainError::RunFile {
            path: checkpoints.clone(),
            message: e.to_string(),
        })?;
        write(&self.config_path(), config.to_toml().as_bytes())
    }

    /// Writes `metrics.csv` from the whole history.
    pub fn write_metrics(&self, history: &[EpochRecord]) -> Result<(), TrainError> {
        let mut text = header();
        text.push('\n');
        for r in history {
            text.push_str(&format!(
                "{},{},{:.6e},{:.6},{:.6},{:.6},{:.6},{:.6},{:.2},{}",
                r.epoch,
                r.iteration,
                r.lr,
                r.train_loss,
                r.val_iou,
                r.val_dice,
                r.val_mcc,
                r.val_bm,
                r.seconds,
                u8::from(r.best),
            ));
            for v in r.term_losses {
                text.push_str(&format!(",{v:.6}"));
            }
            text.push('\n');
        }
        write(&self.metrics_path(), text.as_bytes())
    }

    /// Reads `metrics.csv` back (for resuming).
    pub fn read_metrics(&self) -> Result<Vec<EpochRecord>, TrainError> {
        let path = self.metrics_path();
        let bad = |message: String| TrainError::RunFile {
            path: path.clone(),
            message,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(bad(e.to_string())),
        };
        // Columns by name: files of older versions have fewer loss terms (or none); a term
        // without a column reads as NaN.
        let mut lines = text.lines().enumerate();
        let columns: Vec<&str> = match lines.next() {
            Some((_, h)) => h.split(',').collect(),
            None => return Ok(Vec::new()),
        };
        if columns.len() < FIXED_COLUMNS.len() || columns[..FIXED_COLUMNS.len()] != FIXED_COLUMNS {
            return Err(bad(format!(
                "line 1: expected a header starting `{}`",
                FIXED_COLUMNS.join(",")
            )));
        }
        let term_column: Vec<Option<usize>> = LossTerm::ALL
            .iter()
            .map(|t| {
                let name = format!("loss_{}", t.name());
                columns.iter().position(|c| *c == name)
            })
            .collect();
        let mut out = Vec::new();
        for (n, line) in lines {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != columns.len() {
                return Err(bad(format!(
                    "line {}: expected {} fields, found {}",
                    n + 1,
                    columns.len(),
                    f.len()
                )));
            }
            let num = |i: usize| -> Result<f64, TrainError> {
                f[i].parse::<f64>()
                    .map_err(|_| bad(format!("line {}: bad number `{}`", n + 1, f[i])))
            };
            let mut term_losses = [f64::NAN; LossTerm::COUNT];
            for (slot, column) in term_losses.iter_mut().zip(&term_column) {
                if let Some(i) = column {
                    *slot = num(*i)?;
                }
            }
            out.push(EpochRecord {
                epoch: num(0)? as usize,
                iteration: num(1)? as usize,
                lr: num(2)?,
                train_loss: num(3)?,
                val_iou: num(4)?,
                val_dice: num(5)?,
                val_mcc: num(6)?,
                val_bm: num(7)?,
                seconds: num(8)?,
                best: f[9] == "1",
                term_losses,
            });
        }
        Ok(out)
    }

    /// Draws `curves.png`: the progress plot of the whole history (in memory, so
    /// `metrics.csv` is not read back for it).
    pub fn write_curves(&self, history: &[EpochRecord]) -> Result<(), TrainError> {
        let path = self.dir.join("curves.png");
        curves::save_progress(history, &path)
            .map_err(|message| TrainError::RunFile { path, message })
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    ds2f_data::io::write_atomic(path, bytes).map_err(|e| TrainError::RunFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
