//! Sysctls: with an allow-list, a container may set only the listed (namespaced,
//! safe) sysctls.

use serde_json::Value;

use super::Finding;
use crate::policy::SysctlSettings;

pub const RULE_UNSAFE: &str = "sysctls.unsafe";

pub fn plan(settings: &SysctlSettings, spec: &Value) -> Vec<Finding> {
    let (Some(allowed), Some(sysctls)) = (&settings.allow.0, spec.pointer("/linux/sysctl").and_then(Value::as_object))
    else {
        return Vec::new();
    };
    sysctls
        .keys()
        .filter(|k| !allowed.iter().any(|g| g.matches(k)))
        .map(|k| Finding::deny(RULE_UNSAFE, format!("sets sysctl {k}, which is not in the allow-list")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AllowList, Glob};
    use serde_json::json;

    #[test]
    fn only_allowed_sysctls() {
        let s = SysctlSettings { allow: AllowList(Some([Glob::new("net.ipv4.ping_group_range").unwrap()].into())) };
        let spec = json!({"linux": {"sysctl": {"net.ipv4.ping_group_range": "0 1", "kernel.panic": "1"}}});
        let f = plan(&s, &spec);
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("kernel.panic"));
    }
}
