use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::context::{ContainerContext, ContainerType};

fn parse(text: &str) -> Result<Vec<Policy>, LoadError> {
    load::parse_policies(Path::new("/p/test.yaml"), text)
}

fn ctx(ns: Option<&str>, image: Option<&str>) -> ContainerContext {
    ContainerContext {
        container_type: Some(ContainerType::Container),
        namespace: ns.map(Into::into),
        image: image.map(Into::into),
        ..Default::default()
    }
}

#[test]
fn embedded_baseline_loads() {
    let set = PolicySet::embedded().unwrap();
    assert!(!set.policies.is_empty());
    let sel = set.select(&ctx(None, None));
    assert_eq!(sel.settings.mode, Mode::Enforce);
    assert!(sel.settings.no_new_privileges.0);
    assert!(sel.settings.capabilities.allow.0.is_some());
}

#[test]
fn multi_document_and_selection() {
    let ps = parse(
        "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {name: a}\nspec:\n  match: {namespaces: ['team-*']}\n  noNewPrivileges: true\n---\napiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {name: b}\nspec:\n  mode: audit\n  capabilities: {allow: [CHOWN, KILL]}\n---\n",
    )
    .unwrap();
    assert_eq!(ps.len(), 2);
    assert!(ps[0].hash.starts_with("sha256:") && ps[0].hash != ps[1].hash);
    let set = PolicySet { origin: Origin::Embedded, policies: ps, exemptions: vec![], recordings: vec![] };
    // A plain container (no namespace) gets only the policy that does not need one.
    let plain = set.select(&ctx(None, None));
    assert_eq!(plain.matched.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["b"]);
    assert_eq!(plain.settings.mode, Mode::Audit);
    let pod = set.select(&ctx(Some("team-x"), None));
    assert_eq!(pod.matched.len(), 2);
    assert_eq!(pod.settings.mode, Mode::Enforce, "any enforce wins");
    assert!(pod.settings.no_new_privileges.0);
}

#[test]
fn sandboxes_are_not_selected_by_default() {
    let set = PolicySet::embedded().unwrap();
    let mut c = ctx(Some("default"), None);
    c.container_type = Some(ContainerType::Sandbox);
    let sel = set.select(&c);
    assert!(sel.matched.is_empty());
    assert_eq!(sel.settings, Settings::sandbox_floor());
}

#[test]
fn errors_name_their_place() {
    let e = parse("apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {name: a\n").unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("/p/test.yaml:"), "{msg}");
    assert!(matches!(e, LoadError::Yaml { line: Some(_), column: Some(_), .. }), "{msg}");

    let e =
        parse("apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {name: a}\nspec:\n  noNewPrivilege: true\n")
            .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("unknown field `noNewPrivilege`") && msg.starts_with("/p/test.yaml:5:"), "{msg}");

    let e = parse("apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {name: a}\nspec:\n  capabilities: {allow: [CAP_FLY]}\n")
        .unwrap_err();
    assert!(e.to_string().contains("unknown capability \"CAP_FLY\""), "{e}");

    for (doc, want) in [
        ("apiVersion: v2\nkind: Policy\nmetadata: {name: a}\nspec: {}\n", "unknown apiVersion"),
        ("apiVersion: hardrun.dev/v1alpha1\nkind: Polcy\nmetadata: {name: a}\nspec: {}\n", "unknown kind"),
        ("apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nspec: {}\n", "missing metadata.name"),
        ("- 1\n", "must be a mapping"),
        (
            "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {name: a}\nspec: {match: {images: ['a***']}}\n",
            "three or more",
        ),
    ] {
        let e = parse(doc).unwrap_err().to_string();
        assert!(e.contains(want), "{doc:?}: {e}");
    }
}

#[test]
fn duplicate_names_are_rejected() {
    let d = tempfile::tempdir().unwrap();
    let doc = "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {name: same}\nspec: {}\n";
    std::fs::write(d.path().join("a.yaml"), doc).unwrap();
    std::fs::write(d.path().join("b.yml"), doc).unwrap();
    std::fs::write(d.path().join(".hidden.yaml"), "garbage: [").unwrap();
    std::fs::write(d.path().join("notes.txt"), "garbage: [").unwrap();
    let e = PolicySet::load(d.path()).unwrap_err();
    assert!(matches!(e, LoadError::DuplicateName { .. }), "{e}");
}

#[test]
fn missing_dir_is_embedded_and_oversize_file_is_refused() {
    let set = PolicySet::load(Path::new("/nonexistent/policies.d")).unwrap();
    assert_eq!(set.origin, Origin::Embedded);
    let d = tempfile::tempdir().unwrap();
    let mut big = String::from("# pad\n");
    big.push_str(&"#".repeat(load::MAX_POLICY_FILE_BYTES as usize));
    std::fs::write(d.path().join("big.yaml"), big).unwrap();
    assert!(matches!(PolicySet::load(d.path()), Err(LoadError::TooLarge { .. })));
    let d = tempfile::tempdir().unwrap();
    let empty = PolicySet::load(d.path()).unwrap();
    assert_eq!(empty.origin, Origin::Dir(d.path().to_owned()));
    assert!(empty.policies.is_empty(), "an empty dir is an explicit empty set, not the baseline");
}

const TINY_POLICY: &str = "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {name: p%}\nspec: {match: {}}\n";

#[test]
fn a_policy_file_of_exactly_the_limit_loads() {
    let d = tempfile::tempdir().unwrap();
    let mut text = TINY_POLICY.replace('%', "0");
    text.push('#');
    text.push_str(&"x".repeat(load::MAX_POLICY_FILE_BYTES as usize - text.len()));
    std::fs::write(d.path().join("p.yaml"), &text).unwrap();
    assert_eq!(PolicySet::load(d.path()).unwrap().policies.len(), 1);
    text.push('x');
    std::fs::write(d.path().join("p.yaml"), &text).unwrap();
    assert!(matches!(PolicySet::load(d.path()), Err(LoadError::TooLarge { .. })));
}

#[test]
fn the_policy_file_count_is_capped() {
    let d = tempfile::tempdir().unwrap();
    for i in 0..load::MAX_POLICY_FILES {
        std::fs::write(d.path().join(format!("{i:04}.yaml")), TINY_POLICY.replace('%', &i.to_string())).unwrap();
    }
    assert_eq!(PolicySet::load(d.path()).unwrap().policies.len(), load::MAX_POLICY_FILES);
    std::fs::write(d.path().join("extra.yaml"), TINY_POLICY.replace('%', "extra")).unwrap();
    assert!(matches!(PolicySet::load(d.path()), Err(LoadError::TooManyFiles { .. })));
}

#[test]
fn the_number_of_policies_in_a_set_is_capped() {
    let d = tempfile::tempdir().unwrap();
    let docs: Vec<String> = (0..load::MAX_POLICIES).map(|i| TINY_POLICY.replace('%', &i.to_string())).collect();
    std::fs::write(d.path().join("all.yaml"), docs.join("---\n")).unwrap();
    assert_eq!(PolicySet::load(d.path()).unwrap().policies.len(), load::MAX_POLICIES);
    std::fs::write(d.path().join("one-more.yaml"), TINY_POLICY.replace('%', "more")).unwrap();
    assert!(matches!(PolicySet::load(d.path()), Err(LoadError::TooManyPolicies)));
}

// ---- the merge laws, over arbitrary settings ----

const CAPS: &[&str] = &["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW", "CAP_SYS_ADMIN", "CAP_SETUID", "CAP_BPF"];

fn arb_allow() -> impl Strategy<Value = AllowList<CapName>> {
    prop::option::of(prop::collection::btree_set(prop::sample::select(CAPS), 0..CAPS.len()))
        .prop_map(|o| AllowList(o.map(|s| s.into_iter().map(|c| CapName::new(c).unwrap()).collect())))
}

fn arb_caps() -> impl Strategy<Value = std::collections::BTreeSet<CapName>> {
    prop::collection::btree_set(prop::sample::select(CAPS), 0..CAPS.len())
        .prop_map(|s| s.into_iter().map(|c| CapName::new(c).unwrap()).collect())
}

fn arb_globs() -> impl Strategy<Value = std::collections::BTreeSet<Glob>> {
    prop::collection::btree_set(prop::sample::select(&["/etc/**", "/", "/data", "/var/run/*.sock"][..]), 0..4)
        .prop_map(|s| s.into_iter().map(|g| Glob::new(g).unwrap()).collect())
}

fn arb_allow_globs() -> impl Strategy<Value = AllowList<Glob>> {
    prop::option::of(arb_globs()).prop_map(AllowList)
}

fn arb_capabilities() -> impl Strategy<Value = CapabilitySettings> {
    (arb_allow(), arb_caps(), prop::bool::ANY).prop_map(|(allow, forbidden, deny)| CapabilitySettings {
        allow,
        forbidden: DenyList(forbidden),
        on_forbidden: if deny { OnForbidden::Deny } else { OnForbidden::Drop },
    })
}

fn arb_process() -> impl Strategy<Value = ProcessSettings> {
    let limits =
        prop::collection::btree_map(prop::sample::select(&[Rlimit::Nofile, Rlimit::Nproc][..]), 1u64..1_000_000, 0..2);
    (prop::bool::ANY, limits, prop::option::of(0u32..0o777)).prop_map(|(root, rl, umask)| ProcessSettings {
        run_as_non_root: Require(root),
        rlimits: RlimitCaps(rl),
        umask: Umask(umask),
    })
}

fn arb_filesystem() -> impl Strategy<Value = FilesystemSettings> {
    let paths =
        prop::collection::btree_set(prop::sample::select(&["/proc/kcore", "/proc/keys", "/sys/firmware"][..]), 0..3)
            .prop_map(|s| DenyList(s.into_iter().map(str::to_owned).collect()));
    (prop::bool::ANY, paths, arb_globs(), arb_globs(), arb_allow_globs(), arb_globs()).prop_map(
        |(ro, masked, deny, deny_writable, allow, force)| FilesystemSettings {
            read_only_rootfs: Require(ro),
            masked_paths: masked.clone(),
            readonly_paths: masked,
            host_mounts: HostMountSettings {
                deny: DenyList(deny),
                deny_writable: DenyList(deny_writable),
                allow,
                force_read_only: DenyList(force),
            },
        },
    )
}

fn runtime_default_constraint() -> seccomp::SeccompConstraint {
    serde_yaml::from_str("profile: runtime/default\ndenySyscalls: [keyctl]\n").unwrap()
}

/// Zero, one or two of two distinct signature requirements.
fn arb_signature(a: bool, b: bool) -> crate::policy::signature::SignatureSettings {
    let req = |glob: &str| {
        serde_yaml::from_str(&format!(
            "images: [\"{glob}\"]\nauthorities: [{{key: {{file: /k.pub}}}}]\nmode: enforce\n"
        ))
        .unwrap()
    };
    let mut v = Vec::new();
    if a {
        v.push(req("a/**"));
    }
    if b {
        v.push(req("b/**"));
    }
    crate::policy::signature::SignatureSettings(v)
}

fn arb_settings() -> impl Strategy<Value = Settings> {
    let apparmor = (prop::collection::btree_set(prop::sample::select(&["a", "b"][..]), 0..2), prop::bool::ANY)
        .prop_map(|(p, r)| AppArmorSettings {
            profiles: DenyList(p.into_iter().map(str::to_owned).collect()),
            require: Require(r),
        });
    let ns = prop::collection::btree_set(prop::sample::select(&[NamespaceKind::Pid, NamespaceKind::Network][..]), 0..2)
        .prop_map(|s| NamespaceSettings { deny_host: DenyList(s) });
    let controls =
        (arb_capabilities(), apparmor, arb_process(), arb_filesystem(), ns, arb_allow_globs(), arb_allow_globs());
    (prop::bool::ANY, prop::bool::ANY, prop::bool::ANY, controls).prop_map(
        |(enforce, nnp, privileged, (capabilities, apparmor, process, filesystem, namespaces, devices, sysctls))| {
            Settings {
                mode: if enforce { Mode::Enforce } else { Mode::Audit },
                no_new_privileges: Require(nnp),
                capabilities,
                apparmor,
                process,
                filesystem,
                namespaces,
                devices: DeviceSettings { allow: devices },
                sysctls: SysctlSettings { allow: sysctls },
                deny_privileged: Require(privileged),
                hooks: DenyList(if privileged { ["a".to_owned()].into() } else { Default::default() }),
                seccomp: if nnp {
                    seccomp::SeccompSettings::single(runtime_default_constraint())
                } else {
                    Default::default()
                },
                user_namespace: crate::policy::UserNamespaceSettings {
                    mode: if privileged { crate::policy::UsernsMode::Pod } else { Default::default() },
                    rootfs: nnp.then_some(crate::policy::RootfsStrategy::Chown),
                    on_host_namespace: enforce.then_some(crate::policy::OnHostNamespace::Skip),
                    empty_dirs: privileged.then_some(crate::policy::EmptyDirStrategy::Chown),
                },
                image_signature: arb_signature(nnp, privileged),
            }
        },
    )
}

proptest! {
    #[test]
    fn merge_is_commutative(a in arb_settings(), b in arb_settings()) {
        prop_assert_eq!(a.clone().stricter(b.clone()), b.stricter(a));
    }

    #[test]
    fn merge_is_associative(a in arb_settings(), b in arb_settings(), c in arb_settings()) {
        prop_assert_eq!(a.clone().stricter(b.clone()).stricter(c.clone()), a.stricter(b.stricter(c)));
    }

    #[test]
    fn merge_is_at_least_as_strict_as_each(a in arb_settings(), b in arb_settings()) {
        let m = a.clone().stricter(b.clone());
        prop_assert!(m.at_least_as_strict_as(&a));
        prop_assert!(m.at_least_as_strict_as(&b));
    }

    #[test]
    fn adding_a_policy_never_weakens(set in prop::collection::vec(arb_settings(), 0..6), extra in arb_settings()) {
        let before = Settings::merge_all(set.clone());
        let after = Settings::merge_all(set.into_iter().chain([extra]));
        prop_assert!(after.at_least_as_strict_as(&before));
    }

    #[test]
    fn merge_is_idempotent_and_default_is_identity(a in arb_settings()) {
        prop_assert_eq!(a.clone().stricter(a.clone()), a.clone());
        prop_assert_eq!(Settings::default().stricter(a.clone()), a);
    }
}

#[test]
fn shipped_policies_parse_and_expand_defaults() {
    for file in ["baseline.yaml", "restricted.yaml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies").join(file);
        let set = PolicySet::load_files(&[path]).unwrap();
        let s = &set.policies[0].spec;
        assert_eq!(s.capabilities.forbidden.0.len(), STANDARD_FORBIDDEN_CAPS.len(), "{file}");
        assert_eq!(s.filesystem.masked_paths.0.len(), STANDARD_MASKED_PATHS.len(), "{file}");
        assert_eq!(s.sysctls.allow.0.as_ref().unwrap().len(), STANDARD_SAFE_SYSCTLS.len(), "{file}");
        assert!(s.deny_privileged.0);
        assert!(!s.seccomp.is_empty(), "{file}: runtime/default seccomp");
    }
}

#[test]
fn default_keyword_mixes_with_extra_entries() {
    let ps = parse(
        "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {name: a}\nspec:\n  capabilities: {forbidden: [default, CAP_SYS_NICE]}\n",
    )
    .unwrap();
    assert_eq!(ps[0].spec.capabilities.forbidden.0.len(), STANDARD_FORBIDDEN_CAPS.len() + 1);
}

#[test]
fn unconfined_apparmor_needs_an_exemption() {
    let e = parse("apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {name: a}\nspec:\n  apparmor: {profile: unconfined}\n")
        .unwrap_err();
    assert!(e.to_string().contains("Exemption"), "{e}");
}

#[test]
fn exemptions_load_and_select() {
    let text = "apiVersion: hardrun.dev/v1alpha1\nkind: Exemption\nmetadata: {name: cni}\nspec:\n  match: {namespaces: [kube-system]}\n  rules: ['namespaces.host-*']\n  reason: CNI pods need the host network\n";
    let docs = load::parse_documents(Path::new("/p/x.yaml"), text).unwrap();
    assert_eq!(docs.exemptions.len(), 1);
    let set = PolicySet { origin: Origin::Embedded, policies: vec![], exemptions: docs.exemptions, recordings: vec![] };
    let sel = set.select(&ctx(Some("kube-system"), None));
    assert_eq!(sel.exemption_for("namespaces.host-network").map(|e| e.name.as_str()), Some("cni"));
    assert!(sel.exemption_for("privileged").is_none());
    assert!(set.select(&ctx(Some("default"), None)).exemptions.is_empty());
    let missing_reason =
        "apiVersion: hardrun.dev/v1alpha1\nkind: Exemption\nmetadata: {name: x}\nspec:\n  rules: [privileged]\n";
    assert!(load::parse_documents(Path::new("/p/x.yaml"), missing_reason).unwrap_err().to_string().contains("reason"));
}
