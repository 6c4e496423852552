//! Syntax and schema: each document is read as the loader reads it, into the loader's
//! own types, so lint and the node agree on what is valid. Where serde stops at the
//! first error, lint removes the offending node and reads the document again, so one
//! run reports every schema error of a document (up to [`MAX_ERRORS_PER_DOC`]).

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml::Value;

use super::spans::{join, DocSpans, SpanMap};
use super::suggest::closest;
use super::*;
use crate::policy::model::{ExemptionDoc, PolicyDoc, API_VERSION, KIND_EXEMPTION, KIND_POLICY};

/// Past this, the rest of a document's errors are usually consequences of the first.
pub const MAX_ERRORS_PER_DOC: usize = 25;

/// Every capability Linux has (what oci-spec accepts), for suggestions.
pub const CAPABILITIES: &[&str] = &[
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_AUDIT_WRITE",
    "CAP_BLOCK_SUSPEND",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_PERFMON",
    "CAP_SETGID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_NICE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
];

/// Checks every document of one file; findings go to `out`.
pub fn check_file(path: &Path, text: &str, spans: &SpanMap, out: &mut Vec<Diagnostic>) {
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = match Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                out.push(syntax_error(path, &e));
                // The stream cannot be read past a syntax error.
                return;
            }
        };
        if value.is_null() {
            continue;
        }
        let empty = DocSpans::default();
        let doc = spans.doc(i).unwrap_or(&empty);
        let Some(kind) = check_header(path, i, &value, doc, out) else { continue };
        let mut reader = DocReader { file: path, index: i, spans: doc, out: &mut *out };
        if kind == KIND_POLICY {
            reader.read::<PolicyDoc>(value);
        } else if kind == crate::record::model::KIND_RECORDING {
            reader.read::<crate::record::model::RecordingDoc>(value);
        } else {
            reader.read::<ExemptionDoc>(value);
        }
    }
}

fn syntax_error(path: &Path, e: &serde_yaml::Error) -> Diagnostic {
    let (line, column, message) = crate::yaml::split_error(e);
    let loc = match (line, column) {
        (Some(l), Some(c)) => Location::at(path, l, c),
        _ => Location::file(path),
    };
    Diagnostic::new(YAML_SYNTAX, message, loc)
}

/// apiVersion, kind and metadata.name, in the loader's order; the kind when all hold.
fn check_header(
    path: &Path,
    i: usize,
    value: &Value,
    doc: &DocSpans,
    out: &mut Vec<Diagnostic>,
) -> Option<&'static str> {
    let at = |p: &str, at_value: bool| Location::in_doc(path, i, p, None, at_value);
    if !value.is_mapping() {
        out.push(Diagnostic::new(UNKNOWN_DOCUMENT, "a policy document must be a mapping", at("", true)));
        return None;
    }
    let field = |k: &str| value.get(k).and_then(Value::as_str);
    let mut ok = true;
    match field("apiVersion") {
        Some(API_VERSION) => {}
        Some(v) => {
            out.push(
                Diagnostic::new(
                    UNKNOWN_DOCUMENT,
                    format!("unknown apiVersion {v:?} (expected {API_VERSION:?})"),
                    at("/apiVersion", true),
                )
                .help(format!("use `apiVersion: {API_VERSION}`")),
            );
            ok = false;
        }
        None => {
            let (msg, p) = if value.get("apiVersion").is_some() {
                ("apiVersion must be a string".to_owned(), "/apiVersion")
            } else {
                ("missing field `apiVersion`".to_owned(), "")
            };
            out.push(Diagnostic::new(MISSING_FIELD, msg, at(p, true)).help(format!("add `apiVersion: {API_VERSION}`")));
            ok = false;
        }
    }
    let kind = match field("kind") {
        Some(KIND_POLICY) => Some(KIND_POLICY),
        Some(KIND_EXEMPTION) => Some(KIND_EXEMPTION),
        Some(crate::record::model::KIND_RECORDING) => Some(crate::record::model::KIND_RECORDING),
        Some(k) => {
            let mut d = Diagnostic::new(
                UNKNOWN_DOCUMENT,
                format!(
                    "unknown kind {k:?} (expected {KIND_POLICY:?}, {KIND_EXEMPTION:?} or {:?})",
                    crate::record::model::KIND_RECORDING
                ),
                at("/kind", true),
            );
            if let Some(s) = closest(k, [KIND_POLICY, KIND_EXEMPTION, crate::record::model::KIND_RECORDING]) {
                d = d.help(format!("did you mean `{s}`?"));
            }
            out.push(d);
            None
        }
        None => {
            out.push(
                Diagnostic::new(MISSING_FIELD, "missing field `kind`", at("", true))
                    .help(format!("add `kind: {KIND_POLICY}` or `kind: {KIND_EXEMPTION}`")),
            );
            None
        }
    };
    let name = value.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str);
    if name.is_none_or(|n| n.trim().is_empty()) && value.get("metadata").is_none_or(Value::is_mapping) {
        let p = if doc.node("/metadata/name").is_some() {
            "/metadata/name"
        } else if doc.node("/metadata").is_some() {
            "/metadata"
        } else {
            ""
        };
        out.push(
            Diagnostic::new(MISSING_FIELD, "missing metadata.name", at(p, true))
                .help("every document needs a unique `metadata.name`"),
        );
        ok = false;
    }
    kind.filter(|_| ok)
}

/// A path segment as serde saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Reads one document into `T`, reporting each schema error and removing its node
/// before reading again.
struct DocReader<'a> {
    file: &'a Path,
    index: usize,
    spans: &'a DocSpans,
    out: &'a mut Vec<Diagnostic>,
}

/// What an error message says, for its code, place and suggestion.
enum Said {
    UnknownField { field: String, expected: Vec<String> },
    Missing(String),
    UnknownVariant { variant: String, expected: Vec<String> },
    Capability(String),
    Pattern(String),
    Syscall(String),
    Other(Option<String>),
}

fn backticked(msg: &str) -> Vec<String> {
    msg.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// The first `"…"` of a message (values are quoted with Rust's Debug format).
fn quoted(msg: &str) -> Option<String> {
    let start = msg.find('"')? + 1;
    let mut s = String::new();
    let mut chars = msg[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(s),
            '\\' => s.push(chars.next()?),
            c => s.push(c),
        }
    }
    None
}

fn classify(msg: &str) -> Said {
    let ticks = backticked(msg);
    if msg.starts_with("unknown field") && !ticks.is_empty() {
        return Said::UnknownField { field: ticks[0].clone(), expected: ticks[1..].to_vec() };
    }
    if msg.starts_with("missing field") && !ticks.is_empty() {
        return Said::Missing(ticks[0].clone());
    }
    if msg.starts_with("unknown variant") && !ticks.is_empty() {
        return Said::UnknownVariant { variant: ticks[0].clone(), expected: ticks[1..].to_vec() };
    }
    let q = quoted(msg);
    match q {
        Some(v) if msg.starts_with("unknown capability") => Said::Capability(v),
        Some(v) if msg.starts_with("glob ") => Said::Pattern(v),
        Some(v) if msg.starts_with("bad regular expression") => Said::Pattern(v),
        Some(v) if msg.starts_with("unknown system call") => Said::Syscall(v),
        q => Said::Other(q),
    }
}

/// `a/b/c` for messages: the dotted path of a pointer.
fn dotted(pointer: &str) -> String {
    let s: Vec<String> = pointer.split('/').skip(1).map(|x| x.replace("~1", "/").replace("~0", "~")).collect();
    if s.is_empty() {
        "the document".to_owned()
    } else {
        format!("`{}`", s.join("."))
    }
}

fn all_syscall_names() -> impl Iterator<Item = &'static str> {
    use crate::policy::seccomp::kernel_name;
    use syscalls::*;
    x86_64::Sysno::iter()
        .map(|n| kernel_name(n.name()))
        .chain(x86::Sysno::iter().map(|n| kernel_name(n.name())))
        .chain(aarch64::Sysno::iter().map(|n| kernel_name(n.name())))
        .chain(arm::Sysno::iter().map(|n| kernel_name(n.name())))
        .chain(riscv64::Sysno::iter().map(|n| kernel_name(n.name())))
}

impl DocReader<'_> {
    fn read<T: DeserializeOwned>(&mut self, mut value: Value) -> Option<T> {
        let mut removed: HashMap<String, Vec<usize>> = HashMap::new();
        let mut dropped: Vec<String> = Vec::new();
        let mut reported = 0;
        while reported < MAX_ERRORS_PER_DOC {
            let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(t) => return (reported == 0).then_some(t),
                Err(e) => e,
            };
            let segs: Vec<Seg> = err
                .path()
                .iter()
                .map_while(|s| match s {
                    serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                    serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                    _ => None,
                })
                .collect();
            let message = err.into_inner().to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
            let orig = to_original(&segs, &removed);
            let Some(target) = self.report(&orig, &message, &dropped) else { break };
            reported += 1;
            // Remove the node the error is about, so the next read gets further.
            if target.is_empty() || !remove(&mut value, &target, &mut removed) {
                break;
            }
            dropped.push(target);
        }
        None
    }

    /// Reports one error; the original-coordinates path of the node to remove, or
    /// `None` when reading cannot usefully go on.
    fn report(&mut self, path: &str, message: &str, dropped: &[String]) -> Option<String> {
        let loc = |p: &str, at_value: bool| Location::in_doc(self.file, self.index, p, None, at_value);
        match classify(message) {
            Said::UnknownField { field, expected } => {
                let target = if path.rsplit('/').next() == Some(&spans::escape(&field)) && !path.is_empty() {
                    path.to_owned()
                } else {
                    join(path, &field)
                };
                let parent = target.rfind('/').map_or("", |i| &target[..i]);
                let mut d = Diagnostic::new(
                    UNKNOWN_FIELD,
                    format!("unknown field `{field}` in {}", dotted(parent)),
                    loc(&target, false),
                );
                let list = expected.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ");
                d = match closest(&field, expected.iter().map(String::as_str)) {
                    Some(s) => d.help(format!("did you mean `{s}`? (expected one of {list})")),
                    None if expected.is_empty() => d.help("this mapping has no fields"),
                    None => d.help(format!("expected one of {list}")),
                };
                self.out.push(d);
                Some(target)
            }
            Said::Missing(field) => {
                // A field removed for an earlier error: not a new mistake.
                if dropped.iter().any(|p| *p == join(path, &field)) {
                    return None;
                }
                self.out.push(Diagnostic::new(
                    MISSING_FIELD,
                    format!("missing field `{field}` in {}", dotted(path)),
                    loc(path, false),
                ));
                None
            }
            Said::UnknownVariant { variant, expected } => {
                let (target, at_value) = self.find(path, &variant);
                let list = expected.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ");
                let mut d = Diagnostic::new(
                    INVALID_VALUE,
                    format!("unknown value `{variant}` for {}", dotted(path)),
                    loc(&target, at_value),
                );
                d = match closest(&variant, expected.iter().map(String::as_str)) {
                    Some(s) => d.help(format!("did you mean `{s}`? (expected {list})")),
                    None => d.help(format!("expected {list}")),
                };
                self.out.push(d);
                Some(target)
            }
            Said::Capability(v) => {
                let (target, at_value) = self.find(path, &v);
                let upper = v.trim().to_ascii_uppercase();
                let canonical = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
                let mut d =
                    Diagnostic::new(UNKNOWN_CAPABILITY, format!("unknown capability {v:?}"), loc(&target, at_value));
                if let Some(s) = closest(&canonical, CAPABILITIES.iter().copied()) {
                    d = d.help(format!("did you mean `{s}`?"));
                }
                self.out.push(d);
                Some(target)
            }
            Said::Pattern(v) => {
                let (target, at_value) = self.find(path, &v);
                let d = Diagnostic::new(MALFORMED_PATTERN, message.to_owned(), loc(&target, at_value))
                    .help("globs: `*` and `?` stop at `/`, `**` does not, `\\` escapes the next character");
                self.out.push(d);
                Some(target)
            }
            Said::Syscall(v) => {
                let (target, at_value) = self.find(path, &v);
                let mut d = Diagnostic::new(
                    UNKNOWN_SYSCALL,
                    format!("unknown system call {v:?}: no Linux architecture has it"),
                    loc(&target, at_value),
                );
                if let Some(s) = closest(&v, all_syscall_names()) {
                    d = d.help(format!("did you mean `{s}`?"));
                }
                self.out.push(d);
                Some(target)
            }
            Said::Other(q) => {
                let (target, at_value) = match q {
                    Some(v) => self.find(path, &v),
                    None => (path.to_owned(), true),
                };
                let what = if path.is_empty() { String::new() } else { format!("{}: ", dotted(path)) };
                self.out.push(Diagnostic::new(INVALID_VALUE, format!("{what}{message}"), loc(&target, at_value)));
                Some(target)
            }
        }
    }

    /// The node under `path` a message's value names: a scalar (point at it) or a key
    /// (point at the key); `path` itself when neither is found.
    fn find(&self, path: &str, value: &str) -> (String, bool) {
        if let Some((p, _)) = self.spans.find_scalar(path, &|s| s == value || s.trim() == value.trim()) {
            return (p.to_owned(), true);
        }
        let key = join(path, value);
        if self.spans.node(&key).is_some() {
            return (key, false);
        }
        (path.to_owned(), true)
    }
}

/// Error paths count sequence items in the (shrinking) value being read; spans count
/// them in the file. The n-th remaining item of a sequence is the n-th one not removed.
fn to_original(segs: &[Seg], removed: &HashMap<String, Vec<usize>>) -> String {
    let mut p = String::new();
    for s in segs {
        match s {
            Seg::Key(k) => p = join(&p, k),
            Seg::Index(j) => {
                let gone = removed.get(&p).map(Vec::as_slice).unwrap_or(&[]);
                let idx = (0..).filter(|i| !gone.contains(i)).nth(*j).unwrap_or(*j);
                p = join(&p, &idx.to_string());
            }
        }
    }
    p
}

fn unescape(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

/// Removes the node at `orig` (original coordinates) from `value`; records removed
/// sequence items.
fn remove(value: &mut Value, orig: &str, removed: &mut HashMap<String, Vec<usize>>) -> bool {
    let segs: Vec<&str> = orig.split('/').skip(1).collect();
    let Some((last, parents)) = segs.split_last() else { return false };
    let mut cur = value;
    let mut orig_path = String::new();
    for s in parents {
        let next = match cur {
            Value::Mapping(m) => m.iter_mut().find(|(k, _)| key_is(k, &unescape(s))).map(|(_, v)| v),
            Value::Sequence(seq) => {
                let Ok(i) = s.parse::<usize>() else { return false };
                let gone = removed.get(&orig_path).map(Vec::as_slice).unwrap_or(&[]);
                seq.get_mut(i - gone.iter().filter(|g| **g < i).count())
            }
            _ => None,
        };
        let Some(next) = next else { return false };
        cur = next;
        orig_path.push('/');
        orig_path.push_str(s);
    }
    match cur {
        Value::Mapping(m) => {
            let name = unescape(last);
            let key = m.keys().find(|k| key_is(k, &name)).cloned();
            key.is_some_and(|k| m.remove(&k).is_some())
        }
        Value::Sequence(seq) => {
            let Ok(i) = last.parse::<usize>() else { return false };
            let gone = removed.entry(orig_path).or_default();
            let at = i - gone.iter().filter(|g| **g < i).count();
            if at >= seq.len() {
                return false;
            }
            seq.remove(at);
            gone.push(i);
            true
        }
        _ => false,
    }
}

fn key_is(k: &Value, name: &str) -> bool {
    match k {
        Value::String(s) => s == name,
        Value::Number(n) => n.to_string() == name,
        Value::Bool(b) => b.to_string() == name,
        _ => false,
    }
}
