//! The run folder: `config.toml` (resolved), `metrics.csv`, `curves.png`,
//! `checkpoints/{best,last}.ckpt`. Every file is written atomically.
use std::path::{Path, PathBuf};

use crate::config::ExperimentConfig;
use crate::error::TrainError;
use crate::report::curves::{self, CurvePoint};

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
    /// Mean weighted value of each loss term, in the order of [`TERM_NAMES`]; NaN for a term
    /// the framework does not have.
    pub term_losses: [f64; 5],
}

/// The loss terms logged in `metrics.csv` (columns `loss_<name>`).
pub const TERM_NAMES: [&str; 5] = ["seg", "sr", "proxy_seg", "proxy_sr", "feature"];

const HEADER: &str = "epoch,iteration,lr,train_loss,val_iou,val_dice,val_mcc,val_bm,seconds,best,\
                      loss_seg,loss_sr,loss_proxy_seg,loss_proxy_sr,loss_feature";

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
        let mut text = String::from(HEADER);
        text.push('\n');
        for r in history {
            text.push_str(&format!(
                "{},{},{:.6e},{:.6},{:.6},{:.6},{:.6},{:.6},{:.2},{},{:.6},{:.6},{:.6},{:.6},{:.6}\n",
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
                r.term_losses[0],
                r.term_losses[1],
                r.term_losses[2],
                r.term_losses[3],
                r.term_losses[4],
            ));
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
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() != 10 && f.len() != 15 {
                return Err(bad(format!("line {}: expected 15 fields", n + 1)));
            }
            let num = |i: usize| -> Result<f64, TrainError> {
                f[i].parse::<f64>()
                    .map_err(|_| bad(format!("line {}: bad number `{}`", n + 1, f[i])))
            };
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
                term_losses: if f.len() == 15 {
                    [num(10)?, num(11)?, num(12)?, num(13)?, num(14)?]
                } else {
                    [f64::NAN; 5]
                },
            });
        }
        Ok(out)
    }

    /// Draws `curves.png`.
    pub fn write_curves(&self, history: &[EpochRecord]) -> Result<(), TrainError> {
        let points: Vec<CurvePoint> = history
            .iter()
            .map(|r| CurvePoint {
                epoch: r.epoch,
                train_loss: r.train_loss,
                val_iou: r.val_iou,
                val_dice: r.val_dice,
            })
            .collect();
        let path = self.dir.join("curves.png");
        curves::save(&points, &path).map_err(|message| TrainError::RunFile { path, message })
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    ds2f_data::io::write_atomic(path, bytes).map_err(|e| TrainError::RunFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}
