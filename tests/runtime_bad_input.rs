//! hardrun as runc, given bad input: it fails closed with runc's exit code 1 and one
//! JSON error line in runc's `--log` naming the problem, leaves config.json as it was,
//! and never lets runc create the container. Passthrough commands do no policy work,
//! so a broken policy directory does not affect them.

mod common;

use std::path::Path;

use common::{log_lines, Bundle, Env, Outcome};
use serde_json::json;

/// A policy file whose YAML breaks on line 8, column 7: inside the unclosed flow
/// sequence, `CAP_KILL` continues as a plain scalar onto line 8 and the `:` after
/// `mode` is where a `,` or `]` was expected.
const BROKEN_POLICY: &str = "apiVersion: hardrun.dev/v1alpha1
kind: Policy
metadata:
  name: broken
spec:
  capabilities:
    allow: [CAP_KILL
  mode: enforce
";

/// Runs `hardrun --log L --log-format json <args>` and checks the refusal: exit 1,
/// nothing on stdout, exactly one error line in L whose message contains every one of
/// `needles`, and no container in the env's runc root. Returns the message.
fn assert_refused(env: &Env, args: &[&str], needles: &[&str]) -> String {
    let log = env.file("runc-log.json");
    let (out, _) = env.hardrun().log(&log).args(args).run_to_files();
    assert_refused_outcome(env, &out, &log, needles, args)
}

fn assert_refused_outcome(env: &Env, out: &Outcome, log: &Path, needles: &[&str], what: &[&str]) -> String {
    assert_eq!(out.code, 1, "{what:?}: exit code: {out:?}");
    assert_eq!(out.stdout, "", "{what:?}: hardrun never writes stdout");
    let lines = log_lines(log);
    assert_eq!(lines.len(), 1, "{what:?}: log lines: {lines:?} (stderr {:?})", out.stderr);
    let line = &lines[0];
    assert_eq!(line["level"], "error", "{line}");
    assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
    let msg = line["msg"].as_str().expect("msg is a string").to_owned();
    for needle in needles {
        assert!(msg.contains(needle), "{what:?}: log message {msg:?} lacks {needle:?}");
    }
    assert_eq!(env.containers(), Vec::<String>::new(), "{what:?}: a container was created");
    msg
}

/// `create --bundle <bundle> <id>` refused; config.json unchanged byte-for-byte.
fn assert_create_refused(env: &Env, bundle: &Bundle, needles: &[&str]) -> String {
    let before = std::fs::read(bundle.config_path()).ok();
    let id = env.id("bad");
    let bundle_arg = bundle.path().to_str().unwrap();
    let msg = assert_refused(env, &["create", "--bundle", bundle_arg, &id], needles);
    assert!(msg.starts_with("hardrun: "), "{msg}");
    assert_eq!(std::fs::read(bundle.config_path()).ok(), before, "config.json changed");
    assert!(env.state(&id).is_none(), "runc knows container {id}");
    msg
}

#[test]
fn bundle_flag_without_value() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let msg = assert_refused(&env, &["create", "--bundle"], &["flag needs an argument: -bundle"]);
    // runc says the same about the same argv.
    let runc_log = env.file("runc-own-log.json");
    let (theirs, _) = env.runc().log(&runc_log).args(["create", "--bundle"]).run_to_files();
    assert_eq!(theirs.code, 1);
    assert_eq!(log_lines(&runc_log).last().unwrap()["msg"], msg.as_str());
}

#[test]
fn bundle_without_config_json() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = Bundle::new(&["true"]);
    std::fs::remove_file(bundle.config_path()).unwrap();
    let bundle_path = bundle.path().display().to_string();
    assert_create_refused(&env, &bundle, &["has no config.json", &bundle_path]);
    assert!(!bundle.config_path().exists(), "hardrun created a config.json");
}

#[test]
fn config_json_not_json() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = Bundle::new(&["true"]);
    std::fs::write(bundle.config_path(), "{\"ociVersion\": \"1.0.2\",\n  \"process\": {oops}\n}").unwrap();
    let path = bundle.config_path().display().to_string();
    assert_create_refused(&env, &bundle, &[&path, "is not valid JSON", "line 2 column 15"]);
}

#[test]
fn config_json_not_an_object() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = Bundle::new(&["true"]);
    std::fs::write(bundle.config_path(), "[{\"ociVersion\": \"1.0.2\"}]").unwrap();
    assert_create_refused(&env, &bundle, &["is not a JSON object"]);
}

/// The bundle's spec padded (in an annotation) to exactly `len` bytes.
fn spec_of_length(bundle: &Bundle, len: usize) -> Vec<u8> {
    let mut spec = bundle.spec();
    spec["annotations"] = json!({"org.example/padding": ""});
    let base = serde_json::to_vec(&spec).unwrap().len();
    spec["annotations"]["org.example/padding"] = json!("p".repeat(len - base));
    let bytes = serde_json::to_vec(&spec).unwrap();
    assert_eq!(bytes.len(), len);
    bytes
}

#[test]
fn config_json_over_the_size_cap() {
    if !common::prerequisites_met() {
        return;
    }
    let cap = usize::try_from(hardrun::spec::MAX_SPEC_BYTES).unwrap();
    let env = Env::new();
    let bundle = Bundle::new(&["true"]);
    std::fs::write(bundle.config_path(), spec_of_length(&bundle, cap + 1)).unwrap();
    assert_create_refused(&env, &bundle, &["is larger than", &cap.to_string()]);

    // At the cap exactly, the same spec runs.
    std::fs::write(bundle.config_path(), spec_of_length(&bundle, cap)).unwrap();
    let id = env.id("at-cap");
    let out = env.hardrun().args(["run", "--bundle"]).arg(bundle.path()).arg(&id).output();
    assert_eq!(out.code, 0, "a spec of exactly MAX_SPEC_BYTES: {out:?}");
}

#[test]
fn config_json_symlink_out_of_the_bundle() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = Bundle::new(&["true"]);
    // A valid spec that the baseline would rewrite, were the link followed.
    bundle.set_caps(common::DOCKER_DEFAULT_CAPS).set_no_new_privileges(false);
    let outside = env.file("outside.json");
    std::fs::rename(bundle.config_path(), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, bundle.config_path()).unwrap();
    let target_before = std::fs::read(&outside).unwrap();

    assert_create_refused(&env, &bundle, &["is a symlink"]);
    assert_eq!(std::fs::read(&outside).unwrap(), target_before, "the link's target changed");
    assert_eq!(std::fs::read_link(bundle.config_path()).unwrap(), outside, "the link was replaced");
}

#[test]
fn policy_file_with_a_yaml_syntax_error() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let policy = env.write_policy("broken.yaml", BROKEN_POLICY);
    let bundle = Bundle::new(&["true"]);
    let place = format!("{}:8:7", policy.display());
    let msg = assert_create_refused(&env, &bundle, &[&place]);
    assert!(msg.contains("policy"), "{msg}");
    // Fail closed, and on the record.
    let records = env.audit_records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["decision"], "denied");
    assert!(records[0]["reason"].as_str().unwrap().contains(&place), "{}", records[0]);
}

#[test]
fn unknown_node_config_key() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_config(&format!("{}policyDirectory: /etc/hardrun/p\n", env.config_yaml(common::RUNC)));
    let bundle = Bundle::new(&["true"]);
    let config = env.config_path.display().to_string();
    assert_create_refused(&env, &bundle, &[&config, "unknown field `policyDirectory`", "line 5"]);
}

#[test]
fn node_config_others_can_change() {
    use std::os::unix::fs::PermissionsExt;
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_config(&env.config_yaml(common::RUNC));
    std::fs::set_permissions(&env.config_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let bundle = Bundle::new(&["true"]);
    let config = env.config_path.display().to_string();
    assert_create_refused(&env, &bundle, &[&config, "refusing a file others can change", "anyone (mode 0666)"]);
}

#[test]
fn runc_missing() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::with_runtime("/nonexistent/runc");
    let bundle = Bundle::new(&["true"]);
    assert_create_refused(&env, &bundle, &["/nonexistent/runc"]);
    // Passthrough too: there is no runc to pass to.
    let id = env.id("gone");
    assert_refused(&env, &["state", &id], &["hardrun: ", "/nonexistent/runc"]);
    assert_refused(&env, &["list"], &["/nonexistent/runc"]);
}

#[test]
fn passthrough_ignores_a_broken_policy_dir() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    env.write_policy("broken.yaml", BROKEN_POLICY);
    let bundle = Bundle::new(&["sleep", "30"]);
    let id = env.id("pass-broken");
    let (out, _) = env.runc().args(["create", "--bundle"]).arg(bundle.path()).arg(&id).run_to_files();
    assert_eq!(out.code, 0, "runc create: {out:?}");
    let out = env.hardrun().args(["start", &id]).output();
    assert_eq!(out.code, 0, "hardrun start: {out:?}");
    env.wait_status(&id, "running");
    let audit_after_start = env.audit_text();

    let missing = env.id("missing");
    let commands: [&[&str]; 5] = [
        &["state", &id],
        &["list", "--format", "json"],
        &["list"],
        &["ps", "--format", "json", &id],
        &["state", &missing],
    ];
    for args in commands {
        let ours = env.hardrun().args(args).output();
        let theirs = env.runc().args(args).output();
        assert_eq!((ours.code, &ours.stdout), (theirs.code, &theirs.stdout), "{args:?}: {ours:?} vs {theirs:?}");
    }
    assert_eq!(env.hardrun().args(["state", &id]).output().json()["status"], "running");
    assert_eq!(env.audit_text(), audit_after_start, "state, list and ps leave no audit line");
    let out = env.hardrun().args(["delete", "-f", &id]).output();
    assert_eq!(out.code, 0, "hardrun delete -f: {out:?}");
    assert!(env.state(&id).is_none());

    // The same policy dir does stop a create: it really is broken.
    let other = Bundle::new(&["true"]);
    let log = env.file("log.json");
    let never = env.id("never");
    let (out, _) = env.hardrun().log(&log).args(["create", "--bundle"]).arg(other.path()).arg(&never).run_to_files();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(env.state(&never).is_none());
}
