use serde::{Deserialize, Serialize};

use crate::context::ContainerContext;
use crate::enforce::Finding;
use crate::policy::Mode;
use crate::spec::Patch;

pub const API_VERSION: &str = "hardrun.dev/audit/v1";

/// What happened to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// Started unchanged.
    Allowed,
    /// Started with the policy's changes.
    Mutated,
    /// Refused: runc was not run.
    Denied,
    /// Audit mode: started unchanged; the record says what enforce would have done.
    AuditOnly,
}

/// A matched policy, named with the hash of its exact content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRef {
    pub name: String,
    pub hash: String,
    pub source: String,
}

/// One audit line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub api_version: String,
    pub time: String,
    pub hardrun_version: String,
    pub command: String,
    pub container_id: Option<String>,
    pub bundle: Option<String>,
    pub context: ContainerContext,
    pub policies: Vec<PolicyRef>,
    /// Exemptions that matched the container.
    pub exemptions: Vec<PolicyRef>,
    pub mode: Mode,
    pub decision: Decision,
    /// Why it was denied, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub findings: Vec<Finding>,
    pub patch: Patch,
    pub duration_us: u64,
}

impl Record {
    pub fn new(command: &str) -> Self {
        Record {
            api_version: API_VERSION.to_owned(),
            time: crate::timefmt::now_rfc3339_nanos(),
            hardrun_version: env!("CARGO_PKG_VERSION").to_owned(),
            command: command.to_owned(),
            container_id: None,
            bundle: None,
            context: ContainerContext::default(),
            policies: Vec::new(),
            exemptions: Vec::new(),
            mode: Mode::Enforce,
            decision: Decision::Denied,
            reason: None,
            findings: Vec::new(),
            patch: Patch::default(),
            duration_us: 0,
        }
    }
}
