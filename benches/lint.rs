//! `hardrun lint` on a policy repository of 1,000 files (issue #6: under one second).
//!
//! The files are generated: 900 team policies (namespaces, images, capability
//! allow-list, host mounts, the team's own AppArmor profile, rlimits, sysctls) and 100
//! exemptions, one document per file (1,000 documents is also the most a node loads),
//! so the set-level checks (duplicate names, pairwise AppArmor conflicts over 900
//! policies) do their full work. `lint_files` is what
//! `hardrun lint DIR` runs after listing the directory: read, parse twice (spans and
//! serde), load, check, and stat each file and its directories.
//!
//! `cargo bench --bench lint`; the figure is recorded in docs/performance.md ("Lint").
//! `HARDRUN_LINT_BENCH_DIR=/tmp/lint1000` keeps the generated files there.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

use hardrun::policy::lint::{self, Options};

pub const FILES: usize = 1000;

fn policy(i: usize) -> String {
    if i.is_multiple_of(10) {
        return exemption(i);
    }
    format!(
        "# Team {i}'s policy.
apiVersion: hardrun.dev/v1alpha1
kind: Policy
metadata:
  name: team-{i}
  labels: {{owner: team-{i}}}
spec:
  match:
    namespaces: [team-{i}, team-{i}-*]
    images: [\"registry.example/team-{i}/**\"]
  mode: enforce
  noNewPrivileges: true
  capabilities:
    allow: [CAP_CHOWN, CAP_NET_BIND_SERVICE, CAP_SETUID, CAP_SETGID]
    forbidden: default
    onForbidden: deny
  apparmor:
    profile: localhost/team-{i}
  process:
    runAsNonRoot: true
    rlimits: {{RLIMIT_NOFILE: 65536, RLIMIT_NPROC: 4096}}
    umask: \"0027\"
  filesystem:
    readOnlyRootfs: true
    maskedPaths: default
    hostMounts:
      deny: default
      denyWritable: default
      allow: [/data/team-{i}/**]
  namespaces:
    denyHost: default
  sysctls:
    allow: [default, net.core.somaxconn]
  denyPrivileged: true
"
    )
}

fn exemption(i: usize) -> String {
    format!(
        "apiVersion: hardrun.dev/v1alpha1
kind: Exemption
metadata:
  name: team-{i}-debug
spec:
  match: {{namespaces: [team-{i}], containers: [debugger]}}
  rules: [caps.clamped]
  reason: the debugger sidecar keeps SYS_PTRACE
"
    )
}

/// Writes the repository; returns its files, sorted as `hardrun lint DIR` lists them.
pub fn repository(dir: &std::path::Path) -> Vec<PathBuf> {
    for i in 0..FILES {
        std::fs::write(dir.join(format!("team-{i:04}.yaml")), policy(i)).unwrap();
    }
    let mut diags = Vec::new();
    let files = lint::collect_files(&[dir.to_owned()], &mut diags);
    assert!(diags.is_empty() && files.len() == FILES);
    files
}

fn bench(c: &mut Criterion) {
    // HARDRUN_LINT_BENCH_DIR keeps the repository (for timing the CLI on it).
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("HARDRUN_LINT_BENCH_DIR").map(PathBuf::from);
    let dir = dir.as_deref().unwrap_or(tmp.path());
    std::fs::create_dir_all(dir).unwrap();
    let files = repository(dir);
    let report = lint::lint_files(&files, &Options::default());
    // Only the exemptions are reported (as info): a clean repository, fully checked.
    assert!(!report.has_errors(), "{:#?}", &report.diagnostics[..3.min(report.diagnostics.len())]);
    assert_eq!(report.diagnostics.len(), FILES / 10);
    let mut g = c.benchmark_group("lint");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.bench_function("1000 policy files", |b| b.iter(|| black_box(lint::lint_files(&files, &Options::default()))));
    g.finish();

    // What a create pays for the gate on a clean set: the shipped policies, loaded.
    let shipped = hardrun::policy::load::policy_files(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies").as_path(),
    )
    .unwrap();
    let set = hardrun::policy::PolicySet::load_files(&shipped).unwrap();
    let mut g = c.benchmark_group("lint");
    g.sample_size(50).measurement_time(Duration::from_secs(3));
    g.bench_function("check_set, shipped policies", |b| b.iter(|| black_box(lint::check_set(&set, &shipped))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
