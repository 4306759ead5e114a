//! Training checkpoints: model, optimiser and trainer state in one file, written atomically
//! (temporary file, fsync, rename) so that a crash never leaves a half-written checkpoint.
//!
//! Layout: the magic line `DS2F-CKPT 1\n`, then three length-prefixed (u64 little-endian)
//! sections: the [`TrainState`] as JSON, the model as a burnpack record, and the optimiser
//! state as a burnpack record (empty in inference-only files).
use std::path::Path;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::CheckpointError;

const MAGIC: &[u8] = b"DS2F-CKPT 1\n";

/// Where training stands: enough, with the data seed, to continue exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainState {
    /// Completed epochs.
    pub epoch: usize,
    /// Completed optimiser steps (the poly schedule's position).
    pub iteration: usize,
    /// Best validation score so far (the selection metric) and its epoch.
    pub best_score: Option<f64>,
    /// Epoch of the best score.
    pub best_epoch: Option<usize>,
}

/// A checkpoint read from disk.
pub struct Checkpoint {
    /// Trainer state.
    pub state: TrainState,
    /// The model record bytes.
    pub model: Vec<u8>,
    /// The optimiser record bytes (empty when absent).
    pub optimizer: Vec<u8>,
}

impl Checkpoint {
    /// Serialises `model` (and `optimizer`, if given) with `state` and writes `path` atomically.
    pub fn save<M: Module>(
        path: &Path,
        state: &TrainState,
        model: &M,
        optimizer: Option<&ModuleOptimizer>,
    ) -> Result<(), CheckpointError> {
        let record_err = |e: burn::store::RecordError| CheckpointError::Record {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let model_bytes = model
            .clone()
            .into_record()
            .into_bytes()
            .map_err(record_err)?;
        let optim_bytes = match optimizer {
            Some(o) => o.into_bytes().map_err(record_err)?.to_vec(),
            None => Vec::new(),
        };
        let json = serde_json::to_vec(state).expect("state serialises");
        let mut out = Vec::with_capacity(
            MAGIC.len() + 24 + json.len() + model_bytes.len() + optim_bytes.len(),
        );
        out.extend_from_slice(MAGIC);
        for section in [&json[..], &model_bytes[..], &optim_bytes[..]] {
            out.extend_from_slice(&(section.len() as u64).to_le_bytes());
            out.extend_from_slice(section);
        }
        ds2f_data::io::write_atomic(path, &out).map_err(|e| CheckpointError::Write {
            path: path.to_path_buf(),
            message: match e {
                // The path is already in the message.
                ds2f_data::DataError::Io { error, .. } => error.to_string(),
                other => other.to_string(),
            },
        })
    }

    /// Reads and checks a checkpoint file.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Read {
            path: path.to_path_buf(),
            error: source,
        })?;
        let corrupt = |what: &str| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            what: what.to_string(),
        };
        let rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| corrupt("not a ds2f checkpoint (bad header)"))?;
        let mut sections = Vec::with_capacity(3);
        let mut at = 0usize;
        for name in ["state", "model", "optimizer"] {
            let len_bytes: [u8; 8] = rest
                .get(at..at + 8)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| corrupt(&format!("truncated before the {name} section")))?;
            let len = u64::from_le_bytes(len_bytes) as usize;
            at += 8;
            let section = rest
                .get(at..at.saturating_add(len))
                .ok_or_else(|| corrupt(&format!("truncated {name} section")))?;
            sections.push(section.to_vec());
            at += len;
        }
        let optimizer = sections.pop().expect("three sections");
        let model = sections.pop().expect("three sections");
        let state: TrainState =
            serde_json::from_slice(&sections[0]).map_err(|e| corrupt(&format!("state: {e}")))?;
        Ok(Self {
            state,
            model,
            optimizer,
        })
    }

    /// Loads the model weights of this checkpoint into `model`.
    pub fn apply_model<M: Module>(&self, model: M, path: &Path) -> Result<M, CheckpointError> {
        let record =
            burn::store::ModuleRecord::from_bytes(Bytes::from_bytes_vec(self.model.clone()))
                .map_err(|e| CheckpointError::Record {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
        model
            .try_load_record(record)
            .map_err(|e| CheckpointError::Record {
                path: path.to_path_buf(),
                message: format!("weights do not fit the configured model: {e}"),
            })
    }

    /// Loads the optimiser state of this checkpoint into `optimizer`.
    #[cfg(feature = "train")]
    pub fn apply_optimizer(
        &self,
        optimizer: ModuleOptimizer,
        path: &Path,
    ) -> Result<ModuleOptimizer, CheckpointError> {
        if self.optimizer.is_empty() {
            return Err(CheckpointError::Corrupt {
                path: path.to_path_buf(),
                what: "no optimiser state (an inference-only file cannot resume training)".into(),
            });
        }
        optimizer
            .from_bytes(Bytes::from_bytes_vec(self.optimizer.clone()))
            .map_err(|e| CheckpointError::Record {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
    }
}
