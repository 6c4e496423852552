//! Reading the audit log back (issue #7): the chain verifies, tampering is found at
//! the right line, rotation under concurrent writers keeps the chain, filters and
//! summary agree with a log of known counts, metrics parse and only grow, `-f`
//! follows across rotation. Logs are written by the real writer
//! (`hardrun::audit::append`); the commands are run as the `hardrun` binary.
//!
//! The last two tests go through hardrun and the real runc: 200 parallel creates
//! leave 200 chained records, and a full disk denies a create unless the node says
//! `auditFailure: allow`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::Duration;

use serde_json::{json, Value};

use common::{Bundle, Env, DOCKER_DEFAULT_CAPS, HARDRUN};
use hardrun::audit::{append, rotated_path, Decision, PolicyRef, Record};
use hardrun::config::AuditLogConfig;
use hardrun::enforce::Finding;
use hardrun::spec::{Patch, PatchOp};

// ---------------------------------------------------------------------------------
// A generated log

/// A node in a temp dir: a config whose auditLog is `audit/audit.jsonl`.
struct Node {
    dir: tempfile::TempDir,
    log: AuditLogConfig,
    config: PathBuf,
}

impl Node {
    fn new(max_size: u64, max_files: u32) -> Node {
        let dir = tempfile::Builder::new().prefix("hardrun-audit-").tempdir().unwrap();
        let log = AuditLogConfig { path: dir.path().join("audit/audit.jsonl"), max_size, max_files };
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "auditLog: {{path: {}, maxSize: {max_size}, maxFiles: {max_files}}}\nstateDir: {}\n",
                log.path.display(),
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        Node { dir, log, config }
    }

    /// `hardrun audit <args>` against this node.
    fn audit(&self, args: &[&str]) -> Run {
        let out = Command::new(HARDRUN)
            .arg("audit")
            .args(args)
            .env("HARDRUN_CONFIG", &self.config)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log.path).unwrap().lines().map(str::to_owned).collect()
    }

    /// A copy of the current log with `edit` applied to its lines, as a new file.
    fn tampered(&self, name: &str, edit: impl FnOnce(&mut Vec<String>)) -> String {
        let mut lines = self.lines();
        edit(&mut lines);
        let path = self.dir.path().join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path.display().to_string()
    }
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }
    fn jsonl(&self) -> Vec<Value> {
        common::json_lines(&self.stdout, "hardrun audit output")
    }
}

const NAMESPACES: [&str; 3] = ["team-a", "team-b", "kube-system"];
const DECISIONS: [Decision; 4] = [Decision::Allowed, Decision::Mutated, Decision::Denied, Decision::AuditOnly];

/// Record `i` of a generated log. Its shape cycles with `i` so every count is
/// known: decision `i % 4`, namespace `i % 3`, image `app-{i % 5}`, policy
/// `restricted` on odd `i`, a `host.privileged` deny finding on denials, a
/// `caps.clamped` mutation on mutations and audit-only records, and time
/// 2026-01-01T00:00:00Z + `i` minutes.
fn record(i: usize) -> Record {
    let mut r = Record::new("create");
    r.container_id = Some(format!("ctr-{i}"));
    r.context.namespace = Some(NAMESPACES[i % 3].to_owned());
    r.context.pod_name = Some(format!("pod-{i}"));
    r.context.container_name = Some(if i.is_multiple_of(2) { "app" } else { "sidecar" }.to_owned());
    r.image.requested = Some(format!("registry.example/app-{}:1.0", i % 5));
    r.image.digest = Some(format!("sha256:{}", format!("{:02}", i % 5).repeat(32)));
    let policy = |name: &str| PolicyRef { name: name.into(), hash: "sha256:00".into(), source: "test".into() };
    r.policies.push(policy("baseline"));
    if i % 2 == 1 {
        r.policies.push(policy("restricted"));
    }
    r.decision = DECISIONS[i % 4];
    r.time = format!("2026-01-01T{:02}:{:02}:00.000000000Z", i / 60 % 24, i % 60);
    match r.decision {
        Decision::Denied => {
            r.findings.push(Finding::deny("host.privileged", "privileged containers are not allowed"));
            r.reason = Some("host.privileged: privileged containers are not allowed".into());
        }
        Decision::Mutated | Decision::AuditOnly => {
            let patch = Patch(vec![PatchOp::replace("/process/noNewPrivileges", json!(true))]);
            r.findings.push(Finding::mutate("caps.clamped", "dropped CAP_NET_RAW", patch.clone()));
            r.patch = patch;
        }
        _ => r.findings.push(Finding::info("apparmor.skipped", "the host has no AppArmor")),
    }
    r
}

fn generate(log: &AuditLogConfig, range: std::ops::Range<usize>) {
    for i in range {
        append(log, &mut record(i), false).unwrap();
    }
}

// ---------------------------------------------------------------------------------
// verify

/// A change to a log's lines.
type Tamper = dyn FnOnce(&mut Vec<String>);

#[test]
fn chain_verifies_and_each_tampering_is_found_at_its_line() {
    let node = Node::new(u64::MAX, 5);
    generate(&node.log, 0..20);
    let ok = node.audit(&["verify"]).ok();
    assert!(ok.stdout.contains("audit chain intact: 20 records, seq 1…20 in 1 file"), "{ok:?}");

    // Each tampering, on line 8 of a copy: (what, edit, expected location and words).
    let cases: Vec<(&str, Box<Tamper>, &str)> = vec![
        ("edit", Box::new(|l| l[7] = l[7].replace("\"audit-only\"", "\"allowed\"")), ":8: edited line"),
        ("edit-seq", Box::new(|l| l[7] = l[7].replace("\"seq\":8,", "\"seq\":80,")), ":8: edited line"),
        ("delete", Box::new(|l| drop(l.remove(7))), ":8: deleted line: record seq 8 is missing"),
        ("delete-3", Box::new(|l| drop(l.drain(7..10))), ":8: deleted lines: records seq 8..10 (3)"),
        ("swap", Box::new(|l| l.swap(7, 8)), ":8: reordered lines: seq 9 is swapped with seq 8"),
        ("duplicate", Box::new(|l| l.insert(8, l[7].clone())), ":9: duplicated line"),
        (
            "truncate",
            Box::new(|l| {
                let half = l[7].len() / 2;
                l[7].truncate(half);
            }),
            ":8: truncated line",
        ),
        (
            "truncate-joined",
            Box::new(|l| {
                let joined = format!("{}{}", &l[7][..l[7].len() / 2], l[8]);
                l.splice(7..9, [joined]);
            }),
            ":8: truncated line",
        ),
        ("delete-first", Box::new(|l| drop(l.remove(0))), ":1: deleted lines: the chain starts at seq 2"),
    ];
    for (name, edit, want) in cases {
        let file = node.tampered(name, edit);
        let run = node.audit(&["verify", &file]);
        assert_eq!(run.code, 1, "{name}: {run:?}");
        assert!(run.stdout.contains(&format!("audit chain BROKEN at {file}{want}")), "{name}: want {want:?}: {run:?}");
    }

    // The same through the node's own log (no FILE): edit line 5 in place.
    let mut lines = node.lines();
    lines[4] = lines[4].replace("pod-4", "pod-x");
    std::fs::write(&node.log.path, lines.join("\n") + "\n").unwrap();
    let run = node.audit(&["verify"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains(&format!("{}:5: edited line", node.log.path.display())), "{run:?}");
}

#[test]
fn torn_lines_are_warnings_not_breaks() {
    let node = Node::new(u64::MAX, 5);
    generate(&node.log, 0..3);
    let torn = b"{\"apiVersion\":\"hardrun.dev/audit/v1\",\"seq\":4,\"pr";
    std::fs::OpenOptions::new().append(true).open(&node.log.path).unwrap().write_all(torn).unwrap();
    // A crash just happened: the last line has no newline.
    let run = node.audit(&["verify"]).ok();
    assert!(run.stdout.contains(":4: torn last line"), "{run:?}");
    // The next append closes and marks it; the chain goes on.
    generate(&node.log, 3..5);
    let run = node.audit(&["verify"]).ok();
    assert!(run.stdout.contains(":4: torn line (a crash mid-write), marked by line 5"), "{run:?}");
    assert!(run.stdout.contains("intact: 5 records, seq 1…5"), "{run:?}");
    // Reviews skip it with a warning.
    let listed = node.audit(&["--format", "jsonl"]).ok();
    assert_eq!(listed.jsonl().len(), 5);
    assert!(listed.stderr.contains(":4: skipped: not an audit record"), "{listed:?}");
    // Bad arguments and missing files are exit 2.
    assert_eq!(node.audit(&["verify", "/nonexistent/audit.jsonl"]).code, 2);
    assert_eq!(node.audit(&["verify", "--bogus"]).code, 2);
}

#[test]
fn rotation_under_concurrent_writes_keeps_the_chain() {
    const THREADS: usize = 8;
    const EACH: usize = 100;
    let node = Node::new(8 * 1024, 1000);
    let start = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (node, start) = (&node, &start);
            s.spawn(move || {
                start.wait();
                generate(&node.log, t * EACH..(t + 1) * EACH);
            });
        }
    });
    let files = std::fs::read_dir(node.log.path.parent().unwrap()).unwrap().count();
    assert!(files > 20, "rotated into {files} files");
    let run = node.audit(&["verify"]).ok();
    let total = THREADS * EACH;
    assert!(run.stdout.contains(&format!("intact: {total} records, seq 1…{total} in ")), "{run:?}");
    assert!(!run.stdout.contains("warning"), "{run:?}");
    // Every record once, in seq order, across the files.
    let seqs: Vec<u64> =
        node.audit(&["--format", "jsonl"]).ok().jsonl().iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=total as u64).collect::<Vec<_>>());

    // The rotated files given by hand, in shell-glob order, verify the same.
    let mut args = vec!["verify".to_owned()];
    let mut names: Vec<String> = std::fs::read_dir(node.log.path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| !p.ends_with(".lock"))
        .collect();
    names.sort();
    args.extend(names);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(node.audit(&args).ok().stdout.contains(&format!("intact: {total} records")));

    // With few files kept, the oldest are dropped: the chain starts late, which is
    // allowed because the oldest file left is a rotated one.
    let small = Node::new(4 * 1024, 3);
    generate(&small.log, 0..200);
    let run = small.audit(&["verify"]).ok();
    assert!(run.stdout.contains("warning: ") && run.stdout.contains("the chain starts at seq"), "{run:?}");
    assert!(!rotated_path(&small.log.path, 4).exists());
}

// ---------------------------------------------------------------------------------
// Filters, table, summary, show

const N: usize = 240;

/// Counts of the generated log by a predicate on `i`.
fn count(pred: impl Fn(usize) -> bool) -> usize {
    (0..N).filter(|&i| pred(i)).count()
}

fn listed(node: &Node, args: &[&str]) -> usize {
    let mut a = vec!["--format", "jsonl"];
    a.extend_from_slice(args);
    node.audit(&a).ok().jsonl().len()
}

#[test]
fn filters_select_known_counts() {
    let node = Node::new(u64::MAX, 5);
    generate(&node.log, 0..N);
    assert_eq!(listed(&node, &[]), N);
    assert_eq!(listed(&node, &["--decision", "denied"]), count(|i| i % 4 == 2));
    assert_eq!(listed(&node, &["--decision", "denied,mutated"]), count(|i| i % 4 == 1 || i % 4 == 2));
    assert_eq!(listed(&node, &["--decision", "denied", "--namespace", "team-a"]), count(|i| i % 4 == 2 && i % 3 == 0));
    assert_eq!(listed(&node, &["-n", "team-*"]), count(|i| i % 3 != 2));
    assert_eq!(listed(&node, &["--image", "registry.example/app-3:*"]), count(|i| i % 5 == 3));
    assert_eq!(listed(&node, &["--image", "*app-3*"]), 0, "`*` does not cross `/`");
    assert_eq!(listed(&node, &["--image", "**app-3*"]), count(|i| i % 5 == 3));
    let digest = format!("sha256:{}", "04".repeat(32));
    assert_eq!(listed(&node, &["--image", &digest]), count(|i| i % 5 == 4));
    assert_eq!(listed(&node, &["--policy", "restricted"]), count(|i| i % 2 == 1));
    assert_eq!(listed(&node, &["--rule", "caps.*"]), count(|i| i % 4 == 1 || i % 4 == 3));
    assert_eq!(listed(&node, &["--container", "sidecar"]), count(|i| i % 2 == 1));
    assert_eq!(listed(&node, &["--container", "ctr-1?"]), 10);
    assert_eq!(listed(&node, &["--pod", "pod-7"]), 1);
    assert_eq!(listed(&node, &["--command", "start"]), 0);
    // Minutes 60..=119 of the generated day.
    assert_eq!(listed(&node, &["--since", "2026-01-01T01:00:00Z", "--until", "2026-01-01T01:59:59Z"]), 60);
    assert_eq!(listed(&node, &["--since", "2026-01-01T03:00:00+02:00"]), N - 60);
    // Durations count back from now: only records written "now" are in the last hour.
    let mut fresh = record(0);
    fresh.time = hardrun::timefmt::now_rfc3339_nanos();
    append(&node.log, &mut fresh, false).unwrap();
    assert_eq!(listed(&node, &["--since", "1h"]), 1);
    assert_eq!(listed(&node, &["--until", "1h"]), N);
    let bad = node.audit(&["--since", "yesterday"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("--since"), "{bad:?}");
    assert_eq!(node.audit(&["--decision", "maybe"]).code, 2);

    // jsonl is the lines byte for byte; json is one array of them.
    let jsonl = node.audit(&["--format", "jsonl", "--pod", "pod-9"]).ok().stdout;
    assert_eq!(jsonl.trim_end(), node.lines()[9]);
    let arr: Value =
        serde_json::from_str(&node.audit(&["--format", "json", "--decision", "denied"]).ok().stdout).unwrap();
    assert_eq!(arr.as_array().unwrap().len(), count(|i| i % 4 == 2));
    let empty: Value = serde_json::from_str(&node.audit(&["--format", "json", "--pod", "none"]).ok().stdout).unwrap();
    assert_eq!(empty, json!([]));
}

#[test]
fn table_is_plain_when_piped() {
    let node = Node::new(u64::MAX, 5);
    generate(&node.log, 0..8);
    let out = node.audit(&["--decision", "denied"]).ok().stdout;
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 1 + 2, "{out}");
    assert_eq!(rows[0][0], "TIME (UTC)");
    assert!(rows.iter().all(|r| r.len() == 7), "{out}");
    let digest = "sha256:020202020202";
    assert_eq!(
        rows[1],
        [
            "2026-01-01 00:02:00",
            "create",
            "denied",
            "kube-system/pod-2/app",
            &format!("registry.example/app-2:1.0@{digest}"),
            "baseline",
            "host.privileged: privileged containers are not allowed"
        ]
    );
    // `hardrun audit | head -1` ends quietly.
    let script = format!("HARDRUN_CONFIG={} {HARDRUN} audit | head -1", node.config.display());
    let out = Command::new("bash").args(["-o", "pipefail", "-c", &script]).output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}

#[test]
fn summary_counts_match_the_generated_log() {
    let node = Node::new(u64::MAX, 5);
    generate(&node.log, 0..N);
    // Lifecycle records are counted as records, not as decisions.
    append(&node.log, &mut Record::lifecycle("delete", Some("ctr-0")), false).unwrap();
    let s: Value = serde_json::from_str(&node.audit(&["summary", "--format", "json"]).ok().stdout).unwrap();
    assert_eq!(s["records"], N + 1);
    assert_eq!(s["commands"], json!({"create": N, "delete": 1}));
    for (d, name) in DECISIONS.iter().zip(["allowed", "mutated", "denied", "audit-only"]) {
        let want = count(|i| DECISIONS[i % 4] == *d);
        assert_eq!(s["decisions"][name], want, "{name}");
    }
    assert_eq!(s["policies"], json!({"baseline": N, "restricted": count(|i| i % 2 == 1)}));
    assert_eq!(s["rules"]["caps.clamped"]["mutate"], count(|i| i % 4 == 1 || i % 4 == 3));
    assert_eq!(s["rules"]["host.privileged"]["deny"], count(|i| i % 4 == 2));
    let ns_a = json!({"total": count(|i| i % 3 == 0), "denied": count(|i| i % 3 == 0 && i % 4 == 2)});
    assert_eq!(s["namespaces"]["team-a"], ns_a);
    let img = json!({"total": count(|i| i % 5 == 2), "denied": count(|i| i % 5 == 2 && i % 4 == 2)});
    assert_eq!(s["images"]["registry.example/app-2:1.0"], img);
    assert_eq!(s["deniedRules"], json!({"host.privileged": count(|i| i % 4 == 2)}));

    // With filters, and as text.
    let text = node.audit(&["summary", "-n", "team-b", "--decision", "denied"]).ok().stdout;
    let denied_b = count(|i| i % 3 == 1 && i % 4 == 2);
    assert!(text.starts_with(&format!("{denied_b} records, 2026-01-01T")), "{text}");
    assert!(text.contains(&format!("Decisions ({denied_b})\n  denied")), "{text}");
    assert!(text.contains("Top denied images\n  registry.example/app-"), "{text}");
    assert!(text.contains(&format!("Top denied rules\n  host.privileged  {denied_b:>9}")), "{text}");
}

#[test]
fn show_prints_one_record_with_its_patch() {
    let node = Node::new(u64::MAX, 5);
    generate(&node.log, 0..6);
    let r: Value = serde_json::from_str(&node.lines()[1]).unwrap();
    let id = r["eventId"].as_str().unwrap();
    let out = node.audit(&["show", id]).ok().stdout;
    assert!(out.contains(&format!("Event       {id}  (seq 2)")), "{out}");
    assert!(out.contains("Decision    mutated"), "{out}");
    assert!(out.contains("Context     namespace team-b, pod pod-1, container sidecar"), "{out}");
    assert!(out.contains("Patch (1 operation)\n  ~ /process/noNewPrivileges: true\n"), "{out}");
    assert!(out.contains("  mutate  caps.clamped  dropped CAP_NET_RAW"), "{out}");
    // A prefix does, and the JSON form is the record.
    let by_prefix = node.audit(&["show", &id[..12], "--format", "json"]).ok().stdout;
    assert_eq!(serde_json::from_str::<Value>(&by_prefix).unwrap(), r);
    assert_eq!(node.audit(&["show", "0123456789abcdef"]).code, 1);
    assert_eq!(node.audit(&["show", "abc"]).code, 2);
}

// ---------------------------------------------------------------------------------
// metrics

/// Parses the exposition: every non-comment line is `name{labels} value`.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {l:?}"));
            let name_end = series.find('{').unwrap_or(series.len());
            let name = &series[..name_end];
            assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "name: {l:?}");
            if name_end < series.len() {
                let labels = &series[name_end..];
                assert!(labels.starts_with('{') && labels.ends_with('}'), "labels: {l:?}");
                for pair in labels[1..labels.len() - 1].split("\",") {
                    let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("label {pair:?} in {l:?}"));
                    assert!(k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{l:?}");
                    assert!(!v.trim_end_matches('"').contains('"') || v.contains("\\\""), "{l:?}");
                }
            }
            (series.to_owned(), value.parse::<f64>().unwrap_or_else(|e| panic!("value of {l:?}: {e}")))
        })
        .collect()
}

#[test]
fn metrics_parse_and_only_grow() {
    let node = Node::new(16 * 1024, 2);
    generate(&node.log, 0..N);
    let prom = node.dir.path().join("textfile/hardrun.prom");
    std::fs::create_dir_all(prom.parent().unwrap()).unwrap();
    let prom_arg = prom.display().to_string();
    node.audit(&["metrics", "--textfile", &prom_arg]).ok();
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("# TYPE hardrun_decisions_total counter"), "{text}");
    let m = parse_metrics(&text);
    // Rotation kept only the newest records: count what the files hold.
    let kept: Vec<Value> = node.audit(&["--format", "jsonl"]).ok().jsonl();
    let first = kept[0]["seq"].as_u64().unwrap() as usize - 1;
    assert!(first > 0, "the oldest records were rotated away");
    let denied_a = (first..N).filter(|i| i % 4 == 2 && i % 3 == 0).count() as f64;
    assert_eq!(m["hardrun_decisions_total{decision=\"denied\",namespace=\"team-a\"}"], denied_a);
    assert_eq!(m["hardrun_policy_matches_total{policy=\"baseline\"}"], (N - first) as f64);
    let mutations = (first..N).filter(|i| i % 4 == 1 || i % 4 == 3).count() as f64;
    assert_eq!(m["hardrun_rule_findings_total{rule=\"caps.clamped\",action=\"mutate\"}"], mutations);
    assert_eq!(m["hardrun_audit_last_seq"], N as f64);

    // More records, more rotation: every counter grows by exactly the new records,
    // though files the first run read were dropped in between.
    const MORE: usize = 30;
    generate(&node.log, N..N + MORE);
    let kept_now = node.audit(&["--format", "jsonl"]).ok().jsonl();
    assert!(kept_now[0]["seq"].as_u64() > kept[0]["seq"].as_u64(), "older files were dropped");
    assert!(kept_now[0]["seq"].as_u64().unwrap() as usize <= N + 1, "every new record is still there");
    let again = parse_metrics(&node.audit(&["metrics"]).ok().stdout);
    let more_denied_a = (N..N + MORE).filter(|i| i % 4 == 2 && i % 3 == 0).count() as f64;
    assert_eq!(again["hardrun_decisions_total{decision=\"denied\",namespace=\"team-a\"}"], denied_a + more_denied_a);
    assert_eq!(again["hardrun_policy_matches_total{policy=\"baseline\"}"], (N - first + MORE) as f64);
    for (k, v) in &m {
        assert!(again[k] >= *v, "{k} went down");
    }
    // Stateless on files: what they hold now.
    let files: Vec<String> = std::fs::read_dir(node.log.path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| !p.ends_with(".lock"))
        .collect();
    let mut args = vec!["metrics"];
    args.extend(files.iter().map(String::as_str));
    let now = parse_metrics(&node.audit(&args).ok().stdout);
    assert_eq!(now["hardrun_policy_matches_total{policy=\"baseline\"}"], kept_now.len() as f64);
}

// ---------------------------------------------------------------------------------
// follow

#[test]
fn follow_keeps_up_across_rotation() {
    let node = Node::new(4 * 1024, 50);
    generate(&node.log, 0..3);
    let mut child = Command::new(HARDRUN)
        .args(["audit", "-f", "--format", "jsonl", "--decision", "denied,allowed"])
        .env("HARDRUN_CONFIG", &node.config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // 40 more records, each line ~1 KiB: about ten rotations while following.
    for i in 3..43 {
        append(&node.log, &mut record(i), false).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(rotated_path(&node.log.path, 5).exists());
    let want: Vec<u64> = (0..43).filter(|i| i % 4 == 0 || i % 4 == 2).map(|i| i as u64 + 1).collect();
    let mut got = Vec::new();
    while got.len() < want.len() {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) => got.push(serde_json::from_str::<Value>(&l).unwrap()["seq"].as_u64().unwrap()),
            Err(e) => panic!("follow stalled after {got:?}: {e}"),
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(got, want);
}

// ---------------------------------------------------------------------------------
// Through hardrun and the real runc

const PARALLEL: usize = 200;

#[test]
fn parallel_creates_leave_a_verified_chain() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let template = Bundle::new(&["sleep", "30"]);
    template.set_caps(DOCKER_DEFAULT_CAPS).set_no_new_privileges(false);
    let bundles: Vec<Bundle> = (0..PARALLEL).map(|_| template.duplicate()).collect();
    let ids: Vec<String> = (0..PARALLEL).map(|_| env.id("chain")).collect();
    env.create_in_parallel(&bundles, &ids);
    let audit = |args: &[&str]| {
        let out =
            Command::new(HARDRUN).arg("audit").args(args).env("HARDRUN_CONFIG", &env.config_path).output().unwrap();
        (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, out) = audit(&["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("audit chain intact: {PARALLEL} records, seq 1…{PARALLEL} in 1 file")), "{out}");
    let (_, creates) = audit(&["--format", "jsonl", "--command", "create", "--decision", "mutated"]);
    let mut logged: Vec<String> =
        common::json_lines(&creates, "creates").iter().map(|r| r["containerId"].as_str().unwrap().to_owned()).collect();
    logged.sort();
    let mut created = ids.clone();
    created.sort();
    assert_eq!(logged, created, "one create record per container");

    // Deletes add lifecycle records to the same chain.
    std::thread::scope(|s| {
        for id in &ids {
            let env = &env;
            s.spawn(move || assert_eq!(env.hardrun().args(["delete", "-f", id]).output().code, 0));
        }
    });
    let (code, out) = audit(&["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("intact: {} records", 2 * PARALLEL)), "{out}");
}

/// A tmpfs mounted over a directory for the life of the value.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs on {}", dir.display());
        Tmpfs(dir.to_owned())
    }

    /// Writes filler until the file system is full, to the last byte.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let chunk = vec![b'x'; 4096];
        while f.write_all(&chunk).is_ok() {}
        while f.write_all(b"x").is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_denies_unless_audit_failure_allows() {
    if !common::prerequisites_met() {
        return;
    }
    let env = Env::new();
    let disk = Tmpfs::mount(env.audit_log.parent().unwrap(), "64k");
    let bundle = Bundle::new(&["sleep", "30"]);
    bundle.set_caps(DOCKER_DEFAULT_CAPS).set_no_new_privileges(false);
    let create = |id: &str, b: &Bundle| {
        let log = env.file("runc-log");
        let (out, _) = env.hardrun().log(&log).args(["create", "--bundle"]).arg(b.path()).arg(id).run_to_files();
        (out, std::fs::read_to_string(&log).unwrap_or_default())
    };

    let first = env.id("disk");
    let (out, _) = create(&first, &bundle.duplicate());
    assert_eq!(out.code, 0, "with room: {out:?}");

    disk.fill();
    // A record larger than what is left of the log's last page: the write is cut
    // short, as on a real full disk.
    let big = Bundle::new(&["sleep", "30"]);
    big.set_annotations(&[("io.kubernetes.cri.image-name", &format!("registry.example/{}:1", "x".repeat(8192)))]);
    let denied = env.id("disk");
    let (out, log) = create(&denied, &big);
    assert_eq!(out.code, 1, "{out:?}");
    let line: Value = serde_json::from_str(log.lines().last().expect("a line in runc's log")).unwrap();
    assert_eq!(line["level"], "error", "{log}");
    let msg = line["msg"].as_str().unwrap();
    assert!(msg.contains("cannot write audit log") && msg.contains("No space left on device"), "{msg}");
    assert!(msg.contains("refusing to start an unaudited container"), "{msg}");
    assert!(env.state(&denied).is_none(), "runc never ran");

    env.write_config(&(env.config_yaml(common::RUNC) + "auditFailure: allow\n"));
    let allowed = env.id("disk");
    let allowed_bundle = big.duplicate();
    let (out, log) = create(&allowed, &allowed_bundle);
    assert_eq!(out.code, 0, "{out:?} {log}");
    assert!(log.contains("auditFailure: allow"), "a warning in runc's log: {log}");
    env.wait_status(&allowed, "created");

    // Room again: the next record closes the line the full disk cut short, marks
    // it, and the chain goes on.
    disk.free();
    let after = env.id("disk");
    assert_eq!(create(&after, &bundle.duplicate()).0.code, 0);
    let audit = |args: &[&str]| {
        let out =
            Command::new(HARDRUN).arg("audit").args(args).env("HARDRUN_CONFIG", &env.config_path).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, text) = audit(&["verify"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(":2: torn line (a crash mid-write), marked by line 3"), "{text}");
    let (_, jsonl) = audit(&["--format", "jsonl"]);
    let ids: Vec<String> =
        common::json_lines(&jsonl, "records").iter().map(|r| r["containerId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, [first, after], "the denied and the allowed create could not be recorded");
}
