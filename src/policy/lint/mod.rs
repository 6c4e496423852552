//! `hardrun lint`: every policy mistake the node would reject, and the ones it would
//! accept but an operator should know about, each with a stable rule code and the
//! place in the YAML.
//!
//! Schema checks deserialize each document into the loader's own types
//! ([`PolicyDoc`](super::PolicyDoc), [`ExemptionDoc`](super::model::ExemptionDoc)), and a
//! file lint passes is then loaded with the loader itself ([`super::load::parse_documents`]);
//! any disagreement is reported as an error, so lint never passes what a node rejects.
//! Semantic checks ([`check_set`]) run on the loaded [`PolicySet`], which is also what
//! the create path calls.

mod checks;
mod overlap;
mod perms;
mod recording;
pub mod render;
pub mod schema;
mod schema_check;
mod signature;
pub mod spans;
mod suggest;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::load::{self, LoadError, PolicySet};
use spans::SpanMap;

pub use checks::KNOWN_RULE_IDS;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The node rejects the set (or, for HR011, denies the containers it describes).
    Error,
    /// Accepted, but probably not what was meant, or dangerous.
    Warning,
    /// Worth knowing (exemptions).
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One rule: its stable code, a short name and its usual severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub code: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
}

macro_rules! rules {
    ($($konst:ident = $code:literal, $name:literal, $sev:ident, $summary:literal;)+) => {
        $(pub const $konst: &str = $code;)+
        /// Every rule, in code order. Codes are stable: a retired rule's code is never reused.
        pub const RULES: &[Rule] = &[$(Rule { code: $code, name: $name, severity: Severity::$sev, summary: $summary }),+];
    };
}

rules! {
    YAML_SYNTAX = "HR001", "yaml-syntax", Error, "The file is not valid YAML (or not UTF-8).";
    UNKNOWN_FIELD = "HR002", "unknown-field", Error, "A field the policy format does not have (a typo, usually).";
    INVALID_VALUE = "HR003", "invalid-value", Error, "A value of the wrong type, or one the field does not accept.";
    MISSING_FIELD = "HR004", "missing-field", Error, "A required field is missing.";
    UNKNOWN_DOCUMENT = "HR005", "unknown-document", Error, "An unknown apiVersion or kind, or a document that is not a mapping.";
    UNKNOWN_CAPABILITY = "HR006", "unknown-capability", Error, "A capability name Linux does not have.";
    MALFORMED_PATTERN = "HR007", "malformed-pattern", Error, "A glob or regular expression that does not compile.";
    UNKNOWN_SYSCALL = "HR008", "unknown-syscall", Error, "A system call no architecture has (error), or none of the node's architectures has (warning).";
    REFERENCED_FILE = "HR009", "referenced-file", Error, "A file the policy names (seccomp profile, key, trust root) is missing, unreadable or unparsable.";
    DUPLICATE_NAME = "HR010", "duplicate-name", Error, "Two documents with the same metadata.name.";
    UNSTARTABLE_MERGE = "HR011", "unstartable-merge", Error, "Policies that can match the same container and together deny every such container.";
    EXEMPTION = "HR012", "exemption", Info, "An exemption: what it lifts, for which containers, and why.";
    EXEMPTION_RULE_UNKNOWN = "HR013", "exemption-rule-unknown", Warning, "An exemption rule pattern that matches no rule ID hardrun reports.";
    DANGEROUS_CAPABILITY = "HR014", "dangerous-capability", Warning, "An allow-list that grants a capability on the standard forbidden list.";
    HOST_NAMESPACES = "HR015", "host-namespaces-allowed", Warning, "namespaces.denyHost that leaves some host namespaces allowed.";
    WRITABLE_HOST_MOUNT = "HR016", "writable-host-mount", Warning, "hostMounts.allow admits a sensitive host path that no deny rule of the policy covers.";
    BROAD_AUDIT_MODE = "HR017", "broad-audit-mode", Warning, "mode: audit on a policy that selects every container.";
    SIGNATURE_WITHOUT_AUTHORITY = "HR018", "signature-without-authority", Error, "An imageSignature requirement no image can pass: no authorities, or fewer than its count.";
    MATCHES_NOTHING = "HR019", "matches-nothing", Warning, "A policy or exemption whose match can select no container this node runs.";
    INSECURE_PERMISSIONS = "HR020", "insecure-permissions", Error, "A policy file or directory that someone other than root can change (error for the node's policy dir, warning elsewhere).";
    UNREADABLE_INPUT = "HR021", "unreadable-input", Error, "A path that cannot be read, a file over the size limit, or more files or documents than a node loads.";
    HOOK_DEFINITION = "HR022", "hook-definition", Error, "A hook definition a policy names is missing, untrusted (hook binary or file writable by others, not root-owned) or malformed; or a definition in the hook directories is.";
    RECORDING_IN_ENFORCE = "HR023", "recording-in-enforce", Warning, "A Recording (seccomp profile recording) that can select containers an enforce-mode policy selects.";
    USERNS_WITHOUT_SANDBOX = "HR030", "userns-without-sandbox", Warning, "userNamespace.mode: pod on a policy that selects a pod's app containers but not its sandbox: they have no pod user namespace to join and are denied.";
}

pub fn rule(code: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.code == code)
}

/// Where a finding is. `path` is the YAML node (a JSON Pointer into its document);
/// line and column are 1-based, filled when the file's text is at hand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// How to find the node once the file's spans are known.
    #[serde(skip)]
    pub(crate) anchor: Option<Anchor>,
}

/// A node to be placed: in the document with this index or name, at `path`, or at the
/// scalar under `path` that reads `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Anchor {
    pub doc: DocRef,
    pub path: String,
    pub value: Option<String>,
    /// Point at the value rather than at its key.
    pub at_value: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DocRef {
    Index(usize),
    Name(String),
    /// The n-th document (from 0) of the file with this name: duplicates.
    NameNth(String, usize),
}

impl Location {
    pub fn file(file: &Path) -> Self {
        Location { file: file.to_owned(), ..Default::default() }
    }

    pub fn at(file: &Path, line: usize, column: usize) -> Self {
        Location { file: file.to_owned(), line: Some(line), column: Some(column), ..Default::default() }
    }

    /// The node at `path` of the document named `name` in `file`.
    pub(crate) fn node(file: &Path, name: &str, path: &str) -> Self {
        let anchor = Anchor { doc: DocRef::Name(name.to_owned()), path: path.to_owned(), value: None, at_value: false };
        Location { file: file.to_owned(), path: Some(path.to_owned()), anchor: Some(anchor), ..Default::default() }
    }

    /// The scalar reading `value` (or an equivalent spelling) at or under `path`.
    pub(crate) fn scalar(file: &Path, name: &str, path: &str, value: &str) -> Self {
        let mut l = Self::node(file, name, path);
        if let Some(a) = &mut l.anchor {
            a.value = Some(value.to_owned());
        }
        l
    }

    pub(crate) fn in_doc(file: &Path, doc: usize, path: &str, value: Option<String>, at_value: bool) -> Self {
        let anchor = Anchor { doc: DocRef::Index(doc), path: path.to_owned(), value, at_value };
        Location {
            file: file.to_owned(),
            document: Some(doc + 1),
            path: Some(path.to_owned()),
            anchor: Some(anchor),
            ..Default::default()
        }
    }

    /// `file:line:column`, or as much of it as is known.
    pub fn display(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.file.display()),
            (Some(l), None) => format!("{}:{l}", self.file.display()),
            _ => self.file.display().to_string(),
        }
    }
}

/// Another place a finding involves (the first of two duplicates, the other policy of
/// a conflict).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Related {
    pub location: Location,
    pub message: String,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub location: Location,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
    /// A suggestion ("did you mean `allow`?") or how to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(code: &'static str, message: impl Into<String>, location: Location) -> Self {
        let severity = rule(code).map_or(Severity::Error, |r| r.severity);
        Diagnostic { code, severity, message: message.into(), location, related: Vec::new(), help: None }
    }

    pub fn severity(mut self, s: Severity) -> Self {
        self.severity = s;
        self
    }

    pub fn help(mut self, h: impl Into<String>) -> Self {
        self.help = Some(h.into());
        self
    }

    pub fn related(mut self, location: Location, message: impl Into<String>) -> Self {
        self.related.push(Related { location, message: message.into() });
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// What the linter knows about where the policies are used.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The files are the node's own policy directory: permission problems are errors
    /// and runtime classes are checked against the `hardrun-<class>` links next to the
    /// binary.
    pub node: bool,
    /// Check `match.runtimeClasses` against the `hardrun-<class>` links in
    /// `runtime_class_dir` (default: the running binary's directory).
    pub runtime_classes: bool,
    pub runtime_class_dir: Option<PathBuf>,
    /// Check the hooks policies name against the definitions in these directories
    /// (the node's `hookDirs`), with this default timeout; `None`: not checked.
    pub hooks: Option<(Vec<PathBuf>, u32)>,
}

/// Everything one run found, with the text of every file read (for rendering).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub files: Vec<PathBuf>,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: HashMap<PathBuf, String>,
}

impl Report {
    pub fn count(&self, s: Severity) -> usize {
        self.diagnostics.iter().filter(|d| d.severity == s).count()
    }

    pub fn has_errors(&self) -> bool {
        self.count(Severity::Error) > 0
    }
}

/// An input of `hardrun lint`: a file or a directory of policy files.
pub fn collect_files(paths: &[PathBuf], diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => match load::policy_files(p) {
                Ok(f) => files.extend(f),
                Err(e) => diags.push(Diagnostic::new(UNREADABLE_INPUT, e.to_string(), Location::file(p))),
            },
            Ok(_) => files.push(p.clone()),
            Err(e) => diags.push(Diagnostic::new(UNREADABLE_INPUT, format!("cannot read: {e}"), Location::file(p))),
        }
    }
    files
}

/// Lints files as one policy set (what a node would load from a directory holding
/// them all).
pub fn lint_files(files: &[PathBuf], opts: &Options) -> Report {
    let mut report = Report { files: files.to_vec(), ..Default::default() };
    let mut texts = Vec::new();
    for path in files {
        if let Some(text) = read_file(path, &mut report.diagnostics) {
            texts.push((path.clone(), text));
        }
    }
    lint_texts(&texts, opts, &mut report);
    report.diagnostics.extend(perms::check_files(files, opts.node));
    finish(&mut report);
    report
}

/// Lints texts already in memory (`(path, text)`), as one set. For tests and the
/// embedded baseline.
pub fn lint_sources(sources: &[(PathBuf, String)], opts: &Options) -> Report {
    let mut report = Report { files: sources.iter().map(|(p, _)| p.clone()).collect(), ..Default::default() };
    lint_texts(sources, opts, &mut report);
    finish(&mut report);
    report
}

fn lint_texts(sources: &[(PathBuf, String)], opts: &Options, report: &mut Report) {
    let mut set = PolicySet {
        origin: load::Origin::Embedded,
        policies: Vec::new(),
        exemptions: Vec::new(),
        recordings: Vec::new(),
    };
    let mut spans = HashMap::new();
    for (path, text) in sources {
        let map = SpanMap::parse(text);
        let before = report.diagnostics.len();
        schema_check::check_file(path, text, &map, &mut report.diagnostics);
        let clean = !report.diagnostics[before..].iter().any(Diagnostic::is_error);
        if clean {
            match load::parse_documents(path, text) {
                Ok(docs) => {
                    set.policies.extend(docs.policies);
                    set.exemptions.extend(docs.exemptions);
                    set.recordings.extend(docs.recordings);
                }
                Err(e) => report.diagnostics.push(loader_disagrees(path, &e)),
            }
        }
        spans.insert(path.clone(), map);
        report.sources.insert(path.clone(), text.clone());
    }
    if set.policies.len() + set.exemptions.len() > load::MAX_POLICIES {
        let first = sources.first().map(|(p, _)| p.as_path()).unwrap_or(Path::new("."));
        report.diagnostics.push(Diagnostic::new(
            UNREADABLE_INPUT,
            format!(
                "{} policies and exemptions: a node loads at most {}",
                set.policies.len() + set.exemptions.len(),
                load::MAX_POLICIES
            ),
            Location::file(first),
        ));
    }
    report.diagnostics.extend(checks::check(&set, opts));
    if let Some((dirs, timeout)) = &opts.hooks {
        report.diagnostics.extend(check_hooks(&set, &crate::hooks::HookCatalog::load(dirs, *timeout)));
    }
    for d in &mut report.diagnostics {
        place(d, &spans);
    }
}

/// Every hook a policy names must load (the create path denies its containers
/// otherwise), and every definition in the hook directories should.
pub fn check_hooks(set: &PolicySet, catalog: &crate::hooks::HookCatalog) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for p in &set.policies {
        for name in &p.spec.hooks.0 {
            if let Err(e) = catalog.get(name) {
                let at = Location::scalar(&p.source, &p.name, "/spec/hooks", name);
                out.push(Diagnostic::new(HOOK_DEFINITION, format!("`{}` names hook {name}: {e}", p.name), at));
            }
        }
    }
    for (name, entry) in &catalog.hooks {
        if let Err(e) = entry {
            let file = match e {
                crate::hooks::HookError::Invalid { path, .. }
                | crate::hooks::HookError::Untrusted { path, .. }
                | crate::hooks::HookError::Dir { path, .. } => path.clone(),
            };
            let named = set.policies.iter().any(|p| p.spec.hooks.0.contains(name));
            let d = Diagnostic::new(HOOK_DEFINITION, e.to_string(), Location::file(&file));
            // Unused broken definitions deny nothing yet: a warning.
            out.push(if named { d } else { d.severity(Severity::Warning) });
        }
    }
    out
}

/// The set-level and per-policy checks on a loaded set, plus the permission checks of
/// its files, as the node runs them before enforcing a set: the create path refuses the
/// set when any finding is an error. `files` are the files the set was loaded from.
///
/// Findings carry their file and YAML path; line and column are filled in (by reading
/// the files again) only when some finding is an error, so a clean set costs no reads.
pub fn check_set(set: &PolicySet, files: &[PathBuf]) -> Vec<Diagnostic> {
    // Runtime classes are a warning that costs a directory read: not on every create.
    let opts = Options { node: true, runtime_classes: false, runtime_class_dir: None, hooks: None };
    let mut diags = checks::check(set, &opts);
    diags.extend(perms::check_files(files, true));
    if diags.iter().any(Diagnostic::is_error) {
        let mut spans = HashMap::new();
        for d in &diags {
            let f = &d.location.file;
            if !spans.contains_key(f) {
                let text = crate::fsutil::read_capped(f, load::MAX_POLICY_FILE_BYTES).ok();
                let text = text.and_then(|b| String::from_utf8(b).ok()).unwrap_or_default();
                spans.insert(f.clone(), SpanMap::parse(&text));
            }
        }
        for d in &mut diags {
            place(d, &spans);
        }
    }
    diags.sort_by(order);
    diags
}

/// One line for a runc log: the errors of `check_set`, each with its code and place.
pub fn errors_summary(diags: &[Diagnostic]) -> Option<String> {
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{}: {} [{}]", d.location.display(), d.message, d.code))
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

fn read_file(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<String> {
    match crate::fsutil::read_capped(path, load::MAX_POLICY_FILE_BYTES) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => Some(t),
            Err(e) => {
                let text = String::from_utf8_lossy(e.as_bytes());
                let upto = &text[..e.utf8_error().valid_up_to().min(text.len())];
                let line = upto.matches('\n').count() + 1;
                let column = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                diags.push(Diagnostic::new(YAML_SYNTAX, "not UTF-8", Location::at(path, line, column)));
                None
            }
        },
        Err(crate::fsutil::ReadError::TooLarge) => {
            diags.push(Diagnostic::new(
                UNREADABLE_INPUT,
                format!("larger than {} bytes: a node refuses it", load::MAX_POLICY_FILE_BYTES),
                Location::file(path),
            ));
            None
        }
        Err(crate::fsutil::ReadError::Io(e)) => {
            diags.push(Diagnostic::new(UNREADABLE_INPUT, format!("cannot read: {e}"), Location::file(path)));
            None
        }
    }
}

/// The loader rejected a file lint found nothing wrong with: report the loader's
/// verdict, which is what the node does.
fn loader_disagrees(path: &Path, e: &LoadError) -> Diagnostic {
    let (loc, message) = match e {
        LoadError::Yaml { line: Some(l), column: Some(c), message, .. } => {
            (Location::at(path, *l, *c), message.clone())
        }
        other => (Location::file(path), other.to_string()),
    };
    Diagnostic::new(INVALID_VALUE, format!("the loader rejects this file: {message}"), loc)
}

/// Fills line and column from the spans of the finding's file.
fn place(d: &mut Diagnostic, spans: &HashMap<PathBuf, SpanMap>) {
    place_location(&mut d.location, spans);
    for r in &mut d.related {
        place_location(&mut r.location, spans);
    }
}

fn place_location(l: &mut Location, spans: &HashMap<PathBuf, SpanMap>) {
    let (Some(a), Some(map)) = (l.anchor.take(), spans.get(&l.file)) else { return };
    let found = match &a.doc {
        DocRef::Index(i) => map.doc(*i).map(|d| (*i, d)),
        DocRef::Name(n) => named(map, n).next(),
        DocRef::NameNth(n, k) => named(map, n).nth(*k),
    };
    let Some((index, doc)) = found else { return };
    l.document = Some(index + 1);
    let node = match &a.value {
        Some(v) => doc.find_scalar(&a.path, &|s| same_scalar(s, v)),
        None => None,
    }
    .or_else(|| doc.nearest(&a.path));
    let pos = match node {
        // The whole document: its first key (the marks of an implicit document's
        // start and of a block mapping lie past it).
        Some(("", _)) => doc.children("").first().and_then(|c| doc.pos(c)).or(doc.start),
        Some((p, n)) => {
            l.path = Some(p.to_owned());
            Some(if a.at_value || a.value.is_some() { n.value } else { n.key.unwrap_or(n.value) })
        }
        None => doc.start,
    };
    if let Some(p) = pos {
        l.line = Some(p.line);
        l.column = Some(p.column);
    }
}

/// The documents of a file whose metadata.name is `name`.
fn named<'a>(map: &'a SpanMap, name: &'a str) -> impl Iterator<Item = (usize, &'a spans::DocSpans)> + 'a {
    map.docs.iter().enumerate().filter(move |(_, d)| {
        d.node("/metadata/name").and_then(|x| x.scalar.as_deref()).is_some_and(|s| s.trim() == name)
    })
}

/// Whether a scalar spells `value`: exactly, or as a capability in another spelling
/// (`sys_admin` for `CAP_SYS_ADMIN`).
fn same_scalar(scalar: &str, value: &str) -> bool {
    let norm = |s: &str| {
        let u = s.trim().to_ascii_uppercase();
        u.strip_prefix("CAP_").map(str::to_owned).unwrap_or(u)
    };
    scalar == value || (value.starts_with("CAP_") && norm(scalar) == norm(value))
}

fn order(a: &Diagnostic, b: &Diagnostic) -> std::cmp::Ordering {
    let key = |d: &Diagnostic| (d.location.file.clone(), d.location.line, d.location.column, d.code);
    key(a).cmp(&key(b))
}

fn finish(report: &mut Report) {
    report.diagnostics.sort_by(order);
    report.diagnostics.dedup();
}

#[cfg(test)]
mod tests;
