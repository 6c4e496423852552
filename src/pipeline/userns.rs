//! The effectful half of per-pod user namespaces: allocate or look up the pod's
//! block, find the sandbox to join, apply the rootfs strategy, and fold the
//! resulting findings back into the evaluation before it is recorded.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{decide, Evaluation};
use crate::audit::{Decision, Record, UsernsAction, UsernsEvent};
use crate::config::NodeConfig;
use crate::enforce::userns::{self as rules, Intent};
use crate::enforce::Finding;
use crate::policy::{EmptyDirStrategy, Mode, RootfsStrategy};
use crate::userns::mountpoints::{self, MountPoint};
use crate::userns::rootfs::{self, IdmapSupport};
use crate::userns::{AllocRequest, Allocation, Store, RUNC_DEFAULT_ROOT};

/// What preparing the user namespace left for the caller to record.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    /// Goes on the create's own record.
    pub event: Option<UsernsEvent>,
    /// One record per allocation reclaimed on the way.
    pub reclaimed: Vec<Record>,
    /// The block allocated for this create, to give back if it is refused after all.
    allocated: Option<(Store, String)>,
}

impl Prepared {
    /// Gives back a block allocated for a create that then did not go ahead.
    pub(crate) fn undo(&self) {
        if let Some((store, owner)) = &self.allocated {
            let _ = store.forget(owner);
        }
    }
}

/// The runc root the container is created under, as an absolute path.
pub(crate) fn runc_root(root: Option<&Path>) -> PathBuf {
    let root = root.unwrap_or(Path::new(RUNC_DEFAULT_ROOT));
    std::path::absolute(root).unwrap_or_else(|_| root.to_owned())
}

/// Carries out `eval`'s user-namespace intent (enforce mode, not already denied)
/// and re-derives its patch, result and decision from the findings.
pub(crate) fn prepare(
    config: &NodeConfig,
    req: &super::CreateRequest<'_>,
    bundle: &Path,
    original: &Value,
    eval: &mut Evaluation,
) -> Prepared {
    let Some(intent) = eval.userns.clone() else { return Prepared::default() };
    if eval.decision == Decision::Denied {
        return Prepared::default();
    }
    let mut prepared = Prepared::default();
    if eval.settings.mode == Mode::Audit {
        let what = match &intent {
            Intent::NewBlock { .. } => "would allocate a block of host IDs and a new user namespace".to_owned(),
            Intent::JoinPod { sandbox_id } => format!("would join pod sandbox {sandbox_id}'s user namespace"),
        };
        eval.plan.findings.push(Finding::info(rules::RULE_ALLOCATED, format!("audit mode: {what}")));
        return prepared;
    }
    let settings = eval.settings.user_namespace.clone();
    let cx = Cx {
        config,
        req,
        bundle,
        spec: &eval.result,
        strategy: settings.rootfs(),
        empty_dirs: settings.empty_dirs(),
        pod_uid: eval.context.pod_uid.clone(),
    };
    let found = match &intent {
        Intent::NewBlock { owner } => cx.new_block(owner, &mut prepared),
        Intent::JoinPod { sandbox_id } => cx.join(sandbox_id, &mut prepared),
    };
    let findings = found.unwrap_or_else(|message| vec![Finding::deny(rules::RULE_UNAVAILABLE, message)]);
    eval.plan.findings.extend(findings);
    refresh(original, eval);
    if eval.decision == Decision::Denied {
        prepared.undo();
        prepared.event = None;
    }
    prepared
}

/// Re-derives patch, result and decision after findings were added.
fn refresh(original: &Value, eval: &mut Evaluation) {
    eval.patch = eval.plan.patch();
    let denied = eval.plan.denials().next().is_some();
    eval.decision = decide(eval.settings.mode, denied, !eval.patch.is_empty());
    let mut result = original.clone();
    if eval.decision == Decision::Mutated {
        if let Err(e) = eval.patch.apply(&mut result) {
            eval.plan.findings.push(Finding::deny(rules::RULE_UNAVAILABLE, format!("cannot apply: {e}")));
            eval.decision = Decision::Denied;
            result = original.clone();
        }
    }
    eval.result = result;
}

struct Cx<'a> {
    config: &'a NodeConfig,
    req: &'a super::CreateRequest<'a>,
    bundle: &'a Path,
    /// The spec with every other control's changes: the user namespace goes on top.
    spec: &'a Value,
    strategy: RootfsStrategy,
    empty_dirs: EmptyDirStrategy,
    pod_uid: Option<String>,
}

impl Cx<'_> {
    fn store(&self) -> Store {
        Store::for_node(self.config)
    }

    fn rootfs(&self) -> Result<PathBuf, String> {
        let path = self.spec.pointer("/root/path").and_then(Value::as_str).ok_or("the spec has no root.path")?;
        Ok(self.bundle.join(path))
    }

    /// The image's directories belong to host root, so the mapped root cannot create
    /// missing mount destinations there: hardrun creates them (src/userns/mountpoints.rs).
    /// /proc, /sys and /dev are left out: runc mounts fresh filesystems there first.
    fn create_mount_points(&self, rootfs: &Path) -> Result<Option<Finding>, String> {
        let mounts = self.spec.get("mounts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let wanted: Vec<MountPoint> = mounts
            .iter()
            .filter_map(|m| {
                let destination = m.get("destination")?.as_str()?;
                let fresh_fs = ["/proc", "/sys", "/dev"]
                    .iter()
                    .any(|p| destination == *p || destination.starts_with(&format!("{p}/")));
                if fresh_fs || !destination.starts_with('/') {
                    return None;
                }
                let options = m.get("options").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                let is_bind = m.get("type").and_then(Value::as_str) == Some("bind")
                    || options.iter().any(|o| o == "bind" || o == "rbind");
                let source = m.get("source").and_then(Value::as_str).map(Path::new);
                let file = is_bind && source.is_some_and(mountpoints::source_is_file);
                Some(MountPoint { destination: destination.to_owned(), file })
            })
            .collect();
        if wanted.is_empty() {
            return Ok(None);
        }
        let created = mountpoints::create_missing(rootfs, &wanted)
            .map_err(|e| format!("rootfs {}: creating mount points: {e}", rootfs.display()))?;
        Ok((!created.is_empty()).then(|| {
            Finding::info(
                rules::RULE_MOUNT_POINTS,
                format!(
                    "mount points created in the image (the pod's root may not write there): {}",
                    created.join(", ")
                ),
            )
        }))
    }

    /// `idmap` is refused unless the runtime reports idmapped mounts, and hardrun
    /// does not drive them yet either way.
    fn check_idmap(&self) -> Result<(), String> {
        if self.strategy != RootfsStrategy::Idmap {
            return Ok(());
        }
        let runc = crate::runtime::find_runc(self.config.runtime.as_deref()).map_err(|e| e.to_string())?;
        match rootfs::probe_idmap(&runc) {
            IdmapSupport::Unsupported(why) => Err(format!(
                "userNamespace.rootfs: idmap needs idmapped mounts from the runtime, and {why}; \
                 use rootfs: chown or read-only on this node"
            )),
            IdmapSupport::Supported => Err(format!(
                "userNamespace.rootfs: idmap: {} supports idmapped mounts, but hardrun does not set them up yet; \
                 use rootfs: chown or read-only",
                runc.display()
            )),
        }
    }

    /// The rootfs must be reachable by the mapped root (the bundle directory is opened
    /// to its group as containerd would); with `chown` it is then shifted into the
    /// block (unless the rootfs is read-only: nothing to write).
    fn apply_strategy(&self, host_start: u32, size: u32) -> Result<Vec<Finding>, String> {
        let rootfs = self.rootfs()?;
        let mut out = Vec::new();
        if rootfs.starts_with(self.bundle) {
            if let Some(mode) = rootfs::open_bundle(self.bundle, host_start).map_err(|e| e.to_string())? {
                out.push(Finding::info(
                    rules::RULE_BUNDLE,
                    format!(
                        "bundle directory {}: group {host_start}, mode {mode:04o}, so the pod's root can reach its \
                         rootfs (what containerd does for user namespaces it knows of)",
                        self.bundle.display()
                    ),
                ));
            }
        }
        rootfs::check_traversable(&rootfs, host_start, None).map_err(|e| e.to_string())?;
        if self.strategy != RootfsStrategy::Chown {
            out.extend(self.create_mount_points(&rootfs)?);
            return Ok(out);
        }
        if self.spec.pointer("/root/readonly") == Some(&Value::Bool(true)) {
            out.push(Finding::info(rules::RULE_ROOTFS, "rootfs is read-only: nothing to chown"));
            return Ok(out);
        }
        let report = rootfs::chown_rootfs(&rootfs, host_start, size).map_err(|e| e.to_string())?;
        let message = if report.already {
            format!("rootfs already owned by host IDs {host_start}+{size} (recorded); not walked again")
        } else {
            format!(
                "rootfs ownership shifted from base {} to {host_start}: {} of {} entries changed",
                report.from, report.changed, report.entries
            )
        };
        out.push(Finding::info(rules::RULE_ROOTFS, message));
        Ok(out)
    }

    /// The pod's emptyDirs this container binds: sources directly under
    /// `<kubeletDir>/pods/<this pod's uid>/volumes/kubernetes.io~empty-dir/`.
    fn empty_dir_sources(&self) -> Vec<PathBuf> {
        let Some(uid) = self.pod_uid.as_deref().filter(|u| crate::userns::valid_container_id(u)) else {
            return Vec::new();
        };
        let base =
            self.config.user_namespaces.kubelet_dir.join("pods").join(uid).join("volumes/kubernetes.io~empty-dir");
        let mounts = self.spec.get("mounts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let mut out: Vec<PathBuf> = mounts
            .iter()
            .filter_map(|m| m.get("source")?.as_str())
            .map(Path::new)
            .filter(|src| {
                src.parent() == Some(base.as_path())
                    && src.file_name().and_then(|n| n.to_str()).is_some_and(crate::userns::valid_container_id)
            })
            .map(Path::to_path_buf)
            .collect();
        out.dedup();
        out
    }

    /// `emptyDirs: chown`: each of the pod's emptyDirs shifted into the block, once
    /// (recorded like a rootfs).
    fn chown_empty_dirs(&self, host_start: u32, size: u32) -> Result<Vec<Finding>, String> {
        if self.empty_dirs != EmptyDirStrategy::Chown {
            return Ok(Vec::new());
        }
        self.empty_dir_sources()
            .into_iter()
            .map(|dir| {
                let report = rootfs::chown_rootfs(&dir, host_start, size).map_err(|e| e.to_string())?;
                let what = if report.already {
                    "already shifted (recorded)".to_owned()
                } else {
                    format!("{} of {} entries shifted", report.changed, report.entries)
                };
                Ok(Finding::info(rules::RULE_EMPTY_DIR, format!("emptyDir {}: {what}", dir.display())))
            })
            .collect()
    }

    fn new_block(&self, owner: &str, prepared: &mut Prepared) -> Result<Vec<Finding>, String> {
        self.check_idmap()?;
        let range = &self.config.user_namespaces;
        // Checked with the range's first ID before taking a block: no block is
        // allocated for a rootfs the container could not reach anyway.
        rootfs::check_traversable(&self.rootfs()?, range.host_range.start, Some(self.bundle))
            .map_err(|e| e.to_string())?;
        let store = self.store();
        let root = runc_root(self.req.runc_root);
        let request = AllocRequest { owner, root: &root, now: crate::timefmt::now_rfc3339_nanos() };
        let liveness = crate::userns::HostLiveness::default();
        let got = store.allocate(&request, range, &|a| liveness.in_use(a)).map_err(|e| e.to_string())?;
        prepared.reclaimed = got.reclaimed.iter().map(reclaim_record).collect();
        if !got.reused {
            prepared.allocated = Some((store, owner.to_owned()));
        }
        let a = &got.allocation;
        prepared.event = Some(UsernsEvent::of(UsernsAction::Allocate, a));
        let mut out = vec![rules::new_namespace(self.spec, a.host_start, a.size)];
        // A namespace joined by path predates the new user namespace: never its own.
        out.extend(rules::network_path(self.spec).and_then(|netns| rules::sysfs_as_bind(self.spec, netns)));
        out.extend(rules::bind_locked_flags(self.spec, mount_flags));
        out.extend(self.apply_strategy(a.host_start, a.size)?);
        Ok(out)
    }

    fn join(&self, sandbox_id: &str, prepared: &mut Prepared) -> Result<Vec<Finding>, String> {
        self.check_idmap()?;
        let a = self.store().lookup(sandbox_id).map_err(|e| e.to_string())?.ok_or_else(|| {
            format!(
                "pod sandbox {sandbox_id} has no user namespace block: the policy giving this container \
                 userNamespace.mode: pod must select the pod's sandbox too (containerTypes: [sandbox, container])"
            )
        })?;
        if a.released {
            return Err(format!("pod sandbox {sandbox_id} is being deleted; its user namespace is released"));
        }
        let pid = self.sandbox_pid(&a).ok_or_else(|| {
            format!(
                "no running process of pod sandbox {sandbox_id} is in its user namespace (host IDs {}+{})",
                a.host_start, a.size
            )
        })?;
        let path = format!("/proc/{pid}/ns/user");
        let mut event = UsernsEvent::of(UsernsAction::Join, &a);
        event.sandbox_pid = Some(pid);
        prepared.event = Some(event);
        let mut out = match rules::network_path(self.spec).filter(|n| !owned_by(n, &path)) {
            None => vec![rules::join_namespace(self.spec, &path, sandbox_id, a.host_start, a.size)],
            Some(netns) => {
                let mut v = vec![rules::pod_mapping_namespace(self.spec, sandbox_id, netns, a.host_start, a.size)];
                v.extend(rules::sysfs_as_bind(self.spec, netns));
                if rules::joins_ipc(self.spec) {
                    v.extend(rules::mqueue_removed(self.spec));
                }
                v
            }
        };
        out.extend(rules::bind_locked_flags(self.spec, mount_flags));
        out.extend(self.apply_strategy(a.host_start, a.size)?);
        out.extend(self.chown_empty_dirs(a.host_start, a.size)?);
        Ok(out)
    }

    /// The sandbox's process: one the spec already joins, else runc's record of the
    /// sandbox's init; either must be in a user namespace with exactly the block's
    /// mapping (a recycled pid is not).
    fn sandbox_pid(&self, a: &Allocation) -> Option<u32> {
        let from_state = runc_init_pid(&a.root.join(&a.owner).join("state.json"));
        let expected = format!("0 {} {}", a.host_start, a.size);
        rules::namespace_pids(self.spec).into_iter().chain(from_state).find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/uid_map")).is_ok_and(|m| {
                let lines: Vec<String> =
                    m.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
                lines == [expected.clone()]
            })
        })
    }
}

/// Whether the namespace at `ns_path` is owned by the user namespace at
/// `userns_path` (`NS_GET_USERNS`); `false` when either cannot be read.
fn owned_by(ns_path: &str, userns_path: &str) -> bool {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::MetadataExt;
    const NS_GET_USERNS: libc::c_ulong = 0xb701;
    let Ok(ns) = std::fs::File::open(ns_path) else { return false };
    // SAFETY: ioctl on a descriptor we own; on success it returns a new descriptor.
    let fd = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_USERNS) };
    if fd < 0 {
        return false;
    }
    // SAFETY: the ioctl returned a fresh descriptor that nothing else owns.
    let owner = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    match (owner.metadata(), std::fs::metadata(userns_path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// `init_process_pid` from runc's state.json.
fn runc_init_pid(path: &Path) -> Option<u32> {
    let bytes = crate::fsutil::read_capped(path, crate::spec::MAX_SPEC_BYTES).ok()?;
    let state: Value = serde_json::from_slice(&bytes).ok()?;
    state.get("init_process_pid")?.as_u64().and_then(|p| u32::try_from(p).ok()).filter(|&p| p > 0)
}

fn reclaim_record(a: &Allocation) -> Record {
    let mut r = Record::lifecycle("userns-reclaim", Some(&a.owner));
    r.reason = Some(format!(
        "container {} is gone from runc's state under {} without a delete hardrun saw; its block is free again",
        a.owner,
        a.root.display()
    ));
    r.userns = Some(UsernsEvent::of(UsernsAction::Reclaim, a));
    r
}

/// `runc delete <id>`: marks the block `id` owns released. Never fails the delete:
/// a table that cannot be read or written is reported for the delete's record.
pub(crate) fn release_on_delete(config: &NodeConfig, id: &str) -> Result<Option<UsernsEvent>, String> {
    match Store::for_node(config).release(id) {
        Ok(released) => Ok(released.map(|a| UsernsEvent::of(UsernsAction::Release, &a))),
        Err(e) => Err(format!("user namespace block not released: {e}")),
    }
}

/// The flags of the mount holding `source` (statvfs), for [`rules::bind_locked_flags`].
fn mount_flags(source: &str) -> Option<rules::LockedFlags> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let f = statvfs(source).ok()?.flags();
    Some(rules::LockedFlags {
        read_only: f.contains(FsFlags::ST_RDONLY),
        nosuid: f.contains(FsFlags::ST_NOSUID),
        nodev: f.contains(FsFlags::ST_NODEV),
        noexec: f.contains(FsFlags::ST_NOEXEC),
        noatime: f.contains(FsFlags::ST_NOATIME),
        nodiratime: f.contains(FsFlags::ST_NODIRATIME),
    })
}
