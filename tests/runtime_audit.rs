//! The audit log under real runc: one whole, chained JSON line per create (and per
//! delete), even when many hardrun processes append at once, and each create's line
//! says exactly what was done.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use common::{Bundle, Env, DOCKER_DEFAULT_CAPS};
use hardrun::spec::Patch;
use sha2::{Digest, Sha256};

const PARALLEL: usize = 50;
/// Bytes of filler per audit line.
const LINE_FILLER: usize = 32 * 1024;

#[test]
fn parallel_creates_each_get_one_whole_line() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    // Docker's caps: every create is rewritten, so every line carries a patch and findings.
    let template = Bundle::new(&["sleep", "30"]);
    template.set_caps(DOCKER_DEFAULT_CAPS).set_no_new_privileges(false);
    let ids: Vec<String> = (0..PARALLEL).map(|_| env.id("par")).collect();
    // Lines far past PIPE_BUF (4 KiB), each with its own filler: a torn or interleaved
    // append shows up as a bad line or as one container's image in another's record.
    let image = |i: usize| {
        format!("registry.example/{}:{i}", char::from(b'a' + (i % 26) as u8).to_string().repeat(LINE_FILLER))
    };
    let bundles: Vec<Bundle> = (0..PARALLEL)
        .map(|i| {
            let b = template.duplicate();
            b.set_annotations(&[("io.kubernetes.cri.image-name", &image(i))]);
            b
        })
        .collect();

    env.create_in_parallel(&bundles, &ids);

    let text = env.audit_text();
    assert!(text.ends_with('\n'), "the last line is cut");
    let records = env.audit_records();
    assert_eq!(records.len(), PARALLEL, "one line per create");
    assert_chained(&text);
    let logged: BTreeSet<&str> = records.iter().map(|r| r["containerId"].as_str().expect("containerId")).collect();
    let created: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(logged, created, "distinct ids, one each");
    for r in &records {
        assert_eq!(r["decision"], "mutated", "{r}");
        let i = ids.iter().position(|id| r["containerId"] == id.as_str()).unwrap();
        assert!(r["context"]["image"] == image(i).as_str(), "record of {} has another image", ids[i]);
    }
    let mut listed = env.containers();
    listed.sort();
    assert_eq!(listed, created.iter().map(|s| s.to_string()).collect::<Vec<_>>());

    std::thread::scope(|s| {
        for id in &ids {
            let env = &env;
            s.spawn(move || {
                let out = env.hardrun().args(["delete", "-f", id]).output();
                assert_eq!(out.code, 0, "delete {id}: {out:?}");
            });
        }
    });
    assert_eq!(env.containers(), Vec::<String>::new());
    // Each delete leaves a lifecycle line, appended just as concurrently.
    let records = env.audit_records();
    assert_eq!(records.len(), 2 * PARALLEL);
    let deleted: BTreeSet<&str> = records[PARALLEL..]
        .iter()
        .inspect(|r| assert_eq!(r["command"], "delete", "{r}"))
        .map(|r| r["containerId"].as_str().expect("containerId"))
        .collect();
    assert_eq!(deleted, created);
    assert_chained(&env.audit_text());
}

/// The log's integrity chain: `seq` counts 1, 2, 3 … and each `prev` is the SHA-256 of
/// the line before it (`genesis` for the first). Concurrent writers that read the same
/// tail, or wrote without the lock, break it.
fn assert_chained(text: &str) {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let r: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        assert_eq!(r["seq"].as_u64(), Some(i as u64 + 1), "seq of line {}", i + 1);
        let want = match i {
            0 => "genesis".to_owned(),
            _ => format!("sha256:{:x}", Sha256::digest(lines[i - 1].as_bytes())),
        };
        assert_eq!(r["prev"], want.as_str(), "prev of line {}", i + 1);
    }
}

#[test]
fn record_says_what_was_done() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let bundle = Bundle::new(&["sleep", "30"]);
    bundle.set_caps(DOCKER_DEFAULT_CAPS).set_no_new_privileges(false);
    let original = bundle.spec();
    let id = env.id("record");
    // No --bundle: runc's default is the working directory, and so is hardrun's.
    let (out, _) = env.hardrun().args(["create", &id]).cwd(bundle.path()).run_to_files();
    assert_eq!(out.code, 0, "create: {out:?}");
    assert_eq!(env.wait_status(&id, "created")["bundle"], bundle.path().to_str().unwrap());

    let r = env.audit_record(&id);
    assert_eq!(r["apiVersion"], "hardrun.dev/audit/v1");
    assert_eq!(r["command"], "create");
    assert_eq!(r["bundle"], bundle.path().to_str().unwrap(), "the bundle, made absolute");
    assert_eq!(r["context"]["containerType"], "container");
    assert_eq!(r["mode"], "enforce");
    assert_eq!(r["decision"], "mutated");
    assert!(r.get("reason").is_none(), "{r}");
    assert!(r["time"].as_str().is_some_and(|t| t.len() > 20 && t.ends_with('Z')), "{r}");
    assert!(r["durationUs"].is_u64(), "{r}");
    let policy = &r["policies"][0];
    assert_eq!(policy["name"], "baseline");
    assert_eq!(policy["source"], "<embedded>/baseline.yaml");
    assert!(policy["hash"].as_str().is_some_and(|h| h.starts_with("sha256:") && h.len() == 7 + 64), "{policy}");
    let rules: BTreeSet<&str> = r["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    for rule in ["caps.clamped", "process.no-new-privileges"] {
        assert!(rules.contains(rule), "no {rule} finding: {rules:?}");
    }

    // The recorded patch, applied to the original spec, is exactly what runc got.
    let patch: Patch = serde_json::from_value(r["patch"].clone()).expect("patch is RFC 6902");
    let mut replayed = original.clone();
    patch.apply(&mut replayed).expect("the recorded patch applies to the original");
    assert_eq!(replayed, bundle.spec());
    assert_ne!(replayed, original);

    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.audit_log), 0o600, "audit log mode");
    assert_eq!(mode(env.audit_log.parent().unwrap()), 0o700, "audit dir mode");
}
