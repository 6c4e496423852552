//! `seccomp:` in a policy, and how seccomp settings merge. Pure data: the names of
//! system calls and errno values, the policy section, and its strictness order. What a
//! setting does to a spec lives in `crate::enforce::seccomp`.
//!
//! Each policy's section is one *constraint* (a base profile plus that policy's own
//! allow/deny deltas). Merging collects the constraints of every matched policy; the
//! compiled filter allows a call only when every constraint allows it, so a larger set
//! is stricter and adding a policy never weakens a container.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::merge::Strictness;

/// The rule ID of a policy (or profile) asking for no seccomp filter at all.
pub const RULE_UNCONFINED: &str = "seccomp.unconfined";

// ---------------------------------------------------------------- syscall names

/// ARM's private system calls (`__ARM_NR_*`), which libseccomp knows by name but
/// kernel syscall tables list apart.
const ARM_PRIVATE: &[&str] = &["breakpoint", "cacheflush", "set_tls", "usr26", "usr32", "sync_file_range2"];

/// FNV-1a: the name sets are looked up for every name of every profile read, and
/// the default SipHash costs more than the rest of the lookup; the keys are fixed
/// kernel names, so flooding resistance buys nothing here.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A set of system call names.
pub type NameSet = HashSet<&'static str, BuildHasherDefault<Fnv>>;

/// x86 reaches these only through `socketcall`; libseccomp turns a rule for them into
/// a `socketcall` rule on the call number, so they belong in x86 filters.
const X86_SOCKETCALL_ONLY: &[&str] = &["recv", "send"];

/// The kernel's name for a `syscalls` crate entry: the crate spells `break`, a Rust
/// keyword, as the raw identifier `r#break`.
pub fn kernel_name(name: &'static str) -> &'static str {
    name.strip_prefix("r#").unwrap_or(name)
}

/// Every system call name of every Linux architecture: what a profile may name.
/// Built once from the `syscalls` crate's kernel tables.
fn all_names() -> &'static NameSet {
    static ALL: OnceLock<NameSet> = OnceLock::new();
    ALL.get_or_init(|| {
        use syscalls::*;
        let mut s = NameSet::with_capacity_and_hasher(1024, Default::default());
        s.extend(x86_64::Sysno::iter().map(|n| kernel_name(n.name())));
        s.extend(x86::Sysno::iter().map(|n| kernel_name(n.name())));
        s.extend(aarch64::Sysno::iter().map(|n| kernel_name(n.name())));
        s.extend(arm::Sysno::iter().map(|n| kernel_name(n.name())));
        s.extend(riscv32::Sysno::iter().map(|n| kernel_name(n.name())));
        s.extend(riscv64::Sysno::iter().map(|n| kernel_name(n.name())));
        s.extend(loongarch64::Sysno::iter().map(|n| kernel_name(n.name())));
        s.extend(mips::Sysno::iter().map(|n| kernel_name(n.name())));
        s.extend(mips64::Sysno::iter().map(|n| kernel_name(n.name())));
        s.extend(powerpc::Sysno::iter().map(|n| kernel_name(n.name())));
        s.extend(powerpc64::Sysno::iter().map(|n| kernel_name(n.name())));
        s.extend(s390x::Sysno::iter().map(|n| kernel_name(n.name())));
        s.extend(sparc::Sysno::iter().map(|n| kernel_name(n.name())));
        s.extend(sparc64::Sysno::iter().map(|n| kernel_name(n.name())));
        s.extend(ARM_PRIVATE);
        s
    })
}

/// Whether any Linux architecture has a system call of this name.
pub fn is_known_syscall(name: &str) -> bool {
    target_names().contains(name) || all_names().contains(name)
}

/// The system calls that exist on the architectures hardrun builds filters for: the
/// build target's and its 32-bit companions (x86_64 with x86 and x32, aarch64 with
/// arm). A rule for any other name can never match and is left out of filters.
pub fn target_names() -> &'static NameSet {
    static TARGET: OnceLock<NameSet> = OnceLock::new();
    TARGET.get_or_init(|| {
        use syscalls::*;
        let mut s = NameSet::with_capacity_and_hasher(1024, Default::default());
        if cfg!(target_arch = "aarch64") {
            s.extend(aarch64::Sysno::iter().map(|n| kernel_name(n.name())));
            s.extend(arm::Sysno::iter().map(|n| kernel_name(n.name())));
            s.extend(ARM_PRIVATE);
        } else {
            // x32 uses the x86_64 table's names.
            s.extend(x86_64::Sysno::iter().map(|n| kernel_name(n.name())));
            s.extend(x86::Sysno::iter().map(|n| kernel_name(n.name())));
            s.extend(X86_SOCKETCALL_ONLY);
        }
        s
    })
}

/// A system call name that some Linux architecture has (`mkdir`, `clone3`, …).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyscallName(String);

impl SyscallName {
    pub fn new(name: &str) -> Result<Self, String> {
        if is_known_syscall(name) {
            Ok(SyscallName(name.to_owned()))
        } else {
            Err(format!("unknown system call {name:?}"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SyscallName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SyscallName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::new(s)
    }
}

impl Serialize for SyscallName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SyscallName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SyscallName::new(&s).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------- errno

/// The largest errno the kernel's seccomp return value can carry (`SECCOMP_RET_DATA`
/// is 16 bits, but anything past `MAX_ERRNO` reads as a valid return value).
pub const MAX_ERRNO: u32 = 4095;

fn errno_names() -> &'static BTreeMap<&'static str, u32> {
    static NAMES: OnceLock<BTreeMap<&'static str, u32>> = OnceLock::new();
    NAMES.get_or_init(|| {
        (1..=200u32).filter_map(|n| syscalls::Errno::new(n as i32).name().map(|name| (name, n))).collect()
    })
}

/// An errno value returned by a denied system call; policies write a name (`EPERM`)
/// or a number (1 ..= 4095).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Errno(pub u32);

impl Errno {
    pub const EPERM: Errno = Errno(1);
    pub const EACCES: Errno = Errno(13);
    pub const ENOSYS: Errno = Errno(38);

    pub fn new(n: u32) -> Result<Self, String> {
        if (1..=MAX_ERRNO).contains(&n) {
            Ok(Errno(n))
        } else {
            Err(format!("errno {n} is outside 1..={MAX_ERRNO}"))
        }
    }

    /// The symbolic name, when Linux has one.
    pub fn name(self) -> Option<&'static str> {
        i32::try_from(self.0).ok().and_then(|n| syscalls::Errno::new(n).name())
    }
}

impl Default for Errno {
    fn default() -> Self {
        Errno::EPERM
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.0),
        }
    }
}

impl FromStr for Errno {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Ok(n) = t.parse::<u32>() {
            return Errno::new(n);
        }
        errno_names()
            .get(t.to_ascii_uppercase().as_str())
            .map(|&n| Errno(n))
            .ok_or_else(|| format!("unknown errno {s:?}"))
    }
}

impl Serialize for Errno {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.name() {
            Some(n) => s.serialize_str(n),
            None => s.serialize_u32(self.0),
        }
    }
}

impl<'de> Deserialize<'de> for Errno {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(u64),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => u32::try_from(n).map_err(|_| format!("errno {n} is too large")).and_then(Errno::new),
            Raw::Name(s) => s.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------- the section

/// Which base profile a constraint starts from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProfileRef {
    /// hardrun's default profile, computed from the container's final capabilities.
    RuntimeDefault,
    /// A Docker/OCI seccomp JSON file. Relative paths are resolved against the policy
    /// file's directory when the policy is loaded ([`SeccompSettings::resolve_paths`]).
    Localhost(PathBuf),
    /// No filter. Representable (an exemption may name it) but refused in a Policy:
    /// rule `seccomp.unconfined`.
    Unconfined,
}

impl fmt::Display for ProfileRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileRef::RuntimeDefault => f.write_str("runtime/default"),
            ProfileRef::Localhost(p) => write!(f, "localhost/{}", p.display()),
            ProfileRef::Unconfined => f.write_str("unconfined"),
        }
    }
}

impl FromStr for ProfileRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "runtime/default" | "RuntimeDefault" => Ok(ProfileRef::RuntimeDefault),
            "unconfined" | "Unconfined" => Ok(ProfileRef::Unconfined),
            other => match other.strip_prefix("localhost/") {
                Some(p) if !p.trim().is_empty() => Ok(ProfileRef::Localhost(PathBuf::from(p))),
                _ => Err(format!(
                    "seccomp profile {other:?}: expected runtime/default or localhost/<file> (relative to the policy file)"
                )),
            },
        }
    }
}

impl Serialize for ProfileRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProfileRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// What to do with a seccomp section the incoming spec already has (for example a
/// pod's own Localhost profile).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Existing {
    /// Discard it: the policies' profile alone applies.
    Replace,
    /// Keep it as one more constraint: a call must pass both.
    #[default]
    KeepStricter,
}

/// One policy's seccomp constraint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SeccompConstraint {
    /// Absent: no base profile; the constraint only adds `denySyscalls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ProfileRef>,
    /// Answered with `errno` whatever the profile says.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub deny_syscalls: BTreeSet<SyscallName>,
    /// Allowed by this constraint's profile (other constraints still apply).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub allow_syscalls: BTreeSet<SyscallName>,
    #[serde(default)]
    pub errno: Errno,
    #[serde(default)]
    pub existing: Existing,
}

impl SeccompConstraint {
    /// The checks serde cannot express; the message starts with the rule ID when one
    /// applies.
    pub fn validate(&self) -> Result<(), String> {
        if self.profile == Some(ProfileRef::Unconfined) {
            return Err(format!(
                "{RULE_UNCONFINED}: seccomp profile `unconfined` is not a policy setting; \
                 a kind: Exemption for rule {RULE_UNCONFINED} lets a container run without a filter"
            ));
        }
        if self.profile.is_none() && self.deny_syscalls.is_empty() {
            return Err("seccomp: give a profile, denySyscalls, or both".into());
        }
        if self.profile.is_none() && !self.allow_syscalls.is_empty() {
            return Err("seccomp.allowSyscalls needs a profile to add to".into());
        }
        let both: Vec<&str> = self.deny_syscalls.intersection(&self.allow_syscalls).map(SyscallName::as_str).collect();
        if !both.is_empty() {
            return Err(format!("seccomp: {} both denied and allowed", both.join(", ")));
        }
        Ok(())
    }
}

/// The merged seccomp setting: every matched policy's constraint. Empty: policies ask
/// for nothing, and the spec's own seccomp section (if any) is left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SeccompSettings {
    pub constraints: BTreeSet<SeccompConstraint>,
}

impl SeccompSettings {
    pub fn single(c: SeccompConstraint) -> Self {
        SeccompSettings { constraints: BTreeSet::from([c]) }
    }

    pub fn is_empty(&self) -> bool {
        self.constraints.is_empty()
    }

    /// Makes every `localhost/` path absolute, relative to `policy_dir` (the directory
    /// of the file the policy came from). The loader calls this once per policy.
    pub fn resolve_paths(&mut self, policy_dir: &Path) {
        self.constraints = std::mem::take(&mut self.constraints)
            .into_iter()
            .map(|mut c| {
                if let Some(ProfileRef::Localhost(p)) = &mut c.profile {
                    if p.is_relative() {
                        *p = policy_dir.join(&*p);
                    }
                }
                c
            })
            .collect();
    }

    /// Whether the spec's own seccomp section is kept as a constraint: unless every
    /// constraint says `replace` (`keep-stricter` is the stricter choice, so it wins).
    pub fn keeps_existing(&self) -> bool {
        self.constraints.iter().any(|c| c.existing == Existing::KeepStricter)
    }
}

/// A policy's section is one constraint; validation runs while the policy loads, so a
/// bad section rejects the policy file.
impl<'de> Deserialize<'de> for SeccompSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let c = SeccompConstraint::deserialize(d)?;
        c.validate().map_err(serde::de::Error::custom)?;
        Ok(SeccompSettings::single(c))
    }
}

impl Strictness for SeccompSettings {
    fn stricter(mut self, other: Self) -> Self {
        self.constraints.extend(other.constraints);
        self
    }
    fn at_least_as_strict_as(&self, other: &Self) -> bool {
        self.constraints.is_superset(&other.constraints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<SeccompSettings, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn names_are_the_kernel_s_not_rust_identifiers() {
        assert!(target_names().contains("break"), "x86's break (17) is named as the kernel names it");
        assert!(all_names().iter().all(|n| !n.starts_with("r#")));
        assert!(SyscallName::new("break").is_ok());
        assert!(SyscallName::new("r#break").is_err());
    }

    #[test]
    fn names_are_checked_against_every_architecture() {
        for n in ["mkdir", "clone3", "chown32", "riscv_hwprobe", "s390_pci_mmio_read", "set_tls", "mseal"] {
            assert!(is_known_syscall(n), "{n}");
        }
        assert!(!is_known_syscall("mkdirr"));
        assert!(!is_known_syscall(""));
        assert!(target_names().contains("mkdir"));
        #[cfg(target_arch = "x86_64")]
        {
            assert!(target_names().contains("chown32") && target_names().contains("arch_prctl"));
            assert!(!target_names().contains("riscv_hwprobe"));
        }
    }

    #[test]
    fn errno_names_and_numbers() {
        assert_eq!("EPERM".parse::<Errno>(), Ok(Errno(1)));
        assert_eq!("eacces".parse::<Errno>(), Ok(Errno(13)));
        assert_eq!("38".parse::<Errno>(), Ok(Errno::ENOSYS));
        assert!("EWHATEVER".parse::<Errno>().is_err());
        assert!("0".parse::<Errno>().is_err());
        assert!("5000".parse::<Errno>().is_err());
        assert_eq!(serde_json::to_value(Errno(13)).unwrap(), serde_json::json!("EACCES"));
        assert_eq!(serde_json::to_value(Errno(4000)).unwrap(), serde_json::json!(4000));
        assert_eq!(serde_yaml::from_str::<Errno>("13").unwrap(), Errno::EACCES);
    }

    #[test]
    fn a_section_is_one_constraint_with_defaults() {
        let s = parse("profile: runtime/default\ndenySyscalls: [keyctl, add_key]\n").unwrap();
        let c = s.constraints.iter().next().unwrap();
        assert_eq!(c.profile, Some(ProfileRef::RuntimeDefault));
        assert_eq!(c.errno, Errno::EPERM);
        assert_eq!(c.existing, Existing::KeepStricter);
        assert_eq!(c.deny_syscalls.len(), 2);
        let s = parse("profile: localhost/p.json\nerrno: EACCES\nexisting: replace\n").unwrap();
        let c = s.constraints.iter().next().unwrap();
        assert_eq!(c.profile, Some(ProfileRef::Localhost("p.json".into())));
        assert_eq!((c.errno, c.existing), (Errno::EACCES, Existing::Replace));
    }

    #[test]
    fn refuses_unconfined_typos_and_contradictions() {
        let e = parse("profile: unconfined\n").unwrap_err();
        assert!(e.contains(RULE_UNCONFINED), "{e}");
        assert!(parse("profile: runtime/defualt\n").unwrap_err().contains("expected runtime/default"));
        assert!(parse("profile: localhost/\n").is_err());
        assert!(parse("denySyscalls: [mkdirr]\n").unwrap_err().contains("unknown system call"));
        assert!(parse("allowSyscalls: [ptrace]\ndenySyscalls: [keyctl]\n").unwrap_err().contains("needs a profile"));
        assert!(parse("{}").unwrap_err().contains("give a profile"));
        assert!(parse("errno: EACCES\n").is_err());
        assert!(parse("profile: runtime/default\nallowSyscalls: [ptrace]\ndenySyscalls: [ptrace]\n").is_err());
        assert!(parse("profile: runtime/default\nexisting: ignore\n").is_err());
        assert!(parse("profile: runtime/default\nextra: 1\n").is_err());
    }

    #[test]
    fn resolves_relative_localhost_paths() {
        let mut s = parse("profile: localhost/profiles/a.json\n").unwrap();
        s = s.stricter(parse("profile: localhost//abs/b.json\n").unwrap());
        s.resolve_paths(Path::new("/etc/hardrun/policies.d"));
        let paths: BTreeSet<String> = s
            .constraints
            .iter()
            .filter_map(|c| match &c.profile {
                Some(ProfileRef::Localhost(p)) => Some(p.display().to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(
            paths,
            BTreeSet::from(["/abs/b.json".to_owned(), "/etc/hardrun/policies.d/profiles/a.json".to_owned()])
        );
    }

    #[test]
    fn merging_unions_constraints_and_keep_stricter_wins() {
        let a = parse("profile: runtime/default\nexisting: replace\n").unwrap();
        let b = parse("denySyscalls: [keyctl]\n").unwrap();
        let ab = a.clone().stricter(b.clone());
        assert_eq!(ab, b.clone().stricter(a.clone()));
        assert!(ab.at_least_as_strict_as(&a) && ab.at_least_as_strict_as(&b));
        assert!(!a.at_least_as_strict_as(&ab));
        assert!(!a.keeps_existing() && ab.keeps_existing());
        assert_eq!(a.clone().stricter(a.clone()), a);
        assert!(SeccompSettings::default().is_empty());
    }
}
