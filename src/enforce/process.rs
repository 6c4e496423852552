//! Process-level controls: `noNewPrivileges`.

use serde_json::Value;

use super::Finding;
use crate::policy::Require;
use crate::spec::{Patch, PatchOp};

pub const RULE_NNP: &str = "process.no-new-privileges";

/// Sets `noNewPrivileges: true` on a process object at `base` when required.
pub fn no_new_privileges(required: Require, process: &Value, base: &str) -> (Vec<Finding>, Patch) {
    if !required.0 || process.get("noNewPrivileges") == Some(&Value::Bool(true)) {
        return (Vec::new(), Patch::default());
    }
    let path = format!("{base}/noNewPrivileges");
    let op = if process.get("noNewPrivileges").is_some() {
        PatchOp::replace(path, Value::Bool(true))
    } else {
        PatchOp::add(path, Value::Bool(true))
    };
    (vec![Finding::mutate(RULE_NNP, "set noNewPrivileges")], Patch(vec![op]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sets_only_when_needed() {
        let (f, p) = no_new_privileges(Require(true), &json!({}), "/process");
        assert_eq!(f.len(), 1);
        assert_eq!(p, Patch(vec![PatchOp::add("/process/noNewPrivileges", json!(true))]));
        let (_, p) = no_new_privileges(Require(true), &json!({"noNewPrivileges": false}), "/process");
        assert_eq!(p, Patch(vec![PatchOp::replace("/process/noNewPrivileges", json!(true))]));
        assert!(no_new_privileges(Require(true), &json!({"noNewPrivileges": true}), "/process").1.is_empty());
        assert!(no_new_privileges(Require(false), &json!({}), "/process").1.is_empty());
    }
}
