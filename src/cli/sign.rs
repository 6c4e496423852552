//! `hardrun sign`: cosign-compatible legacy signatures, pushed to the image's registry,
//! and `hardrun sign --generate-key` for a key pair in cosign's format.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use crate::config::NodeConfig;
use crate::verify::registry::RegistryClient;
use crate::verify::sign::{generate_key_pair, simple_signing_payload, Signer, PASSWORD_ENV};
use crate::verify::ImageRef;

#[derive(Debug, Args)]
pub struct SignArgs {
    /// cosign's encrypted private key (cosign.key); password from $COSIGN_PASSWORD
    #[arg(long, required_unless_present = "generate_key")]
    key: Option<PathBuf>,
    /// Write cosign.key and cosign.pub (ECDSA P-256) into --output-dir and exit
    #[arg(long, conflicts_with = "key")]
    generate_key: bool,
    /// Where --generate-key writes the pair
    #[arg(long, default_value = ".")]
    output_dir: PathBuf,
    /// The image to sign, pinned by digest: REGISTRY/REPO@sha256:… (a tag is resolved
    /// once, and the digest printed)
    #[arg(required_unless_present = "generate_key")]
    image: Option<String>,
}

pub fn run(args: &SignArgs) -> anyhow::Result<ExitCode> {
    let password = std::env::var(PASSWORD_ENV).unwrap_or_default();
    if args.generate_key {
        return generate(&args.output_dir, password.as_bytes());
    }
    let (Some(key), Some(image)) = (&args.key, &args.image) else { bail!("--key and IMAGE are required") };
    let pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    let signer = Signer::from_encrypted_pem(&pem, password.as_bytes())?;
    let image = ImageRef::parse(image)?;
    let config = NodeConfig::load_from_env()?;
    let client = RegistryClient::new(config.image_verification.access()?)?;
    let digest = client.resolve_digest(&image)?;
    let payload = simple_signing_payload(&image, &digest);
    let signature = signer.sign(&payload)?;
    client.push_signature(&image, &digest, &payload, &signature)?;
    super::print_stdout(&format!(
        "signed {}@{digest}\nsignature: {}:{}\n",
        image.name(),
        image.name(),
        ImageRef::signature_tag(&digest)
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn generate(dir: &Path, password: &[u8]) -> anyhow::Result<ExitCode> {
    let keys = generate_key_pair(password)?;
    let private = dir.join("cosign.key");
    let public = dir.join("cosign.pub");
    for p in [&private, &public] {
        if p.exists() {
            bail!("{} exists; not overwriting it", p.display());
        }
    }
    write_new(&private, keys.private_pem.as_bytes(), 0o600)?;
    write_new(&public, keys.public_pem.as_bytes(), 0o644)?;
    super::print_stdout(&format!(
        "private key written to {}\npublic key written to {}\n",
        private.display(),
        public.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
