//! `hardrun verify`: the create path's signature check for one image, from a shell.
//! Exit 0 only when the image is trusted; 1 when it is not; 2 on usage errors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::config::NodeConfig;
use crate::policy::signature::SignatureSettings;
use crate::policy::{PolicySet, Strictness};
use crate::verify::policy::{applicable, read_trust_file, spellings};
use crate::verify::registry::RegistryClient;
use crate::verify::{verify, Authority, ImageRef, ReferenceRule, Requirement, SignedOn, VerifyRequest};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Check against this public key (PEM) instead of the policies
    #[arg(long, conflicts_with = "policy_dir")]
    key: Option<PathBuf>,
    /// Check against the imageSignature requirements of these policies (default: the
    /// node's policyDir); every requirement whose images match, in any mode
    #[arg(long)]
    policy_dir: Option<PathBuf>,
    /// The image: REGISTRY/REPO@sha256:…, or a tag (resolved once, now)
    image: String,
}

pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let config = NodeConfig::load_from_env()?;
    let image = ImageRef::parse(&args.image)?;
    let requirements = match &args.key {
        Some(key) => vec![Requirement {
            origin: "--key".into(),
            authorities: vec![Authority::Key {
                name: key.display().to_string(),
                pem: read_trust_file(key)?,
                rekor_key: None,
            }],
            count: 1,
            reference: ReferenceRule::SameRepository,
            signed_on: SignedOn::Index,
        }],
        None => {
            let dir = args.policy_dir.clone().unwrap_or_else(|| config.policy_dir.clone());
            policy_requirements(&PolicySet::load(&dir)?, &args.image)?
        }
    };
    if requirements.is_empty() {
        super::print_stdout(&format!("not trusted: {}: no imageSignature requirement applies to it\n", args.image))?;
        return Ok(ExitCode::from(1));
    }
    let client = RegistryClient::new(config.image_verification.access()?)?;
    let digest = client.resolve_digest(&image)?;
    let request = VerifyRequest {
        image: image.clone(),
        digest: digest.clone(),
        platform_digest: None,
        requirements,
        now: time::OffsetDateTime::now_utc().unix_timestamp(),
    };
    let verdict = verify(&request, &client);
    let shown = format!("{}@{digest}", image.name());
    match &verdict.outcome {
        Ok(signers) => {
            let signers: Vec<String> = signers.iter().map(|s| format!("signer: {s}\n")).collect();
            super::print_stdout(&format!("trusted: {shown}\n{}", signers.concat()))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            super::print_stdout(&format!("not trusted: {shown}: {} ({})\n", e, e.kind()))?;
            Ok(ExitCode::from(1))
        }
    }
}

/// Every policy's requirements for this image, whatever else the policy selects on.
fn policy_requirements(set: &PolicySet, image: &str) -> anyhow::Result<Vec<Requirement>> {
    let names = spellings(image);
    let merged = set
        .policies
        .iter()
        .filter(|p| {
            let globs = &p.spec.selector.images;
            globs.is_empty() || globs.iter().any(|g| names.iter().any(|n| g.matches(n)))
        })
        .map(|p| p.spec.image_signature.with_policy_mode(p.spec.mode))
        .fold(SignatureSettings::default(), Strictness::stricter);
    Ok(applicable(&merged, image)?.into_iter().map(|a| a.requirement).collect())
}
