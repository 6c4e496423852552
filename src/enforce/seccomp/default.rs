//! `runtime/default`: hardrun's default profile, with the semantics Docker and
//! containerd users know. Unlisted calls fail with EPERM; what is allowed follows the
//! container's final bounding set (`mount`, `unshare`, `setns`, `bpf` … only with
//! CAP_SYS_ADMIN); `clone` may not create namespaces and `clone3` answers ENOSYS
//! without CAP_SYS_ADMIN (glibc then falls back to `clone`, whose flags the filter can
//! see); `socket` refuses AF_ALG and AF_VSOCK; `personality` accepts only the usual
//! personas. Every deviation from moby's default profile is listed in docs/seccomp.md
//! and checked by a test against moby's published allow-lists.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use super::model::{Action, Cmp, Decision, Name, Op, Profile};
use super::Target;
use crate::policy::seccomp::target_names;

/// What unlisted calls get.
pub const DEFAULT_ACTION: Action = Action::Errno(1);

/// Allowed for every container, whatever its capabilities. Names of 32-bit
/// companions (`chown32`, `fcntl64`, `_llseek` …) are here too; names an
/// architecture lacks are left out of its filter.
const BASE: &[&str] = &[
    "_llseek",
    "_newselect",
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "get_robust_list",
    "get_thread_area",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "getxattrat",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "io_setup",
    "io_submit",
    "ioctl",
    "ioprio_get",
    "ioprio_set",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listmount",
    "listxattr",
    "listxattrat",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "removexattrat",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_thread_area",
    "set_tid_address",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setuid32",
    "setxattr",
    "setxattrat",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statmount",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "uretprobe",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// When a group of rules applies.
#[derive(Debug, Clone, Copy)]
enum When {
    Always,
    /// The native architecture is one of these (Go's names, as moby writes them; the
    /// rule then applies to every architecture of the filter).
    Arch(&'static [&'static str]),
    /// The bounding set has this capability.
    Cap(&'static str),
    /// The bounding set lacks this capability.
    NoCap(&'static str),
    /// The running kernel is at least this version (unknown: assumed).
    Kernel(u32, u32),
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    Allow,
    /// Allowed when any one of these comparisons holds.
    AllowIfAny(&'static [Cmp]),
    /// Answered with this errno (unless allowed by another group).
    Errno(u32),
}

struct Group {
    names: &'static [&'static str],
    when: When,
    rule: Rule,
}

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
/// CLONE_NEWPID | CLONE_NEWNET`: the namespace flags `clone` may not carry.
pub const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
pub const AF_ALG: u64 = 38;
pub const AF_VSOCK: u64 = 40;
pub const ENOSYS: u32 = 38;

const SOCKET_FAMILIES: &[Cmp] =
    &[Cmp::new(0, Op::Lt, AF_ALG), Cmp::new(0, Op::Eq, AF_ALG + 1), Cmp::new(0, Op::Gt, AF_VSOCK)];

/// PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query).
const PERSONAS: &[Cmp] = &[
    Cmp::new(0, Op::Eq, 0),
    Cmp::new(0, Op::Eq, 0x8),
    Cmp::new(0, Op::Eq, 0x20000),
    Cmp::new(0, Op::Eq, 0x20008),
    Cmp::new(0, Op::Eq, 0xffff_ffff),
];

const CLONE_WITHOUT_NAMESPACES: &[Cmp] =
    &[Cmp { index: 0, op: Op::MaskedEq, value: CLONE_NAMESPACE_FLAGS, value_two: 0 }];

const GROUPS: &[Group] = &[
    Group { names: &["socket"], when: When::Always, rule: Rule::AllowIfAny(SOCKET_FAMILIES) },
    Group { names: &["personality"], when: When::Always, rule: Rule::AllowIfAny(PERSONAS) },
    // Before 4.8, ptrace could be used to get around seccomp.
    Group { names: &["ptrace", "process_vm_readv", "process_vm_writev"], when: When::Kernel(4, 8), rule: Rule::Allow },
    Group { names: &["arch_prctl"], when: When::Arch(&["amd64", "x32"]), rule: Rule::Allow },
    Group { names: &["modify_ldt"], when: When::Arch(&["amd64", "x32", "x86"]), rule: Rule::Allow },
    Group {
        names: &["arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls"],
        when: When::Arch(&["arm", "arm64"]),
        rule: Rule::Allow,
    },
    Group { names: &["open_by_handle_at"], when: When::Cap("CAP_DAC_READ_SEARCH"), rule: Rule::Allow },
    Group {
        names: &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        when: When::Cap("CAP_SYS_ADMIN"),
        rule: Rule::Allow,
    },
    Group { names: &["clone"], when: When::NoCap("CAP_SYS_ADMIN"), rule: Rule::AllowIfAny(CLONE_WITHOUT_NAMESPACES) },
    Group { names: &["clone3"], when: When::NoCap("CAP_SYS_ADMIN"), rule: Rule::Errno(ENOSYS) },
    Group { names: &["reboot"], when: When::Cap("CAP_SYS_BOOT"), rule: Rule::Allow },
    Group { names: &["chroot"], when: When::Cap("CAP_SYS_CHROOT"), rule: Rule::Allow },
    Group {
        names: &["delete_module", "init_module", "finit_module"],
        when: When::Cap("CAP_SYS_MODULE"),
        rule: Rule::Allow,
    },
    Group { names: &["acct"], when: When::Cap("CAP_SYS_PACCT"), rule: Rule::Allow },
    Group {
        names: &["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"],
        when: When::Cap("CAP_SYS_PTRACE"),
        rule: Rule::Allow,
    },
    Group { names: &["iopl", "ioperm"], when: When::Cap("CAP_SYS_RAWIO"), rule: Rule::Allow },
    Group {
        names: &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        when: When::Cap("CAP_SYS_TIME"),
        rule: Rule::Allow,
    },
    Group { names: &["vhangup"], when: When::Cap("CAP_SYS_TTY_CONFIG"), rule: Rule::Allow },
    Group {
        names: &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"],
        when: When::Cap("CAP_SYS_NICE"),
        rule: Rule::Allow,
    },
    Group { names: &["syslog"], when: When::Cap("CAP_SYSLOG"), rule: Rule::Allow },
    Group { names: &["bpf"], when: When::Cap("CAP_BPF"), rule: Rule::Allow },
    Group { names: &["perf_event_open"], when: When::Cap("CAP_PERFMON"), rule: Rule::Allow },
];

/// The capabilities any group depends on, in a fixed order: the cache key.
fn relevant_caps() -> &'static [&'static str] {
    static CAPS: OnceLock<Vec<&'static str>> = OnceLock::new();
    CAPS.get_or_init(|| {
        let set: BTreeSet<&'static str> = GROUPS
            .iter()
            .filter_map(|g| match g.when {
                When::Cap(c) | When::NoCap(c) => Some(c),
                _ => None,
            })
            .collect();
        set.into_iter().collect()
    })
}

fn holds(when: When, caps: &BTreeSet<String>, target: &Target) -> bool {
    match when {
        When::Always => true,
        When::Arch(arches) => arches.contains(&target.go_arch),
        When::Cap(c) => caps.contains(c),
        When::NoCap(c) => !caps.contains(c),
        When::Kernel(major, minor) => target.kernel.is_none_or(|k| k >= (major, minor)),
    }
}

/// Builds the profile (no cache).
pub fn build(caps: &BTreeSet<String>, target: &Target) -> Profile {
    let names = target_names();
    let mut syscalls: BTreeMap<Name, Decision> = BASE
        .iter()
        .filter(|n| names.contains(**n))
        .map(|n| (Name::Borrowed(*n), Decision::Always(Action::Allow)))
        .collect();
    for g in GROUPS.iter().filter(|g| holds(g.when, caps, target)) {
        for name in g.names.iter().filter(|n| names.contains(**n)) {
            let allowed = syscalls.get(*name) == Some(&Decision::Always(Action::Allow));
            let d = match g.rule {
                Rule::Allow => Decision::Always(Action::Allow),
                _ if allowed => continue,
                Rule::AllowIfAny(cmps) => {
                    Decision::cond(cmps.iter().map(|c| vec![*c]).collect(), Action::Allow, DEFAULT_ACTION)
                }
                Rule::Errno(e) => Decision::Always(Action::Errno(e)),
            };
            syscalls.insert(Name::Borrowed(*name), d);
        }
    }
    Profile {
        default: DEFAULT_ACTION,
        arches: target.arches.iter().map(|a| (*a).to_owned()).collect(),
        syscalls,
        flags: BTreeSet::new(),
        listener: None,
    }
}

/// The profile for a bounding set, cached per combination of the capabilities it
/// depends on (a process builds it at most a few times; tools and tests many).
pub fn profile(caps: &BTreeSet<String>, target: &Target) -> Arc<Profile> {
    type Key = (u64, Option<(u32, u32)>, &'static str);
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<Profile>>>> = OnceLock::new();
    let bits =
        relevant_caps().iter().enumerate().filter(|(_, c)| caps.contains(**c)).fold(0u64, |b, (i, _)| b | 1 << i);
    let key = (bits, target.kernel, target.native_arch);
    let cache = CACHE.get_or_init(Default::default);
    if let Some(p) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return p;
    }
    let p = Arc::new(build(caps, target));
    if let Ok(mut c) = cache.lock() {
        c.insert(key, p.clone());
    }
    p
}
