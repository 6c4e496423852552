//! The normal form written out as an OCI `linux.seccomp` object (built with
//! oci-spec's types). The rules for one call never overlap: libseccomp lets an
//! unconditional rule silently replace argument rules of another action, so a
//! decision is written as argument rules for its `then` region on top of the default
//! action, and its `otherwise` region, when that is not the default, as argument rules
//! for the negated comparisons.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};
use serde_json::Value;

use super::model::{Action, Cmp, Conj, Decision, Op, Profile};

/// A written profile and the calls that had to be written stricter than the profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub value: Value,
    pub approximated: BTreeSet<String>,
    /// Entries in `syscalls`.
    pub rules: usize,
}

fn oci_action(a: Action) -> (LinuxSeccompAction, Option<u32>) {
    match a {
        Action::Allow => (LinuxSeccompAction::ScmpActAllow, None),
        Action::Log => (LinuxSeccompAction::ScmpActLog, None),
        Action::Notify => (LinuxSeccompAction::ScmpActNotify, None),
        Action::Trace(n) => (LinuxSeccompAction::ScmpActTrace, Some(n)),
        Action::Errno(n) => (LinuxSeccompAction::ScmpActErrno, Some(n)),
        Action::Trap => (LinuxSeccompAction::ScmpActTrap, None),
        // SCMP_ACT_KILL is the spelling every runc version knows.
        Action::KillThread => (LinuxSeccompAction::ScmpActKill, None),
        Action::KillProcess => (LinuxSeccompAction::ScmpActKillProcess, None),
    }
}

fn oci_op(op: Op) -> LinuxSeccompOperator {
    match op {
        Op::Ne => LinuxSeccompOperator::ScmpCmpNe,
        Op::Lt => LinuxSeccompOperator::ScmpCmpLt,
        Op::Le => LinuxSeccompOperator::ScmpCmpLe,
        Op::Eq => LinuxSeccompOperator::ScmpCmpEq,
        Op::Ge => LinuxSeccompOperator::ScmpCmpGe,
        Op::Gt => LinuxSeccompOperator::ScmpCmpGt,
        Op::MaskedEq => LinuxSeccompOperator::ScmpCmpMaskedEq,
    }
}

fn negate(c: Cmp) -> Option<Cmp> {
    let op = match c.op {
        Op::Ne => Op::Eq,
        Op::Eq => Op::Ne,
        Op::Lt => Op::Ge,
        Op::Ge => Op::Lt,
        Op::Le => Op::Gt,
        Op::Gt => Op::Le,
        Op::MaskedEq => return None,
    };
    Some(Cmp { op, ..c })
}

/// The rules one call needs: (action, conjunction) pairs on top of `default`, and
/// whether they are stricter than the decision.
fn rules(d: &Decision, default: Action) -> (Vec<(Action, Conj)>, bool) {
    let (when, then, otherwise) = match d {
        Decision::Always(a) if *a == default => return (Vec::new(), false),
        Decision::Always(a) => return (vec![(*a, Vec::new())], false),
        Decision::Cond { when, then, otherwise } => (when, *then, *otherwise),
    };
    let then_rules = |out: &mut Vec<(Action, Conj)>| {
        if then != default {
            out.extend(when.iter().map(|c| (then, c.clone())));
        }
    };
    let mut out = Vec::new();
    if otherwise == default {
        then_rules(&mut out);
        return (out, false);
    }
    if otherwise < default {
        // The default is stricter than `otherwise`: let it have that region.
        then_rules(&mut out);
        return (out, true);
    }
    if let [conj] = when.as_slice() {
        if let Some(negated) = conj.iter().map(|c| negate(*c)).collect::<Option<Vec<Cmp>>>() {
            then_rules(&mut out);
            out.extend(negated.into_iter().map(|c| (otherwise, vec![c])));
            return (out, false);
        }
    }
    let strictest = then.max(otherwise);
    (if strictest == default { Vec::new() } else { vec![(strictest, Vec::new())] }, true)
}

fn arg(c: &Cmp) -> Result<LinuxSeccompArg, String> {
    let b = LinuxSeccompArgBuilder::default().index(usize::from(c.index)).value(c.value).op(oci_op(c.op));
    let b = if c.op == Op::MaskedEq { b.value_two(c.value_two) } else { b };
    b.build().map_err(|e| e.to_string())
}

fn syscall(names: Vec<String>, action: Action, conj: &[Cmp]) -> Result<LinuxSyscall, String> {
    let (act, errno) = oci_action(action);
    let mut b = LinuxSyscallBuilder::default().names(names).action(act);
    if let Some(e) = errno {
        b = b.errno_ret(e);
    }
    if !conj.is_empty() {
        b = b.args(conj.iter().map(arg).collect::<Result<Vec<_>, _>>()?);
    }
    b.build().map_err(|e| e.to_string())
}

fn parse_enum<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(Value::String(s.to_owned())).map_err(|_| format!("unknown value {s:?}"))
}

/// Writes `p` as `linux.seccomp`.
pub fn emit(p: &Profile) -> Result<Emitted, String> {
    // (conditional?, action, conjunction) → names; unconditional groups come first.
    let mut groups: BTreeMap<(bool, Action, Conj), Vec<String>> = BTreeMap::new();
    let mut approximated = BTreeSet::new();
    for (name, d) in &p.syscalls {
        let (rs, approx) = rules(d, p.default);
        if approx {
            approximated.insert(name.to_string());
        }
        for (action, conj) in rs {
            groups.entry((!conj.is_empty(), action, conj)).or_default().push(name.to_string());
        }
    }
    let syscalls: Vec<LinuxSyscall> =
        groups.into_iter().map(|((_, action, conj), names)| syscall(names, action, &conj)).collect::<Result<_, _>>()?;
    let rules = syscalls.len();
    let (default_action, default_errno) = oci_action(p.default);
    let mut b = LinuxSeccompBuilder::default().default_action(default_action).syscalls(syscalls);
    if let Some(e) = default_errno {
        b = b.default_errno_ret(e);
    }
    if !p.arches.is_empty() {
        b = b.architectures(p.arches.iter().map(|a| parse_enum::<Arch>(a)).collect::<Result<Vec<_>, _>>()?);
    }
    if !p.flags.is_empty() {
        let flags = p.flags.iter().map(|f| parse_enum::<LinuxSeccompFilterFlag>(f)).collect::<Result<Vec<_>, _>>()?;
        b = b.flags(flags);
    }
    if let Some((path, metadata)) = &p.listener {
        b = b.listener_path(PathBuf::from(path));
        if let Some(m) = metadata {
            b = b.listener_metadata(m.clone());
        }
    }
    let seccomp: LinuxSeccomp = b.build().map_err(|e| e.to_string())?;
    let value = serde_json::to_value(seccomp).map_err(|e| e.to_string())?;
    Ok(Emitted { value, approximated, rules })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::seccomp::docker::{parse_value, Names, Reading};
    use crate::enforce::seccomp::model::Name;
    use crate::enforce::seccomp::Target;
    use serde_json::json;

    const EPERM: Action = Action::Errno(1);

    fn profile(default: Action, calls: Vec<(&'static str, Decision)>) -> Profile {
        let mut p = Profile { default, ..Profile::allow_all() };
        for (n, d) in calls {
            p.set(Name::Borrowed(n), d);
        }
        p
    }

    /// Emitting and reading back gives the same profile (what runc will enforce).
    fn round_trip(p: &Profile) -> Profile {
        let e = emit(p).unwrap();
        let caps = BTreeSet::new();
        let target = Target::for_tests();
        parse_value(&e.value, &Reading { caps: &caps, target: &target, names: Names::Strict }).unwrap().profile
    }

    #[test]
    fn writes_grouped_oci_json() {
        let mut p = profile(
            EPERM,
            vec![
                ("read", Decision::Always(Action::Allow)),
                ("write", Decision::Always(Action::Allow)),
                ("mkdir", Decision::Always(Action::Errno(13))),
                ("personality", Decision::cond(vec![vec![Cmp::new(0, Op::Eq, 8)]], Action::Allow, EPERM)),
                (
                    "clone",
                    Decision::cond(
                        vec![vec![Cmp { index: 0, op: Op::MaskedEq, value: 0x7E02_0000, value_two: 0 }]],
                        Action::Allow,
                        EPERM,
                    ),
                ),
            ],
        );
        p.arches.insert("SCMP_ARCH_X86".into());
        let e = emit(&p).unwrap();
        assert_eq!(
            e.value,
            json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86"],
                "syscalls": [
                    {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                    {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                    {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                ]
            })
        );
        assert!(e.approximated.is_empty());
        assert_eq!(round_trip(&p), p);
    }

    #[test]
    fn otherwise_region_is_written_with_negated_comparisons() {
        // Default LOG (an audit profile), `ioctl` allowed for fd 0..3 with request 7
        // and answered EPERM elsewhere.
        let cond = Decision::cond(vec![vec![Cmp::new(0, Op::Lt, 3), Cmp::new(1, Op::Eq, 7)]], Action::Allow, EPERM);
        let p = profile(Action::Log, vec![("ioctl", cond)]);
        let e = emit(&p).unwrap();
        assert!(e.approximated.is_empty());
        assert_eq!(
            e.value["syscalls"],
            json!([
                {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_LT"}, {"index": 1, "value": 7, "op": "SCMP_CMP_EQ"}]},
                {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_GE"}]},
                {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "args": [{"index": 1, "value": 7, "op": "SCMP_CMP_NE"}]},
            ])
        );
    }

    #[test]
    fn unwritable_otherwise_regions_get_the_stricter_action() {
        let masked = Cmp { index: 0, op: Op::MaskedEq, value: 1, value_two: 0 };
        let p = profile(Action::Allow, vec![("ioctl", Decision::cond(vec![vec![masked]], Action::Log, EPERM))]);
        let e = emit(&p).unwrap();
        assert!(e.approximated.contains("ioctl"));
        assert_eq!(round_trip(&p).decision("ioctl"), Decision::Always(EPERM));
        // A default stricter than `otherwise` takes that region.
        let p = profile(Action::KillProcess, vec![("read", Decision::cond(vec![vec![masked]], Action::Allow, EPERM))]);
        let e = emit(&p).unwrap();
        assert!(e.approximated.contains("read"));
        let back = round_trip(&p);
        assert_eq!(back.eval("read", &[0; 6]), Action::Allow);
        assert_eq!(back.eval("read", &[1, 0, 0, 0, 0, 0]), Action::KillProcess);
    }
}
