use super::*;

const V2_DEFAULT: &str = include_str!("../../../tests/fixtures/containerd/v2-default.toml");
const V2_MINIMAL: &str = include_str!("../../../tests/fixtures/containerd/v2-minimal.toml");
const V3_SYSTEMD: &str = include_str!("../../../tests/fixtures/containerd/v3-systemd.toml");

fn handler(name: &str) -> Handler {
    Handler { name: name.into(), binary: PathBuf::from(format!("/usr/local/bin/{name}")) }
}

fn parsed(text: &str) -> toml_edit::DocumentMut {
    text.parse().expect("valid TOML")
}

fn runtimes<'a>(doc: &'a toml_edit::DocumentMut, cri: &str) -> &'a Table {
    doc["plugins"][cri]["containerd"]["runtimes"].as_table().expect("runtimes table")
}

/// Every line of `old` is in `new`, in order: the edit only added lines.
fn only_added(old: &str, new: &str) -> bool {
    let mut new_lines = new.lines();
    old.lines().all(|l| new_lines.any(|n| n == l))
}

#[test]
fn v2_handler_copies_runc_and_sets_binary() {
    let (text, changes) = configure(V2_DEFAULT, &[handler("hardrun")]).unwrap();
    assert_eq!(changes, [Change::Added]);
    assert!(only_added(V2_DEFAULT, &text));
    let doc = parsed(&text);
    let h = &runtimes(&doc, "io.containerd.grpc.v1.cri")["hardrun"];
    assert_eq!(h["runtime_type"].as_str(), Some(RUNTIME_TYPE));
    assert_eq!(h["options"]["BinaryName"].as_str(), Some("/usr/local/bin/hardrun"));
    assert_eq!(h["options"]["SystemdCgroup"].as_bool(), Some(false));
    assert_eq!(
        h["pod_annotations"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect::<Vec<_>>(),
        [POD_ANNOTATIONS]
    );
    assert!(h.get("runtime_path").is_none(), "runtime_path would bypass BinaryName");
    // The runc handler and the default are as they were.
    let runc = &runtimes(&doc, "io.containerd.grpc.v1.cri")["runc"];
    assert_eq!(runc["options"]["BinaryName"].as_str(), Some(""));
    assert_eq!(
        doc["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["default_runtime_name"].as_str(),
        Some("runc")
    );
}

#[test]
fn v3_handler_copies_systemd_cgroup_and_root() {
    let (text, _) = configure(V3_SYSTEMD, &[handler("hardrun"), handler("hardrun-gpu")]).unwrap();
    assert!(only_added(V3_SYSTEMD, &text));
    let doc = parsed(&text);
    let rt = runtimes(&doc, "io.containerd.cri.v1.runtime");
    for (name, bin) in [("hardrun", "/usr/local/bin/hardrun"), ("hardrun-gpu", "/usr/local/bin/hardrun-gpu")] {
        assert_eq!(rt[name]["options"]["SystemdCgroup"].as_bool(), Some(true));
        assert_eq!(rt[name]["options"]["Root"].as_str(), Some("/run/containerd/runc"));
        assert_eq!(rt[name]["options"]["BinaryName"].as_str(), Some(bin));
        assert_eq!(rt[name]["sandboxer"].as_str(), Some("podsandbox"));
    }
    // Comments survive.
    assert!(text.starts_with("# containerd 2.x"));
}

#[test]
fn configure_is_idempotent_and_unconfigure_restores_the_text() {
    for original in [V2_DEFAULT, V2_MINIMAL, V3_SYSTEMD] {
        let hs = [handler("hardrun"), handler("hardrun-batch")];
        let (once, _) = configure(original, &hs).unwrap();
        let (twice, changes) = configure(&once, &hs).unwrap();
        assert_eq!(once, twice);
        assert_eq!(changes, [Change::Unchanged, Change::Unchanged]);
        let (removed, changes) = unconfigure(&once, &hs).unwrap();
        assert_eq!(changes, [Change::Removed, Change::Removed]);
        assert_eq!(removed, original);
        let (again, changes) = unconfigure(&removed, &hs).unwrap();
        assert_eq!(again, original);
        assert_eq!(changes, [Change::Unchanged, Change::Unchanged]);
    }
}

#[test]
fn cri_section_without_runtimes_gets_a_plain_handler() {
    let text = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"pause:3.9\"\n";
    let (out, _) = configure(text, &[handler("hardrun")]).unwrap();
    let doc = parsed(&out);
    let h = &runtimes(&doc, "io.containerd.grpc.v1.cri")["hardrun"];
    assert_eq!(h["runtime_type"].as_str(), Some(RUNTIME_TYPE));
    assert_eq!(h["options"]["BinaryName"].as_str(), Some("/usr/local/bin/hardrun"));
    assert!(only_added(text, &out));
}

#[test]
fn existing_pod_annotations_are_kept() {
    let text = V2_MINIMAL.replace(
        "runtime_type = \"io.containerd.runc.v2\"",
        "runtime_type = \"io.containerd.runc.v2\"\n  pod_annotations = [\"example.com/*\"]",
    );
    let (out, _) = configure(&text, &[handler("hardrun")]).unwrap();
    let doc = parsed(&out);
    let ann: Vec<_> = runtimes(&doc, "io.containerd.grpc.v1.cri")["hardrun"]["pod_annotations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    assert_eq!(ann, ["example.com/*", POD_ANNOTATIONS]);
}

#[test]
fn a_handler_running_something_else_is_a_conflict() {
    let (ours, _) = configure(V2_MINIMAL, &[handler("hardrun")]).unwrap();
    let other = Handler { name: "hardrun".into(), binary: "/opt/bin/hardrun".into() };
    let err = configure(&ours, std::slice::from_ref(&other)).unwrap_err();
    assert!(matches!(&err, ContainerdError::HandlerConflict { existing, .. } if existing == "/usr/local/bin/hardrun"));
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(matches!(unconfigure(&ours, &[other]), Err(ContainerdError::HandlerConflict { .. })));
    // A handler without BinaryName (plain runc) is not hardrun's either.
    let plain = format!("{V2_MINIMAL}\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.hardrun]\n  runtime_type = \"io.containerd.runc.v2\"\n");
    assert!(matches!(configure(&plain, &[handler("hardrun")]), Err(ContainerdError::HandlerConflict { .. })));
    assert!(matches!(unconfigure(&plain, &[handler("hardrun")]), Err(ContainerdError::HandlerConflict { .. })));
}

#[test]
fn the_default_runtime_is_never_a_hardrun_handler_target() {
    let text = V2_MINIMAL.replace("default_runtime_name = \"runc\"", "default_runtime_name = \"hardrun\"");
    assert_eq!(configure(&text, &[handler("hardrun")]), Err(ContainerdError::DefaultRuntime("hardrun".into())));
}

#[test]
fn versions_other_than_2_and_3_are_refused() {
    let v1 = V2_MINIMAL.replace("version = 2", "version = 1");
    assert_eq!(configure(&v1, &[handler("hardrun")]), Err(ContainerdError::UnsupportedVersion(1)));
    let none = V2_MINIMAL.replace("version = 2", "");
    assert_eq!(configure(&none, &[handler("hardrun")]), Err(ContainerdError::NoVersion));
    let text = V2_MINIMAL.replace("version = 2", "version = \"2\"");
    assert!(matches!(configure(&text, &[handler("hardrun")]), Err(ContainerdError::Malformed(_))));
    let v4 = V2_MINIMAL.replace("version = 2", "version = 4");
    assert!(configure(&v4, &[handler("hardrun")]).unwrap_err().to_string().contains("version 4"));
}

#[test]
fn malformed_and_missing_cri_are_errors() {
    for bad in ["version = 2\n[plugins\n", "version = 2\nx = = 1\n", "version = 2\n[a]\nb = 1\n[a]\nb = 2\n"] {
        assert!(matches!(configure(bad, &[handler("hardrun")]), Err(ContainerdError::Malformed(_))), "{bad}");
    }
    let no_cri = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".x]\n";
    assert!(configure(no_cri, &[handler("hardrun")]).is_ok());
    for no_cri in
        ["version = 2\n", "version = 2\nplugins = 3\n", "version = 3\n[plugins.\"io.containerd.grpc.v1.cri\"]\n"]
    {
        assert!(matches!(configure(no_cri, &[handler("hardrun")]), Err(ContainerdError::NoCriSection(_))), "{no_cri}");
    }
    let cri_not_table = "version = 2\n[plugins]\n\"io.containerd.grpc.v1.cri\" = 1\n";
    assert!(matches!(configure(cri_not_table, &[handler("hardrun")]), Err(ContainerdError::NotATable { .. })));
    let runtimes_not_table = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\nruntimes = [1]\n";
    assert!(matches!(configure(runtimes_not_table, &[handler("hardrun")]), Err(ContainerdError::NotATable { .. })));
}
