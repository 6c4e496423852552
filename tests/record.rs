//! Seccomp profile recording against the real runc: a `kind: Recording` puts the
//! container under a notify filter, the recorder (`hardrun __recorder`) receives the
//! notify fd from runc and writes the profile when the container ends; the profile is
//! then enforced through a `localhost/` policy, checked from inside the container.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{log_lines, Bundle, Env, Outcome, DOCKER_DEFAULT_CAPS};
use serde_json::Value;

/// mkdir, a sleep, an AF_INET socket (nc to a closed port), then a marker.
const WORKLOAD: &str =
    "mkdir /dev/shm/d; echo mkdir=$?; sleep 0.1; /bin/busybox nc 127.0.0.1 1 </dev/null; echo nc=$?; echo done";
/// The workload plus one call it never made: symlink (busybox ln -s).
const WORKLOAD_PLUS_SYMLINK: &str =
    "mkdir /dev/shm/d; echo mkdir=$?; sleep 0.1; /bin/busybox nc 127.0.0.1 1 </dev/null; echo nc=$?; /bin/busybox ln -s /dev/shm/d /dev/shm/l; echo ln=$?; echo done";

fn recording_yaml(name: &str, output: &str, merge: &str, on_failure: &str) -> String {
    format!(
        "apiVersion: hardrun.dev/v1alpha1\nkind: Recording\nmetadata: {{name: {name}}}\nspec:\n  output: {output}\n  \
         merge: {merge}\n  onRecorderFailure: {on_failure}\n  timeoutSeconds: 2\n"
    )
}

fn bundle(script: &str) -> Bundle {
    let b = Bundle::new(&["/bin/busybox", "sh", "-c", script]);
    b.set_caps(DOCKER_DEFAULT_CAPS);
    b
}

fn recordings(env: &Env) -> PathBuf {
    env.state_dir.join("recordings")
}

/// Runs the bundle in the foreground through hardrun.
fn run(env: &Env, bundle: &Bundle, tag: &str) -> Outcome {
    let log = env.file("runc-log");
    let id = env.id(tag);
    let out = env.hardrun().log(&log).args(["run", "--bundle"]).arg(bundle.path()).arg(&id).output();
    assert_eq!(out.code, 0, "hardrun run: {out:?}\nlog: {:?}\naudit: {}", log_lines(&log), env.audit_text());
    out
}

/// Waits for the recorder's audit record of `state` (it writes after the container ends).
fn wait_recorded(env: &Env, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let recs: Vec<Value> = env.audit_records().into_iter().filter(|r| r["command"] == "record").collect();
        if recs.len() >= count {
            return recs;
        }
        assert!(Instant::now() < deadline, "no recorder record; audit: {}", env.audit_text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn profile_calls(path: &Path) -> Vec<String> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let obs = &v["comment"]["hardrunRecording"]["observed"];
    obs["syscalls"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
}

fn enforce_policy(env: &Env, profile: &Path) {
    env.write_policy(
        "record.yaml",
        &format!(
            "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {{name: recorded}}\nspec:\n  seccomp:\n    \
             profile: localhost/{}\n",
            profile.display()
        ),
    );
}

#[allow(dead_code)] // used by the CLI tests below
fn hardrun_tool(env: &Env, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::HARDRUN).env("HARDRUN_CONFIG", &env.config_path).args(args).output().unwrap()
}

#[test]
fn a_recorded_profile_has_the_workloads_calls_and_enforcing_it_denies_one_more() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("record.yaml", &recording_yaml("rec", "web", "none", "kill"));
    let out = run(&env, &bundle(WORKLOAD), "rec");
    assert!(out.stdout.contains("mkdir=0") && out.stdout.contains("done"), "{out:?}");
    let create = env.audit_records().into_iter().find(|r| r["command"] == "run").unwrap();
    assert_eq!(create["recording"]["state"], "armed", "{create}");
    let recs = wait_recorded(&env, 1);
    assert_eq!(recs[0]["recording"]["state"], "written", "{recs:?}");

    let path = recordings(&env).join("web.json");
    let calls = profile_calls(&path);
    for call in ["mkdir", "socket", "connect", "nanosleep", "execve"] {
        let alt = if call == "nanosleep" { "clock_nanosleep" } else { call };
        assert!(calls.iter().any(|c| c == call || c == alt), "{call} missing from {calls:?}");
    }
    assert!(!calls.iter().any(|c| c == "symlink" || c == "symlinkat"), "{calls:?}");
    let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let families = &v["comment"]["hardrunRecording"]["observed"]["args"]["socket"]["values"];
    assert!(families.as_array().unwrap().iter().any(|f| f == 2), "AF_INET recorded: {families}");

    // Enforced: the same workload runs; one more call fails with EPERM inside.
    enforce_policy(&env, &path);
    let same = run(&env, &bundle(WORKLOAD), "enf");
    assert!(same.stdout.contains("mkdir=0") && same.stdout.contains("done"), "{same:?}");
    let plus = run(&env, &bundle(WORKLOAD_PLUS_SYMLINK), "enf2");
    assert!(plus.stdout.contains("ln=1"), "{plus:?}");
    assert!(plus.stderr.contains("Operation not permitted"), "EPERM: {plus:?}");
    // Control: without the recorded profile the symlink works.
    env.write_policy("record.yaml", "");
    let control = run(&env, &bundle(WORKLOAD_PLUS_SYMLINK), "ctl");
    assert!(control.stdout.contains("ln=0"), "{control:?}");
}
