//! The settings of each control, as policies write them and as they merge. Each type
//! is pure data with its [`Strictness`]; what a setting does to a spec lives in
//! `crate::enforce`.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::caps::CapName;
use super::glob::Glob;
use super::merge::{AllowList, DenyList, Require, Strictness};
use crate::strictness_by_fields;

/// Expands the keyword `default` (alone, or as an entry of a list) into a documented
/// standard list, so policies can say "the standard set, plus these".
fn expand_default<'de, D, T>(d: D, standard: &[&str]) -> Result<BTreeSet<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Ord + std::str::FromStr,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    };
    let mut out = BTreeSet::new();
    for item in items {
        let names: Vec<&str> = if item == "default" { standard.to_vec() } else { vec![item.as_str()] };
        for n in names {
            out.insert(n.parse::<T>().map_err(serde::de::Error::custom)?);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- capabilities

/// The capabilities Docker and containerd give a container by default (NET_RAW among
/// them); what `runtime/default` seccomp is compared with moby's for, and what tests
/// and benches start from.
pub const CONTAINERD_DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Capabilities no workload should hold without an exemption.
pub const STANDARD_FORBIDDEN_CAPS: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_SYS_MODULE",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_SYS_BOOT",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_NET_ADMIN",
];

/// What happens to a container that asks for a forbidden capability.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnForbidden {
    /// Start it without the capability.
    #[default]
    Drop,
    /// Refuse to start it, so the owner learns why rather than debugging a weaker pod.
    Deny,
}

impl Strictness for OnForbidden {
    fn stricter(self, other: Self) -> Self {
        self.max(other)
    }
    fn at_least_as_strict_as(&self, other: &Self) -> bool {
        self >= other
    }
}

/// `capabilities:` in a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CapabilitySettings {
    /// Every capability set of the container's process is clamped to this list.
    #[serde(default)]
    pub allow: AllowList<CapName>,
    /// Capabilities a container must not ask for (`default`: [`STANDARD_FORBIDDEN_CAPS`]).
    #[serde(default, deserialize_with = "de_forbidden")]
    #[schemars(with = "crate::policy::lint::schema::DefaultOr<CapName>")]
    pub forbidden: DenyList<CapName>,
    #[serde(default)]
    pub on_forbidden: OnForbidden,
}

fn de_forbidden<'de, D: Deserializer<'de>>(d: D) -> Result<DenyList<CapName>, D::Error> {
    expand_default(d, STANDARD_FORBIDDEN_CAPS).map(DenyList)
}

strictness_by_fields!(CapabilitySettings { allow, forbidden, on_forbidden });

impl CapabilitySettings {
    /// Whether a capability may stay in the process at all.
    pub fn permits(&self, cap: &CapName) -> bool {
        self.allow.allows(cap) && !self.forbidden.0.contains(cap)
    }
}

// ---------------------------------------------------------------- apparmor

/// containerd's default AppArmor profile name, what `runtime/default` means.
pub const APPARMOR_RUNTIME_DEFAULT: &str = "cri-containerd.apparmor.d";

/// `apparmor:` in a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppArmorSettings {
    /// Profiles required by the matched policies. AppArmor profiles do not stack, so
    /// two different ones are a conflict and the container is denied.
    #[serde(default, deserialize_with = "de_apparmor_profile", rename = "profile")]
    #[schemars(with = "Option<crate::policy::lint::schema::AppArmorProfile>")]
    pub profiles: DenyList<String>,
    /// Deny when AppArmor or the profile is missing on the node (else: skip, recorded).
    #[serde(default)]
    pub require: Require,
}

fn de_apparmor_profile<'de, D: Deserializer<'de>>(d: D) -> Result<DenyList<String>, D::Error> {
    let name = String::deserialize(d)?;
    let name = match name.as_str() {
        "runtime/default" => APPARMOR_RUNTIME_DEFAULT.to_owned(),
        "unconfined" => return Err(serde::de::Error::custom(
            "apparmor profile `unconfined` is not a policy setting; use a kind: Exemption for rule apparmor.unconfined",
        )),
        other => other.strip_prefix("localhost/").unwrap_or(other).to_owned(),
    };
    if name.is_empty() {
        return Err(serde::de::Error::custom("empty apparmor profile name"));
    }
    Ok(DenyList(BTreeSet::from([name])))
}

strictness_by_fields!(AppArmorSettings { profiles, require });

// ---------------------------------------------------------------- process

/// Resource limit caps by name (`RLIMIT_NOFILE: 65536`); merging keeps the lowest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct RlimitCaps(pub BTreeMap<Rlimit, u64>);

impl Strictness for RlimitCaps {
    fn stricter(mut self, other: Self) -> Self {
        for (k, v) in other.0 {
            self.0.entry(k).and_modify(|mine| *mine = (*mine).min(v)).or_insert(v);
        }
        self
    }
    fn at_least_as_strict_as(&self, other: &Self) -> bool {
        other.0.iter().all(|(k, v)| self.0.get(k).is_some_and(|mine| mine <= v))
    }
}

/// The rlimit names the runtime spec knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Rlimit {
    #[serde(rename = "RLIMIT_AS")]
    As,
    #[serde(rename = "RLIMIT_CORE")]
    Core,
    #[serde(rename = "RLIMIT_CPU")]
    Cpu,
    #[serde(rename = "RLIMIT_DATA")]
    Data,
    #[serde(rename = "RLIMIT_FSIZE")]
    Fsize,
    #[serde(rename = "RLIMIT_LOCKS")]
    Locks,
    #[serde(rename = "RLIMIT_MEMLOCK")]
    Memlock,
    #[serde(rename = "RLIMIT_MSGQUEUE")]
    Msgqueue,
    #[serde(rename = "RLIMIT_NICE")]
    Nice,
    #[serde(rename = "RLIMIT_NOFILE")]
    Nofile,
    #[serde(rename = "RLIMIT_NPROC")]
    Nproc,
    #[serde(rename = "RLIMIT_RSS")]
    Rss,
    #[serde(rename = "RLIMIT_RTPRIO")]
    Rtprio,
    #[serde(rename = "RLIMIT_RTTIME")]
    Rttime,
    #[serde(rename = "RLIMIT_SIGPENDING")]
    Sigpending,
    #[serde(rename = "RLIMIT_STACK")]
    Stack,
}

impl Rlimit {
    pub fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
}

/// A umask floor: bits set here are always masked; merging ORs the bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Umask(pub Option<u32>);

impl<'de> Deserialize<'de> for Umask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u32),
            Text(String),
        }
        // A bare `0022` is octal to this YAML parser but decimal to others (YAML 1.2
        // core schema); a string is the unambiguous spelling, and both are accepted.
        let bits = match Raw::deserialize(d)? {
            Raw::Num(n) => n,
            Raw::Text(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
                .map_err(|_| serde::de::Error::custom(format!("umask {s:?} is not an octal number")))?,
        };
        if bits > 0o777 {
            return Err(serde::de::Error::custom(format!("umask {bits:o} has bits beyond 0777")));
        }
        Ok(Umask(Some(bits)))
    }
}

impl Strictness for Umask {
    fn stricter(self, other: Self) -> Self {
        match (self.0, other.0) {
            (None, x) | (x, None) => Umask(x),
            (Some(a), Some(b)) => Umask(Some(a | b)),
        }
    }
    fn at_least_as_strict_as(&self, other: &Self) -> bool {
        match (self.0, other.0) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => a & b == b,
        }
    }
}

/// `process:` in a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProcessSettings {
    /// Deny a process running as uid 0 unless a user namespace maps it to another uid.
    #[serde(default)]
    pub run_as_non_root: Require,
    #[serde(default)]
    pub rlimits: RlimitCaps,
    #[serde(default)]
    pub umask: Umask,
}

strictness_by_fields!(ProcessSettings { run_as_non_root, rlimits, umask });

// ---------------------------------------------------------------- filesystem

/// containerd's masked paths (the floor of `maskedPaths: default`).
pub const STANDARD_MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// containerd's read-only paths (the floor of `readonlyPaths: default`).
pub const STANDARD_READONLY_PATHS: &[&str] =
    &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Host paths whose bind mount into a container hands it the node.
pub const STANDARD_DENIED_HOST_MOUNTS: &[&str] = &[
    "/",
    "/etc",
    "/etc/kubernetes",
    "/etc/kubernetes/**",
    "/etc/shadow",
    "/etc/hardrun",
    "/etc/hardrun/**",
    "/root",
    "/root/**",
    "/proc",
    "/proc/**",
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/run/containerd/s/**",
    "/run/crio/crio.sock",
    "/var/run/crio/crio.sock",
    "/run/runc",
    "/run/runc/**",
    "/var/lib/containerd",
    "/var/lib/containerd/io.containerd.content.v1.content/**",
    "/var/lib/containerd/io.containerd.snapshotter.v1.*/**",
    "/var/lib/kubelet",
    "/var/lib/kubelet/pki/**",
    "/var/lib/kubelet/pods",
    "/var/lib/kubelet/pods/*",
    "/var/lib/kubelet/*.conf",
    "/var/lib/kubelet/config.yaml",
    "/var/lib/hardrun",
    "/var/lib/hardrun/**",
    "/var/log/hardrun",
    "/var/log/hardrun/**",
];

/// Host paths that may be bound read-only but never read-write.
pub const STANDARD_DENIED_WRITABLE_HOST_MOUNTS: &[&str] = &[
    "/etc/**",
    "/sys",
    "/sys/**",
    "/dev",
    "/dev/**",
    "/boot",
    "/boot/**",
    "/lib/modules/**",
    "/usr/**",
    "/bin/**",
    "/sbin/**",
    "/lib/**",
    "/var/log",
    "/var/log/**",
];

/// `filesystem.hostMounts:` in a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostMountSettings {
    /// Bind-mount sources that deny the container (`default`: the standard list).
    #[serde(default, deserialize_with = "de_denied_mounts")]
    #[schemars(with = "crate::policy::lint::schema::DefaultOr<Glob>")]
    pub deny: DenyList<Glob>,
    /// Sources that deny the container when bound read-write.
    #[serde(default, deserialize_with = "de_denied_writable_mounts")]
    #[schemars(with = "crate::policy::lint::schema::DefaultOr<Glob>")]
    pub deny_writable: DenyList<Glob>,
    /// When present, only these sources may be bind-mounted at all.
    #[serde(default)]
    pub allow: AllowList<Glob>,
    /// Read-write binds of these sources are made read-only instead of denied.
    #[serde(default)]
    pub force_read_only: DenyList<Glob>,
}

fn de_denied_mounts<'de, D: Deserializer<'de>>(d: D) -> Result<DenyList<Glob>, D::Error> {
    expand_default(d, STANDARD_DENIED_HOST_MOUNTS).map(DenyList)
}
fn de_denied_writable_mounts<'de, D: Deserializer<'de>>(d: D) -> Result<DenyList<Glob>, D::Error> {
    expand_default(d, STANDARD_DENIED_WRITABLE_HOST_MOUNTS).map(DenyList)
}

strictness_by_fields!(HostMountSettings { deny, deny_writable, allow, force_read_only });

/// `filesystem:` in a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FilesystemSettings {
    #[serde(default)]
    pub read_only_rootfs: Require,
    /// Paths masked in addition to the spec's own (`default`: containerd's list).
    #[serde(default, deserialize_with = "de_masked")]
    #[schemars(with = "crate::policy::lint::schema::DefaultOr<String>")]
    pub masked_paths: DenyList<String>,
    /// Paths made read-only in addition to the spec's own (`default`: containerd's list).
    #[serde(default, deserialize_with = "de_readonly")]
    #[schemars(with = "crate::policy::lint::schema::DefaultOr<String>")]
    pub readonly_paths: DenyList<String>,
    #[serde(default)]
    pub host_mounts: HostMountSettings,
}

fn de_masked<'de, D: Deserializer<'de>>(d: D) -> Result<DenyList<String>, D::Error> {
    expand_default(d, STANDARD_MASKED_PATHS).map(DenyList)
}
fn de_readonly<'de, D: Deserializer<'de>>(d: D) -> Result<DenyList<String>, D::Error> {
    expand_default(d, STANDARD_READONLY_PATHS).map(DenyList)
}

strictness_by_fields!(FilesystemSettings { read_only_rootfs, masked_paths, readonly_paths, host_mounts });

// ---------------------------------------------------------------- namespaces, devices, sysctls

/// Namespaces a container can share with the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceKind {
    Pid,
    Ipc,
    Uts,
    Network,
    Cgroup,
}

impl std::str::FromStr for NamespaceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| format!("unknown namespace {s:?} (pid, ipc, uts, network, cgroup)"))
    }
}

impl NamespaceKind {
    pub fn oci_name(self) -> &'static str {
        match self {
            NamespaceKind::Pid => "pid",
            NamespaceKind::Ipc => "ipc",
            NamespaceKind::Uts => "uts",
            NamespaceKind::Network => "network",
            NamespaceKind::Cgroup => "cgroup",
        }
    }
    /// The name under /proc/<pid>/ns/.
    pub fn proc_name(self) -> &'static str {
        match self {
            NamespaceKind::Network => "net",
            other => other.oci_name(),
        }
    }
}

pub const STANDARD_HOST_NAMESPACES: &[&str] = &["pid", "ipc", "uts", "network", "cgroup"];

/// `namespaces:` in a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamespaceSettings {
    /// Host namespaces a container may not share (`default`: all five).
    #[serde(default, deserialize_with = "de_host_ns")]
    #[schemars(with = "crate::policy::lint::schema::DefaultOr<NamespaceKind>")]
    pub deny_host: DenyList<NamespaceKind>,
}

fn de_host_ns<'de, D: Deserializer<'de>>(d: D) -> Result<DenyList<NamespaceKind>, D::Error> {
    expand_default(d, STANDARD_HOST_NAMESPACES).map(DenyList)
}

strictness_by_fields!(NamespaceSettings { deny_host });

/// `devices:` in a policy: present means "only the standard devices, plus `allow`".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeviceSettings {
    /// Device paths allowed beyond the standard set (/dev/null, zero, full, random,
    /// urandom, tty, console, ptmx, pts).
    #[serde(default)]
    pub allow: AllowList<Glob>,
}

strictness_by_fields!(DeviceSettings { allow });

/// The kubelet's safe (namespaced, isolated) sysctls.
pub const STANDARD_SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// `sysctls:` in a policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SysctlSettings {
    /// Sysctls a container may set (`default`: the kubelet's safe list).
    #[serde(default, deserialize_with = "de_sysctls")]
    #[schemars(with = "crate::policy::lint::schema::DefaultOr<Glob>")]
    pub allow: AllowList<Glob>,
}

fn de_sysctls<'de, D: Deserializer<'de>>(d: D) -> Result<AllowList<Glob>, D::Error> {
    expand_default(d, STANDARD_SAFE_SYSCTLS).map(|s| AllowList(Some(s)))
}

strictness_by_fields!(SysctlSettings { allow });
