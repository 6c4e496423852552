//! Appending to the audit log: whole lines, one writer at a time (an exclusive lock on
//! `<log>.lock`, which also covers rotation), each record chained to the previous
//! line by its SHA-256, and fsync'd when a container's start depends on it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::record::{Record, GENESIS};
use crate::config::AuditLogConfig;

/// A record longer than this is not read back to continue the chain (hardrun's own
/// records are tens of KiB at most).
pub const MAX_AUDIT_LINE: usize = 16 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("cannot write audit log {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot encode audit record: {0}")]
    Encode(#[from] serde_json::Error),
}

/// `sha256:<hex>` of one line's bytes (without its newline).
pub fn line_hash(line: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(line))
}

/// The end of a log file: its last complete line, and bytes after it that a crash
/// left without a newline.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tail {
    pub last_line: Option<Vec<u8>>,
    pub torn: Option<Vec<u8>>,
}

/// Reads the tail of `file` without reading the whole file.
pub fn read_tail(file: &mut File) -> std::io::Result<Tail> {
    let len = file.metadata()?.len();
    let mut window: u64 = 64 * 1024;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::with_capacity((len - start) as usize);
        file.take(len - start).read_to_end(&mut buf)?;
        let (body, torn) = match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) if i + 1 < buf.len() => (&buf[..=i], Some(buf[i + 1..].to_vec())),
            Some(_) => (&buf[..], None),
            None if start == 0 => return Ok(Tail { last_line: None, torn: (!buf.is_empty()).then_some(buf) }),
            None => (&buf[..0], None),
        };
        // body ends with '\n'; the last line starts after the newline before it.
        let content = body.strip_suffix(b"\n").unwrap_or(body);
        match content.iter().rposition(|&b| b == b'\n') {
            Some(i) => return Ok(Tail { last_line: Some(content[i + 1..].to_vec()), torn }),
            None if start == 0 => {
                return Ok(Tail { last_line: (!body.is_empty()).then(|| content.to_vec()), torn });
            }
            None if window as usize >= MAX_AUDIT_LINE => {
                return Ok(Tail { last_line: Some(content.to_vec()), torn });
            }
            None => window *= 4,
        }
    }
}

fn seq_of(line: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(line).ok()?.get("seq")?.as_u64()
}

/// The rotated file `n` of a log: `<log>.<n>`.
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

fn open_private(path: &Path, read: bool) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(read)
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
}

/// How far back the writer looks for the last readable record's `seq`.
const SEQ_SEARCH_BYTES: u64 = 1024 * 1024;

/// The `seq` of the last line of `file` that is a record, looking at most
/// [`SEQ_SEARCH_BYTES`] back; the flag says whether that covered the whole file.
fn last_seq_in(file: &mut File) -> std::io::Result<(Option<u64>, bool)> {
    let len = file.metadata()?.len();
    let start = len.saturating_sub(SEQ_SEARCH_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.take(len - start).read_to_end(&mut buf)?;
    Ok((buf.split(|&b| b == b'\n').rev().find_map(seq_of), start == 0))
}

/// The bytes the new record follows (what `prev` hashes) and whether they are not a
/// readable record (a torn or garbled line: the new record is marked `afterTorn`).
fn predecessor(tail: Tail) -> (Option<Vec<u8>>, bool) {
    match (tail.torn, tail.last_line) {
        (Some(torn), _) => (Some(torn), true),
        (None, Some(line)) => {
            let unreadable = seq_of(&line).is_none();
            (Some(line), unreadable)
        }
        (None, None) => (None, false),
    }
}

/// Sets `seq`, `prev` and `after_torn` from what precedes the new record. An empty
/// log continues the chain of its newest rotated file; `seq` continues from the last
/// readable record, so a torn or garbled line never restarts the count.
fn chain(record: &mut Record, tail: Tail, file: &mut File, previous_file: &Path) -> std::io::Result<()> {
    let previous = || -> std::io::Result<Option<File>> {
        match File::open(previous_file) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    };
    let (follows, unreadable) = match predecessor(tail) {
        (None, _) => match previous()? {
            Some(mut f) => predecessor(read_tail(&mut f)?),
            None => (None, false),
        },
        found => found,
    };
    // The usual case: the tail's last line is a record and carries the count.
    let (mut seq, whole) = match follows.as_deref().filter(|_| !unreadable).and_then(seq_of) {
        Some(s) => (Some(s), false),
        None => last_seq_in(file)?,
    };
    if seq.is_none() && whole {
        if let Some(mut f) = previous()? {
            seq = last_seq_in(&mut f)?.0;
        }
    }
    record.seq = seq.map_or(1, |s| s + 1);
    record.after_torn = unreadable;
    record.prev = follows.map_or_else(|| GENESIS.to_owned(), |b| line_hash(&b));
    Ok(())
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// Shifts `<log>` to `<log>.1`, `.1` to `.2` …, dropping what falls past `max_files`.
fn rotate(path: &Path, max_files: u32) -> std::io::Result<()> {
    if max_files == 0 {
        return std::fs::remove_file(path);
    }
    for n in (1..max_files).rev() {
        let from = rotated_path(path, n);
        if from.exists() {
            std::fs::rename(&from, rotated_path(path, n + 1))?;
        }
    }
    std::fs::rename(path, rotated_path(path, 1))
}

/// Appends `record` (its chain fields are filled here). `durable`: fsync before
/// returning, for records a container's start depends on.
pub fn append(log: &AuditLogConfig, record: &mut Record, durable: bool) -> Result<(), AuditError> {
    let path = log.path.as_path();
    let io = |source| AuditError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    }
    let lock = open_private(&lock_path(path), false).map_err(io)?;
    // flock(LOCK_EX) for the whole append and any rotation; released on close.
    lock.lock().map_err(io)?;
    crate::faults::crash_point("audit.locked");
    let mut file = open_private(path, true).map_err(io)?;
    let tail = read_tail(&mut file).map_err(io)?;
    let torn = tail.torn.is_some();
    chain(record, tail, &mut file, &rotated_path(path, 1)).map_err(io)?;
    let mut line = Vec::new();
    if torn {
        // Close the torn line in the same write, so the new record starts a line of
        // its own and a failure cannot leave the newline alone.
        line.push(b'\n');
    }
    serde_json::to_writer(&mut line, &record)?;
    line.push(b'\n');
    let mut size = file.metadata().map_err(io)?.len();
    if size > 0 && size + line.len() as u64 > log.max_size {
        rotate(path, log.max_files).map_err(io)?;
        file = open_private(path, true).map_err(io)?;
        size = 0;
        if line[0] == b'\n' {
            line.remove(0);
        }
    }
    if crate::faults::crash_requested("audit.partial-line") {
        // What a power cut in the middle of the write leaves: a torn line.
        let _ = file.write_all(&line[..line.len() / 2]);
        let _ = file.sync_data();
        crate::faults::die();
    }
    file.write_all(&line).map_err(io)?;
    if durable {
        file.sync_data().map_err(io)?;
        if size == 0 {
            // A new file (first record, or just rotated): its name must survive too.
            sync_dir(path).map_err(io)?;
        }
    }
    crate::faults::crash_point("audit.written");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_in(dir: &Path, max_size: u64, max_files: u32) -> AuditLogConfig {
        AuditLogConfig { path: dir.join("audit.jsonl"), max_size, max_files }
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    #[test]
    fn chain_links_each_line_to_the_previous() {
        let d = tempfile::tempdir().unwrap();
        let log = log_in(d.path(), u64::MAX, 3);
        for _ in 0..3 {
            append(&log, &mut Record::lifecycle("start", Some("c")), false).unwrap();
        }
        let l = lines(&log.path);
        let recs: Vec<Record> = l.iter().map(|x| serde_json::from_str(x).unwrap()).collect();
        assert_eq!(recs.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(recs[0].prev, GENESIS);
        assert_eq!(recs[1].prev, line_hash(l[0].as_bytes()));
        assert_eq!(recs[2].prev, line_hash(l[1].as_bytes()));
    }

    #[test]
    fn torn_line_is_closed_and_marked() {
        let d = tempfile::tempdir().unwrap();
        let log = log_in(d.path(), u64::MAX, 3);
        append(&log, &mut Record::lifecycle("start", None), false).unwrap();
        let mut f = std::fs::OpenOptions::new().append(true).open(&log.path).unwrap();
        f.write_all(b"{\"apiVersion\":\"hard").unwrap();
        append(&log, &mut Record::lifecycle("delete", None), false).unwrap();
        let l = lines(&log.path);
        assert_eq!(l.len(), 3);
        let r: Record = serde_json::from_str(&l[2]).unwrap();
        assert!(r.after_torn);
        assert_eq!(r.seq, 2);
        assert_eq!(r.prev, line_hash(b"{\"apiVersion\":\"hard"));
    }

    #[test]
    fn a_garbled_complete_line_does_not_restart_the_count() {
        let d = tempfile::tempdir().unwrap();
        let log = log_in(d.path(), u64::MAX, 3);
        for _ in 0..2 {
            append(&log, &mut Record::lifecycle("start", None), false).unwrap();
        }
        let mut f = std::fs::OpenOptions::new().append(true).open(&log.path).unwrap();
        f.write_all(b"{\"apiVersion\":\"hard\n").unwrap();
        append(&log, &mut Record::lifecycle("delete", None), false).unwrap();
        let r: Record = serde_json::from_str(lines(&log.path).last().unwrap()).unwrap();
        assert_eq!((r.seq, r.after_torn), (3, true));
        assert_eq!(r.prev, line_hash(b"{\"apiVersion\":\"hard"));
    }

    #[test]
    fn a_torn_line_alone_in_a_rotated_in_file_continues_the_count() {
        let d = tempfile::tempdir().unwrap();
        let log = log_in(d.path(), u64::MAX, 3);
        append(&log, &mut Record::lifecycle("start", None), false).unwrap();
        std::fs::rename(&log.path, rotated_path(&log.path, 1)).unwrap();
        std::fs::write(&log.path, b"{\"torn").unwrap();
        append(&log, &mut Record::lifecycle("delete", None), false).unwrap();
        let r: Record = serde_json::from_str(lines(&log.path).last().unwrap()).unwrap();
        assert_eq!((r.seq, r.after_torn), (2, true));
    }

    #[test]
    fn rotation_keeps_the_chain_and_the_file_count() {
        let d = tempfile::tempdir().unwrap();
        let log = log_in(d.path(), 2000, 2);
        for _ in 0..12 {
            append(&log, &mut Record::lifecycle("start", Some("c")), false).unwrap();
        }
        assert!(rotated_path(&log.path, 1).exists() && rotated_path(&log.path, 2).exists());
        assert!(!rotated_path(&log.path, 3).exists());
        let older = lines(&rotated_path(&log.path, 1));
        let current = lines(&log.path);
        let first: Record = serde_json::from_str(&current[0]).unwrap();
        assert_eq!(first.prev, line_hash(older.last().unwrap().as_bytes()));
        let last_old: Record = serde_json::from_str(older.last().unwrap()).unwrap();
        assert_eq!(first.seq, last_old.seq + 1);
    }

    #[test]
    fn tail_of_long_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let long = "x".repeat(200_000);
        std::fs::write(&p, format!("a\n{long}\n")).unwrap();
        let t = read_tail(&mut File::open(&p).unwrap()).unwrap();
        assert_eq!(t.last_line.as_deref(), Some(long.as_bytes()));
        std::fs::write(&p, "only\n").unwrap();
        assert_eq!(read_tail(&mut File::open(&p).unwrap()).unwrap().last_line.as_deref(), Some(&b"only"[..]));
        std::fs::write(&p, "").unwrap();
        assert_eq!(read_tail(&mut File::open(&p).unwrap()).unwrap(), Tail::default());
        std::fs::write(&p, "torn").unwrap();
        assert_eq!(read_tail(&mut File::open(&p).unwrap()).unwrap().torn.as_deref(), Some(&b"torn"[..]));
    }

    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let log = AuditLogConfig { path: d.path().join("sub/audit.jsonl"), max_size: u64::MAX, max_files: 1 };
        append(&log, &mut Record::lifecycle("start", None), true).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d.path().join("sub")), 0o700);
        assert_eq!(mode(&log.path), 0o600);
    }
}
