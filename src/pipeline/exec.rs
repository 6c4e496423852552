//! The exec path: `runc exec` gets the container's clamp. containerd builds an exec's
//! process from the pod's stored, un-hardened spec, so without this an exec could
//! regain what create took away (`--cap`, a process file with more capabilities,
//! another AppArmor profile, no NoNewPrivileges).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Value;

use super::{elapsed_us, Outcome};
use crate::audit::{self, Decision, ExecInfo, PolicyRef, Record};
use crate::config::NodeConfig;
use crate::context::ContainerContext;
use crate::enforce::{self, Finding, Host};
use crate::fsutil;
use crate::policy::{CapName, Selection};
use crate::runtime::ExecFlags;
use crate::spec::{view, Patch, SpecFile};

pub const RULE_CAP_FLAG: &str = "exec.cap";
pub const RULE_APPARMOR_FLAG: &str = "exec.apparmor";
pub const RULE_NNP_FLAG: &str = "exec.no-new-privs";
pub const RULE_USER_FLAG: &str = "exec.user";

/// runc's default state root.
pub const DEFAULT_RUNC_ROOT: &str = "/run/runc";
/// runc's state.json is a few KiB.
const MAX_STATE_BYTES: u64 = 1024 * 1024;

/// How hardrun was asked to exec into a container.
#[derive(Debug, Clone)]
pub struct ExecRequest<'a> {
    pub container_id: Option<&'a str>,
    pub flags: &'a ExecFlags,
    pub runtime_class: Option<&'a str>,
    pub runc_root: Option<&'a Path>,
}

/// The bundle runc recorded for a container (`bundle=` label in its state.json).
pub fn container_bundle(runc_root: &Path, id: &str) -> Result<PathBuf, String> {
    if id.is_empty() || id.contains('/') || id == "." || id == ".." {
        return Err(format!("invalid container id {id:?}"));
    }
    let path = runc_root.join(id).join("state.json");
    let bytes = fsutil::read_capped(&path, MAX_STATE_BYTES)
        .map_err(|e| format!("cannot read container {id}'s state {}: {e:?}", path.display()))?;
    let state: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("container {id}'s state is not JSON: {e}"))?;
    state
        .pointer("/config/labels")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|l| l.strip_prefix("bundle="))
        .map(PathBuf::from)
        .ok_or_else(|| format!("container {id}'s state names no bundle"))
}

/// The container uid the exec runs as: `--user` wins (runc's order), then the process
/// file, then the container's own process. `Err`: a user name, which only the
/// container's /etc/passwd could resolve.
fn exec_uid(flags: &ExecFlags, process: Option<&Value>, container: &Value) -> Result<u64, String> {
    if let Some(user) = &flags.user {
        let uid = user.split(':').next().unwrap_or("");
        return uid.parse().map_err(|_| format!("exec --user {user:?}: only numeric uids can be checked"));
    }
    let uid = process.or(container.get("process")).and_then(|p| p.pointer("/user/uid")).and_then(Value::as_u64);
    Ok(uid.unwrap_or(0))
}

/// Findings for the exec's flags and process file (operations address the process
/// file itself).
fn exec_plan(
    selection: &Selection<'_>,
    flags: &ExecFlags,
    process: Option<&Value>,
    container: &Value,
    host: &Host,
) -> enforce::Plan {
    let settings = &selection.settings;
    let mut out = Vec::new();
    if settings.no_new_privileges.0 && flags.no_new_privs == Some(false) {
        out.push(Finding::deny(
            RULE_NNP_FLAG,
            "exec asks for --no-new-privs=false; the policy requires NoNewPrivileges",
        ));
    }
    if settings.process.run_as_non_root.0 {
        match exec_uid(flags, process, container) {
            Ok(uid) => out.extend(enforce::process::run_as_non_root_uid(&settings.process, container, uid)),
            Err(why) => out.push(Finding::deny(RULE_USER_FLAG, why)),
        }
    }
    let caps = enforce::effective_capabilities(selection);
    for cap in &flags.caps {
        let permitted = CapName::new(cap).is_ok_and(|c| caps.permits(&c));
        if !permitted {
            out.push(Finding::deny(
                RULE_CAP_FLAG,
                format!("exec asks for capability {cap}, which the policy does not allow"),
            ));
        }
    }
    if let Some(profile) = &flags.apparmor {
        if !settings.apparmor.profiles.0.is_empty() && !settings.apparmor.profiles.0.contains(profile) {
            out.push(Finding::deny(RULE_APPARMOR_FLAG, format!("exec asks for AppArmor profile {profile}")));
        }
    }
    if let Some(p) = process {
        out.extend(enforce::process::no_new_privileges(settings.no_new_privileges, p, ""));
        out.extend(enforce::capabilities::plan(&enforce::effective_capabilities(selection), p, ""));
        out.extend(enforce::apparmor::plan(&settings.apparmor, Some(p), "", host));
    }
    let mut plan = enforce::Plan { findings: out, prelude: Patch::default() };
    plan.apply_exemptions(selection);
    plan
}

/// What the exec'd process runs with: its effective set plus `--cap` additions.
fn exec_info(process: &Value, cap_flags: &[String]) -> ExecInfo {
    let mut caps: Vec<String> = view::cap_set(process, "effective").into_iter().map(str::to_owned).collect();
    caps.extend(cap_flags.iter().filter_map(|c| CapName::new(c).ok()).map(|c| c.to_string()));
    caps.sort();
    caps.dedup();
    let args = process.get("args").and_then(Value::as_array).into_iter().flatten();
    ExecInfo { effective_caps: Some(caps), args: args.filter_map(Value::as_str).map(str::to_owned).collect() }
}

/// Decides an exec; rewrites `--process` in enforce mode. Every exec is audited.
pub fn exec(config: &NodeConfig, req: &ExecRequest<'_>) -> Outcome {
    let started = Instant::now();
    let mut record = Record::new("exec");
    record.container_id = req.container_id.map(str::to_owned);
    let result = evaluate_exec(config, req, &mut record);
    record.duration_us = elapsed_us(started);
    match result {
        Err(reason) => {
            record.decision = Decision::Denied;
            record.reason = Some(reason.clone());
            let _ = audit::append(&config.audit_log, &mut record, true);
            Outcome::Deny(format!("hardrun: exec denied: {reason}"))
        }
        Ok(rewrite) => {
            let warning = match super::record_durably(config, &mut record) {
                Ok(()) => None,
                Err(Outcome::Deny(msg)) => return Outcome::Deny(msg),
                Err(other) => Some(other),
            };
            if record.decision == Decision::Denied {
                return Outcome::Deny(format!("hardrun: exec denied by policy: {}", record.reason.unwrap_or_default()));
            }
            match rewrite.map(|(file, value)| file.write_atomic(&value)) {
                Some(Err(e)) => Outcome::Deny(format!("hardrun: {e}")),
                _ => warning.unwrap_or(Outcome::Exec),
            }
        }
    }
}

/// Fills `record`; returns the process file to rewrite, if any. `Err`: cannot decide.
fn evaluate_exec(
    config: &NodeConfig,
    req: &ExecRequest<'_>,
    record: &mut Record,
) -> Result<Option<(SpecFile, Value)>, String> {
    let id = req.container_id.ok_or("no container id given")?;
    let root = req.runc_root.unwrap_or(Path::new(DEFAULT_RUNC_ROOT));
    let bundle = container_bundle(root, id)?;
    record.bundle = Some(bundle.display().to_string());
    let spec = SpecFile::load(&bundle).map_err(|e| e.to_string())?;
    let policies = super::load_policies(config).map_err(|e| e.to_string())?;
    let context =
        ContainerContext::from_parts(&view::annotations(&spec.value), Some(id), req.runtime_class, req.runc_root);
    let selection = policies.select(&context);
    let process_file = req.flags.process.as_deref().map(SpecFile::load_file).transpose().map_err(|e| e.to_string())?;
    let host = Host::detect(&config.sys_root);
    let plan = exec_plan(&selection, req.flags, process_file.as_ref().map(|f| &f.value), &spec.value, &host);

    let patch = plan.patch();
    let denied = enforce::denial_summary(&plan.findings);
    let mode = selection.settings.mode;
    record.decision = super::decide(mode, denied.is_some(), !patch.is_empty());
    record.reason = denied;
    record.context = context;
    record.mode = mode;
    record.policies = selection.matched.iter().map(|p| PolicyRef::new(&p.name, &p.hash, &p.source)).collect();
    record.findings = plan.findings;
    record.patch = patch.clone();
    let Some(file) = process_file else {
        record.exec = Some(ExecInfo { effective_caps: None, args: Vec::new() });
        return Ok(None);
    };
    let mut value = file.value.clone();
    if record.decision == Decision::Mutated {
        patch.apply(&mut value).map_err(|e| format!("cannot apply the policy's changes: {e}"))?;
    }
    record.exec = Some(exec_info(&value, &req.flags.caps));
    Ok((record.decision == Decision::Mutated).then_some((file, value)))
}
