use std::collections::BTreeSet;
use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::docker::{parse_bytes, Names, Reading};
use super::model::{Action, Decision, Profile};
use super::*;
use crate::enforce::Action as FindingAction;
use crate::policy::seccomp::{Errno, Existing, SyscallName};
use crate::policy::Strictness;

const A: [u64; 6] = [0; 6];

/// Docker's default bounding set (what moby's allow-list fixture was derived for).
const DOCKER_CAPS: &[&str] = crate::policy::CONTAINERD_DEFAULT_CAPS;

fn caps(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn all_caps() -> BTreeSet<String> {
    let names = "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE \
        NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO SYS_CHROOT \
        SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE \
        AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ \
        PERFMON BPF CHECKPOINT_RESTORE";
    names.split_whitespace().map(|n| format!("CAP_{n}")).collect()
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/seccomp")
}

fn fixture_list(name: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(fixtures().join(name)).expect("fixture (../shared/fixtures/seccomp)");
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

fn target() -> Target {
    Target::for_tests()
}

fn constraint(yaml: &str) -> SeccompSettings {
    serde_yaml::from_str(yaml).unwrap()
}

/// Names a profile allows for some arguments.
fn allowed(p: &Profile) -> BTreeSet<String> {
    p.syscalls
        .iter()
        .filter(|(_, d)| match d {
            Decision::Always(a) => a.allows(),
            Decision::Cond { then, otherwise, .. } => then.allows() || otherwise.allows(),
        })
        .map(|(n, _)| n.to_string())
        .collect()
}

fn conditional(p: &Profile) -> BTreeSet<String> {
    p.syscalls.iter().filter(|(_, d)| matches!(d, Decision::Cond { .. })).map(|(n, _)| n.to_string()).collect()
}

fn moby_profile(caps: &BTreeSet<String>) -> Profile {
    let bytes = std::fs::read(fixtures().join("moby-default.json")).unwrap();
    let t = target();
    parse_bytes(&bytes, &Reading { caps, target: &t, names: Names::Strict }).unwrap().profile
}

// ------------------------------------------------------------ runtime/default vs moby

/// hardrun's default profile is moby's, read the way moby reads it, for any bounding
/// set: same default, architectures, and decision (with argument filters) per call.
/// Names of architectures hardrun does not build for are absent from both.
#[test]
fn runtime_default_equals_mobys_profile_for_these_capabilities() {
    for set in [caps(&[]), caps(DOCKER_CAPS), all_caps(), caps(&["CAP_SYS_PTRACE", "CAP_BPF"])] {
        assert_eq!(default::build(&set, &target()), moby_profile(&set), "caps {set:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn runtime_default_equals_moby_for_any_bounding_set(set in prop::sample::subsequence(all_caps().into_iter().collect::<Vec<_>>(), 0..12)) {
        let set: BTreeSet<String> = set.into_iter().collect();
        prop_assert_eq!(default::build(&set, &target()), moby_profile(&set));
    }
}

/// The published allow-lists (x86_64): everything moby allows is allowed, and every
/// difference is a documented choice (docs/seccomp.md, "Deviations").
#[cfg(target_arch = "x86_64")]
#[test]
fn allows_what_moby_allows_per_the_fixture_lists() {
    // Not an x86_64, x86 or x32 system call: left out of hardrun's x86 filter.
    let not_on_target = BTreeSet::from(["riscv_hwprobe".to_owned()]);
    for (file, set) in [("moby-allowed-default-caps.txt", caps(DOCKER_CAPS)), ("moby-allowed-no-caps.txt", caps(&[]))] {
        let ours = allowed(&default::build(&set, &target()));
        let moby = fixture_list(file);
        let missing: BTreeSet<String> = moby.difference(&ours).cloned().collect();
        assert_eq!(missing, not_on_target, "{file}: allowed by moby, not by hardrun");
        let extra: BTreeSet<&String> = ours.difference(&moby).collect();
        assert!(extra.is_empty(), "{file}: allowed by hardrun, not by moby: {extra:?}");
        assert_eq!(conditional(&default::build(&set, &target())), fixture_list("moby-allowed-args-conditional.txt"));
    }
    // containerd's unconditional list: hardrun, like moby, wants CAP_SYS_ADMIN for the
    // lsm_* calls.
    let ours = allowed(&default::build(&caps(DOCKER_CAPS), &target()));
    let containerd_only: BTreeSet<String> =
        fixture_list("containerd-allowed-base.txt").difference(&ours).cloned().collect();
    assert_eq!(containerd_only, caps(&["lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr"]));
}

#[test]
fn runtime_default_follows_capabilities() {
    let none = default::build(&caps(&[]), &target());
    let admin = default::build(&caps(&["CAP_SYS_ADMIN"]), &target());
    for call in ["mount", "umount2", "unshare", "setns", "bpf", "fsopen", "open_tree"] {
        assert_eq!(none.eval(call, &A), Action::Errno(1), "{call}");
        assert_eq!(admin.eval(call, &A), Action::Allow, "{call}");
    }
    assert_eq!(none.eval("clone3", &A), Action::Errno(38));
    assert_eq!(admin.eval("clone3", &A), Action::Allow);
    let clone_newuser = [0x1000_0000 | 17, 0, 0, 0, 0, 0];
    assert_eq!(none.eval("clone", &[17, 0, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(none.eval("clone", &clone_newuser), Action::Errno(1));
    assert_eq!(admin.eval("clone", &clone_newuser), Action::Allow);
    assert_eq!(none.eval("socket", &[2, 1, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(none.eval("socket", &[40, 1, 0, 0, 0, 0]), Action::Errno(1));
    assert_eq!(none.eval("socket", &[38, 5, 0, 0, 0, 0]), Action::Errno(1));
    assert_eq!(none.eval("personality", &[0xffff_ffff, 0, 0, 0, 0, 0]), Action::Allow);
    assert_eq!(none.eval("personality", &[0x0040_0000, 0, 0, 0, 0, 0]), Action::Errno(1));
    // ptrace: allowed from 4.8 on, before only with CAP_SYS_PTRACE.
    let old = Target::build_target(Some((4, 4)));
    assert_eq!(default::build(&caps(&[]), &old).eval("ptrace", &A), Action::Errno(1));
    assert_eq!(default::build(&caps(&["CAP_SYS_PTRACE"]), &old).eval("ptrace", &A), Action::Allow);
    assert_eq!(none.eval("ptrace", &A), Action::Allow);
    assert_eq!(none.default, Action::Errno(1));
    assert_eq!(none.arches.len(), target().arches.len());
}

#[test]
fn runtime_default_is_cached_per_relevant_capabilities() {
    let a = default::profile(&caps(&["CAP_CHOWN"]), &target());
    let b = default::profile(&caps(&["CAP_KILL"]), &target());
    assert!(Arc::ptr_eq(&a, &b), "CAP_CHOWN and CAP_KILL change nothing");
    let c = default::profile(&caps(&["CAP_SYS_ADMIN"]), &target());
    assert!(!Arc::ptr_eq(&a, &c));
    assert_eq!(*c, default::build(&caps(&["CAP_SYS_ADMIN"]), &target()));
}

// ------------------------------------------------------------ plan

fn spec_without_seccomp() -> Value {
    json!({"ociVersion": "1.0.2", "process": {"args": ["sh"]}, "linux": {"namespaces": []}})
}

fn apply(spec: &Value, findings: &[Finding]) -> Value {
    let mut out = spec.clone();
    for f in findings {
        f.patch.apply(&mut out).unwrap();
    }
    out
}

fn compiled_profile(settings: &SeccompSettings, spec: &Value) -> Profile {
    compile(settings, &caps(&[]), spec, &target()).unwrap().unwrap().profile
}

#[test]
fn no_constraint_leaves_the_spec_alone() {
    let spec = json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW"}}});
    assert!(plan_for(&SeccompSettings::default(), &caps(&[]), &spec, &target()).is_empty());
}

#[test]
fn a_filter_that_allows_everything_is_not_installed() {
    // riscv_hwprobe does not exist on the filter's architectures.
    #[cfg(target_arch = "x86_64")]
    assert!(plan_for(&constraint("denySyscalls: [riscv_hwprobe]"), &caps(&[]), &spec_without_seccomp(), &target())
        .is_empty());
    let unconfined = SeccompSettings::single(SeccompConstraint {
        profile: Some(crate::policy::seccomp::ProfileRef::Unconfined),
        deny_syscalls: BTreeSet::new(),
        allow_syscalls: BTreeSet::new(),
        errno: Errno::EPERM,
        existing: Existing::KeepStricter,
    });
    assert!(plan_for(&unconfined, &caps(&[]), &spec_without_seccomp(), &target()).is_empty());
}

#[test]
fn runtime_default_on_an_unconfined_spec() {
    let spec = spec_without_seccomp();
    let f = plan_for(&constraint("profile: runtime/default"), &caps(DOCKER_CAPS), &spec, &target());
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!((f[0].rule.as_str(), f[0].action), (RULE_UNCONFINED, FindingAction::Mutate));
    assert!(f[0].message.contains("runtime/default"), "{}", f[0].message);
    let out = apply(&spec, &f);
    let seccomp = &out["linux"]["seccomp"];
    assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(seccomp["defaultErrnoRet"], 1);
    assert!(seccomp["architectures"].as_array().unwrap().contains(&json!(target().native_arch)));
    assert_eq!(out["linux"]["namespaces"], json!([]), "the rest of the spec is kept");
    // One allow list, clone3 → ENOSYS, and the argument rules of clone (1),
    // personality (5) and socket (3).
    assert_eq!(seccomp["syscalls"].as_array().unwrap().len(), 11, "{seccomp}");
    // The section is valid for oci-spec and reads back to the same profile.
    let _: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(seccomp.clone()).unwrap();
    let c = caps(DOCKER_CAPS);
    let t = target();
    let back = docker::parse_value(seccomp, &Reading { caps: &c, target: &t, names: Names::Strict }).unwrap();
    assert_eq!(back.profile, default::build(&c, &t));
    // Applying the same policy again changes nothing.
    assert!(plan_for(&constraint("profile: runtime/default"), &c, &out, &t).is_empty());
}

#[test]
fn adds_linux_when_the_spec_has_none() {
    let spec = json!({"process": {"args": ["sh"]}});
    let f = plan_for(&constraint("profile: runtime/default"), &caps(&[]), &spec, &target());
    let out = apply(&spec, &f);
    assert!(out["linux"]["seccomp"].is_object());
    let bad = json!({"linux": 5});
    assert_eq!(
        plan_for(&constraint("profile: runtime/default"), &caps(&[]), &bad, &target())[0].rule,
        RULE_SPEC_UNPARSABLE
    );
}

#[test]
fn deny_syscalls_answer_with_the_configured_errno() {
    let s = constraint("profile: runtime/default\ndenySyscalls: [mkdir, mkdirat]\nerrno: EACCES\n");
    let p = compiled_profile(&s, &spec_without_seccomp());
    assert_eq!(p.eval("mkdir", &A), Action::Errno(13));
    assert_eq!(p.eval("mkdirat", &A), Action::Errno(13));
    assert_eq!(p.eval("rmdir", &A), Action::Allow);
    // Without a base profile the constraint only denies.
    let p = compiled_profile(&constraint("denySyscalls: [keyctl]\n"), &spec_without_seccomp());
    assert_eq!(p.default, Action::Allow);
    assert_eq!(p.eval("keyctl", &A), Action::Errno(1));
    assert_eq!(p.eval("mount", &A), Action::Allow);
}

#[test]
fn an_allow_in_one_policy_does_not_lift_another_policys_denial() {
    let a = constraint("profile: runtime/default\nallowSyscalls: [mount]\n");
    let b = constraint("profile: runtime/default\n");
    let p = compiled_profile(&a, &spec_without_seccomp());
    assert_eq!(p.eval("mount", &A), Action::Allow);
    let p = compiled_profile(&a.stricter(b), &spec_without_seccomp());
    assert_eq!(p.eval("mount", &A), Action::Errno(1));
}

#[test]
fn keep_stricter_intersects_with_the_specs_own_profile() {
    let spec = json!({"linux": {"seccomp": {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                     {"names": ["future_call"], "action": "SCMP_ACT_ALLOW"}]
    }}});
    let keep = constraint("profile: runtime/default\n");
    let p = compiled_profile(&keep, &spec);
    assert_eq!(p.eval("mkdir", &A), Action::Errno(13));
    assert_eq!(p.eval("mount", &A), Action::Errno(1));
    let f = plan_for(&keep, &caps(&[]), &spec, &target());
    assert_eq!(f[0].rule, RULE_PROFILE);
    assert!(f[0].message.contains("the spec's own profile"), "{}", f[0].message);
    let replace = constraint("profile: runtime/default\nexisting: replace\n");
    assert_eq!(compiled_profile(&replace, &spec).eval("mkdir", &A), Action::Allow);
    // One policy keeping it is enough.
    assert_eq!(
        compiled_profile(&replace.stricter(constraint("denySyscalls: [keyctl]")), &spec).eval("mkdir", &A),
        Action::Errno(13)
    );
}

#[test]
fn an_unreadable_spec_section_denies() {
    for own in [
        json!({"defaultAction": "SCMP_ACT_SOMETHING"}),
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["future_call"], "action": "SCMP_ACT_ERRNO"}]}),
        json!("runtime/default"),
    ] {
        let spec = json!({"linux": {"seccomp": own}});
        let f = plan_for(&constraint("profile: runtime/default"), &caps(&[]), &spec, &target());
        assert_eq!((f[0].rule.as_str(), f[0].action), (RULE_SPEC_UNPARSABLE, FindingAction::Deny), "{own}");
        // `replace` does not need to read it.
        let f = plan_for(&constraint("profile: runtime/default\nexisting: replace"), &caps(&[]), &spec, &target());
        assert_eq!(f[0].action, FindingAction::Mutate);
    }
}

#[test]
fn localhost_profiles() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("p.json"),
        r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"names":["read","write","exit_group","mount"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    let mut s = constraint("profile: localhost/p.json\n");
    s.resolve_paths(d.path());
    let p = compiled_profile(&s, &spec_without_seccomp());
    assert_eq!(p.eval("read", &A), Action::Allow);
    assert_eq!(p.eval("open", &A), Action::Errno(38));
    // With runtime/default: both must allow; ENOSYS wins between the two errnos.
    let both = s.clone().stricter(constraint("profile: runtime/default"));
    let p = compiled_profile(&both, &spec_without_seccomp());
    assert_eq!(p.eval("read", &A), Action::Allow);
    assert_eq!(p.eval("mount", &A), Action::Errno(1));
    assert_eq!(p.eval("keyctl", &A), Action::Errno(38));
    assert_eq!(p.arches, BTreeSet::from(["SCMP_ARCH_X86_64".to_owned()]));

    let deny = |yaml: &str| {
        let mut s = constraint(yaml);
        s.resolve_paths(d.path());
        let f = plan_for(&s, &caps(&[]), &spec_without_seccomp(), &target());
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].rule.as_str(), f[0].action), (RULE_LOCALHOST_INVALID, FindingAction::Deny));
        f[0].message.clone()
    };
    assert!(deny("profile: localhost/missing.json").contains("missing.json"));
    std::fs::write(d.path().join("bad.json"), "{\"defaultAction\": \"SCMP_ACT_ERRNO\",\n \"syscalls\": [}").unwrap();
    let m = deny("profile: localhost/bad.json");
    assert!(m.contains("bad.json") && m.contains("line 2 column"), "{m}");
    std::fs::write(
        d.path().join("typo.json"),
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["raed"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    assert!(deny("profile: localhost/typo.json").contains("unknown system call names: raed"));
    std::fs::write(d.path().join("big.json"), vec![b' '; MAX_LOCALHOST_PROFILE_BYTES as usize + 1]).unwrap();
    assert!(deny("profile: localhost/big.json").contains("larger than"));
}

#[test]
fn notification_agents_must_agree() {
    let d = tempfile::tempdir().unwrap();
    let write = |name: &str, socket: &str| {
        let body = json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": socket,
                          "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]});
        std::fs::write(d.path().join(name), body.to_string()).unwrap();
    };
    write("a.json", "/run/a.sock");
    write("b.json", "/run/b.sock");
    let mut s = constraint("profile: localhost/a.json").stricter(constraint("profile: localhost/b.json"));
    s.resolve_paths(d.path());
    let f = plan_for(&s, &caps(&[]), &spec_without_seccomp(), &target());
    assert_eq!(f[0].rule, RULE_CONFLICT);
}

#[test]
fn approximations_are_reported() {
    // A blocklist spec profile that refuses netlink sockets, kept under runtime/default
    // (which allows socket families by range): `a0 < 38 && a0 != 16` is not one
    // libseccomp rule, so socket is refused entirely, and the finding says so.
    let spec = json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}]}]}}});
    let f = plan_for(&constraint("profile: runtime/default"), &caps(&[]), &spec, &target());
    let info = f.iter().find(|f| f.rule == RULE_APPROXIMATED).expect("approximation finding");
    assert_eq!(info.action, FindingAction::Info);
    assert!(info.message.contains("socket"));
    assert_eq!(
        compiled_profile(&constraint("profile: runtime/default"), &spec).eval("socket", &[2, 0, 0, 0, 0, 0]),
        Action::Errno(1)
    );
}

#[test]
fn kernel_release_parsing() {
    assert_eq!(parse_release("6.1.0-13-amd64\n"), Some((6, 1)));
    assert_eq!(parse_release("4.8"), Some((4, 8)));
    assert_eq!(parse_release("garbage"), None);
    assert!(Target::host().kernel.is_some());
}

// ------------------------------------------------------------ monotonicity

fn pool() -> Vec<SeccompSettings> {
    vec![
        constraint("profile: runtime/default"),
        constraint("profile: runtime/default\nallowSyscalls: [mount, ptrace]\n"),
        constraint("profile: runtime/default\ndenySyscalls: [mkdir]\nerrno: EACCES\nexisting: replace\n"),
        constraint("denySyscalls: [keyctl, socket]\n"),
        constraint("denySyscalls: [clone3]\nerrno: 38\nexisting: replace\n"),
        SeccompSettings::single(SeccompConstraint {
            profile: None,
            deny_syscalls: [SyscallName::new("read").unwrap()].into(),
            allow_syscalls: BTreeSet::new(),
            errno: Errno(5),
            existing: Existing::Replace,
        }),
    ]
}

fn spec_pool() -> Vec<Value> {
    vec![
        spec_without_seccomp(),
        json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_KILL"},
                         {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"}]}]}}}),
        json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "syscalls": [{"names": ["read", "write", "mkdir", "clone", "socket", "mount"], "action": "SCMP_ACT_ALLOW"}]}}}),
    ]
}

const PROBES: &[&str] = &["read", "write", "mkdir", "mount", "ptrace", "keyctl", "socket", "clone", "clone3", "getpid"];

/// What a container gets for a call: the compiled profile, or (no constraint) the
/// spec's own, or everything.
fn effective(settings: &SeccompSettings, spec: &Value, call: &str, args: &[u64; 6]) -> Action {
    let t = target();
    match compile(settings, &caps(&[]), spec, &t).unwrap() {
        Some(c) => c.profile.eval(call, args),
        None => match existing_section(spec) {
            Some(own) => {
                let c = caps(&[]);
                docker::parse_value(own, &Reading { caps: &c, target: &t, names: Names::Lenient })
                    .unwrap()
                    .profile
                    .eval(call, args)
            }
            None => Action::Allow,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Adding a policy never weakens: for every call the merged filter is at least as
    /// strict as with fewer policies, whatever the spec brings.
    #[test]
    fn adding_a_policy_never_weakens(
        picks in prop::collection::vec(0usize..6, 0..4),
        extra in 0usize..6,
        spec in 0usize..3,
        args in prop::array::uniform6(prop_oneof![Just(0u64), Just(2), Just(16), Just(40), Just(0x1000_0011)]),
    ) {
        let pool = pool();
        let spec = &spec_pool()[spec];
        let base = picks.iter().fold(SeccompSettings::default(), |s, i| s.stricter(pool[*i].clone()));
        let more = base.clone().stricter(pool[extra].clone());
        // `replace` discards the spec's own profile: from no constraint at all to only
        // `replace` constraints the spec's profile is dropped (documented exception).
        prop_assume!(!base.is_empty() || more.keeps_existing());
        for call in PROBES {
            let (before, after) = (effective(&base, spec, call, &args), effective(&more, spec, call, &args));
            prop_assert!(after.rank() >= before.rank(), "{call}: {before:?} -> {after:?}");
        }
    }
}
