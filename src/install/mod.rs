//! `hardrun install`: puts hardrun on a node the way containerd expects it. The binary
//! (and a `hardrun-<class>` link per extra handler), the default node config, the
//! shipped policies and hook definitions, and one runtime handler per name in
//! containerd's config. Everything is checked before anything is written, existing
//! files are never overwritten with other content, and the containerd config is
//! replaced atomically after a backup.

pub mod containerd;
mod files;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use containerd::{Change, ContainerdError, Handler};
use files::FileAction;

pub const DEFAULT_HANDLER: &str = "hardrun";
pub const DEFAULT_CONTAINERD_CONFIG: &str = "/etc/containerd/config.toml";
pub const DEFAULT_PREFIX: &str = "/usr/local";
/// containerd configs are a few hundred lines; anything near this is not one.
pub const MAX_CONTAINERD_CONFIG_BYTES: u64 = 4 * 1024 * 1024;
/// Suffix of the copy of the containerd config taken before each change.
pub const BACKUP_SUFFIX: &str = ".hardrun.bak";

/// Policies compiled into the binary, by name: `--policy NAME` installs them.
pub const SHIPPED_POLICIES: &[(&str, &str)] = &[
    ("baseline", include_str!("../../policies/baseline.yaml")),
    ("restricted", include_str!("../../policies/restricted.yaml")),
];
/// Hook definitions compiled into the binary; always installed (policies opt in).
pub const SHIPPED_HOOKS: &[(&str, &str)] = &[
    ("audit-poststart.json", include_str!("../../hooks/audit-poststart.json")),
    ("audit-poststop.json", include_str!("../../hooks/audit-poststop.json")),
];

/// The node config `install` writes when there is none: the defaults, spelled out.
pub const DEFAULT_NODE_CONFIG: &str = "\
# hardrun node config (docs/configuration.md). Written once by `hardrun install`;
# it is never overwritten, so edits here are kept.
policyDir: /etc/hardrun/policies.d
auditLog: /var/log/hardrun/audit.jsonl
stateDir: /var/lib/hardrun
hookDirs: [/etc/hardrun/hooks.d]
";

#[derive(Debug, Error)]
pub enum InstallError {
    #[error("{path}: {source}")]
    Containerd { path: PathBuf, source: ContainerdError },
    #[error("no containerd config at {p} (create one with `containerd config default > {p}`, or pass --containerd-config)", p = .0.display())]
    NoContainerdConfig(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "invalid handler name {0:?}: use `hardrun` or `hardrun-<class>`, <class> lowercase letters, digits and \
         `-` (a RuntimeClass handler, and the name hardrun reads the runtime class from)"
    )]
    HandlerName(String),
    #[error("unknown policy {0:?} (shipped: {names})", names = shipped_names())]
    UnknownPolicy(String),
    #[error("{path} exists and is not what install would put there ({what}); move it away first")]
    Conflict { path: PathBuf, what: String },
    #[error("`{command}` failed: {detail}")]
    Restart { command: String, detail: String },
    #[error("--prefix must be an absolute path, got {0}")]
    RelativePrefix(PathBuf),
}

fn shipped_names() -> String {
    SHIPPED_POLICIES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// What to install, and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// Runtime handler names; the first `hardrun` is the binary, others are links.
    pub handlers: Vec<String>,
    /// Install prefix as the node sees it: the binary goes to `<prefix>/bin/hardrun`.
    pub prefix: PathBuf,
    /// The node's filesystem root (a host mount in a DaemonSet, a temp dir in tests):
    /// files are written below it; paths in the configs stay the node's.
    pub root_dir: PathBuf,
    /// containerd's config, as a path on this machine (default: below root_dir).
    pub containerd_config: Option<PathBuf>,
    /// The binary to install (default: the running one).
    pub binary_source: PathBuf,
    /// Shipped policies to put in the policy directory.
    pub policies: Vec<String>,
    /// Only edit containerd's config: no binary, node config, policies or hooks.
    pub containerd_only: bool,
    pub dry_run: bool,
    pub uninstall: bool,
}

/// What install did (or, in a dry run, would do).
#[derive(Debug, Default)]
pub struct Report {
    /// One line per file or handler.
    pub steps: Vec<String>,
    /// Unified diff of containerd's config (empty: no change).
    pub diff: String,
    /// Whether containerd's config changed (containerd must reload it).
    pub containerd_changed: bool,
}

/// Checks a handler name: `hardrun` or `hardrun-<class>`.
pub fn check_handler_name(name: &str) -> Result<(), InstallError> {
    let bad = || InstallError::HandlerName(name.to_owned());
    if name == DEFAULT_HANDLER {
        return Ok(());
    }
    let class = name.strip_prefix("hardrun-").ok_or_else(bad)?;
    let valid_chars = class.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if class.is_empty() || class.len() > 50 || !valid_chars || class.starts_with('-') || class.ends_with('-') {
        return Err(bad());
    }
    Ok(())
}

impl Options {
    /// `path` (as the node sees it) below root_dir.
    fn host(&self, path: &Path) -> PathBuf {
        self.root_dir.join(path.strip_prefix("/").unwrap_or(path))
    }

    fn bin_dir(&self) -> PathBuf {
        self.prefix.join("bin")
    }

    fn containerd_config_path(&self) -> PathBuf {
        self.containerd_config.clone().unwrap_or_else(|| self.host(Path::new(DEFAULT_CONTAINERD_CONFIG)))
    }

    /// The handlers with the binary each one runs (node paths).
    pub fn handlers(&self) -> Vec<Handler> {
        self.handlers.iter().map(|n| Handler { name: n.clone(), binary: self.bin_dir().join(n) }).collect()
    }

    fn validate(&self) -> Result<(), InstallError> {
        if !self.prefix.is_absolute() {
            return Err(InstallError::RelativePrefix(self.prefix.clone()));
        }
        self.handlers.iter().try_for_each(|h| check_handler_name(h))?;
        for p in &self.policies {
            if !SHIPPED_POLICIES.iter().any(|(n, _)| n == p) {
                return Err(InstallError::UnknownPolicy(p.clone()));
            }
        }
        Ok(())
    }

    /// Every file install owns, in the order it writes them.
    fn file_actions(&self) -> Vec<FileAction> {
        let mut actions = vec![FileAction::Binary {
            from: self.binary_source.clone(),
            to: self.host(&self.bin_dir().join("hardrun")),
        }];
        for h in self.handlers.iter().filter(|h| *h != DEFAULT_HANDLER) {
            actions.push(FileAction::Link { path: self.host(&self.bin_dir().join(h)), target: "hardrun".into() });
        }
        actions.push(FileAction::IfAbsent {
            path: self.host(Path::new("/etc/hardrun/config.yaml")),
            content: DEFAULT_NODE_CONFIG.into(),
            mode: 0o644,
        });
        for (name, text) in SHIPPED_POLICIES.iter().filter(|(n, _)| self.policies.iter().any(|p| p == n)) {
            actions.push(FileAction::IfAbsent {
                path: self.host(&Path::new("/etc/hardrun/policies.d").join(format!("{name}.yaml"))),
                content: (*text).into(),
                mode: 0o644,
            });
        }
        let hook_binary = self.bin_dir().join("hardrun");
        for (name, text) in SHIPPED_HOOKS {
            actions.push(FileAction::IfAbsent {
                path: self.host(&Path::new("/etc/hardrun/hooks.d").join(name)),
                content: files::hook_for_binary(text, &hook_binary),
                mode: 0o644,
            });
        }
        actions
    }
}

/// Installs (or with `uninstall`, removes) hardrun. Nothing is written when the
/// containerd config cannot be edited.
pub fn run(opts: &Options) -> Result<Report, InstallError> {
    opts.validate()?;
    let config_path = opts.containerd_config_path();
    let original = read_containerd_config(&config_path)?;
    // A config that is a link (configuration management) is edited where it points,
    // so the link stays.
    let config_path = std::fs::canonicalize(&config_path).unwrap_or(config_path);
    let handlers = opts.handlers();
    let edit = if opts.uninstall {
        containerd::unconfigure(&original, &handlers)
    } else {
        containerd::configure(&original, &handlers)
    };
    let (edited, changes) = edit.map_err(|source| InstallError::Containerd { path: config_path.clone(), source })?;
    let mut report = Report { containerd_changed: edited != original, ..Report::default() };
    report.diff = files::unified_diff(&original, &edited, &config_path);
    let actions = if opts.containerd_only { Vec::new() } else { opts.file_actions() };
    if opts.uninstall {
        let still_used = containerd::binary_names(&edited)
            .map_err(|source| InstallError::Containerd { path: config_path.clone(), source })?
            .into_iter()
            .map(PathBuf::from)
            .filter(|b| b.parent() == Some(opts.bin_dir().as_path()))
            .filter(|b| b.file_name().and_then(|n| n.to_str()).is_some_and(|n| check_handler_name(n).is_ok()))
            .collect::<Vec<_>>();
        uninstall_files(opts, &actions, still_used.is_empty(), &mut report)?;
    } else {
        install_files(opts, &actions, &mut report)?;
    }
    for (h, change) in handlers.iter().zip(&changes) {
        let verb = match (change, opts.dry_run) {
            (Change::Added, false) => "added",
            (Change::Added, true) => "would add",
            (Change::Removed, false) => "removed",
            (Change::Removed, true) => "would remove",
            (Change::Unchanged, _) if opts.uninstall => "not present",
            (Change::Unchanged, _) => "already configured",
        };
        report.steps.push(format!("handler {:?} ({}): {verb}", h.name, h.binary.display()));
    }
    if report.containerd_changed && !opts.dry_run {
        files::replace_with_backup(&config_path, &edited)?;
        report.steps.push(format!(
            "{}: updated (backup: {}{BACKUP_SUFFIX})",
            config_path.display(),
            config_path.display()
        ));
    }
    Ok(report)
}

/// containerd's config as text: a regular file, UTF-8, at most MAX_CONTAINERD_CONFIG_BYTES.
fn read_containerd_config(path: &Path) -> Result<String, InstallError> {
    let bytes = match crate::fsutil::read_capped(path, MAX_CONTAINERD_CONFIG_BYTES) {
        Ok(b) => b,
        Err(crate::fsutil::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(InstallError::NoContainerdConfig(path.to_owned()));
        }
        Err(crate::fsutil::ReadError::Io(source)) => return Err(InstallError::Io { path: path.to_owned(), source }),
        Err(crate::fsutil::ReadError::TooLarge) => {
            let source = std::io::Error::other(format!("larger than {MAX_CONTAINERD_CONFIG_BYTES} bytes"));
            return Err(InstallError::Io { path: path.to_owned(), source });
        }
    };
    String::from_utf8(bytes).map_err(|e| InstallError::Containerd {
        path: path.to_owned(),
        source: ContainerdError::Malformed(format!("not UTF-8: {e}")),
    })
}

fn install_files(opts: &Options, actions: &[FileAction], report: &mut Report) -> Result<(), InstallError> {
    // Check every file first, so a conflict stops install before it writes anything.
    for a in actions {
        a.check()?;
    }
    for a in actions {
        let outcome = if opts.dry_run { a.preview()? } else { a.apply()? };
        report.steps.push(outcome);
    }
    Ok(())
}

/// Removes the links and, unless a remaining handler still runs it, the binary; the
/// node config, policies and hooks are the operator's and stay.
fn uninstall_files(
    opts: &Options,
    actions: &[FileAction],
    remove_binary: bool,
    report: &mut Report,
) -> Result<(), InstallError> {
    for a in actions {
        if !remove_binary && matches!(a, FileAction::Binary { .. }) {
            report.steps.push("binary kept: other hardrun handlers still run it".to_owned());
            continue;
        }
        if let Some(line) = a.remove(opts.dry_run)? {
            report.steps.push(line);
        }
    }
    Ok(())
}

/// `systemctl restart containerd`, so it reads the new handlers.
pub fn restart_containerd() -> Result<(), InstallError> {
    let command = "systemctl restart containerd".to_owned();
    let out = std::process::Command::new("systemctl")
        .args(["restart", "containerd"])
        .output()
        .map_err(|e| InstallError::Restart { command: command.clone(), detail: e.to_string() })?;
    if !out.status.success() {
        let detail = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(InstallError::Restart { command, detail });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
