//! hardrun as runc, against the real runc: the container lifecycle, passthrough output
//! and exit codes identical to runc's, the policies' effect as seen from inside the
//! container, and lossless edits of config.json.

mod common;

use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant};

use common::{cap_mask, policy_yaml, proc_status, status_mask, Bundle, Env, Runtime, DOCKER_DEFAULT_CAPS};
use serde_json::{json, Value};

/// Docker's defaults without NET_RAW: what the embedded baseline leaves.
fn docker_caps_without_net_raw() -> Vec<&'static str> {
    DOCKER_DEFAULT_CAPS.iter().copied().filter(|c| *c != "CAP_NET_RAW").collect()
}

/// Runs `bundle` in the foreground through `runtime` and returns the container's
/// /proc/self/status (the bundle's args must print it).
fn run_status(env: &Env, runtime: Runtime, bundle: &Bundle) -> std::collections::BTreeMap<String, String> {
    let id = env.id("status");
    let out = env.invoke(runtime).args(["run", "--bundle"]).arg(bundle.path()).arg(&id).output();
    assert_eq!(out.code, 0, "{runtime:?} run: {out:?}");
    let status = proc_status(&out.stdout);
    assert!(status.contains_key("CapEff"), "no status printed: {out:?}");
    status
}

/// A bundle printing its own status, with Docker's default capabilities and no NNP.
fn docker_like_bundle() -> Bundle {
    let b = Bundle::new(&["cat", "/proc/self/status"]);
    b.set_caps(DOCKER_DEFAULT_CAPS).set_no_new_privileges(false);
    b
}

fn wait_for_file_text(path: &std::path::Path, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(want) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn create_start_state_kill_delete() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = Bundle::new(&["sh", "-c", "echo started; exec sleep 30"]);
    let id = env.id("life");

    let (out, stdout_file) = env.hardrun().args(["create", "--bundle"]).arg(bundle.path()).arg(&id).run_to_files();
    assert_eq!(out.code, 0, "create: {out:?}");
    assert_eq!(out.stdout, "", "hardrun create wrote to stdout");
    assert_eq!(env.wait_status(&id, "created")["id"], id.as_str());
    assert_eq!(env.audit_record(&id)["command"], "create");

    let state = env.hardrun().args(["state", &id]).output();
    assert_eq!(state.code, 0, "{state:?}");
    assert_eq!(state.json()["status"], "created");

    let out = env.hardrun().args(["start", &id]).output();
    assert_eq!(out.code, 0, "start: {out:?}");
    env.wait_status(&id, "running");
    assert_eq!(wait_for_file_text(&stdout_file, "started"), "started\n", "container stdout");
    assert_eq!(env.hardrun().args(["state", &id]).output().json()["status"], "running");

    let out = env.hardrun().args(["kill", &id, "KILL"]).output();
    assert_eq!(out.code, 0, "kill: {out:?}");
    env.wait_status(&id, "stopped");

    let out = env.hardrun().args(["delete", &id]).output();
    assert_eq!(out.code, 0, "delete: {out:?}");
    assert!(env.state(&id).is_none(), "container still exists after delete");
    let commands: Vec<Value> = env.audit_records_of(&id).iter().map(|r| r["command"].clone()).collect();
    assert_eq!(commands, ["create", "start", "delete"], "state and kill leave no record");
}

#[test]
fn spec_within_policy_is_left_alone() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("loose.yaml", &policy_yaml("loose", "enforce", true, Some(&["CAP_KILL", "CAP_CHOWN"])));
    let bundle = Bundle::new(&["cat", "/proc/self/status"]);
    bundle.set_caps(&["CAP_KILL"]).set_no_new_privileges(true);
    let before = bundle.config_bytes();
    let status = run_status(&env, Runtime::Hardrun, &bundle);
    assert_eq!(status_mask(&status, "CapEff"), cap_mask(&["CAP_KILL"]));
    assert_eq!(env.audit_records()[0]["decision"], "allowed");
    assert_eq!(bundle.config_bytes(), before, "a spec the policy allows must not be rewritten");
}

/// runc starts with the signal dispositions the shim gave hardrun: hardrun's own
/// runtime ignores SIGPIPE, and an ignored signal survives `execve`. The "runc" here is
/// a script that records its own `SigIgn`.
#[test]
fn runc_inherits_no_ignored_signal_from_hardrun() {
    if !common::prerequisites_met() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sigign");
    let script = dir.path().join("fake-runc");
    std::fs::write(&script, format!("#!/bin/sh\ngrep SigIgn /proc/self/status > {}\n", out.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let env = Env::with_runtime(script.to_str().unwrap());
    let bundle = Bundle::new(&["true"]);
    for args in [&["state", "x"][..], &["create", "--bundle", bundle.path().to_str().unwrap(), "x"][..]] {
        let _ = std::fs::remove_file(&out);
        let (o, _) = env.hardrun().args(args).run_to_files();
        assert_eq!(o.code, 0, "{args:?}: {o:?}");
        let line = std::fs::read_to_string(&out).unwrap();
        let mask = u64::from_str_radix(line.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
        assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "{args:?}: runc started with SIGPIPE ignored: {line}");
    }
}

#[test]
fn run_in_foreground_has_runcs_output_and_exit_code() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = Bundle::new(&["sh", "-c", "echo out; echo err >&2; exit 3"]);
    let mut seen = Vec::new();
    for runtime in [Runtime::Hardrun, Runtime::Runc] {
        let id = env.id("run");
        let out = env.invoke(runtime).args(["run", "--bundle"]).arg(bundle.path()).arg(&id).output();
        assert_eq!(out.code, 3, "{runtime:?} run: {out:?}");
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert!(env.state(&id).is_none(), "run without --keep leaves no container");
        seen.push(out);
    }
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn exec_in_a_running_container() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = Bundle::new(&["sleep", "30"]);
    bundle.set_caps(DOCKER_DEFAULT_CAPS).set_no_new_privileges(false);
    let id = env.id("exec");
    let (out, _) = env.hardrun().args(["create", "--bundle"]).arg(bundle.path()).arg(&id).run_to_files();
    assert_eq!(out.code, 0, "create: {out:?}");
    assert_eq!(env.hardrun().args(["start", &id]).output().code, 0);
    env.wait_status(&id, "running");

    let out = env.hardrun().args(["exec", &id, "cat", "/proc/self/status"]).output();
    assert_eq!(out.code, 0, "exec: {out:?}");
    let status = proc_status(&out.stdout);
    // runc exec takes the process settings from the (patched) spec runc recorded.
    let want = cap_mask(&docker_caps_without_net_raw());
    assert_eq!(status_mask(&status, "CapBnd"), want, "exec'd CapBnd {status:?}");
    assert_eq!(status_mask(&status, "CapEff"), want, "exec'd CapEff {status:?}");
    assert_eq!(status["NoNewPrivs"], "1");

    for runtime in [Runtime::Hardrun, Runtime::Runc] {
        let out = env.invoke(runtime).args(["exec", &id, "sh", "-e", "-u", "-x"]).output();
        assert_eq!(out.code, 0, "{runtime:?} exec: {out:?}");
        let out = env.invoke(runtime).args(["exec", &id, "false"]).output();
        assert_eq!(out.code, 1, "{runtime:?} exec false: {out:?}");
    }
}

/// runc's exec stops reading its own flags at the container id: what follows is the
/// command, flags and all (`sh -c …` is not `--cap`).
#[test]
fn exec_command_arguments_are_not_runc_flags() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = Bundle::new(&["sleep", "30"]);
    let id = env.id("exec-args");
    let (out, _) = env.hardrun().args(["create", "--bundle"]).arg(bundle.path()).arg(&id).run_to_files();
    assert_eq!(out.code, 0, "create: {out:?}");
    assert_eq!(env.hardrun().args(["start", &id]).output().code, 0);
    env.wait_status(&id, "running");
    let cases: [&[&str]; 3] = [
        &["sh", "-c", "echo in-exec; exit 7"],
        &["sh", "-c", "echo \"$0 $1\"; exit 7", "--cap", "CAP_SYS_ADMIN"],
        &["sh", "-c", "echo \"$0 $1\"; exit 7", "-p", "/nonexistent/process.json"],
    ];
    for command in cases {
        let theirs = env.runc().args(["exec", &id]).args(command).output();
        let ours = env.hardrun().args(["exec", &id]).args(command).output();
        assert_eq!(theirs.code, 7, "runc exec {command:?}: {theirs:?}");
        assert_eq!(ours, theirs, "exec {command:?}");
    }
}

#[test]
fn preserve_fds_reach_the_container() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = Bundle::new(&["sh", "-c", "cat /proc/self/fd/3; echo written-by-container >&3"]);
    let shared = env.file("fd3");
    std::fs::write(&shared, "token-from-host\n").unwrap();
    let fd3 = File::options().read(true).append(true).open(&shared).unwrap();

    let id = env.id("fds");
    let out =
        env.hardrun().args(["run", "--preserve-fds", "1", "--bundle"]).arg(bundle.path()).arg(&id).fd3(fd3).output();
    assert_eq!(out.code, 0, "run: {out:?}");
    assert_eq!(out.stdout, "token-from-host\n", "the container read fd 3");
    let mut text = String::new();
    File::open(&shared).unwrap().read_to_string(&mut text).unwrap();
    assert_eq!(text, "token-from-host\nwritten-by-container\n", "the container wrote fd 3");
}

#[test]
fn passthrough_output_is_runcs() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = Bundle::new(&["sleep", "30"]);
    let running = env.id("pass");
    let (out, _) = env.runc().args(["run", "-d", "--bundle"]).arg(bundle.path()).arg(&running).run_to_files();
    assert_eq!(out.code, 0, "runc run -d: {out:?}");
    let created = env.id("pass");
    let (out, _) = env.runc().args(["create", "--bundle"]).arg(bundle.path()).arg(&created).run_to_files();
    assert_eq!(out.code, 0, "runc create: {out:?}");
    env.wait_status(&running, "running");

    let json_commands: [&[&str]; 4] = [
        &["state", &running],
        &["state", &created],
        &["list", "--format", "json"],
        &["ps", "--format", "json", &running],
    ];
    for args in json_commands {
        let ours = env.hardrun().args(args).output();
        let theirs = env.runc().args(args).output();
        assert_eq!(ours.code, 0, "hardrun {args:?}: {ours:?}");
        assert_eq!(ours.json(), theirs.json(), "{args:?}");
        assert_eq!(ours, theirs, "{args:?}: byte-for-byte");
    }
    let list = env.hardrun().args(["list", "--format", "json"]).output().json();
    let mut ids: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut want = [running.as_str(), created.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want, "list shows exactly this env's containers");
    let ps = env.hardrun().args(["ps", "--format", "json", &running]).output().json();
    assert_eq!(ps.as_array().map(Vec::len), Some(1), "one process in the sleep container: {ps}");
    assert_eq!(env.hardrun().args(["list"]).output(), env.runc().args(["list"]).output());
    assert_eq!(env.audit_text(), "", "passthrough commands are not audited");
}

/// runc's error lines carry a timestamp; the rest must match.
fn without_time(stderr: &str) -> String {
    stderr.lines().map(|l| l.split_once(" level=").map_or(l, |(_, rest)| rest)).collect::<Vec<_>>().join("\n")
}

#[test]
fn exit_codes_and_errors_are_runcs() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let missing = env.id("missing");
    let cases: [&[&str]; 7] = [
        &["state", &missing],
        &["delete", &missing],
        &["kill", &missing, "KILL"],
        &["start", &missing],
        &["ps", &missing],
        &["pause", &missing],
        &["no-such-subcommand"],
    ];
    for args in cases {
        let ours = env.hardrun().args(args).output();
        let theirs = env.runc().args(args).output();
        assert_ne!(theirs.code, 0, "runc {args:?} should fail: {theirs:?}");
        assert_eq!(ours.code, theirs.code, "{args:?}: {ours:?} vs {theirs:?}");
        assert_eq!(ours.stdout, theirs.stdout, "{args:?}");
        assert_eq!(without_time(&ours.stderr), without_time(&theirs.stderr), "{args:?}");
    }
    // A container killed from outside: runc's 128 + signal, through hardrun too.
    let bundle = Bundle::new(&["sleep", "30"]);
    for runtime in [Runtime::Hardrun, Runtime::Runc] {
        let id = env.id("signal");
        let out = std::thread::scope(|s| {
            let run = s.spawn(|| env.invoke(runtime).args(["run", "--bundle"]).arg(bundle.path()).arg(&id).output());
            env.wait_status(&id, "running");
            assert_eq!(env.runc().args(["kill", &id, "KILL"]).output().code, 0);
            run.join().unwrap()
        });
        assert_eq!(out.code, 128 + 9, "{runtime:?}: a container killed by SIGKILL: {out:?}");
    }
}

#[test]
fn baseline_drops_net_raw_and_sets_no_new_privileges() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = docker_like_bundle();
    let control = bundle.duplicate();

    // The same spec under the bare runc keeps NET_RAW: the check below can fail.
    let bare = run_status(&env, Runtime::Runc, &control);
    assert_eq!(status_mask(&bare, "CapEff"), cap_mask(DOCKER_DEFAULT_CAPS));
    assert_eq!(bare["NoNewPrivs"], "0");

    let status = run_status(&env, Runtime::Hardrun, &bundle);
    let want = cap_mask(&docker_caps_without_net_raw());
    for field in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(status_mask(&status, field), want, "{field}: {status:?}");
    }
    assert_eq!(status["NoNewPrivs"], "1");

    let spec = bundle.spec();
    assert_eq!(spec["process"]["noNewPrivileges"], true);
    assert_eq!(spec["process"]["capabilities"]["bounding"], json!(docker_caps_without_net_raw()));
    let record = &env.audit_records()[0];
    assert_eq!(record["decision"], "mutated");
    assert_eq!(record["policies"][0]["name"], "baseline");
}

#[test]
fn custom_policy_dir_replaces_the_baseline() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("kill-chown.yaml", &policy_yaml("kill-chown", "enforce", false, Some(&["CAP_KILL", "CHOWN"])));
    let bundle = docker_like_bundle();
    let status = run_status(&env, Runtime::Hardrun, &bundle);
    let want = cap_mask(&["CAP_KILL", "CAP_CHOWN"]);
    for field in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(status_mask(&status, field), want, "{field}: {status:?}");
    }
    // With a policy directory the embedded baseline (which requires NNP) is not used.
    assert_eq!(status["NoNewPrivs"], "0");
    assert_eq!(env.audit_records()[0]["policies"][0]["name"], "kill-chown");
}

#[test]
fn audit_mode_policy_changes_nothing_and_says_so() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let allow = docker_caps_without_net_raw();
    env.write_policy("watch.yaml", &policy_yaml("watch", "audit", true, Some(&allow)));
    let bundle = docker_like_bundle();
    let before = bundle.config_bytes();

    let status = run_status(&env, Runtime::Hardrun, &bundle);
    assert_eq!(status_mask(&status, "CapEff"), cap_mask(DOCKER_DEFAULT_CAPS), "NET_RAW kept: {status:?}");
    assert_eq!(status_mask(&status, "CapBnd"), cap_mask(DOCKER_DEFAULT_CAPS));
    assert_eq!(status["NoNewPrivs"], "0");
    assert_eq!(bundle.config_bytes(), before, "audit mode must not touch config.json");

    let record = &env.audit_records()[0];
    assert_eq!(record["decision"], "audit-only");
    assert_eq!(record["mode"], "audit");
    let patch = record["patch"].as_array().expect("patch array");
    assert!(
        patch.iter().any(|op| op["path"] == "/process/noNewPrivileges"),
        "the record shows what enforce would change: {patch:?}"
    );
    let dropped = record["findings"].to_string();
    assert!(dropped.contains("CAP_NET_RAW"), "findings name NET_RAW: {dropped}");
}

/// Fields oci-spec (and runc 1.1) do not know, at every level hardrun might rebuild.
fn add_unknown_fields(spec: &mut Value) {
    spec["vendor.example.com/top"] = json!({"nested": [1, 2.5, "x", null, {"deep": true}], "big": u64::MAX});
    spec["zzzLast"] = json!("ünïcödé \u{1F600} \"quoted\" \\ / \t");
    spec["linux"]["vendorRdt"] = json!({"closID": "guaranteed", "l3CacheSchema": "L3:0=ff", "extra": {"k": []}});
    spec["linux"]["personality"] = json!({"domain": "LINUX", "flags": []});
    spec["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 7});
    spec["process"]["vendorProcessKey"] = json!({"a": 1e-7, "b": -0.0});
    spec["process"]["capabilities"]["vendorSet"] = json!(["CAP_NET_RAW"]);
    spec["annotations"] = json!({
        "org.example/plain": "v",
        "org.example/json-ish": "{\"a\":1}",
        "io.kubernetes.cri.container-type": "container",
    });
}

fn object_keys(v: &Value) -> Vec<String> {
    v.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default()
}

/// The pointers of [`add_unknown_fields`]' values.
const UNKNOWN_FIELDS: &[&str] = &[
    "/vendor.example.com~1top",
    "/zzzLast",
    "/linux/vendorRdt",
    "/linux/personality",
    "/process/ioPriority",
    "/process/vendorProcessKey",
    "/process/capabilities/vendorSet",
    "/annotations",
];

#[test]
fn unknown_fields_survive_enforcement() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = Bundle::new(&["true"]);
    bundle.set_caps(DOCKER_DEFAULT_CAPS).set_no_new_privileges(false).edit(add_unknown_fields);
    let before = bundle.spec();

    let id = env.id("lossless");
    let out = env.hardrun().args(["run", "--bundle"]).arg(bundle.path()).arg(&id).output();
    assert_eq!(out.code, 0, "run: {out:?}");
    let after = bundle.spec();
    let record = env.audit_record(&id);
    assert_eq!(record["decision"], "mutated", "the patch must have been applied");
    assert_eq!(after["process"]["capabilities"]["bounding"], json!(docker_caps_without_net_raw()));
    assert_eq!(after["process"]["noNewPrivileges"], true);

    // Every unknown field is still there, unchanged, and no patch operation went near it.
    for pointer in UNKNOWN_FIELDS {
        assert_eq!(after.pointer(pointer), before.pointer(pointer), "{pointer}");
        assert!(before.pointer(pointer).is_some(), "{pointer} was never set");
    }
    for op in record["patch"].as_array().expect("patch") {
        let path = op["path"].as_str().unwrap();
        for pointer in UNKNOWN_FIELDS {
            assert!(!path.starts_with(pointer) && !pointer.starts_with(path), "patch {op} touches {pointer}");
        }
    }
    // Nothing changed beyond the recorded patch ...
    let patch: hardrun::spec::Patch = serde_json::from_value(record["patch"].clone()).expect("RFC 6902 patch");
    let mut replayed = before.clone();
    patch.apply(&mut replayed).expect("the recorded patch applies to the original");
    assert_eq!(replayed, after);
    // ... and keys kept their order (new keys may only come after the old ones).
    for pointer in ["", "/process", "/linux", "/process/capabilities", "/annotations"] {
        let old = object_keys(before.pointer(pointer).unwrap());
        let new = object_keys(after.pointer(pointer).unwrap());
        assert_eq!(new[..old.len()], old[..], "key order of {pointer:?}");
    }
    assert_eq!(after["vendor.example.com/top"]["big"].as_u64(), Some(u64::MAX));
}
