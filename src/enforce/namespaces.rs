//! Host namespaces: a spec shares the host's namespace by leaving the type out of
//! `linux.namespaces`, or by a path to a host process's namespace file.

use serde_json::Value;

use super::host::is_host_namespace;
use super::{Finding, Host};
use crate::policy::{NamespaceKind, NamespaceSettings};

pub fn rule_id(kind: NamespaceKind) -> String {
    format!("namespaces.host-{}", kind.oci_name())
}

pub fn plan(settings: &NamespaceSettings, spec: &Value, host: &Host) -> Vec<Finding> {
    let namespaces: Vec<&Value> =
        spec.pointer("/linux/namespaces").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
    let mut out = Vec::new();
    for &kind in &settings.deny_host.0 {
        // Without cgroup v2, containerd itself never creates cgroup namespaces.
        if kind == NamespaceKind::Cgroup && !host.cgroup2 {
            continue;
        }
        let entry = namespaces.iter().find(|n| n.get("type").and_then(Value::as_str) == Some(kind.oci_name()));
        let shared = match entry.and_then(|n| n.get("path")).and_then(Value::as_str) {
            None if entry.is_some() => None,
            None => Some(format!("shares the host's {} namespace", kind.oci_name())),
            Some(path) if joins_host(kind, path) => {
                Some(format!("joins the host's {} namespace through {path}", kind.oci_name()))
            }
            Some(_) => None,
        };
        if let Some(message) = shared {
            out.push(Finding::deny(&rule_id(kind), message));
        }
    }
    out
}

/// Whether a namespace path is the host's: the same namespace as host init's. A
/// path that cannot be read is treated as the host's (fail closed): runc would fail
/// on it anyway.
fn joins_host(kind: NamespaceKind, path: &str) -> bool {
    is_host_namespace(kind.proc_name(), path).unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DenyList;
    use serde_json::json;

    #[test]
    fn absent_or_host_path_is_denied() {
        let s = NamespaceSettings {
            deny_host: DenyList(
                [NamespaceKind::Pid, NamespaceKind::Network, NamespaceKind::Ipc, NamespaceKind::Cgroup].into(),
            ),
        };
        let spec = json!({"linux": {"namespaces": [
            {"type": "pid"},
            {"type": "network", "path": "/proc/1/ns/net"}
        ]}});
        let f = plan(&s, &spec, &Host::default());
        let rules: Vec<&str> = f.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, ["namespaces.host-ipc", "namespaces.host-network"], "cgroup skipped on cgroup v1");
        let f = plan(&s, &spec, &Host { cgroup2: true, ..Default::default() });
        assert!(f.iter().any(|f| f.rule == "namespaces.host-cgroup"));
        let own = json!({"linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}]}});
        assert!(plan(&s, &own, &Host::default()).is_empty());
    }

    #[test]
    fn our_own_namespace_is_the_host_s_even_where_init_s_is_unreadable() {
        assert!(joins_host(NamespaceKind::Network, "/proc/self/ns/net"));
        assert!(joins_host(NamespaceKind::Network, "/proc/nonexistent/ns/net"), "unreadable: fail closed");
    }
}
