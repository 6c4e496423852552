//! Test-only registry helpers: Debian's `docker-registry` on 127.0.0.1 with a temp
//! config and filesystem storage, busybox images built offline with umoci and pushed
//! with skopeo, and a loopback listener that accepts and never answers.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// Whether docker-registry, umoci and skopeo are installed (else the caller skips).
pub fn tools_present() -> bool {
    let missing: Vec<&str> =
        [DOCKER_REGISTRY, "/usr/bin/umoci", "/usr/bin/skopeo"].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("registry tests need {missing:?} under CI (scripts/setup.sh installs them)");
    }
    eprintln!("skipping: {missing:?} missing");
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running docker-registry; stopped on drop.
pub struct Registry {
    dir: TempDir,
    child: Option<Child>,
    pub host: String,
}

impl Registry {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("hardrun-registry-").tempdir().unwrap();
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut r = Registry { dir, child: None, host };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("registry.log")).unwrap();
        let child = Command::new(DOCKER_REGISTRY)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&self.host).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not listen on {}", self.host);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Builds a busybox image whose `/variant` holds `variant` (so each variant has its
    /// own digest), pushes it as `repo:tag`, and returns its manifest digest.
    pub fn push_busybox(&self, repo: &str, tag: &str, variant: &str) -> String {
        let work = tempfile::tempdir().unwrap();
        let layout = work.path().join("layout");
        let bundle = work.path().join("bundle");
        run("umoci", &["init", "--layout", path(&layout)]);
        let image = format!("{}:img", path(&layout));
        run("umoci", &["new", "--image", &image]);
        run("umoci", &["unpack", "--image", &image, path(&bundle)]);
        let bin = bundle.join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
        for applet in ["sh", "cat", "echo", "true"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        std::fs::write(bundle.join("rootfs/variant"), variant).unwrap();
        run("umoci", &["repack", "--image", &image, path(&bundle)]);
        let digest_file = work.path().join("digest");
        let dest = format!("docker://{}/{repo}:{tag}", self.host);
        run(
            "skopeo",
            &[
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--digestfile",
                path(&digest_file),
                &format!("oci:{image}"),
                &dest,
            ],
        );
        std::fs::read_to_string(digest_file).unwrap().trim().to_owned()
    }

    /// Copies `repo:tag` to `to_repo:to_tag` within this registry (a re-tag).
    pub fn copy(&self, from: &str, to: &str) {
        let (a, b) = (format!("docker://{}/{from}", self.host), format!("docker://{}/{to}", self.host));
        run("skopeo", &["copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", &a, &b]);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A loopback port that accepts connections (the kernel's backlog) and never answers.
pub struct StalledServer {
    _listener: TcpListener,
    pub host: String,
}

impl StalledServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        StalledServer { _listener: listener, host }
    }
}

/// A key pair made by `hardrun sign --generate-key` in `dir`; returns (key, pub).
pub fn generate_keys(hardrun: &str, dir: &Path, password: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new(hardrun)
        .args(["sign", "--generate-key", "--output-dir"])
        .arg(dir)
        .env("COSIGN_PASSWORD", password)
        .output()
        .unwrap();
    assert!(out.status.success(), "generate-key: {}", String::from_utf8_lossy(&out.stderr));
    (dir.join("cosign.key"), dir.join("cosign.pub"))
}

/// A private containerd (its own root, state and socket; CRI off), stopped on drop.
pub struct Containerd {
    dir: TempDir,
    child: Child,
    pub socket: PathBuf,
}

impl Containerd {
    pub fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("hardrun-containerd-").tempdir().unwrap();
        let socket = dir.path().join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n[debug]\n  address = \"\"\n",
            root = dir.path().join("root").display(),
            state = dir.path().join("state").display(),
            sock = socket.display()
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
        let child = Command::new("/usr/bin/containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "containerd did not listen on {}", socket.display());
            std::thread::sleep(Duration::from_millis(50));
        }
        Containerd { dir, child, socket }
    }

    /// `ctr` against this containerd in `namespace`.
    pub fn ctr(&self, namespace: &str, args: &[&str]) {
        let mut full = vec!["--address", self.socket.to_str().unwrap(), "--namespace", namespace];
        full.extend_from_slice(args);
        run("ctr", &full);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}
