//! The controls. Each looks at the merged settings, the spec and the host, and returns
//! findings that carry their JSON-Patch operations; none writes files, talks to
//! registries or audits. `plan` runs them all in a fixed order.

pub mod apparmor;
pub mod capabilities;
pub mod devices;
pub mod filesystem;
pub mod hooks;
pub mod host;
pub mod namespaces;
pub mod privileged;
pub mod process;
pub mod seccomp;
pub mod sysctls;
pub mod userns;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use host::Host;

use crate::policy::Selection;
use crate::spec::{Patch, PatchOp};

/// What a finding did to the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The spec was (or in audit mode would have been) changed.
    Mutate,
    /// The container must not start.
    Deny,
    /// Lifted by an exemption: neither applied nor denying.
    Exempt,
    /// Recorded only (for example a control skipped because the host lacks it).
    Info,
}

/// One rule's verdict on one container. `rule` is a stable ID (`caps.clamped`, …)
/// used in runc log lines, the audit record and the docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    pub action: Action,
    pub message: String,
    /// The exemption that lifted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemption: Option<String>,
    /// The operations this finding applies (part of the record's `patch`).
    #[serde(skip)]
    pub patch: Patch,
}

impl Finding {
    pub fn mutate(rule: &str, message: impl Into<String>, patch: Patch) -> Self {
        Finding { rule: rule.to_owned(), action: Action::Mutate, message: message.into(), exemption: None, patch }
    }
    pub fn deny(rule: &str, message: impl Into<String>) -> Self {
        Self::without_patch(rule, Action::Deny, message)
    }
    pub fn info(rule: &str, message: impl Into<String>) -> Self {
        Self::without_patch(rule, Action::Info, message)
    }
    fn without_patch(rule: &str, action: Action, message: impl Into<String>) -> Self {
        Finding { rule: rule.to_owned(), action, message: message.into(), exemption: None, patch: Patch::default() }
    }
}

/// Denials per rule shown in full in a one-line reason; the rest are counted (the
/// audit record keeps them all). A privileged pod has a hundred host devices, and
/// `kubectl describe` shows this line.
const DENIALS_SHOWN_PER_RULE: usize = 3;

/// The one-line reason for a denial: each denying rule with its ID, in order, long
/// runs of the same rule shortened.
pub fn denial_summary<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Option<String> {
    let mut by_rule: Vec<(&str, Vec<&str>)> = Vec::new();
    for f in findings.into_iter().filter(|f| f.action == Action::Deny) {
        match by_rule.iter_mut().find(|(r, _)| *r == f.rule) {
            Some((_, msgs)) => msgs.push(&f.message),
            None => by_rule.push((&f.rule, vec![&f.message])),
        }
    }
    let parts: Vec<String> = by_rule
        .iter()
        .flat_map(|(rule, msgs)| {
            let shown = msgs.iter().take(DENIALS_SHOWN_PER_RULE).map(move |m| format!("[{rule}] {m}"));
            let more = msgs.len().saturating_sub(DENIALS_SHOWN_PER_RULE);
            shown.chain((more > 0).then(|| format!("[{rule}] and {more} more")))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// What all controls together want done to one spec.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub findings: Vec<Finding>,
    /// Operations that give later ones a place to go (an absent `/linux`).
    pub prelude: Patch,
}

impl Plan {
    pub fn denials(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.action == Action::Deny)
    }

    /// Every operation to apply, in order.
    pub fn patch(&self) -> Patch {
        let mut all = Patch::default();
        let ops: Vec<&PatchOp> = self.findings.iter().flat_map(|f| &f.patch.0).collect();
        if !ops.is_empty() {
            all.extend(self.prelude.clone());
        }
        all.0.extend(ops.into_iter().cloned());
        all
    }

    /// Turns findings whose rule an exemption lifts into `exempt` ones, without their
    /// operations.
    pub fn apply_exemptions(&mut self, selection: &Selection<'_>) {
        for f in &mut self.findings {
            if !matches!(f.action, Action::Deny | Action::Mutate) {
                continue;
            }
            if let Some(e) = selection.exemption_for(&f.rule) {
                f.action = Action::Exempt;
                f.exemption = Some(e.name.clone());
                f.patch = Patch::default();
            }
        }
    }
}

/// Runs every control against the spec, in a fixed order; lifts exempted findings.
/// Controls touch disjoint parts of the spec, so their operations apply in sequence.
pub fn plan(selection: &Selection<'_>, spec: &Value, host: &Host) -> Plan {
    let settings = &selection.settings;
    let mut plan = Plan::default();
    // Controls address /linux/...; give them one to address.
    let normalized;
    let spec = if spec.get("linux").is_some_and(Value::is_object) {
        spec
    } else {
        plan.prelude.push(PatchOp::set(spec, "/linux", Value::Object(Default::default())));
        let mut copy = spec.clone();
        copy["linux"] = Value::Object(Default::default());
        normalized = copy;
        &normalized
    };
    plan.findings.extend(process_controls(selection, spec));
    plan.findings.extend(apparmor::plan(&settings.apparmor, spec.get("process"), "/process", host));
    plan.findings.extend(filesystem::plan(&settings.filesystem, spec));
    plan.findings.extend(namespaces::plan(&settings.namespaces, spec, host));
    plan.findings.extend(devices::plan(&settings.devices, spec));
    plan.findings.extend(sysctls::plan(&settings.sysctls, spec));
    if settings.deny_privileged.0 {
        plan.findings.extend(privileged::check(spec));
    }
    let hook_findings = hooks::plan(&settings.hooks, spec, host, &mut plan.prelude);
    plan.findings.extend(hook_findings);
    plan.apply_exemptions(selection);
    plan
}

/// The capability settings in force: an exemption for `caps.forbidden` lifts the
/// forbidden list (the allow-list still applies), so an exempt container keeps the
/// capability instead of losing it silently.
pub fn effective_capabilities(selection: &Selection<'_>) -> crate::policy::CapabilitySettings {
    let mut caps = selection.settings.capabilities.clone();
    if selection.exemption_for(capabilities::RULE_FORBIDDEN).is_some() {
        caps.forbidden = Default::default();
    }
    caps
}

/// The controls of `process` (absent: runc cannot start it, nothing to clamp).
fn process_controls(selection: &Selection<'_>, spec: &Value) -> Vec<Finding> {
    let settings = &selection.settings;
    let Some(process) = spec.get("process").filter(|p| p.is_object()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(e) = selection.exemption_for(capabilities::RULE_FORBIDDEN) {
        let asked = capabilities::forbidden_requested(&settings.capabilities, process);
        if !asked.is_empty() {
            let names: Vec<&str> = asked.iter().map(String::as_str).collect();
            let mut f = Finding::deny(
                capabilities::RULE_FORBIDDEN,
                format!("keeps forbidden capabilities: {}", names.join(", ")),
            );
            f.action = Action::Exempt;
            f.exemption = Some(e.name.clone());
            out.push(f);
        }
    }
    out.extend(process::no_new_privileges(settings.no_new_privileges, process, "/process"));
    // runtime/default's allow-list follows the capabilities the process ends up with.
    let caps = capabilities::final_bounding(&effective_capabilities(selection), process);
    out.extend(seccomp::plan(&settings.seccomp, &caps, spec));
    out.extend(capabilities::plan(&effective_capabilities(selection), process, "/process"));
    // The mapping hardrun adds puts container uid u at host uid block + u, never 0.
    if !userns::will_get_namespace(&settings.user_namespace, spec) {
        out.extend(process::run_as_non_root(&settings.process, spec));
    }
    out.extend(process::rlimits(&settings.process.rlimits, process, "/process"));
    out.extend(process::umask(settings.process.umask, process, "/process"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_summary_shortens_long_runs_of_one_rule() {
        let mut findings: Vec<Finding> =
            (0..100).map(|i| Finding::deny("devices.node", format!("device node /dev/d{i}"))).collect();
        findings.push(Finding::deny("privileged", "privileged container: every capability"));
        findings.push(Finding::info("apparmor.skipped", "not a denial"));
        let s = denial_summary(&findings).unwrap();
        assert_eq!(
            s,
            "[devices.node] device node /dev/d0; [devices.node] device node /dev/d1; [devices.node] device node /dev/d2; \
             [devices.node] and 97 more; [privileged] privileged container: every capability"
        );
        assert!(denial_summary(&[Finding::info("x", "y")]).is_none());
    }
}
