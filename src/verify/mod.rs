//! Image signature verification (cosign legacy signatures), step 4 of the create path.
//!
//! The shape is one pure function, [`verify`]: a serializable [`VerifyRequest`] (the
//! image, the digest containerd runs, the trust requirements with their key material
//! inline) and a [`SignatureSource`] that fetches signatures go in; a serializable
//! [`Verdict`] comes out. Everything that parses untrusted bytes (registry responses,
//! payloads, certificates, bundles) happens inside it, so it can move into a
//! sandboxed child that returns the verdict over a pipe.

pub mod cache;
pub mod cert;
pub mod containerd;
pub mod cosign;
pub mod error;
pub mod gate;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod rekor;
pub mod settings;
pub mod sign;
pub mod trust;

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

pub use cosign::{SignatureCandidate, Signer};
pub use error::VerifyError;
pub use reference::ImageRef;
pub use trust::{Authority, IdentityMatch, ReferenceRule, Requirement, SignedOn};

/// Where signatures come from: the registry, or fixtures in tests. A digest without
/// signatures is `Ok(vec![])`; anything that keeps the answer from being known (down,
/// timeout, oversized, malformed) is an error, and verification fails closed on it.
pub trait SignatureSource {
    fn signatures(&self, image: &ImageRef, digest: &str) -> Result<Vec<SignatureCandidate>, VerifyError>;

    /// When `digest` is an index, the digest of this host's platform manifest in it
    /// (`None`: not an index, or no entry for this platform).
    fn platform_digest(&self, _image: &ImageRef, _digest: &str) -> Result<Option<String>, VerifyError> {
        Ok(None)
    }
}

/// Everything one verification needs, with no paths left to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyRequest {
    /// The image as the container names it (registry and repository are where the
    /// signatures are looked up and what `docker-reference` is compared with).
    pub image: ImageRef,
    /// The digest containerd runs: a manifest, or an index for multi-platform images.
    pub digest: String,
    /// For an index: the platform manifest containerd unpacked, when known.
    pub platform_digest: Option<String>,
    pub requirements: Vec<Requirement>,
    /// Unix seconds, for certificates checked without a Rekor time.
    pub now: i64,
}

/// The outcome: trusted (with who signed), or the reason it is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub digest: String,
    pub outcome: Result<Vec<Signer>, VerifyError>,
}

impl Verdict {
    pub fn trusted(&self) -> bool {
        self.outcome.is_ok()
    }
}

/// Checks every requirement (all must pass); within one, `count` distinct authorities
/// must each have signed the digest with a payload that names it.
pub fn verify(req: &VerifyRequest, source: &dyn SignatureSource) -> Verdict {
    let needs_platform = req.requirements.iter().any(|r| r.signed_on != SignedOn::Index);
    let resolved;
    let req = if needs_platform && req.platform_digest.is_none() {
        match source.platform_digest(&req.image, &req.digest) {
            Ok(platform_digest) => {
                resolved = VerifyRequest { platform_digest, ..req.clone() };
                &resolved
            }
            Err(e) => return Verdict { digest: req.digest.clone(), outcome: Err(e) },
        }
    } else {
        req
    };
    let mut fetched: HashMap<String, Vec<SignatureCandidate>> = HashMap::new();
    let mut signers = Vec::new();
    for requirement in &req.requirements {
        match check_requirement(req, requirement, source, &mut fetched) {
            Ok(s) => signers.extend(s.into_iter().filter(|s| !signers.contains(s)).collect::<Vec<_>>()),
            Err(e) => return Verdict { digest: req.digest.clone(), outcome: Err(e) },
        }
    }
    Verdict { digest: req.digest.clone(), outcome: Ok(signers) }
}

fn digests_for(req: &VerifyRequest, on: SignedOn) -> Vec<&str> {
    let platform = req.platform_digest.as_deref();
    match on {
        SignedOn::Index => vec![req.digest.as_str()],
        SignedOn::Platform => vec![platform.unwrap_or(&req.digest)],
        SignedOn::Either => {
            let mut v = vec![req.digest.as_str()];
            v.extend(platform.filter(|p| *p != req.digest));
            v
        }
    }
}

fn check_requirement(
    req: &VerifyRequest,
    requirement: &Requirement,
    source: &dyn SignatureSource,
    fetched: &mut HashMap<String, Vec<SignatureCandidate>>,
) -> Result<Vec<Signer>, VerifyError> {
    let need = requirement.count.max(1);
    if requirement.authorities.len() < need {
        return Err(VerifyError::BadTrustSettings {
            reason: format!(
                "{}: count {need} but only {} authorities",
                requirement.origin,
                requirement.authorities.len()
            ),
        });
    }
    let mut satisfied = BTreeSet::new();
    let mut signers = Vec::new();
    let mut best: Option<VerifyError> = None;
    let mut seen_any = false;
    let mut looked = Vec::new();
    for digest in digests_for(req, requirement.signed_on) {
        if !fetched.contains_key(digest) {
            fetched.insert(digest.to_owned(), source.signatures(&req.image, digest)?);
        }
        looked.push(format!("{}:{}", req.image.name(), ImageRef::signature_tag(digest)));
        let expected = cosign::Expected { digest, image: &req.image, reference: &requirement.reference, now: req.now };
        for sig in &fetched[digest] {
            seen_any = true;
            for (i, authority) in requirement.authorities.iter().enumerate() {
                if satisfied.contains(&i) {
                    continue;
                }
                match cosign::check(sig, authority, &expected) {
                    Ok(signer) => {
                        satisfied.insert(i);
                        signers.push(signer);
                    }
                    Err(e @ VerifyError::BadTrustSettings { .. }) => return Err(e),
                    Err(e) => best = Some(further(best, e)),
                }
            }
        }
        if satisfied.len() >= need {
            return Ok(signers);
        }
    }
    Err(match (seen_any, satisfied.len(), best) {
        (false, _, _) => VerifyError::NoSignature { digest: req.digest.clone(), location: looked.join(", ") },
        (_, found @ 1.., _) => VerifyError::NotEnoughSignatures { found, required: need },
        (_, _, Some(e)) => e,
        (_, _, None) => VerifyError::NoSignature { digest: req.digest.clone(), location: looked.join(", ") },
    })
}

fn further(best: Option<VerifyError>, e: VerifyError) -> VerifyError {
    match best {
        Some(b) if b.progress() >= e.progress() => b,
        _ => e,
    }
}
