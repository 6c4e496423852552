//! cosign-compatible signing of the legacy format: a simple-signing payload for
//! `repository@digest`, signed with a key in cosign's encrypted private key format
//! (`cosign.key`, password from `COSIGN_PASSWORD`), ready to push as a layer of the
//! `sha256-<hex>.sig` manifest.

use base64::Engine;
use sigstore::crypto::signing_key::SigStoreKeyPair;
use sigstore::crypto::{SigStoreSigner, SigningScheme};
use thiserror::Error;
use zeroize::Zeroizing;

use super::reference::ImageRef;

/// The environment variable cosign reads the key password from.
pub const PASSWORD_ENV: &str = "COSIGN_PASSWORD";

#[derive(Debug, Error)]
pub enum SignError {
    #[error("private key: {0} (wrong password, or not a cosign/sigstore private key)")]
    Key(String),
    #[error("signing: {0}")]
    Sign(String),
}

/// A freshly generated ECDSA P-256 pair, as cosign's `generate-key-pair` writes it.
pub struct GeneratedKeys {
    pub private_pem: Zeroizing<String>,
    pub public_pem: String,
}

pub fn generate_key_pair(password: &[u8]) -> Result<GeneratedKeys, SignError> {
    let signer = SigningScheme::ECDSA_P256_SHA256_ASN1.create_signer().map_err(|e| SignError::Key(e.to_string()))?;
    let pair = signer.to_sigstore_keypair().map_err(|e| SignError::Key(e.to_string()))?;
    Ok(GeneratedKeys {
        private_pem: pair.private_key_to_encrypted_pem(password).map_err(|e| SignError::Key(e.to_string()))?,
        public_pem: pair.public_key_to_pem().map_err(|e| SignError::Key(e.to_string()))?,
    })
}

/// A signer from cosign's encrypted private key PEM.
pub struct Signer {
    inner: SigStoreSigner,
    pub public_pem: String,
}

impl Signer {
    pub fn from_encrypted_pem(pem: &[u8], password: &[u8]) -> Result<Self, SignError> {
        let pair = SigStoreKeyPair::from_encrypted_pem(pem, password).map_err(|e| SignError::Key(e.to_string()))?;
        let public_pem = pair.public_key_to_pem().map_err(|e| SignError::Key(e.to_string()))?;
        let inner = match &pair {
            SigStoreKeyPair::ECDSA(k) => k.to_sigstore_signer(),
            SigStoreKeyPair::ED25519(_) => pair.to_sigstore_signer(&SigningScheme::ED25519),
            SigStoreKeyPair::RSA(_) => pair.to_sigstore_signer(&SigningScheme::RSA_PKCS1_SHA256(0)),
        }
        .map_err(|e| SignError::Key(e.to_string()))?;
        Ok(Signer { inner, public_pem })
    }

    /// Signs the exact payload bytes; returns the base64 signature annotation.
    pub fn sign(&self, payload: &[u8]) -> Result<String, SignError> {
        let raw = self.inner.sign(payload).map_err(|e| SignError::Sign(e.to_string()))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

/// cosign's payload for `image` (its registry/repository) at `digest`, byte for byte
/// as cosign writes it.
pub fn simple_signing_payload(image: &ImageRef, digest: &str) -> Vec<u8> {
    let reference = serde_json::to_string(&image.name()).expect("string serializes");
    let digest = serde_json::to_string(digest).expect("string serializes");
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":{reference}}},"image":{{"docker-manifest-digest":{digest}}},"type":"cosign container image signature"}},"optional":null}}"#
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::cosign::{check, Expected, SignatureCandidate, SIMPLE_SIGNING_MEDIA_TYPE};
    use crate::verify::trust::{Authority, ReferenceRule};

    const D: &str = "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00";

    fn verify_with(public_pem: &str, payload: &[u8], sig: String, image: &ImageRef) -> Result<(), String> {
        let candidate = SignatureCandidate {
            media_type: SIMPLE_SIGNING_MEDIA_TYPE.into(),
            payload: payload.to_vec(),
            signature: sig,
            certificate: None,
            chain: None,
            bundle: None,
        };
        let authority = Authority::Key { name: "k".into(), pem: public_pem.into(), rekor_key: None };
        let expected = Expected { digest: D, image, reference: &ReferenceRule::SameRepository, now: 0 };
        check(&candidate, &authority, &expected).map(|_| ()).map_err(|e| e.to_string())
    }

    #[test]
    fn generated_keys_sign_what_the_verifier_accepts_and_need_the_password() {
        let keys = generate_key_pair(b"pw").unwrap();
        assert!(keys.private_pem.contains("ENCRYPTED SIGSTORE PRIVATE KEY"), "{}", &keys.private_pem[..40]);
        assert!(Signer::from_encrypted_pem(keys.private_pem.as_bytes(), b"wrong").is_err());
        let signer = Signer::from_encrypted_pem(keys.private_pem.as_bytes(), b"pw").unwrap();
        let image = ImageRef::parse("127.0.0.1:5000/app:v1").unwrap();
        let payload = simple_signing_payload(&image, D);
        verify_with(&keys.public_pem, &payload, signer.sign(&payload).unwrap(), &image).unwrap();
    }

    /// Static keys of every supported kind verify (P-256, P-384, Ed25519, RSA).
    #[test]
    fn every_static_key_kind_verifies() {
        let image = ImageRef::parse("example.com/a/b").unwrap();
        let payload = simple_signing_payload(&image, D);
        for scheme in [
            SigningScheme::ECDSA_P256_SHA256_ASN1,
            SigningScheme::ECDSA_P384_SHA384_ASN1,
            SigningScheme::ED25519,
            SigningScheme::RSA_PKCS1_SHA256(2048),
        ] {
            // (Unencrypted: scrypt is the slow part, and the encrypted path is tested above.)
            let inner = scheme.create_signer().unwrap();
            let public_pem = inner.to_sigstore_keypair().unwrap().public_key_to_pem().unwrap();
            let s = Signer { inner, public_pem };
            verify_with(&s.public_pem, &payload, s.sign(&payload).unwrap(), &image)
                .unwrap_or_else(|e| panic!("{scheme}: {e}"));
            // and a flipped payload byte does not
            let mut bad = payload.clone();
            bad[10] ^= 1;
            assert!(verify_with(&s.public_pem, &bad, s.sign(&payload).unwrap(), &image).is_err(), "{scheme}");
        }
    }

    #[test]
    fn payload_is_cosigns_byte_layout() {
        let image = ImageRef::parse("192.168.64.2:5000/cosign-signed-single-sample").unwrap();
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/cosign/extracted/ci-key-cosign-valid/payload.json");
        if let Ok(want) = std::fs::read(fixture) {
            assert_eq!(simple_signing_payload(&image, D), want);
        }
    }
}
