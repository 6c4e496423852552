//! Why an image is not trusted. Each failure is its own variant so the runc log, the
//! audit record and tests can tell "no signature" from "wrong key" from "registry
//! down". Serializable: a sandboxed child (issue #9) sends it back over a pipe.

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum VerifyError {
    // ---- the image and its digest
    #[error("image reference {reference:?} is invalid: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("the image digest is unknown: containerd could not be asked ({reason}) and {reference:?} pins no digest")]
    DigestUnresolved { reference: String, reason: String },
    #[error("image {reference:?} pins digest {pinned} but containerd runs {resolved}")]
    PinnedDigestMismatch { reference: String, pinned: String, resolved: String },

    // ---- the registry
    #[error("registry {registry}: unreachable: {reason}")]
    RegistryUnreachable { registry: String, reason: String },
    #[error("registry {registry}: no response within {timeout_ms} ms")]
    RegistryTimeout { registry: String, timeout_ms: u64 },
    #[error("registry {registry}: response larger than the {limit}-byte cap")]
    ResponseTooLarge { registry: String, limit: u64 },
    #[error("registry {registry}: malformed response: {reason}")]
    MalformedResponse { registry: String, reason: String },
    #[error("registry {registry}: {status} for {what}")]
    RegistryStatus { registry: String, status: u16, what: String },

    // ---- the signatures
    #[error("no cosign signature for {digest} (looked for {location})")]
    NoSignature { digest: String, location: String },
    #[error("malformed signature: {reason}")]
    MalformedSignature { reason: String },
    #[error("signature does not verify with {authority}")]
    SignatureInvalid { authority: String },
    #[error("signature is for digest {signed}, but the image is {expected}")]
    DigestMismatch { signed: String, expected: String },
    #[error("signature is for {signed:?}, but the image is {expected:?}")]
    ReferenceMismatch { signed: String, expected: String },
    #[error("certificate not valid at {at} (valid {not_before} .. {not_after})")]
    CertificateExpired { at: String, not_before: String, not_after: String },
    #[error("certificate does not chain to the trusted CA: {reason}")]
    UntrustedChain { reason: String },
    #[error("certificate identity {subject:?} (issuer {issuer:?}) is not {expected}")]
    IdentityMismatch { subject: String, issuer: String, expected: String },
    #[error("Rekor bundle: {reason}")]
    BundleInvalid { reason: String },
    #[error("only {found} of the {required} required authorities signed")]
    NotEnoughSignatures { found: usize, required: usize },

    // ---- the operator's trust settings
    #[error("trust settings: {reason}")]
    BadTrustSettings { reason: String },

    // ---- the sandboxed child that does the network work and the parsing
    #[error("verifier: {reason}")]
    Verifier { reason: String },
}

impl VerifyError {
    /// A stable short name for logs, audit records and tests.
    pub fn kind(&self) -> &'static str {
        use VerifyError::*;
        match self {
            BadReference { .. } => "bad-reference",
            DigestUnresolved { .. } => "digest-unresolved",
            PinnedDigestMismatch { .. } => "pinned-digest-mismatch",
            RegistryUnreachable { .. } => "registry-unreachable",
            RegistryTimeout { .. } => "registry-timeout",
            ResponseTooLarge { .. } => "response-too-large",
            MalformedResponse { .. } => "malformed-response",
            RegistryStatus { .. } => "registry-status",
            NoSignature { .. } => "no-signature",
            MalformedSignature { .. } => "malformed-signature",
            SignatureInvalid { .. } => "signature-invalid",
            DigestMismatch { .. } => "digest-mismatch",
            ReferenceMismatch { .. } => "reference-mismatch",
            CertificateExpired { .. } => "certificate-expired",
            UntrustedChain { .. } => "untrusted-chain",
            IdentityMismatch { .. } => "identity-mismatch",
            BundleInvalid { .. } => "bundle-invalid",
            NotEnoughSignatures { .. } => "not-enough-signatures",
            BadTrustSettings { .. } => "bad-trust-settings",
            Verifier { .. } => "verifier-failed",
        }
    }

    /// How far a signature got before it failed; when every signature fails, the one
    /// that got furthest explains the denial best (a valid signature for another
    /// digest says more than an unparseable one).
    pub(crate) fn progress(&self) -> u8 {
        use VerifyError::*;
        match self {
            MalformedSignature { .. } => 1,
            SignatureInvalid { .. } | UntrustedChain { .. } => 2,
            CertificateExpired { .. } | IdentityMismatch { .. } | BundleInvalid { .. } => 3,
            DigestMismatch { .. } | ReferenceMismatch { .. } => 4,
            _ => 0,
        }
    }
}

pub(crate) fn malformed(reason: impl Into<String>) -> VerifyError {
    VerifyError::MalformedSignature { reason: reason.into() }
}
