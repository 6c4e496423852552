//! Filesystem controls: read-only rootfs, masked and read-only paths (added to the
//! spec's own), and the host paths a container may bind-mount.

use std::path::{Component, Path, PathBuf};

use serde_json::{json, Value};

use super::Finding;
use crate::policy::{FilesystemSettings, Glob, HostMountSettings};
use crate::spec::{Patch, PatchOp};

pub const RULE_RO_ROOTFS: &str = "fs.read-only-rootfs";
pub const RULE_MASKED: &str = "fs.masked-paths";
pub const RULE_READONLY: &str = "fs.readonly-paths";
pub const RULE_HOST_SENSITIVE: &str = "mounts.host-sensitive";
pub const RULE_HOST_WRITABLE: &str = "mounts.host-writable";
pub const RULE_NOT_ALLOWED: &str = "mounts.not-allowed";
pub const RULE_FORCED_RO: &str = "mounts.forced-ro";

pub fn plan(settings: &FilesystemSettings, spec: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(read_only_rootfs(settings, spec));
    out.extend(add_paths(spec, "maskedPaths", &settings.masked_paths.0, RULE_MASKED));
    out.extend(add_paths(spec, "readonlyPaths", &settings.readonly_paths.0, RULE_READONLY));
    out.extend(host_mounts(&settings.host_mounts, spec));
    out
}

fn read_only_rootfs(settings: &FilesystemSettings, spec: &Value) -> Option<Finding> {
    if !settings.read_only_rootfs.0 || spec.pointer("/root/readonly") == Some(&Value::Bool(true)) {
        return None;
    }
    spec.get("root").filter(|r| r.is_object())?;
    let op = PatchOp::set(spec, "/root/readonly", Value::Bool(true));
    Some(Finding::mutate(RULE_RO_ROOTFS, "made the root filesystem read-only", Patch(vec![op])))
}

/// Adds the paths the spec's `linux.<key>` list lacks.
fn add_paths<'a>(spec: &Value, key: &str, wanted: impl IntoIterator<Item = &'a String>, rule: &str) -> Option<Finding> {
    let existing: Vec<&str> = spec
        .pointer(&format!("/linux/{key}"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let missing: Vec<&String> = wanted.into_iter().filter(|p| !existing.contains(&p.as_str())).collect();
    if missing.is_empty() {
        return None;
    }
    let path = format!("/linux/{key}");
    let patch = if spec.pointer(&path).is_some_and(Value::is_array) {
        Patch(missing.iter().map(|p| PatchOp::add(format!("{path}/-"), json!(p))).collect())
    } else {
        Patch(vec![PatchOp::set(spec, path, json!(missing))])
    };
    let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
    Some(Finding::mutate(rule, format!("added {}", list.join(", ")), patch))
}

/// Removes `.` and `..` and duplicate slashes without touching the filesystem.
pub fn lexical_clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str().unwrap_or("")),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

/// Whether a mount is a bind mount (runc: type `bind`, or a `bind`/`rbind` option).
pub fn is_bind(mount: &Value) -> bool {
    mount.get("type").and_then(Value::as_str) == Some("bind") || options(mount).any(|o| o == "bind" || o == "rbind")
}

fn options(mount: &Value) -> impl Iterator<Item = &str> {
    mount.get("options").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
}

/// The names a host path is matched under: as written (cleaned), and where it
/// really leads (a symlink to /etc is /etc).
fn host_path_names(source: &str) -> Vec<String> {
    let clean = lexical_clean(source);
    let mut names = vec![clean.clone()];
    if let Ok(real) = std::fs::canonicalize(&clean).map(PathBuf::into_os_string) {
        if let Some(real) = real.to_str().filter(|r| *r != clean) {
            names.push(real.to_owned());
        }
    }
    names
}

fn first_match<'a>(globs: impl IntoIterator<Item = &'a Glob>, names: &[String]) -> Option<&'a Glob> {
    globs.into_iter().find(|g| names.iter().any(|n| g.matches(n)))
}

fn host_mounts(settings: &HostMountSettings, spec: &Value) -> Vec<Finding> {
    let Some(mounts) = spec.get("mounts").and_then(Value::as_array) else { return Vec::new() };
    let mut out = Vec::new();
    for (i, m) in mounts.iter().enumerate().filter(|(_, m)| is_bind(m)) {
        let source = m.get("source").and_then(Value::as_str).unwrap_or("");
        let names = host_path_names(source);
        let writable = !options(m).any(|o| o == "ro");
        if let Some(g) = first_match(&settings.deny.0, &names) {
            out.push(Finding::deny(RULE_HOST_SENSITIVE, format!("bind mount of host path {source} (matches {g})")));
            continue;
        }
        if let Some(allow) = &settings.allow.0 {
            if first_match(allow, &names).is_none() {
                out.push(Finding::deny(
                    RULE_NOT_ALLOWED,
                    format!("bind mount of host path {source} is not in the allow-list"),
                ));
                continue;
            }
        }
        if !writable {
            continue;
        }
        if first_match(&settings.force_read_only.0, &names).is_some() {
            let opts: Vec<Value> = options(m).filter(|o| *o != "rw").chain(["ro"]).map(|o| json!(o)).collect();
            let op = PatchOp::set_under(&format!("/mounts/{i}"), m, "/options", Value::Array(opts));
            out.push(Finding::mutate(
                RULE_FORCED_RO,
                format!("made the bind mount of {source} read-only"),
                Patch(vec![op]),
            ));
        } else if let Some(g) = first_match(&settings.deny_writable.0, &names) {
            out.push(Finding::deny(
                RULE_HOST_WRITABLE,
                format!("read-write bind mount of host path {source} (matches {g})"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::Action;
    use crate::policy::{AllowList, DenyList, Require};

    fn globs(g: &[&str]) -> std::collections::BTreeSet<Glob> {
        g.iter().map(|s| Glob::new(s).unwrap()).collect()
    }

    fn bind(src: &str, opts: &[&str]) -> Value {
        json!({"destination": "/x", "type": "bind", "source": src, "options": opts})
    }

    #[test]
    fn clean_paths() {
        assert_eq!(lexical_clean("/var//run/../run/docker.sock"), "/var/run/docker.sock");
        assert_eq!(lexical_clean("/etc/"), "/etc");
        assert_eq!(lexical_clean("/../.."), "/");
    }

    #[test]
    fn host_mount_rules() {
        let s = HostMountSettings {
            deny: DenyList(globs(&["/var/run/docker.sock", "/"])),
            deny_writable: DenyList(globs(&["/etc/**"])),
            force_read_only: DenyList(globs(&["/srv/**"])),
            allow: AllowList::default(),
        };
        let spec = json!({"mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            bind("/var/run/../run/docker.sock", &["rbind"]),
            bind("/etc/ssl", &["rbind", "ro"]),
            bind("/etc/ssl", &["rbind", "rw"]),
            bind("/srv/data", &["rbind", "rw"]),
            bind("/data", &["rbind"]),
        ]});
        let f = host_mounts(&s, &spec);
        let rules: Vec<&str> = f.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, [RULE_HOST_SENSITIVE, RULE_HOST_WRITABLE, RULE_FORCED_RO]);
        assert_eq!(f[2].patch.0[0].path, "/mounts/4/options");
        assert_eq!(f[2].patch.0[0].value, Some(json!(["rbind", "ro"])));
        let only_data = HostMountSettings { allow: AllowList(Some(globs(&["/data"]))), ..Default::default() };
        let f = host_mounts(&only_data, &spec);
        assert_eq!(f.iter().filter(|f| f.rule == RULE_NOT_ALLOWED).count(), 4);
    }

    #[test]
    fn paths_and_rootfs() {
        let s = FilesystemSettings {
            read_only_rootfs: Require(true),
            masked_paths: DenyList(["/proc/kcore".to_owned(), "/proc/keys".to_owned()].into()),
            ..Default::default()
        };
        let spec = json!({"root": {"path": "rootfs"}, "linux": {"maskedPaths": ["/proc/kcore"]}});
        let f = plan(&s, &spec);
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|f| f.action == Action::Mutate));
        let mut doc = spec.clone();
        for x in &f {
            x.patch.apply(&mut doc).unwrap();
        }
        assert_eq!(doc["root"]["readonly"], json!(true));
        assert_eq!(doc["linux"]["maskedPaths"], json!(["/proc/kcore", "/proc/keys"]));
        let mut bare = json!({"linux": {}});
        add_paths(&bare.clone(), "readonlyPaths", &["/proc/sys".to_owned()], RULE_READONLY)
            .unwrap()
            .patch
            .apply(&mut bare)
            .unwrap();
        assert_eq!(bare["linux"]["readonlyPaths"], json!(["/proc/sys"]));
    }
}
