//! Small file helpers shared by the loaders and writers: bounded reads that refuse to
//! follow a final symlink or block on a FIFO, and whole-or-nothing writes.

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
    // Sized from fstat: one read instead of a doubling series (config.json is ~20 KB).
    let hint = file.metadata().map(|m| m.len().min(cap) as usize + 1).unwrap_or(0);
    let mut buf = Vec::with_capacity(hint);
    file.take(cap + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > cap {
        return Err(ReadError::TooLarge);
    }
    Ok(buf)
}

/// Replaces `path` with `bytes` whole or not at all: a temp file beside it (created
/// exclusively, never through a symlink, with `mode` whatever the umask), fsync'd,
/// renamed over `path`, then the directory fsync'd so the new name survives a crash.
/// The temp file's name starts with a dot, so directory readers that skip dot files
/// (node_exporter's textfile collector, policy loaders) never see it.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.hardrun-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Why whoever is not root (or `also_owner`) could change the file or directory
/// `meta` describes: its owner, or its mode letting the group or others write. `None`:
/// only root can. A sticky directory (`/tmp`) may be world-writable when `sticky_ok`:
/// there only an entry's owner may rename or remove it.
pub fn ownership_problem(meta: &std::fs::Metadata, also_owner: Option<u32>, sticky_ok: bool) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode() & 0o7777;
    if meta.uid() != 0 && Some(meta.uid()) != also_owner {
        let who = if also_owner.is_some() { "root or you" } else { "root" };
        return Some(format!("is owned by uid {}, not {who}", meta.uid()));
    }
    if mode & 0o022 != 0 && !(sticky_ok && mode & 0o1000 != 0) {
        let by = if mode & 0o002 != 0 { "anyone" } else { "its group" };
        return Some(format!("can be changed by {by} (mode {mode:04o})"));
    }
    None
}

/// Checks that only root (or the effective user, when hardrun does not run as root)
/// can change `path` and every directory above it, symlinks resolved: a file that
/// configures a root process must not be writable by anyone less. The error names the
/// first path that fails and why.
pub fn check_controlled_by_root(path: &Path) -> Result<(), String> {
    let euid = nix::unistd::geteuid().as_raw();
    let also_owner = (euid != 0).then_some(euid);
    let real = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let check = |p: &Path, sticky_ok: bool| -> Result<(), String> {
        let meta = std::fs::metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
        match ownership_problem(&meta, also_owner, sticky_ok) {
            Some(problem) => Err(format!("{} {problem}", p.display())),
            None => Ok(()),
        }
    };
    check(&real, false)?;
    // The directory holding the file may not be sticky-writable: whoever can create
    // entries there could swap the file in before it exists.
    for (depth, dir) in real.ancestors().skip(1).enumerate() {
        check(dir, depth > 0)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_capped_takes_exactly_the_cap_and_refuses_one_more_byte() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, vec![b'x'; 100]).unwrap();
        assert_eq!(read_capped(&f, 100).unwrap().len(), 100);
        assert!(matches!(read_capped(&f, 99), Err(ReadError::TooLarge)));
    }

    #[test]
    fn write_atomic_replaces_whole_with_the_mode_and_leaves_no_temp_file() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "old").unwrap();
        write_atomic(&f, b"new", 0o640).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1, "a temp file was left");
        assert!(write_atomic(&d.path().join("missing/f"), b"x", 0o600).is_err());
        assert_eq!(std::fs::read(&f).unwrap(), b"new");
    }

    #[test]
    fn read_capped_refuses_what_is_not_a_regular_file() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_capped(d.path(), 10).is_err());
        assert!(read_capped(Path::new("/dev/zero"), 10).is_err(), "a device would be read forever");
    }
}
