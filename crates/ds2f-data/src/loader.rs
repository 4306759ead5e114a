//! A prefetching, deterministic batch loader.
//!
//! For an epoch the item indices are shuffled with a `ChaCha8Rng` seeded from `(seed, epoch)`,
//! cut into batches (optionally dropping a short last batch), and the batches are built on worker
//! threads, at most `prefetch` batches ahead of the consumer, and handed out **in order**. Every
//! sample gets its own `ChaCha8Rng` seeded from `(seed, epoch, item index)`, so the batches are
//! identical for any number of workers. A failing item turns its batch into an `Err` at that
//! position; the other batches are unaffected.
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};
use crate::pair::Sample;

/// A source of training samples: loads, augments and pairs item `index` using `rng`.
pub trait SampleSource: Send + Sync {
    /// Number of items.
    fn len(&self) -> usize;
    /// Whether there are no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Builds the sample of item `index`, drawing all randomness from `rng`.
    fn load(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample>;
}

/// A [`SampleSource`] from a length and a closure `Fn(index, &mut ChaCha8Rng) -> Result<Sample>`.
pub struct FnSource<F> {
    len: usize,
    f: F,
}

/// Wraps a closure as a [`SampleSource`] of `len` items.
pub fn from_fn<F>(len: usize, f: F) -> FnSource<F>
where
    F: Fn(usize, &mut ChaCha8Rng) -> Result<Sample> + Send + Sync,
{
    FnSource { len, f }
}

impl<F> SampleSource for FnSource<F>
where
    F: Fn(usize, &mut ChaCha8Rng) -> Result<Sample> + Send + Sync,
{
    fn len(&self) -> usize {
        self.len
    }
    fn load(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample> {
        (self.f)(index, rng)
    }
}

/// A collated batch of `n` samples sharing one LR and one HR size.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// LR images, `[n, 3, h, w]`.
    pub lr: Vec<f32>,
    /// HR images, `[n, 3, r·h, r·w]`.
    pub hr: Vec<f32>,
    /// HR masks, `[n, r·h, r·w]` class indices.
    pub mask: Vec<u8>,
    /// HR FOVs, `[n, r·h, r·w]`, when every sample has one.
    pub fov: Option<Vec<u8>>,
    /// Sample names, in batch order.
    pub names: Vec<String>,
    /// Number of samples.
    pub n: usize,
    /// LR size `(h, w)`.
    pub lr_size: (u32, u32),
    /// HR size `(h, w)`.
    pub hr_size: (u32, u32),
}

impl Batch {
    /// Stacks samples into one batch.
    ///
    /// # Errors
    /// [`DataError::Invalid`] for no samples, samples of different LR or HR sizes, or a mix of
    /// samples with and without FOV.
    pub fn collate(samples: Vec<Sample>) -> Result<Batch> {
        let first = samples.first().ok_or_else(|| DataError::Invalid {
            name: "batch",
            reason: "no samples to collate".into(),
        })?;
        let (lr_size, hr_size, has_fov) = (first.lr_size, first.hr_size, first.fov.is_some());
        for s in &samples {
            if s.lr_size != lr_size || s.hr_size != hr_size {
                return Err(DataError::Invalid {
                    name: "batch",
                    reason: format!(
                        "{}: LR {:?} / HR {:?} (h, w) differ from {}: LR {lr_size:?} / HR {hr_size:?}",
                        s.name, s.lr_size, s.hr_size, first.name
                    ),
                });
            }
            if s.fov.is_some() != has_fov {
                return Err(DataError::Invalid {
                    name: "batch",
                    reason: format!("{} and {} differ in having a FOV", s.name, first.name),
                });
            }
        }
        let n = samples.len();
        let mut b = Batch {
            lr: Vec::with_capacity(n * first.lr.len()),
            hr: Vec::with_capacity(n * first.hr.len()),
            mask: Vec::with_capacity(n * first.mask.len()),
            fov: has_fov.then(|| Vec::with_capacity(n * first.mask.len())),
            names: Vec::with_capacity(n),
            n,
            lr_size,
            hr_size,
        };
        for s in samples {
            b.lr.extend_from_slice(&s.lr);
            b.hr.extend_from_slice(&s.hr);
            b.mask.extend_from_slice(&s.mask);
            if let (Some(dst), Some(src)) = (b.fov.as_mut(), s.fov.as_ref()) {
                dst.extend_from_slice(src);
            }
            b.names.push(s.name);
        }
        Ok(b)
    }

    /// Splits the batch into `parts` consecutive shards whose sizes differ by at most one (the
    /// first ones take the remainder), for data-parallel training across devices.
    ///
    /// # Errors
    /// [`DataError::Invalid`] when `parts` is 0 or larger than the batch.
    pub fn split(&self, parts: usize) -> Result<Vec<Batch>> {
        if parts == 0 || parts > self.n {
            return Err(DataError::Invalid {
                name: "batch",
                reason: format!(
                    "cannot split a batch of {} samples into {parts} shards",
                    self.n
                ),
            });
        }
        let per = |len: usize| len / self.n;
        let (lr, hr, mask) = (per(self.lr.len()), per(self.hr.len()), per(self.mask.len()));
        let mut shards = Vec::with_capacity(parts);
        let mut start = 0;
        for k in 0..parts {
            let n = self.n / parts + usize::from(k < self.n % parts);
            let range = |stride: usize| start * stride..(start + n) * stride;
            shards.push(Batch {
                lr: self.lr[range(lr)].to_vec(),
                hr: self.hr[range(hr)].to_vec(),
                mask: self.mask[range(mask)].to_vec(),
                fov: self.fov.as_ref().map(|f| f[range(mask)].to_vec()),
                names: self.names[start..start + n].to_vec(),
                n,
                lr_size: self.lr_size,
                hr_size: self.hr_size,
            });
            start += n;
        }
        Ok(shards)
    }
}

/// Loader settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Samples per batch (> 0).
    pub batch_size: usize,
    /// Base seed of the shuffle and of every sample's RNG.
    pub seed: u64,
    /// Shuffle the items each epoch (otherwise they come in index order).
    pub shuffle: bool,
    /// Drop a last batch shorter than `batch_size`.
    pub drop_last: bool,
    /// Worker threads (> 0).
    pub workers: usize,
    /// How many finished or in-progress batches may wait ahead of the consumer (> 0).
    pub prefetch: usize,
}

impl LoaderConfig {
    /// Shuffled batches of `batch_size`, last batch kept, 4 workers, prefetch 4.
    pub fn new(batch_size: usize, seed: u64) -> Self {
        Self {
            batch_size,
            seed,
            shuffle: true,
            drop_last: false,
            workers: 4,
            prefetch: 4,
        }
    }
}

/// A ChaCha8 seed from three words and a domain tag.
fn rng_from(a: u64, b: u64, c: u64, tag: u64) -> ChaCha8Rng {
    let mut seed = [0u8; 32];
    for (i, v) in [a, b, c, tag].into_iter().enumerate() {
        seed[i * 8..(i + 1) * 8].copy_from_slice(&v.to_le_bytes());
    }
    ChaCha8Rng::from_seed(seed)
}

const TAG_SHUFFLE: u64 = 0x5348_5546_464c_4531; // "SHUFFLE1"
const TAG_SAMPLE: u64 = 0x5341_4d50_4c45_3031; // "SAMPLE01"

/// The RNG of item `index` in `epoch`: `ChaCha8Rng` seeded from `(seed, epoch, index)`.
pub fn sample_rng(seed: u64, epoch: u64, index: usize) -> ChaCha8Rng {
    rng_from(seed, epoch, index as u64, TAG_SAMPLE)
}

/// The item order of an epoch: `0..len`, shuffled with a `ChaCha8Rng` seeded from
/// `(seed, epoch)` when `shuffle` is set.
pub fn epoch_order(len: usize, seed: u64, epoch: u64, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    if shuffle {
        order.shuffle(&mut rng_from(seed, epoch, 0, TAG_SHUFFLE));
    }
    order
}

/// Cuts an order into batches of `batch_size`, dropping a short last batch if `drop_last`.
///
/// # Panics
/// If `batch_size == 0`.
pub fn batch_indices(order: &[usize], batch_size: usize, drop_last: bool) -> Vec<Vec<usize>> {
    assert!(batch_size > 0, "batch_size must be > 0");
    order
        .chunks(batch_size)
        .filter(|c| !drop_last || c.len() == batch_size)
        .map(|c| c.to_vec())
        .collect()
}

/// Loads one batch on the current thread (what each worker does).
///
/// # Errors
/// The first error of loading a sample, or of collating.
pub fn load_batch<S: SampleSource + ?Sized>(
    source: &S,
    indices: &[usize],
    seed: u64,
    epoch: u64,
) -> Result<Batch> {
    let samples = indices
        .iter()
        .map(|&i| source.load(i, &mut sample_rng(seed, epoch, i)))
        .collect::<Result<Vec<_>>>()?;
    Batch::collate(samples)
}

struct State {
    /// Finished batches waiting for the consumer, by position.
    ready: BTreeMap<usize, Result<Batch>>,
    /// Next batch position a worker will claim.
    next_claim: usize,
    /// Next batch position the consumer will take.
    next_take: usize,
    /// Set when the consumer is dropped.
    cancelled: bool,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

/// The batches of one epoch, produced in the background and yielded in order.
pub struct EpochLoader {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    n_batches: usize,
}

impl EpochLoader {
    /// Starts the workers for `epoch` of `source`.
    ///
    /// # Errors
    /// [`DataError::Invalid`] when `batch_size`, `workers` or `prefetch` is 0.
    pub fn new<S: SampleSource + 'static>(
        source: Arc<S>,
        cfg: LoaderConfig,
        epoch: u64,
    ) -> Result<Self> {
        for (name, v) in [
            ("batch_size", cfg.batch_size),
            ("workers", cfg.workers),
            ("prefetch", cfg.prefetch),
        ] {
            if v == 0 {
                return Err(DataError::Invalid {
                    name,
                    reason: "must be > 0".into(),
                });
            }
        }
        let order = epoch_order(source.len(), cfg.seed, epoch, cfg.shuffle);
        let batches = Arc::new(batch_indices(&order, cfg.batch_size, cfg.drop_last));
        let n_batches = batches.len();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ready: BTreeMap::new(),
                next_claim: 0,
                next_take: 0,
                cancelled: false,
            }),
            cond: Condvar::new(),
        });
        let workers = (0..cfg.workers.min(n_batches.max(1)))
            .map(|_| {
                let (shared, batches, source) = (shared.clone(), batches.clone(), source.clone());
                std::thread::spawn(move || worker(&shared, &batches, &*source, cfg, epoch))
            })
            .collect();
        Ok(Self {
            shared,
            workers,
            n_batches,
        })
    }

    /// Number of batches in the epoch.
    pub fn n_batches(&self) -> usize {
        self.n_batches
    }
}

fn worker<S: SampleSource + ?Sized>(
    shared: &Shared,
    batches: &[Vec<usize>],
    source: &S,
    cfg: LoaderConfig,
    epoch: u64,
) {
    loop {
        let pos = {
            let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            while !st.cancelled
                && st.next_claim < batches.len()
                && st.next_claim >= st.next_take + cfg.prefetch
            {
                st = shared.cond.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.cancelled || st.next_claim >= batches.len() {
                return;
            }
            st.next_claim += 1;
            st.next_claim - 1
        };
        let result = load_batch(source, &batches[pos], cfg.seed, epoch);
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.ready.insert(pos, result);
        shared.cond.notify_all();
    }
}

impl Iterator for EpochLoader {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.next_take >= self.n_batches {
            return None;
        }
        loop {
            let pos = st.next_take;
            if let Some(r) = st.ready.remove(&pos) {
                st.next_take += 1;
                self.shared.cond.notify_all();
                return Some(r);
            }
            // A worker that panicked leaves its batch missing forever; report it instead of
            // waiting.
            if self.workers.iter().all(|h| h.is_finished()) && !st.ready.contains_key(&pos) {
                st.next_take += 1;
                return Some(Err(DataError::Invalid {
                    name: "loader",
                    reason: format!("batch {pos} was never produced (a worker panicked)"),
                }));
            }
            let (guard, _) = self
                .shared
                .cond
                .wait_timeout(st, std::time::Duration::from_millis(200))
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
        }
    }
}

impl Drop for EpochLoader {
    fn drop(&mut self) {
        {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.cancelled = true;
            self.shared.cond.notify_all();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// A sample whose values depend on the item index and on two draws from its RNG.
    fn fake(index: usize, rng: &mut ChaCha8Rng) -> Result<Sample> {
        let a: f32 = rng.random();
        let b: u8 = rng.random_range(0..3);
        Ok(Sample {
            lr: vec![index as f32, a, a * 2.0, 0.5, -0.5, 1.0],
            hr: vec![a; 3 * 4],
            mask: vec![b; 4],
            fov: Some(vec![1; 4]),
            lr_size: (1, 2),
            hr_size: (2, 2),
            name: format!("item{index}"),
        })
    }

    fn collect(cfg: LoaderConfig, len: usize, epoch: u64) -> Vec<Result<Batch>> {
        let src = Arc::new(from_fn(len, fake));
        EpochLoader::new(src, cfg, epoch).unwrap().collect()
    }

    #[test]
    fn split_gives_the_collated_shards_in_order() {
        let samples = |range: std::ops::Range<usize>| -> Vec<Sample> {
            range
                .map(|i| fake(i, &mut sample_rng(3, 0, i)).unwrap())
                .collect()
        };
        let batch = Batch::collate(samples(0..5)).unwrap();
        let shards = batch.split(2).unwrap();
        assert_eq!(shards.len(), 2);
        // The first shard takes the remainder; each equals collating its own samples.
        assert_eq!(shards[0], Batch::collate(samples(0..3)).unwrap());
        assert_eq!(shards[1], Batch::collate(samples(3..5)).unwrap());
        let ones = batch.split(5).unwrap();
        assert!(ones.iter().all(|b| b.n == 1 && b.mask.len() == 4));
        assert_eq!(ones[4].names, vec!["item4".to_string()]);
        assert_eq!(batch.split(1).unwrap(), vec![batch.clone()]);
        for bad in [0, 6] {
            let e = batch.split(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("into {bad} shards")), "{e}");
        }
    }

    #[test]
    fn order_is_a_seeded_permutation() {
        let a = epoch_order(50, 1, 0, true);
        let mut s = a.clone();
        s.sort();
        assert_eq!(s, (0..50).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(50, 1, 0, true));
        assert_ne!(a, epoch_order(50, 1, 1, true));
        assert_ne!(a, epoch_order(50, 2, 0, true));
        assert_eq!(epoch_order(5, 1, 0, false), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn drop_last_and_batch_sizes() {
        let order: Vec<usize> = (0..10).collect();
        assert_eq!(batch_indices(&order, 4, true).len(), 2);
        let kept = batch_indices(&order, 4, false);
        assert_eq!(
            kept.iter().map(|b| b.len()).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        let mut cfg = LoaderConfig::new(4, 9);
        cfg.drop_last = true;
        let got = collect(cfg, 10, 0);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|b| b.as_ref().unwrap().n == 4));
    }

    #[test]
    fn one_and_three_workers_give_identical_batches() {
        let mut cfg = LoaderConfig::new(3, 42);
        cfg.workers = 1;
        cfg.prefetch = 1;
        let one: Vec<Batch> = collect(cfg, 11, 5)
            .into_iter()
            .map(|b| b.unwrap())
            .collect();
        cfg.workers = 3;
        cfg.prefetch = 2;
        let three: Vec<Batch> = collect(cfg, 11, 5)
            .into_iter()
            .map(|b| b.unwrap())
            .collect();
        assert_eq!(one.len(), 4);
        assert_eq!(one, three);
        // Batches follow the epoch order, and each sample used its own (seed, epoch, index) RNG.
        let order = epoch_order(11, 42, 5, true);
        let names: Vec<String> = one.iter().flat_map(|b| b.names.clone()).collect();
        assert_eq!(
            names,
            order.iter().map(|i| format!("item{i}")).collect::<Vec<_>>()
        );
        let expect = fake(order[4], &mut sample_rng(42, 5, order[4])).unwrap();
        assert_eq!(&one[1].lr[6..12], &expect.lr[..]);
        assert_eq!(&one[1].mask[4..8], &expect.mask[..]);
        // Another epoch differs.
        let other: Vec<Batch> = collect(cfg, 11, 6)
            .into_iter()
            .map(|b| b.unwrap())
            .collect();
        assert_ne!(one, other);
    }

    #[test]
    fn errors_reach_the_consumer_in_place() {
        let src = Arc::new(from_fn(8, |i, rng: &mut ChaCha8Rng| {
            if i == 5 {
                Err(DataError::Invalid {
                    name: "item",
                    reason: "item 5 is broken".into(),
                })
            } else {
                fake(i, rng)
            }
        }));
        let mut cfg = LoaderConfig::new(2, 0);
        cfg.shuffle = false;
        cfg.workers = 3;
        let got: Vec<Result<Batch>> = EpochLoader::new(src, cfg, 0).unwrap().collect();
        assert_eq!(got.len(), 4);
        assert!(got[0].is_ok() && got[1].is_ok() && got[3].is_ok());
        match &got[2] {
            Err(DataError::Invalid { reason, .. }) => assert!(reason.contains("item 5")),
            other => panic!("expected the error of item 5, got {other:?}"),
        }
    }

    #[test]
    fn collate_stacks_and_checks_sizes() {
        let mut rng = sample_rng(0, 0, 0);
        let a = fake(0, &mut rng).unwrap();
        let b = fake(1, &mut rng).unwrap();
        let batch = Batch::collate(vec![a.clone(), b.clone()]).unwrap();
        assert_eq!(
            (batch.n, batch.lr.len(), batch.hr.len(), batch.mask.len()),
            (2, 12, 24, 8)
        );
        assert_eq!(&batch.lr[6..], &b.lr[..]);
        assert_eq!(batch.fov.as_ref().unwrap().len(), 8);
        assert_eq!(batch.names, vec!["item0", "item1"]);
        let mut c = b.clone();
        c.lr_size = (2, 2);
        assert!(Batch::collate(vec![a.clone(), c]).is_err());
        let mut d = b;
        d.fov = None;
        assert!(Batch::collate(vec![a, d]).is_err());
        assert!(Batch::collate(vec![]).is_err());
    }

    #[test]
    fn early_drop_does_not_hang_and_zero_settings_are_errors() {
        let src = Arc::new(from_fn(100, fake));
        let mut l = EpochLoader::new(src.clone(), LoaderConfig::new(2, 0), 0).unwrap();
        assert_eq!(l.n_batches(), 50);
        assert!(l.next().unwrap().is_ok());
        drop(l);
        let mut cfg = LoaderConfig::new(2, 0);
        cfg.workers = 0;
        assert!(EpochLoader::new(src.clone(), cfg, 0).is_err());
        let empty: Vec<_> =
            EpochLoader::new(Arc::new(from_fn(0, fake)), LoaderConfig::new(2, 0), 0)
                .unwrap()
                .collect();
        assert!(empty.is_empty());
    }
}
