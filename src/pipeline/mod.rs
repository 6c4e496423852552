//! The create path, in order: context, select, check and mutate, audit, act.
//!
//! `evaluate` is pure (no I/O) and shared with `hardrun explain`; `create` adds the
//! effects: reading the bundle and policies, the audit line, the atomic spec write.

mod exec;
mod userns;

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;
use thiserror::Error;

use crate::audit::{self, Decision, PolicyRef, Record};
use crate::config::{AuditFailure, NodeConfig};
use crate::context::ContainerContext;
use crate::enforce::{self, Host, Plan};
use crate::policy::{lint, load, LoadError, Mode, Origin, PolicySet, Settings};
use crate::spec::{view, Patch, PatchError, SpecError, SpecFile};

// The inner errors are part of each message (runc's log gets one line, no chain), so
// they are not also reported as `source`s.
#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("policy set rejected: {0}")]
    Policy(LoadError),
    #[error("{0}")]
    Spec(SpecError),
    #[error("cannot apply the policy's changes: {0}")]
    Patch(PatchError),
    #[error("policy set rejected by lint: {0}")]
    Lint(String),
    #[error("cannot resolve bundle path {path}: {error}")]
    Bundle { path: PathBuf, error: std::io::Error },
}

impl From<LoadError> for PipelineError {
    fn from(e: LoadError) -> Self {
        PipelineError::Policy(e)
    }
}

impl From<SpecError> for PipelineError {
    fn from(e: SpecError) -> Self {
        PipelineError::Spec(e)
    }
}

impl From<PatchError> for PipelineError {
    fn from(e: PatchError) -> Self {
        PipelineError::Patch(e)
    }
}

/// Everything decided about one container, before acting on it.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub context: ContainerContext,
    pub policies: Vec<PolicyRef>,
    /// Exemptions that matched the container (whether or not they lifted anything).
    pub exemptions: Vec<PolicyRef>,
    pub settings: Settings,
    pub plan: Plan,
    /// The plan's operations, applied in enforce mode.
    pub patch: Patch,
    pub decision: Decision,
    /// The spec runc will get: patched in enforce mode, the original otherwise.
    pub result: Value,
    /// The user namespace work `create` still has to do (allocate or join).
    pub userns: Option<enforce::userns::Intent>,
    /// The `kind: Recording` that selects the container (src/record/).
    pub recording: Option<crate::record::Recording>,
}

impl Evaluation {
    /// The one-line reason for a denial: every denying rule with its ID.
    pub fn denial_reason(&self) -> Option<String> {
        enforce::denial_summary(&self.plan.findings)
    }
}

/// Selects, merges and plans for `spec` (pure but for reading host namespace ids).
pub fn evaluate(
    policies: &PolicySet,
    spec: &Value,
    context: ContainerContext,
    host: &Host,
) -> Result<Evaluation, PipelineError> {
    let selection = policies.select(&context);
    let settings = selection.settings.clone();
    let mut plan = enforce::plan(&selection, spec, host);
    let (userns_findings, userns) = enforce::userns::plan(&settings.user_namespace, spec, &context);
    if !userns_findings.is_empty() {
        plan.findings.extend(userns_findings);
        plan.apply_exemptions(&selection);
    }
    let patch = plan.patch();
    let refs = selection.matched.iter().map(|p| PolicyRef::new(&p.name, &p.hash, &p.source)).collect();
    let exemptions = selection.exemptions.iter().map(|e| PolicyRef::new(&e.name, &e.hash, &e.source)).collect();
    let decision = decide(settings.mode, plan.denials().next().is_some(), !patch.is_empty());
    let mut result = spec.clone();
    if decision == Decision::Mutated {
        patch.apply(&mut result)?;
    }
    let recording = crate::record::model::select(&policies.recordings, &context).cloned();
    Ok(Evaluation { context, policies: refs, exemptions, settings, plan, patch, decision, result, userns, recording })
}

/// The decision for a mode and what the controls found: in enforce mode a denial
/// refuses and a change mutates; audit mode never refuses or changes, only records.
pub(crate) fn decide(mode: Mode, denied: bool, changed: bool) -> Decision {
    match (mode, denied, changed) {
        (Mode::Enforce, true, _) => Decision::Denied,
        (Mode::Enforce, false, true) => Decision::Mutated,
        (Mode::Audit, true, _) | (Mode::Audit, false, true) => Decision::AuditOnly,
        (_, false, false) => Decision::Allowed,
    }
}

/// How hardrun was asked to create a container.
#[derive(Debug, Clone)]
pub struct CreateRequest<'a> {
    pub command: &'a str,
    pub bundle: &'a Path,
    pub container_id: Option<&'a str>,
    pub runtime_class: Option<&'a str>,
    pub runc_root: Option<&'a Path>,
}

/// What the caller does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// exec runc with the unchanged argv.
    Exec,
    /// exec runc, after putting this warning in runc's log (the audit record could
    /// not be written and the node config says `auditFailure: allow`).
    ExecWithWarning(String),
    /// Do not run runc; report this one line.
    Deny(String),
}

/// The node's policy set, refused whole when lint finds an error in it: a node never
/// enforces a set `hardrun lint` rejects. A `localhost/` seccomp profile that cannot
/// be read (HR009) stays a denial of the containers whose policies use it.
pub(crate) fn load_policies(config: &NodeConfig) -> Result<PolicySet, PipelineError> {
    let set = PolicySet::load(&config.policy_dir)?;
    let files = match &set.origin {
        Origin::Dir(dir) => load::policy_files(dir)?,
        Origin::Embedded => Vec::new(),
    };
    let diags: Vec<_> = lint::check_set(&set, &files).into_iter().filter(|d| d.code != "HR009").collect();
    match lint::errors_summary(&diags) {
        Some(summary) => Err(PipelineError::Lint(summary)),
        None => Ok(set),
    }
}

/// Loads the policies and the bundle's spec, and evaluates.
pub fn evaluate_bundle(config: &NodeConfig, req: &CreateRequest<'_>) -> Result<(SpecFile, Evaluation), PipelineError> {
    let policies = load_policies(config)?;
    let spec = SpecFile::load(req.bundle)?;
    let context = ContainerContext::from_parts(
        &view::annotations(&spec.value),
        req.container_id,
        req.runtime_class,
        req.runc_root,
    );
    let mut host = Host::detect(&config.sys_root);
    if policies.policies.iter().any(|p| !p.spec.hooks.0.is_empty()) {
        host.hooks = crate::hooks::HookCatalog::load(&config.hook_dirs, config.hook_timeout);
    }
    let eval = evaluate(&policies, &spec.value, context, &host)?;
    Ok((spec, eval))
}

fn absolute(path: &Path) -> Result<PathBuf, PipelineError> {
    std::path::absolute(path).map_err(|error| PipelineError::Bundle { path: path.to_owned(), error })
}

/// The whole create path with its effects. Every path out of here that lets runc run
/// has written its audit record first.
pub fn create(config: &NodeConfig, req: &CreateRequest<'_>) -> Outcome {
    let started = Instant::now();
    let mut record = Record::new(req.command);
    record.container_id = req.container_id.map(str::to_owned);
    let evaluated = absolute(req.bundle).and_then(|abs| {
        record.bundle = Some(abs.display().to_string());
        evaluate_bundle(config, req)
    });
    let (spec, mut eval) = match evaluated {
        Ok(x) => x,
        Err(e) => return deny_unevaluated(config, record, started, e.to_string()),
    };
    // The image is checked before anything is allocated or started for the container:
    // an unsigned image costs no user-namespace block and no recorder.
    let image = crate::verify::gate::check_create(config, &eval.settings.image_signature, &eval.context);
    let prepared = if image.denial.is_some() {
        userns::Prepared::default()
    } else {
        let bundle = PathBuf::from(record.bundle.clone().unwrap_or_default());
        let prepared = userns::prepare(config, req, &bundle, &spec.value, &mut eval);
        for mut reclaimed in prepared.reclaimed.iter().cloned() {
            let _ = audit::append(&config.audit_log, &mut reclaimed, false);
        }
        match crate::record::arm(config, &mut eval, req.container_id) {
            Ok(armed) => record.recording = armed,
            Err(reason) => {
                prepared.undo();
                return deny_unevaluated(config, record, started, reason);
            }
        }
        prepared
    };
    tracing::debug!(decision = ?eval.decision, policies = eval.policies.len(), "evaluated");
    crate::faults::crash_point("create.evaluated");
    fill_record(&mut record, &eval);
    record.userns = prepared.event.clone();
    image.apply_to(&mut record);
    record.duration_us = elapsed_us(started);
    let warning = match record_durably(config, &mut record) {
        Ok(()) => None,
        Err(Outcome::Deny(msg)) => {
            prepared.undo();
            return Outcome::Deny(msg);
        }
        Err(other) => Some(other),
    };
    if let Some(line) = image.denial {
        return Outcome::Deny(format!("hardrun: container denied: {line}"));
    }
    let proceed = || warning.clone().unwrap_or(Outcome::Exec);
    match eval.decision {
        Decision::Denied => {
            Outcome::Deny(format!("hardrun: container denied by policy: {}", eval.denial_reason().unwrap_or_default()))
        }
        Decision::Mutated => match spec.write_atomic(&eval.result) {
            Ok(()) => proceed(),
            Err(e) => {
                prepared.undo();
                let mut failed = Record::new(req.command);
                failed.container_id = record.container_id.clone();
                failed.bundle = record.bundle.clone();
                failed.context = record.context.clone();
                failed.reason = Some(e.to_string());
                let _ = audit::append(&config.audit_log, &mut failed, true);
                Outcome::Deny(format!("hardrun: {e}"))
            }
        },
        Decision::Allowed | Decision::AuditOnly | Decision::FailedOpen => proceed(),
    }
}

/// Appends a record runc's start depends on. `Err(Deny)`: the record is lost and the
/// node config says deny; `Err(ExecWithWarning)`: lost, but allowed.
pub(crate) fn record_durably(config: &NodeConfig, record: &mut Record) -> Result<(), Outcome> {
    match audit::append(&config.audit_log, record, true) {
        Ok(()) => Ok(()),
        Err(e) if config.audit_failure == AuditFailure::Allow => {
            Err(Outcome::ExecWithWarning(format!("hardrun: {e}; starting anyway (auditFailure: allow)")))
        }
        Err(e) => Err(Outcome::Deny(format!("hardrun: {e}; refusing to start an unaudited container"))),
    }
}

fn fill_record(record: &mut Record, eval: &Evaluation) {
    record.context = eval.context.clone();
    record.policies = eval.policies.clone();
    record.exemptions = eval.exemptions.clone();
    record.mode = eval.settings.mode;
    record.decision = eval.decision;
    record.reason = eval.denial_reason();
    record.findings = eval.plan.findings.clone();
    record.patch = eval.patch.clone();
}

/// A create that failed before a decision: denied, recorded when the log allows.
fn deny_unevaluated(config: &NodeConfig, mut record: Record, started: Instant, reason: String) -> Outcome {
    record.decision = Decision::Denied;
    record.reason = Some(reason.clone());
    record.duration_us = elapsed_us(started);
    let _ = audit::append(&config.audit_log, &mut record, true);
    Outcome::Deny(format!("hardrun: {reason}"))
}

pub use exec::{container_bundle, exec, ExecRequest};
pub(crate) use userns::release_on_delete;

fn elapsed_us(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table() {
        assert_eq!(decide(Mode::Enforce, true, true), Decision::Denied);
        assert_eq!(decide(Mode::Enforce, false, true), Decision::Mutated);
        assert_eq!(decide(Mode::Enforce, false, false), Decision::Allowed);
        assert_eq!(decide(Mode::Audit, true, false), Decision::AuditOnly);
        assert_eq!(decide(Mode::Audit, false, true), Decision::AuditOnly);
        assert_eq!(decide(Mode::Audit, false, false), Decision::Allowed);
    }
}
