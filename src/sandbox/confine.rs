//! The child's side: shed everything but the reply pipe, then lock itself in.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::str::FromStr;

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope, ABI,
};
use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule};
use serde::{Deserialize, Serialize};

use super::Confinement;

/// How far the child got: reported to the parent for the debug log and the docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Achieved {
    /// The landlock ABI the kernel offers and whether the ruleset is fully enforced.
    pub landlock: String,
    pub seccomp: bool,
    /// Every capability set, bounding included, is empty.
    pub capabilities: bool,
    pub no_new_privs: bool,
}

/// The newest landlock ABI hardrun asks for; older kernels get best effort.
const LANDLOCK_ABI: ABI = ABI::V6;

/// System calls the child can never make (EPERM), on top of landlock: the ones that
/// change mounts, namespaces, other processes, the kernel or the clock, plus `execve`
/// (the child never runs another program).
const DENIED: &[&str] = &[
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "setns",
    "unshare",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "keyctl",
    "add_key",
    "request_key",
    "personality",
    "open_by_handle_at",
    "name_to_handle_at",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "syslog",
    "vhangup",
    "iopl",
    "ioperm",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "execve",
    "execveat",
    "lookup_dcookie",
    "mbind",
    "migrate_pages",
    "move_pages",
];

/// `clone` flags that create namespaces: a `clone` with any of them is denied.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    0x80, // CLONE_NEWTIME
];

/// The denied system calls that exist on this architecture, plus `clone` with
/// namespace flags and `clone3` (ENOSYS: its flags are out of a filter's reach, and libc
/// falls back to `clone`).
pub fn denied_syscalls() -> Vec<&'static str> {
    let mut v: Vec<&str> = DENIED.iter().copied().filter(|n| syscalls::Sysno::from_str(n).is_ok()).collect();
    v.push("clone (namespace flags)");
    v.push("clone3 (ENOSYS)");
    v
}

/// Confines the calling (child) process; `keep` is the reply pipe's fd.
pub fn confine(conf: &Confinement, keep: RawFd) -> Result<super::Achieved, String> {
    isolate_fds(keep)?;
    set_no_new_privs()?;
    // Landlock first: opening the allowed paths needs the capabilities still held
    // (root without CAP_DAC_READ_SEARCH may not reach a 0700 directory).
    let landlock = restrict_with_landlock(conf)?;
    let capabilities = drop_all_capabilities()?;
    apply_seccomp()?;
    Ok(Achieved { landlock, seccomp: true, capabilities, no_new_privs: true })
}

/// stdio to /dev/null (during `create` they are the container's pipes), every other
/// fd but the reply pipe closed.
fn isolate_fds(keep: RawFd) -> Result<(), String> {
    let null =
        std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
    use std::os::fd::AsRawFd;
    for fd in 0..3 {
        if fd != keep && unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
            return Err(format!("dup2: {}", std::io::Error::last_os_error()));
        }
    }
    drop(null);
    let close_range = |lo: RawFd, hi: RawFd| {
        if lo <= hi {
            // SAFETY: closes descriptors only; nothing in this process uses them after.
            unsafe { libc::syscall(libc::SYS_close_range, lo as libc::c_uint, hi as libc::c_uint, 0) };
        }
    };
    close_range(3, keep - 1);
    close_range(keep + 1, RawFd::MAX);
    Ok(())
}

fn set_no_new_privs() -> Result<(), String> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!("no_new_privs: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Empties every capability set. The bounding set goes first: dropping from it needs
/// CAP_SETPCAP in the effective set. A non-root hardrun without CAP_SETPCAP cannot
/// shrink its bounding set; it has nothing effective to lose either, and reports it.
fn drop_all_capabilities() -> Result<bool, String> {
    use caps::CapSet;
    let mut bounding_empty = true;
    for cap in caps::all() {
        if caps::drop(None, CapSet::Bounding, cap).is_err() {
            bounding_empty = false;
        }
    }
    for set in [CapSet::Ambient, CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        caps::clear(None, set).map_err(|e| format!("clearing {set:?} capabilities: {e}"))?;
    }
    Ok(bounding_empty)
}

fn restrict_with_landlock(conf: &Confinement) -> Result<String, String> {
    let err = |e: landlock::RulesetError| format!("landlock: {e}");
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(LANDLOCK_ABI))
        .map_err(err)?
        .handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)
        .map_err(err)?
        .scope(Scope::AbstractUnixSocket | Scope::Signal)
        .map_err(err)?
        .create()
        .map_err(err)?;
    for path in conf.read.iter().filter(|p| p.exists()) {
        let fd = PathFd::new(path).map_err(|e| format!("landlock: {}: {e}", path.display()))?;
        let access = if path.is_dir() { AccessFs::from_read(LANDLOCK_ABI) } else { AccessFs::ReadFile.into() };
        ruleset = ruleset.add_rule(PathBeneath::new(fd, access)).map_err(err)?;
    }
    for port in &conf.connect_ports {
        ruleset = ruleset.add_rule(NetPort::new(*port, AccessNet::ConnectTcp)).map_err(err)?;
    }
    let status = ruleset.restrict_self().map_err(err)?;
    let abi = ABI::from(status.landlock);
    let level = match status.ruleset {
        RulesetStatus::FullyEnforced => "fully enforced",
        RulesetStatus::PartiallyEnforced => "partially enforced",
        RulesetStatus::NotEnforced => "not enforced",
    };
    Ok(format!("{abi:?}, {level}"))
}

fn apply_seccomp() -> Result<(), String> {
    let arch = seccompiler::TargetArch::try_from(std::env::consts::ARCH).map_err(|e| format!("seccomp: {e}"))?;
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for name in DENIED {
        if let Ok(nr) = syscalls::Sysno::from_str(name) {
            deny.insert(nr.id() as i64, Vec::new());
        }
    }
    let ns_rules = NAMESPACE_FLAGS
        .iter()
        .map(|flag| {
            let cond = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(*flag), *flag)?;
            SeccompRule::new(vec![cond])
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("seccomp: {e}"))?;
    deny.insert(libc::SYS_clone, ns_rules);
    let eperm = SeccompFilter::new(deny, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)
        .map_err(|e| format!("seccomp: {e}"))?;
    let clone3 = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| format!("seccomp: {e}"))?;
    for filter in [eperm, clone3] {
        let prog: seccompiler::BpfProgram = filter.try_into().map_err(|e| format!("seccomp: {e}"))?;
        seccompiler::apply_filter(&prog).map_err(|e| format!("seccomp: {e}"))?;
    }
    Ok(())
}
