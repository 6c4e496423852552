//! The controls. Each looks at the merged settings and the spec and returns findings
//! and JSON-Patch operations; none writes files, talks to registries or audits.

pub mod capabilities;
pub mod process;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::policy::Settings;
use crate::spec::Patch;

/// What a finding did to the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The spec was (or in audit mode would have been) changed.
    Mutate,
    /// The container must not start.
    Deny,
}

/// One rule's verdict on one container. `rule` is a stable ID (`caps.clamped`, …)
/// used in runc log lines, the audit record and the docs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    pub action: Action,
    pub message: String,
}

impl Finding {
    pub fn mutate(rule: &str, message: impl Into<String>) -> Self {
        Finding { rule: rule.to_owned(), action: Action::Mutate, message: message.into() }
    }
    pub fn deny(rule: &str, message: impl Into<String>) -> Self {
        Finding { rule: rule.to_owned(), action: Action::Deny, message: message.into() }
    }
}

/// What all controls together want done to one spec.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub findings: Vec<Finding>,
    pub patch: Patch,
}

impl Plan {
    fn add(&mut self, findings: impl IntoIterator<Item = Finding>, patch: Patch) {
        self.findings.extend(findings);
        self.patch.extend(patch);
    }

    pub fn denials(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.action == Action::Deny)
    }
}

/// Runs every control, in a fixed order, against the original spec. Controls touch
/// disjoint parts of the spec, so each patch applies independently of the others.
pub fn plan(settings: &Settings, spec: &Value) -> Plan {
    let mut plan = Plan::default();
    let Some(process) = spec.get("process").filter(|p| p.is_object()) else {
        // No process (not startable by runc): nothing for process controls to clamp.
        return plan;
    };
    let (f, p) = process::no_new_privileges(settings.no_new_privileges, process, "/process");
    plan.add(f, p);
    let (f, p) = capabilities::clamp(&settings.capabilities, process, "/process");
    plan.add(f, p);
    plan
}
