//! Image references the way containerd and docker normalise them: `busybox` is
//! `docker.io/library/busybox`, a first component with a `.` or `:` (or `localhost`)
//! is a registry. Only what verification needs: registry, repository, tag, digest.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Longest reference accepted (docker's limit on a name is 255; a digest adds ~72).
const MAX_REFERENCE_LEN: usize = 512;

#[derive(Debug, Error, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReferenceError {
    #[error("image reference {0:?} is empty or too long")]
    Length(String),
    #[error("image reference {0:?} has an invalid character or empty component")]
    Syntax(String),
    #[error("image reference {0:?} has a digest that is not sha256:<64 lowercase hex>")]
    Digest(String),
}

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        if text.is_empty() || text.len() > MAX_REFERENCE_LEN {
            return Err(ReferenceError::Length(text.into()));
        }
        let (name_tag, digest) = match text.split_once('@') {
            Some((n, d)) => (n, Some(check_digest(d).map_err(|_| ReferenceError::Digest(text.into()))?)),
            None => (text, None),
        };
        let (name, tag) = split_tag(name_tag);
        let (registry, repository) = split_registry(name);
        let valid =
            valid_registry(registry) && repository.split('/').all(valid_path_component) && tag.is_none_or(valid_tag);
        if !valid {
            return Err(ReferenceError::Syntax(text.into()));
        }
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_owned()
        };
        Ok(ImageRef { registry: registry.to_owned(), repository, tag: tag.map(str::to_owned), digest })
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository pinned to `digest`.
    pub fn with_digest(&self, digest: &str) -> ImageRef {
        ImageRef { digest: Some(digest.to_owned()), ..self.clone() }
    }

    /// cosign's signature tag for a digest: `sha256-<hex>.sig`.
    pub fn signature_tag(digest: &str) -> String {
        format!("{}.sig", digest.replacen(':', "-", 1))
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Accepts `sha256:<64 lowercase hex>` only: the one algorithm cosign signs.
pub fn check_digest(d: &str) -> Result<String, ReferenceError> {
    let hex = d.strip_prefix("sha256:").ok_or_else(|| ReferenceError::Digest(d.into()))?;
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(d.to_owned())
    } else {
        Err(ReferenceError::Digest(d.into()))
    }
}

/// A tag is after the last `:` that follows the last `/` (a `:` before it is a port).
fn split_tag(s: &str) -> (&str, Option<&str>) {
    let last_slash = s.rfind('/').map_or(0, |i| i + 1);
    match s[last_slash..].rfind(':') {
        Some(i) => (&s[..last_slash + i], Some(&s[last_slash + i + 1..])),
        None => (s, None),
    }
}

fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest),
        _ => (DEFAULT_REGISTRY, name),
    }
}

/// `host[:port]`: dot-separated labels of letters, digits and `-` (no IPv6 literals).
fn valid_registry(r: &str) -> bool {
    let (host, port) = r.split_once(':').unwrap_or((r, "0"));
    let label = |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    host.split('.').all(label) && !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

fn valid_path_component(c: &str) -> bool {
    !c.is_empty()
        && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && c.as_bytes()[0].is_ascii_alphanumeric()
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty() && t.len() <= 128 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_of_the_maximum_length_parses_and_one_longer_does_not() {
        let head = "registry.example/app@sha256:";
        let at_limit = format!("registry.example/{}:v1", "a".repeat(MAX_REFERENCE_LEN - "registry.example/:v1".len()));
        assert_eq!(at_limit.len(), MAX_REFERENCE_LEN);
        assert!(ImageRef::parse(&at_limit).is_ok(), "{at_limit}");
        let past = format!("registry.example/{}:v1", "a".repeat(MAX_REFERENCE_LEN + 1 - "registry.example/:v1".len()));
        assert!(ImageRef::parse(&past).is_err());
        assert!(ImageRef::parse(head).is_err());
    }

    const D: &str = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00";

    #[test]
    fn normalises_docker_hub_names() {
        let r = ImageRef::parse("busybox").unwrap();
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(ImageRef::parse("user/app:1").unwrap().name(), "docker.io/user/app");
    }

    #[test]
    fn port_is_not_a_tag() {
        let r = ImageRef::parse("127.0.0.1:5000/a/b:v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("127.0.0.1:5000", "a/b", Some("v1"))
        );
        let r = ImageRef::parse(&format!("localhost:5000/x@{D}")).unwrap();
        assert_eq!((r.tag, r.digest.as_deref()), (None, Some(D)));
    }

    #[test]
    fn rejects_hostile_references() {
        for bad in ["", "UPPER/case", "a//b", "a/b:", "a@sha256:abc", "a@md5:00", "a b", "../x", &"a".repeat(600)] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn signature_tag_is_cosigns() {
        assert_eq!(ImageRef::signature_tag(D), format!("sha256-{}.sig", &D[7..]));
    }
}
