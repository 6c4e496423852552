//! Capabilities: a container asking for a forbidden capability is denied (or the
//! capability dropped, per policy), and every capability set is clamped to the merged
//! allow-list. Names hardrun cannot recognise are dropped when any restriction is in
//! force (fail closed).

use std::collections::BTreeSet;

use serde_json::Value;

use super::Finding;
use crate::policy::{CapName, CapabilitySettings, OnForbidden};
use crate::spec::view::{cap_set, CAP_SETS};
use crate::spec::{Patch, PatchOp};

pub const RULE_CLAMPED: &str = "caps.clamped";
pub const RULE_FORBIDDEN: &str = "caps.forbidden";

fn is_restricted(settings: &CapabilitySettings) -> bool {
    settings.allow.0.is_some() || !settings.forbidden.0.is_empty()
}

fn keeps(settings: &CapabilitySettings, name: &str) -> bool {
    !is_restricted(settings) || CapName::new(name).is_ok_and(|c| settings.permits(&c))
}

/// The forbidden capabilities a process asks for, in any set.
pub fn forbidden_requested(settings: &CapabilitySettings, process: &Value) -> BTreeSet<String> {
    CAP_SETS
        .iter()
        .flat_map(|set| cap_set(process, set))
        .filter_map(|n| CapName::new(n).ok())
        .filter(|c| settings.forbidden.0.contains(c))
        .map(|c| c.to_string())
        .collect()
}

/// The bounding set the process ends up with (what seccomp's allow-list follows).
pub fn final_bounding(settings: &CapabilitySettings, process: &Value) -> BTreeSet<String> {
    cap_set(process, "bounding").into_iter().filter(|n| keeps(settings, n)).map(str::to_owned).collect()
}

/// Findings for the process object at `base` (`/process`, or empty for an exec's
/// process file).
pub fn plan(settings: &CapabilitySettings, process: &Value, base: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let forbidden = forbidden_requested(settings, process);
    if !forbidden.is_empty() && settings.on_forbidden == OnForbidden::Deny {
        let names: Vec<&str> = forbidden.iter().map(String::as_str).collect();
        out.push(Finding::deny(RULE_FORBIDDEN, format!("asks for forbidden capabilities: {}", names.join(", "))));
    }
    out.extend(clamp(settings, process, base));
    out
}

/// Clamps every capability set; one `caps.clamped` finding naming what was dropped.
pub fn clamp(settings: &CapabilitySettings, process: &Value, base: &str) -> Option<Finding> {
    if !is_restricted(settings) {
        return None;
    }
    let caps = process.get("capabilities").and_then(Value::as_object)?;
    let mut patch = Patch::default();
    let mut dropped: Vec<String> = Vec::new();
    for set in CAP_SETS {
        let Some(list) = caps.get(set).and_then(Value::as_array) else { continue };
        let (kept, gone): (Vec<&Value>, Vec<&Value>) =
            list.iter().partition(|v| v.as_str().is_some_and(|n| keeps(settings, n)));
        if gone.is_empty() {
            continue;
        }
        for v in gone {
            let name = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            if !dropped.contains(&name) {
                dropped.push(name);
            }
        }
        patch.push(PatchOp::replace(
            format!("{base}/capabilities/{set}"),
            Value::Array(kept.into_iter().cloned().collect()),
        ));
    }
    (!dropped.is_empty())
        .then(|| Finding::mutate(RULE_CLAMPED, format!("dropped capabilities: {}", dropped.join(", ")), patch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AllowList, DenyList};
    use serde_json::json;

    fn caps(names: &[&str]) -> BTreeSet<CapName> {
        names.iter().map(|n| CapName::new(n).unwrap()).collect()
    }

    fn only(names: &[&str]) -> CapabilitySettings {
        CapabilitySettings { allow: AllowList(Some(caps(names))), ..Default::default() }
    }

    #[test]
    fn clamps_every_set_and_keeps_order() {
        let p = json!({"capabilities": {
            "bounding": ["CAP_KILL", "CAP_NET_RAW", "CAP_CHOWN"],
            "effective": ["CAP_NET_RAW"],
            "permitted": ["CAP_KILL", "CAP_CHOWN"],
            "ambient": ["CAP_FUTURE_THING"]
        }});
        let f = clamp(&only(&["CHOWN", "KILL"]), &p, "/process").unwrap();
        assert_eq!(
            f.patch,
            Patch(vec![
                PatchOp::replace("/process/capabilities/bounding", json!(["CAP_KILL", "CAP_CHOWN"])),
                PatchOp::replace("/process/capabilities/effective", json!([])),
                PatchOp::replace("/process/capabilities/ambient", json!([])),
            ])
        );
        assert_eq!(f.rule, RULE_CLAMPED);
        assert!(f.message.contains("CAP_NET_RAW") && f.message.contains("CAP_FUTURE_THING"));
    }

    #[test]
    fn unrestricted_or_already_within_is_a_no_op() {
        let p = json!({"capabilities": {"bounding": ["CAP_KILL"]}});
        assert!(clamp(&CapabilitySettings::default(), &p, "/process").is_none());
        let future = json!({"capabilities": {"bounding": ["CAP_FUTURE_THING"]}});
        assert!(clamp(&CapabilitySettings::default(), &future, "/process").is_none());
        assert!(clamp(&only(&["KILL"]), &p, "/process").is_none());
        assert!(clamp(&only(&[]), &json!({}), "/process").is_none());
    }

    #[test]
    fn forbidden_denies_or_drops() {
        let p = json!({"capabilities": {"bounding": ["CAP_KILL", "CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"]}});
        let mut s = CapabilitySettings { forbidden: DenyList(caps(&["SYS_ADMIN"])), ..Default::default() };
        let drop = plan(&s, &p, "/process");
        assert_eq!(drop.len(), 1);
        assert_eq!(drop[0].rule, RULE_CLAMPED);
        assert_eq!(final_bounding(&s, &p), BTreeSet::from(["CAP_KILL".to_owned()]));
        s.on_forbidden = OnForbidden::Deny;
        let deny = plan(&s, &p, "/process");
        assert_eq!(deny[0].rule, RULE_FORBIDDEN);
        assert_eq!(deny[0].action, super::super::Action::Deny);
        assert!(deny[0].message.contains("CAP_SYS_ADMIN"));
    }
}
