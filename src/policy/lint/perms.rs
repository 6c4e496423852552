//! Who can change a policy: like sshd's StrictModes, a file and every directory above
//! it must be owned by root (or, outside the node's own policy directory, by the user
//! running lint) and not writable by group or others. Whoever can write a policy can
//! switch off every control it holds.
//!
//! Ancestors with the sticky bit (`/tmp`) may be writable by others: there, only an
//! entry's owner can rename or remove it. The directory holding the files may not:
//! a node loads every `*.yaml` in it, so whoever can add a file there can add a policy.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::*;

/// The permission findings for `files` (and their directories). `node`: the files are
/// the node's policy directory: findings are errors, and only root may own them.
pub fn check_files(files: &[PathBuf], node: bool) -> Vec<Diagnostic> {
    let me = nix::unistd::geteuid().as_raw();
    let severity = if node { Severity::Error } else { Severity::Warning };
    let mut out = Vec::new();
    let mut seen_dirs = HashSet::new();
    for f in files {
        let Ok(meta) = std::fs::metadata(f) else { continue };
        if let Some(problem) = problem(&meta, node, me, false) {
            out.push(finding(f, "policy file", &problem, severity));
        }
        let mut dirs: Vec<(PathBuf, bool)> = Vec::new();
        for path in [Some(f.clone()), std::fs::canonicalize(f).ok()].into_iter().flatten() {
            let abs = if path.is_absolute() { path } else { std::env::current_dir().unwrap_or_default().join(path) };
            for (depth, dir) in abs.ancestors().skip(1).enumerate() {
                dirs.push((dir.to_owned(), depth > 0));
            }
        }
        for (dir, is_ancestor) in dirs {
            if !seen_dirs.insert(dir.clone()) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&dir) else { continue };
            if let Some(problem) = problem(&meta, node, me, is_ancestor) {
                out.push(finding(&dir, "directory", &problem, severity));
            }
        }
    }
    out
}

fn problem(meta: &std::fs::Metadata, node: bool, me: u32, sticky_ok: bool) -> Option<String> {
    crate::fsutil::ownership_problem(meta, (!node).then_some(me), sticky_ok)
}

fn finding(path: &Path, what: &str, problem: &str, severity: Severity) -> Diagnostic {
    Diagnostic::new(
        INSECURE_PERMISSIONS,
        format!("{what} {} {problem}: whoever can change it can change every container's policy", path.display()),
        Location::file(path),
    )
    .severity(severity)
    .help(format!("chown root:root {0} && chmod go-w {0}", path.display()))
}
