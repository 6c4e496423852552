//! `hardrun install` as an operator runs it: into a node root in a temp dir, against
//! real containerd config files. Bad input leaves every file as it was.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const V2_DEFAULT: &str = include_str!("fixtures/containerd/v2-default.toml");
const V3_SYSTEMD: &str = include_str!("fixtures/containerd/v3-systemd.toml");

struct Node {
    root: tempfile::TempDir,
}

impl Node {
    fn with_containerd_config(text: &str) -> Node {
        let root = tempfile::tempdir().unwrap();
        let node = Node { root };
        std::fs::create_dir_all(node.path("etc/containerd")).unwrap();
        std::fs::write(node.containerd_config(), text).unwrap();
        node
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn containerd_config(&self) -> PathBuf {
        self.path("etc/containerd/config.toml")
    }

    fn install(&self, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hardrun"))
            .arg("install")
            .arg("--root-dir")
            .arg(self.root.path())
            .args(extra)
            .output()
            .unwrap()
    }

    /// Every file below the root with its content (links as `-> target`).
    fn snapshot(&self) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        walk(self.root.path(), &mut out);
        out.sort();
        out
    }
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            walk(&e.path(), out);
        } else if ft.is_symlink() {
            out.push((e.path(), format!("-> {}", std::fs::read_link(e.path()).unwrap().display())));
        } else {
            let bytes = std::fs::read(e.path()).unwrap();
            out.push((e.path(), format!("{} bytes, sha {:x}", bytes.len(), simple_hash(&bytes))));
        }
    }
}

fn simple_hash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x100000001b3))
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn refused(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(2), "stdout: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr.clone()).unwrap()
}

#[test]
fn install_twice_then_uninstall_restores_containerd_config() {
    let node = Node::with_containerd_config(V2_DEFAULT);
    let out = ok(&node.install(&["--handler", "hardrun", "--handler", "hardrun-batch"]));
    assert!(out.contains("systemctl restart containerd"), "{out}");
    let installed = std::fs::read(node.path("usr/local/bin/hardrun")).unwrap();
    assert_eq!(installed, std::fs::read(env!("CARGO_BIN_EXE_hardrun")).unwrap());
    let mode = std::fs::metadata(node.path("usr/local/bin/hardrun")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(std::fs::read_link(node.path("usr/local/bin/hardrun-batch")).unwrap(), Path::new("hardrun"));
    assert!(node.path("etc/hardrun/policies.d/baseline.yaml").is_file());
    assert!(!node.path("etc/hardrun/policies.d/restricted.yaml").exists());
    assert!(node.path("etc/hardrun/hooks.d/audit-poststart.json").is_file());
    assert_eq!(
        std::fs::read_to_string(node.containerd_config().with_extension("toml.hardrun.bak")).unwrap(),
        V2_DEFAULT
    );
    let config = std::fs::read_to_string(node.containerd_config()).unwrap();
    assert!(config.contains("BinaryName = \"/usr/local/bin/hardrun-batch\""), "{config}");

    let before = node.snapshot();
    let again = ok(&node.install(&["--handler", "hardrun", "--handler", "hardrun-batch"]));
    assert!(!again.contains("restart"), "nothing changed, nothing to restart: {again}");
    assert!(again.contains("already configured"), "{again}");
    assert_eq!(node.snapshot(), before, "a second install changes nothing");

    ok(&node.install(&["--handler", "hardrun", "--handler", "hardrun-batch", "--uninstall"]));
    assert_eq!(std::fs::read_to_string(node.containerd_config()).unwrap(), V2_DEFAULT);
    assert!(!node.path("usr/local/bin/hardrun").exists());
    assert!(std::fs::symlink_metadata(node.path("usr/local/bin/hardrun-batch")).is_err());
    assert!(node.path("etc/hardrun/config.yaml").is_file(), "the operator's config stays");
}

#[test]
fn dry_run_prints_a_diff_and_writes_nothing() {
    let node = Node::with_containerd_config(V3_SYSTEMD);
    let before = node.snapshot();
    let out = ok(&node.install(&["--dry-run"]));
    assert_eq!(node.snapshot(), before);
    assert!(out.contains("+        [plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.hardrun]"), "{out}");
    assert!(out.contains("+            BinaryName = \"/usr/local/bin/hardrun\""), "{out}");
    assert!(out.contains("would install"), "{out}");
    assert!(!out.lines().any(|l| l.starts_with('-') && !l.starts_with("---")), "only additions: {out}");
}

#[test]
fn bad_containerd_configs_are_refused_and_nothing_is_written() {
    let occupied = format!(
        "{V2_DEFAULT}\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.hardrun]\n  runtime_type = \"io.containerd.runc.v2\"\n  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.hardrun.options]\n    BinaryName = \"/opt/other/runtime\"\n"
    );
    let cases: Vec<(String, &str)> = vec![
        (occupied, "already exists and runs /opt/other/runtime"),
        ("version = 2\n[plugins\n".into(), "not valid TOML"),
        ("version = 2\n[plugins.\"io.containerd.gc.v1.scheduler\"]\n".into(), "no CRI plugin section"),
        (V2_DEFAULT.replace("version = 2", "version = 1"), "version 1 is not supported"),
        (V2_DEFAULT.replace("version = 2", ""), "no `version` key"),
    ];
    for (text, message) in cases {
        let node = Node::with_containerd_config(&text);
        std::fs::set_permissions(node.containerd_config(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let before = node.snapshot();
        let err = refused(&node.install(&[]));
        assert!(err.contains(message), "want {message:?} in {err}");
        assert!(err.contains("config.toml"), "names the file: {err}");
        assert_eq!(node.snapshot(), before, "untouched after: {err}");
    }
}

#[test]
fn missing_config_and_bad_handler_names_are_refused() {
    let node = Node::with_containerd_config(V2_DEFAULT);
    std::fs::remove_file(node.containerd_config()).unwrap();
    assert!(refused(&node.install(&[])).contains("no containerd config"));
    let node = Node::with_containerd_config(V2_DEFAULT);
    let before = node.snapshot();
    for bad in ["runc", "hardrun-../x", "hardrun-A"] {
        assert!(refused(&node.install(&["--handler", bad])).contains("invalid handler name"));
    }
    assert_eq!(node.snapshot(), before);
}

#[test]
fn an_existing_file_where_a_link_goes_stops_install_before_any_write() {
    let node = Node::with_containerd_config(V2_DEFAULT);
    std::fs::create_dir_all(node.path("usr/local/bin")).unwrap();
    std::fs::write(node.path("usr/local/bin/hardrun-gpu"), "#!/bin/sh\n").unwrap();
    let before = node.snapshot();
    let err = refused(&node.install(&["--handler", "hardrun-gpu"]));
    assert!(err.contains("hardrun-gpu exists"), "{err}");
    assert_eq!(node.snapshot(), before);
}

#[test]
fn operator_files_are_kept_and_mode_is_kept() {
    let node = Node::with_containerd_config(V2_DEFAULT);
    std::fs::set_permissions(node.containerd_config(), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::create_dir_all(node.path("etc/hardrun")).unwrap();
    std::fs::write(node.path("etc/hardrun/config.yaml"), "policyDir: /srv/policies\n").unwrap();
    let out = ok(&node.install(&["--policy", "baseline", "--policy", "restricted"]));
    assert!(out.contains("config.yaml: exists, kept"), "{out}");
    assert_eq!(std::fs::read_to_string(node.path("etc/hardrun/config.yaml")).unwrap(), "policyDir: /srv/policies\n");
    assert!(node.path("etc/hardrun/policies.d/restricted.yaml").is_file());
    let mode = std::fs::metadata(node.containerd_config()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn containerd_only_with_a_prefix_writes_only_the_config() {
    let node = Node::with_containerd_config(V2_DEFAULT);
    let out = ok(&node.install(&["--containerd-only", "--prefix", "/opt/hardrun"]));
    assert!(!out.contains("installed"), "{out}");
    assert!(!node.path("etc/hardrun").exists());
    let config = std::fs::read_to_string(node.containerd_config()).unwrap();
    assert!(config.contains("BinaryName = \"/opt/hardrun/bin/hardrun\""));
}

#[test]
fn a_linked_config_is_edited_where_it_points_and_hostile_files_are_refused() {
    let node = Node::with_containerd_config(V2_DEFAULT);
    let real = node.path("etc/containerd/managed.toml");
    std::fs::rename(node.containerd_config(), &real).unwrap();
    std::os::unix::fs::symlink("managed.toml", node.containerd_config()).unwrap();
    ok(&node.install(&["--containerd-only"]));
    assert_eq!(std::fs::read_link(node.containerd_config()).unwrap(), Path::new("managed.toml"), "the link stays");
    assert!(std::fs::read_to_string(&real).unwrap().contains("runtimes.hardrun]"));
    assert_eq!(std::fs::read_to_string(node.path("etc/containerd/managed.toml.hardrun.bak")).unwrap(), V2_DEFAULT);

    // Not UTF-8, too large, a directory: refused, untouched.
    for (name, setup) in [
        ("binary", Box::new(|p: &Path| std::fs::write(p, b"version = 2\n\xff\xfe\n").unwrap()) as Box<dyn Fn(&Path)>),
        ("huge", Box::new(|p: &Path| std::fs::write(p, "#".repeat(5 * 1024 * 1024)).unwrap())),
        ("dir", Box::new(|p: &Path| std::fs::create_dir(p).unwrap())),
    ] {
        let node = Node::with_containerd_config("");
        std::fs::remove_file(node.containerd_config()).unwrap();
        setup(&node.containerd_config());
        let before = node.snapshot();
        let err = refused(&node.install(&[]));
        assert!(err.contains("config.toml"), "{name}: {err}");
        assert_eq!(node.snapshot(), before, "{name}");
    }
}

#[test]
fn uninstalling_one_handler_keeps_the_binary_the_others_run() {
    let node = Node::with_containerd_config(V2_DEFAULT);
    ok(&node.install(&["--handler", "hardrun", "--handler", "hardrun-gpu"]));
    let out = ok(&node.install(&["--handler", "hardrun-gpu", "--uninstall"]));
    assert!(out.contains("binary kept"), "{out}");
    assert!(node.path("usr/local/bin/hardrun").is_file());
    assert!(std::fs::symlink_metadata(node.path("usr/local/bin/hardrun-gpu")).is_err());
    let config = std::fs::read_to_string(node.containerd_config()).unwrap();
    assert!(config.contains("runtimes.hardrun]") && !config.contains("hardrun-gpu"), "{config}");
    ok(&node.install(&["--uninstall"]));
    assert!(!node.path("usr/local/bin/hardrun").exists());
    assert_eq!(std::fs::read_to_string(node.containerd_config()).unwrap(), V2_DEFAULT);
}
