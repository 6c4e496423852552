//! The trust material one verification needs, resolved from policies and files into
//! plain serializable values (PEM text inline, regexes as text), so a request can be
//! handed whole to a sandboxed child that cannot read the operator's files.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Who may sign: one static key or one keyless identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Authority {
    /// A static public key (PEM SubjectPublicKeyInfo: ECDSA P-256/P-384, RSA, Ed25519).
    Key {
        /// For messages: the file it came from, or `inline`.
        name: String,
        pem: String,
        /// When set, each signature must also carry a Rekor bundle signed by this key.
        rekor_key: Option<String>,
    },
    /// A certificate issued by the operator's CA (Fulcio or own PKI) to an identity.
    Keyless {
        name: String,
        /// The CA certificates (PEM): self-signed ones are trust anchors, the others
        /// intermediates.
        ca_pem: String,
        /// When set (Fulcio), a Rekor bundle is required and the certificate must be
        /// valid at its integrated time; when absent (own PKI), valid now.
        rekor_key: Option<String>,
        issuer: IdentityMatch,
        subject: IdentityMatch,
    },
}

impl Authority {
    pub fn name(&self) -> &str {
        match self {
            Authority::Key { name, .. } | Authority::Keyless { name, .. } => name,
        }
    }
}

/// An exact string or a regular expression (anchored: it must match the whole value).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum IdentityMatch {
    Exact(String),
    Regex(String),
}

impl IdentityMatch {
    pub fn matches(&self, value: &str) -> Result<bool, regex::Error> {
        match self {
            IdentityMatch::Exact(s) => Ok(s == value),
            IdentityMatch::Regex(r) => Ok(regex::Regex::new(&format!("^(?:{r})$"))?.is_match(value)),
        }
    }
}

impl std::fmt::Display for IdentityMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdentityMatch::Exact(s) => write!(f, "{s:?}"),
            IdentityMatch::Regex(r) => write!(f, "/{r}/"),
        }
    }
}

pub use crate::policy::signature::SignedOn;

/// What the payload's `docker-reference` must name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReferenceRule {
    /// The same registry/repository as the image being run (tags are ignored).
    #[default]
    SameRepository,
    /// This registry/repository (images signed elsewhere and mirrored here).
    Repository(String),
    /// Not checked: the digest alone binds the signature to the image.
    Any,
}

/// One trust requirement: one matching policy's `imageSignature` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    /// Where it came from (policy name and image glob), for messages.
    pub origin: String,
    /// Any `count` of these must have signed.
    pub authorities: Vec<Authority>,
    pub count: usize,
    pub reference: ReferenceRule,
    pub signed_on: SignedOn,
}

impl Requirement {
    /// A stable hash of the trust material: part of the verdict cache key, so editing
    /// a key or identity invalidates verdicts made under the old one.
    pub fn fingerprint(reqs: &[Requirement]) -> String {
        let json = serde_json::to_vec(reqs).expect("requirements serialize");
        hex(&Sha256::digest(json))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
