use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::Record;

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("cannot write audit log {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot encode audit record: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Appends one record as one line: directory created 0700, file 0600, exclusive
/// `flock` for the whole write, fsync before returning.
pub fn append_line(path: &Path, record: &Record) -> Result<(), AuditError> {
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    let io = |source| AuditError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .map_err(io)?;
    // flock(LOCK_EX); released when `file` is closed.
    file.lock().map_err(io)?;
    (&file).write_all(&line).map_err(io)?;
    file.sync_data().map_err(io)
}
