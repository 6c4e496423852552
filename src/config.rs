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
    #[error("node config {path}: refusing a file others can change: {problem}")]
    Insecure { path: PathBuf, problem: String },
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
    /// The host ID range user namespaces are allocated from (docs/userns.md).
    pub user_namespaces: crate::userns::RangeConfig,
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
            user_namespaces: crate::userns::RangeConfig::default(),
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
        // After the read, so that a missing file stays "defaults". The order is safe:
        // when the file and its directories pass, no one but root could have changed
        // them in between.
        crate::fsutil::check_controlled_by_root(path)
            .map_err(|problem| ConfigError::Insecure { path: path.to_owned(), problem })?;
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
        if let Err(message) = self.user_namespaces.validate() {
            return Err(ConfigError::Parse { path: path.to_owned(), message: format!("userNamespaces: {message}") });
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
    fn a_config_others_can_change_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("config.yaml");
        std::fs::write(&f, "hookTimeout: 5\n").unwrap();
        assert_eq!(NodeConfig::load(&f).unwrap().hook_timeout, 5);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o664)).unwrap();
        let e = NodeConfig::load(&f).unwrap_err().to_string();
        assert!(e.contains("can be changed by its group (mode 0664)"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = NodeConfig::load(&f).unwrap_err().to_string();
        assert!(e.contains("can be changed by anyone (mode 0777)"), "{e}");
        // Through a symlink, the target is what counts.
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = d.path().join("link.yaml");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(NodeConfig::load(&link).unwrap_err().to_string().contains("mode 0666"));
    }

    #[test]
    fn a_config_of_exactly_the_limit_loads_and_one_byte_more_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("config.yaml");
        let head = "hookTimeout: 7\n#";
        let mut text = String::from(head);
        text.push_str(&"x".repeat(MAX_CONFIG_BYTES as usize - head.len()));
        std::fs::write(&f, &text).unwrap();
        assert_eq!(NodeConfig::load(&f).unwrap().hook_timeout, 7);
        text.push('x');
        std::fs::write(&f, &text).unwrap();
        assert!(matches!(NodeConfig::load(&f), Err(ConfigError::TooLarge { .. })));
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
    fn user_namespace_ranges() {
        let c = parse("userNamespaces: {hostRange: {start: 2000000000, size: 655360}, idsPerPod: 131072}\n").unwrap();
        assert_eq!(c.user_namespaces.host_range.start, 2_000_000_000);
        assert_eq!(c.user_namespaces.ids_per_pod, 131072);
        let c = parse("userNamespaces: {stateDir: /run/hardrun/userns}\n").unwrap();
        assert_eq!(c.user_namespaces.state_dir.as_deref(), Some(Path::new("/run/hardrun/userns")));
        let bad = [
            "userNamespaces: {hostRange: {start: 0, size: 65536}}",
            "userNamespaces: {hostRange: {start: 65535, size: 65536}}",
            "userNamespaces: {hostRange: {start: 100000000, size: 100000}}",
            "userNamespaces: {hostRange: {start: 4294901760, size: 65536}}",
            "userNamespaces: {hostRange: {start: 100000000, size: 0}}",
            "userNamespaces: {idsPerPod: 1000}",
            "userNamespaces: {idsPerPod: 0}",
            "userNamespaces: {hostRange: {start: 100000000}}",
            "userNamespaces: {hostRange: {start: -1, size: 65536}}",
            "userNamespaces: {hostRange: {start: 100000000, size: 65536}, idsPerPod: 131072}",
            "userNamespaces: {hostrange: {}}",
            "userNamespaces: {stateDir: run/userns}",
            "userNamespaces: {kubeletDir: var/lib/kubelet}",
        ];
        for b in bad {
            let e = parse(b).expect_err(b).to_string();
            assert!(e.contains("userNamespaces") || e.contains("unknown field") || e.contains("invalid"), "{b}: {e}");
        }
    }

    #[test]
    fn relative_paths_and_wrong_types() {
        assert!(matches!(parse("runtime: runc\n"), Err(ConfigError::NotAbsolute { key: "runtime", .. })));
        assert!(matches!(parse("policyDir: [1]\n"), Err(ConfigError::Parse { .. })));
        assert!(matches!(parse("- a\n"), Err(ConfigError::Parse { .. })));
    }
}
