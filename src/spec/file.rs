use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

use crate::fsutil::{self, ReadError};

/// containerd's specs are tens of KiB; 4 MiB leaves room for huge env/annotation sets
/// while bounding what a hostile bundle can make hardrun parse.
pub const MAX_SPEC_BYTES: u64 = 4 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum SpecError {
    #[error("bundle {0} has no config.json")]
    Missing(PathBuf),
    #[error("{0} is a symlink; hardrun edits only a regular config.json inside the bundle")]
    Symlink(PathBuf),
    #[error("{0} is not a regular file")]
    NotRegular(PathBuf),
    #[error("{path} is larger than {MAX_SPEC_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid JSON: {message} at line {line} column {column}")]
    NotJson { path: PathBuf, message: String, line: usize, column: usize },
    #[error("{0} is not a JSON object")]
    NotObject(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// A bundle's config.json, as loaded.
#[derive(Debug, Clone)]
pub struct SpecFile {
    path: PathBuf,
    pub value: Value,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl SpecFile {
    /// Loads `<bundle>/config.json`.
    pub fn load(bundle: &Path) -> Result<Self, SpecError> {
        Self::load_file(&bundle.join("config.json")).map_err(|e| match e {
            SpecError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                SpecError::Missing(bundle.to_owned())
            }
            other => other,
        })
    }

    /// Loads any JSON-object file with the same rules (an exec's `--process` file).
    pub fn load_file(path: &Path) -> Result<Self, SpecError> {
        let path = path.to_owned();
        let io = |source: std::io::Error| SpecError::Io { path: path.clone(), source };
        let file = match fsutil::open_regular(&path, true) {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(SpecError::Symlink(path)),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Err(SpecError::NotRegular(path)),
            Err(e) => return Err(io(e)),
        };
        let meta = file.metadata().map_err(io)?;
        let bytes = match fsutil::read_capped_from(file, MAX_SPEC_BYTES) {
            Ok(b) => b,
            Err(ReadError::TooLarge) => return Err(SpecError::TooLarge { path }),
            Err(ReadError::Io(e)) => return Err(io(e)),
        };
        let value = Self::parse(&path, &bytes)?;
        Ok(SpecFile { path, value, mode: meta.permissions().mode() & 0o7777, uid: meta.uid(), gid: meta.gid() })
    }

    /// Parses config.json bytes: a JSON object, nothing else.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Value, SpecError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| SpecError::NotJson {
            path: path.to_owned(),
            message: e.to_string().split(" at line ").next().unwrap_or_default().to_owned(),
            line: e.line(),
            column: e.column(),
        })?;
        if !value.is_object() {
            return Err(SpecError::NotObject(path.to_owned()));
        }
        Ok(value)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces config.json with `value`: a temp file beside it, same mode and owner,
    /// fsync'd, renamed over the original, and the directory fsync'd, so a crash leaves
    /// either the old file or the new one.
    pub fn write_atomic(&self, value: &Value) -> Result<(), SpecError> {
        let werr = |source: std::io::Error| SpecError::Write { path: self.path.clone(), source };
        let bytes = serde_json::to_vec(value).map_err(|e| werr(std::io::Error::other(e)))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp_prefix = format!(".{name}.hardrun-");
        remove_stale_temps(dir, &tmp_prefix);
        let tmp = dir.join(format!("{tmp_prefix}{}.tmp", std::process::id()));
        let result = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(self.mode)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
                .open(&tmp)?;
            // The umask may have narrowed the mode given to open.
            f.set_permissions(std::fs::Permissions::from_mode(self.mode))?;
            std::os::unix::fs::fchown(&f, Some(self.uid), Some(self.gid))?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            crate::faults::crash_point("spec.temp-written");
            std::fs::rename(&tmp, &self.path)?;
            crate::faults::crash_point("spec.renamed");
            std::fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(werr)
    }
}

/// Removes temp files an earlier hardrun left when it was killed between writing and
/// renaming. containerd runs one create per bundle at a time, so any such file is
/// stale, even one with our own pid (a reused pid would make `create_new` fail).
fn remove_stale_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(prefix) && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(content: &[u8]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("config.json"), content).unwrap();
        d
    }

    #[test]
    fn errors_are_distinct() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(SpecFile::load(d.path()), Err(SpecError::Missing(_))));
        let d = bundle_with(b"{not json");
        let e = SpecFile::load(d.path()).unwrap_err();
        assert!(matches!(e, SpecError::NotJson { line: 1, column: 2, .. }), "{e}");
        let d = bundle_with(b"[1,2]");
        assert!(matches!(SpecFile::load(d.path()), Err(SpecError::NotObject(_))));
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/hostname", d.path().join("config.json")).unwrap();
        assert!(matches!(SpecFile::load(d.path()), Err(SpecError::Symlink(_))));
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("config.json")).unwrap();
        assert!(matches!(SpecFile::load(d.path()), Err(SpecError::NotRegular(_))));
    }

    #[test]
    fn size_cap_exact_and_past() {
        let mut at = b"{\"x\":\"".to_vec();
        at.resize(MAX_SPEC_BYTES as usize - 2, b'a');
        at.extend_from_slice(b"\"}");
        assert_eq!(at.len() as u64, MAX_SPEC_BYTES);
        let d = bundle_with(&at);
        assert!(SpecFile::load(d.path()).is_ok());
        let mut past = at.clone();
        past.insert(6, b'a');
        let d = bundle_with(&past);
        assert!(matches!(SpecFile::load(d.path()), Err(SpecError::TooLarge { .. })));
    }

    #[test]
    fn atomic_write_keeps_mode_and_unknown_fields() {
        let d = bundle_with(br#"{"ociVersion":"1.2.0","vendor.example/x":{"b":1,"a":[1,2]},"z":null,"a":1}"#);
        std::fs::set_permissions(d.path().join("config.json"), std::fs::Permissions::from_mode(0o640)).unwrap();
        let spec = SpecFile::load(d.path()).unwrap();
        let mut v = spec.value.clone();
        v["process"] = serde_json::json!({"noNewPrivileges": true});
        spec.write_atomic(&v).unwrap();
        let back = SpecFile::load(d.path()).unwrap();
        assert_eq!(back.value, v);
        let keys: Vec<_> = back.value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["ociVersion", "vendor.example/x", "z", "a", "process"]);
        assert_eq!(std::fs::metadata(d.path().join("config.json")).unwrap().permissions().mode() & 0o7777, 0o640);
        let leftovers: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }
}
