//! The files install writes: each checked before any is written, written atomically,
//! and never overwriting a file with other content.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{InstallError, BACKUP_SUFFIX};

#[derive(Debug, Clone)]
pub enum FileAction {
    /// The hardrun binary: replaced when its bytes differ (an upgrade).
    Binary { from: PathBuf, to: PathBuf },
    /// A `hardrun-<class>` link to the binary beside it.
    Link { path: PathBuf, target: PathBuf },
    /// A config file, written only when absent: the operator's edits win.
    IfAbsent { path: PathBuf, content: String, mode: u32 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io { path: path.to_owned(), source }
}

impl FileAction {
    fn path(&self) -> &Path {
        match self {
            FileAction::Binary { to, .. } => to,
            FileAction::Link { path, .. } | FileAction::IfAbsent { path, .. } => path,
        }
    }

    /// Fails when the file is in a state install must not change.
    pub fn check(&self) -> Result<(), InstallError> {
        match self {
            FileAction::Binary { from, .. } => std::fs::metadata(from).map(|_| ()).map_err(io(from)),
            FileAction::Link { path, target } => match std::fs::symlink_metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io(path)(e)),
                Ok(_) if std::fs::read_link(path).is_ok_and(|t| &t == target) => Ok(()),
                Ok(_) => {
                    Err(InstallError::Conflict { path: path.clone(), what: format!("a link to {}", target.display()) })
                }
            },
            FileAction::IfAbsent { .. } => Ok(()),
        }
    }

    /// What `apply` would do, without doing it.
    pub fn preview(&self) -> Result<String, InstallError> {
        let p = self.path().display();
        Ok(match self.state()? {
            State::Current => format!("{p}: unchanged"),
            State::Kept => format!("{p}: exists, kept"),
            State::Missing => format!("{p}: would install"),
            State::Outdated => format!("{p}: would replace (differs)"),
        })
    }

    pub fn apply(&self) -> Result<String, InstallError> {
        let p = self.path().display().to_string();
        let state = self.state()?;
        match (self, state) {
            (_, State::Current) => Ok(format!("{p}: unchanged")),
            (_, State::Kept) => Ok(format!("{p}: exists, kept")),
            (FileAction::Binary { from, to }, _) => {
                let bytes = std::fs::read(from).map_err(io(from))?;
                write_atomic(to, &bytes, 0o755)?;
                Ok(format!("{p}: installed"))
            }
            (FileAction::Link { path, target }, _) => {
                create_parent(path)?;
                std::os::unix::fs::symlink(target, path).map_err(io(path))?;
                Ok(format!("{p}: linked to {}", target.display()))
            }
            (FileAction::IfAbsent { path, content, mode }, _) => {
                write_atomic(path, content.as_bytes(), *mode)?;
                Ok(format!("{p}: installed"))
            }
        }
    }

    /// Removes what install owns (binary, links); config files stay.
    pub fn remove(&self, dry_run: bool) -> Result<Option<String>, InstallError> {
        let path = self.path();
        let owned = match self {
            FileAction::Binary { .. } => std::fs::symlink_metadata(path).is_ok(),
            FileAction::Link { target, .. } => std::fs::read_link(path).is_ok_and(|t| &t == target),
            FileAction::IfAbsent { .. } => return Ok(None),
        };
        if !owned {
            return Ok(None);
        }
        if !dry_run {
            std::fs::remove_file(path).map_err(io(path))?;
        }
        let verb = if dry_run { "would remove" } else { "removed" };
        Ok(Some(format!("{}: {verb}", path.display())))
    }

    fn state(&self) -> Result<State, InstallError> {
        let path = self.path();
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::Missing),
            Err(e) => return Err(io(path)(e)),
            Ok(_) => {}
        }
        Ok(match self {
            FileAction::Binary { from, to } => {
                let same = std::fs::read(from).map_err(io(from))? == std::fs::read(to).map_err(io(to))?;
                if same {
                    State::Current
                } else {
                    State::Outdated
                }
            }
            // check() has refused any other link.
            FileAction::Link { .. } => State::Current,
            FileAction::IfAbsent { path, content, .. } => {
                if std::fs::read(path).is_ok_and(|b| b == content.as_bytes()) {
                    State::Current
                } else {
                    State::Kept
                }
            }
        })
    }
}

enum State {
    Missing,
    Current,
    /// An operator's file where install would write a default.
    Kept,
    Outdated,
}

fn create_parent(path: &Path) -> Result<(), InstallError> {
    match path.parent() {
        Some(dir) => std::fs::create_dir_all(dir).map_err(io(dir)),
        None => Ok(()),
    }
}

/// The file's parent created, then [`fsutil::write_atomic`](crate::fsutil::write_atomic).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), InstallError> {
    create_parent(path)?;
    crate::fsutil::write_atomic(path, bytes, mode).map_err(io(path))
}

/// Copies the file to `<path>.hardrun.bak`, then replaces it atomically keeping its mode.
pub fn replace_with_backup(path: &Path, text: &str) -> Result<(), InstallError> {
    let mode = std::fs::metadata(path).map_err(io(path))?.permissions().mode() & 0o7777;
    let original = std::fs::read(path).map_err(io(path))?;
    let backup = PathBuf::from(format!("{}{BACKUP_SUFFIX}", path.display()));
    write_atomic(&backup, &original, mode)?;
    write_atomic(path, text.as_bytes(), mode)
}

/// A unified diff of the containerd config (empty when unchanged).
pub fn unified_diff(old: &str, new: &str, path: &Path) -> String {
    if old == new {
        return String::new();
    }
    let p = path.display().to_string();
    similar::TextDiff::from_lines(old, new).unified_diff().context_radius(3).header(&p, &p).to_string()
}

/// A shipped hook definition with its `hook.path` set to the installed binary.
pub fn hook_for_binary(text: &str, binary: &Path) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text) else {
        return text.to_owned();
    };
    let wanted = binary.display().to_string();
    if value.pointer("/hook/path").and_then(serde_json::Value::as_str) == Some(wanted.as_str()) {
        return text.to_owned();
    }
    if let Some(path) = value.pointer_mut("/hook/path") {
        *path = serde_json::Value::String(wanted);
    }
    let mut out = serde_json::to_string_pretty(&value).unwrap_or_else(|_| text.to_owned());
    out.push('\n');
    out
}
