//! `hardrun lint` and `hardrun schema`: the corpus of bad policies (one file per rule
//! code, each naming the code, line and column it must produce), good policies with
//! no findings, SARIF output checked against the SARIF 2.1.0 schema, the generated
//! JSON Schema checked against the shipped policies, and the CLI's exit codes.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hardrun::policy::lint::{self, render, Options, Severity, RULES};
use serde::Deserialize;
use serde_json::Value;

const HARDRUN: &str = env!("CARGO_BIN_EXE_hardrun");

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn corpus(kind: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("tests/lint_corpus").join(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// `# expect: HR012 5:7` lines at the top of a corpus file.
fn expectations(text: &str) -> BTreeSet<(String, usize, usize)> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|e| {
            let (code, pos) = e.trim().split_once(' ').expect("`# expect: CODE LINE:COL`");
            let (line, col) = pos.split_once(':').expect("LINE:COL");
            (code.to_owned(), line.parse().unwrap(), col.parse().unwrap())
        })
        .collect()
}

/// Lints one text as its own set, without permission checks (a checkout's modes are
/// the checkout's business; HR020 has its own test).
fn lint_text(path: &Path, text: &str) -> lint::Report {
    lint::lint_sources(&[(path.to_owned(), text.to_owned())], &Options::default())
}

fn hardrun(args: &[&str], config: Option<&Path>) -> Output {
    let mut cmd = Command::new(HARDRUN);
    cmd.args(args);
    match config {
        Some(c) => cmd.env("HARDRUN_CONFIG", c),
        None => cmd.env("HARDRUN_CONFIG", "/nonexistent/hardrun-config.yaml"),
    };
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn every_bad_file_gives_exactly_its_findings() {
    let files = corpus("bad");
    assert!(files.len() >= 15, "corpus is missing files: {files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let want = expectations(&text);
        assert!(!want.is_empty(), "{}: no `# expect:` line", f.display());
        let stem = f.file_name().unwrap().to_str().unwrap();
        let code = &stem[..5];
        assert!(want.iter().any(|(c, ..)| c == code), "{stem}: the file's own code {code} is not expected");
        let got: BTreeSet<(String, usize, usize)> = lint_text(f, &text)
            .diagnostics
            .iter()
            .map(|d| (d.code.to_owned(), d.location.line.unwrap_or(0), d.location.column.unwrap_or(0)))
            .collect();
        assert_eq!(got, want, "{}", f.display());
    }
}

/// Every rule has a corpus file, except those the corpus cannot express: HR020 is
/// about file modes, HR021 about sizes and missing paths and HR022 about hook
/// definition files (all tested below).
#[test]
fn every_rule_is_covered_by_the_corpus() {
    let covered: BTreeSet<String> =
        corpus("bad").iter().map(|f| f.file_name().unwrap().to_str().unwrap()[..5].to_owned()).collect();
    let elsewhere = ["HR020", "HR021", "HR022"];
    for r in RULES {
        assert!(covered.contains(r.code) || elsewhere.contains(&r.code), "no corpus file for {} {}", r.code, r.name);
    }
}

#[test]
fn good_policies_give_no_findings() {
    let mut files = corpus("good");
    files.extend(corpus_dir(&root().join("policies")));
    let sources: Vec<(PathBuf, String)> =
        files.iter().map(|f| (f.clone(), std::fs::read_to_string(f).unwrap())).collect();
    // Each on its own, and the shipped policies as one set.
    for s in &sources {
        let r = lint::lint_sources(std::slice::from_ref(s), &Options::default());
        assert!(r.diagnostics.is_empty(), "{}: {:#?}", s.0.display(), r.diagnostics);
    }
    let shipped: Vec<_> = sources.iter().filter(|(p, _)| p.starts_with(root().join("policies"))).cloned().collect();
    assert_eq!(shipped.len(), 2);
    let r = lint::lint_sources(&shipped, &Options::default());
    assert!(r.diagnostics.is_empty(), "{:#?}", r.diagnostics);
}

fn corpus_dir(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn one_document_reports_all_its_schema_errors_with_suggestions() {
    let text = "\
apiVersion: hardrun.dev/v1alpha1
kind: Policy
metadata:
  name: many
spec:
  mode: enforcd
  capabilities:
    allow: [CAP_CHOWN, CAP_BOGUS, CAP_KILL, CAP_NOPE]
    onForbiden: deny
  filesystem: {readOnlyRootFs: true}
";
    let r = lint_text(Path::new("many.yaml"), text);
    let got: Vec<(&str, usize, usize, Option<&str>)> = r
        .diagnostics
        .iter()
        .map(|d| (d.code, d.location.line.unwrap(), d.location.column.unwrap(), d.help.as_deref()))
        .collect();
    let codes: Vec<(&str, usize, usize)> = got.iter().map(|(c, l, col, _)| (*c, *l, *col)).collect();
    assert_eq!(
        codes,
        vec![("HR003", 6, 9), ("HR006", 8, 24), ("HR006", 8, 45), ("HR002", 9, 5), ("HR002", 10, 16)],
        "{got:#?}"
    );
    let help = |i: usize| got[i].3.unwrap();
    assert!(help(0).starts_with("did you mean `enforce`?"));
    assert!(help(3).starts_with("did you mean `onForbidden`?"));
    assert!(help(4).starts_with("did you mean `readOnlyRootfs`?"), "{}", help(4));
}

#[test]
fn lint_never_passes_what_the_loader_rejects() {
    // Everything in the corpus that lint calls an error, the loader rejects, and the
    // other way round.
    for f in corpus("bad").into_iter().chain(corpus("good")) {
        let text = std::fs::read_to_string(&f).unwrap();
        let lint_errors = lint_text(&f, &text).has_errors();
        let loaded = hardrun::policy::load::parse_documents(&f, &text).map_err(|e| e.to_string()).and_then(|d| {
            let mut names = BTreeSet::new();
            let all = d.policies.iter().map(|p| &p.name).chain(d.exemptions.iter().map(|e| &e.name));
            for n in all {
                if !names.insert(n.clone()) {
                    return Err(format!("duplicate {n}"));
                }
            }
            Ok(())
        });
        // Errors the loader cannot see: a merge conflict, a referenced file, a signature
        // requirement no image can pass (each denies the containers it covers).
        let semantic_error = ["HR011", "HR009", "HR018"].iter().any(|c| f.to_str().unwrap().contains(c));
        if !semantic_error {
            assert_eq!(lint_errors, loaded.is_err(), "{}: lint and loader disagree ({loaded:?})", f.display());
        }
    }
}

#[test]
fn check_set_is_the_create_time_gate() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("conflict.yaml");
    std::fs::copy(root().join("tests/lint_corpus/bad/HR011-unstartable-merge.yaml"), &f).unwrap();
    let set = hardrun::policy::PolicySet::load_dir(dir.path()).expect("the loader accepts it");
    let files = hardrun::policy::load::policy_files(dir.path()).unwrap();
    let diags = lint::check_set(&set, &files);
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{diags:#?}");
    assert_eq!(errors[0].code, "HR011");
    assert_eq!((errors[0].location.line, errors[0].location.column), (Some(20), Some(5)));
    let summary = lint::errors_summary(&diags).unwrap();
    assert!(summary.contains("conflict.yaml:20:5") && summary.contains("[HR011]"), "{summary}");

    // The shipped policies pass the gate.
    let shipped = hardrun::policy::load::policy_files(&root().join("policies")).unwrap();
    let set = hardrun::policy::PolicySet::load_files(&shipped).unwrap();
    assert!(lint::check_set(&set, &[]).iter().all(|d| !d.is_error()));
}

// ---------------------------------------------------------------- permissions and inputs

#[test]
fn permissions_are_errors_in_node_mode_and_warnings_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("p.yaml");
    std::fs::copy(root().join("policies/restricted.yaml"), &f).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o664)).unwrap();
    let files = vec![f.clone()];
    let node = lint::lint_files(&files, &Options { node: true, ..Default::default() });
    let d: Vec<_> = node.diagnostics.iter().filter(|d| d.code == "HR020").collect();
    assert_eq!(d.len(), 1, "{:#?}", node.diagnostics);
    assert_eq!(d[0].severity, Severity::Error);
    assert!(d[0].message.contains("mode 0664"), "{}", d[0].message);
    let elsewhere = lint::lint_files(&files, &Options::default());
    assert!(elsewhere.diagnostics.iter().all(|d| d.code != "HR020" || d.severity == Severity::Warning));
    assert!(!elsewhere.has_errors());

    // The directory a node loads every file of must not be group-writable either.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o775)).unwrap();
    let node = lint::lint_files(&files, &Options { node: true, ..Default::default() });
    assert!(
        node.diagnostics.iter().any(|d| d.code == "HR020" && d.location.file == dir.path()),
        "{:#?}",
        node.diagnostics
    );
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let clean = lint::lint_files(&files, &Options { node: true, ..Default::default() });
    assert!(clean.diagnostics.is_empty(), "{:#?}", clean.diagnostics);
}

#[test]
fn unreadable_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, "# x\n".repeat(300_000)).unwrap();
    let missing = dir.path().join("missing.yaml");
    let mut diags = Vec::new();
    let files = lint::collect_files(&[big.clone(), missing.clone()], &mut diags);
    let r = lint::lint_files(&files, &Options::default());
    let all: Vec<_> = diags.iter().chain(&r.diagnostics).filter(|d| d.code == "HR021").collect();
    assert_eq!(all.len(), 2, "{all:#?}");
    assert!(all.iter().any(|d| d.location.file == missing));
    assert!(all.iter().any(|d| d.location.file == big && d.message.contains("larger than")));
}

// ---------------------------------------------------------------- SARIF

fn sarif_of_corpus() -> Value {
    let sources: Vec<(PathBuf, String)> = corpus("bad")
        .iter()
        .map(|f| {
            let rel = f.strip_prefix(root()).unwrap().to_owned();
            (rel, std::fs::read_to_string(f).unwrap())
        })
        .collect();
    // Each file alone (the duplicate-name file would otherwise collide with others).
    let mut report = lint::Report::default();
    for s in &sources {
        let r = lint::lint_sources(std::slice::from_ref(s), &Options::default());
        report.files.extend(r.files);
        report.diagnostics.extend(r.diagnostics);
    }
    render::sarif(&report)
}

#[test]
fn sarif_has_the_required_structure() {
    let s = sarif_of_corpus();
    assert_eq!(s["version"], "2.1.0");
    assert_eq!(s["$schema"], render::SARIF_SCHEMA);
    let run = &s["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "hardrun");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), RULES.len());
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let results = run["results"].as_array().unwrap();
    assert!(results.len() >= 16);
    for r in results {
        let id = r["ruleId"].as_str().unwrap();
        assert_eq!(ids[r["ruleIndex"].as_u64().unwrap() as usize], id);
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
        assert!(!r["message"]["text"].as_str().unwrap().is_empty());
        let loc = &r["locations"][0]["physicalLocation"];
        let uri = loc["artifactLocation"]["uri"].as_str().unwrap();
        assert!(uri.starts_with("tests/lint_corpus/bad/HR"), "{uri}");
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
        assert!(loc["region"]["startColumn"].as_u64().unwrap() >= 1);
    }
    let dup = results.iter().find(|r| r["ruleId"] == "HR010").unwrap();
    assert_eq!(dup["relatedLocations"][0]["physicalLocation"]["region"]["startLine"], 6);
}

/// The SARIF 2.1.0 schema (OASIS, final `rtm.5` revision) as shipped in the npm package
/// `@microsoft/jest-sarif` (MIT), copied to tests/lint_corpus/.
#[test]
fn sarif_validates_against_the_sarif_2_1_0_schema() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/lint_corpus/sarif-schema-2.1.0.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the SARIF schema compiles");
    let s = sarif_of_corpus();
    let errors: Vec<String> = validator.iter_errors(&s).map(|e| format!("{}: {e}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // The validator is not vacuous: a result without a message is rejected.
    let mut broken = s.clone();
    broken["runs"][0]["results"][0].as_object_mut().unwrap().remove("message");
    assert!(!validator.is_valid(&broken));
}

// ---------------------------------------------------------------- JSON Schema

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).unwrap()).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn the_schema_validates_shipped_and_good_policies_and_rejects_bad_ones() {
    let out = hardrun(&["schema"], None);
    assert!(out.status.success());
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    let validator = jsonschema::validator_for(&schema).expect("the generated schema compiles");
    let mut checked = 0;
    for f in corpus_dir(&root().join("policies")).into_iter().chain(corpus("good")) {
        for doc in yaml_documents(&std::fs::read_to_string(&f).unwrap()) {
            let errors: Vec<String> =
                validator.iter_errors(&doc).map(|e| format!("{}: {e}", e.instance_path)).collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
            checked += 1;
        }
    }
    assert!(checked >= 6);
    for name in [
        "HR002-unknown-field.yaml",
        "HR003-invalid-value.yaml",
        "HR004-missing-field.yaml",
        "HR005-unknown-document.yaml",
        "HR006-unknown-capability.yaml",
    ] {
        let text = std::fs::read_to_string(root().join("tests/lint_corpus/bad").join(name)).unwrap();
        assert!(yaml_documents(&text).iter().any(|d| !validator.is_valid(d)), "{name} passes the schema");
    }
}

// ---------------------------------------------------------------- CLI

#[test]
fn exit_codes() {
    let bad = root().join("tests/lint_corpus/bad");
    let good = root().join("tests/lint_corpus/good/teams.yaml");
    let warn_only = bad.join("HR014-dangerous-capability.yaml");
    let code = |args: &[&str]| hardrun(args, None).status.code();
    assert_eq!(code(&["lint", good.to_str().unwrap()]), Some(0));
    assert_eq!(code(&["lint", bad.join("HR002-unknown-field.yaml").to_str().unwrap()]), Some(1));
    assert_eq!(code(&["lint", warn_only.to_str().unwrap()]), Some(0));
    assert_eq!(code(&["lint", "--warnings-as-errors", warn_only.to_str().unwrap()]), Some(1));
    assert_eq!(code(&["lint", "--format", "xml", good.to_str().unwrap()]), Some(2));
    assert_eq!(code(&["lint", "--no-such-flag"]), Some(2));
    assert_eq!(code(&["lint", "/nonexistent/policies"]), Some(1));
}

#[test]
fn human_output_points_at_the_node_without_colour_when_piped() {
    let f = root().join("tests/lint_corpus/bad/HR002-unknown-field.yaml");
    let out = stdout(&hardrun(&["lint", f.to_str().unwrap()], None));
    assert!(!out.contains('\x1b'), "colour in a pipe: {out}");
    assert!(out.contains("error[HR002]: unknown field `allw` in `spec.capabilities`"), "{out}");
    assert!(out.contains("HR002-unknown-field.yaml:9:5"), "{out}");
    assert!(out.contains("\n9 |     allw: [CAP_CHOWN]\n  |     ^^^^\n"), "{out}");
    assert!(out.contains("help: did you mean `allow`?"), "{out}");
    let forced = stdout(&hardrun(&["lint", "--color", "always", f.to_str().unwrap()], None));
    assert!(forced.contains("\x1b[1;31merror"), "{forced}");
}

#[test]
fn json_output_and_rule_list() {
    let f = root().join("tests/lint_corpus/bad/HR010-duplicate-name.yaml");
    let v: Value =
        serde_json::from_str(&stdout(&hardrun(&["lint", "--format", "json", f.to_str().unwrap()], None))).unwrap();
    assert_eq!(v["summary"]["errors"], 1);
    let d = &v["diagnostics"][0];
    assert_eq!(
        (d["code"].as_str(), d["location"]["line"].as_u64(), d["location"]["path"].as_str()),
        (Some("HR010"), Some(13), Some("/metadata/name"))
    );
    assert_eq!(d["related"][0]["location"]["line"], 6);
    let rules: Value =
        serde_json::from_str(&stdout(&hardrun(&["lint", "--list-rules", "--format", "json"], None))).unwrap();
    assert_eq!(rules.as_array().unwrap().len(), RULES.len());
}

/// No PATH: the node's policyDir from the node config, linted in node mode.
#[test]
fn default_is_the_node_policy_dir_in_node_mode() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies.d");
    std::fs::create_dir(&policies).unwrap();
    std::fs::set_permissions(&policies, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = policies.join("p.yaml");
    std::fs::copy(root().join("policies/baseline.yaml"), &p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("policyDir: {}\n", policies.display())).unwrap();
    let out = hardrun(&["lint"], Some(&config));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = hardrun(&["lint"], Some(&config));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("error[HR020]"), "{}", stdout(&out));
    // The same directory named explicitly is still the node's.
    let out = hardrun(&["lint", policies.to_str().unwrap()], Some(&config));
    assert_eq!(out.status.code(), Some(1));
    // Without a policy dir on disk, the node runs the embedded baseline: lint it.
    std::fs::write(&config, format!("policyDir: {}\n", dir.path().join("absent").display())).unwrap();
    let out = hardrun(&["lint"], Some(&config));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("embedded baseline"));
}

#[test]
fn explain_a_hypothetical_container() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("p");
    std::fs::create_dir(&policies).unwrap();
    for f in ["baseline.yaml", "restricted.yaml"] {
        std::fs::copy(root().join("policies").join(f), policies.join(f)).unwrap();
    }
    std::fs::write(
        policies.join("team.yaml"),
        "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {name: team-a}\nspec:\n  match: {namespaces: [team-a]}\n  capabilities: {allow: [CAP_NET_BIND_SERVICE, CAP_KILL]}\n",
    )
    .unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("policyDir: {}\n", policies.display())).unwrap();
    let out = hardrun(
        &["explain", "--pod-namespace", "team-a", "--image", "docker.io/library/nginx", "--format", "json"],
        Some(&config),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["policies"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["baseline", "restricted", "team-a"]);
    assert_eq!(v["attribution"]["capabilities.allow"]["from"], serde_json::json!(["restricted"]));
    assert_eq!(v["attribution"]["process.runAsNonRoot"]["from"], serde_json::json!(["restricted"]));
    assert_eq!(v["attribution"]["noNewPrivileges"]["from"], serde_json::json!(["baseline", "restricted"]));
    // Another namespace: team-a's policy does not match.
    let out = hardrun(&["explain", "--pod-namespace", "team-b"], Some(&config));
    let text = stdout(&out);
    assert!(!text.contains("team-a") && text.contains("policy:    restricted"), "{text}");
    assert!(text.contains("capabilities.allow") && text.contains("(from restricted)"), "{text}");
}

#[test]
fn hooks_named_by_policies_must_load() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let hooks = d.path().join("hooks.d");
    std::fs::create_dir(&hooks).unwrap();
    std::fs::set_permissions(&hooks, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = d.path().join("hook.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o777)).unwrap();
    let def = format!(
        "{{\"version\": \"1.0.0\", \"hook\": {{\"path\": \"{}\"}}, \"when\": {{\"always\": true}}, \"stages\": [\"poststop\"]}}",
        script.display()
    );
    std::fs::write(hooks.join("unsafe.json"), def).unwrap();
    std::fs::write(hooks.join("broken.json"), "{").unwrap();
    let policy = d.path().join("p.yaml");
    std::fs::write(
        &policy,
        "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {name: p}\nspec:\n  hooks: [unsafe, missing]\n",
    )
    .unwrap();
    let opts = Options { hooks: Some((vec![hooks.clone()], 5)), ..Default::default() };
    let report = lint::lint_files(std::slice::from_ref(&policy), &opts);
    let hr022: Vec<_> = report.diagnostics.iter().filter(|d| d.code == "HR022").collect();
    let errors: Vec<String> = hr022.iter().filter(|d| d.is_error()).map(|d| d.message.clone()).collect();
    assert_eq!(errors.len(), 3, "{hr022:#?}");
    assert!(errors.iter().any(|m| m.contains("names hook unsafe") && m.contains("writable by group or others")));
    assert!(errors.iter().any(|m| m.contains("names hook missing") && m.contains("no such hook definition")));
    let named = hr022.iter().find(|d| d.message.contains("names hook unsafe")).unwrap();
    assert_eq!((named.location.line, named.location.column), (Some(5), Some(11)), "{named:?}");
    assert!(hr022.iter().any(|d| d.severity == Severity::Warning && d.location.file.ends_with("broken.json")));
    // Without hook directories, hooks are not checked.
    let report = lint::lint_files(&[policy], &Options::default());
    assert!(report.diagnostics.iter().all(|d| d.code != "HR022"));
}
