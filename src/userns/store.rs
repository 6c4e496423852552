//! The allocation table on disk: `stateDir/userns/allocations.json`, changed only
//! under an exclusive `flock` on `stateDir/userns/lock`, replaced by temp file +
//! fsync + rename + directory fsync. Readers (a container joining its pod, a
//! `delete` looking for its block) read without the lock: a rename is atomic.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::table::{valid_container_id, Allocation, Table, TableError};
use super::RangeConfig;
use crate::fsutil::{self, ReadError};

pub const TABLE_FILE: &str = "allocations.json";
const LOCK_FILE: &str = "lock";
const TEMP_FILE: &str = ".allocations.json.tmp";
/// One empty file per owner that may hold a block: lets `delete` of every other
/// container (all app containers) skip the table with one `stat`. A hint only: the
/// table is the truth, and a missing hint delays a release to the next reclaim.
const OWNERS_DIR: &str = "owners";
/// 4096 pods × ~250 bytes; anything near this is not a table hardrun wrote.
const MAX_TABLE_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("user namespace state {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("user namespace state {path} is unsafe: {why}")]
    Unsafe { path: PathBuf, why: String },
    #[error("user namespace state {path}: {source}; refusing to allocate from a table hardrun cannot trust")]
    Table { path: PathBuf, source: TableError },
    #[error(
        "no free block of {ids_per_pod} IDs left in the user namespace range {start}+{size} ({count} allocated); \
         delete pods or widen userNamespaces.hostRange"
    )]
    Exhausted { start: u32, size: u32, ids_per_pod: u32, count: usize },
    #[error("{0:?} is not a container id")]
    BadOwner(String),
}

/// Who asks for a block.
#[derive(Debug, Clone)]
pub struct AllocRequest<'a> {
    pub owner: &'a str,
    pub root: &'a Path,
    pub now: String,
}

/// The outcome of an allocation.
#[derive(Debug, Clone)]
pub struct Allocated {
    pub allocation: Allocation,
    /// The owner already held this block (a retried create): nothing was written.
    pub reused: bool,
    /// Allocations found stale and removed on the way (their owner gone from runc's
    /// state without a delete hardrun saw).
    pub reclaimed: Vec<Allocation>,
    /// Released allocations whose container is gone, dropped on the way.
    pub dropped: Vec<Allocation>,
}

/// `stateDir/userns`.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(state_dir: &Path) -> Self {
        Store { dir: state_dir.join("userns") }
    }

    /// The store the node config names: `userNamespaces.stateDir`, else
    /// `<stateDir>/userns`.
    pub fn for_node(config: &crate::config::NodeConfig) -> Self {
        match &config.user_namespaces.state_dir {
            Some(dir) => Store { dir: dir.clone() },
            None => Store::new(&config.state_dir),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn table_path(&self) -> PathBuf {
        self.dir.join(TABLE_FILE)
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
        let path = path.to_owned();
        move |source| StoreError::Io { path: path.clone(), source }
    }

    /// Creates the directory (0700) when missing; refuses one that is a symlink, not
    /// owned by us, or writable by others: whoever can write it can hand two pods
    /// the same IDs.
    fn ensure_dir(&self) -> Result<(), StoreError> {
        if let Some(parent) = self.dir.parent() {
            std::fs::create_dir_all(parent).map_err(self.io(parent))?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(self.io(&self.dir)(e)),
        }
        let meta = std::fs::symlink_metadata(&self.dir).map_err(self.io(&self.dir))?;
        let unsafe_dir = |why: &str| Err(StoreError::Unsafe { path: self.dir.clone(), why: why.to_owned() });
        if meta.file_type().is_symlink() {
            return unsafe_dir("it is a symlink");
        }
        if !meta.is_dir() {
            return unsafe_dir("it is not a directory");
        }
        if meta.uid() != nix::unistd::geteuid().as_raw() {
            return unsafe_dir("it is not owned by hardrun's user");
        }
        if meta.mode() & 0o022 != 0 {
            return unsafe_dir("it is writable by group or others");
        }
        Ok(())
    }

    /// The exclusive lock, held until the returned file is dropped (and released by
    /// the kernel if the process dies).
    fn lock(&self) -> Result<std::fs::File, StoreError> {
        self.ensure_dir()?;
        let path = self.dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| self.open_error(&path, e))?;
        if !file.metadata().map_err(self.io(&path))?.is_file() {
            return Err(StoreError::Unsafe { path, why: "it is not a regular file".into() });
        }
        loop {
            // SAFETY: flock on a descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(file);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(self.io(&path)(e));
            }
        }
    }

    fn open_error(&self, path: &Path, e: std::io::Error) -> StoreError {
        if e.raw_os_error() == Some(libc::ELOOP) {
            StoreError::Unsafe { path: path.to_owned(), why: "it is a symlink".into() }
        } else {
            self.io(path)(e)
        }
    }

    /// The table as on disk; no file means an empty table.
    pub fn read(&self) -> Result<Table, StoreError> {
        let path = self.table_path();
        let file = match fsutil::open_regular(&path, true) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Table::default()),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                return Err(StoreError::Unsafe { path, why: "it is not a regular file".into() })
            }
            Err(e) => return Err(self.open_error(&path, e)),
        };
        let bytes = match fsutil::read_capped_from(file, MAX_TABLE_BYTES) {
            Ok(b) => b,
            Err(ReadError::TooLarge) => {
                return Err(StoreError::Table {
                    path,
                    source: TableError::Parse(format!("larger than {MAX_TABLE_BYTES} bytes")),
                })
            }
            Err(ReadError::Io(e)) => return Err(self.io(&path)(e)),
        };
        Table::parse(&bytes).map_err(|source| StoreError::Table { path, source })
    }

    /// Replaces the table: a crash leaves the old one or the new one, never a mix.
    fn write(&self, table: &Table) -> Result<(), StoreError> {
        let tmp = self.dir.join(TEMP_FILE);
        let bytes = serde_json::to_vec(table).map_err(|e| self.io(&tmp)(std::io::Error::other(e)))?;
        // Only a lock holder writes, so a leftover temp file is a crashed writer's.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io(&tmp)(e)),
        }
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            crate::faults::crash_point("userns.before-rename");
            std::fs::rename(&tmp, self.table_path())?;
            crate::faults::crash_point("userns.after-rename");
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(self.io(&self.table_path()))
    }

    /// The allocation `owner` holds, read without the lock.
    pub fn lookup(&self, owner: &str) -> Result<Option<Allocation>, StoreError> {
        Ok(self.read()?.find(owner).cloned())
    }

    /// A block for `req.owner`: the one it holds, or the first free one of `range`.
    /// Every allocation `in_use` says is not is removed on the way.
    pub fn allocate(
        &self,
        req: &AllocRequest<'_>,
        range: &RangeConfig,
        in_use: &dyn Fn(&Allocation) -> bool,
    ) -> Result<Allocated, StoreError> {
        if !valid_container_id(req.owner) {
            return Err(StoreError::BadOwner(req.owner.to_owned()));
        }
        let _lock = self.lock()?;
        let mut table = self.read()?;
        if let Some(existing) = table.find(req.owner).filter(|a| !a.released && in_use(a)) {
            return Ok(Allocated { allocation: existing.clone(), reused: true, reclaimed: vec![], dropped: vec![] });
        }
        let (kept, stale): (Vec<Allocation>, Vec<Allocation>) =
            table.allocations.drain(..).partition(|a| a.owner != req.owner && in_use(a));
        table.allocations = kept;
        let (dropped, reclaimed): (Vec<Allocation>, Vec<Allocation>) = stale.into_iter().partition(|a| a.released);
        let Some(host_start) = table.first_free(range.blocks(), range.ids_per_pod) else {
            if !reclaimed.is_empty() || !dropped.is_empty() {
                self.write(&table)?;
                self.unmark_all(reclaimed.iter().chain(&dropped));
            }
            return Err(StoreError::Exhausted {
                start: range.host_range.start,
                size: range.host_range.size,
                ids_per_pod: range.ids_per_pod,
                count: table.allocations.len(),
            });
        };
        let pid = std::process::id();
        let allocation = Allocation {
            owner: req.owner.to_owned(),
            root: req.root.to_owned(),
            host_start,
            size: range.ids_per_pod,
            pid,
            pid_start: process_start_time(pid).unwrap_or(0),
            created: req.now.clone(),
            released: false,
        };
        table.allocations.push(allocation.clone());
        self.mark(req.owner)?;
        crate::faults::crash_point("userns.before-write");
        self.write(&table)?;
        self.unmark_all(reclaimed.iter().chain(&dropped).filter(|a| a.owner != req.owner));
        Ok(Allocated { allocation, reused: false, reclaimed, dropped })
    }

    /// Removes `owner`'s allocation at once: its create was refused after the block
    /// was taken, so no container ever used it.
    pub fn forget(&self, owner: &str) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let mut table = self.read()?;
        let before = table.allocations.len();
        table.allocations.retain(|a| a.owner != owner);
        if table.allocations.len() != before {
            self.write(&table)?;
        }
        self.unmark(owner);
        Ok(())
    }

    fn marker(&self, owner: &str) -> PathBuf {
        self.dir.join(OWNERS_DIR).join(owner)
    }

    /// Written before the table names `owner`, so a crash leaves at worst a hint
    /// without an entry.
    fn mark(&self, owner: &str) -> Result<(), StoreError> {
        let dir = self.dir.join(OWNERS_DIR);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(self.io(&dir)(e)),
        }
        let path = self.marker(owner);
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .map(drop)
            .map_err(|e| self.open_error(&path, e))
    }

    fn unmark(&self, owner: &str) {
        let _ = std::fs::remove_file(self.marker(owner));
    }

    fn unmark_all<'a>(&self, gone: impl Iterator<Item = &'a Allocation>) {
        for a in gone {
            self.unmark(&a.owner);
        }
    }

    /// Marks `owner`'s block released (its `runc delete` is under way); the block is
    /// free once runc has removed the container. Cheap when `owner` holds nothing:
    /// one `stat` of its hint file, no table read, no lock.
    pub fn release(&self, owner: &str) -> Result<Option<Allocation>, StoreError> {
        if !valid_container_id(owner) || std::fs::symlink_metadata(self.marker(owner)).is_err() {
            return Ok(None);
        }
        let holds = |t: &Table| t.find(owner).is_some_and(|a| !a.released);
        if !holds(&self.read()?) {
            self.unmark(owner);
            return Ok(None);
        }
        let _lock = self.lock()?;
        let mut table = self.read()?;
        let Some(entry) = table.allocations.iter_mut().find(|a| a.owner == owner && !a.released) else {
            return Ok(None);
        };
        entry.released = true;
        let released = entry.clone();
        self.write(&table)?;
        self.unmark(owner);
        Ok(Some(released))
    }
}

/// Whether an allocation is still in use on this host: its owner is in runc's
/// state, its create is still running, or some live process still runs as one of
/// its host IDs (a pod's app container outliving a sandbox deleted first).
#[derive(Debug, Default)]
pub struct HostLiveness {
    processes: std::cell::OnceCell<Vec<(u32, u32)>>,
}

impl HostLiveness {
    pub fn in_use(&self, a: &Allocation) -> bool {
        if a.root.join(&a.owner).exists() {
            return true;
        }
        if a.pid != 0 && process_start_time(a.pid).is_some_and(|t| t == a.pid_start) {
            return true;
        }
        self.processes.get_or_init(processes).iter().any(|&(pid, uid)| a.contains(uid as u64) && !is_zombie(pid))
    }
}

/// (pid, owner) of every /proc/<pid>: the owner is the process's effective uid.
fn processes() -> Vec<(u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(Result::ok)
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((pid, e.metadata().ok()?.uid()))
        })
        .collect()
}

/// A zombie holds no namespace and no files, only its exit status; a parent that
/// is slow to reap (or a pid 1 that never does) must not pin a block.
fn is_zombie(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return true };
    let state = stat.rfind(')').and_then(|i| stat[i + 1..].split_whitespace().next());
    matches!(state, Some("Z" | "X") | None)
}

/// Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::userns::HostRange;

    fn range(blocks: u32) -> RangeConfig {
        RangeConfig {
            host_range: HostRange { start: 1 << 30, size: blocks * 65536 },
            ids_per_pod: 65536,
            ..RangeConfig::default()
        }
    }

    fn req<'a>(owner: &'a str, root: &'a Path) -> AllocRequest<'a> {
        AllocRequest { owner, root, now: "now".into() }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(&d.path().join("state"));
        (d, s)
    }

    #[test]
    fn allocate_disjoint_reuse_exhaust_release_reclaim() {
        let (d, s) = store();
        let root = d.path().join("root");
        let live = |_: &Allocation| true;
        let a = s.allocate(&req("a", &root), &range(2), &live).unwrap();
        let b = s.allocate(&req("b", &root), &range(2), &live).unwrap();
        assert_eq!(a.allocation.host_start, 1 << 30);
        assert_eq!(b.allocation.host_start, (1 << 30) + 65536);
        let again = s.allocate(&req("a", &root), &range(2), &live).unwrap();
        assert!(again.reused && again.allocation == a.allocation);
        let e = s.allocate(&req("c", &root), &range(2), &live).unwrap_err();
        assert!(matches!(e, StoreError::Exhausted { count: 2, .. }), "{e}");
        assert!(e.to_string().contains("no free block"), "{e}");
        assert!(s.release("a").unwrap().is_some());
        assert!(s.release("a").unwrap().is_none(), "second release is a no-op");
        assert!(s.release("zzz").unwrap().is_none());
        assert!(s.dir().join("owners/b").exists() && !s.dir().join("owners/a").exists(), "hints follow the table");
        assert!(s.lookup("a").unwrap().unwrap().released);
        // "a" released and gone, "b" gone without a delete: dropped and reclaimed.
        let only_c = |x: &Allocation| x.owner == "c";
        let c = s.allocate(&req("c", &root), &range(2), &only_c).unwrap();
        assert_eq!(c.allocation.host_start, 1 << 30);
        assert_eq!(c.dropped.iter().map(|x| x.owner.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(c.reclaimed.iter().map(|x| x.owner.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(s.read().unwrap().allocations.len(), 1);
        assert!(!s.dir().join("owners/b").exists(), "reclaimed owner's hint removed");
        assert!(s.allocate(&req("../x", &root), &range(2), &live).is_err());
    }

    #[test]
    fn host_liveness_uses_runc_state_and_creator() {
        let d = tempfile::tempdir().unwrap();
        let mut a = crate::userns::table::tests_support::alloc("gone", 1 << 30);
        a.root = d.path().to_owned();
        a.pid = 0;
        assert!(!HostLiveness::default().in_use(&a));
        std::fs::create_dir(d.path().join("gone")).unwrap();
        assert!(HostLiveness::default().in_use(&a), "runc state dir exists");
        let mut me = a.clone();
        me.owner = "other".into();
        me.pid = std::process::id();
        me.pid_start = process_start_time(me.pid).unwrap();
        assert!(HostLiveness::default().in_use(&me), "creator alive");
        me.pid_start += 1;
        assert!(!HostLiveness::default().in_use(&me), "pid reused by another process");
    }

    #[test]
    fn hostile_state_fails_closed() {
        let live = |_: &Allocation| true;
        let (d, s) = store();
        let root = d.path().join("root");
        s.allocate(&req("a", &root), &range(4), &live).unwrap();
        let table = s.table_path();
        for garbage in [&b"garbage"[..], b"{\"version\":1,\"allocations\":[{\"owner\":\"a\""] {
            std::fs::write(&table, garbage).unwrap();
            let e = s.allocate(&req("b", &root), &range(4), &live).unwrap_err();
            assert!(matches!(e, StoreError::Table { .. }), "{e}");
            assert!(s.release("a").is_err());
        }
        std::fs::remove_file(&table).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &table).unwrap();
        let e = s.allocate(&req("b", &root), &range(4), &live).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
        std::fs::remove_file(&table).unwrap();
        std::fs::create_dir(&table).unwrap();
        assert!(matches!(s.lookup("a"), Err(StoreError::Unsafe { .. })));
        std::fs::remove_dir(&table).unwrap();
        // A world-writable or symlinked state directory.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(s.dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = s.allocate(&req("b", &root), &range(4), &live).unwrap_err();
        assert!(e.to_string().contains("writable by group or others"), "{e}");
        let (d2, s2) = store();
        std::fs::create_dir_all(d2.path().join("state")).unwrap();
        std::os::unix::fs::symlink(d.path(), s2.dir()).unwrap();
        let e = s2.allocate(&req("b", &root), &range(4), &live).unwrap_err();
        assert!(e.to_string().contains("symlink"), "{e}");
    }

    #[test]
    fn leftover_temp_file_is_ignored_and_replaced() {
        let live = |_: &Allocation| true;
        let (d, s) = store();
        let root = d.path().join("root");
        s.allocate(&req("a", &root), &range(4), &live).unwrap();
        std::fs::write(s.dir().join(TEMP_FILE), b"half a tab").unwrap();
        assert_eq!(s.lookup("a").unwrap().unwrap().host_start, 1 << 30);
        s.allocate(&req("b", &root), &range(4), &live).unwrap();
        assert!(!s.dir().join(TEMP_FILE).exists());
        assert_eq!(s.read().unwrap().allocations.len(), 2);
    }

    #[test]
    fn concurrent_allocations_never_share_a_block() {
        let (d, s) = store();
        let root = d.path().join("root");
        let starts: Vec<u32> = std::thread::scope(|scope| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let (s, root) = (&s, &root);
                    scope.spawn(move || {
                        let owner = format!("c{i}");
                        s.allocate(&req(&owner, root), &range(16), &|_| true).unwrap().allocation.host_start
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let unique: std::collections::BTreeSet<_> = starts.iter().collect();
        assert_eq!(unique.len(), 8);
        assert_eq!(s.read().unwrap().allocations.len(), 8);
    }
}
