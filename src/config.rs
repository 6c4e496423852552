//! The node config: `/etc/hardrun/config.yaml`, or the file `HARDRUN_CONFIG` names.
//! A missing file means the embedded defaults; a file that exists must be valid
//! (unknown keys are errors, so a typo never silently falls back to a default).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/hardrun/config.yaml";
pub const CONFIG_ENV: &str = "HARDRUN_CONFIG";
/// A node config is a handful of keys; anything near this size is not one.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("node config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("node config {path} is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("node config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("node config {path}: `{key}` must be an absolute path, got {value:?}")]
    NotAbsolute { path: PathBuf, key: &'static str, value: PathBuf },
}

/// Node-level settings. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct NodeConfig {
    /// The real runc; `None`: search the default locations.
    pub runtime: Option<PathBuf>,
    pub policy_dir: PathBuf,
    pub audit_log: AuditLogConfig,
    /// What a create does when its audit record cannot be written.
    pub audit_failure: AuditFailure,
    pub state_dir: PathBuf,
    /// hardrun's own tracing output; off when unset.
    pub debug_log: Option<PathBuf>,
    /// Directories of trusted OCI hook definitions, highest precedence first.
    pub hook_dirs: Vec<PathBuf>,
    /// Seconds a hook may run when its definition sets no timeout.
    pub hook_timeout: u32,
    /// Where the host's sysfs is read (AppArmor and cgroup detection); for chroots
    /// and tests.
    pub sys_root: PathBuf,
    /// Image signature verification: registries, containerd, the verdict cache.
    pub image_verification: crate::verify::settings::VerificationSettings,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            runtime: None,
            policy_dir: PathBuf::from("/etc/hardrun/policies.d"),
            audit_log: AuditLogConfig::default(),
            audit_failure: AuditFailure::Deny,
            state_dir: PathBuf::from("/var/lib/hardrun"),
            debug_log: None,
            sys_root: PathBuf::from("/sys"),
            hook_dirs: vec![PathBuf::from("/etc/hardrun/hooks.d")],
            hook_timeout: 10,
            image_verification: Default::default(),
        }
    }
}

/// `auditLog`: a path, or `{path, maxSize, maxFiles}` for size-based rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLogConfig {
    pub path: PathBuf,
    /// Rotate before a write would take the file past this many bytes.
    pub max_size: u64,
    /// Rotated files kept (`<log>.1` … `<log>.<maxFiles>`).
    pub max_files: u32,
}

impl Default for AuditLogConfig {
    fn default() -> Self {
        AuditLogConfig {
            path: PathBuf::from("/var/log/hardrun/audit.jsonl"),
            max_size: 100 * 1024 * 1024,
            max_files: 5,
        }
    }
}

impl<'de> Deserialize<'de> for AuditLogConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        struct Full {
            path: Option<PathBuf>,
            max_size: Option<u64>,
            max_files: Option<u32>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Path(PathBuf),
            Full(Full),
        }
        let default = AuditLogConfig::default();
        Ok(match Raw::deserialize(d)? {
            Raw::Path(path) => AuditLogConfig { path, ..default },
            Raw::Full(f) => AuditLogConfig {
                path: f.path.unwrap_or(default.path),
                max_size: f.max_size.unwrap_or(default.max_size),
                max_files: f.max_files.unwrap_or(default.max_files),
            },
        })
    }
}

/// `auditFailure`: deny (default) refuses a container whose record cannot be
/// written; allow starts it and says so in runc's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditFailure {
    #[default]
    Deny,
    Allow,
}

impl NodeConfig {
    /// The config file in force: `HARDRUN_CONFIG` if set, else the default path.
    pub fn path_from_env() -> PathBuf {
        std::env::var_os(CONFIG_ENV).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
    }

    /// Loads the config in force (see `path_from_env`).
    pub fn load_from_env() -> Result<Self, ConfigError> {
        Self::load(&Self::path_from_env())
    }

    /// Loads `path`; a file that does not exist yields the defaults.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let bytes = match crate::fsutil::read_capped(path, MAX_CONFIG_BYTES) {
            Ok(b) => b,
            Err(crate::fsutil::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default())
            }
            Err(crate::fsutil::ReadError::Io(source)) => {
                return Err(ConfigError::Read { path: path.to_owned(), source })
            }
            Err(crate::fsutil::ReadError::TooLarge) => return Err(ConfigError::TooLarge { path: path.to_owned() }),
        };
        Self::parse(path, &bytes)
    }

    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse { path: path.to_owned(), message };
        // An empty file (or one with only comments) is a valid "all defaults".
        let text = std::str::from_utf8(bytes).map_err(|e| parse_err(e.to_string()))?;
        if text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
            return Ok(Self::default());
        }
        let cfg: NodeConfig = serde_yaml::from_str(text).map_err(|e| parse_err(crate::yaml::describe_error(&e)))?;
        cfg.check_absolute(path)?;
        Ok(cfg)
    }

    fn check_absolute(&self, path: &Path) -> Result<(), ConfigError> {
        let keys: [(&'static str, Option<&PathBuf>); 6] = [
            ("runtime", self.runtime.as_ref()),
            ("policyDir", Some(&self.policy_dir)),
            ("auditLog", Some(&self.audit_log.path)),
            ("stateDir", Some(&self.state_dir)),
            ("debugLog", self.debug_log.as_ref()),
            ("sysRoot", Some(&self.sys_root)),
        ];
        let hook_dirs = self.hook_dirs.iter().map(|d| ("hookDirs", Some(d)));
        for (key, value) in keys.into_iter().chain(hook_dirs) {
            if let Some(v) = value.filter(|v| !v.is_absolute()) {
                return Err(ConfigError::NotAbsolute { path: path.to_owned(), key, value: v.clone() });
            }
        }
        if self.hook_timeout == 0 {
            return Err(ConfigError::Parse { path: path.to_owned(), message: "hookTimeout must be at least 1".into() });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<NodeConfig, ConfigError> {
        NodeConfig::parse(Path::new("/c.yaml"), s.as_bytes())
    }

    #[test]
    fn missing_file_is_defaults() {
        assert_eq!(NodeConfig::load(Path::new("/nonexistent/hardrun.yaml")).unwrap(), NodeConfig::default());
    }

    #[test]
    fn empty_and_comment_only_are_defaults() {
        assert_eq!(parse("").unwrap(), NodeConfig::default());
        assert_eq!(parse("# nothing\n\n").unwrap(), NodeConfig::default());
    }

    #[test]
    fn audit_log_forms() {
        let c = parse("auditLog: {path: /a.jsonl, maxSize: 1000}\nauditFailure: allow\n").unwrap();
        assert_eq!(c.audit_log, AuditLogConfig { path: "/a.jsonl".into(), max_size: 1000, max_files: 5 });
        assert_eq!(c.audit_failure, AuditFailure::Allow);
        assert!(parse("auditLog: {path: /a, maxSise: 1}\n").is_err());
        assert!(parse("auditLog: {path: a}\n").is_err(), "relative");
    }

    #[test]
    fn keys() {
        let c = parse("runtime: /usr/sbin/runc\npolicyDir: /p\nauditLog: /a.jsonl\nstateDir: /s\ndebugLog: /d.log\n")
            .unwrap();
        assert_eq!(c.runtime.as_deref(), Some(Path::new("/usr/sbin/runc")));
        assert_eq!(c.policy_dir, Path::new("/p"));
        assert_eq!(c.debug_log.as_deref(), Some(Path::new("/d.log")));
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let e = parse("policyDirectory: /p\n").unwrap_err().to_string();
        assert!(e.contains("unknown field `policyDirectory`"), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn relative_paths_and_wrong_types() {
        assert!(matches!(parse("runtime: runc\n"), Err(ConfigError::NotAbsolute { key: "runtime", .. })));
        assert!(matches!(parse("policyDir: [1]\n"), Err(ConfigError::Parse { .. })));
        assert!(matches!(parse("- a\n"), Err(ConfigError::Parse { .. })));
    }
}
