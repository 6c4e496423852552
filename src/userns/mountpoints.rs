//! Mount points in an image rootfs owned by host root. Without a user namespace runc
//! creates a missing mount destination itself (as root); inside one it runs as the
//! pod's mapped root, which may not write into the image's directories, and fails
//! with EACCES (`mkdir …/rootfs/var: permission denied` for a service account token at
//! /var/run/secrets/…, `open …/etc/resolv.conf` for containerd's resolv.conf). hardrun,
//! still host root, creates them first: empty directories (or an empty file for a
//! file bind), mode 0755 / 0644, exactly where runc would. Paths resolve inside the
//! rootfs (openat2 RESOLVE_IN_ROOT): an image's symlink can never point a creation
//! outside it. Anything unexpected (a `..` component, a dangling symlink, a
//! non-directory in the way) is left for runc to report.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// One destination to prepare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    /// Absolute path inside the container.
    pub destination: String,
    /// The mount's source is a file: the destination is an empty file, not a directory.
    pub file: bool,
}

/// The kernel's `struct open_how` (libc's is non-exhaustive).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn openat2_in_root(root: &OwnedFd, path: &str, flags: i32) -> std::io::Result<OwnedFd> {
    let c = CString::new(if path.is_empty() { "." } else { path }).map_err(std::io::Error::other)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: openat2 with a valid dirfd, a NUL-terminated path and a correctly sized open_how.
    let fd =
        unsafe { libc::syscall(libc::SYS_openat2, root.as_raw_fd(), c.as_ptr(), &how, std::mem::size_of::<OpenHow>()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Creates `name` in `parent` (a directory or an empty file); EEXIST is fine.
fn create_at(parent: &OwnedFd, name: &str, file: bool) -> std::io::Result<()> {
    let c = CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: *at calls with a valid dirfd and a NUL-terminated name.
    let rc = unsafe {
        if file {
            let fd = libc::openat(
                parent.as_raw_fd(),
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o644,
            );
            if fd >= 0 {
                libc::close(fd);
            }
            fd
        } else {
            libc::mkdirat(parent.as_raw_fd(), c.as_ptr(), 0o755)
        }
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Creates what is missing of `mp` under `root`; returns whether anything was created.
fn prepare(root: &OwnedFd, mp: &MountPoint) -> bool {
    let parts: Vec<&str> = mp.destination.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.is_empty() || parts.contains(&"..") {
        return false;
    }
    let mut created = false;
    for i in 0..parts.len() {
        let prefix = parts[..=i].join("/");
        match openat2_in_root(root, &prefix, libc::O_PATH) {
            Ok(_) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(_) => return created,
        }
        let Ok(parent) = openat2_in_root(root, &parts[..i].join("/"), libc::O_PATH | libc::O_DIRECTORY) else {
            return created;
        };
        let last = i == parts.len() - 1;
        if create_at(&parent, parts[i], last && mp.file).is_err() {
            return created;
        }
        created = true;
    }
    created
}

/// Creates each missing destination under `rootfs`; returns the destinations created.
pub fn create_missing(rootfs: &Path, mount_points: &[MountPoint]) -> std::io::Result<Vec<String>> {
    let root = std::fs::File::open(rootfs)?;
    let root = OwnedFd::from(root);
    Ok(mount_points.iter().filter(|mp| prepare(&root, mp)).map(|mp| mp.destination.clone()).collect())
}

/// Whether a bind source is something other than a directory (runc then binds onto a file).
pub fn source_is_file(source: &Path) -> bool {
    std::fs::metadata(source).is_ok_and(|m| !m.is_dir())
}

/// The rootfs-relative path, for messages.
pub fn display(rootfs: &Path, destination: &str) -> PathBuf {
    rootfs.join(destination.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp(d: &str, file: bool) -> MountPoint {
        MountPoint { destination: d.into(), file }
    }

    #[test]
    fn creates_missing_directories_and_files_inside_the_root_only() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("rootfs");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(root.join("run")).unwrap();
        std::os::unix::fs::symlink("/run", root.join("var")).unwrap();
        // An image's absolute symlink resolves inside the rootfs, never on the host.
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("etc/up")).unwrap();
        std::os::unix::fs::symlink("/nowhere", root.join("dangling")).unwrap();
        let got = create_missing(
            &root,
            &[
                mp("/var/secrets/token", false),
                mp("/etc/resolv.conf", true),
                mp("/etc", false),
                mp("/escape/x", false),
                mp("/etc/up/y", false),
                mp("/dangling/z", false),
                mp("/a/../b", false),
                mp("/", false),
            ],
        )
        .unwrap();
        assert!(root.join("run/secrets/token").is_dir(), "through the image's /var -> /run");
        assert!(root.join("etc/resolv.conf").is_file());
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none(), "nothing outside the rootfs");
        assert!(!t.path().join("b").exists() && !root.join("b").exists());
        assert!(got.contains(&"/var/secrets/token".to_owned()) && got.contains(&"/etc/resolv.conf".to_owned()));
        assert!(!got.contains(&"/etc".to_owned()), "already there");
        // Idempotent.
        assert!(create_missing(&root, &[mp("/var/secrets/token", false)]).unwrap().is_empty());
    }

    #[test]
    fn a_file_in_the_way_is_left_for_runc() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("f"), "").unwrap();
        assert!(create_missing(t.path(), &[mp("/f/sub", false)]).unwrap().is_empty());
        assert!(create_missing(&t.path().join("missing"), &[mp("/x", false)]).is_err());
    }
}
