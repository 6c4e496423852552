//! Policies delivered by a Kubernetes ConfigMap volume: the kubelet writes each
//! version into a new `..<timestamp>` directory, re-points `..data` at it with one
//! rename, keeps `<file> -> ..data/<file>` links, and deletes the old directory.
//! hardrun must read one version whole, pick up a swap at once, and refuse creates
//! (fail closed, audited) while the current version is broken.

mod common;
#[path = "common/configmap.rs"]
mod configmap;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use configmap::ConfigMapVolume;
use std::sync::Arc;

use common::{log_lines, policy_yaml, proc_status, status_mask, Bundle, Env};
use hardrun::policy::PolicySet;

fn named(name: &str, nnp: bool) -> String {
    policy_yaml(name, "enforce", nnp, None)
}

/// Two versions whose files, mixed, hold one policy name twice (a load error): any
/// read that mixes versions fails.
#[test]
fn a_load_never_mixes_two_versions() {
    let dir = tempfile::tempdir().unwrap();
    let volume = Arc::new(ConfigMapVolume::new(&dir.path().join("policies")));
    let (alpha, beta) = (named("alpha", true), named("beta", true));
    let v1: Vec<(&str, String)> = vec![("a.yaml", alpha.clone()), ("b.yaml", beta.clone())];
    let v2: Vec<(&str, String)> = vec![("a.yaml", beta), ("b.yaml", alpha)];
    let as_refs = |v: &[(&'static str, String)]| v.iter().map(|(n, t)| (*n, t.clone())).collect::<Vec<_>>();
    let (v1, v2) = (as_refs(&v1), as_refs(&v2));
    let publish = |v: &[(&str, String)]| {
        let files: Vec<(&str, &str)> = v.iter().map(|(n, t)| (*n, t.as_str())).collect();
        volume.publish(&files);
    };
    publish(&v1);
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (volume, stop, swaps) = (Arc::clone(&volume), Arc::clone(&stop), Arc::clone(&swaps));
        let (v1, v2) = (v1.clone(), v2.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let v = if swaps.load(Ordering::Relaxed) % 2 == 0 { &v2 } else { &v1 };
                let files: Vec<(&str, &str)> = v.iter().map(|(n, t)| (*n, t.as_str())).collect();
                volume.publish(&files);
                swaps.fetch_add(1, Ordering::Relaxed);
                // The kubelet swaps at most every sync period; back-to-back swaps with no
                // pause would let a loaded machine lose every retry to a new swap.
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    let mut loads = 0;
    while loads < 2000 || swaps.load(Ordering::Relaxed) < 200 {
        let set = PolicySet::load(&volume.dir).unwrap_or_else(|e| panic!("load {loads} during a swap: {e}"));
        let mut names: Vec<_> = set.policies.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["alpha", "beta"]);
        loads += 1;
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
}

#[test]
fn hostile_data_links_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("p.yaml"), named("elsewhere", false)).unwrap();
    for target in [elsewhere.as_path(), Path::new("../elsewhere")] {
        let _ = std::fs::remove_file(policies.join("..data"));
        std::os::unix::fs::symlink(target, policies.join("..data")).unwrap();
        let err = PolicySet::load(&policies).unwrap_err().to_string();
        assert!(err.contains("must name an entry of the same directory"), "{err}");
    }
    // A policy directory that is a dangling link (the pod that delivered it is gone)
    // is an error, not the embedded baseline.
    let link = dir.path().join("gone");
    std::os::unix::fs::symlink(dir.path().join("no-such-dir"), &link).unwrap();
    assert!(PolicySet::load(&link).is_err());
}

/// `hardrun run` of a bundle printing its status: exit code, stdout, runc log lines.
fn run_status(env: &Env, bundle: &Bundle, id: &str) -> (i32, String, Vec<serde_json::Value>) {
    let log = env.file("log");
    let out = env.hardrun().log(&log).args(["run", "--bundle"]).arg(bundle.path()).arg(id).output();
    (out.code, out.stdout, log_lines(&log))
}

#[test]
fn swaps_take_effect_at_once_and_a_broken_version_fails_closed() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let volume = ConfigMapVolume::new(&env.policy_dir);
    let bundle = Bundle::new(&["cat", "/proc/self/status"]);
    bundle.set_no_new_privileges(false);

    volume.publish(&[("nnp.yaml", &named("nnp", true))]);
    let id = env.id("cm-v1");
    let (code, stdout, _) = run_status(&env, &bundle, &id);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(proc_status(&stdout)["NoNewPrivs"], "1");

    // v2: a policy with a schema error, beside the good one.
    let broken =
        "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: broken\nspec:\n  noNewPrivilege: true\n";
    volume.publish(&[("nnp.yaml", &named("nnp", true)), ("broken.yaml", broken)]);
    let id = env.id("cm-v2");
    let (code, stdout, log) = run_status(&env, &bundle, &id);
    assert_eq!(code, 1, "a broken set refuses creates: {stdout}");
    let msg = log[0]["msg"].as_str().unwrap_or_default().to_owned();
    assert!(msg.contains("policy set rejected") && msg.contains("noNewPrivilege"), "{msg}");
    let record = env.audit_record(&id);
    assert_eq!(record["decision"], "denied", "{record}");
    assert!(record["reason"].as_str().unwrap_or_default().contains("noNewPrivilege"), "{record}");

    // v3: fixed, and it lifts NNP; no restart, the next create reads it.
    volume.publish(&[("nnp.yaml", &named("nnp", false))]);
    bundle.set_no_new_privileges(false);
    let id = env.id("cm-v3");
    let (code, stdout, log) = run_status(&env, &bundle, &id);
    assert_eq!(code, 0, "{stdout} {log:?}");
    let status = proc_status(&stdout);
    assert_eq!(status["NoNewPrivs"], "0");
    assert_ne!(status_mask(&status, "CapEff"), 0);
    let record = env.audit_record(&id);
    let source = record["policies"][0]["source"].as_str().unwrap_or_default().to_owned();
    assert!(source.contains("/..2026_11_25_16_00_00.000000002/"), "read from the resolved version: {record}");
}
