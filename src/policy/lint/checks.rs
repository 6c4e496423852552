//! Semantic checks on a loaded policy set: what the schema accepts but the node would
//! do something surprising with. Each finding names the policy's file and the YAML
//! path of the node it is about; `super::place` turns that into a line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::overlap::{globs_intersect, literal_chars, selectors_overlap, types, PreparedSelector};
use super::suggest::closest;
use super::*;
use crate::enforce::{apparmor, capabilities, devices, filesystem, process, seccomp as enforce_seccomp, sysctls};
use crate::policy::load::{Exemption, Policy};
use crate::policy::{
    Glob, Mode, Selector, STANDARD_DENIED_HOST_MOUNTS, STANDARD_DENIED_WRITABLE_HOST_MOUNTS, STANDARD_FORBIDDEN_CAPS,
    STANDARD_HOST_NAMESPACES,
};

/// Every rule ID a finding can carry (what exemption `rules` may name).
pub const KNOWN_RULE_IDS: &[&str] = &[
    process::RULE_NNP,
    capabilities::RULE_FORBIDDEN,
    capabilities::RULE_CLAMPED,
    apparmor::RULE_PROFILE,
    apparmor::RULE_UNCONFINED,
    apparmor::RULE_CONFLICT,
    apparmor::RULE_UNAVAILABLE,
    apparmor::RULE_SKIPPED,
    process::RULE_ROOT,
    process::RULE_RLIMIT,
    process::RULE_UMASK,
    filesystem::RULE_RO_ROOTFS,
    filesystem::RULE_MASKED,
    filesystem::RULE_READONLY,
    filesystem::RULE_HOST_SENSITIVE,
    filesystem::RULE_NOT_ALLOWED,
    filesystem::RULE_HOST_WRITABLE,
    filesystem::RULE_FORCED_RO,
    "namespaces.host-pid",
    "namespaces.host-ipc",
    "namespaces.host-uts",
    "namespaces.host-network",
    "namespaces.host-cgroup",
    devices::RULE_NODE,
    devices::RULE_CGROUP,
    sysctls::RULE_UNSAFE,
    "privileged",
    "exec.cap",
    "exec.apparmor",
    enforce_seccomp::RULE_UNCONFINED,
    enforce_seccomp::RULE_PROFILE,
    enforce_seccomp::RULE_SPEC_UNPARSABLE,
    enforce_seccomp::RULE_LOCALHOST_INVALID,
    enforce_seccomp::RULE_CONFLICT,
    enforce_seccomp::RULE_APPROXIMATED,
    "hooks.injected",
    "hooks.invalid",
    crate::enforce::userns::RULE_ALLOCATED,
    crate::enforce::userns::RULE_JOINED,
    crate::enforce::userns::RULE_HOST_NAMESPACE,
    crate::enforce::userns::RULE_EXISTING,
    crate::enforce::userns::RULE_UNAVAILABLE,
    crate::enforce::userns::RULE_ROOTFS,
    crate::enforce::userns::RULE_SYSFS,
    crate::enforce::userns::RULE_BIND_FLAGS,
    crate::enforce::userns::RULE_MOUNT_POINTS,
    crate::enforce::userns::RULE_BUNDLE,
    crate::enforce::userns::RULE_MQUEUE,
    crate::enforce::userns::RULE_EMPTY_DIR,
];

/// Rules whose exemption removes a whole layer of confinement: reported as warnings.
const DANGEROUS_EXEMPTIONS: &[&str] = &[
    apparmor::RULE_UNCONFINED,
    enforce_seccomp::RULE_UNCONFINED,
    "privileged",
    capabilities::RULE_FORBIDDEN,
    filesystem::RULE_HOST_SENSITIVE,
];

/// Runs every semantic check.
pub fn check(set: &PolicySet, opts: &Options) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    duplicate_names(set, &mut out);
    let classes =
        if opts.runtime_classes { available_runtime_classes(opts.runtime_class_dir.as_deref()) } else { None };
    for p in &set.policies {
        dangerous_capabilities(p, &mut out);
        host_namespaces(p, &mut out);
        writable_host_mounts(p, &mut out);
        broad_audit(p, &mut out);
        userns_without_sandbox(p, &mut out);
        matches_nothing(&p.name, &p.source, &p.spec.selector, classes.as_ref(), &mut out);
        seccomp_references(p, &mut out);
        super::signature::signature_checks(p, &mut out);
    }
    for e in &set.exemptions {
        exemption(e, &mut out);
        matches_nothing(&e.name, &e.source, &e.spec.selector, classes.as_ref(), &mut out);
    }
    for r in &set.recordings {
        matches_nothing(&r.name, &r.source, &r.spec.selector, classes.as_ref(), &mut out);
    }
    super::recording::check(set, &mut out);
    apparmor_conflicts(set, &mut out);
    out
}

// ---------------------------------------------------------------- names

fn duplicate_names(set: &PolicySet, out: &mut Vec<Diagnostic>) {
    let docs = set
        .policies
        .iter()
        .map(|p| (&p.name, &p.source))
        .chain(set.exemptions.iter().map(|e| (&e.name, &e.source)))
        .chain(set.recordings.iter().map(|r| (&r.name, &r.source)));
    // name → (file, occurrence within that file) of each document using it.
    let mut seen: BTreeMap<&str, Vec<(&PathBuf, usize)>> = BTreeMap::new();
    for (name, file) in docs {
        let uses = seen.entry(name.as_str()).or_default();
        let nth = uses.iter().filter(|(f, _)| *f == file).count();
        if let Some((first, first_nth)) = uses.first() {
            out.push(
                Diagnostic::new(
                    DUPLICATE_NAME,
                    format!("the name `{name}` is used twice: a node refuses the whole set"),
                    nth_doc(file, name, nth, "/metadata/name"),
                )
                .related(nth_doc(first, name, *first_nth, "/metadata/name"), "first used here")
                .help("names are unique across every Policy and Exemption"),
            );
        }
        uses.push((file, nth));
    }
}

fn nth_doc(file: &Path, name: &str, nth: usize, path: &str) -> Location {
    let mut l = Location::node(file, name, path);
    if let Some(a) = &mut l.anchor {
        a.doc = DocRef::NameNth(name.to_owned(), nth);
    }
    l
}

// ---------------------------------------------------------------- dangerous grants

fn dangerous_capabilities(p: &Policy, out: &mut Vec<Diagnostic>) {
    let caps = &p.spec.capabilities;
    let Some(allow) = &caps.allow.0 else { return };
    for cap in allow {
        if STANDARD_FORBIDDEN_CAPS.contains(&cap.as_str()) && !caps.forbidden.0.contains(cap) {
            out.push(
                Diagnostic::new(
                    DANGEROUS_CAPABILITY,
                    format!("`{}` allows {cap}, one of the capabilities no workload should hold", p.name),
                    Location::scalar(&p.source, &p.name, "/spec/capabilities/allow", cap.as_str()),
                )
                .help(format!(
                    "drop it from the allow-list; a workload that needs it gets a kind: Exemption for {} \
                     with a reason",
                    capabilities::RULE_FORBIDDEN
                )),
            );
        }
    }
}

fn host_namespaces(p: &Policy, out: &mut Vec<Diagnostic>) {
    let denied = &p.spec.namespaces.deny_host.0;
    if denied.is_empty() {
        return;
    }
    let missing: Vec<&str> =
        STANDARD_HOST_NAMESPACES.iter().copied().filter(|n| !denied.iter().any(|d| d.oci_name() == *n)).collect();
    if !missing.is_empty() {
        out.push(
            Diagnostic::new(
                HOST_NAMESPACES,
                format!("`{}` denies some host namespaces but leaves {} allowed", p.name, missing.join(", ")),
                Location::node(&p.source, &p.name, "/spec/namespaces/denyHost"),
            )
            .help(
                "use `denyHost: default` (all five) and lift single rules for named workloads with a kind: Exemption",
            ),
        );
    }
}

/// The sensitive host paths, as globs: the standard deny lists and `/`.
fn sensitive_mounts() -> Vec<Glob> {
    STANDARD_DENIED_HOST_MOUNTS
        .iter()
        .chain(STANDARD_DENIED_WRITABLE_HOST_MOUNTS)
        .filter_map(|s| Glob::new(s).ok())
        .collect()
}

fn writable_host_mounts(p: &Policy, out: &mut Vec<Diagnostic>) {
    let hm = &p.spec.filesystem.host_mounts;
    let Some(allow) = &hm.allow.0 else { return };
    let covers =
        |s: &Glob| {
            hm.deny.0.iter().chain(&hm.deny_writable.0).chain(&hm.force_read_only.0).any(|d| {
                d == s || (s.is_literal() && d.matches(s.as_str())) || d.as_str() == "/**" || d.as_str() == "**"
            })
        };
    let sensitive = sensitive_mounts();
    for a in allow {
        let hits: Vec<&str> =
            sensitive.iter().filter(|s| globs_intersect(a, s) && !covers(s)).map(Glob::as_str).collect();
        if hits.is_empty() {
            continue;
        }
        let shown: Vec<&str> = hits.iter().copied().take(4).collect();
        let more =
            if hits.len() > shown.len() { format!(" and {} more", hits.len() - shown.len()) } else { String::new() };
        out.push(
            Diagnostic::new(
                WRITABLE_HOST_MOUNT,
                format!(
                    "`{}` allows bind mounts of `{a}`, which admits sensitive host paths ({}{more}) that the \
                     policy neither denies nor forces read-only",
                    p.name,
                    shown.join(", ")
                ),
                Location::scalar(&p.source, &p.name, "/spec/filesystem/hostMounts/allow", a.as_str()),
            )
            .help("add `deny: default` and `denyWritable: default`, or list the path under `forceReadOnly`"),
        );
    }
}

/// Whether a selector field admits any value: empty, or a `*`/`**` entry.
fn field_is_open(globs: &[Glob]) -> bool {
    globs.is_empty() || globs.iter().any(|g| matches!(g.as_str(), "*" | "**"))
}

fn broad_audit(p: &Policy, out: &mut Vec<Diagnostic>) {
    let s = &p.spec.selector;
    let open = [&s.namespaces, &s.pods, &s.containers, &s.images, &s.runtime_classes, &s.containerd_namespaces]
        .iter()
        .all(|f| field_is_open(f));
    if p.spec.mode == Mode::Audit && open {
        out.push(
            Diagnostic::new(
                BROAD_AUDIT_MODE,
                format!(
                    "`{}` is in audit mode and selects every container: where no enforcing policy also matches, \
                     nothing it says is enforced",
                    p.name
                ),
                Location::node(&p.source, &p.name, "/spec/mode"),
            )
            .help("trial a policy in audit mode on a narrow `match` (a namespace, a runtime class)"),
        );
    }
}

// ---------------------------------------------------------------- user namespaces

/// App containers join their pod sandbox's user namespace; a policy that gives them
/// `mode: pod` without selecting the sandbox leaves nothing to join.
fn userns_without_sandbox(p: &Policy, out: &mut Vec<Diagnostic>) {
    use crate::context::ContainerType;
    if p.spec.user_namespace.mode != crate::policy::UsernsMode::Pod {
        return;
    }
    let types = p.spec.selector.container_types.as_deref().unwrap_or(&[ContainerType::Container]);
    if types.contains(&ContainerType::Container) && !types.contains(&ContainerType::Sandbox) {
        out.push(
            Diagnostic::new(
                USERNS_WITHOUT_SANDBOX,
                format!(
                    "`{}` gives app containers a per-pod user namespace but does not select pod sandboxes: \
                     a pod's containers are denied, having no sandbox namespace to join",
                    p.name
                ),
                Location::node(&p.source, &p.name, "/spec/userNamespace/mode"),
            )
            .help("add `containerTypes: [sandbox, container]` to the policy's match"),
        );
    }
}

// ---------------------------------------------------------------- matching nothing

/// The characters a Kubernetes name of each field can hold (DNS-1123 labels;
/// pod names are subdomains and may hold dots).
fn name_chars(field: &str) -> fn(char) -> bool {
    match field {
        "pods" => |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.',
        _ => |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
    }
}

/// `hardrun-<class>` entries in `dir` (default: the running binary's directory).
fn available_runtime_classes(dir: Option<&Path>) -> Option<Vec<String>> {
    let dir = match dir {
        Some(d) => d.to_owned(),
        None => std::env::current_exe().ok()?.parent()?.to_owned(),
    };
    let mut classes: Vec<String> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("hardrun-").map(str::to_owned))
        .filter(|c| !c.is_empty())
        .collect();
    classes.sort();
    Some(classes)
}

fn matches_nothing(name: &str, file: &Path, s: &Selector, classes: Option<&Vec<String>>, out: &mut Vec<Diagnostic>) {
    let warn = |msg: String, path: &str, value: Option<&str>| {
        let loc = match value {
            Some(v) => Location::scalar(file, name, path, v),
            None => Location::node(file, name, path),
        };
        Diagnostic::new(MATCHES_NOTHING, msg, loc)
    };
    if types(s).is_empty() {
        out.push(
            warn(
                format!("`{name}` selects no container: `containerTypes` is empty"),
                "/spec/match/containerTypes",
                None,
            )
            .help("list `container`, `sandbox` or both, or remove the field (absent means `[container]`)"),
        );
    }
    for (field, globs) in [("namespaces", &s.namespaces), ("pods", &s.pods), ("containers", &s.containers)] {
        let ok = name_chars(field);
        for g in globs {
            if let Some(bad) = literal_chars(g).find(|c| !ok(*c)) {
                out.push(
                    warn(
                        format!("`{name}`: `{g}` in `match.{field}` can never match: Kubernetes names hold no {bad:?}"),
                        &format!("/spec/match/{field}"),
                        Some(g.as_str()),
                    )
                    .help("Kubernetes names are lower case letters, digits and `-`"),
                );
            }
        }
    }
    if let Some(classes) = classes {
        for g in &s.runtime_classes {
            if !classes.iter().any(|c| g.matches(c)) {
                let have = if classes.is_empty() { "none".to_owned() } else { classes.join(", ") };
                out.push(
                    warn(
                        format!(
                            "`{name}`: no `hardrun-<class>` link next to the hardrun binary provides runtime class \
                             `{g}` (available: {have})"
                        ),
                        "/spec/match/runtimeClasses",
                        Some(g.as_str()),
                    )
                    .help(format!("create it: ln -s hardrun hardrun-{g}, and name it as the RuntimeClass handler")),
                );
            }
        }
    }
}

// ---------------------------------------------------------------- exemptions

fn describe_selector(s: &Selector) -> String {
    let mut parts = Vec::new();
    let list = |g: &[Glob]| g.iter().map(Glob::as_str).collect::<Vec<_>>().join(", ");
    for (field, globs) in [
        ("namespaces", &s.namespaces),
        ("pods", &s.pods),
        ("containers", &s.containers),
        ("images", &s.images),
        ("runtimeClasses", &s.runtime_classes),
        ("containerdNamespaces", &s.containerd_namespaces),
    ] {
        if !globs.is_empty() {
            parts.push(format!("{field} [{}]", list(globs)));
        }
    }
    if s.container_types.is_some() {
        let t: Vec<String> = types(s).iter().map(|t| format!("{t:?}").to_ascii_lowercase()).collect();
        parts.push(format!("containerTypes [{}]", t.join(", ")));
    }
    if parts.is_empty() {
        "every container".to_owned()
    } else {
        parts.join(", ")
    }
}

fn exemption(e: &Exemption, out: &mut Vec<Diagnostic>) {
    let rules: Vec<&str> = e.spec.rules.iter().map(Glob::as_str).collect();
    let lifted: Vec<&str> =
        KNOWN_RULE_IDS.iter().copied().filter(|id| e.spec.rules.iter().any(|g| g.matches(id))).collect();
    let dangerous: Vec<&str> = lifted.iter().copied().filter(|id| DANGEROUS_EXEMPTIONS.contains(id)).collect();
    let mut d = Diagnostic::new(
        EXEMPTION,
        format!(
            "exemption `{}` lifts {} for {}: {}",
            e.name,
            rules.join(", "),
            describe_selector(&e.spec.selector),
            e.spec.reason.trim()
        ),
        Location::node(&e.source, &e.name, "/spec/rules"),
    );
    if !dangerous.is_empty() {
        d = d.severity(Severity::Warning).help(format!(
            "it lifts {}, which removes a whole layer of confinement; keep its `match` as narrow as possible",
            dangerous.join(", ")
        ));
    } else if lifted.len() > 1 && rules.iter().any(|r| r.contains('*')) {
        d = d.help(format!("the patterns match {}", lifted.join(", ")));
    }
    out.push(d);
    if e.spec.reason.trim().is_empty() {
        out.push(
            Diagnostic::new(
                MISSING_FIELD,
                format!("exemption `{}` gives no reason", e.name),
                Location::node(&e.source, &e.name, "/spec/reason"),
            )
            .severity(Severity::Warning)
            .help("say why the workload needs it: the reason is shown in the audit record"),
        );
    }
    for g in &e.spec.rules {
        if KNOWN_RULE_IDS.iter().any(|id| g.matches(id)) {
            continue;
        }
        let mut d = Diagnostic::new(
            EXEMPTION_RULE_UNKNOWN,
            format!("`{g}` matches no rule ID: exemption `{}` lifts nothing with it", e.name),
            Location::scalar(&e.source, &e.name, "/spec/rules", g.as_str()),
        );
        if let Some(s) = closest(g.as_str(), KNOWN_RULE_IDS.iter().copied()) {
            d = d.help(format!("did you mean `{s}`?"));
        }
        out.push(d);
    }
}

// ---------------------------------------------------------------- merge conflicts

/// Two policies that can match one container and name different AppArmor profiles:
/// profiles do not stack, so every such container is denied (`apparmor.conflict`).
fn apparmor_conflicts(set: &PolicySet, out: &mut Vec<Diagnostic>) {
    let with_profile: Vec<(&Policy, PreparedSelector)> = set
        .policies
        .iter()
        .filter(|p| !p.spec.apparmor.profiles.0.is_empty())
        .map(|p| (p, PreparedSelector::new(&p.spec.selector)))
        .collect();
    for (i, (b, bs)) in with_profile.iter().enumerate() {
        for (a, as_) in &with_profile[..i] {
            if a.spec.apparmor.profiles == b.spec.apparmor.profiles || !as_.overlaps(bs) {
                continue;
            }
            let profile = |p: &Policy| p.spec.apparmor.profiles.0.iter().cloned().collect::<Vec<_>>().join(", ");
            // Audit mode never denies; an exemption for apparmor.conflict lifts it.
            let enforced = a.spec.mode == Mode::Enforce || b.spec.mode == Mode::Enforce;
            let lifted = set.exemptions.iter().any(|e| {
                e.spec.rules.iter().any(|g| g.matches(apparmor::RULE_CONFLICT))
                    && selectors_overlap(&e.spec.selector, &a.spec.selector)
                    && selectors_overlap(&e.spec.selector, &b.spec.selector)
            });
            let mut d = Diagnostic::new(
                UNSTARTABLE_MERGE,
                format!(
                    "`{}` requires AppArmor profile {} and `{}` requires {}; both can match the same container, \
                     and every container they both match is denied (apparmor.conflict: profiles do not stack)",
                    b.name,
                    profile(b),
                    a.name,
                    profile(a)
                ),
                Location::node(&b.source, &b.name, "/spec/apparmor/profile"),
            )
            .related(
                Location::node(&a.source, &a.name, "/spec/apparmor/profile"),
                format!("`{}` requires {}", a.name, profile(a)),
            )
            .help("use one profile, or make the two `match` sections disjoint");
            if !enforced || lifted {
                d = d.severity(Severity::Warning);
            }
            out.push(d);
        }
    }
}

// ---------------------------------------------------------------- seccomp

/// Seccomp references: syscall names the node's architectures lack (HR008 warning)
/// and `localhost/` profiles that are missing or invalid (HR009). The loader has
/// already made the profile paths absolute (relative to the policy file).
fn seccomp_references(p: &Policy, out: &mut Vec<Diagnostic>) {
    seccomp_findings(p, &p.spec.seccomp, out);
}

/// The seccomp findings for one policy's section.
fn seccomp_findings(p: &Policy, s: &crate::policy::seccomp::SeccompSettings, out: &mut Vec<Diagnostic>) {
    use crate::enforce::seccomp::docker::ProfileError;
    use crate::enforce::seccomp::{read_localhost, SeccompError, Target};
    use crate::policy::seccomp::{target_names, ProfileRef};
    let target = Target::host();
    let arches = target.arches.join(", ");
    for c in &s.constraints {
        for (field, names) in [("denySyscalls", &c.deny_syscalls), ("allowSyscalls", &c.allow_syscalls)] {
            for n in names.iter().filter(|n| !target_names().contains(n.as_str())) {
                out.push(
                    Diagnostic::new(
                        UNKNOWN_SYSCALL,
                        format!("system call `{n}` does not exist on this node's architectures ({arches}): the rule never applies"),
                        Location::scalar(&p.source, &p.name, &format!("/spec/seccomp/{field}"), n.as_str()),
                    )
                    .severity(Severity::Warning),
                );
            }
        }
        if let Some(ProfileRef::Localhost(path)) = &c.profile {
            // The default profile's rules depend on the container's capabilities; the
            // file is read as for a container that keeps none, which checks its syntax
            // and names either way.
            let caps = std::collections::BTreeSet::new();
            if let Err(e) = read_localhost(path, &caps, &target) {
                // A JSON error has its own place in the profile.
                let in_profile = match &e {
                    SeccompError::LocalhostInvalid { source: ProfileError::Json { line, column, .. }, .. } => {
                        Location::at(path, *line, *column)
                    }
                    _ => Location::file(path),
                };
                out.push(
                    Diagnostic::new(
                        REFERENCED_FILE,
                        e.to_string(),
                        Location::node(&p.source, &p.name, "/spec/seccomp/profile"),
                    )
                    .related(in_profile, "the profile")
                    .help(
                        "every container this policy matches is denied (seccomp.localhost-invalid) until it is fixed",
                    ),
                );
            }
        }
    }
}
