//! Pod start through containerd's CRI with four runtime handlers, interleaved:
//!
//! - `runc`: containerd's own handler (the shim runs /usr/sbin/runc);
//! - `wrapper`: a do-nothing C program that only execs runc: the floor for any wrapper
//!   (one more exec per runtime call);
//! - `hardrun`: hardrun whose policies match nothing: hardrun's own cost (exec, policy
//!   load, evaluation, audit records), the spec runc gets is the pod's (but for the
//!   sandbox floor);
//! - `hardrun-restricted`: hardrun with policies/restricted.yaml (matched on the runtime
//!   class): the above plus what the hardened spec costs runc (its seccomp filter).
//!
//! One sample: RunPodSandbox → PullImage (cached) → CreateContainer → StartContainer
//! returned (the container is running), for a host-network pod with one container.
//! The pod is then stopped and removed, untimed. Prints median, p95 and mean per handler
//! and hardrun's overhead over the wrapper.
//!
//!   cargo bench --bench pod_start                 # 40 rounds
//!   POD_BENCH_ROUNDS=100 cargo bench --bench pod_start
//!   POD_BENCH_AUDIT_DIR=/dev/shm …   # audit log on tmpfs (no disk fsync latency)
//!   POD_BENCH_PHASES=1 …             # per-sample sandbox/create/start times on stderr
//!   POD_BENCH_STATE_ON_DISK=1 …      # containerd's state dir on the temp dir's disk, not tmpfs
//!
//! Needs root, containerd, docker-registry, umoci, skopeo, runc, busybox-static and gcc.

#[path = "../tests/common/cri.rs"]
mod cri;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use cri::{container_config, pod_config, Containerd, Cri, Registry};
use k8s_cri::v1::PodSandboxConfig;

const HANDLERS: [&str; 4] = ["runc", "wrapper", "hardrun", "hardrun-restricted"];

const WRAPPER_C: &str = r#"
#include <unistd.h>
int main(int argc, char **argv) {
    (void)argc;
    argv[0] = "runc";
    execv("/usr/sbin/runc", argv);
    return 127;
}
"#;

const EXEMPTION: &str = "apiVersion: hardrun.dev/v1alpha1\nkind: Exemption\nmetadata:\n  name: bench-host-network\n\
spec:\n  match:\n    namespaces: [bench]\n  rules: [namespaces.host-network, namespaces.host-uts, namespaces.host-ipc]\n  \
reason: benchmark pods have no CNI\n";

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !cri::prerequisites_met() {
        return;
    }
    // `cargo test --all-targets` runs this without `--bench`: one round, as a smoke test.
    let default_rounds = if std::env::args().any(|a| a == "--bench") { 40 } else { 1 };
    let rounds: usize = std::env::var("POD_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default_rounds);
    let dir = tempfile::Builder::new().prefix("hardrun-podbench-").tempdir().unwrap();
    let d = dir.path();
    let registry = Registry::start(d);
    let images = cri::build_images(d, &registry);

    let prefix = cri::install_hardrun(d, &["restricted"]);
    let wrapper = build_wrapper(d);
    let node_config = write_node(d);
    let config = d.join("containerd.toml");
    cri::write_containerd_config(&config, &registry, &images, &prefix, &["hardrun", "hardrun-restricted"]);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wrapper]\n  runtime_type = \"io.containerd.runc.v2\"\n\
         [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.wrapper.options]\n  SystemdCgroup = false\n  BinaryName = \"{}\"\n",
        wrapper.display()
    ));
    std::fs::write(&config, text).unwrap();

    // containerd's state (bundles, which hardrun rewrites with fsync) on tmpfs, as /run
    // is on a node; POD_BENCH_STATE_ON_DISK=1 keeps it in the temp dir.
    let _state_tmpfs =
        std::env::var_os("POD_BENCH_STATE_ON_DISK").is_none().then(|| cri::mount_tmpfs(&d.join("state")));
    let containerd = Containerd::start(d, &config, &[("HARDRUN_CONFIG", &node_config)]);
    let cri = Cri::connect(&containerd.socket);
    cri.pull(&images.busybox);

    // Warm-up: one pod per handler (page cache, containerd's first-use paths).
    for h in HANDLERS {
        one_pod(&cri, &images.busybox, d, h, 0);
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); HANDLERS.len()];
    for round in 0..rounds {
        // Rotate the order so no handler always runs first (or after the same one).
        for k in 0..HANDLERS.len() {
            let i = (round + k) % HANDLERS.len();
            samples[i].push(one_pod(&cri, &images.busybox, d, HANDLERS[i], round + 1));
        }
    }
    cri.remove_all_pods();
    drop(cri);
    drop(containerd);
    report(rounds, &samples);
}

fn build_wrapper(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("wrapper.c");
    let bin = dir.join("wrapper");
    std::fs::write(&src, WRAPPER_C).unwrap();
    let ok = Command::new("gcc").args(["-O2", "-static", "-o"]).arg(&bin).arg(&src).status().unwrap().success()
        || Command::new("gcc").args(["-O2", "-o"]).arg(&bin).arg(&src).status().unwrap().success();
    assert!(ok, "gcc failed");
    bin
}

/// hardrun's node config: the restricted policy (plus the host-network exemption the
/// CNI-less pods need), audit log in the temp dir.
fn write_node(d: &Path) -> std::path::PathBuf {
    let policy_dir = d.join("policies.d");
    std::fs::create_dir_all(&policy_dir).unwrap();
    let restricted = include_str!("../policies/restricted.yaml");
    let for_class = "  match:\n    containerTypes: [container]\n";
    assert!(restricted.contains(for_class), "restricted.yaml's match changed; update the bench");
    let restricted = restricted.replace(for_class, &format!("{for_class}    runtimeClasses: [restricted]\n"));
    std::fs::write(policy_dir.join("restricted.yaml"), restricted).unwrap();
    std::fs::write(policy_dir.join("bench-exemption.yaml"), EXEMPTION).unwrap();
    let node_config = d.join("hardrun.yaml");
    std::fs::write(
        &node_config,
        format!(
            "runtime: /usr/sbin/runc\npolicyDir: {}\nauditLog: {}\nstateDir: {}\n",
            policy_dir.display(),
            audit_dir(d).join("audit.jsonl").display(),
            d.join("hardrun-state").display()
        ),
    )
    .unwrap();
    node_config
}

/// Where hardrun's audit log goes: `POD_BENCH_AUDIT_DIR` (e.g. a tmpfs, to take the
/// disk's fsync latency out), else the temp dir.
fn audit_dir(d: &Path) -> std::path::PathBuf {
    match std::env::var_os("POD_BENCH_AUDIT_DIR") {
        Some(dir) => Path::new(&dir).join(format!("hardrun-podbench-{}", std::process::id())),
        None => d.join("audit"),
    }
}

/// Starts one pod and its container; returns milliseconds from RunPodSandbox to
/// StartContainer's return. The pod is removed afterwards (untimed).
fn one_pod(cri: &Cri, image: &str, d: &Path, handler: &str, round: usize) -> f64 {
    let name = format!("{handler}-{round}");
    let mut sandbox: PodSandboxConfig = pod_config(&name, &d.join("pods").join(&name));
    if let Some(m) = sandbox.metadata.as_mut() {
        m.namespace = "bench".into();
    }
    let mut container = container_config("app", image, "exec sleep 600", &[]);
    // restricted.yaml: runAsNonRoot and a read-only root filesystem.
    if let Some(sc) = container.linux.as_mut().and_then(|l| l.security_context.as_mut()) {
        sc.run_as_user = Some(k8s_cri::v1::Int64Value { value: 1000 });
    }
    let started = Instant::now();
    let pod = cri.run_pod(&sandbox, handler).unwrap_or_else(|e| panic!("RunPodSandbox {handler}: {e}"));
    let sandbox_ms = started.elapsed().as_secs_f64() * 1000.0;
    let id = cri.create(&pod, &sandbox, container).unwrap_or_else(|e| panic!("CreateContainer {handler}: {e}"));
    let create_ms = started.elapsed().as_secs_f64() * 1000.0 - sandbox_ms;
    let start_begin = unix_seconds();
    cri.start(&id).unwrap_or_else(|e| panic!("StartContainer {handler}: {e}"));
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if std::env::var_os("POD_BENCH_PHASES").is_some() {
        // Wall-clock bounds of StartContainer, to line up with the audit records' times.
        eprintln!(
            "{handler:<8} sandbox {sandbox_ms:7.1} create {create_ms:7.1} start {:7.1} StartContainer {start_begin:.6} {:.6}",
            ms - sandbox_ms - create_ms,
            unix_seconds()
        );
    }
    cri.stop_and_remove_pod(&pod);
    ms
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(rounds: usize, samples: &[Vec<f64>]) {
    println!("pod start (RunPodSandbox -> container running), {rounds} rounds, handlers interleaved");
    println!("load average at the end: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    println!("{:<18} {:>10} {:>10} {:>10} {:>10}", "handler", "median ms", "p95 ms", "mean ms", "min ms");
    let mut medians = Vec::new();
    for (h, s) in HANDLERS.iter().zip(samples) {
        let mut sorted = s.clone();
        sorted.sort_by(f64::total_cmp);
        let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
        let median = percentile(&sorted, 0.5);
        medians.push(median);
        println!("{h:<18} {median:>10.2} {:>10.2} {mean:>10.2} {:>10.2}", percentile(&sorted, 0.95), sorted[0]);
    }
    // Paired per round: the handlers of one round ran back to back, so drift between
    // rounds (other load on the machine) cancels out.
    let paired = |a: usize, b: usize| {
        let mut d: Vec<f64> = samples[a].iter().zip(&samples[b]).map(|(x, y)| x - y).collect();
        d.sort_by(f64::total_cmp);
        d
    };
    let pct = |a: f64, b: f64| (a / b - 1.0) * 100.0;
    for (a, b) in [(1, 0), (2, 1), (3, 1), (3, 2)] {
        let d = paired(a, b);
        println!(
            "{:>18} vs {:<8}: median {:+6.2}% ({:+.2} ms); paired per round: median {:+.2} ms, p95 {:+.2} ms",
            HANDLERS[a],
            HANDLERS[b],
            pct(medians[a], medians[b]),
            medians[a] - medians[b],
            percentile(&d, 0.5),
            percentile(&d, 0.95)
        );
    }
}
