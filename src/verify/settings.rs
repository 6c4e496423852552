//! `imageVerification:` in the node config: how registries and containerd are
//! reached, and how long a successful verdict is reused.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::VerifyError;
use super::registry::{read_auth_file, RegistryAccess, DEFAULT_TIMEOUT};

pub const DEFAULT_CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
/// A successful verdict is reused this long (seconds) unless the node says otherwise.
pub const DEFAULT_CACHE_TTL_SECONDS: u64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct VerificationSettings {
    /// Registries (`host[:port]`) spoken to over plain HTTP. Nothing else is.
    pub insecure_registries: Vec<String>,
    /// A docker-style `config.json` with `auths` (`auth` or `username`/`password`).
    pub auth_file: Option<PathBuf>,
    /// Per registry, mirrors tried in order before it.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// Milliseconds one registry request (connect, headers, body) may take.
    pub timeout_ms: u64,
    /// containerd's socket, asked for the digest a container's image resolves to.
    pub containerd_socket: PathBuf,
    /// Seconds a successful verdict is reused (0: never cached).
    pub cache_ttl_seconds: u64,
}

impl Default for VerificationSettings {
    fn default() -> Self {
        VerificationSettings {
            insecure_registries: Vec::new(),
            auth_file: None,
            mirrors: BTreeMap::new(),
            timeout_ms: DEFAULT_TIMEOUT.as_millis() as u64,
            containerd_socket: PathBuf::from(DEFAULT_CONTAINERD_SOCKET),
            cache_ttl_seconds: DEFAULT_CACHE_TTL_SECONDS,
        }
    }
}

impl VerificationSettings {
    /// Registry access with the auth file read.
    pub fn access(&self) -> Result<RegistryAccess, VerifyError> {
        let credentials = match &self.auth_file {
            Some(path) => read_auth_file(path)?,
            None => BTreeMap::new(),
        };
        Ok(RegistryAccess {
            insecure: self.insecure_registries.clone(),
            mirrors: self.mirrors.clone(),
            credentials,
            timeout_ms: self.timeout_ms,
        })
    }
}
