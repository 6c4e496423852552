//! In-process benchmarks of the create path's parts (issue #2). The whole-process
//! comparison with bare runc is `scripts/bench_runtime.py`; see docs/performance.md.
//!
//! Kept short on purpose (small samples, ~2 s per bench) so `cargo bench --bench core`
//! finishes in about two minutes on a 2-core machine. For tighter figures, raise the
//! numbers on the command line: `cargo bench --bench core -- --measurement-time 10`.

use std::ffi::OsString;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::Value;

use hardrun::audit::Decision;
use hardrun::config::{AuditLogConfig, NodeConfig};
use hardrun::context::ContainerContext;
use hardrun::enforce::Host;
use hardrun::pipeline::{self, CreateRequest, Outcome};
use hardrun::policy::PolicySet;
use hardrun::spec::{view, SpecFile};

/// A containerd 1.6 CRI container spec (compact JSON, as containerd writes it): nginx
/// pod container, 21 Kubernetes services' env vars, 14 mounts, RuntimeDefault-style
/// seccomp, Docker's 14 capabilities (NET_RAW included) and noNewPrivileges false, so
/// the embedded baseline mutates it. Its namespaces are fresh ones: a pod container's
/// `/proc/<pause pid>/ns/*` paths cannot be reproduced here, and hardrun treats an
/// unreadable namespace path as the host's.
const CRI_CONFIG: &str = include_str!("fixtures/cri-config.json");

const TASK_DIR: &str = "/run/containerd/io.containerd.runtime.v2.task/k8s.io";
const CONTAINER_ID: &str = "9a7c5e3b1d0f2e4c6a8b0d2f4e6c8a0b2d4f6e8c0a2b4d6f8e0c2a4b6d8f0e2a";

/// What containerd-shim-runc-v2 (via go-runc) passes to runc for a CRI container.
fn containerd_create_argv() -> Vec<OsString> {
    let bundle = format!("{TASK_DIR}/{CONTAINER_ID}");
    [
        "--root",
        "/run/containerd/runc/k8s.io",
        "--log",
        &format!("{bundle}/log.json"),
        "--log-format",
        "json",
        "--systemd-cgroup",
        "create",
        "--bundle",
        &bundle,
        "--pid-file",
        &format!("{bundle}/init.pid"),
        CONTAINER_ID,
    ]
    .into_iter()
    .map(OsString::from)
    .collect()
}

fn cri_spec() -> Value {
    serde_json::from_str(CRI_CONFIG).expect("fixture is JSON")
}

fn cri_context(spec: &Value) -> ContainerContext {
    ContainerContext::from_parts(
        &view::annotations(spec),
        Some(CONTAINER_ID),
        None,
        Some(Path::new("/run/containerd/runc/k8s.io")),
    )
}

fn bench_argv(c: &mut Criterion) {
    let argv = containerd_create_argv();
    let parsed = hardrun::runtime::argv::parse(&argv).expect("containerd's argv parses");
    assert_eq!(parsed.subcommand(), Some("create"));
    c.bench_function("argv/parse containerd create", |b| b.iter(|| hardrun::runtime::argv::parse(black_box(&argv))));
}

fn bench_policy(c: &mut Criterion) {
    c.bench_function("policy/embedded baseline", |b| b.iter(|| PolicySet::embedded().expect("baseline loads")));
}

fn bench_evaluate(c: &mut Criterion) {
    let policies = PolicySet::embedded().expect("baseline loads");
    let spec = cri_spec();
    let context = cri_context(&spec);
    let host = Host::detect(Path::new("/sys"));
    let eval = pipeline::evaluate(&policies, &spec, context.clone(), &host).expect("evaluates");
    assert_eq!(eval.decision, Decision::Mutated, "the fixture must need mutation, or the bench measures less");
    c.bench_function("pipeline/evaluate cri config.json", |b| {
        b.iter_batched(
            || context.clone(),
            |ctx| pipeline::evaluate(black_box(&policies), black_box(&spec), ctx, &host).expect("evaluates"),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("enforce/host detect", |b| b.iter(|| Host::detect(black_box(Path::new("/sys")))));
    c.bench_function("spec/parse cri config.json", |b| {
        b.iter(|| SpecFile::parse(Path::new("config.json"), black_box(CRI_CONFIG.as_bytes())).expect("parses"))
    });
}

/// Temp bundles on the default temp dir (here: ext4, where fsync reaches the disk) and,
/// when present, on /dev/shm (tmpfs, like containerd's /run where real bundles live).
fn bundle_parents() -> Vec<(&'static str, PathBuf)> {
    let mut parents = vec![("tmp", std::env::temp_dir())];
    if Path::new("/dev/shm").is_dir() {
        parents.push(("shm", PathBuf::from("/dev/shm")));
    }
    parents
}

fn bench_spec_write(c: &mut Criterion) {
    let policies = PolicySet::embedded().expect("baseline loads");
    let spec = cri_spec();
    let host = Host::detect(Path::new("/sys"));
    let patch = pipeline::evaluate(&policies, &spec, cri_context(&spec), &host).expect("evaluates").plan.patch();
    for (name, parent) in bundle_parents() {
        let dir = tempfile::tempdir_in(&parent).expect("temp bundle");
        let config = dir.path().join("config.json");
        c.bench_function(&format!("spec/load+patch+write_atomic ({name})"), |b| {
            b.iter_batched(
                || std::fs::write(&config, CRI_CONFIG).expect("restore config.json"),
                |()| {
                    let file = SpecFile::load(dir.path()).expect("loads");
                    let mut value = file.value.clone();
                    patch.apply(&mut value).expect("applies");
                    file.write_atomic(&value).expect("writes");
                },
                BatchSize::PerIteration,
            )
        });
    }
}

/// Everything hardrun does for `create` before exec, in-process: policy load, spec load,
/// evaluate, audit line (flock + fdatasync), atomic write (fsync of file and directory).
/// Named by where the bundle and the audit log live: "tmp" is the default temp dir (here
/// ext4, where fsync reaches the disk), "shm" is /dev/shm (tmpfs). On a node the bundle
/// is on tmpfs (containerd's /run) and the audit log on disk (/var/log): "bundle shm,
/// audit tmp".
fn bench_create(c: &mut Criterion) {
    let parents = bundle_parents();
    let disk = &parents[0];
    let tmpfs = parents.get(1).unwrap_or(disk);
    for (bundle_at, audit_at) in [(disk, disk), (tmpfs, disk), (tmpfs, tmpfs)] {
        let bundle_dir = tempfile::tempdir_in(&bundle_at.1).expect("temp dir");
        let audit_dir = tempfile::tempdir_in(&audit_at.1).expect("temp dir");
        let bundle = bundle_dir.path().join("bundle");
        std::fs::create_dir(&bundle).expect("bundle dir");
        let config = NodeConfig {
            policy_dir: audit_dir.path().join("no-policies.d"),
            audit_log: AuditLogConfig { path: audit_dir.path().join("audit.jsonl"), ..AuditLogConfig::default() },
            state_dir: audit_dir.path().join("state"),
            ..NodeConfig::default()
        };
        let root = bundle_dir.path().join("runc/k8s.io");
        let req = CreateRequest {
            command: "create",
            bundle: &bundle,
            container_id: Some(CONTAINER_ID),
            runtime_class: None,
            runc_root: Some(&root),
        };
        let config_json = bundle.join("config.json");
        let name = format!("pipeline/create in-process (bundle {}, audit {})", bundle_at.0, audit_at.0);
        c.bench_function(&name, |b| {
            b.iter_batched(
                || std::fs::write(&config_json, CRI_CONFIG).expect("restore config.json"),
                |()| assert_eq!(pipeline::create(&config, &req), Outcome::Exec),
                BatchSize::PerIteration,
            )
        });
    }
}

fn short() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = core;
    config = short();
    targets = bench_argv, bench_policy, bench_evaluate, bench_spec_write, bench_create
}
criterion_main!(core);
