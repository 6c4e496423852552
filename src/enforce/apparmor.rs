//! AppArmor: the profile a process runs under. Profiles do not stack, so two
//! policies asking for different ones is a conflict (deny). A process that already
//! names a confined profile keeps it: only root can load profiles, so any loaded one
//! is the operator's choice; `unconfined` is replaced unless an exemption lifts
//! `apparmor.unconfined`.

use serde_json::Value;

use super::{Finding, Host};
use crate::policy::AppArmorSettings;
use crate::spec::{Patch, PatchOp};

pub const RULE_PROFILE: &str = "apparmor.profile";
pub const RULE_UNCONFINED: &str = "apparmor.unconfined";
pub const RULE_CONFLICT: &str = "apparmor.conflict";
pub const RULE_UNAVAILABLE: &str = "apparmor.unavailable";
pub const RULE_SKIPPED: &str = "apparmor.skipped";

/// Findings for the process object at `base`.
pub fn plan(settings: &AppArmorSettings, process: Option<&Value>, base: &str, host: &Host) -> Vec<Finding> {
    let Some(process) = process.filter(|p| p.is_object()) else { return Vec::new() };
    let mut wanted = settings.profiles.0.iter();
    let Some(profile) = wanted.next() else { return Vec::new() };
    if wanted.next().is_some() {
        let all: Vec<&str> = settings.profiles.0.iter().map(String::as_str).collect();
        return vec![Finding::deny(
            RULE_CONFLICT,
            format!("policies require different AppArmor profiles: {}", all.join(", ")),
        )];
    }
    let loaded = host.apparmor.as_ref().map(|p| p.contains(profile));
    match (loaded, settings.require.0) {
        (Some(true), _) => {}
        (state, true) => {
            let why =
                if state.is_none() { "AppArmor is not enabled on this node" } else { "the profile is not loaded" };
            return vec![Finding::deny(RULE_UNAVAILABLE, format!("AppArmor profile {profile} required: {why}"))];
        }
        (state, false) => {
            let why =
                if state.is_none() { "AppArmor is not enabled on this node" } else { "the profile is not loaded" };
            return vec![Finding::info(RULE_SKIPPED, format!("AppArmor profile {profile} not applied: {why}"))];
        }
    }
    let current = process.get("apparmorProfile").and_then(Value::as_str).unwrap_or("");
    let rule = match current {
        c if c == profile => return Vec::new(),
        "" => RULE_PROFILE,
        "unconfined" => RULE_UNCONFINED,
        other => return vec![Finding::info(RULE_PROFILE, format!("kept the process's own AppArmor profile {other}"))],
    };
    let op = PatchOp::set_under(base, process, "/apparmorProfile", Value::String(profile.clone()));
    vec![Finding::mutate(rule, format!("set AppArmor profile {profile}"), Patch(vec![op]))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::Action;
    use crate::policy::{DenyList, Require};
    use serde_json::json;
    use std::collections::BTreeSet;

    fn want(names: &[&str], require: bool) -> AppArmorSettings {
        AppArmorSettings {
            profiles: DenyList(names.iter().map(|s| s.to_string()).collect()),
            require: Require(require),
        }
    }

    fn host_with(profiles: &[&str]) -> Host {
        Host { apparmor: Some(profiles.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>()), ..Default::default() }
    }

    #[test]
    fn both_host_branches() {
        let p = json!({});
        let no_aa = Host::default();
        assert_eq!(plan(&want(&["x"], true), Some(&p), "/process", &no_aa)[0].action, Action::Deny);
        assert_eq!(plan(&want(&["x"], false), Some(&p), "/process", &no_aa)[0].action, Action::Info);
        let missing = host_with(&["other"]);
        assert_eq!(plan(&want(&["x"], true), Some(&p), "/process", &missing)[0].rule, RULE_UNAVAILABLE);
        let f = plan(&want(&["x"], true), Some(&p), "/process", &host_with(&["x"]));
        assert_eq!(f[0].patch, Patch(vec![PatchOp::add("/process/apparmorProfile", json!("x"))]));
    }

    #[test]
    fn unconfined_conflict_and_kept() {
        let h = host_with(&["x", "y"]);
        let f = plan(&want(&["x"], true), Some(&json!({"apparmorProfile": "unconfined"})), "/process", &h);
        assert_eq!(f[0].rule, RULE_UNCONFINED);
        let f = plan(&want(&["x"], true), Some(&json!({"apparmorProfile": "y"})), "/process", &h);
        assert_eq!(f[0].action, Action::Info);
        let f = plan(&want(&["x", "y"], false), Some(&json!({})), "/process", &h);
        assert_eq!(f[0].rule, RULE_CONFLICT);
        assert!(plan(&want(&[], true), Some(&json!({})), "/process", &h).is_empty());
    }
}
