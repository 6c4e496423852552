//! Step 4 of the create path: which signature requirements apply to the container's
//! image, the digest that actually runs, the (cached) verdict, and what goes into the
//! audit record and runc's log. Fails closed: a requirement that cannot be checked
//! denies, unless it says `required: false` and the digest is what cannot be known.

use std::path::Path;
use std::time::Duration;

use super::cache::VerdictCache;
use super::policy::{applicable, Applicable};
use super::reference::ImageRef;
use super::registry::{RegistryAccess, RegistryClient};
use super::settings::VerificationSettings;
use super::{verify, Signer, VerifyError, VerifyRequest};
use crate::audit::{Decision, ImageRef as AuditImage, Record, SignatureVerdict};
use crate::config::NodeConfig;
use crate::context::ContainerContext;
use crate::policy::signature::SignatureSettings;
use crate::policy::Mode;
use crate::sandbox;

/// The rule ID of a signature denial (what runc's log and the audit record name).
pub const RULE_SIGNATURE: &str = "image.signature";

/// Where the digest containerd runs comes from (containerd's API in production).
pub trait DigestResolver {
    /// The image name and target digest of container `id` in `namespace`.
    fn resolve(&self, namespace: &str, id: &str) -> Result<(String, String), String>;
}

/// What the signature step decided.
#[derive(Debug, Clone, Default)]
pub struct ImageCheck {
    pub image: AuditImage,
    pub signature: Option<SignatureVerdict>,
    /// An enforcing requirement failed: the one line for runc's log.
    pub denial: Option<String>,
    /// A `required: false` requirement was skipped because the digest is unknown.
    pub failed_open: bool,
}

/// The step as `create` runs it: the node's settings and containerd.
pub fn check_create(config: &NodeConfig, settings: &SignatureSettings, ctx: &ContainerContext) -> ImageCheck {
    if settings.is_empty() {
        return ImageCheck { image: AuditImage { requested: ctx.image.clone(), digest: None }, ..Default::default() };
    }
    let node = &config.image_verification;
    let resolver = super::containerd::Containerd::new(&node.containerd_socket);
    check_image(node, &config.state_dir, settings, ctx, Some(&resolver))
}

impl ImageCheck {
    /// Puts the image, the verdict and (for a denial) the decision into the record.
    pub fn apply_to(&self, record: &mut Record) {
        record.image = self.image.clone();
        record.signature = self.signature.clone();
        if let Some(line) = &self.denial {
            record.decision = Decision::Denied;
            record.reason = Some(match record.reason.take() {
                Some(other) => format!("{other}; {line}"),
                None => line.clone(),
            });
        } else if self.failed_open && record.decision == Decision::Allowed {
            record.decision = Decision::FailedOpen;
        }
    }
}

/// Runs the step for one container.
pub fn check_image(
    node: &VerificationSettings,
    state_dir: &Path,
    settings: &SignatureSettings,
    ctx: &ContainerContext,
    resolver: Option<&dyn DigestResolver>,
) -> ImageCheck {
    let mut out = ImageCheck { image: AuditImage { requested: ctx.image.clone(), digest: None }, ..Default::default() };
    if settings.is_empty() {
        return out;
    }
    let name = ctx.image.clone().unwrap_or_default();
    let reqs = match applicable(settings, &name) {
        Ok(r) if r.is_empty() => return out,
        Ok(r) => r,
        Err(e) => return deny(out, &name, None, &e, false),
    };
    let image = match ImageRef::parse(&name) {
        Ok(i) => i,
        Err(e) => {
            let err = VerifyError::BadReference { reference: name.clone(), reason: e.to_string() };
            return deny(out, &name, None, &err, false);
        }
    };
    let digest = match resolve_digest(&image, ctx, resolver) {
        Ok(d) => d,
        Err(e @ VerifyError::DigestUnresolved { .. }) if reqs.iter().all(|r| !r.required) => {
            out.failed_open = true;
            out.signature = Some(verdict_record(false, &[], false, Some(format!("skipped (required: false): {e}"))));
            return out;
        }
        Err(e) => return deny(out, &name, None, &e, false),
    };
    out.image.digest = Some(digest.clone());
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let cache = VerdictCache::new(state_dir, node.cache_ttl_seconds);
    let mut signers = Vec::new();
    let mut all_cached = true;
    let mut audit_failure = None;
    for mode in [Mode::Enforce, Mode::Audit] {
        let group: Vec<&Applicable> = reqs.iter().filter(|r| r.mode == mode).collect();
        if group.is_empty() {
            continue;
        }
        let requirements: Vec<_> = group.iter().map(|a| a.requirement.clone()).collect();
        let key = VerdictCache::key(&image.name(), &digest, &requirements);
        if let Some(s) = cache.get(&key, now) {
            signers.extend(s);
            continue;
        }
        all_cached = false;
        let request =
            VerifyRequest { image: image.clone(), digest: digest.clone(), platform_digest: None, requirements, now };
        match verify_online(node, &request) {
            Ok(s) => {
                if let Err(e) = cache.put(&key, &s, now) {
                    tracing::warn!(error = %e, "verdict cache not written");
                }
                signers.extend(s);
            }
            Err(e) if mode == Mode::Enforce => return deny(out, &name, Some(&digest), &e, all_cached),
            Err(e) => audit_failure = Some(e),
        }
    }
    let message = audit_failure.map(|e| format!("audit mode: {} ({})", e, e.kind()));
    out.signature = Some(verdict_record(message.is_none(), &signers, all_cached, message));
    out
}

/// The network work and every parse of registry bytes run in a confined child
/// (src/sandbox/): it may read only what name resolution and TLS need and connect only
/// to the registries' ports. A child that fails in any way is a verification failure.
fn verify_online(node: &VerificationSettings, request: &VerifyRequest) -> Result<Vec<Signer>, VerifyError> {
    let access = node.access()?;
    let conf = sandbox::Confinement {
        read: sandbox::network_read_paths(),
        connect_ports: registry_ports(&request.image.registry, &access),
        timeout: child_deadline(access.timeout_ms),
    };
    let work = move || RegistryClient::new(access).and_then(|client| verify(request, &client).outcome);
    match sandbox::run(&conf, work) {
        Ok((outcome, achieved)) => {
            tracing::debug!(landlock = %achieved.landlock, seccomp = achieved.seccomp, "verifier child confined");
            outcome
        }
        Err(e) => Err(VerifyError::Verifier { reason: e.to_string() }),
    }
}

/// Requests one verification may make (token, `.sig` manifest, payload blobs of a few
/// signatures, a mirror tried first): the child's deadline is this many timeouts.
const CHILD_DEADLINE_REQUESTS: u64 = 16;
/// The child's deadline never exceeds this, whatever the per-request timeout.
const MAX_CHILD_DEADLINE: Duration = Duration::from_secs(120);

fn child_deadline(timeout_ms: u64) -> Duration {
    Duration::from_millis(timeout_ms.max(1).saturating_mul(CHILD_DEADLINE_REQUESTS)).min(MAX_CHILD_DEADLINE)
}

/// The TCP ports the child may connect to: each host's explicit port, else 443 (or 80
/// when the host is insecure), and always 443 (token services and blob storage that
/// registries redirect to).
fn registry_ports(registry: &str, access: &RegistryAccess) -> Vec<u16> {
    let mut hosts: Vec<&str> =
        access.mirrors.get(registry).map(|m| m.iter().map(String::as_str).collect()).unwrap_or_default();
    hosts.push(registry);
    let mut ports = vec![443];
    for host in hosts {
        let default = if access.insecure.iter().any(|h| h == host) { 80 } else { 443 };
        ports.push(explicit_port(host).unwrap_or(default));
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The port of `host:port` or `[v6]:port`; `None` for a bare host.
fn explicit_port(host: &str) -> Option<u16> {
    let (name, port) = host.rsplit_once(':')?;
    let bracketed = name.starts_with('[') && name.ends_with(']');
    (bracketed || !name.contains(':')).then(|| port.parse().ok()).flatten()
}

/// containerd's answer when it can be asked; else the digest the reference pins.
fn resolve_digest(
    image: &ImageRef,
    ctx: &ContainerContext,
    resolver: Option<&dyn DigestResolver>,
) -> Result<String, VerifyError> {
    let asked = match (resolver, ctx.containerd_namespace.as_deref(), ctx.container_id.as_deref()) {
        (Some(r), Some(ns), Some(id)) => r.resolve(ns, id),
        (None, ..) => Err("no containerd client".to_owned()),
        _ => Err("no containerd namespace or container id".to_owned()),
    };
    match (asked, &image.digest) {
        (Ok((_, resolved)), Some(pinned)) if *pinned != resolved => {
            Err(VerifyError::PinnedDigestMismatch { reference: image.to_string(), pinned: pinned.clone(), resolved })
        }
        (Ok((_, resolved)), _) => Ok(resolved),
        (Err(_), Some(pinned)) => Ok(pinned.clone()),
        (Err(reason), None) => Err(VerifyError::DigestUnresolved { reference: image.to_string(), reason }),
    }
}

fn verdict_record(verified: bool, signers: &[Signer], cached: bool, message: Option<String>) -> SignatureVerdict {
    let signer = (!signers.is_empty()).then(|| signers.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "));
    SignatureVerdict { verified, signer, cached, message }
}

fn deny(mut out: ImageCheck, name: &str, digest: Option<&str>, e: &VerifyError, cached: bool) -> ImageCheck {
    let shown = match digest {
        Some(d) => format!("{name}@{d}"),
        None if name.is_empty() => "(no image name)".to_owned(),
        None => name.to_owned(),
    };
    let line = format!("{RULE_SIGNATURE}: {shown}: {e} ({})", e.kind());
    out.signature = Some(verdict_record(false, &[], cached, Some(line.clone())));
    out.denial = Some(line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_may_reach_each_registry_port_and_443() {
        assert_eq!(explicit_port("127.0.0.1:5000"), Some(5000));
        assert_eq!(explicit_port("[::1]:5001"), Some(5001));
        assert_eq!(explicit_port("registry.example"), None);
        assert_eq!(explicit_port("::1"), None);
        let access = RegistryAccess {
            insecure: vec!["plain.example".into()],
            mirrors: [("docker.io".to_owned(), vec!["mirror.example:8443".to_owned()])].into(),
            ..Default::default()
        };
        assert_eq!(registry_ports("docker.io", &access), [443, 8443]);
        assert_eq!(registry_ports("plain.example", &access), [80, 443]);
        assert_eq!(registry_ports("127.0.0.1:5000", &access), [443, 5000]);
    }

    #[test]
    fn the_child_deadline_is_bounded() {
        assert_eq!(child_deadline(1000), Duration::from_secs(16));
        assert_eq!(child_deadline(u64::MAX), MAX_CHILD_DEADLINE);
    }
}
