//! Reading the audit log back, one line at a time: across rotated files oldest first
//! (`<log>.N` … `<log>.1`, `<log>`), never holding more than one line in memory, and
//! following the log as it grows and rotates.
//!
//! The files are opened together, under a brief shared lock on the writer's
//! `<log>.lock`, and each is read only up to its length at that moment: a rotation or
//! an append during a long read can then neither shift a file under us nor hand us a
//! half-written line.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::writer::{line_hash, rotated_path, MAX_AUDIT_LINE};

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("cannot read audit log {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no audit log at {0} (nothing recorded yet, or another auditLog path)")]
    Missing(PathBuf),
}

impl ReadError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReadError + '_ {
        move |source| ReadError::Io { path: path.to_owned(), source }
    }
}

/// One line of a log file.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub path: &'a Path,
    /// 1-based, within `path`.
    pub number: u64,
    /// The line without its newline; for an oversized line, its first
    /// [`MAX_AUDIT_LINE`] bytes.
    pub bytes: &'a [u8],
    /// Ended with a newline (a line cut by a crash has none).
    pub terminated: bool,
    /// `sha256:` of the whole line, when it was longer than [`MAX_AUDIT_LINE`].
    oversized_hash: Option<&'a str>,
}

impl Line<'_> {
    /// `sha256:<hex>` of the line's exact bytes, as the next record's `prev` holds it.
    pub fn hash(&self) -> String {
        self.oversized_hash.map_or_else(|| line_hash(self.bytes), str::to_owned)
    }

    pub fn is_oversized(&self) -> bool {
        self.oversized_hash.is_some()
    }
}

/// The files of the node's log, oldest first: rotated files by descending number,
/// then the log itself. Only files that exist are listed.
pub fn rotation_set(log: &Path) -> Result<Vec<PathBuf>, ReadError> {
    let dir = log.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(base) = log.file_name().and_then(|n| n.to_str()) else { return Ok(vec![log.to_owned()]) };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ReadError::io(dir)(e)),
    };
    // The directory, not a probe of .1, .2 …: a rotation in progress leaves gaps.
    let mut numbers: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| rotation_number(&name, base))
        .collect();
    numbers.sort_unstable_by(|a, b| b.cmp(a));
    let mut files: Vec<PathBuf> = numbers.into_iter().map(|n| rotated_path(log, n)).collect();
    if log.exists() {
        files.push(log.to_owned());
    }
    Ok(files)
}

/// `n` when `name` is `<base>.<n>`.
fn rotation_number(name: &str, base: &str) -> Option<u32> {
    let digits = name.strip_prefix(base)?.strip_prefix('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Puts files named on the command line in chain order: `audit.jsonl*` expands to
/// `audit.jsonl audit.jsonl.1 audit.jsonl.2`, which must be read `.2 .1 (base)`.
/// Files of different logs keep their relative order.
pub fn chain_order(files: Vec<PathBuf>) -> Vec<PathBuf> {
    let key = |p: &Path| -> (PathBuf, u32) {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        match name.rsplit_once('.') {
            Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                (p.with_file_name(base), n.parse::<u32>().map_or(u32::MAX, |n| n.saturating_add(1)))
            }
            _ => (p.to_owned(), 0),
        }
    };
    let mut bases: Vec<PathBuf> = Vec::new();
    let mut keyed: Vec<(usize, u32, PathBuf)> = files
        .into_iter()
        .map(|p| {
            let (base, n) = key(&p);
            let group = bases.iter().position(|b| *b == base).unwrap_or_else(|| {
                bases.push(base);
                bases.len() - 1
            });
            (group, n, p)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    keyed.into_iter().map(|(_, _, p)| p).collect()
}

/// One opened file of a [`LogSet`].
#[derive(Debug)]
struct OpenFile {
    path: PathBuf,
    file: File,
    /// Bytes to read: the length when the set was opened (`None`: not a regular
    /// file, read to its end).
    len: Option<u64>,
}

/// Files opened together and read in order as one stream of lines.
#[derive(Debug)]
pub struct LogSet {
    files: Vec<OpenFile>,
    /// The node log this set came from, for `follow`.
    log: Option<PathBuf>,
}

fn open_read(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_CLOEXEC).open(path)
}

impl LogSet {
    /// The node's log and its rotated files, opened under the writer's lock.
    /// `Err(Missing)` when none exists.
    pub fn open_node(log: &Path) -> Result<LogSet, ReadError> {
        // Shared: writers (which take it exclusively) wait only while we list and open.
        let lock = open_read(&lock_path(log)).ok();
        if let Some(l) = &lock {
            let _ = l.lock_shared();
        }
        let files = rotation_set(log)?;
        if files.is_empty() {
            return Err(ReadError::Missing(log.to_owned()));
        }
        let mut set = LogSet::open(&files)?;
        set.log = Some(log.to_owned());
        drop(lock);
        Ok(set)
    }

    /// The node's log, or nothing when it does not exist yet (for `follow`).
    pub fn open_node_or_empty(log: &Path) -> Result<LogSet, ReadError> {
        match Self::open_node(log) {
            Err(ReadError::Missing(_)) => Ok(LogSet { files: Vec::new(), log: Some(log.to_owned()) }),
            other => other,
        }
    }

    /// Files named by the user, in the given order.
    pub fn open(paths: &[PathBuf]) -> Result<LogSet, ReadError> {
        let files = paths
            .iter()
            .map(|p| {
                let file = open_read(p).map_err(ReadError::io(p))?;
                let meta = file.metadata().map_err(ReadError::io(p))?;
                Ok(OpenFile { path: p.clone(), len: meta.is_file().then_some(meta.len()), file })
            })
            .collect::<Result<Vec<_>, ReadError>>()?;
        Ok(LogSet { files, log: None })
    }

    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|f| f.path.as_path())
    }

    /// A reader over every line of every file, in order.
    pub fn lines(self) -> Lines {
        Lines {
            files: self.files.into_iter(),
            log: self.log,
            current: None,
            buf: Vec::with_capacity(8 * 1024),
            oversized: None,
            last_node_file: None,
        }
    }
}

fn lock_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

struct Current {
    path: PathBuf,
    reader: BufReader<std::io::Take<File>>,
    number: u64,
    /// Where the read stopped, for `follow`.
    offset: u64,
}

/// A lending iterator over lines (`next_line`): one line buffer, reused.
pub struct Lines {
    files: std::vec::IntoIter<OpenFile>,
    log: Option<PathBuf>,
    current: Option<Current>,
    buf: Vec<u8>,
    oversized: Option<String>,
    /// The last file read (for `follow`: it continues there).
    last_node_file: Option<(PathBuf, File, u64, u64)>,
}

const READ_BUFFER: usize = 256 * 1024;

impl Lines {
    /// The next line, or `None` after the last file.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, ReadError> {
        loop {
            if self.current.is_none() {
                let Some(f) = self.files.next() else { return Ok(None) };
                let limit = f.len.unwrap_or(u64::MAX);
                let file = f.file.try_clone().map_err(ReadError::io(&f.path))?;
                self.last_node_file = Some((f.path.clone(), f.file, 0, 0));
                self.current = Some(Current {
                    path: f.path,
                    reader: BufReader::with_capacity(READ_BUFFER, file.take(limit)),
                    number: 0,
                    offset: 0,
                });
            }
            let cur = self.current.as_mut().expect("set above");
            let (read, hash) = read_line(&mut cur.reader, &mut self.buf).map_err(ReadError::io(&cur.path))?;
            if read == 0 {
                let done = self.current.take().expect("set above");
                if let Some(last) = self.last_node_file.as_mut() {
                    last.2 = done.offset;
                    last.3 = done.number;
                }
                continue;
            }
            self.oversized = hash;
            let cur = self.current.as_mut().expect("set above");
            cur.offset += read;
            cur.number += 1;
            let terminated = self.buf.last() == Some(&b'\n');
            let bytes = if terminated { &self.buf[..self.buf.len() - 1] } else { &self.buf[..] };
            return Ok(Some(Line {
                path: &cur.path,
                number: cur.number,
                bytes,
                terminated,
                oversized_hash: self.oversized.as_deref(),
            }));
        }
    }

    /// After the last line: keeps reading the node's log as it grows, across
    /// rotations (see [`Follower`]).
    pub fn follow(mut self, poll: Duration) -> Result<Follower, ReadError> {
        while self.next_line()?.is_some() {}
        let log = self.log.clone().ok_or_else(|| ReadError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other("follow needs the node's log"),
        })?;
        let current = match self.last_node_file.take() {
            Some((path, file, offset, number)) if path == log => {
                let inode = file.metadata().map_err(ReadError::io(&path))?.ino();
                Some(Tracked { path, file, inode, offset, number })
            }
            _ => None,
        };
        Ok(Follower { log, current, pending: Vec::new(), line: Vec::new(), poll })
    }
}

/// Reads one line into `buf` (with its newline, if any). Returns the bytes consumed
/// and, for a line longer than [`MAX_AUDIT_LINE`], the hash of all of it (`buf` keeps
/// only its start).
fn read_line<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<(u64, Option<String>)> {
    buf.clear();
    let cap = MAX_AUDIT_LINE as u64;
    let n = r.by_ref().take(cap + 1).read_until(b'\n', buf)?;
    if (n as u64) <= cap || buf.last() == Some(&b'\n') {
        return Ok((n as u64, None));
    }
    let mut hasher = Sha256::new();
    hasher.update(&buf[..]);
    let mut total = n as u64;
    let mut chunk = Vec::new();
    loop {
        chunk.clear();
        let m = r.by_ref().take(cap).read_until(b'\n', &mut chunk)?;
        total += m as u64;
        let done = m == 0 || chunk.last() == Some(&b'\n');
        hasher.update(chunk.strip_suffix(b"\n").unwrap_or(&chunk));
        if done {
            buf.truncate(MAX_AUDIT_LINE);
            if m > 0 {
                buf.push(b'\n');
            }
            return Ok((total, Some(format!("sha256:{:x}", hasher.finalize()))));
        }
    }
}

struct Tracked {
    /// The name the file had when it was opened.
    path: PathBuf,
    file: File,
    inode: u64,
    offset: u64,
    number: u64,
}

/// Follows `<log>` like `tail -F`: new whole lines as they are appended; when the
/// path's inode changes (rotation) the old file is read to its end and the new one
/// from its start; when the file shrinks it is read again from the start.
pub struct Follower {
    log: PathBuf,
    current: Option<Tracked>,
    /// Bytes after the last newline (a line still being written, or a torn one).
    pending: Vec<u8>,
    line: Vec<u8>,
    poll: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    None,
    /// The log appeared, or the old file had more lines: read on.
    Continue,
    Rotated,
    Truncated,
}

/// What a [`Follower`] has next.
pub enum Followed<'a> {
    Line(Line<'a>),
    /// The file was replaced or truncated; reading restarts at its start.
    Reopened {
        path: &'a Path,
        truncated: bool,
    },
}

impl Follower {
    /// Waits for and returns the next line (or a reopen notice). `keep_going` is
    /// asked between polls; `Ok(None)` once it says stop.
    pub fn next(&mut self, keep_going: &mut dyn FnMut() -> bool) -> Result<Option<Followed<'_>>, ReadError> {
        let reopened = loop {
            if let Some(at) = self.pending.iter().position(|&b| b == b'\n') {
                self.line.clear();
                self.line.extend(self.pending.drain(..=at));
                self.line.pop();
                self.current.as_mut().expect("pending bytes come from a file").number += 1;
                break None;
            }
            if self.read_more()? {
                continue;
            }
            match self.check_reopen()? {
                Change::Continue => {}
                Change::Rotated => break Some(false),
                Change::Truncated => break Some(true),
                Change::None if !keep_going() => return Ok(None),
                Change::None => std::thread::sleep(self.poll),
            }
        };
        let cur = self.current.as_ref().expect("a line or a reopen means a file");
        Ok(Some(match reopened {
            Some(truncated) => Followed::Reopened { path: &cur.path, truncated },
            None => Followed::Line(Line {
                path: &cur.path,
                number: cur.number,
                bytes: &self.line,
                terminated: true,
                oversized_hash: None,
            }),
        }))
    }

    /// Appends whatever the current file has past our offset; whether it had any.
    fn read_more(&mut self) -> Result<bool, ReadError> {
        let Some(cur) = self.current.as_mut() else { return Ok(false) };
        cur.file.seek(SeekFrom::Start(cur.offset)).map_err(ReadError::io(&cur.path))?;
        let before = self.pending.len();
        // A bounded read: a writer far ahead of us is caught up over several calls.
        let n =
            (&cur.file).take(READ_BUFFER as u64).read_to_end(&mut self.pending).map_err(ReadError::io(&self.log))?;
        cur.offset += n as u64;
        if self.pending.len() - before > 0 && self.pending.len() > MAX_AUDIT_LINE && !self.pending.contains(&b'\n') {
            // A runaway line: drop it rather than grow without bound.
            self.pending.clear();
        }
        Ok(n > 0)
    }

    /// Whether the log was rotated (the path names another file) or shrank. After a
    /// rotation the old file is read to its end, then each newer file in turn, so
    /// several rotations between two polls lose nothing.
    fn check_reopen(&mut self) -> Result<Change, ReadError> {
        let meta = match std::fs::metadata(&self.log) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(ReadError::io(&self.log)(e)),
        };
        match (self.current.as_ref().map(|c| (c.inode, c.offset)), &meta) {
            (Some((inode, offset)), Some(m)) if inode == m.ino() => {
                if m.len() >= offset {
                    return Ok(Change::None);
                }
                let log = self.log.clone();
                return Ok(if self.open(&log, m.ino())? { Change::Truncated } else { Change::None });
            }
            (None, None) => return Ok(Change::None),
            // The writer finished with the old file just before renaming it: those
            // lines come first.
            (Some(_), _) if self.read_more()? => return Ok(Change::Continue),
            _ => {}
        }
        let mut chain = Vec::new();
        for path in rotation_set(&self.log)? {
            if let Ok(m) = std::fs::metadata(&path) {
                chain.push((path, m.ino()));
            }
        }
        let next = match &self.current {
            Some(cur) => match chain.iter().position(|(_, ino)| *ino == cur.inode) {
                Some(i) => chain.get(i + 1),
                // Ours was rotated away: every file left is newer.
                None => chain.first(),
            },
            None => chain.first(),
        };
        // No next file: the writer is between renaming the log and creating it anew.
        let Some((path, inode)) = next.cloned() else { return Ok(Change::None) };
        let had_file = self.current.is_some();
        Ok(match self.open(&path, inode)? {
            true if had_file => Change::Rotated,
            true => Change::Continue,
            false => Change::None,
        })
    }

    /// Switches to `path` from its start if it still is `inode` (a rotation may have
    /// moved it since it was listed; then the next poll looks again).
    fn open(&mut self, path: &Path, inode: u64) -> Result<bool, ReadError> {
        let file = match open_read(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(ReadError::io(path)(e)),
        };
        if file.metadata().map_err(ReadError::io(path))?.ino() != inode {
            return Ok(false);
        }
        self.current = Some(Tracked { path: path.to_owned(), file, inode, offset: 0, number: 0 });
        self.pending.clear();
        Ok(true)
    }
}

/// A JSON string field that borrows from the line when it has no escapes (most
/// do), so filtering millions of records allocates little.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text<'a>(pub std::borrow::Cow<'a, str>);

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(std::borrow::Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn collect(set: LogSet) -> Vec<(String, u64, String, bool)> {
        let mut lines = set.lines();
        let mut out = Vec::new();
        while let Some(l) = lines.next_line().unwrap() {
            let name = l.path.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, l.number, String::from_utf8_lossy(l.bytes).into_owned(), l.terminated));
        }
        out
    }

    #[test]
    fn rotated_files_oldest_first() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("audit.jsonl");
        for (name, text) in [("audit.jsonl.2", "a\n"), ("audit.jsonl.10", "z\n"), ("audit.jsonl.1", "b\nc\n")] {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        std::fs::write(&log, "d\ntorn").unwrap();
        std::fs::write(d.path().join("audit.jsonl.lock"), "").unwrap();
        std::fs::write(d.path().join("audit.jsonl.bak"), "x\n").unwrap();
        let names: Vec<String> =
            rotation_set(&log).unwrap().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["audit.jsonl.10", "audit.jsonl.2", "audit.jsonl.1", "audit.jsonl"]);
        let lines = collect(LogSet::open_node(&log).unwrap());
        let texts: Vec<&str> = lines.iter().map(|l| l.2.as_str()).collect();
        assert_eq!(texts, ["z", "a", "b", "c", "d", "torn"]);
        assert_eq!((lines[3].1, lines[5].1), (2, 2), "numbers are per file");
        assert!(lines[4].3 && !lines[5].3, "the torn tail has no newline");
    }

    #[test]
    fn missing_log() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(LogSet::open_node(&d.path().join("none.jsonl")), Err(ReadError::Missing(_))));
    }

    #[test]
    fn shell_glob_order_is_chain_order() {
        let p = |s: &str| PathBuf::from(s);
        let got = chain_order(vec![p("/l/a.jsonl"), p("/l/a.jsonl.1"), p("/l/a.jsonl.10"), p("/l/a.jsonl.2"), p("/x")]);
        assert_eq!(got, [p("/l/a.jsonl.10"), p("/l/a.jsonl.2"), p("/l/a.jsonl.1"), p("/l/a.jsonl"), p("/x")]);
    }

    #[test]
    fn reads_only_what_was_there_when_opened() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("audit.jsonl");
        std::fs::write(&log, "one\n").unwrap();
        let set = LogSet::open_node(&log).unwrap();
        std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(b"two\n").unwrap();
        assert_eq!(collect(set).len(), 1);
    }

    #[test]
    fn oversized_line_is_hashed_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big");
        let big = vec![b'x'; MAX_AUDIT_LINE + 10];
        let mut text = big.clone();
        text.extend_from_slice(b"\nnext\n");
        std::fs::write(&p, &text).unwrap();
        let mut lines = LogSet::open(std::slice::from_ref(&p)).unwrap().lines();
        let l = lines.next_line().unwrap().unwrap();
        assert!(l.is_oversized() && l.terminated);
        assert_eq!(l.bytes.len(), MAX_AUDIT_LINE);
        assert_eq!(l.hash(), line_hash(&big));
        assert_eq!(lines.next_line().unwrap().unwrap().bytes, b"next");
    }

    #[test]
    fn follow_across_rotation_and_truncation() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("audit.jsonl");
        std::fs::write(&log, "1\n").unwrap();
        let mut f = LogSet::open_node(&log).unwrap().lines().follow(Duration::from_millis(5)).unwrap();
        let append = |s: &str| std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(s.as_bytes());
        let next = |f: &mut Follower| -> String {
            let mut polls = 0;
            match f
                .next(&mut || {
                    polls += 1;
                    polls < 400
                })
                .unwrap()
            {
                Some(Followed::Line(l)) => String::from_utf8(l.bytes.to_vec()).unwrap(),
                Some(Followed::Reopened { truncated, .. }) => format!("reopened truncated={truncated}"),
                None => "timeout".to_owned(),
            }
        };
        append("2\n3").unwrap();
        assert_eq!(next(&mut f), "2");
        append("\n").unwrap();
        assert_eq!(next(&mut f), "3", "a line is complete at its newline");
        // Rotation: a last line in the old file, then the rename, then the new file.
        append("4\n").unwrap();
        std::fs::rename(&log, rotated_path(&log, 1)).unwrap();
        std::fs::write(&log, "5\n").unwrap();
        assert_eq!(next(&mut f), "4");
        assert_eq!(next(&mut f), "reopened truncated=false");
        assert_eq!(next(&mut f), "5");
        std::fs::write(&log, "").unwrap();
        assert_eq!(next(&mut f), "reopened truncated=true");
        append("6\n").unwrap();
        assert_eq!(next(&mut f), "6");
        assert_eq!(next(&mut f), "timeout");
    }
}
