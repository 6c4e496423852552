//! Facts about the node that controls depend on, read once per create. Tests build a
//! `Host` by hand or point `detect` at a fake sysfs.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What the node offers.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// Loaded AppArmor profiles; `None`: AppArmor is not enabled.
    pub apparmor: Option<BTreeSet<String>>,
    /// The cgroup v2 unified hierarchy is mounted (containerd creates cgroup
    /// namespaces only there).
    pub cgroup2: bool,
    /// Hook definitions from the trusted directories (loaded only when a policy
    /// names hooks).
    pub hooks: crate::hooks::HookCatalog,
}

impl Host {
    /// Reads AppArmor state under `sys_root` (normally `/sys`).
    pub fn detect(sys_root: &Path) -> Host {
        Host {
            apparmor: apparmor_profiles(sys_root),
            cgroup2: sys_root.join("fs/cgroup/cgroup.controllers").exists(),
            hooks: Default::default(),
        }
    }
}

fn apparmor_profiles(sys_root: &Path) -> Option<BTreeSet<String>> {
    let enabled = std::fs::read_to_string(sys_root.join("module/apparmor/parameters/enabled")).ok()?;
    if !enabled.trim().starts_with('Y') {
        return None;
    }
    // Lines look like `cri-containerd.apparmor.d (enforce)`.
    let list = std::fs::read_to_string(sys_root.join("kernel/security/apparmor/profiles")).unwrap_or_default();
    Some(list.lines().filter_map(|l| l.rsplit_once(" (").map(|(name, _)| name.to_owned())).collect())
}

/// The host's namespace of this kind: init's (`/proc/1/ns/<name>`), or, where init's
/// cannot be read (a sandboxed pid 1 such as a VM agent), hardrun's own, which is the
/// namespace containerd and runc run in.
pub fn host_namespace_id(proc_name: &str) -> Option<(u64, u64)> {
    ns_id(&Path::new("/proc/1/ns").join(proc_name)).or_else(|| ns_id(&Path::new("/proc/self/ns").join(proc_name)))
}

/// Whether the namespace file at `path` is the host's namespace of this kind; `None`
/// when either cannot be read, for the caller to decide which way to fail.
pub fn is_host_namespace(proc_name: &str, path: &str) -> Option<bool> {
    Some(ns_id(Path::new(path))? == host_namespace_id(proc_name)?)
}

/// (device, inode) of a namespace file.
pub fn ns_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_apparmor_from_a_fake_sysfs() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Host::detect(d.path()).apparmor, None);
        std::fs::create_dir_all(d.path().join("module/apparmor/parameters")).unwrap();
        std::fs::create_dir_all(d.path().join("kernel/security/apparmor")).unwrap();
        std::fs::write(d.path().join("module/apparmor/parameters/enabled"), "N\n").unwrap();
        assert_eq!(Host::detect(d.path()).apparmor, None);
        std::fs::write(d.path().join("module/apparmor/parameters/enabled"), "Y\n").unwrap();
        std::fs::write(
            d.path().join("kernel/security/apparmor/profiles"),
            "cri-containerd.apparmor.d (enforce)\n/usr/bin/man (complain)\n",
        )
        .unwrap();
        let profiles = Host::detect(d.path()).apparmor.unwrap();
        assert!(profiles.contains("cri-containerd.apparmor.d") && profiles.contains("/usr/bin/man"));
    }
}
