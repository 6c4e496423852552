//! Adding and removing hardrun's runtime handlers in containerd's `config.toml`.
//!
//! The file is edited as a TOML document (toml_edit), so every line hardrun does not
//! own keeps its text, comments and order. Only the handler tables named by the
//! caller are added or removed; the default runtime and every other handler are
//! never touched.

use std::path::PathBuf;

use thiserror::Error;
use toml_edit::{Array, DocumentMut, Item, Table, Value};

/// The shim every handler uses: hardrun runs in runc's place under the runc v2 shim.
pub const RUNTIME_TYPE: &str = "io.containerd.runc.v2";
/// Pod annotations containerd passes into the bundle for hardrun's handlers.
pub const POD_ANNOTATIONS: &str = "hardrun.dev/*";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ContainerdError {
    #[error("not valid TOML: {0}")]
    Malformed(String),
    #[error(
        "config version {0} is not supported (hardrun needs version 2, containerd 1.6/1.7, or 3, containerd 2.x); \
         migrate it first: `containerd config migrate`"
    )]
    UnsupportedVersion(i64),
    #[error(
        "no `version` key: containerd reads this as a version 1 config, which hardrun does not edit; \
         add `version = 2` (containerd 1.6/1.7) after checking the file, or `containerd config migrate`"
    )]
    NoVersion,
    #[error("no CRI plugin section [plugins.{0:?}]: is the CRI plugin disabled? hardrun needs it for RuntimeClasses")]
    NoCriSection(&'static str),
    #[error("`{path}` is not a table")]
    NotATable { path: String },
    #[error(
        "runtime handler {name:?} already exists and runs {existing}, not {wanted}; \
         remove it or choose another --handler"
    )]
    HandlerConflict { name: String, existing: String, wanted: String },
    #[error("runtime handler {0:?} is containerd's default runtime; hardrun never changes or removes the default")]
    DefaultRuntime(String),
}

/// One handler to add: its name (RuntimeClass `handler:`) and the binary the shim runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    pub name: String,
    pub binary: PathBuf,
}

/// What an edit did to each handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Unchanged,
}

/// The CRI plugin's key for the config's version.
fn cri_plugin(doc: &DocumentMut) -> Result<&'static str, ContainerdError> {
    match doc.get("version").map(|v| v.as_integer()) {
        None => Err(ContainerdError::NoVersion),
        Some(Some(2)) => Ok("io.containerd.grpc.v1.cri"),
        Some(Some(3)) => Ok("io.containerd.cri.v1.runtime"),
        Some(Some(v)) => Err(ContainerdError::UnsupportedVersion(v)),
        Some(None) => Err(ContainerdError::Malformed("`version` must be an integer".into())),
    }
}

fn parse(text: &str) -> Result<DocumentMut, ContainerdError> {
    text.parse::<DocumentMut>().map_err(|e| ContainerdError::Malformed(e.to_string().trim_end().to_owned()))
}

/// `[plugins.<cri>.containerd]`, created below an existing CRI section when absent.
fn containerd_table<'a>(doc: &'a mut DocumentMut, cri: &'static str) -> Result<&'a mut Table, ContainerdError> {
    let plugin = doc
        .get_mut("plugins")
        .and_then(Item::as_table_mut)
        .and_then(|p| p.get_mut(cri))
        .ok_or(ContainerdError::NoCriSection(cri))?;
    let plugin =
        plugin.as_table_mut().ok_or_else(|| ContainerdError::NotATable { path: format!("plugins.{cri:?}") })?;
    sub_table(plugin, "containerd", || format!("plugins.{cri:?}.containerd"))
}

fn sub_table<'a>(
    parent: &'a mut Table,
    key: &str,
    path: impl Fn() -> String,
) -> Result<&'a mut Table, ContainerdError> {
    let item = parent.entry(key).or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    item.as_table_mut().ok_or_else(|| ContainerdError::NotATable { path: path() })
}

fn binary_name(handler: &Table) -> Option<&str> {
    handler.get("options").and_then(|o| o.get("BinaryName")).and_then(Item::as_str)
}

/// Adds each handler to the config text. Returns the new text and what happened to
/// each handler; the text is unchanged when every handler is already there.
pub fn configure(text: &str, handlers: &[Handler]) -> Result<(String, Vec<Change>), ContainerdError> {
    let mut doc = parse(text)?;
    let cri = cri_plugin(&doc)?;
    let containerd = containerd_table(&mut doc, cri)?;
    let default = default_runtime(containerd);
    let runtimes = sub_table(containerd, "runtimes", || format!("plugins.{cri:?}.containerd.runtimes"))?;
    let template = runtimes.get(&default).or_else(|| runtimes.get("runc")).and_then(Item::as_table).cloned();
    let mut changes = Vec::new();
    for h in handlers {
        if h.name == default {
            return Err(ContainerdError::DefaultRuntime(h.name.clone()));
        }
        let wanted = h.binary.display().to_string();
        if let Some(existing) = runtimes.get(&h.name) {
            let existing = existing.as_table().and_then(binary_name).unwrap_or("runc (no BinaryName)");
            if existing != wanted {
                return Err(ContainerdError::HandlerConflict {
                    name: h.name.clone(),
                    existing: existing.into(),
                    wanted,
                });
            }
            changes.push(Change::Unchanged);
            continue;
        }
        runtimes.insert(&h.name, Item::Table(handler_table(template.as_ref(), &wanted)));
        changes.push(Change::Added);
    }
    if changes.iter().all(|c| *c == Change::Unchanged) {
        return Ok((text.to_owned(), changes));
    }
    Ok((doc.to_string(), changes))
}

/// Removes each handler that runs hardrun's binary. A handler of that name that runs
/// something else is an error: it is not hardrun's to remove.
pub fn unconfigure(text: &str, handlers: &[Handler]) -> Result<(String, Vec<Change>), ContainerdError> {
    let mut doc = parse(text)?;
    let cri = cri_plugin(&doc)?;
    let containerd = containerd_table(&mut doc, cri)?;
    let default = default_runtime(containerd);
    let Some(runtimes) = containerd.get_mut("runtimes").and_then(Item::as_table_mut) else {
        return Ok((text.to_owned(), handlers.iter().map(|_| Change::Unchanged).collect()));
    };
    let mut changes = Vec::new();
    for h in handlers {
        let Some(existing) = runtimes.get(&h.name) else {
            changes.push(Change::Unchanged);
            continue;
        };
        let wanted = h.binary.display().to_string();
        let existing = existing.as_table().and_then(binary_name).unwrap_or("runc (no BinaryName)");
        if existing != wanted {
            return Err(ContainerdError::HandlerConflict { name: h.name.clone(), existing: existing.into(), wanted });
        }
        if h.name == default {
            return Err(ContainerdError::DefaultRuntime(h.name.clone()));
        }
        runtimes.remove(&h.name);
        changes.push(Change::Removed);
    }
    if changes.iter().all(|c| *c == Change::Unchanged) {
        return Ok((text.to_owned(), changes));
    }
    Ok((doc.to_string(), changes))
}

/// The `BinaryName` of every handler in the config (for `--uninstall`: the binary
/// stays while a handler still runs it).
pub fn binary_names(text: &str) -> Result<Vec<String>, ContainerdError> {
    let mut doc = parse(text)?;
    let cri = cri_plugin(&doc)?;
    let containerd = containerd_table(&mut doc, cri)?;
    let Some(runtimes) = containerd.get("runtimes").and_then(Item::as_table) else {
        return Ok(Vec::new());
    };
    Ok(runtimes.iter().filter_map(|(_, h)| h.as_table().and_then(binary_name)).map(str::to_owned).collect())
}

/// containerd's `default_runtime_name` (runc when unset).
fn default_runtime(containerd: &Table) -> String {
    containerd.get("default_runtime_name").and_then(Item::as_str).unwrap_or("runc").to_owned()
}

/// A handler that behaves like the runc one (its options and settings copied), but
/// whose shim runs `binary`.
fn handler_table(template: Option<&Table>, binary: &str) -> Table {
    let mut table = Table::new();
    if let Some(t) = template {
        copy_entries(t, &mut table);
    }
    table.insert("runtime_type", toml_edit::value(RUNTIME_TYPE));
    // runtime_path would make the shim bypass BinaryName: hardrun must be what runs.
    table.remove("runtime_path");
    table.insert("pod_annotations", Item::Value(merged_annotations(table.get("pod_annotations"))));
    let options = match table.entry("options").or_insert_with(|| Item::Table(Table::new())).as_table_mut() {
        Some(o) => o,
        None => {
            table.insert("options", Item::Table(Table::new()));
            table["options"].as_table_mut().expect("just inserted")
        }
    };
    options.insert("BinaryName", toml_edit::value(binary));
    layout_like(&mut table, template);
    table
}

/// Copies a table's entries into fresh tables, so the copy carries none of the
/// template's position or comments.
fn copy_entries(from: &Table, to: &mut Table) {
    for (key, item) in from.iter() {
        match item {
            Item::Table(t) => {
                let mut sub = Table::new();
                copy_entries(t, &mut sub);
                to.insert(key, Item::Table(sub));
            }
            Item::Value(v) => {
                let mut v = v.clone();
                v.decor_mut().clear();
                to.insert(key, Item::Value(v));
            }
            Item::ArrayOfTables(a) => {
                to.insert(key, Item::ArrayOfTables(a.clone()));
            }
            Item::None => {}
        }
    }
}

fn merged_annotations(existing: Option<&Item>) -> Value {
    let mut array = Array::new();
    for v in existing.and_then(Item::as_array).into_iter().flatten() {
        if let Some(s) = v.as_str() {
            array.push(s);
        }
    }
    if !array.iter().any(|v| v.as_str() == Some(POD_ANNOTATIONS)) {
        array.push(POD_ANNOTATIONS);
    }
    Value::Array(array)
}

/// Lays a new table out like its template (containerd's `config default` output
/// indents by depth): the header's indentation and the keys' indentation, at every
/// level. Without a template: keys indented by two spaces.
fn layout_like(table: &mut Table, template: Option<&Table>) {
    let header = template.and_then(|t| t.decor().prefix()).and_then(|p| p.as_str()).map(trailing_indent);
    table.decor_mut().set_prefix(format!("\n{}", header.unwrap_or_default()));
    let key_indent = template
        .and_then(|t| t.iter().find(|(_, i)| i.is_value()).map(|(k, _)| k.to_owned()))
        .and_then(|k| {
            template.and_then(|t| t.key(&k)).and_then(|k| k.leaf_decor().prefix()?.as_str().map(str::to_owned))
        })
        .map(|p| trailing_indent(&p).to_owned())
        .unwrap_or_else(|| format!("{}  ", header.unwrap_or_default()));
    let keys: Vec<String> = table.iter().map(|(k, _)| k.to_owned()).collect();
    for key in keys {
        if let Some(sub) = table.get_mut(&key).and_then(Item::as_table_mut) {
            let sub_template = template.and_then(|t| t.get(&key)).and_then(Item::as_table);
            match sub_template {
                Some(st) => layout_like(sub, Some(st)),
                None => {
                    sub.decor_mut().set_prefix(format!("\n{key_indent}"));
                    layout_like_default(sub, &format!("{key_indent}  "));
                }
            }
        } else if let Some(mut k) = table.key_mut(&key) {
            k.leaf_decor_mut().set_prefix(key_indent.clone());
        }
    }
}

fn layout_like_default(table: &mut Table, key_indent: &str) {
    let keys: Vec<String> = table.iter().map(|(k, _)| k.to_owned()).collect();
    for key in keys {
        if let Some(mut k) = table.key_mut(&key) {
            k.leaf_decor_mut().set_prefix(key_indent);
        }
    }
}

/// The spaces after the last line break of a decor prefix.
fn trailing_indent(prefix: &str) -> &str {
    let line = prefix.rsplit('\n').next().unwrap_or("");
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

#[cfg(test)]
mod tests;
