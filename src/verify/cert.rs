//! Keyless signatures: the signing certificate must chain to the operator's CA at the
//! time the signature was made, and name the expected identity. Chain building is
//! rustls-webpki's (what sigstore itself uses); identity fields are read with x509-cert.

use rustls_pki_types::{CertificateDer, UnixTime};
use sigstore::crypto::CosignVerificationKey;
use webpki::{EndEntityCert, KeyUsage};
use x509_cert::der::{Decode, DecodePem};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

use super::error::{malformed, VerifyError};

/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER contents. Required when the leaf lists
/// extended key usages; a leaf without any is valid for all (as in Go, so as cosign).
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];
/// Fulcio's OIDC issuer extensions: v2 (a DER UTF8String) and v1 (raw bytes).
const OID_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const OID_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// Upper bound on certificates in one PEM bundle (annotation or CA file).
const MAX_CERTS: usize = 16;

static SIG_ALGS: &[&dyn rustls_pki_types::SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P256_SHA384,
    webpki::aws_lc_rs::ECDSA_P384_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::ED25519,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
];

/// The identity a certificate was issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// First email or URI subject alternative name.
    pub subject: String,
    /// Fulcio's OIDC issuer extension; empty when the certificate has none (own PKI).
    pub issuer: String,
}

/// A leaf certificate that chains to the trusted CA, with its key and identity.
pub struct TrustedLeaf {
    pub key: CosignVerificationKey,
    pub identity: CertIdentity,
}

/// Verifies `leaf_pem` (plus `chain_pem` intermediates from the signature) against the
/// anchors in `ca_pem`, at unix time `at`.
pub fn verify_leaf(leaf_pem: &str, chain_pem: Option<&str>, ca_pem: &str, at: i64) -> Result<TrustedLeaf, VerifyError> {
    let leaf = Certificate::from_pem(leaf_pem.trim().as_bytes()).map_err(|e| malformed(format!("certificate: {e}")))?;
    let leaf_der =
        pem_blocks(leaf_pem).map_err(malformed)?.into_iter().next().ok_or_else(|| malformed("no certificate"))?;
    let ca_der = pem_blocks(ca_pem).map_err(|e| VerifyError::BadTrustSettings { reason: format!("CA file: {e}") })?;
    let mut intermediates = match chain_pem {
        Some(c) => pem_blocks(c).map_err(|e| malformed(format!("certificate chain: {e}")))?,
        None => Vec::new(),
    };
    let mut anchors = Vec::new();
    for der in &ca_der {
        if is_self_signed(der) {
            let anchor = webpki::anchor_from_trusted_cert(der)
                .map_err(|e| VerifyError::BadTrustSettings { reason: format!("CA certificate: {e}") })?;
            anchors.push(anchor.to_owned());
        } else {
            intermediates.push(der.clone());
        }
    }
    if anchors.is_empty() {
        return Err(VerifyError::BadTrustSettings { reason: "the CA file has no self-signed root certificate".into() });
    }
    check_validity(&leaf, at)?;
    let ee = EndEntityCert::try_from(&leaf_der).map_err(|e| malformed(format!("certificate: {e}")))?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.max(0) as u64));
    ee.verify_for_usage(
        SIG_ALGS,
        &anchors,
        &intermediates,
        time,
        KeyUsage::required_if_present(EKU_CODE_SIGNING),
        None,
        None,
    )
    .map_err(|e| chain_error(e, &leaf, at))?;
    let key = CosignVerificationKey::try_from(leaf.tbs_certificate().subject_public_key_info())
        .map_err(|e| malformed(format!("certificate key: {e}")))?;
    Ok(TrustedLeaf { key, identity: identity(&leaf)? })
}

fn chain_error(e: webpki::Error, leaf: &Certificate, at: i64) -> VerifyError {
    match e {
        webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. } => expired(leaf, at),
        other => VerifyError::UntrustedChain { reason: format!("{other:?}") },
    }
}

/// The leaf's own window, checked first so an expired certificate is reported as such
/// rather than as whatever chain problem webpki meets first.
fn check_validity(leaf: &Certificate, at: i64) -> Result<(), VerifyError> {
    let v = leaf.tbs_certificate().validity();
    let (nb, na) = (v.not_before.to_unix_duration().as_secs() as i64, v.not_after.to_unix_duration().as_secs() as i64);
    if at < nb || at > na {
        return Err(expired(leaf, at));
    }
    Ok(())
}

fn expired(leaf: &Certificate, at: i64) -> VerifyError {
    let v = leaf.tbs_certificate().validity();
    VerifyError::CertificateExpired {
        at: unix_to_rfc3339(at),
        not_before: v.not_before.to_string(),
        not_after: v.not_after.to_string(),
    }
}

pub(crate) fn unix_to_rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}

fn is_self_signed(der: &CertificateDer<'_>) -> bool {
    Certificate::from_der(der).is_ok_and(|c| c.tbs_certificate().subject() == c.tbs_certificate().issuer())
}

fn pem_blocks(text: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let blocks = pem::parse_many(text.as_bytes()).map_err(|e| e.to_string())?;
    if blocks.len() > MAX_CERTS {
        return Err(format!("more than {MAX_CERTS} certificates"));
    }
    blocks
        .into_iter()
        .map(|b| match b.tag() {
            "CERTIFICATE" => Ok(CertificateDer::from(b.into_contents())),
            other => Err(format!("PEM block {other:?} is not a CERTIFICATE")),
        })
        .collect()
}

fn identity(cert: &Certificate) -> Result<CertIdentity, VerifyError> {
    let tbs = cert.tbs_certificate();
    let san = tbs
        .get_extension::<SubjectAltName>()
        .map_err(|e| malformed(format!("certificate SAN: {e}")))?
        .map(|(_, san)| san)
        .ok_or_else(|| malformed("certificate has no subject alternative name"))?;
    let subject = san
        .0
        .iter()
        .find_map(|n| match n {
            GeneralName::Rfc822Name(s) => Some(s.to_string()),
            GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
            _ => None,
        })
        .ok_or_else(|| malformed("certificate has no email or URI identity"))?;
    Ok(CertIdentity { subject, issuer: issuer_extension(cert)?.unwrap_or_default() })
}

fn issuer_extension(cert: &Certificate) -> Result<Option<String>, VerifyError> {
    let Some(exts) = cert.tbs_certificate().extensions() else { return Ok(None) };
    let find = |oid: &str| exts.iter().find(|e| e.extn_id.to_string() == oid).map(|e| e.extn_value.as_bytes());
    if let Some(v2) = find(OID_ISSUER_V2) {
        let s = x509_cert::der::asn1::Utf8StringRef::from_der(v2).map_err(|e| malformed(format!("issuer: {e}")))?;
        return Ok(Some(s.as_str().to_owned()));
    }
    find(OID_ISSUER_V1)
        .map(|v1| String::from_utf8(v1.to_vec()).map_err(|_| malformed("issuer extension is not UTF-8")))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_certificates_are_malformed_and_a_ca_file_without_roots_is_a_setting_error() {
        let ca_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/cosign/containers-image/signature/fixtures/fulcio_v1.crt.pem");
        let Ok(ca) = std::fs::read_to_string(ca_path) else { return };
        for bad in ["", "not pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"] {
            let err = verify_leaf(bad, None, &ca, 0).err().unwrap();
            assert_eq!(err.kind(), "malformed-signature", "{bad:?}: {err}");
        }
        let leaf_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fixtures/cosign/extracted/ci-keyless-fulcio-rekor/certificate.pem");
        let leaf = std::fs::read_to_string(leaf_path).unwrap();
        let err = verify_leaf(&leaf, None, "", 0).err().unwrap();
        assert_eq!(err.kind(), "bad-trust-settings", "{err}");
        // Too many certificates in a chain annotation.
        let many = leaf.repeat(MAX_CERTS + 1);
        assert_eq!(verify_leaf(&leaf, Some(&many), &ca, 0).err().unwrap().kind(), "malformed-signature");
    }
}
