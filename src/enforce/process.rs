//! Process controls: `noNewPrivileges`, `runAsNonRoot`, rlimit caps, umask floor.

use serde_json::{json, Value};

use super::Finding;
use crate::policy::{ProcessSettings, Require, RlimitCaps, Umask};
use crate::spec::{Patch, PatchOp};

pub const RULE_NNP: &str = "process.no-new-privileges";
pub const RULE_ROOT: &str = "process.run-as-root";
pub const RULE_RLIMIT: &str = "process.rlimit";
pub const RULE_UMASK: &str = "process.umask";

/// Sets `noNewPrivileges: true` on the process object at `base` when required.
pub fn no_new_privileges(required: Require, process: &Value, base: &str) -> Option<Finding> {
    if !required.0 || process.get("noNewPrivileges") == Some(&Value::Bool(true)) {
        return None;
    }
    let op = PatchOp::set_under(base, process, "/noNewPrivileges", Value::Bool(true));
    Some(Finding::mutate(RULE_NNP, "set noNewPrivileges", Patch(vec![op])))
}

/// The host uid that container uid `uid` runs as: through the user namespace's
/// mapping when the spec has one, else itself.
pub fn host_uid(spec: &Value, uid: u64) -> Option<u64> {
    let has_userns = spec
        .pointer("/linux/namespaces")
        .and_then(Value::as_array)
        .is_some_and(|ns| ns.iter().any(|n| n.get("type").and_then(Value::as_str) == Some("user")));
    if !has_userns {
        return Some(uid);
    }
    let maps = spec.pointer("/linux/uidMappings").and_then(Value::as_array)?;
    maps.iter().find_map(|m| {
        let (c, h, s) = (m.get("containerID")?.as_u64()?, m.get("hostID")?.as_u64()?, m.get("size")?.as_u64()?);
        (uid >= c && uid - c < s).then(|| h + (uid - c))
    })
}

/// Denies a process that is root on the host.
pub fn run_as_non_root(settings: &ProcessSettings, spec: &Value) -> Option<Finding> {
    let uid = spec.pointer("/process/user/uid").and_then(Value::as_u64).unwrap_or(0);
    run_as_non_root_uid(settings, spec, uid)
}

/// Denies container uid `uid` when it is root on the host under `spec`'s mappings,
/// or when the mappings do not say (fail closed).
pub fn run_as_non_root_uid(settings: &ProcessSettings, spec: &Value, uid: u64) -> Option<Finding> {
    if !settings.run_as_non_root.0 {
        return None;
    }
    match host_uid(spec, uid) {
        Some(0) => {
            Some(Finding::deny(RULE_ROOT, format!("runs as uid {uid}, root on the host; runAsNonRoot is required")))
        }
        None => Some(Finding::deny(
            RULE_ROOT,
            format!("runs as uid {uid} in a user namespace whose mapping for it is unknown; runAsNonRoot is required"),
        )),
        Some(_) => None,
    }
}

fn rlimit_value(name: &str, hard: u64, soft: u64) -> Value {
    json!({"type": name, "hard": hard, "soft": soft})
}

/// Lowers (or adds) each capped rlimit.
pub fn rlimits(caps: &RlimitCaps, process: &Value, base: &str) -> Vec<Finding> {
    let Some(existing) = process.get("rlimits").and_then(Value::as_array) else {
        if caps.0.is_empty() {
            return Vec::new();
        }
        let all: Vec<Value> = caps.0.iter().map(|(l, c)| rlimit_value(&l.name(), *c, *c)).collect();
        let names: Vec<String> = caps.0.iter().map(|(l, c)| format!("{}={c}", l.name())).collect();
        let op = PatchOp::add(format!("{base}/rlimits"), Value::Array(all));
        return vec![Finding::mutate(RULE_RLIMIT, format!("set {}", names.join(", ")), Patch(vec![op]))];
    };
    let mut out = Vec::new();
    for (limit, cap) in &caps.0 {
        let name = limit.name();
        let found = existing.iter().position(|r| r.get("type").and_then(Value::as_str) == Some(&name));
        let (op, message) = match found {
            Some(i) => {
                let hard = existing[i].get("hard").and_then(Value::as_u64).unwrap_or(u64::MAX);
                let soft = existing[i].get("soft").and_then(Value::as_u64).unwrap_or(u64::MAX);
                if hard <= *cap && soft <= *cap {
                    continue;
                }
                let value = rlimit_value(&name, hard.min(*cap), soft.min(*cap));
                (PatchOp::replace(format!("{base}/rlimits/{i}"), value), format!("lowered {name} to {cap}"))
            }
            None => (
                PatchOp::add(format!("{base}/rlimits/-"), rlimit_value(&name, *cap, *cap)),
                format!("set {name}={cap}"),
            ),
        };
        out.push(Finding::mutate(RULE_RLIMIT, message, Patch(vec![op])));
    }
    out
}

/// The umask runc gives a process whose spec sets none.
pub const RUNC_DEFAULT_UMASK: u32 = 0o022;

/// ORs the policy's umask bits into the process's umask. An absent umask is runc's
/// default, so a floor never unmasks a bit runc would have masked.
pub fn umask(floor: Umask, process: &Value, base: &str) -> Option<Finding> {
    let bits = floor.0?;
    let current = process.pointer("/user/umask").and_then(Value::as_u64).and_then(|u| u32::try_from(u).ok());
    let wanted = current.unwrap_or(RUNC_DEFAULT_UMASK) | bits;
    if current == Some(wanted) {
        return None;
    }
    let op = if process.get("user").is_some_and(Value::is_object) {
        PatchOp::set_under(base, process, "/user/umask", json!(wanted))
    } else {
        PatchOp::add(format!("{base}/user"), json!({"uid": 0, "gid": 0, "umask": wanted}))
    };
    Some(Finding::mutate(RULE_UMASK, format!("set umask to {wanted:04o}"), Patch(vec![op])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Rlimit;

    #[test]
    fn nnp_only_when_needed() {
        let f = no_new_privileges(Require(true), &json!({}), "/process").unwrap();
        assert_eq!(f.patch, Patch(vec![PatchOp::add("/process/noNewPrivileges", json!(true))]));
        let f = no_new_privileges(Require(true), &json!({"noNewPrivileges": false}), "/process").unwrap();
        assert_eq!(f.patch, Patch(vec![PatchOp::replace("/process/noNewPrivileges", json!(true))]));
        assert!(no_new_privileges(Require(true), &json!({"noNewPrivileges": true}), "/process").is_none());
        assert!(no_new_privileges(Require(false), &json!({}), "/process").is_none());
        let f = no_new_privileges(Require(true), &json!({}), "").unwrap();
        assert_eq!(f.patch.0[0].path, "/noNewPrivileges");
    }

    #[test]
    fn root_counts_through_user_namespaces() {
        let s = ProcessSettings { run_as_non_root: Require(true), ..Default::default() };
        assert!(run_as_non_root(&s, &json!({"process": {"user": {"uid": 0}}})).is_some());
        assert!(run_as_non_root(&s, &json!({"process": {}})).is_some(), "no user means root");
        assert!(run_as_non_root(&s, &json!({"process": {"user": {"uid": 1000}}})).is_none());
        let userns = json!({"process": {"user": {"uid": 0}}, "linux": {
            "namespaces": [{"type": "user"}],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}});
        assert!(run_as_non_root(&s, &userns).is_none());
        let identity = json!({"process": {"user": {"uid": 0}}, "linux": {
            "namespaces": [{"type": "user"}],
            "uidMappings": [{"containerID": 0, "hostID": 0, "size": 65536}]}});
        assert!(run_as_non_root(&s, &identity).is_some());
        let unmapped = json!({"process": {"user": {"uid": 0}}, "linux": {"namespaces": [{"type": "user", "path": "/proc/1/ns/user"}]}});
        assert!(run_as_non_root(&s, &unmapped).is_some(), "unknown mapping fails closed");
    }

    #[test]
    fn rlimits_lower_and_add() {
        let caps = RlimitCaps([(Rlimit::Nofile, 4096), (Rlimit::Nproc, 512)].into_iter().collect());
        let p = json!({"rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1024}]});
        let f = rlimits(&caps, &p, "/process");
        let mut doc = json!({"process": p});
        for x in &f {
            x.patch.apply(&mut doc).unwrap();
        }
        assert_eq!(
            doc["process"]["rlimits"],
            json!([{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 1024}, {"type": "RLIMIT_NPROC", "hard": 512, "soft": 512}])
        );
        let mut bare = json!({"process": {}});
        for x in &rlimits(&caps, &json!({}), "/process") {
            x.patch.apply(&mut bare).unwrap();
        }
        assert_eq!(bare["process"]["rlimits"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn umask_ors_bits() {
        let f = umask(Umask(Some(0o027)), &json!({"user": {"uid": 0, "umask": 0o002}}), "/process").unwrap();
        assert_eq!(f.patch.0[0].value, Some(json!(0o027)));
        assert!(umask(Umask(Some(0o022)), &json!({"user": {"umask": 0o077}}), "/process").is_none());
        assert!(umask(Umask(None), &json!({}), "/process").is_none());
        let f = umask(Umask(Some(0o007)), &json!({"user": {"uid": 0}}), "/process").unwrap();
        assert_eq!(f.patch.0[0].value, Some(json!(0o027)), "absent umask is runc's 0022");
    }
}
