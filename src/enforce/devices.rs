//! Devices: with a `devices` setting, a container gets the standard device set only
//! (what runc itself provides), plus the paths the policy allows.

use serde_json::Value;

use super::Finding;
use crate::policy::DeviceSettings;

pub const RULE_NODE: &str = "devices.node";
pub const RULE_CGROUP: &str = "devices.cgroup-rule";

/// (path, type, major, minor) of the standard devices; minor `None`: any.
const STANDARD: &[(&str, &str, i64, Option<i64>)] = &[
    ("/dev/null", "c", 1, Some(3)),
    ("/dev/zero", "c", 1, Some(5)),
    ("/dev/full", "c", 1, Some(7)),
    ("/dev/random", "c", 1, Some(8)),
    ("/dev/urandom", "c", 1, Some(9)),
    ("/dev/tty", "c", 5, Some(0)),
    ("/dev/console", "c", 5, Some(1)),
    ("/dev/ptmx", "c", 5, Some(2)),
    ("/dev/pts/*", "c", 136, None),
    // runc allows tun by default; using it still needs CAP_NET_ADMIN.
    ("/dev/net/tun", "c", 10, Some(200)),
];

fn standard_rule(kind: &str, major: Option<i64>, minor: Option<i64>) -> bool {
    STANDARD.iter().any(|(_, t, ma, mi)| *t == kind && major == Some(*ma) && (mi.is_none() || minor == *mi))
}

pub fn plan(settings: &DeviceSettings, spec: &Value) -> Vec<Finding> {
    let Some(allowed) = &settings.allow.0 else { return Vec::new() };
    let mut out = Vec::new();
    let nodes = spec.pointer("/linux/devices").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut permitted: Vec<(String, Option<i64>, Option<i64>)> = Vec::new();
    for d in &nodes {
        let path = d.get("path").and_then(Value::as_str).unwrap_or("");
        let id = (
            d.get("type").and_then(Value::as_str).unwrap_or("").to_owned(),
            d.get("major").and_then(Value::as_i64),
            d.get("minor").and_then(Value::as_i64),
        );
        let is_standard =
            STANDARD.iter().any(|(p, t, ma, mi)| *p == path && id.0 == *t && id.1 == Some(*ma) && *mi == id.2);
        if is_standard || allowed.iter().any(|g| g.matches(path)) {
            permitted.push(id);
        } else {
            out.push(Finding::deny(
                RULE_NODE,
                format!("device node {path} is not in the standard set or the allow-list"),
            ));
        }
    }
    let rules = spec.pointer("/linux/resources/devices").and_then(Value::as_array).cloned().unwrap_or_default();
    for r in rules.iter().filter(|r| r.get("allow").and_then(Value::as_bool) == Some(true)) {
        let kind = r.get("type").and_then(Value::as_str).unwrap_or("a");
        let (major, minor) = (r.get("major").and_then(Value::as_i64), r.get("minor").and_then(Value::as_i64));
        let ok = kind != "a"
            && (standard_rule(kind, major, minor)
                || permitted.iter().any(|(t, ma, mi)| {
                    t == kind && *ma == major && major.is_some() && *mi == minor && minor.is_some()
                }));
        if !ok {
            let show = |v: Option<i64>| v.map_or("*".to_owned(), |n| n.to_string());
            out.push(Finding::deny(
                RULE_CGROUP,
                format!("device cgroup rule allows {kind} {}:{}", show(major), show(minor)),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AllowList, Glob};
    use serde_json::json;

    #[test]
    fn standard_allowed_extra_denied() {
        let s = DeviceSettings { allow: AllowList(Some([Glob::new("/dev/fuse").unwrap()].into())) };
        let spec = json!({"linux": {
            "devices": [
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0}
            ],
            "resources": {"devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
                {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "rwm"},
                {"allow": true, "access": "rwm"}
            ]}
        }});
        let f = plan(&s, &spec);
        let rules: Vec<&str> = f.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, [RULE_NODE, RULE_CGROUP, RULE_CGROUP]);
        assert!(plan(&DeviceSettings::default(), &spec).is_empty());
    }
}
