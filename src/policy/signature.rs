//! `imageSignature:` in a policy: which images must carry cosign signatures, and by
//! whom. Pure data; verification is `crate::verify`'s.
//!
//! Merging keeps every matching policy's requirements (a union): each must pass on
//! its own, so no policy can drop a requirement another one made.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::glob::Glob;
use super::merge::{Mode, Strictness};

/// `imageSignature:` — a list of requirements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct SignatureSettings(pub Vec<SignatureRequirement>);

/// One requirement: images matching `images` must be signed by `count` of `authorities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignatureRequirement {
    /// Image globs (as in `match.images`), matched against the image reference the
    /// container names and its normalised form (`docker.io/library/busybox:1.36`).
    /// Absent: every image the policy's `match` selects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Glob>,
    /// Who may sign. Any one suffices unless `count` says more.
    pub authorities: Vec<AuthoritySpec>,
    /// How many distinct authorities must have signed (default 1).
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub count: usize,
    /// `false`: when the digest that runs cannot be known (containerd cannot be asked
    /// and the reference pins no digest), the requirement is skipped and the audit
    /// record says so. A signature that is checked and fails still denies.
    #[serde(default = "yes")]
    pub required: bool,
    /// Absent: the policy's `mode`. `audit` records a failed verification and starts
    /// the container anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// For a multi-platform image (an index digest): sign on the index (default), on
    /// the platform manifest containerd unpacked, or either.
    #[serde(default)]
    pub signed_on: SignedOn,
    /// What the payload's `docker-reference` must name (default: the image's own
    /// registry/repository).
    #[serde(default)]
    pub signed_reference: SignedReference,
    /// The registry/repository signatures name, when it is not the image's own
    /// (images signed under one name and mirrored to another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_repository: Option<String>,
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

/// A trusted signer: `key: {...}` or `keyless: {...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "AuthorityFields", into = "AuthorityFields")]
pub enum AuthoritySpec {
    /// A static public key (PEM: ECDSA P-256/P-384, RSA, Ed25519).
    Key(KeyAuthority),
    /// A certificate identity, checked offline against the operator's CA (Fulcio or
    /// own PKI) and, when given, Rekor's key.
    Keyless(KeylessAuthority),
}

/// How an authority is written: exactly one of `key` and `keyless`. (The YAML
/// library reads enums only from tags; a mapping with one key is what people write.)
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuthorityFields {
    /// A static public key (PEM: ECDSA P-256/P-384, RSA, Ed25519).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyAuthority>,
    /// A certificate identity, checked offline against the operator's CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessAuthority>,
}

impl TryFrom<AuthorityFields> for AuthoritySpec {
    type Error = String;
    fn try_from(f: AuthorityFields) -> Result<Self, String> {
        match (f.key, f.keyless) {
            (Some(k), None) => k.source_problem().map_or(Ok(AuthoritySpec::Key(k)), Err),
            (None, Some(k)) => k.identity_problem().map_or(Ok(AuthoritySpec::Keyless(k)), Err),
            _ => Err("an authority is exactly one of `key` and `keyless`".into()),
        }
    }
}

impl From<AuthoritySpec> for AuthorityFields {
    fn from(a: AuthoritySpec) -> Self {
        match a {
            AuthoritySpec::Key(k) => AuthorityFields { key: Some(k), keyless: None },
            AuthoritySpec::Keyless(k) => AuthorityFields { key: None, keyless: Some(k) },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyAuthority {
    /// The public key file (relative paths: to the policy file's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The public key inline (PEM). Exactly one of `file` and `pem`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
    /// When set, each signature must also carry a Rekor bundle signed by this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeylessAuthority {
    /// The CA certificates (PEM; the Fulcio root and intermediates, or an own PKI's).
    pub ca_file: PathBuf,
    /// Rekor's public key. Set (Fulcio): a Rekor bundle is required and the
    /// certificate must be valid at its integrated time. Absent (own PKI): the
    /// certificate must be valid now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekor_key_file: Option<PathBuf>,
    /// The OIDC issuer, exactly (`https://accounts.google.com`) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// ... or a regular expression that must match all of it. One of the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_regex: Option<String>,
    /// The certificate's email or URI identity, exactly ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// ... or a regular expression that must match all of it. One of the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_regex: Option<String>,
}

/// For an index (multi-platform) digest, which digest the signature may be on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SignedOn {
    /// The digest containerd resolved (the index for a multi-platform image).
    #[default]
    Index,
    /// The platform manifest containerd unpacked.
    Platform,
    /// Either of them.
    Either,
}

/// How the payload's `docker-reference` is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SignedReference {
    /// It must name the image's registry/repository (or `signedRepository`); tags
    /// are ignored.
    #[default]
    Repository,
    /// Not checked: the digest alone binds the signature to the image.
    Any,
}

impl SignatureSettings {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Makes key, CA and Rekor paths absolute (relative to the policy file's directory),
    /// and gives requirements without their own `mode` the policy's.
    pub fn resolve(&mut self, policy_dir: &Path) {
        let abs = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = policy_dir.join(&*p);
            }
        };
        for r in &mut self.0 {
            for a in &mut r.authorities {
                match a {
                    AuthoritySpec::Key(k) => {
                        k.file.iter_mut().for_each(abs);
                        k.rekor_key_file.iter_mut().for_each(abs);
                    }
                    AuthoritySpec::Keyless(k) => {
                        abs(&mut k.ca_file);
                        k.rekor_key_file.iter_mut().for_each(abs);
                    }
                }
            }
        }
    }

    /// The requirements as one policy contributes them: each with a concrete mode.
    pub fn with_policy_mode(&self, policy_mode: Mode) -> SignatureSettings {
        SignatureSettings(
            self.0
                .iter()
                .cloned()
                .map(|r| SignatureRequirement { mode: Some(r.mode.unwrap_or(policy_mode)), ..r })
                .collect(),
        )
    }

    /// The requirements whose `images` match `image` (any of its spellings).
    pub fn for_image<'a>(&'a self, spellings: &'a [String]) -> impl Iterator<Item = &'a SignatureRequirement> + 'a {
        self.0
            .iter()
            .filter(move |r| r.images.is_empty() || r.images.iter().any(|g| spellings.iter().any(|s| g.matches(s))))
    }
}

impl Strictness for SignatureSettings {
    fn stricter(mut self, other: Self) -> Self {
        for r in other.0 {
            if !self.0.contains(&r) {
                self.0.push(r);
            }
        }
        // A canonical order, so the merge is commutative as a value, not only as a set.
        self.0.sort_by_cached_key(|r| serde_json::to_string(r).unwrap_or_default());
        self
    }
    fn at_least_as_strict_as(&self, other: &Self) -> bool {
        other.0.iter().all(|r| self.0.contains(r))
    }
}

impl KeylessAuthority {
    /// What is wrong with the identity fields (exactly one of each pair), if anything.
    pub fn identity_problem(&self) -> Option<String> {
        let one = |exact: &Option<String>, re: &Option<String>, name: &str| match (exact, re) {
            (Some(_), Some(_)) => Some(format!("keyless: both `{name}` and `{name}Regex`; give one")),
            (None, None) => Some(format!("keyless: no `{name}` or `{name}Regex`")),
            _ => None,
        };
        one(&self.issuer, &self.issuer_regex, "issuer").or_else(|| one(&self.subject, &self.subject_regex, "subject"))
    }
}

impl KeyAuthority {
    pub fn source_problem(&self) -> Option<String> {
        match (&self.file, &self.pem) {
            (Some(_), Some(_)) => Some("key: both `file` and `pem`; give one".into()),
            (None, None) => Some("key: neither `file` nor `pem`".into()),
            _ => None,
        }
    }
}
