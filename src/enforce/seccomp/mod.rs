//! Seccomp: compiles the merged seccomp setting into the spec's `linux.seccomp`.
//!
//! Each constraint (one per policy: a base profile plus its own allow/deny deltas) is
//! brought to a normal form ([`model::Profile`]); the spec's own section is one more
//! constraint unless every policy says `existing: replace`. The filter written is the
//! intersection: a call passes only when every constraint lets it pass, so adding a
//! policy never weakens a container. Where the exact intersection cannot be written
//! as libseccomp rules, the result is stricter and the calls are named in a
//! `seccomp.approximated` finding.

pub mod default;
pub mod docker;
pub mod emit;
pub mod model;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde_json::Value;
use thiserror::Error;

use super::Finding;
use crate::fsutil::{self, ReadError};
use crate::policy::seccomp::{target_names, ProfileRef, SeccompConstraint, SeccompSettings};
use crate::spec::{Patch, PatchOp};
use docker::{Names, ProfileError, Reading};
use model::{Action, Decision, Name, Profile};

pub use crate::policy::seccomp::RULE_UNCONFINED;
/// The filter was set or tightened (the spec had a seccomp section).
pub const RULE_PROFILE: &str = "seccomp.profile";
/// The spec's own seccomp section cannot be read, so it cannot be kept.
pub const RULE_SPEC_UNPARSABLE: &str = "seccomp.spec-unparsable";
/// A `localhost/` profile is missing, too large or invalid.
pub const RULE_LOCALHOST_INVALID: &str = "seccomp.localhost-invalid";
/// Constraints ask for different notification agents.
pub const RULE_CONFLICT: &str = "seccomp.conflict";
/// Calls made stricter than the exact intersection (information).
pub const RULE_APPROXIMATED: &str = "seccomp.approximated";

/// A profile file beyond this is a mistake or an attack, not a profile (moby's
/// default is 15 KiB; the largest generated ones are well under 1 MiB).
pub const MAX_LOCALHOST_PROFILE_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Error)]
pub enum SeccompError {
    #[error("seccomp profile {}: {source}", path.display())]
    LocalhostRead { path: PathBuf, source: std::io::Error },
    #[error("seccomp profile {} is larger than {MAX_LOCALHOST_PROFILE_BYTES} bytes", path.display())]
    LocalhostTooLarge { path: PathBuf },
    #[error("seccomp profile {}: {source}", path.display())]
    LocalhostInvalid { path: PathBuf, source: ProfileError },
    #[error("the spec's own seccomp section cannot be read ({0}); it cannot be kept as a constraint")]
    SpecUnparsable(String),
    #[error("seccomp profiles name different notification agents: {0} and {1}")]
    ListenerConflict(String, String),
    #[error("cannot write the seccomp section: {0}")]
    Emit(String),
}

impl SeccompError {
    /// The rule ID a denial for this error carries.
    pub fn rule(&self) -> &'static str {
        match self {
            SeccompError::LocalhostRead { .. }
            | SeccompError::LocalhostTooLarge { .. }
            | SeccompError::LocalhostInvalid { .. } => RULE_LOCALHOST_INVALID,
            SeccompError::SpecUnparsable(_) | SeccompError::Emit(_) => RULE_SPEC_UNPARSABLE,
            SeccompError::ListenerConflict(..) => RULE_CONFLICT,
        }
    }
}

/// The architectures filters are built for, and the running kernel (Docker's
/// `minKernel` conditions and the default profile's `ptrace` rule depend on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `SCMP_ARCH_*` of the build target.
    pub native_arch: &'static str,
    /// Go's name for it, as Docker profiles' `includes.arches` write it.
    pub go_arch: &'static str,
    /// Every architecture a filter covers: native first, then 32-bit companions.
    pub arches: &'static [&'static str],
    /// (major, minor); `None`: unknown, assumed recent.
    pub kernel: Option<(u32, u32)>,
}

impl Target {
    /// The build target's architectures, for a given kernel.
    pub fn build_target(kernel: Option<(u32, u32)>) -> Target {
        if cfg!(target_arch = "aarch64") {
            Target {
                native_arch: "SCMP_ARCH_AARCH64",
                go_arch: "arm64",
                arches: &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
                kernel,
            }
        } else {
            Target {
                native_arch: "SCMP_ARCH_X86_64",
                go_arch: "amd64",
                arches: &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                kernel,
            }
        }
    }

    /// This machine (the kernel release read once per process).
    pub fn host() -> Target {
        static KERNEL: OnceLock<Option<(u32, u32)>> = OnceLock::new();
        let kernel = *KERNEL
            .get_or_init(|| std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().and_then(|r| parse_release(&r)));
        Self::build_target(kernel)
    }

    #[cfg(test)]
    pub(crate) fn for_tests() -> Target {
        Self::build_target(Some((6, 1)))
    }
}

/// `6.1.0-13-amd64` → (6, 1).
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut it = release.trim().split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Reads and checks a `localhost/` profile file, as the container's reading will
/// (`caps` and `target` decide Docker's includes/excludes). For `hardrun lint` too.
pub fn read_localhost(path: &Path, caps: &BTreeSet<String>, target: &Target) -> Result<docker::Parsed, SeccompError> {
    let bytes = match fsutil::read_capped(path, MAX_LOCALHOST_PROFILE_BYTES) {
        Ok(b) => b,
        Err(ReadError::TooLarge) => return Err(SeccompError::LocalhostTooLarge { path: path.to_owned() }),
        Err(ReadError::Io(source)) => return Err(SeccompError::LocalhostRead { path: path.to_owned(), source }),
    };
    docker::parse_bytes(&bytes, &Reading { caps, target, names: Names::Strict })
        .map_err(|source| SeccompError::LocalhostInvalid { path: path.to_owned(), source })
}

/// One constraint as a profile.
fn constraint_profile(
    c: &SeccompConstraint,
    caps: &BTreeSet<String>,
    target: &Target,
    approximated: &mut BTreeSet<String>,
) -> Result<Arc<Profile>, SeccompError> {
    let base = match &c.profile {
        Some(ProfileRef::RuntimeDefault) => default::profile(caps, target),
        Some(ProfileRef::Localhost(path)) => {
            let parsed = read_localhost(path, caps, target)?;
            approximated.extend(parsed.approximated);
            Arc::new(parsed.profile)
        }
        // No base (only deltas), or an exemption's unconfined: the identity.
        None | Some(ProfileRef::Unconfined) => Arc::new(Profile::allow_all()),
    };
    if c.allow_syscalls.is_empty() && c.deny_syscalls.is_empty() {
        return Ok(base);
    }
    let mut p = Arc::unwrap_or_clone(base);
    // Names no architecture of the filter has can never match.
    let on_target = |n: &crate::policy::seccomp::SyscallName| target_names().get(n.as_str()).copied();
    for n in c.allow_syscalls.iter().filter_map(on_target) {
        p.set(Name::Borrowed(n), Decision::Always(Action::Allow));
    }
    for n in c.deny_syscalls.iter().filter_map(on_target) {
        p.set(Name::Borrowed(n), Decision::Always(Action::errno(c.errno)));
    }
    Ok(Arc::new(p))
}

/// A short description of a constraint for findings.
fn describe(c: &SeccompConstraint) -> String {
    let mut s = c.profile.as_ref().map_or_else(|| "no base profile".to_owned(), ToString::to_string);
    let list = |set: &BTreeSet<crate::policy::seccomp::SyscallName>| {
        set.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(",")
    };
    if !c.deny_syscalls.is_empty() {
        s.push_str(&format!(" -{} ({})", list(&c.deny_syscalls), c.errno));
    }
    if !c.allow_syscalls.is_empty() {
        s.push_str(&format!(" +{}", list(&c.allow_syscalls)));
    }
    s
}

/// What the merged setting compiles to for one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    /// The `linux.seccomp` object.
    pub value: Value,
    pub profile: Profile,
    /// Calls made stricter than the exact intersection.
    pub approximated: BTreeSet<String>,
    /// The constraints, described, in merge order ("the spec's own profile" last).
    pub sources: Vec<String>,
    pub rules: usize,
}

/// Compiles the setting for a container whose final bounding set is `caps`.
/// `Ok(None)`: no constraint, the spec's seccomp is left alone.
pub fn compile(
    settings: &SeccompSettings,
    caps: &BTreeSet<String>,
    spec: &Value,
    target: &Target,
) -> Result<Option<Compiled>, SeccompError> {
    if settings.is_empty() {
        return Ok(None);
    }
    let mut approximated = BTreeSet::new();
    let mut sources = Vec::new();
    let mut merged: Option<Arc<Profile>> = None;
    let mut add = |p: Arc<Profile>, approximated: &mut BTreeSet<String>| -> Result<(), SeccompError> {
        merged = Some(match merged.take() {
            None => p,
            Some(m) => {
                let i = m.intersect(&p).map_err(|c| SeccompError::ListenerConflict(c.0, c.1))?;
                approximated.extend(i.approximated);
                Arc::new(i.profile)
            }
        });
        Ok(())
    };
    for c in &settings.constraints {
        let p = constraint_profile(c, caps, target, &mut approximated)?;
        sources.push(describe(c));
        add(p, &mut approximated)?;
    }
    if let Some(own) = existing_section(spec).filter(|_| settings.keeps_existing()) {
        let parsed = docker::parse_value(own, &Reading { caps, target, names: Names::Lenient })
            .map_err(|e| SeccompError::SpecUnparsable(e.to_string()))?;
        approximated.extend(parsed.approximated);
        sources.push("the spec's own profile".to_owned());
        add(Arc::new(parsed.profile), &mut approximated)?;
    }
    let profile = Arc::unwrap_or_clone(merged.expect("at least one constraint"));
    let emitted = emit::emit(&profile).map_err(SeccompError::Emit)?;
    approximated.extend(emitted.approximated);
    Ok(Some(Compiled { value: emitted.value, profile, approximated, sources, rules: emitted.rules }))
}

/// The spec's `linux.seccomp`, unless absent or null (no filter).
fn existing_section(spec: &Value) -> Option<&Value> {
    spec.pointer("/linux/seccomp").filter(|v| !v.is_null())
}

/// The findings (with their patch) for one container, on this machine.
pub fn plan(settings: &SeccompSettings, final_caps: &BTreeSet<String>, spec: &Value) -> Vec<Finding> {
    plan_for(settings, final_caps, spec, &Target::host())
}

/// [`plan`] for a given target.
pub fn plan_for(
    settings: &SeccompSettings,
    final_caps: &BTreeSet<String>,
    spec: &Value,
    target: &Target,
) -> Vec<Finding> {
    let compiled = match compile(settings, final_caps, spec, target) {
        Ok(Some(c)) => c,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![Finding::deny(e.rule(), e.to_string())],
    };
    let mut out = Vec::new();
    let current = existing_section(spec);
    // A filter that allows everything (only deltas for calls these architectures lack)
    // is not worth installing where there was none.
    let allows_all = compiled.profile.default == Action::Allow && compiled.profile.syscalls.is_empty();
    if current != Some(&compiled.value) && !(current.is_none() && allows_all) {
        let mut patch = Patch::default();
        match spec.get("linux") {
            None => patch.push(PatchOp::add("/linux", Value::Object(Default::default()))),
            Some(l) if !l.is_object() => {
                return vec![Finding::deny(RULE_SPEC_UNPARSABLE, "the spec's linux section is not an object")]
            }
            Some(_) => {}
        }
        patch.push(PatchOp::set(spec, "/linux/seccomp", compiled.value.clone()));
        let (rule, before) = match current {
            None => (RULE_UNCONFINED, "the container asked for no seccomp filter"),
            Some(_) if settings.keeps_existing() => (RULE_PROFILE, "kept the spec's own profile as a constraint"),
            Some(_) => (RULE_PROFILE, "replaced the spec's own profile"),
        };
        let message = format!(
            "{before}; seccomp filter: {} ({} rules, default {})",
            compiled.sources.join(" ∩ "),
            compiled.rules,
            default_action_text(compiled.profile.default),
        );
        out.push(Finding::mutate(rule, message, patch));
    }
    if !compiled.approximated.is_empty() {
        let names: Vec<&str> = compiled.approximated.iter().map(String::as_str).collect();
        out.push(Finding::info(
            RULE_APPROXIMATED,
            format!(
                "made stricter than the exact intersection (not writable as libseccomp rules): {}",
                names.join(", ")
            ),
        ));
    }
    out
}

fn default_action_text(a: Action) -> String {
    match a {
        Action::Errno(n) => format!("errno {}", crate::policy::seccomp::Errno(n)),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests;
