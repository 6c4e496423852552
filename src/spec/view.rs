//! Read-only typed views of the parts of a spec value hardrun decides on.

use std::collections::BTreeMap;

use serde_json::Value;

/// `annotations` as strings (non-string values are ignored, as runc does not use them).
pub fn annotations(spec: &Value) -> BTreeMap<String, String> {
    spec.get("annotations")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

/// The five capability sets of a process object, in OCI order.
pub const CAP_SETS: [&str; 5] = ["bounding", "effective", "inheritable", "permitted", "ambient"];

/// The names in one capability set of `process` (absent: empty).
pub fn cap_set<'a>(process: &'a Value, set: &str) -> Vec<&'a str> {
    process
        .pointer(&format!("/capabilities/{set}"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}
