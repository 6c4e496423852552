//! `hardrun explain --pod-namespace … --image …`: which policies and exemptions match
//! a hypothetical container, the merged settings, and which policy each setting comes
//! from. No bundle: nothing but the selector-visible facts is needed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use crate::config::NodeConfig;
use crate::context::{containerd_namespace, ContainerContext, ContainerType};
use crate::policy::{PolicySet, Settings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TypeArg {
    Container,
    Sandbox,
}

/// The facts of a hypothetical container. Any of them switches `explain` from the
/// bundle to the hypothetical container.
#[derive(Debug, Clone, Default, Args)]
pub struct SelectorArgs {
    /// Hypothetical container: its pod's Kubernetes namespace (no bundle needed)
    #[arg(long)]
    pub pod_namespace: Option<String>,
    /// Hypothetical container: its pod's name
    #[arg(long)]
    pub pod_name: Option<String>,
    /// Hypothetical container: its name in the pod
    #[arg(long)]
    pub container: Option<String>,
    /// Hypothetical container: its image, as the pod names it
    #[arg(long)]
    pub image: Option<String>,
    /// Hypothetical container: a pod's sandbox or a container (default: container)
    #[arg(long, value_enum)]
    pub container_type: Option<TypeArg>,
}

impl SelectorArgs {
    pub fn is_set(&self) -> bool {
        self.pod_namespace.is_some()
            || self.pod_name.is_some()
            || self.container.is_some()
            || self.image.is_some()
            || self.container_type.is_some()
    }

    fn context(&self, runtime_class: Option<&str>, root: Option<&Path>) -> ContainerContext {
        ContainerContext {
            container_type: Some(match self.container_type {
                Some(TypeArg::Sandbox) => ContainerType::Sandbox,
                _ => ContainerType::Container,
            }),
            namespace: self.pod_namespace.clone(),
            pod_name: self.pod_name.clone(),
            container_name: self.container.clone(),
            image: self.image.clone(),
            runtime_class: runtime_class.map(str::to_owned),
            containerd_namespace: root.and_then(containerd_namespace),
            ..Default::default()
        }
    }
}

/// Where one merged setting comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    /// The setting, dotted (`capabilities.allow`, `process.rlimits.RLIMIT_NOFILE`).
    pub setting: String,
    pub value: Value,
    /// The policies that set it.
    pub from: Vec<String>,
    /// No single policy's value is the result: it is their intersection or union.
    pub merged: bool,
}

/// Every leaf of a settings object (objects are walked, anything else is a leaf).
fn leaves(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                leaves(x, &p, out);
            }
        }
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

fn at<'a>(v: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(v, |cur, k| cur.get(k))
}

/// For each setting of `merged`, the sources (name, settings) whose value it is: the
/// sources whose own value equals the result, or, when none does, every source that
/// set it ("merged from").
pub fn attribute(merged: &Settings, sources: &[(String, Settings)]) -> Vec<Attribution> {
    let merged_v = serde_json::to_value(merged).unwrap_or(Value::Null);
    let default_v = serde_json::to_value(Settings::default()).unwrap_or(Value::Null);
    let source_v: Vec<(&str, Value)> =
        sources.iter().map(|(n, s)| (n.as_str(), serde_json::to_value(s).unwrap_or(Value::Null))).collect();
    let mut all = Vec::new();
    leaves(&merged_v, "", &mut all);
    // Leaves only some sources have (an rlimit one policy caps).
    for (_, v) in &source_v {
        let mut extra = Vec::new();
        leaves(v, "", &mut extra);
        for (p, _) in extra {
            if !all.iter().any(|(q, _)| *q == p) {
                all.push((p.clone(), at(&merged_v, &p).cloned().unwrap_or(Value::Null)));
            }
        }
    }
    let mut out = Vec::new();
    for (path, value) in all {
        let default = at(&default_v, &path);
        // `mode` has a policy default (enforce) unlike the merge identity (audit):
        // every policy sets it.
        let set_by: Vec<(&str, Option<&Value>)> = source_v
            .iter()
            .map(|(n, v)| (*n, at(v, &path)))
            .filter(|(_, v)| path == "mode" || (v.is_some() && *v != default))
            .collect();
        let winners: Vec<String> =
            set_by.iter().filter(|(_, v)| *v == Some(&value)).map(|(n, _)| (*n).to_owned()).collect();
        let (from, merged) = if winners.is_empty() {
            (set_by.iter().map(|(n, _)| (*n).to_owned()).collect(), !set_by.is_empty())
        } else {
            (winners, false)
        };
        out.push(Attribution { setting: path, value, from, merged });
    }
    out.sort_by(|a, b| a.setting.cmp(&b.setting));
    out
}

pub fn run(
    config: &NodeConfig,
    sel: &SelectorArgs,
    runtime_class: Option<&str>,
    root: Option<&Path>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let set = PolicySet::load(&config.policy_dir)?;
    let ctx = sel.context(runtime_class, root);
    let selection = set.select(&ctx);
    let mut sources: Vec<(String, Settings)> =
        selection.matched.iter().map(|p| (p.name.clone(), p.spec.settings())).collect();
    if ctx.container_type == Some(ContainerType::Sandbox) {
        sources.push(("<sandbox floor>".to_owned(), Settings::sandbox_floor()));
    }
    let attribution = attribute(&selection.settings, &sources);
    let out = if as_json {
        let mut by_setting = BTreeMap::new();
        for a in &attribution {
            by_setting.insert(a.setting.clone(), json!({ "value": a.value, "from": a.from, "merged": a.merged }));
        }
        let refs = |items: Vec<(&str, &Path, &str)>| -> Vec<Value> {
            items.into_iter().map(|(n, s, h)| json!({ "name": n, "source": s, "hash": h })).collect()
        };
        let out = json!({
            "context": ctx,
            "policies": refs(selection.matched.iter().map(|p| (p.name.as_str(), p.source.as_path(), p.hash.as_str())).collect()),
            "exemptions": refs(selection.exemptions.iter().map(|e| (e.name.as_str(), e.source.as_path(), e.hash.as_str())).collect()),
            "settings": selection.settings,
            "attribution": by_setting,
        });
        serde_json::to_string_pretty(&out)?
    } else {
        text(&ctx, &selection, &attribution)
    };
    super::print_stdout(&format!("{out}\n"))?;
    Ok(ExitCode::SUCCESS)
}

fn text(ctx: &ContainerContext, selection: &crate::policy::Selection<'_>, attribution: &[Attribution]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "container: {}", serde_json::to_string(ctx).unwrap_or_default());
    if selection.matched.is_empty() {
        let _ = writeln!(s, "policies:  none matched");
    }
    for p in &selection.matched {
        let _ = writeln!(s, "policy:    {} ({}, {})", p.name, p.source.display(), p.hash);
    }
    for e in &selection.exemptions {
        let rules: Vec<&str> = e.spec.rules.iter().map(|g| g.as_str()).collect();
        let _ =
            writeln!(s, "exemption: {} ({}) lifts {}: {}", e.name, e.source.display(), rules.join(", "), e.spec.reason);
    }
    let width = attribution.iter().map(|a| a.setting.len()).max().unwrap_or(0);
    let mut unset = Vec::new();
    let _ = writeln!(s, "settings:");
    for a in attribution {
        if a.from.is_empty() {
            unset.push(a.setting.as_str());
            continue;
        }
        let how = if a.merged { "merged from" } else { "from" };
        let _ = writeln!(s, "  {:<width$}  {}  ({how} {})", a.setting, compact(&a.value), a.from.join(", "));
    }
    if !unset.is_empty() {
        let _ = writeln!(s, "not set:   {}", unset.join(", "));
    }
    s.pop();
    s
}

/// A value on one line, long lists shortened.
fn compact(v: &Value) -> String {
    match v {
        Value::Array(items) if items.len() > 6 => {
            let head: Vec<String> = items.iter().take(5).map(Value::to_string).collect();
            format!("[{}, … {} in all]", head.join(", "), items.len())
        }
        Value::Array(items) => format!("[{}]", items.iter().map(Value::to_string).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AllowList, CapName, Mode, Require};

    fn caps(names: &[&str]) -> AllowList<CapName> {
        AllowList::only(names.iter().map(|n| CapName::new(n).unwrap()))
    }

    #[test]
    fn winners_and_merges() {
        let mut a = Settings { mode: Mode::Enforce, no_new_privileges: Require(true), ..Default::default() };
        a.capabilities.allow = caps(&["CHOWN", "KILL"]);
        let mut b = Settings { mode: Mode::Audit, ..Default::default() };
        b.capabilities.allow = caps(&["KILL", "SETUID"]);
        let sources = vec![("a".to_owned(), a.clone()), ("b".to_owned(), b.clone())];
        let merged = Settings::merge_all([a, b]);
        let attr = attribute(&merged, &sources);
        let get = |s: &str| attr.iter().find(|x| x.setting == s).unwrap().clone();
        assert_eq!(get("mode").from, vec!["a"]);
        assert_eq!(get("noNewPrivileges").from, vec!["a"]);
        let allow = get("capabilities.allow");
        assert!(allow.merged, "{allow:?}");
        assert_eq!(allow.from, vec!["a", "b"]);
        assert_eq!(allow.value, json!(["CAP_KILL"]));
        assert!(get("denyPrivileged").from.is_empty());
    }
}
