//! A recording: what a container was seen calling ([`Observed`]), and the seccomp
//! profile in Docker/OCI JSON that allows exactly that. The observation travels in
//! the profile's `comment` (the one free-form field the profile reader accepts), so a
//! recording file is both a loadable `localhost/` profile and the input of merges.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use thiserror::Error;

use crate::enforce::seccomp::default::CLONE_NAMESPACE_FLAGS;
use crate::fsutil::{self, ReadError};

/// Distinct argument values kept per call; past this the call is allowed for any.
pub const MAX_ARG_VALUES: usize = 16;
/// Distinct calls kept (the kernel tables have ~460; unknown numbers count too).
pub const MAX_SYSCALLS: usize = 1024;
/// A recording file beyond this is not one hardrun wrote.
pub const MAX_RECORDING_BYTES: u64 = 1024 * 1024;
/// The key under `comment` that marks a hardrun recording.
pub const COMMENT_KEY: &str = "hardrunRecording";
/// Calls the recording filter allows directly, so never observed; always in a
/// recorded profile (every workload makes them; all are in Docker's default).
/// runc 1.1 refuses NOTIFY for `write`: after loading the filter, runc init writes
/// the fd number to its parent on the sync pipe. Until runc init has read the
/// parent's answer (`read`) and closed its own copy of the notify fd (`close`), a
/// notified call nobody answers blocks it forever, since its copy keeps the fd open
/// (no ENOSYS); its Go runtime's threads may make the others in that window (seen:
/// `futex`). `exit`/`exit_group` let a process end whatever the recorder does.
pub const ALWAYS_ALLOWED: &[&str] = &[
    "close",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_wait",
    "exit",
    "exit_group",
    "futex",
    "getpid",
    "gettid",
    "madvise",
    "mmap",
    "munmap",
    "nanosleep",
    "read",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_yield",
    "sigaltstack",
    "tgkill",
    "write",
];

#[derive(Debug, Error)]
pub enum ProfileFileError {
    #[error("recording {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("recording {} is larger than {MAX_RECORDING_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("recording {}: not a hardrun recording: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("invalid recording name {0:?}: use letters, digits, '.', '_' and '-' (not first), at most 100")]
    BadName(String),
}

/// The argument a call is recorded by (its index), for the calls whose arguments a
/// profile usually restricts.
pub fn recorded_arg(name: &str) -> Option<u32> {
    match name {
        // flags; socket family; persona
        "clone" | "socket" | "personality" => Some(0),
        _ => None,
    }
}

/// The distinct values one argument took, up to [`MAX_ARG_VALUES`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArgValues {
    pub index: u32,
    pub values: BTreeSet<u64>,
    /// More distinct values were seen than are kept.
    #[serde(default)]
    pub overflow: bool,
}

impl ArgValues {
    /// Adds a value; whether that changed anything.
    fn add(&mut self, v: u64) -> bool {
        if self.values.contains(&v) {
            false
        } else if self.values.len() < MAX_ARG_VALUES {
            self.values.insert(v)
        } else {
            !std::mem::replace(&mut self.overflow, true)
        }
    }

    fn union(&mut self, other: &ArgValues) {
        for v in &other.values {
            self.add(*v);
        }
        self.overflow |= other.overflow;
    }
}

/// What one or more runs of a container called.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Observed {
    pub syscalls: BTreeSet<String>,
    /// `SCMP_ARCH_*` the calls came in with.
    pub arches: BTreeSet<String>,
    #[serde(default)]
    pub args: BTreeMap<String, ArgValues>,
    /// `<AUDIT_ARCH hex>:<nr>` of calls no kernel table here names (allowed by
    /// nothing in the profile: hardrun cannot name them).
    #[serde(default)]
    pub unknown: BTreeSet<String>,
    /// Container ids the observation comes from.
    #[serde(default)]
    pub containers: BTreeSet<String>,
    /// Runs merged in: the number of containers (a restarted Kubernetes container
    /// gets a new id), so merging a run twice counts it once.
    #[serde(default)]
    pub runs: u64,
    /// Some run ended early (recorder failure): calls may be missing.
    #[serde(default)]
    pub incomplete: bool,
    /// Notifications seen (all calls, repeated ones too).
    #[serde(default)]
    pub notifications: u64,
}

impl Observed {
    /// Records one call; whether it added anything to the profile. Bounded: past
    /// [`MAX_SYSCALLS`] names nothing new is kept and the observation is marked
    /// incomplete.
    pub fn add(&mut self, arch: Option<&str>, name: Option<&str>, raw: (u32, i32), args: &[u64; 6]) -> bool {
        self.notifications += 1;
        let mut new = false;
        if let Some(a) = arch {
            if !self.arches.contains(a) {
                self.arches.insert(a.to_owned());
                new = true;
            }
        }
        let known = name.is_some_and(|n| self.syscalls.contains(n));
        if !known && self.syscalls.len() + self.unknown.len() >= MAX_SYSCALLS {
            new |= !self.incomplete;
            self.incomplete = true;
            return new;
        }
        let Some(name) = name else {
            return self.unknown.insert(format!("{:#x}:{}", raw.0, raw.1)) || new;
        };
        if !known {
            self.syscalls.insert(name.to_owned());
            new = true;
        }
        if let Some(index) = recorded_arg(name) {
            let entry = self.args.entry(name.to_owned()).or_insert_with(|| ArgValues { index, ..Default::default() });
            new |= entry.add(args[index as usize]);
        }
        new
    }

    /// The union of two observations. Idempotent but for `notifications`, which
    /// adds up (the recorder adds only what it has not written before).
    pub fn merge(&mut self, other: &Observed) {
        self.syscalls.extend(other.syscalls.iter().cloned());
        self.arches.extend(other.arches.iter().cloned());
        self.unknown.extend(other.unknown.iter().cloned());
        self.containers.extend(other.containers.iter().cloned());
        for (name, values) in &other.args {
            match self.args.get_mut(name) {
                Some(mine) => mine.union(values),
                None => {
                    self.args.insert(name.clone(), values.clone());
                }
            }
        }
        self.runs = self.containers.len() as u64;
        self.incomplete |= other.incomplete;
        self.notifications += other.notifications;
    }

    /// Every call the profile allows: the observed ones and [`ALWAYS_ALLOWED`].
    pub fn allowed(&self) -> BTreeSet<String> {
        let mut all = self.syscalls.clone();
        all.extend(ALWAYS_ALLOWED.iter().map(|s| (*s).to_owned()));
        all
    }
}

/// The Docker/OCI seccomp JSON allowing what `obs` saw, denying the rest with EPERM.
/// `arches`: the architectures the filter covers (a call from one not listed is
/// killed by the kernel filter libseccomp builds, so all companions are listed).
pub fn to_profile(name: &str, obs: &Observed, arches: &[&str]) -> Value {
    let mut plain = Vec::new();
    let mut rules = Vec::new();
    for call in obs.allowed() {
        match obs.args.get(&call).and_then(|a| arg_rules(&call, a)) {
            Some(mut r) => rules.append(&mut r),
            None => plain.push(call),
        }
    }
    let mut syscalls = vec![json!({"names": plain, "action": "SCMP_ACT_ALLOW"})];
    syscalls.extend(rules);
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": arches,
        "syscalls": syscalls,
        "comment": {
            COMMENT_KEY: {"name": name, "recordedAt": crate::timefmt::now_rfc3339_nanos(), "observed": obs}
        }
    })
}

/// Argument rules restricting a call to what was seen; `None`: allow it whole.
fn arg_rules(call: &str, a: &ArgValues) -> Option<Vec<Value>> {
    if a.overflow {
        return None;
    }
    if call == "clone" {
        // Flags vary with every thread/fork shape; what matters is namespace creation.
        let creates_ns = a.values.iter().any(|f| f & CLONE_NAMESPACE_FLAGS != 0);
        return (!creates_ns).then(|| {
            vec![json!({"names": [call], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": a.index, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]})]
        });
    }
    Some(
        a.values
            .iter()
            .map(|v| {
                json!({"names": [call], "action": "SCMP_ACT_ALLOW",
                    "args": [{"index": a.index, "value": v, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]})
            })
            .collect(),
    )
}

/// Checks a recording name (the file's stem).
pub fn check_name(name: &str) -> Result<(), ProfileFileError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with(['.', '-'])
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ProfileFileError::BadName(name.to_owned()))
    }
}

/// The file of recording `name` in `dir`.
pub fn path_of(dir: &Path, name: &str) -> Result<PathBuf, ProfileFileError> {
    check_name(name)?;
    Ok(dir.join(format!("{name}.json")))
}

/// Reads a recording: a regular file (a symlink is refused), bounded, hardrun's
/// format. Returns the profile JSON and its observation.
pub fn read(path: &Path) -> Result<(Value, Observed), ProfileFileError> {
    let io = |source| ProfileFileError::Io { path: path.to_owned(), source };
    let bytes = match fsutil::open_regular(path, true)
        .map_err(ReadError::Io)
        .and_then(|f| fsutil::read_capped_from(f, MAX_RECORDING_BYTES))
    {
        Ok(b) => b,
        Err(ReadError::TooLarge) => return Err(ProfileFileError::TooLarge { path: path.to_owned() }),
        Err(ReadError::Io(e)) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(io(std::io::Error::other("is a symlink; recordings must be regular files")))
        }
        Err(ReadError::Io(e)) => return Err(io(e)),
    };
    let invalid = |message: String| ProfileFileError::Invalid { path: path.to_owned(), message };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    let observed = value
        .pointer(&format!("/comment/{COMMENT_KEY}/observed"))
        .ok_or_else(|| invalid(format!("no comment.{COMMENT_KEY}.observed")))?;
    let observed: Observed = serde_json::from_value(observed.clone()).map_err(|e| invalid(e.to_string()))?;
    if let Some(bad) = observed.syscalls.iter().find(|s| !crate::policy::seccomp::is_known_syscall(s)) {
        return Err(invalid(format!("unknown system call {bad:?}")));
    }
    Ok((value, observed))
}

/// Writes `value` to `path` atomically: a new temp file in the same directory
/// (exclusive, never following a link), fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, value: &Value) -> std::io::Result<()> {
    let mut text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    text.push(b'\n');
    crate::fsutil::write_atomic(path, &text, 0o644)
}

/// The recordings in `dir`: `(name, path)`, sorted.
pub fn list(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        other => other?,
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
        if check_name(stem).is_ok() {
            out.push((stem.to_owned(), entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(calls: &[&str]) -> Observed {
        let mut o = Observed::default();
        for c in calls {
            o.add(Some("SCMP_ARCH_X86_64"), Some(c), (0, 0), &[0; 6]);
        }
        o
    }

    #[test]
    fn arguments_are_bounded_and_overflow_allows_all() {
        let mut o = Observed::default();
        for v in 0..40u64 {
            o.add(Some("SCMP_ARCH_X86_64"), Some("socket"), (0, 41), &[v, 0, 0, 0, 0, 0]);
        }
        let a = &o.args["socket"];
        assert_eq!(a.values.len(), MAX_ARG_VALUES);
        assert!(a.overflow);
        assert!(arg_rules("socket", a).is_none());
    }

    #[test]
    fn socket_families_become_rules() {
        let mut o = obs(&["read"]);
        o.add(Some("SCMP_ARCH_X86_64"), Some("socket"), (0, 41), &[2, 1, 0, 0, 0, 0]);
        o.add(Some("SCMP_ARCH_X86_64"), Some("socket"), (0, 41), &[10, 1, 0, 0, 0, 0]);
        let p = to_profile("t", &o, &["SCMP_ARCH_X86_64"]);
        let rules = p["syscalls"].as_array().unwrap();
        let plain: Vec<&str> = rules[0]["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
        assert!(plain.contains(&"read") && plain.contains(&"write") && plain.contains(&"futex"), "{plain:?}");
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[1]["args"][0]["value"], json!(2));
    }

    #[test]
    fn clone_without_namespaces_is_masked() {
        let mut o = Observed::default();
        o.add(Some("SCMP_ARCH_X86_64"), Some("clone"), (0, 56), &[0x1200011, 0, 0, 0, 0, 0]);
        let r = arg_rules("clone", &o.args["clone"]).unwrap();
        assert_eq!(r[0]["args"][0]["op"], json!("SCMP_CMP_MASKED_EQ"));
        o.add(Some("SCMP_ARCH_X86_64"), Some("clone"), (0, 56), &[0x2000_0000, 0, 0, 0, 0, 0]);
        assert!(arg_rules("clone", &o.args["clone"]).is_none());
    }

    #[test]
    fn merge_unions() {
        let mut a = obs(&["read", "mkdir"]);
        a.containers.insert("c1".into());
        let mut b = obs(&["read", "socket"]);
        b.containers.insert("c2".into());
        a.merge(&b);
        assert_eq!(a.syscalls.iter().map(String::as_str).collect::<Vec<_>>(), ["mkdir", "read", "socket"]);
        assert_eq!(a.runs, 2);
        let again = a.clone();
        a.merge(&again);
        assert_eq!((a.runs, a.syscalls.len()), (2, 3), "merging a run twice counts it once");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("web-1.2_x").is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "-x", &"a".repeat(101)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn profile_round_trips_and_loads_as_localhost() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_of(dir.path(), "r").unwrap();
        let o = obs(&["read", "mkdir", "exit_group"]);
        write_atomic(&path, &to_profile("r", &o, &["SCMP_ARCH_X86_64"])).unwrap();
        let (_, back) = read(&path).unwrap();
        assert_eq!(back, o);
        let target = crate::enforce::seccomp::Target::host();
        let parsed = crate::enforce::seccomp::read_localhost(&path, &BTreeSet::new(), &target).unwrap();
        let _ = parsed;
    }

    /// The written profile, read back as hardrun reads `localhost/` profiles, allows
    /// exactly what was observed (argument rules included) and denies the rest.
    #[test]
    fn the_profile_allows_exactly_the_observation() {
        use crate::enforce::seccomp::docker::{parse_value, Names, Reading};
        use crate::enforce::seccomp::model::Action;
        let mut o = obs(&["mkdir", "openat"]);
        o.add(Some("SCMP_ARCH_X86_64"), Some("socket"), (0, 41), &[2, 1, 0, 0, 0, 0]);
        o.add(Some("SCMP_ARCH_X86_64"), Some("clone"), (0, 56), &[0x1200011, 0, 0, 0, 0, 0]);
        o.add(Some("SCMP_ARCH_X86_64"), Some("personality"), (0, 135), &[0, 0, 0, 0, 0, 0]);
        let target = crate::enforce::seccomp::Target::for_tests();
        let caps = BTreeSet::new();
        let v = to_profile("t", &o, target.arches);
        let p = parse_value(&v, &Reading { caps: &caps, target: &target, names: Names::Strict }).unwrap().profile;
        let args = |a0: u64| [a0, 0, 0, 0, 0, 0];
        assert_eq!(p.eval("mkdir", &args(0)), Action::Allow);
        assert_eq!(p.eval("write", &args(0)), Action::Allow, "always allowed");
        assert_eq!(p.eval("symlink", &args(0)), Action::Errno(1));
        assert_eq!(p.eval("socket", &args(2)), Action::Allow);
        assert_eq!(p.eval("socket", &args(10)), Action::Errno(1), "AF_INET6 was not seen");
        assert_eq!(p.eval("clone", &args(0x1200011)), Action::Allow);
        assert_eq!(p.eval("clone", &args(0x1000_0000)), Action::Errno(1), "CLONE_NEWUSER was not seen");
        assert_eq!(p.eval("personality", &args(0)), Action::Allow);
        assert_eq!(p.eval("personality", &args(0x0040_0000)), Action::Errno(1));
    }

    proptest::proptest! {
        /// Merging is a union: order does not matter, and nothing observed is lost
        /// (argument values up to the bound, then `overflow`).
        #[test]
        fn merge_is_a_commutative_union(
            a in proptest::collection::vec((0usize..6, 0u64..40), 0..30),
            b in proptest::collection::vec((0usize..6, 0u64..40), 0..30),
        ) {
            const NAMES: [&str; 6] = ["read", "socket", "mkdir", "clone", "personality", "uname"];
            let build = |calls: &[(usize, u64)]| {
                let mut o = Observed::default();
                for (n, v) in calls {
                    o.add(Some("SCMP_ARCH_X86_64"), Some(NAMES[*n]), (0, 0), &[*v, 0, 0, 0, 0, 0]);
                }
                o
            };
            let (oa, ob) = (build(&a), build(&b));
            let mut ab = oa.clone();
            ab.merge(&ob);
            let mut ba = ob.clone();
            ba.merge(&oa);
            proptest::prop_assert_eq!(&ab.syscalls, &ba.syscalls);
            proptest::prop_assert!(oa.syscalls.is_subset(&ab.syscalls) && ob.syscalls.is_subset(&ab.syscalls));
            for (name, vals) in &ab.args {
                proptest::prop_assert!(vals.values.len() <= MAX_ARG_VALUES);
                let seen: BTreeSet<u64> = a.iter().chain(&b).filter(|(n, _)| NAMES[*n] == name).map(|(_, v)| *v).collect();
                proptest::prop_assert!(vals.overflow || vals.values == seen);
            }
        }
    }

    #[test]
    fn hostile_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("g.json");
        std::fs::write(&garbage, b"{not json").unwrap();
        assert!(matches!(read(&garbage), Err(ProfileFileError::Invalid { .. })));
        let foreign = dir.path().join("f.json");
        std::fs::write(&foreign, br#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        assert!(read(&foreign).unwrap_err().to_string().contains("not a hardrun recording"));
        let link = dir.path().join("l.json");
        std::os::unix::fs::symlink(&garbage, &link).unwrap();
        assert!(read(&link).unwrap_err().to_string().contains("symlink"));
        let big = dir.path().join("b.json");
        std::fs::write(&big, vec![b' '; MAX_RECORDING_BYTES as usize + 1]).unwrap();
        assert!(matches!(read(&big), Err(ProfileFileError::TooLarge { .. })));
    }
}
