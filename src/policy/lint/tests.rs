//! Unit tests of the linter on in-memory texts (the corpus is in tests/lint.rs).

use super::*;

fn lint(text: &str) -> Vec<Diagnostic> {
    lint_sources(&[(PathBuf::from("p.yaml"), text.to_owned())], &Options::default()).diagnostics
}

fn places(d: &[Diagnostic]) -> Vec<(&'static str, usize, usize)> {
    d.iter().map(|d| (d.code, d.location.line.unwrap_or(0), d.location.column.unwrap_or(0))).collect()
}

const HEAD: &str = "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: p\n";

#[test]
fn empty_and_comment_only_files_are_clean() {
    assert!(lint("").is_empty());
    assert!(lint("# nothing\n").is_empty());
    assert!(lint(&format!("{HEAD}spec: {{}}\n---\n")).is_empty());
}

#[test]
fn removed_list_items_keep_later_positions_right() {
    // The second bad capability is found after the first is removed: its position
    // must still be counted in the file's list, not the shortened one.
    let text = format!("{HEAD}spec:\n  capabilities:\n    allow:\n      - CAP_X\n      - CAP_KILL\n      - CAP_Y\n");
    assert_eq!(places(&lint(&text)), vec![("HR006", 8, 9), ("HR006", 10, 9)]);
}

#[test]
fn a_removed_required_field_is_not_also_missing() {
    let text =
        "apiVersion: hardrun.dev/v1alpha1\nkind: Exemption\nmetadata: {name: e}\nspec:\n  rules: 7\n  reason: r\n";
    let d = lint(text);
    assert_eq!(places(&d), vec![("HR003", 5, 10)], "{d:#?}");
}

#[test]
fn header_problems() {
    let d = lint("kind: Policy\nmetadata: {name: p}\n");
    assert_eq!(places(&d), vec![("HR004", 1, 1)]);
    let d = lint("apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {}\n");
    assert_eq!(places(&d), vec![("HR004", 3, 11)]);
    let d = lint("- a\n- b\n");
    assert_eq!(places(&d), vec![("HR005", 1, 3)]);
}

#[test]
fn later_documents_keep_their_own_positions() {
    let text = format!("{HEAD}spec: {{}}\n---\n{HEAD}spec:\n  noNewPrivilege: true\n");
    let d = lint(&text);
    assert_eq!(places(&d), vec![("HR002", 12, 3)]);
    assert_eq!(d[0].location.document, Some(2));
    assert_eq!(d[0].location.path.as_deref(), Some("/spec/noNewPrivilege"));
}

#[test]
fn rlimit_names_and_unconfined_profiles() {
    let text = format!("{HEAD}spec:\n  process:\n    rlimits: {{RLIMIT_NOFILES: 10}}\n");
    let d = lint(&text);
    assert_eq!(places(&d), vec![("HR003", 7, 15)], "{d:#?}");
    assert!(d[0].help.as_deref().unwrap().contains("RLIMIT_NOFILE"));
    let text = format!("{HEAD}spec:\n  apparmor: {{profile: unconfined}}\n");
    let d = lint(&text);
    assert_eq!(places(&d), vec![("HR003", 6, 23)], "{d:#?}");
    assert!(d[0].message.contains("Exemption"), "{}", d[0].message);
}

#[test]
fn audit_mode_on_a_narrow_selector_is_fine() {
    let text = format!("{HEAD}spec:\n  match: {{namespaces: [staging]}}\n  mode: audit\n");
    assert!(lint(&text).is_empty());
}

#[test]
fn conflicts_need_overlap_and_enforcement() {
    let p = |name: &str, ns: &str, mode: &str, profile: &str| {
        format!(
            "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata: {{name: {name}}}\nspec:\n  match: {{namespaces: [{ns}]}}\n  mode: {mode}\n  apparmor: {{profile: {profile}}}\n"
        )
    };
    let disjoint = format!("{}---\n{}", p("a", "x", "enforce", "one"), p("b", "y", "enforce", "two"));
    assert!(lint(&disjoint).is_empty());
    let same = format!("{}---\n{}", p("a", "x*", "enforce", "one"), p("b", "xy", "enforce", "one"));
    assert!(lint(&same).is_empty());
    let audit = format!("{}---\n{}", p("a", "x*", "audit", "one"), p("b", "xy", "audit", "two"));
    let d = lint(&audit);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].code, d[0].severity), (UNSTARTABLE_MERGE, Severity::Warning));
    let enforced = format!("{}---\n{}", p("a", "x*", "audit", "one"), p("b", "xy", "enforce", "two"));
    assert!(lint(&enforced)[0].is_error());
}

#[test]
fn runtime_classes_without_links() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/bin/true", dir.path().join("hardrun-gpu")).unwrap();
    let text = format!("{HEAD}spec:\n  match: {{runtimeClasses: [gpu, kata]}}\n");
    let opts =
        Options { node: true, runtime_classes: true, runtime_class_dir: Some(dir.path().to_owned()), hooks: None };
    let r = lint_sources(&[(PathBuf::from("p.yaml"), text)], &opts);
    assert_eq!(places(&r.diagnostics), vec![("HR019", 6, 33)], "{:#?}", r.diagnostics);
    assert!(r.diagnostics[0].message.contains("available: gpu"));
}

#[test]
fn rule_table_is_ordered_and_unique() {
    for w in RULES.windows(2) {
        assert!(w[0].code < w[1].code, "{} {}", w[0].code, w[1].code);
    }
    for c in schema_check::CAPABILITIES {
        assert!(crate::policy::CapName::new(c).is_ok(), "{c}");
    }
}
