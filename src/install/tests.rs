use super::*;

#[test]
fn handler_names() {
    for ok in ["hardrun", "hardrun-gpu", "hardrun-a1-b2"] {
        check_handler_name(ok).unwrap();
    }
    for bad in
        ["", "runc", "hardrun-", "hardrun--", "hardrun-GPU", "hardrun-a/b", "hardrun-a b", "hardrun-.x", "x-hardrun"]
    {
        assert!(matches!(check_handler_name(bad), Err(InstallError::HandlerName(_))), "{bad:?}");
    }
    assert!(check_handler_name(&format!("hardrun-{}", "a".repeat(51))).is_err());
}

#[test]
fn default_node_config_is_a_valid_node_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, DEFAULT_NODE_CONFIG).unwrap();
    let config = crate::config::NodeConfig::load(&path).unwrap();
    assert_eq!(config, crate::config::NodeConfig::default());
}

#[test]
fn shipped_policies_load() {
    for (name, text) in SHIPPED_POLICIES {
        let docs = crate::policy::load::parse_documents(Path::new(name), text).unwrap();
        assert!(!docs.policies.is_empty(), "{name}");
    }
}

#[test]
fn hooks_point_at_the_installed_binary() {
    for (name, text) in SHIPPED_HOOKS {
        let same = files::hook_for_binary(text, Path::new("/usr/local/bin/hardrun"));
        assert_eq!(&same, text, "{name}: the default prefix keeps the shipped text");
        let moved = files::hook_for_binary(text, Path::new("/opt/hardrun/bin/hardrun"));
        let v: serde_json::Value = serde_json::from_str(&moved).unwrap();
        assert_eq!(v["hook"]["path"], "/opt/hardrun/bin/hardrun");
    }
}

#[test]
fn unknown_policy_and_relative_prefix_are_refused() {
    let opts = Options {
        handlers: vec!["hardrun".into()],
        prefix: "/usr/local".into(),
        root_dir: "/nonexistent-root".into(),
        containerd_config: None,
        binary_source: "/bin/true".into(),
        policies: vec!["nope".into()],
        containerd_only: false,
        dry_run: true,
        uninstall: false,
    };
    assert!(matches!(run(&opts), Err(InstallError::UnknownPolicy(_))));
    let opts = Options { policies: vec![], prefix: "usr/local".into(), ..opts };
    assert!(matches!(run(&opts), Err(InstallError::RelativePrefix(_))));
}
