//! OCI hook definitions in the `oci-hooks(5)` 1.0.0 format, from directories the node
//! config trusts, injected into a container's spec when a policy names them.
//!
//! A definition is trusted only if its file and directory are root-owned and not
//! writable by group or others, and the hook binary it runs is too: hooks run as
//! root on the host, so whoever can edit one owns the node.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use crate::fsutil::{self, ReadError};

/// A hook definition is a few hundred bytes.
pub const MAX_HOOK_FILE_BYTES: u64 = 64 * 1024;
/// Definitions read from all hook directories together.
pub const MAX_HOOK_FILES: usize = 256;

/// The lifecycle stages of the runtime spec (prestart is deprecated but still run).
pub const STAGES: &[&str] =
    &["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"];

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HookError {
    #[error("hook definition {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("hook definition {path} is not trusted: {why}")]
    Untrusted { path: PathBuf, why: String },
    #[error("hook directory {path}: {message}")]
    Dir { path: PathBuf, message: String },
}

/// The hook entry of the runtime spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookEntry {
    pub path: PathBuf,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
}

/// `when`: every condition that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct When {
    pub always: Option<bool>,
    /// Key regex → value regex; every pair must match some annotation.
    pub annotations: Option<BTreeMap<String, String>>,
    /// Regexes; `process.args[0]` must match one.
    pub commands: Option<Vec<String>>,
    pub has_bind_mounts: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    version: String,
    hook: HookEntry,
    when: When,
    stages: Vec<String>,
}

/// A checked definition.
#[derive(Debug, Clone)]
pub struct HookDefinition {
    pub name: String,
    pub source: PathBuf,
    pub hook: HookEntry,
    pub stages: Vec<String>,
    when: CompiledWhen,
}

#[derive(Debug, Clone)]
struct CompiledWhen {
    always: Option<bool>,
    annotations: Vec<(regex::Regex, regex::Regex)>,
    commands: Option<Vec<regex::Regex>>,
    has_bind_mounts: Option<bool>,
}

/// Every definition found in the trusted directories, by name (file stem). A file
/// that fails to load is kept as its error, so only containers whose policy names it
/// fail.
#[derive(Debug, Clone, Default)]
pub struct HookCatalog {
    pub hooks: BTreeMap<String, Result<HookDefinition, HookError>>,
}

/// Whether `meta` is root-owned and not writable by group or others.
fn trust_problem(meta: &std::fs::Metadata) -> Option<String> {
    if meta.uid() != 0 {
        return Some(format!("owned by uid {}, not root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!("writable by group or others (mode {:04o})", meta.mode() & 0o7777));
    }
    None
}

fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|e| format!("bad regular expression {pattern:?}: {e}"))
}

impl HookDefinition {
    /// Parses and checks one definition file's bytes (`name`: its file stem).
    pub fn parse(name: &str, source: &Path, bytes: &[u8], default_timeout: u32) -> Result<Self, HookError> {
        let invalid = |message: String| HookError::Invalid { path: source.to_owned(), message };
        let raw: RawDefinition = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if raw.version != "1.0.0" {
            return Err(invalid(format!("version {:?} is not supported (1.0.0 is)", raw.version)));
        }
        if !raw.hook.path.is_absolute() {
            return Err(invalid(format!("hook path {} is not absolute", raw.hook.path.display())));
        }
        if raw.hook.timeout == Some(0) {
            return Err(invalid("timeout must be greater than zero".into()));
        }
        if raw.stages.is_empty() {
            return Err(invalid("no stages".into()));
        }
        if let Some(bad) = raw.stages.iter().find(|s| !STAGES.contains(&s.as_str())) {
            return Err(invalid(format!("unknown stage {bad:?} (one of {})", STAGES.join(", "))));
        }
        let w = &raw.when;
        if w.always.is_none() && w.annotations.is_none() && w.commands.is_none() && w.has_bind_mounts.is_none() {
            return Err(invalid("`when` sets no condition".into()));
        }
        let annotations = w
            .annotations
            .iter()
            .flatten()
            .map(|(k, v)| Ok((compile_regex(k)?, compile_regex(v)?)))
            .collect::<Result<Vec<_>, String>>()
            .map_err(invalid)?;
        let commands = w
            .commands
            .as_ref()
            .map(|c| c.iter().map(|p| compile_regex(p)).collect::<Result<Vec<_>, String>>())
            .transpose()
            .map_err(invalid)?;
        let mut hook = raw.hook;
        hook.timeout = Some(hook.timeout.unwrap_or(default_timeout));
        Ok(HookDefinition {
            name: name.to_owned(),
            source: source.to_owned(),
            hook,
            stages: raw.stages,
            when: CompiledWhen { always: w.always, annotations, commands, has_bind_mounts: w.has_bind_mounts },
        })
    }

    /// Whether every condition of `when` holds for `spec`.
    pub fn applies_to(&self, spec: &Value) -> bool {
        let w = &self.when;
        let annotations = crate::spec::view::annotations(spec);
        let arg0 = spec.pointer("/process/args/0").and_then(Value::as_str).unwrap_or("");
        let has_binds = spec
            .get("mounts")
            .and_then(Value::as_array)
            .is_some_and(|m| m.iter().any(crate::enforce::filesystem::is_bind));
        w.always.is_none_or(|a| a)
            && w.annotations.iter().all(|(k, v)| annotations.iter().any(|(ak, av)| k.is_match(ak) && v.is_match(av)))
            && w.commands.as_ref().is_none_or(|c| c.iter().any(|r| r.is_match(arg0)))
            && w.has_bind_mounts.is_none_or(|want| want == has_binds)
    }

    /// The hook binary must be as trustworthy as the definition.
    fn check_binary(&self) -> Result<(), HookError> {
        let untrusted = |why: String| HookError::Untrusted { path: self.source.clone(), why };
        let meta = std::fs::metadata(&self.hook.path)
            .map_err(|e| untrusted(format!("hook binary {}: {e}", self.hook.path.display())))?;
        match trust_problem(&meta) {
            Some(why) => Err(untrusted(format!("hook binary {} is {why}", self.hook.path.display()))),
            None => Ok(()),
        }
    }
}

impl HookCatalog {
    /// Loads every `*.json` of `dirs`; a name in an earlier directory masks later ones.
    /// A missing directory is empty; an untrusted one is an error for all its hooks.
    pub fn load(dirs: &[PathBuf], default_timeout: u32) -> HookCatalog {
        let mut catalog = HookCatalog::default();
        for dir in dirs {
            let entries = match list_dir(dir) {
                Ok(e) => e,
                Err(None) => continue,
                Err(Some(e)) => {
                    catalog.hooks.entry(format!("<{}>", dir.display())).or_insert(Err(e));
                    continue;
                }
            };
            for (name, path) in entries {
                if catalog.hooks.len() >= MAX_HOOK_FILES {
                    break;
                }
                catalog.hooks.entry(name.clone()).or_insert_with(|| load_file(&name, &path, default_timeout));
            }
        }
        catalog
    }

    /// The definition named `name`, or why it cannot be used.
    pub fn get(&self, name: &str) -> Result<&HookDefinition, HookError> {
        match self.hooks.get(name) {
            Some(Ok(d)) => Ok(d),
            Some(Err(e)) => Err(e.clone()),
            None => Err(HookError::Invalid {
                path: PathBuf::from(format!("{name}.json")),
                message: "no such hook definition in the node's hook directories".into(),
            }),
        }
    }
}

/// `(name, path)` of each definition in `dir`; `Err(None)`: no such directory.
fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, Option<HookError>> {
    let fail = |message: String| Some(HookError::Dir { path: dir.to_owned(), message });
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    if let Some(why) = trust_problem(&meta) {
        return Err(fail(format!("not trusted: {why}")));
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| fail(e.to_string()))? {
        let entry = entry.map_err(|e| fail(e.to_string()))?;
        let file = entry.file_name();
        let Some(name) = file.to_str().and_then(|n| n.strip_suffix(".json")) else { continue };
        if !name.starts_with('.') {
            out.push((name.to_owned(), entry.path()));
        }
    }
    // oci-hooks(5): injection order is the lower-cased file name's.
    out.sort_by_key(|(n, _)| n.to_lowercase());
    Ok(out)
}

fn load_file(name: &str, path: &Path, default_timeout: u32) -> Result<HookDefinition, HookError> {
    let untrusted = |why: String| HookError::Untrusted { path: path.to_owned(), why };
    let file = fsutil::open_regular(path, true).map_err(|e| untrusted(e.to_string()))?;
    let meta = file.metadata().map_err(|e| untrusted(e.to_string()))?;
    if let Some(why) = trust_problem(&meta) {
        return Err(untrusted(why));
    }
    let bytes = match fsutil::read_capped_from(file, MAX_HOOK_FILE_BYTES) {
        Ok(b) => b,
        Err(ReadError::TooLarge) => return Err(untrusted(format!("larger than {MAX_HOOK_FILE_BYTES} bytes"))),
        Err(ReadError::Io(e)) => return Err(untrusted(e.to_string())),
    };
    let def = HookDefinition::parse(name, path, &bytes, default_timeout)?;
    def.check_binary()?;
    Ok(def)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(when: Value) -> HookDefinition {
        let bytes = serde_json::to_vec(&json!({
            "version": "1.0.0", "hook": {"path": "/bin/true"}, "when": when, "stages": ["poststop"]
        }))
        .unwrap();
        HookDefinition::parse("x", Path::new("/h/x.json"), &bytes, 7).unwrap()
    }

    #[test]
    fn when_conditions_all_must_hold() {
        let spec = json!({
            "process": {"args": ["/usr/bin/nginx", "-g"]},
            "annotations": {"com.example/team": "payments"},
            "mounts": [{"destination": "/d", "type": "bind", "source": "/srv"}]
        });
        assert!(def(json!({"always": true})).applies_to(&spec));
        assert!(!def(json!({"always": false})).applies_to(&spec));
        assert!(def(json!({"commands": [".*/nginx$"]})).applies_to(&spec));
        assert!(!def(json!({"commands": ["^sh$"]})).applies_to(&spec));
        assert!(def(json!({"annotations": {"^com\\.example/team$": "^pay"}})).applies_to(&spec));
        assert!(!def(json!({"annotations": {"^com\\.example/team$": "^ops"}})).applies_to(&spec));
        assert!(def(json!({"hasBindMounts": true})).applies_to(&spec));
        assert!(!def(json!({"hasBindMounts": true, "commands": ["^sh$"]})).applies_to(&spec));
        assert_eq!(def(json!({"always": true})).hook.timeout, Some(7), "node default timeout");
    }

    #[test]
    fn the_catalog_loads_at_most_max_hook_files_definitions() {
        let d = tempfile::tempdir().unwrap();
        let def = json!({"version": "1.0.0", "hook": {"path": "/bin/true"}, "when": {"always": true}, "stages": ["poststop"]});
        for i in 0..=MAX_HOOK_FILES {
            std::fs::write(d.path().join(format!("h{i:04}.json")), serde_json::to_vec(&def).unwrap()).unwrap();
        }
        let catalog = HookCatalog::load(&[d.path().to_owned()], 5);
        assert_eq!(catalog.hooks.len(), MAX_HOOK_FILES);
        assert!(catalog.get(&format!("h{:04}", MAX_HOOK_FILES - 1)).is_ok(), "the last one within the limit loads");
        assert!(catalog.get(&format!("h{MAX_HOOK_FILES:04}")).is_err(), "one past the limit is not loaded");
    }

    #[test]
    fn bad_definitions() {
        let parse = |v: Value| HookDefinition::parse("x", Path::new("/h/x.json"), &serde_json::to_vec(&v).unwrap(), 5);
        let base = json!({"version": "1.0.0", "hook": {"path": "/bin/true"}, "when": {"always": true}, "stages": ["poststop"]});
        assert!(parse(base.clone()).is_ok());
        for (field, value, want) in [
            ("version", json!("0.1.0"), "not supported"),
            ("hook", json!({"path": "true"}), "not absolute"),
            ("hook", json!({"path": "/bin/true", "timeout": 0}), "greater than zero"),
            ("stages", json!(["prestop"]), "unknown stage"),
            ("stages", json!([]), "no stages"),
            ("when", json!({}), "no condition"),
            ("when", json!({"commands": ["("]}), "bad regular expression"),
        ] {
            let mut v = base.clone();
            v[field] = value;
            let e = parse(v).unwrap_err().to_string();
            assert!(e.contains(want), "{field}: {e}");
        }
        assert!(HookDefinition::parse("x", Path::new("/h/x.json"), b"{", 5).is_err());
    }
}
