//! Seccomp against the real runc: a busybox bundle's spec gets the filter hardrun
//! compiles for a policy's `seccomp:` section, runc runs it, and the effect is
//! observed from inside the container (its /proc/self/status, a system call failing
//! with the configured errno while others succeed).
//!
//! Each test writes a policy with the `seccomp:` section and runs the bundle through
//! hardrun, which compiles the filter into config.json before exec'ing runc; each
//! test also runs an unfiltered control with bare runc, so a failure inside the
//! container is the filter's doing.

mod common;

use common::{log_lines, proc_status, Bundle, Env, Outcome, DOCKER_DEFAULT_CAPS};
use hardrun::enforce::seccomp::{RULE_PROFILE, RULE_UNCONFINED};
use hardrun::enforce::{Action, Finding};
use serde_json::{json, Value};

/// Makes the node's only policy one with this `seccomp:` section (YAML) and returns
/// the findings `hardrun explain` reports for the bundle: what the create path will do.
fn harden(env: &Env, bundle: &Bundle, section: &str) -> Vec<Finding> {
    let indented: String = section.lines().map(|l| format!("    {l}\n")).collect();
    env.write_policy(
        "seccomp.yaml",
        &format!("apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {{name: seccomp}}\nspec:\n  seccomp:\n{indented}"),
    );
    let out = std::process::Command::new(common::HARDRUN)
        .env("HARDRUN_CONFIG", env.dir().join("config.yaml"))
        .args(["explain", "--format", "json", "--bundle"])
        .arg(bundle.path())
        .output()
        .expect("hardrun explain");
    assert!(out.status.success(), "explain: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("explain JSON");
    let findings: Vec<Finding> = serde_json::from_value(v["findings"].clone()).expect("findings");
    assert!(findings.iter().all(|f| f.action != Action::Deny), "denied: {findings:?}");
    findings
}

/// Runs the bundle in the foreground with the bare runc: the control run.
fn run(env: &Env, bundle: &Bundle) -> Outcome {
    let log = env.file("runc-log");
    let id = env.id("seccomp");
    let out = env.runc().log(&log).args(["run", "--bundle"]).arg(bundle.path()).arg(&id).output();
    // Every probe ends with a command that succeeds.
    assert_eq!(out.code, 0, "runc run: {out:?}\nlog: {:?}", log_lines(&log));
    out
}

/// Runs the bundle in the foreground through hardrun, which applies the policy.
fn run_hardened(env: &Env, bundle: &Bundle) -> Outcome {
    let log = env.file("runc-log");
    let id = env.id("seccomp");
    let out = env.hardrun().log(&log).args(["run", "--bundle"]).arg(bundle.path()).arg(&id).output();
    assert_eq!(out.code, 0, "hardrun run: {out:?}\nlog: {:?}\naudit: {}", log_lines(&log), env.audit_text());
    out
}

/// A shell script as the container's process, with Docker's capabilities.
fn script_bundle(script: &str, caps: &[&str]) -> Bundle {
    let b = Bundle::new(&["/bin/busybox", "sh", "-c", script]);
    b.set_caps(caps);
    b
}

/// `name=<exit code>` lines a probe script prints.
fn codes(stdout: &str) -> std::collections::BTreeMap<String, String> {
    stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.trim().to_owned())).collect()
}

#[test]
fn the_container_runs_in_seccomp_filter_mode() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = Bundle::new(&["cat", "/proc/self/status"]);
    bundle.set_caps(DOCKER_DEFAULT_CAPS);
    let control = proc_status(&run(&env, &bundle).stdout);
    assert_eq!(control["Seccomp"], "0", "control run: no filter");

    let findings = harden(&env, &bundle, "profile: runtime/default\n");
    assert_eq!(findings[0].rule, RULE_UNCONFINED, "the runc spec has no seccomp section: {findings:?}");
    let out = run_hardened(&env, &bundle);
    assert_eq!(out.code, 0, "{out:?}");
    let status = proc_status(&out.stdout);
    assert_eq!(status["Seccomp"], "2", "{status:?}");
    assert_eq!(status["Seccomp_filters"], "1", "{status:?}");
}

const MKDIR_PROBE: &str = "busybox mkdir /dev/shm/d; echo mkdir=$?; \
                           busybox touch /dev/shm/f; echo touch=$?; \
                           busybox rmdir /dev/shm/d 2>/dev/null; true";

#[test]
fn denied_system_calls_fail_with_the_configured_errno_and_others_succeed() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = script_bundle(MKDIR_PROBE, DOCKER_DEFAULT_CAPS);
    let control = run(&env, &bundle);
    assert_eq!(codes(&control.stdout)["mkdir"], "0", "control run: {control:?}");

    // EXDEV cannot come from a mkdir on tmpfs by itself: it is the filter's answer.
    harden(&env, &bundle, "profile: runtime/default\ndenySyscalls: [mkdir, mkdirat]\nerrno: EXDEV\n");
    let out = run_hardened(&env, &bundle);
    let c = codes(&out.stdout);
    assert_ne!(c["mkdir"], "0", "{out:?}");
    assert!(out.stderr.contains("Invalid cross-device link"), "mkdir's error is EXDEV: {out:?}");
    assert_eq!(c["touch"], "0", "open/utimensat are allowed: {out:?}");
}

const UNSHARE_PROBE: &str = "busybox unshare -U true; echo unshare=$?";

#[test]
fn unshare_needs_cap_sys_admin_under_runtime_default() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    // A user namespace needs no capability from the kernel: only the filter refuses it.
    let bundle = script_bundle(UNSHARE_PROBE, DOCKER_DEFAULT_CAPS);
    let control = run(&env, &bundle);
    assert_eq!(codes(&control.stdout)["unshare"], "0", "control run: {control:?}");

    harden(&env, &bundle, "profile: runtime/default\n");
    let out = run_hardened(&env, &bundle);
    assert_ne!(codes(&out.stdout)["unshare"], "0", "{out:?}");
    assert!(out.stderr.contains("Operation not permitted"), "EPERM: {out:?}");
    assert_eq!(
        bundle.spec()["linux"]["seccomp"]["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["names"].as_array().unwrap().contains(&json!("unshare")))
            .count(),
        0,
        "unshare is left to the default action"
    );

    // With CAP_SYS_ADMIN in the bounding set the same policy allows it.
    let mut caps = DOCKER_DEFAULT_CAPS.to_vec();
    caps.push("CAP_SYS_ADMIN");
    let admin = script_bundle(UNSHARE_PROBE, &caps);
    harden(&env, &admin, "profile: runtime/default\n");
    let out = run_hardened(&env, &admin);
    assert_eq!(codes(&out.stdout)["unshare"], "0", "{out:?}");
}

/// The spec's own profile (say, a pod's Localhost profile) denies mkdir; the policy's
/// runtime/default denies unshare. keep-stricter: both apply; replace: only the
/// policy's.
#[test]
fn the_specs_own_profile_is_kept_when_the_policy_says_keep_stricter() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let own: Value = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    });
    let probe = format!("{MKDIR_PROBE}; {UNSHARE_PROBE}");
    let bundle = script_bundle(&probe, DOCKER_DEFAULT_CAPS);
    bundle.edit(|s| s["linux"]["seccomp"] = own.clone());
    let own_only = run(&env, &bundle);
    let c = codes(&own_only.stdout);
    assert_eq!((c["mkdir"].as_str(), c["unshare"].as_str()), ("1", "0"), "the spec's profile alone: {own_only:?}");

    let keep = bundle.duplicate();
    let findings = harden(&env, &keep, "profile: runtime/default\n");
    assert_eq!(findings[0].rule, RULE_PROFILE);
    let out = run_hardened(&env, &keep);
    let c = codes(&out.stdout);
    assert_ne!(c["mkdir"], "0", "{out:?}");
    assert!(out.stderr.contains("Permission denied"), "the spec's EACCES: {out:?}");
    assert_ne!(c["unshare"], "0", "{out:?}");
    assert_eq!(c["touch"], "0", "{out:?}");

    let replace = bundle.duplicate();
    harden(&env, &replace, "profile: runtime/default\nexisting: replace\n");
    let out = run_hardened(&env, &replace);
    let c = codes(&out.stdout);
    assert_eq!(c["mkdir"], "0", "{out:?}");
    assert_ne!(c["unshare"], "0", "{out:?}");
}

/// A localhost profile in Docker's format (archMap, includes) next to the policy file.
#[test]
fn a_localhost_profile_in_dockers_format_is_enforced() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    // Next to the policy file: `localhost/` paths are relative to its directory.
    let dir = env.policy_dir.clone();
    std::fs::create_dir_all(&dir).unwrap();
    // moby's default profile, unchanged, with one more rule: mkdir answered ENOTSUP.
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/seccomp/moby-default.json");
    let mut moby: Value = serde_json::from_slice(&std::fs::read(fixture).expect("moby fixture")).unwrap();
    moby["syscalls"].as_array_mut().unwrap().push(json!({
        "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95, "comment": "test"
    }));
    std::fs::write(dir.join("moby.json"), serde_json::to_vec_pretty(&moby).unwrap()).unwrap();

    let bundle = script_bundle(&format!("{MKDIR_PROBE}; {UNSHARE_PROBE}"), DOCKER_DEFAULT_CAPS);
    harden(&env, &bundle, "profile: localhost/moby.json\n");
    let out = run_hardened(&env, &bundle);
    let c = codes(&out.stdout);
    // The later ERRNO rule and moby's allow for mkdir: the stricter wins.
    assert_ne!(c["mkdir"], "0", "{out:?}");
    assert!(out.stderr.contains("Not supported") || out.stderr.contains("not supported"), "ENOTSUP: {out:?}");
    assert_ne!(c["unshare"], "0", "{out:?}");
    assert_eq!(c["touch"], "0", "{out:?}");
}

/// The embedded baseline (no policy directory) filters every container.
#[test]
fn the_embedded_baseline_applies_runtime_default() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = script_bundle(&format!("grep Seccomp: /proc/self/status; {UNSHARE_PROBE}"), DOCKER_DEFAULT_CAPS);
    let control = run(&env, &bundle);
    assert_eq!(codes(&control.stdout)["unshare"], "0", "control run: {control:?}");
    let out = run_hardened(&env, &bundle);
    assert!(out.stdout.contains("Seccomp:\t2"), "{out:?}");
    assert_ne!(codes(&out.stdout)["unshare"], "0", "{out:?}");
    let rules: Vec<String> = env
        .audit_records()
        .iter()
        .filter(|r| r["command"] == "run")
        .flat_map(|r| r["findings"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f["rule"].as_str().map(str::to_owned))
        .collect();
    assert!(rules.iter().any(|r| r == RULE_UNCONFINED), "the baseline's seccomp finding is recorded: {rules:?}");
}
