//! Cost of the seccomp control (issue #3): building `runtime/default` for a bounding
//! set, and compiling a policy's constraint into `linux.seccomp` for a real containerd
//! CRI spec (whose own RuntimeDefault-style section is kept as a constraint).
//!
//! `cargo bench --bench seccomp`

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::Value;

use hardrun::enforce::seccomp::{self, default, docker, emit, Target};
use hardrun::policy::seccomp::SeccompSettings;

const CRI_CONFIG: &str = include_str!("fixtures/cri-config.json");

/// The embedded baseline policy's capability allow-list (PSS baseline).
const BASELINE_CAPS: &[&str] = &[
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

fn settings(yaml: &str) -> SeccompSettings {
    serde_yaml::from_str(yaml).expect("seccomp section")
}

fn benches(c: &mut Criterion) {
    let caps: BTreeSet<String> = BASELINE_CAPS.iter().map(|s| s.to_string()).collect();
    let target = Target::host();
    let cri: Value = serde_json::from_str(CRI_CONFIG).expect("fixture");
    let mut no_seccomp = cri.clone();
    no_seccomp["linux"].as_object_mut().expect("linux").remove("seccomp");
    let keep = settings("profile: runtime/default\n");
    let replace = settings("profile: runtime/default\nexisting: replace\n");
    let deny = settings("profile: runtime/default\ndenySyscalls: [keyctl, add_key, request_key]\nerrno: EACCES\n");

    c.bench_function("seccomp/runtime-default build (baseline caps, uncached)", |b| {
        b.iter(|| default::build(black_box(&caps), &target))
    });
    c.bench_function("seccomp/runtime-default (baseline caps, cached)", |b| {
        b.iter(|| default::profile(black_box(&caps), &target))
    });
    let own = &cri["linux"]["seccomp"];
    let reading = docker::Reading { caps: &caps, target: &target, names: docker::Names::Lenient };
    c.bench_function("seccomp/part: read the CRI spec's own profile", |b| {
        b.iter(|| docker::parse_value(black_box(own), &reading).expect("profile"))
    });
    let spec_profile = docker::parse_value(own, &reading).expect("profile").profile;
    let rd = default::profile(&caps, &target);
    c.bench_function("seccomp/part: intersect runtime/default with it", |b| {
        b.iter(|| rd.intersect(black_box(&spec_profile)).expect("no listeners"))
    });
    c.bench_function("seccomp/part: write runtime/default as linux.seccomp", |b| {
        b.iter(|| emit::emit(black_box(&rd)).expect("emit"))
    });
    c.bench_function("seccomp/plan runtime/default, spec without seccomp", |b| {
        b.iter(|| seccomp::plan_for(&replace, black_box(&caps), black_box(&no_seccomp), &target))
    });
    c.bench_function("seccomp/plan runtime/default ∩ the CRI spec's own profile", |b| {
        b.iter(|| seccomp::plan_for(&keep, black_box(&caps), black_box(&cri), &target))
    });
    c.bench_function("seccomp/plan runtime/default + denySyscalls ∩ the spec's profile", |b| {
        b.iter(|| seccomp::plan_for(&deny, black_box(&caps), black_box(&cri), &target))
    });
}

criterion_group! {
    name = seccomp_benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(seccomp_benches);
