//! Reading seccomp profiles in the Docker / OCI JSON format (what Docker, containerd,
//! the Security Profiles Operator and `linux.seccomp` in a spec use) into the normal
//! form, with the same reading rules as runc and moby:
//! - `name` or `names`; `archMap` (the entry for the native architecture) or
//!   `architectures`, not both;
//! - Docker's `includes`/`excludes` on `caps` (the container's bounding set),
//!   `arches` (Go's name of the native architecture: `amd64`, `arm64`) and `minKernel`;
//! - a rule whose action is the default action is skipped (runc does);
//! - a rule with two comparisons on one argument means "any of them" (runc splits it
//!   into one rule per comparison);
//! - an unconditional rule and argument rules for one call: runc keeps only the
//!   unconditional one; hardrun gives the argument region the stricter of both.
//!
//! Unknown fields are errors (fail closed: a field hardrun does not read could be a
//! restriction it would silently drop), except `comment`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::BuildHasherDefault;

use oci_spec::runtime::{Arch, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};
use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use super::model::{Action, Cmp, Conj, Decision, Name, Op, Profile};
use super::Target;
use crate::policy::seccomp::{is_known_syscall, target_names, Fnv, MAX_ERRNO};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProfileError {
    #[error("line {line} column {column}: {message}")]
    Json { line: usize, column: usize, message: String },
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ProfileError {
    ProfileError::Invalid(msg.into())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawProfile<'a> {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    arch_map: Option<Vec<RawArchMap>>,
    #[serde(default)]
    flags: Option<Vec<String>>,
    #[serde(default)]
    listener_path: Option<String>,
    #[serde(default)]
    listener_metadata: Option<String>,
    #[serde(default, borrow)]
    syscalls: Option<Vec<RawSyscall<'a>>>,
    #[serde(default, rename = "comment")]
    _comment: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSyscall<'a> {
    // Borrowed where the input allows: a profile has hundreds of names.
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    names: Option<Vec<Cow<'a, str>>>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<RawArg>>,
    #[serde(default)]
    includes: Option<RawFilter>,
    #[serde(default)]
    excludes: Option<RawFilter>,
    #[serde(default, rename = "comment")]
    _comment: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFilter {
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawArg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
}

/// How names the kernel tables do not know are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// An error: a profile someone wrote for hardrun (a typo must not pass).
    Strict,
    /// Dropped when dropping cannot weaken the profile (the rule is no stricter than
    /// the default), an error otherwise: a spec's own section, which runc reads the
    /// same way (libseccomp cannot resolve such names either).
    Lenient,
}

/// What the profile is read for: the container's bounding set and the host.
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    pub caps: &'a BTreeSet<String>,
    pub target: &'a Target,
    pub names: Names,
}

/// A profile read into normal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub profile: Profile,
    /// Calls read stricter than runc would (see the module comment).
    pub approximated: BTreeSet<String>,
}

pub fn parse_bytes(bytes: &[u8], r: &Reading<'_>) -> Result<Parsed, ProfileError> {
    let raw: RawProfile = serde_json::from_slice(bytes).map_err(|e| json_error(&e))?;
    normalize(raw, r)
}

pub fn parse_value(v: &Value, r: &Reading<'_>) -> Result<Parsed, ProfileError> {
    let raw = RawProfile::deserialize(v).map_err(|e| invalid(e.to_string()))?;
    normalize(raw, r)
}

fn json_error(e: &serde_json::Error) -> ProfileError {
    let message = e.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
    ProfileError::Json { line: e.line(), column: e.column(), message }
}

fn action(a: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<Action, ProfileError> {
    // runc's default return value for ERRNO and TRACE without errnoRet is EPERM.
    let ret = errno_ret.unwrap_or(1);
    if ret > MAX_ERRNO {
        return Err(invalid(format!("errnoRet {ret} is larger than {MAX_ERRNO}")));
    }
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => Action::Allow,
        LinuxSeccompAction::ScmpActLog => Action::Log,
        LinuxSeccompAction::ScmpActNotify => Action::Notify,
        LinuxSeccompAction::ScmpActTrace => Action::Trace(ret),
        LinuxSeccompAction::ScmpActErrno => Action::Errno(ret),
        LinuxSeccompAction::ScmpActTrap => Action::Trap,
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => Action::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => Action::KillProcess,
    })
}

fn op(o: LinuxSeccompOperator) -> Op {
    match o {
        LinuxSeccompOperator::ScmpCmpNe => Op::Ne,
        LinuxSeccompOperator::ScmpCmpLt => Op::Lt,
        LinuxSeccompOperator::ScmpCmpLe => Op::Le,
        LinuxSeccompOperator::ScmpCmpEq => Op::Eq,
        LinuxSeccompOperator::ScmpCmpGe => Op::Ge,
        LinuxSeccompOperator::ScmpCmpGt => Op::Gt,
        LinuxSeccompOperator::ScmpCmpMaskedEq => Op::MaskedEq,
    }
}

/// `SCMP_ARCH_*` in its canonical spelling, or an error.
fn arch(name: &str) -> Result<String, ProfileError> {
    serde_json::from_value::<Arch>(Value::String(name.to_owned()))
        .ok()
        .and_then(|a| serde_json::to_value(a).ok())
        .and_then(|v| v.as_str().map(str::to_owned))
        .ok_or_else(|| invalid(format!("unknown architecture {name:?}")))
}

fn flag(name: &str) -> Result<String, ProfileError> {
    serde_json::from_value::<LinuxSeccompFilterFlag>(Value::String(name.to_owned()))
        .map(|_| name.to_owned())
        .map_err(|_| invalid(format!("unknown seccomp flag {name:?}")))
}

fn architectures(raw: &RawProfile<'_>, target: &Target) -> Result<BTreeSet<String>, ProfileError> {
    match (&raw.architectures, &raw.arch_map) {
        (Some(a), Some(m)) if !a.is_empty() && !m.is_empty() => {
            Err(invalid("both architectures and archMap are given; use one"))
        }
        (Some(a), _) if !a.is_empty() => a.iter().map(|s| arch(s)).collect(),
        (_, Some(m)) => {
            let mut out = BTreeSet::new();
            for entry in m {
                let main = arch(&entry.architecture)?;
                let subs = entry.sub_architectures.as_deref().unwrap_or_default();
                let subs: Vec<String> = subs.iter().map(|s| arch(s)).collect::<Result<_, _>>()?;
                if main == target.native_arch {
                    out.insert(main);
                    out.extend(subs);
                }
            }
            Ok(out)
        }
        _ => Ok(BTreeSet::new()),
    }
}

/// `4.8` or `5.10.0` as (major, minor).
fn kernel_version(s: &str) -> Result<(u32, u32), ProfileError> {
    let mut parts = s.trim().split('.');
    let bad = || invalid(format!("minKernel {s:?} is not a kernel version like 4.8"));
    let major = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let minor = parts.next().map_or(Ok(0), |p| p.parse().map_err(|_| bad()))?;
    Ok((major, minor))
}

/// Docker's includes/excludes test of one rule.
fn applies(s: &RawSyscall<'_>, r: &Reading<'_>) -> Result<bool, ProfileError> {
    let t = r.target;
    let kernel_at_least = |v: &str| -> Result<bool, ProfileError> {
        let want = kernel_version(v)?;
        // Unknown kernel version: assume a modern one.
        Ok(t.kernel.is_none_or(|k| k >= want))
    };
    if let Some(x) = &s.excludes {
        if x.arches.as_ref().is_some_and(|a| a.iter().any(|a| a == t.go_arch))
            || x.caps.as_ref().is_some_and(|c| c.iter().any(|c| r.caps.contains(c)))
        {
            return Ok(false);
        }
        if let Some(v) = &x.min_kernel {
            if kernel_at_least(v)? {
                return Ok(false);
            }
        }
    }
    if let Some(i) = &s.includes {
        if i.arches.as_ref().is_some_and(|a| !a.is_empty() && !a.iter().any(|a| a == t.go_arch))
            || i.caps.as_ref().is_some_and(|c| c.iter().any(|c| !r.caps.contains(c)))
        {
            return Ok(false);
        }
        if let Some(v) = &i.min_kernel {
            if !kernel_at_least(v)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The argument conditions of one rule as "any of these conjunctions" (`None`:
/// unconditional).
fn conditions(args: &[RawArg]) -> Result<Option<Vec<Conj>>, ProfileError> {
    if args.is_empty() {
        return Ok(None);
    }
    let mut cmps = Vec::with_capacity(args.len());
    for a in args {
        let index = u8::try_from(a.index).ok().filter(|i| *i < 6).ok_or_else(|| {
            invalid(format!("argument index {} is out of range (system calls have 6 arguments)", a.index))
        })?;
        cmps.push(Cmp { index, op: op(a.op), value: a.value, value_two: a.value_two.unwrap_or(0) });
    }
    let indexes: BTreeSet<u8> = cmps.iter().map(|c| c.index).collect();
    if indexes.len() < cmps.len() {
        // runc: one rule per comparison.
        return Ok(Some(cmps.into_iter().map(|c| vec![c]).collect()));
    }
    cmps.sort();
    Ok(Some(vec![cmps]))
}

#[derive(Default)]
struct Acc {
    unconditional: Option<Action>,
    conditional: Vec<(Vec<Conj>, Action)>,
}

fn normalize(raw: RawProfile<'_>, r: &Reading<'_>) -> Result<Parsed, ProfileError> {
    let default = action(raw.default_action, raw.default_errno_ret)?;
    let arches = architectures(&raw, r.target)?;
    let flags = raw.flags.iter().flatten().map(|f| flag(f)).collect::<Result<_, _>>()?;
    let listener = raw.listener_path.clone().map(|p| (p, raw.listener_metadata.clone()));
    let mut acc: HashMap<&'static str, Acc, BuildHasherDefault<Fnv>> = HashMap::default();
    let mut unknown: BTreeSet<String> = BTreeSet::new();
    for (i, s) in raw.syscalls.iter().flatten().enumerate() {
        let at = |m: String| invalid(format!("syscalls[{i}]: {m}"));
        let names: Vec<&str> = match (&s.name, &s.names) {
            (Some(_), Some(n)) if !n.is_empty() => return Err(at("use either name or names".into())),
            (Some(n), _) => vec![n.as_ref()],
            (None, Some(n)) => n.iter().map(AsRef::as_ref).collect(),
            (None, None) => Vec::new(),
        };
        let act = action(s.action, s.errno_ret).map_err(|e| at(e.to_string()))?;
        let when = conditions(s.args.as_deref().unwrap_or_default()).map_err(|e| at(e.to_string()))?;
        let skip = !applies(s, r).map_err(|e| at(e.to_string()))? || act == default;
        for name in &names {
            // A typo is an error even in a rule that does not apply here.
            if !is_known_syscall(name) && (r.names == Names::Strict || (!skip && act > default)) {
                unknown.insert((*name).to_owned());
            }
        }
        if skip {
            continue;
        }
        for name in names {
            // Names no architecture of the filter has can never match.
            let Some(name) = target_names().get(name) else { continue };
            let a = acc.entry(*name).or_default();
            match &when {
                None => a.unconditional = Some(a.unconditional.map_or(act, |u| u.max(act))),
                Some(w) => a.conditional.push((w.clone(), act)),
            }
        }
    }
    if !unknown.is_empty() {
        let list: Vec<&str> = unknown.iter().map(String::as_str).collect();
        return Err(invalid(format!("unknown system call names: {}", list.join(", "))));
    }
    let mut approximated = BTreeSet::new();
    let mut decided: Vec<(Name, Decision)> = Vec::with_capacity(acc.len());
    for (name, a) in acc {
        let (d, approx) = decide(a, default);
        if approx {
            approximated.insert(name.to_owned());
        }
        if d != Decision::Always(default) {
            decided.push((Name::Borrowed(name), d));
        }
    }
    // Sorted first, the map is built in one pass.
    decided.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let syscalls: BTreeMap<Name, Decision> = decided.into_iter().collect();
    Ok(Parsed { profile: Profile { default, arches, syscalls, flags, listener }, approximated })
}

/// One call's rules as one decision; `true` when stricter than runc's reading.
fn decide(a: Acc, default: Action) -> (Decision, bool) {
    let Some(cond_action) = a.conditional.iter().map(|(_, act)| *act).max() else {
        return (Decision::Always(a.unconditional.unwrap_or(default)), false);
    };
    let mixed = a.conditional.iter().any(|(_, act)| *act != cond_action);
    let when: Vec<Conj> = a.conditional.into_iter().flat_map(|(w, _)| w).collect();
    match a.unconditional {
        Some(u) => (Decision::cond(when, u.max(cond_action), u), cond_action > u),
        None => (Decision::cond(when, cond_action, default), mixed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::seccomp::Target;

    fn read(json: &str, caps: &[&str]) -> Result<Parsed, ProfileError> {
        let caps: BTreeSet<String> = caps.iter().map(|s| s.to_string()).collect();
        let target = Target::for_tests();
        parse_bytes(json.as_bytes(), &Reading { caps: &caps, target: &target, names: Names::Strict })
    }

    const A: [u64; 6] = [0; 6];

    #[test]
    fn oci_format() {
        let p = read(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
                "flags":["SECCOMP_FILTER_FLAG_LOG"],
                "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
                            {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
                            {"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
                            {"names":["socket"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
            &[],
        )
        .unwrap()
        .profile;
        assert_eq!(p.default, Action::Errno(38));
        assert_eq!(p.arches, BTreeSet::from(["SCMP_ARCH_X86".to_owned(), "SCMP_ARCH_X86_64".to_owned()]));
        assert!(p.flags.contains("SECCOMP_FILTER_FLAG_LOG"));
        assert_eq!(p.eval("read", &A), Action::Allow);
        assert_eq!(p.eval("mkdir", &A), Action::Errno(13));
        assert!(!p.syscalls.contains_key("getpid"), "same as the default: skipped");
        assert_eq!(p.eval("socket", &[1, 0, 0, 0, 0, 0]), Action::Allow);
        assert_eq!(p.eval("socket", &[2, 0, 0, 0, 0, 0]), Action::Errno(38));
        assert_eq!(p.eval("open_tree", &A), Action::Errno(38));
    }

    #[test]
    fn docker_format_with_conditions() {
        let json = r#"{"defaultAction":"SCMP_ACT_ERRNO",
            "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]},
                       {"architecture":"SCMP_ARCH_AARCH64","subArchitectures":["SCMP_ARCH_ARM"]},
                       {"architecture":"SCMP_ARCH_RISCV64","subArchitectures":null}],
            "syscalls":[
              {"name":"chroot","action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_CHROOT"]},"comment":"x"},
              {"names":["clone3"],"action":"SCMP_ACT_ERRNO","errnoRet":38,"excludes":{"caps":["CAP_SYS_ADMIN"]}},
              {"names":["arch_prctl"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["amd64","x32"]}},
              {"names":["set_tls"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["arm","arm64"]}},
              {"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"4.8"}},
              {"names":["kexec_load"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"99.0"}}
            ]}"#;
        let p = read(json, &["CAP_SYS_CHROOT"]).unwrap().profile;
        assert_eq!(p.arches.len(), 3);
        assert_eq!(p.eval("chroot", &A), Action::Allow);
        assert_eq!(p.eval("clone3", &A), Action::Errno(38));
        assert_eq!(p.eval("arch_prctl", &A), Action::Allow);
        assert_eq!(p.eval("set_tls", &A), Action::Errno(1));
        assert_eq!(p.eval("ptrace", &A), Action::Allow);
        assert_eq!(p.eval("kexec_load", &A), Action::Errno(1));
        let p = read(json, &["CAP_SYS_ADMIN"]).unwrap().profile;
        assert_eq!(p.eval("chroot", &A), Action::Errno(1));
        assert_eq!(p.eval("clone3", &A), Action::Errno(1));
    }

    #[test]
    fn repeated_argument_index_means_any() {
        let p = read(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["personality"],"action":"SCMP_ACT_ALLOW",
               "args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"},{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#,
            &[],
        )
        .unwrap()
        .profile;
        assert_eq!(p.eval("personality", &[8, 0, 0, 0, 0, 0]), Action::Allow);
        assert_eq!(p.eval("personality", &[0, 0, 0, 0, 0, 0]), Action::Allow);
        assert_eq!(p.eval("personality", &[1, 0, 0, 0, 0, 0]), Action::Errno(1));
    }

    #[test]
    fn mixed_rules_read_stricter() {
        // Blocklist with a conditional denial and an unconditional allow of the same
        // call: runc would keep only the allow.
        let parsed = read(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["socket"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":16,"op":"SCMP_CMP_EQ"}]},
                {"names":["socket"],"action":"SCMP_ACT_LOG"}]}"#,
            &[],
        )
        .unwrap();
        assert_eq!(parsed.profile.eval("socket", &[16, 0, 0, 0, 0, 0]), Action::Errno(1));
        assert_eq!(parsed.profile.eval("socket", &[2, 0, 0, 0, 0, 0]), Action::Log);
        assert!(parsed.approximated.contains("socket"));
    }

    #[test]
    fn errors_name_their_place() {
        let e = read("{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [\n}", &[]).unwrap_err();
        assert!(matches!(e, ProfileError::Json { line: 4, .. }), "{e}");
        let e = read(r#"{"defaultAction":"SCMP_ACT_EXPLODE"}"#, &[]).unwrap_err();
        assert!(matches!(e, ProfileError::Json { .. }) && e.to_string().contains("SCMP_ACT_EXPLODE"), "{e}");
        let e = read(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mkdirr","read","openn"],"action":"SCMP_ACT_ALLOW"}]}"#, &[])
            .unwrap_err();
        assert_eq!(e.to_string(), "unknown system call names: mkdirr, openn");
        let e = read(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultAcion":"x"}"#, &[]).unwrap_err();
        assert!(e.to_string().contains("defaultAcion"), "{e}");
        for bad in [
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_Z80"]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86"],"archMap":[{"architecture":"SCMP_ARCH_X86_64"}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"name":"read","names":["write"],"action":"SCMP_ACT_ALLOW"}]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":70000}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","flags":["SECCOMP_FILTER_FLAG_NONSENSE"]}"#,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{"minKernel":"four"}}]}"#,
        ] {
            assert!(read(bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn lenient_names_drop_only_harmless_rules() {
        let caps = BTreeSet::new();
        let target = Target::for_tests();
        let r = Reading { caps: &caps, target: &target, names: Names::Lenient };
        let allow = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","future_call"],"action":"SCMP_ACT_ALLOW"}]}"#;
        assert_eq!(parse_bytes(allow.as_bytes(), &r).unwrap().profile.eval("read", &A), Action::Allow);
        let deny =
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["future_call"],"action":"SCMP_ACT_ERRNO"}]}"#;
        assert!(parse_bytes(deny.as_bytes(), &r).is_err());
    }
}
