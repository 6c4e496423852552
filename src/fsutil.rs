//! Small file helpers shared by the loaders: bounded reads that refuse to follow a
//! final symlink or block on a FIFO.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    TooLarge,
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

/// Opens a regular file for reading: close-on-exec, non-blocking open (a FIFO would
/// otherwise hang us), and, with `nofollow`, refusing a symlink as the last component.
pub fn open_regular(path: &Path, nofollow: bool) -> std::io::Result<std::fs::File> {
    let mut flags = libc::O_CLOEXEC | libc::O_NONBLOCK;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok(file)
}

/// Reads at most `cap` bytes of a regular file (following symlinks); more is an error.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    read_capped_from(open_regular(path, false)?, cap)
}

pub fn read_capped_from(file: std::fs::File, cap: u64) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    file.take(cap + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(ReadError::TooLarge);
    }
    Ok(buf)
}
