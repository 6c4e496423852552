//! hardrun's verifier against signatures other tools made: every case in
//! ../shared/fixtures/cosign/cases.json (cosign CLI, skopeo, sigstore-rs test data)
//! must give its expected verdict. The fixtures stay where they are (not copied).

use std::path::{Path, PathBuf};

use hardrun::verify::cosign::{SignatureCandidate, SIMPLE_SIGNING_MEDIA_TYPE};
use hardrun::verify::{
    verify, Authority, IdentityMatch, ImageRef, ReferenceRule, Requirement, SignatureSource, SignedOn, Verdict,
    VerifyError, VerifyRequest,
};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/cosign")
}

fn read(case: &Value, field: &str) -> Option<String> {
    case[field].as_str().map(|p| std::fs::read_to_string(fixtures().join(p)).unwrap_or_else(|e| panic!("{p}: {e}")))
}

fn read_bytes(case: &Value, field: &str) -> Option<Vec<u8>> {
    case[field].as_str().map(|p| std::fs::read(fixtures().join(p)).unwrap())
}

/// Serves one fixture signature for whatever digest is asked.
struct OneSignature(SignatureCandidate);

impl SignatureSource for OneSignature {
    fn signatures(&self, _: &ImageRef, _: &str) -> Result<Vec<SignatureCandidate>, VerifyError> {
        Ok(vec![self.0.clone()])
    }
}

fn candidate(case: &Value) -> SignatureCandidate {
    SignatureCandidate {
        media_type: case["payload_media_type"].as_str().unwrap_or(SIMPLE_SIGNING_MEDIA_TYPE).to_owned(),
        payload: read_bytes(case, "payload").unwrap(),
        signature: read(case, "signature_b64").unwrap(),
        certificate: read(case, "certificate"),
        chain: read(case, "chain"),
        bundle: read(case, "rekor_bundle"),
    }
}

fn authority(case: &Value) -> Authority {
    let rekor_key = read(case, "rekor_public_key");
    if let Some(pem) = read(case, "public_key") {
        return Authority::Key { name: case["public_key"].as_str().unwrap().into(), pem, rekor_key };
    }
    let ca_pem = [read(case, "fulcio_root"), read(case, "pki_root"), read(case, "pki_intermediates")]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n");
    let subject = match case["cert_san_email"].as_str() {
        Some(s) => IdentityMatch::Exact(s.into()),
        None => IdentityMatch::Regex(".+@redhat\\.com".into()),
    };
    let issuer = match case["cert_oidc_issuer"].as_str() {
        Some(s) => IdentityMatch::Exact(s.into()),
        None => IdentityMatch::Regex(".*".into()),
    };
    Authority::Keyless { name: "ca".into(), ca_pem, rekor_key, issuer, subject }
}

/// The digest the image "runs": the shipped manifest's, else the signed one.
fn running_digest(case: &Value) -> String {
    match read_bytes(case, "manifest") {
        Some(m) => format!("sha256:{}", hex(&Sha256::digest(m))),
        None => case["payload_docker_manifest_digest"].as_str().unwrap_or(&format!("sha256:{}", "0".repeat(64))).into(),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn run_case(case: &Value, reference: ReferenceRule) -> Verdict {
    let image = case["payload_docker_reference"].as_str().unwrap_or("example.com/unknown");
    let request = VerifyRequest {
        image: ImageRef::parse(image).unwrap(),
        digest: running_digest(case),
        platform_digest: None,
        requirements: vec![Requirement {
            origin: case["id"].as_str().unwrap().into(),
            authorities: vec![authority(case)],
            count: 1,
            reference,
            signed_on: SignedOn::Index,
        }],
        // A PKI certificate without Rekor is checked now; the fixtures' run to 2052.
        now: 1_764_000_000,
    };
    verify(&request, &OneSignature(candidate(case)))
}

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("cases.json")).expect("../shared/fixtures/cosign/cases.json");
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["cases"].as_array().unwrap().clone()
}

#[test]
fn every_fixture_case_gives_its_expected_verdict() {
    let all = cases();
    assert!(all.len() >= 22, "cases.json shrank: {}", all.len());
    let mut wrong = Vec::new();
    for case in &all {
        let verdict = run_case(case, ReferenceRule::SameRepository);
        let want_valid = case["expected"] == "valid";
        if verdict.trusted() != want_valid {
            wrong.push(format!("{}: expected {}, got {:?}", case["id"], case["expected"], verdict.outcome));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Each invalid case fails for its own reason, not by accident.
#[test]
fn invalid_cases_fail_for_the_expected_reason() {
    let expect = [
        ("ci-neg-unknown-key", "signature-invalid"),
        ("ci-neg-wrong-key-cosign2", "signature-invalid"),
        ("ci-neg-modified-manifest", "digest-mismatch"),
        ("ci-neg-manifest-digest-error", "digest-mismatch"),
        ("ci-neg-other-attachment", "malformed-signature"),
        ("ci-neg-key-rekor-with-cosign-pub", "signature-invalid"),
        ("rs-neg-wrong-key", "signature-invalid"),
        ("rs-neg-wrong-message", "malformed-signature"),
        ("rs-neg-bad-base64", "malformed-signature"),
        ("derived-neg-modified-digest", "signature-invalid"),
        ("derived-neg-reserialized", "signature-invalid"),
        ("derived-neg-modified-reference", "signature-invalid"),
    ];
    let all = cases();
    for (id, kind) in expect {
        let case = all.iter().find(|c| c["id"] == id).unwrap_or_else(|| panic!("no case {id}"));
        let err = run_case(case, ReferenceRule::SameRepository).outcome.unwrap_err();
        assert_eq!(err.kind(), kind, "{id}: {err}");
    }
}

#[test]
fn valid_cases_name_their_signer() {
    for case in cases().iter().filter(|c| c["expected"] == "valid") {
        let signers = run_case(case, ReferenceRule::SameRepository).outcome.unwrap();
        let shown = signers.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",");
        match case["cert_san_email"].as_str() {
            Some(email) => assert!(shown.contains(email), "{}: {shown}", case["id"]),
            None if case["public_key"].is_string() => assert!(shown.starts_with("key sha256:"), "{shown}"),
            None => assert!(shown.starts_with("certificate "), "{shown}"),
        }
    }
}

#[test]
fn a_valid_signature_for_another_repository_is_a_reference_mismatch() {
    let case = cases().into_iter().find(|c| c["id"] == "ci-key-cosign-valid").unwrap();
    let err = run_case(&case, ReferenceRule::Repository("192.168.64.2:5000/other".into())).outcome.unwrap_err();
    assert_eq!(err.kind(), "reference-mismatch", "{err}");
    assert!(run_case(&case, ReferenceRule::Any).trusted());
}

#[test]
fn keyless_identity_must_match() {
    let case = cases().into_iter().find(|c| c["id"] == "ci-keyless-fulcio-rekor").unwrap();
    let mut c = case.clone();
    c["cert_san_email"] = Value::from("someone-else@redhat.com");
    let err = run_case(&c, ReferenceRule::SameRepository).outcome.unwrap_err();
    assert_eq!(err.kind(), "identity-mismatch", "{err}");
    let mut c = case.clone();
    c["cert_oidc_issuer"] = Value::from("https://accounts.google.com");
    assert_eq!(run_case(&c, ReferenceRule::SameRepository).outcome.unwrap_err().kind(), "identity-mismatch");
}

#[test]
fn keyless_without_the_rekor_time_is_an_expired_certificate() {
    // Without a Rekor key the certificate is checked now; Fulcio certificates live 10 minutes.
    let mut case = cases().into_iter().find(|c| c["id"] == "ci-keyless-fulcio-rekor").unwrap();
    case.as_object_mut().unwrap().remove("rekor_public_key");
    let err = run_case(&case, ReferenceRule::SameRepository).outcome.unwrap_err();
    assert_eq!(err.kind(), "certificate-expired", "{err}");
}

#[test]
fn keyless_against_another_ca_is_an_untrusted_chain() {
    let mut case = cases().into_iter().find(|c| c["id"] == "ci-keyless-fulcio-rekor").unwrap();
    case["fulcio_root"] = Value::from("containers-image/signature/fixtures/pki_root_crts.pem");
    let err = run_case(&case, ReferenceRule::SameRepository).outcome.unwrap_err();
    assert_eq!(err.kind(), "untrusted-chain", "{err}");
}

#[test]
fn a_bundle_from_another_rekor_or_entry_is_rejected() {
    let mut case = cases().into_iter().find(|c| c["id"] == "ci-key-cosign2-rekor").unwrap();
    case["rekor_public_key"] = Value::from("containers-image/signature/fixtures/cosign.pub");
    assert_eq!(run_case(&case, ReferenceRule::SameRepository).outcome.unwrap_err().kind(), "bundle-invalid");
    // The keyless case's bundle is for another signature and payload.
    let mut case = cases().into_iter().find(|c| c["id"] == "ci-key-cosign2-rekor").unwrap();
    case["rekor_bundle"] = Value::from("extracted/ci-keyless-fulcio-rekor/rekor-bundle.json");
    assert_eq!(run_case(&case, ReferenceRule::SameRepository).outcome.unwrap_err().kind(), "bundle-invalid");
}

/// A request for the fixtures' sample image at `digest`, trusting `case`'s key alone.
fn sample_request(case: &Value, digest: String) -> VerifyRequest {
    VerifyRequest {
        image: ImageRef::parse("192.168.64.2:5000/cosign-signed-single-sample").unwrap(),
        digest,
        platform_digest: None,
        requirements: vec![Requirement {
            origin: "t".into(),
            authorities: vec![authority(case)],
            count: 1,
            reference: ReferenceRule::SameRepository,
            signed_on: SignedOn::Index,
        }],
        now: 0,
    }
}

#[test]
fn no_signature_and_count() {
    struct Nothing;
    impl SignatureSource for Nothing {
        fn signatures(&self, _: &ImageRef, _: &str) -> Result<Vec<SignatureCandidate>, VerifyError> {
            Ok(vec![])
        }
    }
    let case = cases().into_iter().find(|c| c["id"] == "ci-key-cosign-valid").unwrap();
    let mut request = sample_request(&case, running_digest(&case));
    assert_eq!(verify(&request, &Nothing).outcome.unwrap_err().kind(), "no-signature");
    // Two authorities required, one signed.
    let other = Authority::Key {
        name: "cosign2".into(),
        pem: std::fs::read_to_string(fixtures().join("containers-image/signature/fixtures/cosign2.pub")).unwrap(),
        rekor_key: None,
    };
    request.requirements[0].authorities.push(other);
    request.requirements[0].count = 2;
    let err = verify(&request, &OneSignature(candidate(&case))).outcome.unwrap_err();
    assert_eq!(err.kind(), "not-enough-signatures", "{err}");
    request.requirements[0].count = 1;
    assert!(verify(&request, &OneSignature(candidate(&case))).trusted());
}

/// An index digest whose platform manifest is what was signed: only `signedOn:
/// platform` or `either` accept it.
#[test]
fn signed_on_selects_index_or_platform_digest() {
    struct IndexOf(SignatureCandidate, String);
    impl SignatureSource for IndexOf {
        fn signatures(&self, _: &ImageRef, _: &str) -> Result<Vec<SignatureCandidate>, VerifyError> {
            Ok(vec![self.0.clone()])
        }
        fn platform_digest(&self, _: &ImageRef, _: &str) -> Result<Option<String>, VerifyError> {
            Ok(Some(self.1.clone()))
        }
    }
    let case = cases().into_iter().find(|c| c["id"] == "ci-key-cosign-valid").unwrap();
    let source = IndexOf(candidate(&case), running_digest(&case));
    let mut request = sample_request(&case, format!("sha256:{}", "9".repeat(64)));
    assert_eq!(verify(&request, &source).outcome.unwrap_err().kind(), "digest-mismatch");
    for on in [SignedOn::Platform, SignedOn::Either] {
        request.requirements[0].signed_on = on;
        assert!(verify(&request, &source).trusted(), "{on:?}");
    }
}
