//! The exec clamp against the real runc: `runc exec` into a container created through
//! hardrun gets the container's capability / NoNewPrivileges / AppArmor clamp, whether
//! it asks through `--cap`, `--apparmor` or a `--process` file (what containerd uses).

mod common;

use std::path::PathBuf;

use common::{cap_mask, log_lines, proc_status, status_mask, Bundle, Env, Outcome, DOCKER_DEFAULT_CAPS};
use serde_json::{json, Value};

/// The embedded baseline's capability allow-list, as Docker's defaults meet it.
fn baseline_caps() -> Vec<&'static str> {
    DOCKER_DEFAULT_CAPS.iter().copied().filter(|c| *c != "CAP_NET_RAW").collect()
}

/// A running `sleep` container created and started through hardrun, Docker-shaped
/// (Docker's capabilities, no NoNewPrivileges), so whatever policy is in force has
/// something to clamp.
fn running(env: &Env) -> (String, Bundle) {
    let bundle = Bundle::new(&["sleep", "60"]);
    bundle.set_caps(DOCKER_DEFAULT_CAPS).set_no_new_privileges(false);
    let id = env.id("exec");
    let (out, _) = env.hardrun().args(["create", "--bundle"]).arg(bundle.path()).arg(&id).run_to_files();
    assert_eq!(out.code, 0, "create: {out:?}\naudit: {}", env.audit_text());
    let out = env.hardrun().args(["start", &id]).output();
    assert_eq!(out.code, 0, "start: {out:?}");
    env.wait_status(&id, "running");
    (id, bundle)
}

/// `hardrun --log L exec <args>`: the outcome and the log's lines.
fn exec(env: &Env, args: &[&str]) -> (Outcome, Vec<Value>) {
    let log = env.file("runc-log");
    let out = env.hardrun().log(&log).arg("exec").args(args).output();
    (out, log_lines(&log))
}

/// The exec audit records, oldest first.
fn exec_records(env: &Env) -> Vec<Value> {
    env.audit_records().into_iter().filter(|r| r["command"] == "exec").collect()
}

/// A process file asking for Docker's capabilities plus two more that no policy here
/// forbids (so it is clamped, not denied), without NoNewPrivileges.
fn write_process_file(env: &Env) -> PathBuf {
    let caps: Vec<&str> = DOCKER_DEFAULT_CAPS.iter().copied().chain(["CAP_SYS_NICE", "CAP_IPC_LOCK"]).collect();
    let process = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["cat", "/proc/self/status"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "cwd": "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": false
    });
    let path = env.file("process.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&process).unwrap()).unwrap();
    path
}

fn assert_exec_denied(out: &Outcome, lines: &[Value], rule: &str) {
    assert_eq!(out.code, 1, "exec must be refused for {rule}: {out:?}");
    assert_eq!(out.stdout, "", "nothing ran, nothing printed");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let msg = lines[0]["msg"].as_str().unwrap();
    assert_eq!(lines[0]["level"], "error");
    assert!(msg.starts_with("hardrun: exec denied by policy: ") && msg.contains(&format!("[{rule}]")), "{msg}");
}

#[test]
fn cap_flag_beyond_the_policy_is_denied() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new(); // the embedded baseline
    let (id, _bundle) = running(&env);

    let (out, lines) = exec(&env, &["--cap", "CAP_SYS_ADMIN", &id, "echo", "ran"]);
    assert_exec_denied(&out, &lines, "exec.cap");
    assert!(lines[0]["msg"].as_str().unwrap().contains("CAP_SYS_ADMIN"));
    // Not forbidden, but outside the allow-list: denied too.
    let (out, lines) = exec(&env, &["-c", "CAP_NET_RAW", &id, "echo", "ran"]);
    assert_exec_denied(&out, &lines, "exec.cap");
    let records = exec_records(&env);
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(records.iter().all(|r| r["decision"] == "denied" && r["containerId"] == id.as_str()), "{records:?}");

    // A capability the policy allows passes, and the process gets it.
    let (out, lines) = exec(&env, &["--cap", "CAP_KILL", &id, "cat", "/proc/self/status"]);
    assert_eq!(out.code, 0, "{out:?} {lines:?}");
    let status = proc_status(&out.stdout);
    assert_eq!(status_mask(&status, "CapEff"), cap_mask(&baseline_caps()), "{status:?}");
    assert_eq!(status["NoNewPrivs"], "1", "the hardened config.json is runc's template for a flag exec");
}

#[test]
fn apparmor_flag_other_than_the_policy_profile_is_denied() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new(); // baseline: runtime/default, not required (no AppArmor here)
    let (id, _bundle) = running(&env);
    let (out, lines) = exec(&env, &["--apparmor", "unconfined", &id, "echo", "ran"]);
    assert_exec_denied(&out, &lines, "exec.apparmor");
}

#[test]
fn process_file_is_clamped() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let (id, _bundle) = running(&env);
    let file = write_process_file(&env);
    let file_arg = file.to_str().unwrap();

    let (out, lines) = exec(&env, &["--process", file_arg, &id]);
    assert_eq!(out.code, 0, "{out:?} {lines:?}\naudit: {}", env.audit_text());
    let status = proc_status(&out.stdout);
    for field in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(status_mask(&status, field), cap_mask(&baseline_caps()), "{field}: {status:?}");
    }
    assert_eq!(status["NoNewPrivs"], "1", "{status:?}");

    // The file runc read is the clamped one.
    let rewritten: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(rewritten["noNewPrivileges"], true);
    assert_eq!(rewritten["capabilities"]["bounding"], json!(baseline_caps()));
    assert_eq!(rewritten["env"], json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]));
    let record = exec_records(&env).pop().expect("exec record");
    assert_eq!(record["decision"], "mutated", "{record}");
    let rules: Vec<&str> = record["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert!(rules.contains(&"caps.clamped") && rules.contains(&"process.no-new-privileges"), "{rules:?}");
    let mut sorted = baseline_caps();
    sorted.sort_unstable();
    assert_eq!(record["exec"]["effectiveCaps"], json!(sorted), "{record}");
    let clamped = record["findings"].as_array().unwrap().iter().find(|f| f["rule"] == "caps.clamped").unwrap();
    let message = clamped["message"].as_str().unwrap();
    for cap in ["CAP_NET_RAW", "CAP_SYS_NICE", "CAP_IPC_LOCK"] {
        assert!(message.contains(cap), "{message}");
    }
}

#[test]
fn process_file_with_a_forbidden_capability_is_denied() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new(); // baseline: onForbidden: deny
    let (id, _bundle) = running(&env);
    let file = write_process_file(&env);
    let mut process: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    process["capabilities"]["effective"].as_array_mut().unwrap().push(json!("CAP_SYS_ADMIN"));
    std::fs::write(&file, serde_json::to_vec(&process).unwrap()).unwrap();
    let before = std::fs::read(&file).unwrap();
    let (out, lines) = exec(&env, &["--process", file.to_str().unwrap(), &id]);
    assert_exec_denied(&out, &lines, "caps.forbidden");
    assert_eq!(std::fs::read(&file).unwrap(), before, "a denied exec's process file is left alone");
}

#[test]
fn audit_mode_exec_runs_unchanged() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let allow = baseline_caps();
    env.write_policy("audit.yaml", &common::policy_yaml("audit-only", "audit", true, Some(&allow)));
    let (id, bundle) = running(&env);
    assert_eq!(bundle.spec()["process"]["noNewPrivileges"], false, "audit mode left the container alone");
    let file = write_process_file(&env);
    let before = std::fs::read(&file).unwrap();

    let (out, lines) = exec(&env, &["--process", file.to_str().unwrap(), &id]);
    assert_eq!(out.code, 0, "{out:?} {lines:?}");
    let status = proc_status(&out.stdout);
    let asked: Vec<&str> = DOCKER_DEFAULT_CAPS.iter().copied().chain(["CAP_SYS_NICE", "CAP_IPC_LOCK"]).collect();
    assert_eq!(status_mask(&status, "CapEff"), cap_mask(&asked), "{status:?}");
    assert_eq!(status["NoNewPrivs"], "0");
    assert_eq!(std::fs::read(&file).unwrap(), before, "audit mode must not rewrite the process file");
    let record = exec_records(&env).pop().expect("exec record");
    assert_eq!(record["decision"], "audit-only", "{record}");
    assert_eq!(record["mode"], "audit");
    assert!(!record["patch"].as_array().unwrap().is_empty(), "the record says what enforce would do: {record}");

    // In audit mode a denying flag is recorded, not enforced.
    let (out, _) = exec(&env, &["--cap", "CAP_SYS_ADMIN", &id, "echo", "ran"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "ran\n"), "{out:?}");
    assert_eq!(exec_records(&env).pop().unwrap()["decision"], "audit-only");
}

#[test]
fn exec_into_a_missing_container_fails_cleanly() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let (out, lines) = exec(&env, &["no-such-container", "true"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""), "errors go to the --log file only");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let msg = lines[0]["msg"].as_str().unwrap();
    assert!(msg.starts_with("hardrun: exec denied: cannot read container no-such-container's state"), "{msg}");
    let record = exec_records(&env).pop().expect("a refused exec is audited");
    assert_eq!(record["decision"], "denied");

    // An id that would leave runc's root is refused before any file is read.
    let (out, lines) = exec(&env, &["../../etc", "true"]);
    assert_eq!(out.code, 1);
    assert!(lines[0]["msg"].as_str().unwrap().contains("invalid container id"), "{lines:?}");

    // Without --log, the error goes to stderr, as runc's would.
    let out = env.hardrun().args(["exec", "no-such-container", "true"]).output();
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "");
    assert!(out.stderr.contains("no-such-container"), "{out:?}");
}

#[test]
fn arguments_after_the_container_id_belong_to_the_command() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let (id, _bundle) = running(&env);
    // runc runs `id -u`: `-u` is the command's, not runc's --user flag.
    let (out, lines) = exec(&env, &[&id, "id", "-u"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "0\n"), "{lines:?}");
    // `--cap` after the id is the command's argument, not a capability request.
    let (out, lines) = exec(&env, &[&id, "echo", "--cap", "CAP_SYS_ADMIN"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "--cap CAP_SYS_ADMIN\n"), "{lines:?}");
}

#[test]
fn no_new_privs_false_flag_cannot_lift_nnp() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new(); // baseline: noNewPrivileges: true
    let (id, _bundle) = running(&env);
    // runc exec: `if context.IsSet("no-new-privs") { p.NoNewPrivileges = context.Bool(...) }`.
    let (out, _) = exec(&env, &["--no-new-privs=false", &id, "cat", "/proc/self/status"]);
    let ran_without_nnp = out.code == 0 && proc_status(&out.stdout).get("NoNewPrivs").map(String::as_str) != Some("1");
    assert!(!ran_without_nnp, "exec ran without NoNewPrivs under a policy requiring it: {out:?}");
    let (out, lines) = exec(&env, &["--no-new-privs=false", &id, "true"]);
    assert_exec_denied(&out, &lines, "exec.no-new-privs");
    // Asking for it explicitly is fine.
    let (out, lines) = exec(&env, &["--no-new-privs", &id, "true"]);
    assert_eq!(out.code, 0, "{lines:?}");
}

#[test]
fn exec_as_root_is_denied_where_the_policy_requires_non_root() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy(
        "nonroot.yaml",
        "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {name: nonroot}\nspec:\n  process: {runAsNonRoot: true}\n",
    );
    let bundle = Bundle::new(&["sleep", "60"]);
    bundle.edit(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let id = env.id("exec-root");
    let (out, _) = env.hardrun().args(["create", "--bundle"]).arg(bundle.path()).arg(&id).run_to_files();
    assert_eq!(out.code, 0, "create: {out:?}\naudit: {}", env.audit_text());
    assert_eq!(env.hardrun().args(["start", &id]).output().code, 0);
    env.wait_status(&id, "running");
    let (out, lines) = exec(&env, &[&id, "id", "-u"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "1000\n"), "{lines:?}");
    for user in ["0", "0:0", "root"] {
        let (out, lines) = exec(&env, &["--user", user, &id, "id", "-u"]);
        assert_eq!(out.code, 1, "--user {user} must be refused: {out:?}");
        let msg = lines[0]["msg"].as_str().unwrap();
        assert!(msg.contains("[process.run-as-root]") || msg.contains("[exec.user]"), "{msg}");
    }
    let path = write_process_file(&env);
    let (out, lines) = exec(&env, &["--process", path.to_str().unwrap(), &id]);
    assert_exec_denied(&out, &lines, "process.run-as-root");
}
