//! Atomic file writes: every file of an experiment's report is written to `<path>.tmp` and
//! renamed over `path`, so that a reader (or a crash) never sees half a file.
use std::path::{Path, PathBuf};

/// `path` with ".tmp" appended to its file name.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
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
