//! The privileged shape: what `privileged: true` produces in containerd (every
//! capability, /sys writable, the host's /dev), detected from the spec itself so no
//! API path around the pod's securityContext escapes it.

use serde_json::Value;

use super::Finding;
use crate::spec::view::cap_set;

pub const RULE: &str = "privileged";

/// Capabilities numbered 0..=37 exist on every kernel containers run on.
const ALL_CAPS_FLOOR: usize = 38;

pub fn check(spec: &Value) -> Option<Finding> {
    let mut signs = Vec::new();
    let bounding = spec.get("process").map(|p| cap_set(p, "bounding")).unwrap_or_default();
    if bounding.len() >= ALL_CAPS_FLOOR && bounding.contains(&"CAP_SYS_ADMIN") {
        signs.push("every capability");
    }
    let mounts = spec.get("mounts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let writable = |m: &Value| !m.get("options").and_then(Value::as_array).is_some_and(|o| o.iter().any(|x| x == "ro"));
    let field = |m: &Value, k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    if mounts.iter().any(|m| field(m, "type") == "sysfs" && writable(m)) {
        signs.push("/sys mounted read-write");
    }
    if mounts.iter().any(|m| {
        super::filesystem::lexical_clean(&field(m, "source")) == "/dev" && field(m, "type") != "tmpfs" && writable(m)
    }) {
        signs.push("the host's /dev bound read-write");
    }
    (!signs.is_empty()).then(|| Finding::deny(RULE, format!("privileged container: {}", signs.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes() {
        let normal = json!({"mounts": [{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "ro"]},
                                       {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"}]});
        assert!(check(&normal).is_none());
        let sys_rw =
            json!({"mounts": [{"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid"]}]});
        assert!(check(&sys_rw).is_some());
        let host_dev =
            json!({"mounts": [{"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind"]}]});
        assert!(check(&host_dev).unwrap().message.contains("/dev"));
        let all: Vec<String> =
            (0..41).map(|i| if i == 21 { "CAP_SYS_ADMIN".into() } else { format!("CAP_X{i}") }).collect();
        assert!(check(&json!({"process": {"capabilities": {"bounding": all}}})).is_some());
    }
}
