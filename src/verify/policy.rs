//! From merged policy settings to verification requirements: which `imageSignature`
//! entries apply to an image, with their key and CA files read (bounded) into the
//! inline trust material a [`super::VerifyRequest`] carries.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::VerifyError;
use super::reference::ImageRef;
use super::trust::{Authority, IdentityMatch, ReferenceRule, Requirement};
use crate::fsutil::{self, ReadError};
use crate::policy::signature::{AuthoritySpec, SignatureRequirement, SignatureSettings, SignedReference};
use crate::policy::Mode;

/// Largest key, CA or Rekor key file read (a CA bundle of a few certificates).
pub const MAX_TRUST_FILE_BYTES: u64 = 256 * 1024;

/// One applicable requirement with how its failure is handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applicable {
    pub requirement: Requirement,
    pub mode: Mode,
    /// `false`: skipped when the digest that runs cannot be known.
    pub required: bool,
}

/// The spellings an image glob is matched against: as written, and normalised.
pub fn spellings(image: &str) -> Vec<String> {
    let mut v = vec![image.to_owned()];
    if let Ok(r) = ImageRef::parse(image) {
        let norm = r.to_string();
        if norm != image {
            v.push(norm);
        }
    }
    v
}

/// The requirements of `settings` that apply to `image`, resolved.
pub fn applicable(settings: &SignatureSettings, image: &str) -> Result<Vec<Applicable>, VerifyError> {
    let spellings = spellings(image);
    settings.for_image(&spellings).map(resolve).collect()
}

fn resolve(r: &SignatureRequirement) -> Result<Applicable, VerifyError> {
    let origin = if r.images.is_empty() {
        "imageSignature (all images)".to_owned()
    } else {
        format!("imageSignature [{}]", r.images.iter().map(|g| g.as_str()).collect::<Vec<_>>().join(", "))
    };
    let authorities = r.authorities.iter().map(authority).collect::<Result<Vec<_>, _>>()?;
    let reference = match (r.signed_reference, &r.signed_repository) {
        (SignedReference::Any, _) => ReferenceRule::Any,
        (SignedReference::Repository, Some(repo)) => ReferenceRule::Repository(repo.clone()),
        (SignedReference::Repository, None) => ReferenceRule::SameRepository,
    };
    Ok(Applicable {
        requirement: Requirement { origin, authorities, count: r.count, reference, signed_on: r.signed_on },
        mode: r.mode.unwrap_or(Mode::Enforce),
        required: r.required,
    })
}

fn authority(a: &AuthoritySpec) -> Result<Authority, VerifyError> {
    match a {
        AuthoritySpec::Key(k) => {
            let (name, pem) = match (&k.file, &k.pem) {
                (Some(f), _) => (f.display().to_string(), read_trust_file(f)?),
                (None, Some(p)) => ("inline key".to_owned(), p.clone()),
                (None, None) => return Err(bad("key: neither `file` nor `pem`")),
            };
            let rekor_key = k.rekor_key_file.as_deref().map(read_trust_file).transpose()?;
            Ok(Authority::Key { name, pem, rekor_key })
        }
        AuthoritySpec::Keyless(k) => {
            let pick = |exact: &Option<String>, re: &Option<String>| match (exact, re) {
                (Some(e), None) => Ok(IdentityMatch::Exact(e.clone())),
                (None, Some(r)) => Ok(IdentityMatch::Regex(r.clone())),
                _ => Err(bad(k.identity_problem().unwrap_or_default())),
            };
            Ok(Authority::Keyless {
                name: format!("CA {}", k.ca_file.display()),
                ca_pem: read_trust_file(&k.ca_file)?,
                rekor_key: k.rekor_key_file.as_deref().map(read_trust_file).transpose()?,
                issuer: pick(&k.issuer, &k.issuer_regex)?,
                subject: pick(&k.subject, &k.subject_regex)?,
            })
        }
    }
}

fn bad(reason: impl Into<String>) -> VerifyError {
    VerifyError::BadTrustSettings { reason: reason.into() }
}

/// Reads a key or CA file: bounded, regular files only, UTF-8 (PEM).
pub fn read_trust_file(path: &Path) -> Result<String, VerifyError> {
    let bytes = fsutil::read_capped(path, MAX_TRUST_FILE_BYTES).map_err(|e| match e {
        ReadError::TooLarge => bad(format!("{}: larger than {MAX_TRUST_FILE_BYTES} bytes", path.display())),
        ReadError::Io(e) => bad(format!("{}: {e}", path.display())),
    })?;
    String::from_utf8(bytes).map_err(|_| bad(format!("{}: not PEM text", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> SignatureSettings {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn requirements_match_by_image_glob_on_either_spelling() {
        let s = settings("- images: ['docker.io/library/*']\n  authorities: [{key: {pem: x}}]\n");
        assert_eq!(applicable(&s, "busybox:1").unwrap().len(), 1);
        assert_eq!(applicable(&s, "quay.io/x/busybox").unwrap().len(), 0);
    }

    #[test]
    fn an_authority_is_one_of_key_or_keyless_and_each_is_well_formed() {
        for bad in [
            "authorities: [{}]",
            "authorities: [{key: {pem: x}, keyless: {caFile: /c, issuer: i, subject: s}}]",
            "authorities: [{key: {}}]",
            "authorities: [{key: {file: /k, pem: x}}]",
            "authorities: [{keyless: {caFile: /c, subject: s}}]",
            "authorities: [{keyless: {caFile: /c, issuer: i, issuerRegex: i, subject: s}}]",
            "authorities: [{key: {file: /k, extra: 1}}]",
        ] {
            assert!(serde_yaml::from_str::<SignatureRequirement>(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn missing_key_file_is_a_trust_settings_error() {
        let s = settings("- authorities: [{key: {file: /nonexistent/k.pub}}]\n");
        assert_eq!(applicable(&s, "busybox").unwrap_err().kind(), "bad-trust-settings");
    }

    #[test]
    fn mode_defaults_to_the_policys() {
        let s = settings("- authorities: [{key: {pem: x}}]\n").with_policy_mode(Mode::Audit);
        assert_eq!(applicable(&s, "busybox").unwrap()[0].mode, Mode::Audit);
    }
}
