//! Capability clamp: every capability set of a process keeps only what the merged
//! allow-list allows. Names hardrun cannot recognise are removed too (fail closed).

use serde_json::Value;

use super::Finding;
use crate::policy::{CapName, CapabilitySettings};
use crate::spec::view::CAP_SETS;
use crate::spec::{Patch, PatchOp};

pub const RULE_CLAMPED: &str = "caps.clamped";

fn allowed(settings: &CapabilitySettings, name: &str) -> bool {
    CapName::new(name).is_ok_and(|c| settings.allow.allows(&c))
}

/// Clamps the capability sets of the process object at `base` (`/process`).
pub fn clamp(settings: &CapabilitySettings, process: &Value, base: &str) -> (Vec<Finding>, Patch) {
    let mut patch = Patch::default();
    let mut dropped: Vec<String> = Vec::new();
    let Some(caps) = process.get("capabilities").and_then(Value::as_object) else {
        return (Vec::new(), patch);
    };
    if settings.allow.0.is_none() {
        return (Vec::new(), patch);
    }
    for set in CAP_SETS {
        let Some(list) = caps.get(set).and_then(Value::as_array) else { continue };
        let kept: Vec<Value> =
            list.iter().filter(|v| v.as_str().is_some_and(|n| allowed(settings, n))).cloned().collect();
        if kept.len() == list.len() {
            continue;
        }
        for v in list.iter().filter(|v| !kept.contains(v)) {
            let name = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            if !dropped.contains(&name) {
                dropped.push(name);
            }
        }
        patch.push(PatchOp::replace(format!("{base}/capabilities/{set}"), Value::Array(kept)));
    }
    if dropped.is_empty() {
        return (Vec::new(), patch);
    }
    let msg = format!("dropped capabilities not in the allow-list: {}", dropped.join(", "));
    (vec![Finding::mutate(RULE_CLAMPED, msg)], patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::AllowList;
    use serde_json::json;

    fn only(names: &[&str]) -> CapabilitySettings {
        CapabilitySettings { allow: AllowList::only(names.iter().map(|n| CapName::new(n).unwrap())) }
    }

    #[test]
    fn clamps_every_set_and_keeps_order() {
        let p = json!({"capabilities": {
            "bounding": ["CAP_KILL", "CAP_NET_RAW", "CAP_CHOWN"],
            "effective": ["CAP_NET_RAW"],
            "permitted": ["CAP_KILL", "CAP_CHOWN"],
            "ambient": ["CAP_FUTURE_THING"]
        }});
        let (f, patch) = clamp(&only(&["CHOWN", "KILL"]), &p, "/process");
        assert_eq!(
            patch,
            Patch(vec![
                PatchOp::replace("/process/capabilities/bounding", json!(["CAP_KILL", "CAP_CHOWN"])),
                PatchOp::replace("/process/capabilities/effective", json!([])),
                PatchOp::replace("/process/capabilities/ambient", json!([])),
            ])
        );
        assert_eq!(f[0].rule, RULE_CLAMPED);
        assert!(f[0].message.contains("CAP_NET_RAW") && f[0].message.contains("CAP_FUTURE_THING"));
    }

    #[test]
    fn unrestricted_or_already_within_is_a_no_op() {
        let p = json!({"capabilities": {"bounding": ["CAP_KILL"]}});
        assert!(clamp(&CapabilitySettings::default(), &p, "/process").1.is_empty());
        let future = json!({"capabilities": {"bounding": ["CAP_FUTURE_THING"]}});
        assert!(clamp(&CapabilitySettings::default(), &future, "/process").1.is_empty());
        assert!(clamp(&only(&["KILL"]), &p, "/process").1.is_empty());
        assert!(clamp(&only(&[]), &json!({}), "/process").1.is_empty());
    }
}
