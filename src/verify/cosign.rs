//! cosign's legacy ("simple signing") signatures: a layer of the `sha256-<hex>.sig`
//! manifest whose blob is the payload JSON and whose annotations carry the signature
//! (and, keyless, the certificate, chain and Rekor bundle). Checks one signature
//! against one authority; pure: no I/O.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sigstore::crypto::{CosignVerificationKey, Signature};

use super::cert;
use super::error::{malformed, VerifyError};
use super::reference::ImageRef;
use super::trust::{hex, Authority, ReferenceRule};

pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
pub const ANNOTATION_CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
pub const ANNOTATION_CHAIN: &str = "dev.sigstore.cosign/chain";
pub const ANNOTATION_BUNDLE: &str = "dev.sigstore.cosign/bundle";
const PAYLOAD_TYPE: &str = "cosign container image signature";
/// Largest signature annotation accepted (an RSA-8192 signature is ~1.4 KiB base64).
const MAX_SIGNATURE_B64: usize = 4096;

/// One signature as found in the registry (or a fixture): raw, unverified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureCandidate {
    pub media_type: String,
    /// The exact blob bytes: what was signed.
    pub payload: Vec<u8>,
    /// Base64, as in the annotation.
    pub signature: String,
    pub certificate: Option<String>,
    pub chain: Option<String>,
    pub bundle: Option<String>,
}

/// Who signed, for the log and the audit record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Signer {
    /// `sha256:<hex>` of the public key's DER SubjectPublicKeyInfo.
    Key {
        fingerprint: String,
    },
    Certificate {
        subject: String,
        issuer: String,
    },
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Key { fingerprint } => write!(f, "key {fingerprint}"),
            Signer::Certificate { subject, issuer } if issuer.is_empty() => write!(f, "certificate {subject}"),
            Signer::Certificate { subject, issuer } => write!(f, "certificate {subject} (issuer {issuer})"),
        }
    }
}

/// What the signature must be about.
pub struct Expected<'a> {
    pub digest: &'a str,
    pub image: &'a ImageRef,
    pub reference: &'a ReferenceRule,
    /// Unix seconds: certificates of keyless authorities without Rekor are checked now.
    pub now: i64,
}

/// The simple-signing payload, as far as verification reads it.
#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}
#[derive(Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}
#[derive(Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}
#[derive(Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// Checks `sig` against `authority` and `expected`; on success, who signed.
pub fn check(sig: &SignatureCandidate, authority: &Authority, expected: &Expected<'_>) -> Result<Signer, VerifyError> {
    if sig.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
        return Err(malformed(format!("layer media type {:?} is not a cosign simple-signing payload", sig.media_type)));
    }
    let raw_sig = decode_signature(&sig.signature)?;
    let signer = match authority {
        Authority::Key { name, pem, rekor_key } => {
            let key = parse_key(pem)?;
            verify_raw(&key, &raw_sig, &sig.payload, name)?;
            if let Some(rekor) = rekor_key {
                let bundle = sig.bundle.as_deref().ok_or_else(bundle_missing)?;
                super::rekor::verify_bundle(bundle, rekor, &sig.payload, &raw_sig)?;
            }
            Signer::Key { fingerprint: key_fingerprint(pem)? }
        }
        Authority::Keyless { name, ca_pem, rekor_key, issuer, subject } => {
            let leaf_pem = sig.certificate.as_deref().ok_or_else(|| malformed("keyless: no certificate annotation"))?;
            let at = match rekor_key {
                Some(rekor) => {
                    let bundle = sig.bundle.as_deref().ok_or_else(bundle_missing)?;
                    super::rekor::verify_bundle(bundle, rekor, &sig.payload, &raw_sig)?
                }
                None => expected.now,
            };
            let leaf = cert::verify_leaf(leaf_pem, sig.chain.as_deref(), ca_pem, at)?;
            let id = &leaf.identity;
            let bad_regex = |e: regex::Error| VerifyError::BadTrustSettings { reason: e.to_string() };
            if !(issuer.matches(&id.issuer).map_err(bad_regex)? && subject.matches(&id.subject).map_err(bad_regex)?) {
                return Err(VerifyError::IdentityMismatch {
                    subject: id.subject.clone(),
                    issuer: id.issuer.clone(),
                    expected: format!("{subject} issued by {issuer}"),
                });
            }
            verify_raw(&leaf.key, &raw_sig, &sig.payload, name)?;
            Signer::Certificate { subject: id.subject.clone(), issuer: id.issuer.clone() }
        }
    };
    check_payload(&sig.payload, expected)?;
    Ok(signer)
}

fn bundle_missing() -> VerifyError {
    VerifyError::BundleInvalid { reason: "the signature carries no Rekor bundle".into() }
}

/// Base64 as cosign writes it; embedded line breaks (some PKI signers wrap) are
/// ignored, anything else outside the standard alphabet is an error.
fn decode_signature(text: &str) -> Result<Vec<u8>, VerifyError> {
    if text.len() > MAX_SIGNATURE_B64 {
        return Err(malformed("signature annotation is too long"));
    }
    let compact: String = text.chars().filter(|c| !matches!(c, '\n' | '\r')).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| malformed(format!("signature is not base64: {e}")))
}

fn verify_raw(key: &CosignVerificationKey, sig: &[u8], payload: &[u8], name: &str) -> Result<(), VerifyError> {
    key.verify_signature(Signature::Raw(sig), payload)
        .map_err(|_| VerifyError::SignatureInvalid { authority: name.to_owned() })
}

pub fn parse_key(pem: &str) -> Result<CosignVerificationKey, VerifyError> {
    let bad = |reason: String| VerifyError::BadTrustSettings { reason: format!("public key: {reason}") };
    let key = CosignVerificationKey::try_from_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
    check_ec_point(pem).map_err(bad)?;
    Ok(key)
}

/// sigstore's aws-lc backend parses an EC key's point only when it verifies, so a key
/// whose point is off its curve would fail later as `signature-invalid`; check it here.
fn check_ec_point(pem: &str) -> Result<(), String> {
    use x509_cert::der::Decode;
    use x509_cert::spki::{ObjectIdentifier, SubjectPublicKeyInfoOwned};
    const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
    let der = pem::parse(pem).map_err(|e| e.to_string())?;
    let spki = SubjectPublicKeyInfoOwned::from_der(der.contents()).map_err(|e| e.to_string())?;
    if spki.algorithm.oid != EC_PUBLIC_KEY {
        return Ok(());
    }
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let point = spki.subject_public_key.raw_bytes();
    let on_curve = match curve {
        Some(c) if c == P256 => p256::PublicKey::from_sec1_bytes(point).is_ok(),
        Some(c) if c == P384 => p384::PublicKey::from_sec1_bytes(point).is_ok(),
        _ => return Err("an EC key on a curve other than P-256 or P-384".into()),
    };
    if on_curve {
        Ok(())
    } else {
        Err("the EC point is not on its curve".into())
    }
}

/// `sha256:<hex>` of the key's DER SubjectPublicKeyInfo.
pub fn key_fingerprint(pem: &str) -> Result<String, VerifyError> {
    let block = pem::parse(pem).map_err(|e| VerifyError::BadTrustSettings { reason: format!("public key: {e}") })?;
    Ok(format!("sha256:{}", hex(&Sha256::digest(block.contents()))))
}

/// The payload is only read after its signature verified: its claims are the signer's.
fn check_payload(bytes: &[u8], expected: &Expected<'_>) -> Result<(), VerifyError> {
    let p: Payload = serde_json::from_slice(bytes).map_err(|e| malformed(format!("payload: {e}")))?;
    if p.critical.kind.to_ascii_lowercase() != PAYLOAD_TYPE {
        return Err(malformed(format!("payload type {:?}", p.critical.kind)));
    }
    if p.critical.image.docker_manifest_digest != expected.digest {
        return Err(VerifyError::DigestMismatch {
            signed: p.critical.image.docker_manifest_digest,
            expected: expected.digest.to_owned(),
        });
    }
    check_reference(&p.critical.identity.docker_reference, expected)
}

fn check_reference(signed: &str, expected: &Expected<'_>) -> Result<(), VerifyError> {
    let want = match expected.reference {
        ReferenceRule::Any => return Ok(()),
        ReferenceRule::SameRepository => expected.image.name(),
        ReferenceRule::Repository(r) => ImageRef::parse(r).map(|r| r.name()).unwrap_or_else(|_| r.clone()),
    };
    let mismatch = || VerifyError::ReferenceMismatch { signed: signed.to_owned(), expected: want.clone() };
    let got = ImageRef::parse(signed).map_err(|_| mismatch())?;
    if got.name() == want {
        Ok(())
    } else {
        Err(mismatch())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_are_not_keys_are_trust_setting_errors() {
        // A P-256 SPKI whose point is not on the curve, a truncated one, and not PEM.
        let off_curve = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n-----END PUBLIC KEY-----\n";
        let truncated = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n";
        for bad in [off_curve, truncated, "not a key"] {
            let err = parse_key(bad).err().map(|e| e.kind());
            assert_eq!(err, Some("bad-trust-settings"), "{bad:?}");
        }
    }

    #[test]
    fn signature_decoding_ignores_line_breaks_only() {
        assert_eq!(decode_signature("c2ln\nbmF0\r\ndXJl").unwrap(), b"signature");
        for bad in ["c2ln bmF0", "@@@@", "c2ln\tbmF0", &"A".repeat(MAX_SIGNATURE_B64 + 4)] {
            assert_eq!(decode_signature(bad).unwrap_err().kind(), "malformed-signature", "{bad:?}");
        }
    }
}
