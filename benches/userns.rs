//! Per-pod user namespaces (issue #4): what hardrun adds to a create and a delete.
//! `cargo bench --bench userns`; figures in docs/performance.md.
//!
//! * `allocate`: lock, read a table of 100 pods, check each is in use, write the
//!   table atomically (2 fsyncs), on tmpfs and on the disk. The block is given back
//!   untimed after each iteration, so every iteration sees the same table.
//! * `lookup`: an app container finding its pod's block (unlocked read).
//! * `release-miss`: a `delete` of a container that owns no block (every app
//!   container, every non-pod container): one unlocked read.
//! * `spec-edit`: the pure part: decide, build the patch, apply it to a CRI spec.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::Value;

use hardrun::context::{ContainerContext, ContainerType};
use hardrun::enforce::userns;
use hardrun::policy::{RootfsStrategy, UserNamespaceSettings, UsernsMode};
use hardrun::userns::{AllocRequest, Allocation, RangeConfig, Store};

const CRI_CONFIG: &str = include_str!("fixtures/cri-config.json");
const PODS: usize = 100;

/// A store under `base` holding `PODS` allocations whose owners all exist in `root`.
fn store_with_pods(base: &Path, root: &Path) -> Store {
    let store = Store::new(&base.join("state"));
    let range = RangeConfig::default();
    for i in 0..PODS {
        let owner = format!("pod-{i:04}-{}", "f".repeat(56));
        std::fs::create_dir_all(root.join(&owner)).unwrap();
        let req = AllocRequest { owner: &owner, root, now: "2026-11-25T00:00:00Z".into() };
        store.allocate(&req, &range, &|_| true).unwrap();
    }
    store
}

fn bench_allocate(c: &mut Criterion, name: &str, base: &Path) {
    let dir = tempfile::tempdir_in(base).unwrap();
    let root = dir.path().join("runc-root");
    let store = store_with_pods(dir.path(), &root);
    let range = RangeConfig::default();
    let liveness = hardrun::userns::HostLiveness::default();
    let in_use = |a: &Allocation| liveness.in_use(a);
    c.bench_function(&format!("userns/allocate 100 pods ({name})"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let req = AllocRequest { owner: "new-sandbox", root: &root, now: "2026-11-25T00:00:00Z".into() };
                let t = Instant::now();
                black_box(store.allocate(&req, &range, &in_use).unwrap());
                total += t.elapsed();
                store.forget("new-sandbox").unwrap();
            }
            total
        })
    });
    c.bench_function(&format!("userns/lookup 100 pods ({name})"), |b| {
        b.iter(|| black_box(store.lookup("pod-0050-ffffffffffffffffffffffffffffffffffffffffffffffffffffffff").unwrap()))
    });
    c.bench_function(&format!("userns/release-miss 100 pods ({name})"), |b| {
        b.iter(|| black_box(store.release("not-an-owner").unwrap()))
    });
    let empty = Store::new(&dir.path().join("no-state"));
    c.bench_function(&format!("userns/release-miss no table ({name})"), |b| {
        b.iter(|| black_box(empty.release("not-an-owner").unwrap()))
    });
}

fn bench_spec_edit(c: &mut Criterion) {
    let spec: Value = serde_json::from_str(CRI_CONFIG).unwrap();
    let settings =
        UserNamespaceSettings { mode: UsernsMode::Pod, rootfs: Some(RootfsStrategy::ReadOnly), ..Default::default() };
    let ctx = ContainerContext {
        container_id: Some("sb".into()),
        container_type: Some(ContainerType::Sandbox),
        sandbox_id: Some("sb".into()),
        ..Default::default()
    };
    c.bench_function("userns/spec-edit (plan + patch + apply)", |b| {
        b.iter(|| {
            let (_, intent) = userns::plan(&settings, black_box(&spec), &ctx);
            assert!(intent.is_some());
            let f = userns::new_namespace(&spec, 1 << 30, 65536);
            let mut out = spec.clone();
            f.patch.apply(&mut out).unwrap();
            black_box(out)
        })
    });
}

fn benches(c: &mut Criterion) {
    bench_spec_edit(c);
    bench_allocate(c, "tmpfs", Path::new("/dev/shm"));
    bench_allocate(c, "disk", Path::new("/var/tmp"));
}

criterion_group! {
    name = group;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500));
    targets = benches
}
criterion_main!(group);
