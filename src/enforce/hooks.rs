//! Hook injection: the definitions policies name are appended after the spec's own
//! hooks, per stage, in the definitions' name order. A named definition that is
//! missing, untrusted or malformed denies the container (fail closed).

use serde_json::Value;

use super::{Finding, Host};
use crate::policy::DenyList;
use crate::spec::{Patch, PatchOp};

pub const RULE_INJECTED: &str = "hooks.injected";
pub const RULE_INVALID: &str = "hooks.invalid";

/// Findings for the named hooks; `prelude` gets the empty `hooks` object and stage
/// arrays the operations append to.
pub fn plan(names: &DenyList<String>, spec: &Value, host: &Host, prelude: &mut Patch) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut defs: Vec<_> = Vec::new();
    for name in &names.0 {
        match host.hooks.get(name) {
            Ok(d) => defs.push(d),
            Err(e) => out.push(Finding::deny(RULE_INVALID, format!("hook {name}: {e}"))),
        }
    }
    defs.sort_by_key(|d| d.name.to_lowercase());
    let hooks_obj = spec.get("hooks").filter(|h| h.is_object());
    let mut created: Vec<&str> = Vec::new();
    for def in defs.into_iter().filter(|d| d.applies_to(spec)) {
        let entry = serde_json::to_value(&def.hook).unwrap_or_default();
        let mut patch = Patch::default();
        for stage in &def.stages {
            let has_stage = hooks_obj.and_then(|h| h.get(stage)).is_some_and(Value::is_array);
            if !has_stage && !created.contains(&stage.as_str()) {
                if hooks_obj.is_none() && created.is_empty() {
                    prelude.push(PatchOp::add("/hooks", Value::Object(Default::default())));
                }
                prelude.push(PatchOp::add(format!("/hooks/{stage}"), Value::Array(Vec::new())));
                created.push(stage);
            }
            patch.push(PatchOp::add(format!("/hooks/{stage}/-"), entry.clone()));
        }
        let msg = format!("injected hook {} ({}) at {}", def.name, def.hook.path.display(), def.stages.join(", "));
        out.push(Finding::mutate(RULE_INJECTED, msg, patch));
    }
    out
}
