//! Rootfs ownership for a container in a user namespace: the `chown` strategy's
//! walk, the traversal check every strategy needs, and the `idmap` probe.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Records on the rootfs directory itself which block its ownership is shifted to,
/// so a rootfs is walked once per block. `trusted.*` is invisible to (and cannot be
/// set from) any user namespace but the host's.
pub const SHIFT_XATTR: &str = "trusted.hardrun.idshift";

#[derive(Debug, Error)]
pub enum RootfsError {
    #[error("rootfs {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} is not searchable by others (mode {mode:04o}): the container's root, host uid {uid}, \
         could not reach its rootfs; make the bundle's directories 0711"
    )]
    NotTraversable { path: PathBuf, mode: u32, uid: u32 },
    #[error("rootfs {0} is a symlink")]
    Symlink(PathBuf),
}

/// What a chown walk did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShiftReport {
    /// The rootfs was already shifted to this block (recorded): nothing walked.
    pub already: bool,
    /// The block it was shifted from (0 when it was the image's own IDs).
    pub from: u32,
    pub entries: u64,
    pub changed: u64,
}

/// Every directory from `/` down to `rootfs` must be searchable by the mapped root
/// (host uid and gid `host_id`, no other rights): runc mounts the rootfs from inside
/// the user namespace. `skip` is left out of the check (the bundle directory, which
/// `open_bundle` fixes after a block is allocated). Fails naming the first directory
/// that is not.
pub fn check_traversable(rootfs: &Path, host_id: u32, skip: Option<&Path>) -> Result<(), RootfsError> {
    let mut path = PathBuf::from("/");
    for part in rootfs.components().skip(1) {
        path.push(part);
        if Some(path.as_path()) == skip {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|source| RootfsError::Io { path: path.clone(), source })?;
        let mode = meta.mode() & 0o7777;
        let searchable = mode & 0o001 != 0
            || (meta.uid() == host_id && mode & 0o100 != 0)
            || (meta.gid() == host_id && mode & 0o010 != 0);
        if meta.is_dir() && !searchable {
            return Err(RootfsError::NotTraversable { path, mode, uid: host_id });
        }
    }
    Ok(())
}

/// What containerd itself does to a bundle for a user namespace it knows of: the
/// bundle directory (0700, root's) gets the mapped root's group and group search
/// (0710). hardrun adds the user namespace after containerd made the bundle, so it
/// makes the same change. Only a real directory owned by hardrun's user is changed.
/// Returns the new mode when it changed anything.
pub fn open_bundle(bundle: &Path, host_gid: u32) -> Result<Option<u32>, RootfsError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(bundle).map_err(io(bundle))?;
    let mode = meta.mode() & 0o7777;
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() || mode & 0o001 != 0 {
        return Ok(None);
    }
    if meta.gid() == host_gid && mode & 0o010 != 0 {
        return Ok(None);
    }
    let dir = open_dir_at(libc::AT_FDCWD, &cstr(bundle.as_os_str().as_bytes())).map_err(io(bundle))?;
    std::os::unix::fs::fchown(&dir, None, Some(host_gid)).map_err(io(bundle))?;
    let new = (mode & !0o070) | 0o010;
    let file = std::fs::File::from(dir);
    file.set_permissions(std::fs::Permissions::from_mode(new)).map_err(io(bundle))?;
    Ok(Some(new))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> RootfsError + '_ {
    move |source| RootfsError::Io { path: path.to_owned(), source }
}

fn cstr(name: &[u8]) -> CString {
    // Directory entry names never hold NUL.
    CString::new(name).unwrap_or_default()
}

/// Maps an ID shifted to block `from` (0: unshifted) onto block `to`; IDs outside
/// the block are left as they are (they show as `nobody` inside either way).
fn shift(id: u32, from: u32, to: u32, size: u32) -> u32 {
    match id.checked_sub(from) {
        Some(offset) if offset < size => to + offset,
        _ => id,
    }
}

/// The block `rootfs` is recorded as shifted to (`None`: not shifted).
pub fn recorded_shift(rootfs_fd: &OwnedFd) -> Option<(u32, u32)> {
    let name = cstr(SHIFT_XATTR.as_bytes());
    let mut buf = [0u8; 64];
    // SAFETY: fgetxattr writes at most buf.len() bytes into our buffer.
    let n = unsafe { libc::fgetxattr(rootfs_fd.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let text = std::str::from_utf8(buf.get(..usize::try_from(n).ok()?)?).ok()?;
    let (start, size) = text.split_once(':')?;
    Some((start.parse().ok()?, size.parse().ok()?))
}

fn record_shift(rootfs_fd: &OwnedFd, start: u32, size: u32) -> std::io::Result<()> {
    let name = cstr(SHIFT_XATTR.as_bytes());
    let value = format!("{start}:{size}");
    // SAFETY: name and value outlive the call.
    let r = unsafe { libc::fsetxattr(rootfs_fd.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn open_dir_at(dirfd: libc::c_int, name: &CStr) -> std::io::Result<OwnedFd> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: openat with a valid dirfd and a NUL-terminated name.
    let fd = unsafe { libc::openat(dirfd, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn stat_at(dirfd: libc::c_int, name: &CStr) -> std::io::Result<libc::stat> {
    // SAFETY: zeroed stat is a valid out-buffer; fstatat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatat(dirfd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st)
}

/// Shifts the ownership of every file under `rootfs` (never following a symlink,
/// never leaving its filesystem) into block `to`+`size`, unless it is recorded as
/// already there. Set-ID bits, which the kernel clears on chown, are put back.
pub fn chown_rootfs(rootfs: &Path, to: u32, size: u32) -> Result<ShiftReport, RootfsError> {
    let root_c = cstr(rootfs.as_os_str().as_bytes());
    let root = open_dir_at(libc::AT_FDCWD, &root_c).map_err(|e| {
        if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
            && std::fs::symlink_metadata(rootfs).is_ok_and(|m| m.file_type().is_symlink())
        {
            RootfsError::Symlink(rootfs.to_owned())
        } else {
            io(rootfs)(e)
        }
    })?;
    let from = match recorded_shift(&root) {
        Some((start, recorded)) if start == to && recorded == size => {
            return Ok(ShiftReport { already: true, from: to, ..Default::default() })
        }
        Some((start, _)) => start,
        None => 0,
    };
    let dot = cstr(b".");
    let st = stat_at(root.as_raw_fd(), &dot).map_err(io(rootfs))?;
    let mut walk = Walk { dev: st.st_dev, from, to, size, seen: HashSet::new(), report: ShiftReport::default() };
    walk.report.from = from;
    walk.entry(root.as_raw_fd(), &dot, &st, rootfs)?;
    walk.dir(&root, rootfs)?;
    record_shift(&root, to, size).map_err(io(rootfs))?;
    Ok(walk.report)
}

struct Walk {
    dev: libc::dev_t,
    from: u32,
    to: u32,
    size: u32,
    /// Hard-linked files already shifted (a second visit would shift them twice).
    seen: HashSet<libc::ino_t>,
    report: ShiftReport,
}

impl Walk {
    fn dir(&mut self, dir: &OwnedFd, path: &Path) -> Result<(), RootfsError> {
        // Listing through /proc/self/fd keeps to the directory we opened.
        let listing = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
        for entry in std::fs::read_dir(&listing).map_err(io(path))? {
            let entry = entry.map_err(io(path))?;
            let name = cstr(entry.file_name().as_bytes());
            let child = path.join(entry.file_name());
            let st = stat_at(dir.as_raw_fd(), &name).map_err(io(&child))?;
            if st.st_dev != self.dev {
                continue;
            }
            self.entry(dir.as_raw_fd(), &name, &st, &child)?;
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                let sub = open_dir_at(dir.as_raw_fd(), &name).map_err(io(&child))?;
                self.dir(&sub, &child)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, dirfd: libc::c_int, name: &CStr, st: &libc::stat, path: &Path) -> Result<(), RootfsError> {
        self.report.entries += 1;
        let kind = st.st_mode & libc::S_IFMT;
        if st.st_nlink > 1 && kind != libc::S_IFDIR && !self.seen.insert(st.st_ino) {
            return Ok(());
        }
        let (uid, gid) =
            (shift(st.st_uid, self.from, self.to, self.size), shift(st.st_gid, self.from, self.to, self.size));
        if (uid, gid) == (st.st_uid, st.st_gid) {
            return Ok(());
        }
        // SAFETY: fchownat on our dirfd and name, not following a final symlink.
        if unsafe { libc::fchownat(dirfd, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            return Err(io(path)(std::io::Error::last_os_error()));
        }
        self.report.changed += 1;
        let setid = st.st_mode & (libc::S_ISUID | libc::S_ISGID);
        if kind == libc::S_IFREG && setid != 0 {
            // fchmodat cannot refuse a symlink; the entry is a regular file we just
            // stat'ed without following, and no container runs in this rootfs yet.
            // SAFETY: as above.
            if unsafe { libc::fchmodat(dirfd, name.as_ptr(), st.st_mode & 0o7777, 0) } != 0 {
                return Err(io(path)(std::io::Error::last_os_error()));
            }
        }
        Ok(())
    }
}

/// Whether the runtime supports idmapped mounts, from its `features` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdmapSupport {
    Supported,
    /// Why not, naming the runtime's version.
    Unsupported(String),
}

/// Asks `runc features` (runc ≥ 1.2 reports `linux.mountExtensions.idmap.enabled`;
/// 1.1 has the subcommand without that field; older ones lack the subcommand).
pub fn probe_idmap(runc: &Path) -> IdmapSupport {
    let version = std::process::Command::new(runc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| format!("{} (version unknown)", runc.display()));
    let out = match std::process::Command::new(runc).arg("features").stderr(std::process::Stdio::null()).output() {
        Ok(o) if o.status.success() => o.stdout,
        _ => return IdmapSupport::Unsupported(format!("{version} has no `features` subcommand")),
    };
    let features: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
    match features.pointer("/linux/mountExtensions/idmap/enabled") {
        Some(serde_json::Value::Bool(true)) => IdmapSupport::Supported,
        _ => IdmapSupport::Unsupported(format!("{version} does not report idmapped mount support in `runc features`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn shift_maps_only_the_block() {
        assert_eq!(shift(0, 0, 1 << 30, 65536), 1 << 30);
        assert_eq!(shift(65535, 0, 1 << 30, 65536), (1 << 30) + 65535);
        assert_eq!(shift(65536, 0, 1 << 30, 65536), 65536);
        assert_eq!(shift((1 << 30) + 5, 1 << 30, 1 << 31, 65536), (1 << 31) + 5);
    }

    #[test]
    fn chown_walk_shifts_once_and_never_follows_symlinks() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::write(&outside, b"x").unwrap();
        let rootfs = d.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc/sub")).unwrap();
        std::fs::write(rootfs.join("etc/passwd"), b"root").unwrap();
        std::fs::write(rootfs.join("suid"), b"#!").unwrap();
        std::fs::set_permissions(rootfs.join("suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
        std::fs::hard_link(rootfs.join("etc/passwd"), rootfs.join("etc/passwd-link")).unwrap();
        std::os::unix::fs::symlink(&outside, rootfs.join("escape")).unwrap();
        std::os::unix::fs::chown(rootfs.join("etc/sub"), Some(1000), Some(70000)).unwrap();
        let base = 1u32 << 30;
        let r = chown_rootfs(&rootfs, base, 65536).unwrap();
        assert!(!r.already && r.changed >= 6, "{r:?}");
        let uid = |p: &str| std::fs::symlink_metadata(rootfs.join(p)).unwrap().uid();
        assert_eq!(uid(""), base);
        assert_eq!(uid("etc/passwd"), base);
        assert_eq!(uid("etc/sub"), base + 1000);
        assert_eq!(std::fs::metadata(rootfs.join("etc/sub")).unwrap().gid(), 70000, "gid outside the block kept");
        assert_eq!(uid("escape"), base, "the symlink itself is shifted");
        assert_eq!(std::fs::metadata(&outside).unwrap().uid(), 0, "its target is not");
        assert_eq!(std::fs::metadata(rootfs.join("suid")).unwrap().mode() & 0o7777, 0o4755);
        assert!(chown_rootfs(&rootfs, base, 65536).unwrap().already);
        let again = chown_rootfs(&rootfs, base * 2, 65536).unwrap();
        assert_eq!(again.from, base);
        assert_eq!(uid("etc/sub"), base * 2 + 1000, "re-shifted from the recorded block");
        assert_eq!(uid("etc/passwd"), base * 2);
        let link = d.path().join("link-rootfs");
        std::os::unix::fs::symlink(&rootfs, &link).unwrap();
        assert!(matches!(chown_rootfs(&link, base, 65536), Err(RootfsError::Symlink(_))));
    }

    #[test]
    fn traversal_check_names_the_closed_directory() {
        let d = tempfile::tempdir().unwrap();
        let rootfs = d.path().join("bundle/rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(d.path().join("bundle"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let bundle = d.path().join("bundle");
        let e = check_traversable(&rootfs, 1 << 30, None).unwrap_err();
        assert!(e.to_string().contains("bundle is not searchable"), "{e}");
        check_traversable(&rootfs, 1 << 30, Some(&bundle)).unwrap();
        if nix::unistd::geteuid().is_root() {
            assert_eq!(open_bundle(&bundle, 1 << 30).unwrap(), Some(0o710));
            assert_eq!(std::fs::metadata(&bundle).unwrap().gid(), 1 << 30);
            check_traversable(&rootfs, 1 << 30, None).unwrap();
            assert!(check_traversable(&rootfs, (1 << 30) + 65536, None).is_err(), "another pod's root may not");
            assert_eq!(open_bundle(&bundle, 1 << 30).unwrap(), None, "once");
        }
        std::fs::set_permissions(&bundle, std::fs::Permissions::from_mode(0o711)).unwrap();
        check_traversable(&rootfs, 1 << 30, None).unwrap();
    }

    #[test]
    fn this_runc_has_no_idmap() {
        let runc = Path::new("/usr/sbin/runc");
        if !runc.exists() {
            return;
        }
        match probe_idmap(runc) {
            IdmapSupport::Unsupported(why) => assert!(why.contains("runc version 1.1"), "{why}"),
            IdmapSupport::Supported => {}
        }
        assert!(matches!(probe_idmap(Path::new("/nonexistent/runc")), IdmapSupport::Unsupported(_)));
    }
}
