//! Image signature verification (issue #5): the create path's signature step with a
//! warm verdict cache, and a cold verification against a loopback docker-registry
//! (fetch the `.sig` manifest and payload blob, verify the ECDSA signature and payload).
//! docs/performance.md ("Image signatures") has the figures.
//!
//! Needs root-free `docker-registry`, `umoci` and `skopeo` (scripts/setup.sh); the
//! image is built and signed once per run.

#[path = "../tests/common/registry.rs"]
#[allow(dead_code)]
mod registry;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

use hardrun::context::ContainerContext;
use hardrun::policy::signature::SignatureSettings;
use hardrun::verify::gate::check_image;
use hardrun::verify::registry::{RegistryAccess, RegistryClient};
use hardrun::verify::settings::VerificationSettings;
use hardrun::verify::sign::{generate_key_pair, simple_signing_payload, Signer};
use hardrun::verify::{verify, ImageRef, VerifyRequest};

fn bench(c: &mut Criterion) {
    if !registry::tools_present() {
        return;
    }
    let reg = registry::Registry::start();
    let digest = reg.push_busybox("bench/app", "v1", "bench");
    let image = ImageRef::parse(&format!("{}/bench/app@{digest}", reg.host)).unwrap();
    let keys = generate_key_pair(b"pw").unwrap();
    let signer = Signer::from_encrypted_pem(keys.private_pem.as_bytes(), b"pw").unwrap();
    let access = RegistryAccess { insecure: vec![reg.host.clone()], timeout_ms: 5000, ..Default::default() };
    let client = RegistryClient::new(access).unwrap();
    let payload = simple_signing_payload(&image, &digest);
    client.push_signature(&image, &digest, &payload, &signer.sign(&payload).unwrap()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("cosign.pub");
    std::fs::write(&key_file, &keys.public_pem).unwrap();
    let settings: SignatureSettings = serde_yaml::from_str(&format!(
        "- images: ['127.0.0.1:*/**']\n  authorities: [{{key: {{file: {}}}}}]\n  mode: enforce\n",
        key_file.display()
    ))
    .unwrap();
    let node = VerificationSettings {
        insecure_registries: vec![reg.host.clone()],
        containerd_socket: dir.path().join("no-containerd.sock"),
        ..Default::default()
    };
    let ctx = ContainerContext { image: Some(image.to_string()), ..Default::default() };
    let state = dir.path().join("state");

    let first = check_image(&node, &state, &settings, &ctx, None);
    assert!(first.denial.is_none(), "{:?}", first.denial);
    c.bench_function("signature step, warm cache", |b| {
        b.iter(|| {
            let check = check_image(&node, &state, &settings, &ctx, None);
            assert!(check.signature.as_ref().is_some_and(|s| s.cached));
            black_box(check)
        })
    });

    let requirements =
        hardrun::verify::policy::applicable(&settings, &image.to_string()).unwrap().into_iter().map(|a| a.requirement);
    let request = VerifyRequest {
        image: image.clone(),
        digest: digest.clone(),
        platform_digest: None,
        requirements: requirements.collect(),
        now: 0,
    };
    let mut group = c.benchmark_group("cold");
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("verify against loopback registry (new client)", |b| {
        b.iter(|| {
            let client = RegistryClient::new(RegistryAccess {
                insecure: vec![reg.host.clone()],
                timeout_ms: 5000,
                ..Default::default()
            })
            .unwrap();
            let v = verify(&request, &client);
            assert!(v.trusted(), "{:?}", v.outcome);
            black_box(v)
        })
    });
    group.finish();

    // The lookup a create makes when containerd is there: containers.Get + images.Get
    // over the socket, on a fresh current-thread runtime (as each create does).
    let containerd = registry::Containerd::start();
    let ns = "bench";
    let tag = format!("{}/bench/app:v1", reg.host);
    containerd.ctr(ns, &["images", "pull", "--plain-http", &tag]);
    containerd.ctr(ns, &["containers", "create", &tag, "bench-ctr"]);
    let resolver = hardrun::verify::containerd::Containerd::new(&containerd.socket);
    use hardrun::verify::gate::DigestResolver;
    assert_eq!(resolver.resolve(ns, "bench-ctr").unwrap().1, digest);
    c.bench_function("containerd digest lookup", |b| b.iter(|| black_box(resolver.resolve(ns, "bench-ctr").unwrap())));
}

criterion_group!(benches, bench);
criterion_main!(benches);
