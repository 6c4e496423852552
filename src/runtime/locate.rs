//! Finding the real runc: configured, or the first of the usual places that is not
//! hardrun itself (a node where `runc` was replaced by hardrun must not exec itself).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where runc is looked for when the node config names none (DESIGN.md).
pub const DEFAULT_SEARCH: &[&str] = &["/usr/local/sbin/runc", "/usr/local/bin/runc", "/usr/sbin/runc", "/usr/bin/runc"];

#[derive(Debug, Error)]
pub enum LocateError {
    #[error("runtime {0} is not an absolute path")]
    NotAbsolute(PathBuf),
    #[error("runtime {path} cannot be used: {source}")]
    Unusable { path: PathBuf, source: std::io::Error },
    #[error("runtime {0} is hardrun itself; set `runtime` in the node config to the real runc")]
    IsSelf(PathBuf),
    #[error("runtime {0} is not an executable file")]
    NotExecutable(PathBuf),
    #[error("no runc found (looked in {}); install runc or set `runtime` in the node config", DEFAULT_SEARCH.join(", "))]
    NotFound,
    #[error("cannot identify hardrun's own binary (/proc/self/exe): {0}")]
    SelfUnknown(std::io::Error),
}

/// (device, inode) of a file, following symlinks: how "the same binary" is compared.
type FileId = (u64, u64);

fn file_id(path: &Path) -> std::io::Result<(FileId, std::fs::Metadata)> {
    let m = std::fs::metadata(path)?;
    Ok(((m.dev(), m.ino()), m))
}

fn is_executable_file(m: &std::fs::Metadata) -> bool {
    m.is_file() && m.mode() & 0o111 != 0
}

/// Resolves the runtime to exec: `configured` when set, else the default search list.
pub fn find_runc(configured: Option<&Path>) -> Result<PathBuf, LocateError> {
    let own = file_id(Path::new("/proc/self/exe")).map_err(LocateError::SelfUnknown)?.0;
    find_runc_excluding(configured, DEFAULT_SEARCH, own)
}

/// The search with an explicit candidate list and "self" identity, for tests.
pub fn find_runc_excluding(
    configured: Option<&Path>,
    candidates: &[&str],
    own: FileId,
) -> Result<PathBuf, LocateError> {
    if let Some(path) = configured {
        if !path.is_absolute() {
            return Err(LocateError::NotAbsolute(path.to_owned()));
        }
        let (id, meta) = file_id(path).map_err(|source| LocateError::Unusable { path: path.to_owned(), source })?;
        if id == own {
            return Err(LocateError::IsSelf(path.to_owned()));
        }
        if !is_executable_file(&meta) {
            return Err(LocateError::NotExecutable(path.to_owned()));
        }
        return Ok(path.to_owned());
    }
    candidates
        .iter()
        .map(Path::new)
        .find(|p| matches!(file_id(p), Ok((id, m)) if id != own && is_executable_file(&m)))
        .map(Path::to_path_buf)
        .ok_or(LocateError::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn exe(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn skips_self_and_missing_in_search() {
        let d = tempfile::tempdir().unwrap();
        let me = exe(d.path(), "me");
        let runc = exe(d.path(), "runc");
        let link = d.path().join("link-to-me");
        std::os::unix::fs::symlink(&me, &link).unwrap();
        let own = file_id(&me).unwrap().0;
        let cands = [d.path().join("missing"), link, runc.clone()];
        let cands: Vec<&str> = cands.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(find_runc_excluding(None, &cands, own).unwrap(), runc);
    }

    #[test]
    fn configured_self_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let me = exe(d.path(), "me");
        let own = file_id(&me).unwrap().0;
        assert!(matches!(find_runc_excluding(Some(&me), &[], own), Err(LocateError::IsSelf(_))));
    }

    #[test]
    fn configured_must_be_absolute_and_executable() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        std::fs::write(&data, "x").unwrap();
        let own = (0, 0);
        assert!(matches!(find_runc_excluding(Some(Path::new("runc")), &[], own), Err(LocateError::NotAbsolute(_))));
        assert!(matches!(find_runc_excluding(Some(&data), &[], own), Err(LocateError::NotExecutable(_))));
        assert!(matches!(
            find_runc_excluding(Some(&d.path().join("nope")), &[], own),
            Err(LocateError::Unusable { .. })
        ));
        assert!(matches!(find_runc_excluding(None, &[], own), Err(LocateError::NotFound)));
    }
}
