//! Claims on runs, so that workers sharing an experiment folder (a SLURM array, several
//! machines on a network file system, two terminals) never train the same run twice.
//!
//! A claim is `RUN/claim.json` (host, pid, start time), created with `create_new` so that one
//! worker wins. The winner refreshes the file's modification time every
//! [`HEARTBEAT`]; a claim is stale when its process is gone (same host: no `/proc/<pid>`) or
//! its heartbeat is older than the stale age (another host, or a frozen machine). A stale claim
//! is taken over by renaming it away first (one renamer wins) and then claiming anew.
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;

/// How often a live claim's file is touched.
pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// Default age after which a claim whose heartbeat stopped is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(600);

/// Who holds a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimInfo {
    /// Host name of the worker.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// When it claimed the run (seconds since the Unix epoch).
    pub started: u64,
}

impl ClaimInfo {
    /// This process.
    pub fn current() -> Self {
        Self {
            host: host_name(),
            pid: std::process::id(),
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

impl std::fmt::Display for ClaimInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let age = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .saturating_sub(self.started);
        write!(f, "pid {} on {}, for {} min", self.pid, self.host, age / 60)
    }
}

/// The machine's host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `unknown`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The claim file of a run folder.
pub fn claim_path(run_dir: &Path) -> PathBuf {
    run_dir.join("claim.json")
}

/// The current claim on `run_dir`, if any, and whether it is stale.
pub fn current(run_dir: &Path, stale_after: Duration) -> Option<(ClaimInfo, bool)> {
    let path = claim_path(run_dir);
    let text = std::fs::read_to_string(&path).ok()?;
    let info: ClaimInfo = serde_json::from_str(&text).ok()?;
    let stale = is_stale(&path, &info, stale_after);
    Some((info, stale))
}

fn is_stale(path: &Path, info: &ClaimInfo, stale_after: Duration) -> bool {
    if info.host == host_name()
        && Path::new("/proc/self").exists()
        && !ds2f_data::io::process_alive(info.pid)
    {
        return true;
    }
    // A live pid may be a recycled one of another program, which does not touch the file.
    age(path).is_some_and(|a| a > stale_after)
}

/// Time since `path` was last modified (its heartbeat).
fn age(path: &Path) -> Option<Duration> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    SystemTime::now().duration_since(modified).ok()
}

/// A held claim: the heartbeat runs until it is dropped, which removes the file.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
    info: ClaimInfo,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

impl Claim {
    /// Who holds it (this process).
    pub fn info(&self) -> &ClaimInfo {
        &self.info
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.heartbeat.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        // Remove the file only if it is still ours.
        let ours = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| serde_json::from_str::<ClaimInfo>(&t).ok())
            .is_some_and(|i| i == self.info);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The outcome of [`try_claim`].
#[derive(Debug)]
pub enum Claimed {
    /// This process now holds the run.
    Taken(Claim),
    /// A live worker holds it.
    Busy(ClaimInfo),
}

/// Claims `run_dir` (created if missing) for this process, taking over a stale claim.
pub fn try_claim(run_dir: &Path, stale_after: Duration) -> Result<Claimed, ProtocolError> {
    std::fs::create_dir_all(run_dir).map_err(|e| ProtocolError::io(run_dir, e))?;
    let path = claim_path(run_dir);
    let info = ClaimInfo::current();
    for _ in 0..3 {
        match create(&path, &info) {
            Ok(()) => return Ok(Claimed::Taken(start(path, info))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(ProtocolError::io(&path, e)),
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // removed in between: try again
        };
        let Ok(held) = serde_json::from_str::<ClaimInfo>(&text) else {
            // Half-written by a worker that died between create and write: stale once old.
            if is_stale_unreadable(&path, stale_after) {
                take_over(&path, &text)?;
            }
            continue;
        };
        if !is_stale(&path, &held, stale_after) {
            return Ok(Claimed::Busy(held));
        }
        take_over(&path, &text)?;
    }
    // Three lost races in a row: somebody else is active on this run.
    match current(run_dir, stale_after) {
        Some((held, _)) => Ok(Claimed::Busy(held)),
        None => Err(ProtocolError::io(&path, "could not claim the run")),
    }
}

fn is_stale_unreadable(path: &Path, stale_after: Duration) -> bool {
    age(path).is_some_and(|a| a > stale_after.min(Duration::from_secs(60)))
}

/// Moves a stale claim aside. Only one worker's rename succeeds; if what was moved is not
/// the stale claim that was judged (a new claim appeared in between), it is put back.
fn take_over(path: &Path, judged: &str) -> Result<(), ProtocolError> {
    let aside = path.with_extension(format!("stale.{}", std::process::id()));
    match std::fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ProtocolError::io(path, e)),
    }
    let moved = std::fs::read_to_string(&aside).unwrap_or_default();
    if moved != judged {
        // A fresh claim: restore it unless yet another one exists already.
        let _ = std::fs::hard_link(&aside, path);
    }
    let _ = std::fs::remove_file(&aside);
    Ok(())
}

fn create(path: &Path, info: &ClaimInfo) -> std::io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    let text = serde_json::to_string(info).expect("claim serialises");
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

fn start(path: PathBuf, info: ClaimInfo) -> Claim {
    let stop = Arc::new(AtomicBool::new(false));
    let heartbeat = {
        let stop = stop.clone();
        let path = path.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::park_timeout(HEARTBEAT);
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(f) = OpenOptions::new().write(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
            }
        })
    };
    Claim {
        path,
        info,
        stop,
        heartbeat: Some(heartbeat),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("runs/a/f0");
        let Claimed::Taken(claim) = try_claim(&run, STALE_AFTER).unwrap() else {
            panic!("first claim must succeed");
        };
        assert_eq!(claim.info().pid, std::process::id());
        // The same process asking again sees a live claim (its own pid is alive).
        match try_claim(&run, STALE_AFTER).unwrap() {
            Claimed::Busy(info) => assert_eq!(info, *claim.info()),
            Claimed::Taken(_) => panic!("claimed twice"),
        }
        drop(claim);
        assert!(!claim_path(&run).exists());
        assert!(matches!(
            try_claim(&run, STALE_AFTER).unwrap(),
            Claimed::Taken(_)
        ));
    }

    #[test]
    fn a_dead_process_claim_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("r");
        std::fs::create_dir_all(&run).unwrap();
        // A pid above the kernel's maximum (4194304) is never alive.
        let dead = ClaimInfo {
            host: host_name(),
            pid: 4_194_305,
            started: 1,
        };
        std::fs::write(claim_path(&run), serde_json::to_string(&dead).unwrap()).unwrap();
        assert_eq!(current(&run, STALE_AFTER), Some((dead.clone(), true)));
        let Claimed::Taken(claim) = try_claim(&run, STALE_AFTER).unwrap() else {
            panic!("stale claim not taken over");
        };
        assert_ne!(claim.info(), &dead);
        // Another host's fresh claim is respected, its old one is not.
        drop(claim);
        let other = ClaimInfo {
            host: "elsewhere".into(),
            pid: 1,
            started: 1,
        };
        std::fs::write(claim_path(&run), serde_json::to_string(&other).unwrap()).unwrap();
        assert!(matches!(
            try_claim(&run, STALE_AFTER).unwrap(),
            Claimed::Busy(i) if i == other
        ));
        let old = SystemTime::now() - Duration::from_secs(3600);
        let f = OpenOptions::new()
            .write(true)
            .open(claim_path(&run))
            .unwrap();
        f.set_modified(old).unwrap();
        assert!(matches!(
            try_claim(&run, STALE_AFTER).unwrap(),
            Claimed::Taken(_)
        ));
    }
}
