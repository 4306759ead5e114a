//! Atomic file writes: every file of an experiment's report is written to a temporary file
//! beside it and renamed over it, so that a reader (or a crash) never sees half a file. The
//! temporary name is unique to the process and the write, because several workers of one
//! experiment may rewrite its tables at the same moment.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static WRITES: AtomicUsize = AtomicUsize::new(0);

/// `.<file name>.tmp-<pid>-<n>` beside `path`.
fn temp_path(path: &Path) -> PathBuf {
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename; the
/// temporary file is removed on failure.
pub(crate) fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Temporary files of [`write`] left in `dir` (for tests: there must be none).
#[cfg(test)]
pub(crate) fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}
