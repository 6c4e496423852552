//! User namespaces per pod: what a container's spec and the merged setting call for
//! (pure), and the spec edits once the pipeline has a block of host IDs.

use serde_json::{json, Value};

use super::Finding;
use crate::context::{ContainerContext, ContainerType};
use crate::policy::{OnHostNamespace, UserNamespaceSettings, UsernsMode};
use crate::spec::{Patch, PatchOp};

/// A new user namespace with the container's (or its pod's) block.
pub const RULE_ALLOCATED: &str = "userns.allocated";
/// Joined the pod sandbox's user namespace.
pub const RULE_JOINED: &str = "userns.joined";
/// Shares the host's network or pid namespace: no user namespace possible.
pub const RULE_HOST_NAMESPACE: &str = "userns.host-namespace";
/// The spec brings its own user namespace; left alone.
pub const RULE_EXISTING: &str = "userns.existing";
/// A user namespace was called for and cannot be given (range exhausted, state
/// unreadable, no sandbox namespace to join, idmap unsupported, rootfs unreachable).
pub const RULE_UNAVAILABLE: &str = "userns.unavailable";
/// What the rootfs strategy did.
pub const RULE_ROOTFS: &str = "userns.rootfs";
/// The bundle directory opened to the mapped root's group (0710).
pub const RULE_BUNDLE: &str = "userns.bundle";
/// A pod's emptyDir shifted into its block (`emptyDirs: chown`).
pub const RULE_EMPTY_DIR: &str = "userns.empty-dir";
/// mqueue mounts removed: the container's user namespace does not own the pod's ipc
/// namespace.
pub const RULE_MQUEUE: &str = "userns.mqueue";
/// sysfs replaced by a recursive read-only bind of the host's /sys.
pub const RULE_SYSFS: &str = "userns.sysfs";
/// Missing mount destinations created in the image rootfs as host root.
pub const RULE_MOUNT_POINTS: &str = "userns.mount-points";
/// A bind mount's options completed with the flags its source mount carries.
pub const RULE_BIND_FLAGS: &str = "userns.bind-flags";

/// What the pipeline must do (with I/O) for this container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// Allocate a block owned by this container (a sandbox, or a container outside
    /// any pod) and give it a new user namespace.
    NewBlock { owner: String },
    /// Join the user namespace of the pod whose sandbox is `sandbox_id`.
    JoinPod { sandbox_id: String },
}

fn namespaces(spec: &Value) -> &[Value] {
    spec.pointer("/linux/namespaces").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn has_namespace(spec: &Value, kind: &str) -> bool {
    namespaces(spec).iter().any(|n| n.get("type").and_then(Value::as_str) == Some(kind))
}

/// The host namespace (network or pid) the spec shares, if any: a user namespace
/// would own neither, and the container's root could not use them.
fn shared_host_namespace(spec: &Value) -> Option<&'static str> {
    ["network", "pid"].into_iter().find(|kind| {
        let entry = namespaces(spec).iter().find(|n| n.get("type").and_then(Value::as_str) == Some(*kind));
        match entry.and_then(|n| n.get("path")).and_then(Value::as_str) {
            None => entry.is_none(),
            Some(path) => {
                let proc_name = if *kind == "network" { "net" } else { "pid" };
                // Where the namespaces cannot be read (a confined hardrun), only init's
                // own path is recognised.
                super::host::is_host_namespace(proc_name, path).unwrap_or_else(|| path.starts_with("/proc/1/"))
            }
        }
    })
}

/// Whether a container under these settings gets a user namespace from hardrun
/// (so its root is never host root): mode `pod`, none of its own, no host network
/// or pid namespace.
pub fn will_get_namespace(settings: &UserNamespaceSettings, spec: &Value) -> bool {
    settings.mode == UsernsMode::Pod && !has_namespace(spec, "user") && shared_host_namespace(spec).is_none()
}

/// The findings that need no I/O, and what the pipeline must do.
pub fn plan(
    settings: &UserNamespaceSettings,
    spec: &Value,
    context: &ContainerContext,
) -> (Vec<Finding>, Option<Intent>) {
    if settings.mode != UsernsMode::Pod {
        return (Vec::new(), None);
    }
    if has_namespace(spec, "user") {
        return (vec![Finding::info(RULE_EXISTING, "the spec has its own user namespace; left alone")], None);
    }
    if let Some(kind) = shared_host_namespace(spec) {
        let f = match settings.on_host_namespace() {
            OnHostNamespace::Deny => Finding::deny(
                RULE_HOST_NAMESPACE,
                format!("shares the host's {kind} namespace, so it cannot get a user namespace (userNamespace.onHostNamespace: deny)"),
            ),
            OnHostNamespace::Skip => Finding::info(
                RULE_HOST_NAMESPACE,
                format!("shares the host's {kind} namespace; started without a user namespace (userNamespace.onHostNamespace: skip)"),
            ),
        };
        return (vec![f], None);
    }
    let own_block = |owner: Option<&str>| match owner {
        Some(owner) => (Vec::new(), Some(Intent::NewBlock { owner: owner.to_owned() })),
        None => (vec![Finding::deny(RULE_UNAVAILABLE, "no container id to own a user namespace block")], None),
    };
    match (context.container_type, context.sandbox_id.as_deref()) {
        (Some(ContainerType::Sandbox), _) | (_, None) => own_block(context.container_id.as_deref()),
        (_, Some(sandbox)) if Some(sandbox) == context.container_id.as_deref() => own_block(Some(sandbox)),
        (_, Some(sandbox)) => (Vec::new(), Some(Intent::JoinPod { sandbox_id: sandbox.to_owned() })),
    }
}

fn mappings(host_start: u32, size: u32) -> Value {
    json!([{"containerID": 0, "hostID": host_start, "size": size}])
}

/// Adds `entry` to `linux.namespaces` and sets both ID mappings.
fn namespace_patch(spec: &Value, entry: Value, host_start: u32, size: u32) -> Patch {
    let mut patch = Patch::default();
    if spec.pointer("/linux/namespaces").is_some_and(Value::is_array) {
        patch.push(PatchOp::add("/linux/namespaces/-", entry));
    } else {
        patch.push(PatchOp::set(spec, "/linux/namespaces", json!([entry])));
    }
    patch.push(PatchOp::set(spec, "/linux/uidMappings", mappings(host_start, size)));
    patch.push(PatchOp::set(spec, "/linux/gidMappings", mappings(host_start, size)));
    patch
}

/// A new user namespace mapping container IDs 0.. onto the block.
pub fn new_namespace(spec: &Value, host_start: u32, size: u32) -> Finding {
    let patch = namespace_patch(spec, json!({"type": "user"}), host_start, size);
    Finding::mutate(
        RULE_ALLOCATED,
        format!("new user namespace, container IDs 0-{} on host IDs {host_start}+{size}", size - 1),
        patch,
    )
}

/// Joins the namespace at `path`; runc 1.1 still wants the mappings in the spec.
pub fn join_namespace(spec: &Value, path: &str, sandbox_id: &str, host_start: u32, size: u32) -> Finding {
    let patch = namespace_patch(spec, json!({"type": "user", "path": path}), host_start, size);
    Finding::mutate(
        RULE_JOINED,
        format!("joins pod sandbox {sandbox_id}'s user namespace {path} (host IDs {host_start}+{size})"),
        patch,
    )
}

/// The network namespace the spec joins by path, if any.
pub fn network_path(spec: &Value) -> Option<&str> {
    namespaces(spec)
        .iter()
        .find(|n| n.get("type").and_then(Value::as_str) == Some("network"))
        .and_then(|n| n.get("path"))
        .and_then(Value::as_str)
}

/// The kernel lets a user namespace mount sysfs only when it owns the network
/// namespace. A pod's network namespace made by CNI before the sandbox belongs to the
/// host's, so each sysfs mount becomes what `runc spec --rootless` uses: a bind of
/// the host's /sys, read-only all the way down (`rro`).
pub fn sysfs_as_bind(spec: &Value, netns: &str) -> Option<Finding> {
    let mounts = spec.get("mounts").and_then(Value::as_array)?;
    let mut patch = Patch::default();
    for (i, m) in mounts.iter().enumerate() {
        if m.get("type").and_then(Value::as_str) != Some("sysfs") {
            continue;
        }
        let mut bind = m.clone();
        bind["type"] = json!("none");
        bind["source"] = json!("/sys");
        bind["options"] = json!(["rbind", "nosuid", "noexec", "nodev", "ro", "rro"]);
        patch.push(PatchOp::replace(format!("/mounts/{i}"), bind));
    }
    (!patch.is_empty()).then(|| {
        Finding::mutate(
            RULE_SYSFS,
            format!(
                "network namespace {netns} is not owned by the pod's user namespace, which therefore cannot \
                 mount sysfs: /sys is a recursive read-only bind of the host's"
            ),
            patch,
        )
    })
}

/// Options that make runc 1.1 remount a bind mount after binding it.
const REMOUNT_OPTIONS: &[&str] =
    &["ro", "nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime", "strictatime", "sync", "dirsync", "mand"];

/// Flags of a bind's source mount that the kernel locks for a less privileged user
/// namespace: a remount must repeat them or fails with EPERM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockedFlags {
    pub read_only: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
    pub noatime: bool,
    pub nodiratime: bool,
}

impl LockedFlags {
    fn options(&self) -> Vec<&'static str> {
        [
            (self.read_only, "ro"),
            (self.nosuid, "nosuid"),
            (self.nodev, "nodev"),
            (self.noexec, "noexec"),
            (self.noatime, "noatime"),
            (self.nodiratime, "nodiratime"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }
}

/// Inside a new user namespace, runc 1.1 remounts a bind that has flags (containerd
/// 1.6 binds the pod's /dev/shm `rbind, ro`) with only the flags the spec names. The
/// source's nosuid, nodev, noexec (and ro, atime) are locked there, so that remount
/// fails with EPERM and the container never starts. Each such bind gets the flags its
/// source mount already has: what the container sees does not change, the remount
/// keeps the locked flags and passes. `flags_of(source)` reads a source's mount flags
/// (statvfs); a source it cannot read is left alone.
pub fn bind_locked_flags(spec: &Value, flags_of: impl Fn(&str) -> Option<LockedFlags>) -> Option<Finding> {
    let mounts = spec.get("mounts").and_then(Value::as_array)?;
    let mut patch = Patch::default();
    let mut changed = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        let options: Vec<&str> =
            m.get("options").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let is_bind = m.get("type").and_then(Value::as_str) == Some("bind")
            || options.iter().any(|o| *o == "bind" || *o == "rbind");
        if !is_bind || !options.iter().any(|o| REMOUNT_OPTIONS.contains(o)) {
            continue;
        }
        let Some(flags) = m.get("source").and_then(Value::as_str).and_then(&flags_of) else { continue };
        let missing: Vec<&str> = flags.options().into_iter().filter(|o| !options.contains(o)).collect();
        if missing.is_empty() {
            continue;
        }
        let mut completed: Vec<Value> = m["options"].as_array().cloned().unwrap_or_default();
        completed.extend(missing.iter().map(|o| json!(o)));
        patch.push(PatchOp::replace(format!("/mounts/{i}/options"), Value::Array(completed)));
        let dest = m.get("destination").and_then(Value::as_str).unwrap_or("?");
        changed.push(format!("{dest} (+{})", missing.join(",")));
    }
    (!patch.is_empty()).then(|| {
        Finding::mutate(
            RULE_BIND_FLAGS,
            format!(
                "bind mounts completed with their source's locked flags, which a remount inside the user \
                 namespace must keep: {}",
                changed.join(", ")
            ),
            patch,
        )
    })
}

/// The pod's mapping in a user namespace of the container's own: for an app container
/// whose network namespace (made by CNI, owned by the host's user namespace) it could
/// not join from inside the pod's. runc joins namespaces by path before creating a
/// new user namespace, and joins a user namespace by path before all others.
pub fn pod_mapping_namespace(spec: &Value, sandbox_id: &str, netns: &str, host_start: u32, size: u32) -> Finding {
    let patch = namespace_patch(spec, json!({"type": "user"}), host_start, size);
    Finding::mutate(
        RULE_JOINED,
        format!(
            "pod sandbox {sandbox_id}'s mapping (host IDs {host_start}+{size}) in a user namespace of its own: \
             network namespace {netns} belongs to the host's user namespace, which no container inside the \
             pod's could join"
        ),
        patch,
    )
}

/// A container in a user namespace of its own that joins the pod's ipc namespace
/// (owned by the sandbox's user namespace) may not mount mqueue there. POSIX message
/// queues are system calls and keep working; only their listing under /dev/mqueue
/// is lost.
pub fn mqueue_removed(spec: &Value) -> Option<Finding> {
    let mounts = spec.get("mounts").and_then(Value::as_array)?;
    let found: Vec<usize> = mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| m.get("type").and_then(Value::as_str) == Some("mqueue"))
        .map(|(i, _)| i)
        .collect();
    // Highest index first, so each removal leaves the others' indices valid.
    let patch = Patch(found.iter().rev().map(|i| PatchOp::remove(format!("/mounts/{i}"))).collect());
    (!patch.is_empty()).then(|| {
        Finding::mutate(
            RULE_MQUEUE,
            "the pod's ipc namespace belongs to the sandbox's user namespace: /dev/mqueue is not mounted \
             (message queues still work)",
            patch,
        )
    })
}

/// Whether the spec joins an ipc namespace by path.
pub fn joins_ipc(spec: &Value) -> bool {
    namespaces(spec).iter().any(|n| n.get("type").and_then(Value::as_str) == Some("ipc") && n.get("path").is_some())
}

/// Processes the spec already joins by `/proc/<pid>/ns/...` path: where a pod's
/// sandbox is found first.
pub fn namespace_pids(spec: &Value) -> Vec<u32> {
    let mut pids: Vec<u32> = namespaces(spec)
        .iter()
        .filter_map(|n| n.get("path")?.as_str()?.strip_prefix("/proc/")?.split_once("/ns/")?.0.parse().ok())
        .collect();
    pids.dedup();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RootfsStrategy;

    fn pod() -> UserNamespaceSettings {
        UserNamespaceSettings { mode: UsernsMode::Pod, rootfs: Some(RootfsStrategy::ReadOnly), ..Default::default() }
    }

    fn ctx(kind: ContainerType, id: &str, sandbox: Option<&str>) -> ContainerContext {
        ContainerContext {
            container_id: Some(id.into()),
            container_type: Some(kind),
            sandbox_id: sandbox.map(str::to_owned),
            ..Default::default()
        }
    }

    fn spec(ns: Value) -> Value {
        json!({"linux": {"namespaces": ns}})
    }

    #[test]
    fn intents() {
        let own = spec(json!([{"type": "pid"}, {"type": "network"}, {"type": "mount"}]));
        let s = pod();
        assert_eq!(
            plan(&s, &own, &ctx(ContainerType::Sandbox, "sb", Some("sb"))).1,
            Some(Intent::NewBlock { owner: "sb".into() })
        );
        assert_eq!(
            plan(&s, &own, &ctx(ContainerType::Container, "app", Some("sb"))).1,
            Some(Intent::JoinPod { sandbox_id: "sb".into() })
        );
        assert_eq!(
            plan(&s, &own, &ctx(ContainerType::Container, "solo", None)).1,
            Some(Intent::NewBlock { owner: "solo".into() })
        );
        assert_eq!(plan(&UserNamespaceSettings::default(), &own, &ctx(ContainerType::Container, "x", None)).1, None);
    }

    #[test]
    fn compatibility_rules() {
        let c = ctx(ContainerType::Container, "x", None);
        let has_user = spec(json!([{"type": "pid"}, {"type": "network"}, {"type": "user"}]));
        let (f, i) = plan(&pod(), &has_user, &c);
        assert_eq!((f[0].rule.as_str(), i), (RULE_EXISTING, None));
        let host_net = spec(json!([{"type": "pid"}, {"type": "mount"}]));
        let (f, i) = plan(&pod(), &host_net, &c);
        assert!(i.is_none() && f[0].action == crate::enforce::Action::Deny && f[0].message.contains("network"));
        let skip = UserNamespaceSettings { on_host_namespace: Some(OnHostNamespace::Skip), ..pod() };
        let (f, _) = plan(&skip, &host_net, &c);
        assert_eq!(f[0].action, crate::enforce::Action::Info);
        let host_pid = spec(json!([{"type": "pid", "path": "/proc/1/ns/pid"}, {"type": "network"}]));
        assert!(plan(&pod(), &host_pid, &c).0[0].message.contains("pid"));
        assert!(!will_get_namespace(&pod(), &host_pid));
        assert!(will_get_namespace(&pod(), &spec(json!([{"type": "pid"}, {"type": "network"}]))));
    }

    #[test]
    fn sysfs_becomes_a_read_only_bind() {
        let mut s = json!({"mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "ro"]},
        ]});
        let f = sysfs_as_bind(&s, "/var/run/netns/cni-1").unwrap();
        f.patch.apply(&mut s).unwrap();
        assert_eq!(s["mounts"][1]["type"], "none");
        assert_eq!(s["mounts"][1]["source"], "/sys");
        assert!(s["mounts"][1]["options"].as_array().unwrap().contains(&json!("rro")));
        assert_eq!(s["mounts"][0]["type"], "proc");
        assert!(sysfs_as_bind(&s, "x").is_none(), "no sysfs left");
    }

    #[test]
    fn remounted_binds_get_their_sources_locked_flags() {
        let mut s = json!({"mounts": [
            {"destination": "/dev/shm", "type": "bind", "source": "/shm", "options": ["rbind", "ro"]},
            {"destination": "/etc/hosts", "type": "bind", "source": "/hosts", "options": ["rbind", "rprivate", "rw"]},
            {"destination": "/unreadable", "type": "bind", "source": "/gone", "options": ["rbind", "ro"]},
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid"]},
        ]});
        let tmpfs = LockedFlags { nosuid: true, nodev: true, noexec: true, ..Default::default() };
        let flags_of = |src: &str| (src != "/gone").then_some(tmpfs);
        let f = bind_locked_flags(&s, flags_of).unwrap();
        assert_eq!(f.rule, RULE_BIND_FLAGS);
        assert!(f.message.contains("/dev/shm (+nosuid,nodev,noexec)"), "{}", f.message);
        f.patch.apply(&mut s).unwrap();
        assert_eq!(s["mounts"][0]["options"], json!(["rbind", "ro", "nosuid", "nodev", "noexec"]));
        assert_eq!(s["mounts"][1]["options"], json!(["rbind", "rprivate", "rw"]), "not remounted by runc");
        assert_eq!(s["mounts"][2]["options"], json!(["rbind", "ro"]), "source unreadable: left alone");
        assert!(bind_locked_flags(&s, flags_of).is_none(), "idempotent");
        assert!(bind_locked_flags(&json!({}), flags_of).is_none());
    }

    #[test]
    fn malformed_mounts_are_left_alone() {
        let all = |_: &str| Some(LockedFlags { nosuid: true, read_only: true, ..Default::default() });
        for mounts in [
            json!("not a list"),
            json!([null, 3, "x"]),
            json!([{"type": "bind", "options": "ro"}]),
            json!([{"type": "bind", "source": 7, "options": ["ro"]}]),
            json!([{"type": "bind", "options": ["ro"]}]),
            json!([{"type": "bind", "source": "/s", "options": [1, null]}]),
            json!([{"type": "tmpfs", "source": "/s", "options": ["ro"]}]),
        ] {
            assert!(bind_locked_flags(&json!({"mounts": mounts}), all).is_none(), "{mounts}");
        }
        // Non-string options are kept as they were; the missing flags are appended.
        let mut s = json!({"mounts": [{"source": "/s", "options": ["rbind", 5, "ro"]}]});
        bind_locked_flags(&s, all).unwrap().patch.apply(&mut s).unwrap();
        assert_eq!(s["mounts"][0]["options"], json!(["rbind", 5, "ro", "nosuid"]));
    }

    #[test]
    fn mqueue_mounts_are_removed_highest_first() {
        let mut s = json!({"mounts": [
            {"destination": "/dev/mqueue", "type": "mqueue"},
            {"destination": "/proc", "type": "proc"},
            {"destination": "/x", "type": "mqueue"},
        ]});
        mqueue_removed(&s).unwrap().patch.apply(&mut s).unwrap();
        assert_eq!(s["mounts"], json!([{"destination": "/proc", "type": "proc"}]));
        assert!(mqueue_removed(&s).is_none());
    }

    #[test]
    fn patches() {
        let mut s = spec(json!([{"type": "pid"}, {"type": "network", "path": "/proc/42/ns/net"}]));
        assert_eq!(namespace_pids(&s), [42]);
        let f = join_namespace(&s, "/proc/42/ns/user", "sb", 1 << 30, 65536);
        f.patch.apply(&mut s).unwrap();
        assert_eq!(s["linux"]["namespaces"][2], json!({"type": "user", "path": "/proc/42/ns/user"}));
        assert_eq!(s["linux"]["uidMappings"], json!([{"containerID": 0, "hostID": 1u32 << 30, "size": 65536}]));
        assert_eq!(s["linux"]["gidMappings"], s["linux"]["uidMappings"]);
        let mut bare = json!({"linux": {"uidMappings": [{"containerID": 0, "hostID": 0, "size": 1}]}});
        new_namespace(&bare, 1 << 30, 65536).patch.apply(&mut bare).unwrap();
        assert_eq!(bare["linux"]["namespaces"], json!([{"type": "user"}]));
        assert_eq!(bare["linux"]["uidMappings"][0]["hostID"], json!(1u32 << 30));
    }
}
