//! Reading a large audit log back (issue #7): 1,000,000 generated records, chained
//! like the writer chains them, filtered, summarised and verified by streaming.
//! docs/performance.md ("Audit review") has the figures.
//!
//! The log is generated once per run (about 1.6 GB, a few seconds). Set
//! `HARDRUN_AUDIT_BENCH_RECORDS` for another size, and `HARDRUN_AUDIT_BENCH_LOG` to a
//! path to keep the generated log there (for timing the CLI with hyperfine).
//! Each iteration reads the whole file, so samples are few: `cargo bench --bench audit`
//! takes about two minutes on a 2-core machine.

use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;

use hardrun::audit::reader::LogSet;
use hardrun::audit::review::{self, Filter, Summary};
use hardrun::audit::verify::{self, Options};
use hardrun::audit::{line_hash, Decision, PolicyRef, Record, GENESIS};
use hardrun::enforce::Finding;
use hardrun::policy::Glob;
use hardrun::spec::{Patch, PatchOp};

const DEFAULT_RECORDS: usize = 1_000_000;

/// The baseline's clamp of containerd's default set: everything but NET_RAW.
fn baseline_caps() -> Vec<&'static str> {
    hardrun::policy::CONTAINERD_DEFAULT_CAPS.iter().copied().filter(|c| *c != "CAP_NET_RAW").collect()
}

/// Record `i`: shaped like a CRI create under the baseline policy. 70% mutated, 20%
/// allowed, 5% denied, 5% audit-only; 100 namespaces `ns-0…ns-99`, and `x` for
/// every 97th record (about 500 of them denied); 40 images.
fn record(i: usize) -> Record {
    let mut r = Record::new("create");
    r.container_id = Some(format!("{:064x}", i as u128 * 0x9e37_79b9_7f4a_7c15));
    r.bundle =
        Some(format!("/run/containerd/io.containerd.runtime.v2.task/k8s.io/{}", r.container_id.as_ref().unwrap()));
    let ns = if i.is_multiple_of(97) { "x".to_owned() } else { format!("ns-{}", i % 100) };
    r.context.namespace = Some(ns);
    r.context.pod_name = Some(format!("web-{}-7d9c5b8f6-{:05}", i % 100, i % 99_991));
    r.context.pod_uid = Some(format!("{:032x}", i * 7919));
    r.context.container_name = Some("app".to_owned());
    r.context.sandbox_id = Some(format!("{:064x}", i as u128 * 31));
    r.context.containerd_namespace = Some("k8s.io".to_owned());
    r.context.container_type = Some(hardrun::context::ContainerType::Container);
    r.image.requested = Some(format!("registry.example/team/app-{}:1.{}", i % 40, i % 7));
    r.image.digest = Some(format!("sha256:{:064x}", i % 40));
    r.policies.push(PolicyRef {
        name: "baseline".into(),
        hash: format!("sha256:{}", "ab".repeat(32)),
        source: "/etc/hardrun/policies.d/baseline.yaml".into(),
    });
    r.decision = match i % 20 {
        0..=13 => Decision::Mutated,
        14..=17 => Decision::Allowed,
        18 => Decision::Denied,
        _ => Decision::AuditOnly,
    };
    match r.decision {
        Decision::Denied => {
            r.findings.push(Finding::deny("host.privileged", "privileged containers are not allowed"));
            r.reason = Some("host.privileged: privileged containers are not allowed".into());
        }
        Decision::Mutated | Decision::AuditOnly => {
            let caps = baseline_caps();
            let patch = Patch(vec![
                PatchOp::replace("/process/capabilities/bounding", json!(caps)),
                PatchOp::replace("/process/capabilities/effective", json!(caps)),
                PatchOp::replace("/process/capabilities/permitted", json!(caps)),
                PatchOp::replace("/process/noNewPrivileges", json!(true)),
            ]);
            r.findings.push(Finding::mutate(
                "caps.clamped",
                "dropped CAP_NET_RAW (not in the allow-list)",
                Patch::default(),
            ));
            r.findings.push(Finding::mutate("process.no-new-privileges", "set noNewPrivileges", Patch::default()));
            r.patch = patch;
        }
        _ => {}
    }
    r.duration_us = 350 + (i % 200) as u64;
    r
}

/// Writes `n` chained records to `path`.
fn generate(path: &Path, n: usize) {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create bench log"));
    let mut prev = GENESIS.to_owned();
    for i in 0..n {
        let mut r = record(i);
        r.seq = i as u64 + 1;
        r.prev = prev;
        let line = serde_json::to_vec(&r).expect("encode");
        prev = line_hash(&line);
        out.write_all(&line).and_then(|()| out.write_all(b"\n")).expect("write bench log");
    }
    out.flush().expect("flush bench log");
}

fn bench_log() -> (Option<tempfile::TempDir>, PathBuf) {
    // `cargo test --all-targets` runs benches once as tests (no `--bench`): a small log
    // proves the code path without writing gigabytes.
    let default = if std::env::args().any(|a| a == "--bench") { DEFAULT_RECORDS } else { 1_000 };
    let n = std::env::var("HARDRUN_AUDIT_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (dir, path) = match std::env::var_os("HARDRUN_AUDIT_BENCH_LOG") {
        Some(p) => (None, PathBuf::from(p)),
        None => {
            let d = tempfile::tempdir().expect("temp dir");
            let p = d.path().join("audit.jsonl");
            (Some(d), p)
        }
    };
    let started = std::time::Instant::now();
    generate(&path, n);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    eprintln!("generated {n} records, {:.0} MB, in {:.1?}: {}", size as f64 / 1e6, started.elapsed(), path.display());
    (dir, path)
}

fn count(path: &Path, filter: &review::Matcher) -> usize {
    let mut n = 0;
    let mut lines = LogSet::open(&[path.to_owned()]).expect("open").lines();
    review::scan(
        &mut lines,
        filter,
        |_| {},
        |_, _| {
            n += 1;
            true
        },
    )
    .expect("scan");
    n
}

fn benches(c: &mut Criterion) {
    let (_dir, path) = bench_log();
    let mut g = c.benchmark_group("audit_1m");
    g.sample_size(10).measurement_time(Duration::from_secs(20)).warm_up_time(Duration::from_secs(1));

    let glob = |s: &str| vec![Glob::new(s).expect("glob")];
    let selective =
        Filter { decisions: [Decision::Denied].into(), namespaces: glob("x"), ..Filter::default() }.matcher();
    eprintln!("denied in x: {}", count(&path, &selective));
    g.bench_function("filter_denied_namespace_x", |b| b.iter(|| black_box(count(&path, &selective))));

    // A glob has no literal to pre-check: every line is parsed.
    let parsed_all = Filter { images: glob("registry.example/**:1.3"), ..Filter::default() }.matcher();
    g.bench_function("filter_image_glob", |b| b.iter(|| black_box(count(&path, &parsed_all))));

    g.bench_function("summary", |b| {
        b.iter(|| {
            let mut s = Summary::default();
            let mut lines = LogSet::open(std::slice::from_ref(&path)).expect("open").lines();
            review::scan(
                &mut lines,
                &review::Matcher::default(),
                |_| {},
                |e, _| {
                    s.add(e);
                    true
                },
            )
            .expect("scan");
            black_box(s.records)
        })
    });

    g.bench_function("verify", |b| {
        b.iter(|| {
            let set = LogSet::open(std::slice::from_ref(&path)).expect("open");
            let report = verify::verify(set, Options { require_genesis: true }).expect("verify");
            assert!(report.intact());
            black_box(report.records)
        })
    });
    g.finish();
}

criterion_group!(audit, benches);
criterion_main!(audit);
