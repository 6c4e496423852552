//! OCI hooks injected from declarative definitions, run by the real runc.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{log_lines, Bundle, Env, HARDRUN};
use serde_json::{json, Value};

/// A node whose config trusts `<env>/hooks.d` and whose policy injects `hooks`.
fn env_with_hooks(hooks: &[&str]) -> (Env, PathBuf) {
    let env = Env::new();
    let dir = env.dir().join("hooks.d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = env.config_yaml(common::RUNC);
    config.push_str(&format!("hookDirs: [{}]\nhookTimeout: 5\n", dir.display()));
    env.write_config(&config);
    let list = hooks.iter().map(|h| format!("\"{h}\"")).collect::<Vec<_>>().join(", ");
    env.write_policy(
        "hooks.yaml",
        &format!(
            "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {{name: hooks}}\nspec:\n  hooks: [{list}]\n"
        ),
    );
    (env, dir)
}

/// A hook script that saves the state it gets on stdin as `<out>/<stage>.json` and
/// appends the stage to `<out>/order`.
fn recorder_script(env: &Env) -> (PathBuf, PathBuf) {
    let out = env.dir().join("hook-out");
    std::fs::create_dir(&out).unwrap();
    let script = env.dir().join("record-hook.sh");
    std::fs::write(&script, "#!/bin/sh\ncat > \"$2/$1.json\"\necho \"$1\" >> \"$2/order\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, out)
}

fn write_definition(dir: &Path, name: &str, def: Value) {
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&def).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
}

fn recorder_definition(script: &Path, out: &Path, stage: &str, when: Value) -> Value {
    json!({
        "version": "1.0.0",
        "hook": {"path": script, "args": ["record-hook.sh", stage, out], "timeout": 5},
        "when": when,
        "stages": [stage]
    })
}

fn wait_for(path: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn create_runtime_and_poststop_hooks_run_in_order_with_the_state() {
    if !common::prerequisites_met() {
        return;
    }
    let (env, dir) = env_with_hooks(&["10-created", "20-stopped"]);
    let (script, out) = recorder_script(&env);
    write_definition(&dir, "10-created", recorder_definition(&script, &out, "createRuntime", json!({"always": true})));
    write_definition(&dir, "20-stopped", recorder_definition(&script, &out, "poststop", json!({"always": true})));
    let bundle = Bundle::new(&["true"]);
    let id = env.id("hooks");
    let run = env.hardrun().args(["run", "--bundle"]).arg(bundle.path()).arg(&id).output();
    assert_eq!(run.code, 0, "{run:?}\naudit: {}", env.audit_text());
    // runc runs poststop hooks at delete; `run` deletes the container when it exits.
    assert!(wait_for(&out.join("poststop.json")), "poststop hook did not run");
    let order = std::fs::read_to_string(out.join("order")).unwrap();
    assert_eq!(order, "createRuntime\npoststop\n");
    let created: Value = serde_json::from_slice(&std::fs::read(out.join("createRuntime.json")).unwrap()).unwrap();
    assert_eq!(created["id"], id.as_str());
    assert_eq!(created["status"], "creating");
    assert_eq!(created["bundle"], bundle.path().to_str().unwrap());
    let record = env.audit_record(&id);
    let rules: Vec<&str> = record["findings"].as_array().unwrap().iter().filter_map(|f| f["rule"].as_str()).collect();
    assert_eq!(rules.iter().filter(|r| **r == "hooks.injected").count(), 2, "{record}");
}

#[test]
fn a_hook_whose_when_does_not_match_is_not_injected() {
    if !common::prerequisites_met() {
        return;
    }
    let (env, dir) = env_with_hooks(&["only-nginx", "team"]);
    let (script, out) = recorder_script(&env);
    write_definition(
        &dir,
        "only-nginx",
        recorder_definition(&script, &out, "createRuntime", json!({"commands": [".*/nginx$"]})),
    );
    write_definition(
        &dir,
        "team",
        recorder_definition(&script, &out, "poststart", json!({"annotations": {"^example\\.com/team$": "^payments$"}})),
    );
    let bundle = Bundle::new(&["true"]);
    bundle.set_annotations(&[("example.com/team", "payments")]);
    let explained = std::process::Command::new(HARDRUN)
        .env("HARDRUN_CONFIG", env.dir().join("config.yaml"))
        .args(["explain", "--format", "json", "--bundle"])
        .arg(bundle.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&explained.stdout).unwrap();
    let hooks = &v["spec"]["hooks"];
    assert!(hooks.get("createRuntime").is_none(), "nginx-only hook injected into a `true` container: {hooks}");
    assert_eq!(hooks["poststart"][0]["path"], script.to_str().unwrap());
}

#[test]
fn untrusted_or_broken_definitions_fail_closed() {
    if !common::prerequisites_met() {
        return;
    }
    let (env, dir) = env_with_hooks(&["unsafe"]);
    let (script, out) = recorder_script(&env);
    write_definition(&dir, "unsafe", recorder_definition(&script, &out, "createRuntime", json!({"always": true})));
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o777)).unwrap();
    let bundle = Bundle::new(&["true"]);
    let before = bundle.config_bytes();
    let log = env.file("log");
    let id = env.id("unsafe");
    let (outcome, _) = env.hardrun().log(&log).args(["create", "--bundle"]).arg(bundle.path()).arg(&id).run_to_files();
    assert_eq!(outcome.code, 1);
    let msg = log_lines(&log)[0]["msg"].as_str().unwrap().to_owned();
    assert!(msg.contains("[hooks.invalid]") && msg.contains("writable by group or others"), "{msg}");
    assert_eq!(bundle.config_bytes(), before, "config.json untouched");
    assert!(env.state(&id).is_none());

    // A definition that does not parse, and one the policy names but no file defines.
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("unsafe.json"), "{\"version\": \"1.0.0\", ").unwrap();
    let (outcome, _) = env.hardrun().log(&log).args(["create", "--bundle"]).arg(bundle.path()).arg(&id).run_to_files();
    assert_eq!(outcome.code, 1);
    let (env2, _) = env_with_hooks(&["missing"]);
    let log2 = env2.file("log");
    let (outcome, _) =
        env2.hardrun().log(&log2).args(["create", "--bundle"]).arg(bundle.path()).arg(&id).run_to_files();
    assert_eq!(outcome.code, 1);
    assert!(log_lines(&log2)[0]["msg"].as_str().unwrap().contains("no such hook definition"));
}

#[test]
fn shipped_poststop_hook_records_the_stop() {
    if !common::prerequisites_met() {
        return;
    }
    let (env, dir) = env_with_hooks(&["audit-poststop"]);
    // The shipped definition, pointed at the binary under test and this node's config.
    let shipped: Value = serde_json::from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks/audit-poststop.json")).unwrap(),
    )
    .unwrap();
    let mut def = shipped.clone();
    def["hook"]["path"] = json!(HARDRUN);
    def["hook"]["env"] = json!([format!("HARDRUN_CONFIG={}", env.dir().join("config.yaml").display())]);
    write_definition(&dir, "audit-poststop", def);
    let bundle = Bundle::new(&["true"]);
    let id = env.id("poststop");
    let run = env.hardrun().args(["run", "--bundle"]).arg(bundle.path()).arg(&id).output();
    assert_eq!(run.code, 0, "{run:?}");
    let records = env.audit_records_of(&id);
    let commands: Vec<&str> = records.iter().filter_map(|r| r["command"].as_str()).collect();
    assert_eq!(commands, ["run", "poststop"], "{records:?}");
    assert_eq!(records[1]["bundle"], bundle.path().to_str().unwrap());
}

#[test]
fn a_hanging_hook_is_killed_at_its_timeout() {
    if !common::prerequisites_met() {
        return;
    }
    let (env, dir) = env_with_hooks(&["hang"]);
    let script = env.dir().join("hang.sh");
    // `exec`: runc kills the hook process at the timeout, but (runc 1.1) then waits for
    // its stdout pipe, which a surviving child would hold open.
    std::fs::write(&script, "#!/bin/sh\nexec sleep 60\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_definition(
        &dir,
        "hang",
        json!({"version": "1.0.0", "hook": {"path": script, "timeout": 1}, "when": {"always": true}, "stages": ["createRuntime"]}),
    );
    let bundle = Bundle::new(&["true"]);
    let log = env.file("log");
    let id = env.id("hang");
    let started = Instant::now();
    let (outcome, _) = env.hardrun().log(&log).args(["create", "--bundle"]).arg(bundle.path()).arg(&id).run_to_files();
    assert!(started.elapsed() < Duration::from_secs(30), "runc did not kill the hook");
    assert_ne!(outcome.code, 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("timed out") || text.contains("timeout"), "{text}");
}
