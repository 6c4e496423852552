//! Offline Rekor checks: the bundle's signed entry timestamp (SET) must be Rekor's
//! signature, with the operator's Rekor key, over the canonical JSON of the entry; and
//! the entry must be about this payload and this signature.

use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sigstore::crypto::{CosignVerificationKey, Signature};

use super::error::VerifyError;
use super::trust::hex;

fn invalid(reason: impl Into<String>) -> VerifyError {
    VerifyError::BundleInvalid { reason: reason.into() }
}

/// cosign's `dev.sigstore.cosign/bundle` annotation.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Bundle {
    signed_entry_timestamp: String,
    payload: BundlePayload,
}

/// What Rekor signed: its canonical JSON (sorted keys, no spaces) is the SET's message.
#[derive(Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct BundlePayload {
    body: String,
    integrated_time: i64,
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

/// The parts of a Rekor `rekord`/`hashedrekord` body that bind it to a signature.
#[derive(Deserialize)]
struct Body {
    spec: BodySpec,
}
#[derive(Deserialize)]
struct BodySpec {
    data: BodyData,
    signature: BodySignature,
}
#[derive(Deserialize)]
struct BodyData {
    hash: BodyHash,
}
#[derive(Deserialize)]
struct BodyHash {
    algorithm: String,
    value: String,
}
#[derive(Deserialize)]
struct BodySignature {
    content: String,
}

/// Verifies the bundle and returns its integrated time (unix seconds).
pub fn verify_bundle(bundle_json: &str, rekor_pem: &str, payload: &[u8], signature: &[u8]) -> Result<i64, VerifyError> {
    let key = CosignVerificationKey::try_from_pem(rekor_pem.as_bytes())
        .map_err(|e| VerifyError::BadTrustSettings { reason: format!("Rekor public key: {e}") })?;
    let bundle: Bundle = serde_json::from_str(bundle_json).map_err(|e| invalid(format!("not a Rekor bundle: {e}")))?;
    if bundle.payload.log_id != log_id(rekor_pem)? {
        return Err(invalid(format!("log {} is not the trusted Rekor", bundle.payload.log_id)));
    }
    let canonical = serde_json_canonicalizer::to_vec(&bundle.payload).map_err(|e| invalid(e.to_string()))?;
    key.verify_signature(Signature::Base64Encoded(bundle.signed_entry_timestamp.as_bytes()), &canonical)
        .map_err(|_| invalid("signed entry timestamp does not verify with the Rekor key"))?;
    check_body(&bundle.payload.body, payload, signature)?;
    Ok(bundle.payload.integrated_time)
}

/// Rekor's log ID: sha256 of its public key's DER.
fn log_id(rekor_pem: &str) -> Result<String, VerifyError> {
    let block =
        pem::parse(rekor_pem).map_err(|e| VerifyError::BadTrustSettings { reason: format!("Rekor key: {e}") })?;
    Ok(hex(&Sha256::digest(block.contents())))
}

fn check_body(body_b64: &str, payload: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = b64.decode(body_b64).map_err(|e| invalid(format!("body: {e}")))?;
    let body: Body = serde_json::from_slice(&raw).map_err(|e| invalid(format!("body: {e}")))?;
    if body.spec.data.hash.algorithm != "sha256" || body.spec.data.hash.value != hex(&Sha256::digest(payload)) {
        return Err(invalid("the log entry is for another payload"));
    }
    let logged = b64.decode(&body.spec.signature.content).map_err(|e| invalid(format!("body signature: {e}")))?;
    if logged != signature {
        return Err(invalid("the log entry is for another signature"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REKOR: &str = "../shared/fixtures/cosign/containers-image/signature/fixtures/rekor.pub";

    fn rekor_pem() -> Option<String> {
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(REKOR)).ok()
    }

    #[test]
    fn hostile_bundles_are_bundle_errors() {
        let Some(pem) = rekor_pem() else { return };
        for bad in [
            "",
            "{",
            "[]",
            r#"{"SignedEntryTimestamp":"x","Payload":{"body":"@@","integratedTime":1,"logIndex":1,"logID":"00"}}"#,
            r#"{"SignedEntryTimestamp":"x","Payload":{"body":"e30=","integratedTime":"soon","logIndex":1,"logID":"00"}}"#,
        ] {
            let err = verify_bundle(bad, &pem, b"p", b"s").unwrap_err();
            assert_eq!(err.kind(), "bundle-invalid", "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_body_for_another_payload_or_signature_is_refused() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = |hash: &str, sig: &[u8]| {
            b64.encode(format!(
                r#"{{"spec":{{"data":{{"hash":{{"algorithm":"sha256","value":"{hash}"}}}},"signature":{{"content":"{}"}}}}}}"#,
                b64.encode(sig)
            ))
        };
        let good_hash = hex(&Sha256::digest(b"payload"));
        assert!(check_body(&body(&good_hash, b"sig"), b"payload", b"sig").is_ok());
        assert!(check_body(&body(&good_hash, b"sig"), b"payload2", b"sig").is_err());
        assert!(check_body(&body(&good_hash, b"other"), b"payload", b"sig").is_err());
        assert!(check_body(&b64.encode("{}"), b"payload", b"sig").is_err());
    }
}
