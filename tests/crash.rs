//! Crash consistency: hardrun killed with SIGKILL at every step of a create (the
//! debug build's `HARDRUN_CRASH_AT` points, see src/faults.rs) leaves config.json either
//! as it was or fully edited, never runs runc, leaves the audit log readable with at most
//! one torn line, and the next create on the node works.

mod common;

use common::{Bundle, Env};
use hardrun::faults::{CRASH_ENV, POINTS};
use serde_json::Value;
use std::process::Stdio;

/// The points at or after which config.json holds the edited spec.
fn spec_replaced_at(point: &str) -> bool {
    let renamed = POINTS.iter().position(|p| *p == "spec.renamed").unwrap();
    POINTS.iter().position(|p| *p == point).unwrap() >= renamed
}

/// The spec hardrun would write for `bundle` (a dry run through `hardrun explain`).
fn hardened_spec(env: &Env, bundle: &Bundle) -> Value {
    let out = std::process::Command::new(common::HARDRUN)
        .args(["explain", "--format", "spec", "--bundle"])
        .arg(bundle.path())
        .env("HARDRUN_CONFIG", &env.config_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "explain: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn create_crashing_at(env: &Env, bundle: &Bundle, id: &str, point: &str) -> std::process::ExitStatus {
    env.hardrun()
        .log(&env.file("runc-log"))
        .args(["create", "--bundle"])
        .arg(bundle.path())
        .arg(id)
        .command()
        .env(CRASH_ENV, point)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
}

fn audit_verify(env: &Env) -> (bool, String) {
    let out =
        std::process::Command::new(common::HARDRUN).arg("audit").arg("verify").arg(&env.audit_log).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn a_kill_at_any_point_of_a_create_leaves_a_consistent_node() {
    if !common::prerequisites_met() {
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    for point in POINTS {
        let env = Env::new();
        let bundle = Bundle::new(&["true"]);
        bundle.set_no_new_privileges(false);
        // A record already in the log, so a crash has a chain to break.
        let first = env.id("crash-first");
        let (out, _) =
            env.hardrun().args(["create", "--bundle"]).arg(bundle.duplicate().path()).arg(&first).run_to_files();
        assert_eq!(out.code, 0, "{point}: first create: {out:?}");
        env.delete(&first);

        let original = bundle.spec();
        let hardened = hardened_spec(&env, &bundle);
        assert_ne!(original, hardened, "the baseline must change this spec, or the test proves nothing");
        let id = env.id("crash");
        let status = create_crashing_at(&env, &bundle, &id, point);
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{point}: hardrun did not die there: {status:?}");
        assert!(env.state(&id).is_none(), "{point}: runc ran although hardrun died first");

        let now = bundle.spec();
        let expected = if spec_replaced_at(point) { &hardened } else { &original };
        assert_eq!(&now, expected, "{point}: config.json is neither untouched nor fully edited as expected");

        let (ok, report) = audit_verify(&env);
        if *point == "audit.partial-line" {
            assert!(report.contains("torn"), "{point}: the torn line was not reported: {report}");
        } else {
            assert!(ok, "{point}: audit log does not verify after the crash: {report}");
        }

        // The node carries on: the next create of the same bundle (as containerd's retry
        // would) runs, chains after whatever the crash left, and leaves no temp file.
        bundle.write_spec(&original);
        let retry = env.id("crash-retry");
        let (out, _) = env.hardrun().args(["create", "--bundle"]).arg(bundle.path()).arg(&retry).run_to_files();
        assert_eq!(out.code, 0, "{point}: create after the crash failed: {out:?}");
        assert_eq!(bundle.spec(), hardened, "{point}: the retry did not write the edited spec");
        env.delete(&retry);
        let leftovers: Vec<_> = std::fs::read_dir(bundle.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{point}: temp files left in the bundle: {leftovers:?}");
        let (ok, report) = audit_verify(&env);
        assert!(ok, "{point}: audit log does not verify after the retry: {report}");
        // Parsed by hand: the torn line is not JSON.
        let records: Vec<Value> = env.audit_text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let last = records.into_iter().rev().find(|r| r["command"] == "create").unwrap();
        assert_eq!(last["containerId"], retry.as_str(), "{point}: the retry's record is missing");
        if *point == "audit.partial-line" {
            assert_eq!(last["afterTorn"], true, "{point}: the record after the torn line is not marked");
        }
    }
}
