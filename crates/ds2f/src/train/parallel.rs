//! Data-parallel forward and backward: one optimiser step's batch split across devices.
//!
//! burn's own multi-device strategy (burn-train's `MultiDevicesTrainStep` with
//! `MultiDeviceOptim::OptimMainDevice`) forks the model to every device, runs each device's
//! step on its own thread, moves the gradients to the first device and accumulates them there
//! before one optimiser step. This does the same with burn's pieces (`Module::fork`,
//! `GradientsParams::to_device`, `GradientsAccumulator`) inside our own loop, with two
//! differences that keep the paper's recipe whatever the number of devices:
//! - the configured batch is the *global* batch, split into shards (burn gives every device a
//!   whole batch), and every shard's loss is weighted by its share of the batch, so the summed
//!   gradient is the full batch's mean-loss gradient (exactly, for per-sample mean losses, up to
//!   BN statistics, which are per shard as in PyTorch's DDP without SyncBN);
//! - the replicas get their own BN running averages, so the first device's, computed on its
//!   shard on the calling thread, are the ones kept (as DDP keeps rank 0's): the result does not
//!   depend on thread timing.
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use ds2f_data::loader::Batch;

use crate::dataset::{batch_tensors, hr_tensor};
use crate::model::DualStream;
use crate::train::{LossTerm, Objective};

/// What one step's forward and backward produced.
#[derive(Debug)]
pub struct StepGrads {
    /// Each loss term's value for the whole batch (shards weighted by their size), in the
    /// objective's order.
    pub terms: Vec<(LossTerm, f64)>,
    /// The batch's gradients, on the first device.
    pub grads: GradientsParams,
}

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    /// A loss term is NaN or infinite (on the first device whose shard shows it).
    #[error("the {term} loss is {value}")]
    NonFinite {
        /// The term.
        term: LossTerm,
        /// Its value on that shard.
        value: f64,
    },
    /// A device's thread panicked.
    #[error("training on device {device} failed: {message}")]
    Worker {
        /// The device, as burn prints it.
        device: String,
        /// The panic message.
        message: String,
    },
}

/// Runs forward and backward of `batch` split across `devices` (autodiff devices; the first is
/// where `model` lives and where the gradients end up). One device: the step runs on the
/// calling thread with nothing split or copied.
///
/// # Panics
/// If `devices` is empty or has more devices than `batch` has samples (the config check
/// rules both out).
pub fn forward_backward(
    model: &DualStream,
    batch: &Batch,
    devices: &[Device],
    objective: &Objective,
) -> Result<StepGrads, StepError> {
    assert!(!devices.is_empty(), "at least one training device");
    if devices.len() == 1 {
        return shard_step(model, batch, &devices[0], objective, None);
    }
    let shards = batch
        .split(devices.len())
        .expect("the config allows no more devices than samples per batch");
    let total = batch.n as f64;
    let weight = |shard: &Batch| Some(shard.n as f64 / total);
    let results: Vec<Result<StepGrads, StepError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = shards[1..]
            .iter()
            .zip(&devices[1..])
            .map(|(shard, device)| {
                // A replica with fresh leaves (same parameter ids) and its own BN running
                // state: `valid` drops the autodiff graph, `train` starts a new one.
                let plain = model.valid();
                let handle = scope.spawn(move || {
                    let replica = plain.train().fork(device);
                    shard_step(&replica, shard, device, objective, weight(shard))
                });
                (device, handle)
            })
            .collect();
        let mut results = vec![shard_step(
            model,
            &shards[0],
            &devices[0],
            objective,
            weight(&shards[0]),
        )];
        for (device, handle) in workers {
            results.push(handle.join().unwrap_or_else(|payload| {
                Err(StepError::Worker {
                    device: format!("{device:?}"),
                    message: panic_message(payload.as_ref()),
                })
            }));
        }
        results
    });
    let mut accumulator = GradientsAccumulator::<DualStream>::new();
    let mut terms: Vec<(LossTerm, f64)> = Vec::new();
    for result in results {
        let step = result?;
        for (name, value) in step.terms {
            match terms.iter_mut().find(|(n, _)| *n == name) {
                Some((_, sum)) => *sum += value,
                None => terms.push((name, value)),
            }
        }
        accumulator.accumulate(model, step.grads.to_device(&devices[0], model));
    }
    Ok(StepGrads {
        terms,
        grads: accumulator.grads(),
    })
}

/// Forward and backward of one shard; `weight` scales its loss (and the reported values).
fn shard_step(
    model: &DualStream,
    shard: &Batch,
    device: &Device,
    objective: &Objective,
    weight: Option<f64>,
) -> Result<StepGrads, StepError> {
    let (x, y) = batch_tensors(shard, device);
    let hr = hr_tensor(shard, device);
    let outputs = objective.terms(model.forward_train(x), y, hr);
    let mut terms = Vec::with_capacity(outputs.len());
    for term in &outputs {
        let value = term.value.clone().into_scalar::<f32>() as f64;
        if !value.is_finite() {
            return Err(StepError::NonFinite {
                term: term.term,
                value,
            });
        }
        terms.push((term.term, value * weight.unwrap_or(1.0)));
    }
    let mut loss = outputs
        .into_iter()
        .map(|t| t.value)
        .reduce(|a, b| a.add(b))
        .expect("the seg term");
    if let Some(w) = weight {
        loss = loss.mul_scalar(w);
    }
    Ok(StepGrads {
        terms,
        grads: GradientsParams::from_grads(loss.backward(), model),
    })
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic without a message".to_string()
    }
}
