//! `imageSignature` checks: a requirement that can never pass (HR018), and key, CA and
//! Rekor files or identity regexes the verifier would reject (HR009, HR007). Each is
//! an error: every container the requirement covers would be denied.

use super::*;
use crate::policy::load::Policy;
use crate::policy::signature::AuthoritySpec;
use crate::verify::policy::read_trust_file;

pub(super) fn signature_checks(p: &Policy, out: &mut Vec<Diagnostic>) {
    for (i, r) in p.spec.image_signature.0.iter().enumerate() {
        let at = format!("/spec/imageSignature/{i}");
        if r.authorities.is_empty() || r.count > r.authorities.len() || r.count == 0 {
            out.push(
                Diagnostic::new(
                    SIGNATURE_WITHOUT_AUTHORITY,
                    format!(
                        "`{}`: signature requirement {i} needs {} of {} authorities: no image can pass it",
                        p.name,
                        r.count,
                        r.authorities.len()
                    ),
                    Location::node(
                        &p.source,
                        &p.name,
                        &format!("{at}/{}", if r.count > 1 { "count" } else { "authorities" }),
                    ),
                )
                .help("name at least `count` keys or keyless identities under `authorities`"),
            );
        }
        for (j, a) in r.authorities.iter().enumerate() {
            authority_checks(p, &format!("{at}/authorities/{j}"), a, out);
        }
    }
}

fn authority_checks(p: &Policy, at: &str, a: &AuthoritySpec, out: &mut Vec<Diagnostic>) {
    let mut file = |path: &std::path::Path, what: &str, field: &str| {
        let problem = match read_trust_file(path) {
            Err(e) => Some(e.to_string()),
            Ok(text) if what == "CA" => pem::parse_many(text.as_bytes())
                .err()
                .map(|e| e.to_string())
                .or_else(|| (!text.contains("BEGIN CERTIFICATE")).then(|| "no PEM certificate in the file".to_owned())),
            Ok(text) => crate::verify::cosign::parse_key(&text).err().map(|e| e.to_string()),
        };
        if let Some(why) = problem {
            out.push(Diagnostic::new(
                REFERENCED_FILE,
                format!("`{}`: {what} file {}: {why}", p.name, path.display()),
                Location::node(&p.source, &p.name, &format!("{at}/{field}")),
            ));
        }
    };
    match a {
        AuthoritySpec::Key(k) => {
            if let Some(f) = &k.file {
                file(f, "public key", "key/file");
            }
            if let Some(f) = &k.rekor_key_file {
                file(f, "Rekor key", "key/rekorKeyFile");
            }
            if let Some(pem) = &k.pem {
                if let Err(e) = crate::verify::cosign::parse_key(pem) {
                    out.push(Diagnostic::new(
                        INVALID_VALUE,
                        format!("`{}`: inline key: {e}", p.name),
                        Location::node(&p.source, &p.name, &format!("{at}/key/pem")),
                    ));
                }
            }
        }
        AuthoritySpec::Keyless(k) => {
            file(&k.ca_file, "CA", "keyless/caFile");
            if let Some(f) = &k.rekor_key_file {
                file(f, "Rekor key", "keyless/rekorKeyFile");
            }
            for (field, re) in [("issuerRegex", &k.issuer_regex), ("subjectRegex", &k.subject_regex)] {
                if let Some(Err(e)) = re.as_ref().map(|r| regex::Regex::new(r)) {
                    out.push(Diagnostic::new(
                        MALFORMED_PATTERN,
                        format!("`{}`: {field}: {e}", p.name),
                        Location::node(&p.source, &p.name, &format!("{at}/keyless/{field}")),
                    ));
                }
            }
        }
    }
}
