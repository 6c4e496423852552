//! Reading policies: every `*.yaml`/`*.yml` file of the policy directory (names
//! starting with `.` skipped), each file holding any number of YAML documents. A
//! Kubernetes ConfigMap volume is read from the directory its `..data` link names,
//! resolved once, so an update is seen whole or not at all. No
//! directory: the embedded baseline. Any error rejects the whole set (fail closed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::model::{ExemptionDoc, ExemptionSpec, PolicyDoc, PolicySpec, API_VERSION, KIND_EXEMPTION, KIND_POLICY};
use crate::fsutil::{self, ReadError};
use crate::record::model::{Recording, RecordingDoc, KIND_RECORDING};

/// A policy file beyond this is a mistake or an attack, not a policy.
pub const MAX_POLICY_FILE_BYTES: u64 = 1024 * 1024;
/// Policies and exemptions in one set, across all files.
pub const MAX_POLICIES: usize = 1000;
/// Files in the policy directory.
pub const MAX_POLICY_FILES: usize = 1000;

pub const EMBEDDED_BASELINE: &str = include_str!("../../policies/baseline.yaml");
pub const EMBEDDED_BASELINE_SOURCE: &str = "<embedded>/baseline.yaml";

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("policy directory {path}: {source}")]
    ReadDir { path: PathBuf, source: std::io::Error },
    #[error("policy file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("policy file {path} is larger than {MAX_POLICY_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("policy directory {path} has more than {MAX_POLICY_FILES} policy files")]
    TooManyFiles { path: PathBuf },
    #[error("more than {MAX_POLICIES} policies")]
    TooManyPolicies,
    #[error("{}: {message}", place(path, *line, *column))]
    Yaml { path: PathBuf, line: Option<usize>, column: Option<usize>, message: String },
    #[error("{}: document {doc}: {message}", path.display())]
    Invalid { path: PathBuf, doc: usize, message: String },
    #[error("policy name {name:?} is used twice: {} and {}", first.display(), second.display())]
    DuplicateName { name: String, first: PathBuf, second: PathBuf },
}

fn place(path: &Path, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", path.display()),
        _ => path.display().to_string(),
    }
}

/// A loaded policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub name: String,
    /// The file it came from.
    pub source: PathBuf,
    /// `sha256:<hex>` of the document's canonical JSON: names the exact content in
    /// the audit record.
    pub hash: String,
    pub spec: PolicySpec,
}

/// A loaded exemption.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemption {
    pub name: String,
    pub source: PathBuf,
    pub hash: String,
    pub spec: ExemptionSpec,
}

/// Where a policy set came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Embedded,
    Dir(PathBuf),
}

#[derive(Debug, Clone)]
pub struct PolicySet {
    pub origin: Origin,
    pub policies: Vec<Policy>,
    pub exemptions: Vec<Exemption>,
    /// `kind: Recording` objects (src/record/).
    pub recordings: Vec<Recording>,
}

impl PolicySet {
    /// The node's policies: `dir` when it exists, else the embedded baseline. A
    /// dangling link at `dir` is an error, not "no policies": it is what a policy
    /// directory delivered by a pod that is gone looks like.
    pub fn load(dir: &Path) -> Result<Self, LoadError> {
        match std::fs::metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && std::fs::symlink_metadata(dir).is_err() => {
                Self::embedded()
            }
            Err(source) => Err(LoadError::ReadDir { path: dir.to_owned(), source }),
            Ok(_) => Self::load_snapshot(dir),
        }
    }

    /// A Kubernetes ConfigMap volume swaps its files at once by re-pointing its
    /// `..data` link at a new timestamped directory, then deletes the old one. Reading
    /// through the per-file links could mix two versions; reading the directory `..data`
    /// named once cannot. A swap during the read may have deleted that directory under
    /// it (some files, or none, read): then the read is repeated on the new version,
    /// and a set still changing after that is an error, never a partial set.
    fn load_snapshot(dir: &Path) -> Result<Self, LoadError> {
        const ATTEMPTS: usize = 5;
        let mut snapshot = configmap_snapshot(dir)?;
        for _ in 0..ATTEMPTS {
            let result = Self::load_dir(&snapshot);
            if snapshot == dir {
                return result;
            }
            let now = configmap_snapshot(dir)?;
            if now == snapshot {
                return result;
            }
            snapshot = now;
        }
        Err(LoadError::ReadDir {
            path: dir.to_owned(),
            source: std::io::Error::other(format!("{CONFIGMAP_DATA} changed during each of {ATTEMPTS} reads")),
        })
    }

    pub fn embedded() -> Result<Self, LoadError> {
        parse_documents(Path::new(EMBEDDED_BASELINE_SOURCE), EMBEDDED_BASELINE).map(PolicySet::from)
    }

    pub fn load_dir(dir: &Path) -> Result<Self, LoadError> {
        let files = policy_files(dir)?;
        Self::load_files(&files).map(|mut s| {
            s.origin = Origin::Dir(dir.to_owned());
            s
        })
    }

    /// Loads the given files as one set.
    pub fn load_files(files: &[PathBuf]) -> Result<Self, LoadError> {
        let mut all = Documents::default();
        for path in files {
            let text = read_policy_file(path)?;
            let docs = parse_documents(path, &text)?;
            all.policies.extend(docs.policies);
            all.exemptions.extend(docs.exemptions);
            all.recordings.extend(docs.recordings);
            if all.policies.len() + all.exemptions.len() + all.recordings.len() > MAX_POLICIES {
                return Err(LoadError::TooManyPolicies);
            }
        }
        let names = all
            .policies
            .iter()
            .map(|p| (&p.name, &p.source))
            .chain(all.exemptions.iter().map(|e| (&e.name, &e.source)))
            .chain(all.recordings.iter().map(|r| (&r.name, &r.source)));
        check_unique_names(names)?;
        Ok(PolicySet::from(all))
    }
}

/// The documents as a set (origin: embedded until a loader says otherwise).
impl From<Documents> for PolicySet {
    fn from(docs: Documents) -> Self {
        PolicySet {
            origin: Origin::Embedded,
            policies: docs.policies,
            exemptions: docs.exemptions,
            recordings: docs.recordings,
        }
    }
}

/// The name of a ConfigMap volume's current data directory link.
pub const CONFIGMAP_DATA: &str = "..data";

/// The directory holding `dir`'s current files: the target of its `..data` link when
/// it has one (a ConfigMap volume), else `dir` itself. The target must be a sibling
/// entry (kubelet writes `..<timestamp>`), never a path elsewhere.
pub fn configmap_snapshot(dir: &Path) -> Result<PathBuf, LoadError> {
    let link = dir.join(CONFIGMAP_DATA);
    let target = match std::fs::read_link(&link) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.kind() == std::io::ErrorKind::InvalidInput => {
            return Ok(dir.to_owned());
        }
        Err(source) => return Err(LoadError::ReadDir { path: link, source }),
    };
    let mut parts = target.components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(name)), None) => Ok(dir.join(name)),
        _ => Err(LoadError::ReadDir {
            path: link,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} must name an entry of the same directory, not {}", CONFIGMAP_DATA, target.display()),
            ),
        }),
    }
}

/// The policy files of a directory, sorted by name.
pub fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let rd = |source| LoadError::ReadDir { path: dir.to_owned(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(rd)? {
        let entry = entry.map_err(rd)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') || !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        files.push(entry.path());
        if files.len() > MAX_POLICY_FILES {
            return Err(LoadError::TooManyFiles { path: dir.to_owned() });
        }
    }
    files.sort();
    Ok(files)
}

fn read_policy_file(path: &Path) -> Result<String, LoadError> {
    let bytes = match fsutil::read_capped(path, MAX_POLICY_FILE_BYTES) {
        Ok(b) => b,
        Err(ReadError::TooLarge) => return Err(LoadError::TooLarge { path: path.to_owned() }),
        Err(ReadError::Io(source)) => return Err(LoadError::Read { path: path.to_owned(), source }),
    };
    String::from_utf8(bytes).map_err(|e| LoadError::Yaml {
        path: path.to_owned(),
        line: None,
        column: None,
        message: format!("not UTF-8: {e}"),
    })
}

fn yaml_error(path: &Path, e: &serde_yaml::Error) -> LoadError {
    let (line, column, message) = crate::yaml::split_error(e);
    LoadError::Yaml { path: path.to_owned(), line, column, message }
}

/// The documents of one file, by kind.
#[derive(Debug, Default)]
pub struct Documents {
    pub policies: Vec<Policy>,
    pub exemptions: Vec<Exemption>,
    pub recordings: Vec<Recording>,
}

/// Parses every document of one file. Empty documents (a trailing `---`) are skipped.
pub fn parse_documents(path: &Path, text: &str) -> Result<Documents, LoadError> {
    let mut out = Documents::default();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_yaml::Value::deserialize(de).map_err(|e| yaml_error(path, &e))?;
        if value.is_null() {
            continue;
        }
        let kind = check_header(path, i + 1, &value)?;
        if kind == KIND_POLICY {
            let mut doc: PolicyDoc = typed(path, text, i, value)?;
            // `localhost/<file>` profiles are relative to the policy file's directory.
            doc.spec.seccomp.resolve_paths(path.parent().unwrap_or(Path::new("/")));
            doc.spec.image_signature.resolve(path.parent().unwrap_or(Path::new("/")));
            let hash = content_hash(&doc);
            out.policies.push(Policy { name: doc.metadata.name, source: path.to_owned(), hash, spec: doc.spec });
        } else if kind == KIND_RECORDING {
            let doc: RecordingDoc = typed(path, text, i, value)?;
            doc.spec.validate().map_err(|message| LoadError::Invalid { path: path.to_owned(), doc: i + 1, message })?;
            let hash = content_hash(&doc);
            out.recordings.push(Recording { name: doc.metadata.name, source: path.to_owned(), hash, spec: doc.spec });
        } else {
            let doc: ExemptionDoc = typed(path, text, i, value)?;
            let hash = content_hash(&doc);
            out.exemptions.push(Exemption { name: doc.metadata.name, source: path.to_owned(), hash, spec: doc.spec });
        }
    }
    Ok(out)
}

/// Document `index` of `text` as `T`, from the value already parsed. Only when that
/// fails is the text parsed up to the document again, for an error with its line and
/// column (a value has no positions); so loading stays linear in the documents.
fn typed<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    index: usize,
    value: serde_yaml::Value,
) -> Result<T, LoadError> {
    T::deserialize(value).or_else(|_| {
        let de = serde_yaml::Deserializer::from_str(text).nth(index).expect("document counted by the caller");
        T::deserialize(de).map_err(|e| yaml_error(path, &e))
    })
}

/// Parses the policies of one file (exemptions are an error here).
pub fn parse_policies(path: &Path, text: &str) -> Result<Vec<Policy>, LoadError> {
    parse_documents(path, text).map(|d| d.policies)
}

fn content_hash<T: serde::Serialize>(doc: &T) -> String {
    format!("sha256:{:x}", Sha256::digest(serde_json::to_vec(doc).unwrap_or_default()))
}

/// apiVersion and kind are checked first so a document of another kind gets a
/// message about its kind, not about fields the Policy schema lacks.
fn check_header(path: &Path, doc: usize, value: &serde_yaml::Value) -> Result<&'static str, LoadError> {
    let invalid = |message: String| LoadError::Invalid { path: path.to_owned(), doc, message };
    let field = |k: &str| value.get(k).and_then(serde_yaml::Value::as_str).map(str::to_owned);
    if !value.is_mapping() {
        return Err(invalid("a policy document must be a mapping".into()));
    }
    match field("apiVersion") {
        Some(v) if v == API_VERSION => {}
        Some(v) => return Err(invalid(format!("unknown apiVersion {v:?} (expected {API_VERSION:?})"))),
        None => return Err(invalid("missing apiVersion".into())),
    }
    let kind = match field("kind") {
        Some(k) if k == KIND_POLICY => KIND_POLICY,
        Some(k) if k == KIND_EXEMPTION => KIND_EXEMPTION,
        Some(k) if k == KIND_RECORDING => KIND_RECORDING,
        Some(k) => {
            return Err(invalid(format!(
                "unknown kind {k:?} (expected {KIND_POLICY:?}, {KIND_EXEMPTION:?} or {KIND_RECORDING:?})"
            )))
        }
        None => return Err(invalid("missing kind".into())),
    };
    let name = value.get("metadata").and_then(|m| m.get("name")).and_then(serde_yaml::Value::as_str);
    if name.is_none_or(|n| n.trim().is_empty()) {
        return Err(invalid("missing metadata.name".into()));
    }
    Ok(kind)
}

fn check_unique_names<'a>(names: impl Iterator<Item = (&'a String, &'a PathBuf)>) -> Result<(), LoadError> {
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for (name, source) in names {
        if let Some(first) = seen.insert(name, source) {
            return Err(LoadError::DuplicateName {
                name: name.clone(),
                first: first.to_owned(),
                second: source.clone(),
            });
        }
    }
    Ok(())
}
