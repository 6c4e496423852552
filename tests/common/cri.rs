//! The kubelet's side of a node, for end-to-end tests: a real `docker-registry` on
//! loopback holding busybox images built offline with umoci, a real containerd with a
//! private root, state and socket, configured by `hardrun install`, and a CRI client
//! (the `k8s-cri` crate: tonic over containerd's unix socket) with blocking wrappers.
//!
//! Included by tests as `#[path = "common/cri.rs"] mod cri;`. Everything lives in one
//! temp dir; on drop every pod is removed through CRI, then containerd and the shims it
//! started (found by PID: containerd 1.6 puts shim sockets in /run/containerd/s, outside
//! the private state dir) are killed.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    Capability, ContainerConfig, ContainerMetadata, ContainerStatusRequest, CreateContainerRequest, ExecSyncRequest,
    ImageSpec, ImageStatusRequest, LinuxContainerConfig, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, ListPodSandboxRequest, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, PodSandboxStatusRequest, PullImageRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    StartContainerRequest, StopPodSandboxRequest,
};
use tonic::transport::{Channel, Endpoint, Uri};

pub const CONTAINERD: &str = "/usr/bin/containerd";
pub const REGISTRY: &str = "/usr/bin/docker-registry";
/// The containerd config operators start from (docs/kubernetes.md shows what
/// `hardrun install` adds to it).
pub const BASE_CONFIG: &str = include_str!("../../deploy/containerd/config.toml");

/// Whether the e2e tools are here (root, containerd, registry, umoci, skopeo).
pub fn prerequisites_met() -> bool {
    let missing: Vec<&str> =
        [CONTAINERD, REGISTRY, "/usr/bin/umoci", "/usr/bin/skopeo", "/usr/sbin/runc", "/bin/busybox"]
            .into_iter()
            .filter(|p| !Path::new(p).exists())
            .collect();
    let reason = if !nix::unistd::Uid::effective().is_root() {
        Some("not root".to_owned())
    } else if !missing.is_empty() {
        Some(format!("missing {} (scripts/setup.sh installs them)", missing.join(", ")))
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) if std::env::var_os("CI").is_some() => panic!("CRI e2e tests need their tools under CI: {r}"),
        Some(r) => {
            eprintln!("skipping CRI e2e: {r}");
            false
        }
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------
// Registry and images

pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`
    pub addr: String,
}

impl Registry {
    pub fn start(dir: &Path) -> Registry {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("registry-data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = Registry { child, addr };
        wait_for("the registry", Duration::from_secs(20), || TcpStream::connect(&registry.addr).is_ok());
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Image references in the registry.
pub struct Images {
    /// busybox-static with every applet linked in /bin; cmd `sh`.
    pub busybox: String,
    /// The same rootfs whose entrypoint sleeps: the pod sandbox image.
    pub pause: String,
}

/// Builds the images with umoci from the host's busybox-static and pushes them with
/// skopeo: no network beyond loopback.
pub fn build_images(dir: &Path, registry: &Registry) -> Images {
    let layout = dir.join("oci-layout");
    let bundle = dir.join("image-bundle");
    let image = |tag: &str| format!("{}:{tag}", layout.display());
    run(Command::new("umoci").args(["init", "--layout"]).arg(&layout));
    run(Command::new("umoci").args(["new", "--image", &image("busybox")]));
    run(Command::new("umoci").args(["unpack", "--image", &image("busybox")]).arg(&bundle));
    let bin = bundle.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    for applet in run(Command::new("/bin/busybox").arg("--list")).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    for d in ["tmp", "etc", "proc", "sys", "dev"] {
        std::fs::create_dir_all(bundle.join("rootfs").join(d)).unwrap();
    }
    run(Command::new("umoci").args(["repack", "--image", &image("busybox")]).arg(&bundle));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image("busybox"),
        "--config.cmd",
        "sh",
        "--config.env",
        "PATH=/bin",
    ]));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image("busybox"),
        "--tag",
        "pause",
        "--config.entrypoint",
        "/bin/sleep",
        "--config.cmd",
        "2147483647",
    ]));
    let push = |tag: &str, name: &str| {
        let dest = format!("{}/test/{name}:1", registry.addr);
        run(Command::new("skopeo").args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            &format!("oci:{}", image(tag)),
            &format!("docker://{dest}"),
        ]));
        dest
    };
    Images { busybox: push("busybox", "busybox"), pause: push("pause", "pause") }
}

// ---------------------------------------------------------------------------------
// containerd

/// hardrun installed where `install` points containerd: `<dir>/prefix/bin/hardrun`,
/// plus a `hardrun-<class>` link for each of `classes`. Returns the prefix.
pub fn install_hardrun(dir: &Path, classes: &[&str]) -> PathBuf {
    let prefix = dir.join("prefix");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_hardrun"), prefix.join("bin/hardrun")).unwrap();
    for class in classes {
        std::os::unix::fs::symlink("hardrun", prefix.join(format!("bin/hardrun-{class}"))).unwrap();
    }
    prefix
}

/// The containerd config the e2e tests run: deploy/containerd/config.toml with the
/// settings a kubelet-less test node needs, then `hardrun install --containerd-only`.
pub fn write_containerd_config(path: &Path, registry: &Registry, images: &Images, prefix: &Path, handlers: &[&str]) {
    let addr = &registry.addr;
    let cni = install_cni(path.parent().unwrap());
    let extra = format!(
        r#"
# Test node: root here lacks CAP_SYS_RESOURCE (sandbox oom_score_adj -998 would fail),
# the sandbox image and the images come from the loopback registry over http, and the
# streaming server must not collide with another containerd's default port.
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[plugins."io.containerd.grpc.v1.cri".registry.mirrors."{addr}"]
  endpoint = ["http://{addr}"]

# Pods that are not host-network get the tests' own CNI plugin (lo up, a link-local eth0).
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{cni_bin}"
  conf_dir = "{cni_conf}"
"#,
        pause = images.pause,
        cni_bin = cni.bin.display(),
        cni_conf = cni.conf.display(),
    );
    std::fs::write(path, format!("{BASE_CONFIG}{extra}")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hardrun"));
    cmd.args(["install", "--containerd-only", "--containerd-config"]).arg(path).arg("--prefix").arg(prefix);
    for h in handlers {
        cmd.args(["--handler", h]);
    }
    run(&mut cmd);
}

/// CNI directories for the test containerd.
pub struct CniDirs {
    pub bin: PathBuf,
    pub conf: PathBuf,
}

/// The name of tests/fixtures/cni/hardrun-e2e-lo in the network config.
pub const CNI_NETWORK: &str = "hardrun-e2e";

/// Installs tests/fixtures/cni/hardrun-e2e-lo and a network list using only it, under `dir/cni`.
pub fn install_cni(dir: &Path) -> CniDirs {
    use std::os::unix::fs::PermissionsExt;
    let cni = CniDirs { bin: dir.join("cni/bin"), conf: dir.join("cni/conf") };
    std::fs::create_dir_all(&cni.bin).unwrap();
    std::fs::create_dir_all(&cni.conf).unwrap();
    // containerd runs `loopback` for every pod as well: the same script answers for lo.
    for name in ["hardrun-e2e-lo", "loopback"] {
        let plugin = cni.bin.join(name);
        std::fs::write(&plugin, include_str!("../fixtures/cni/hardrun-e2e-lo")).unwrap();
        std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(
        cni.conf.join("10-hardrun-e2e.conflist"),
        format!(r#"{{"cniVersion":"0.4.0","name":"{CNI_NETWORK}","plugins":[{{"type":"hardrun-e2e-lo"}}]}}"#),
    )
    .unwrap();
    cni
}

pub struct Containerd {
    child: Option<Child>,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Containerd {
    /// Starts containerd with `config`, private root/state/socket under `dir`, and
    /// `env` (hardrun's HARDRUN_CONFIG reaches hardrun through the shim).
    /// `POD_BENCH`-style callers that want containerd's state on tmpfs, as /run is on a
    /// real node, mount one at `<dir>/state` first ([`mount_tmpfs`]).
    pub fn start(dir: &Path, config: &Path, env: &[(&str, &Path)]) -> Containerd {
        let socket = dir.join("containerd.sock");
        let log = dir.join("containerd.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(CONTAINERD);
        cmd.arg("--config")
            .arg(config)
            .arg("--root")
            .arg(dir.join("root"))
            .arg("--state")
            .arg(dir.join("state"))
            .arg("--address")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start containerd");
        let c = Containerd { child: Some(child), socket, log };
        wait_for("containerd's socket", Duration::from_secs(30), || {
            std::os::unix::net::UnixStream::connect(&c.socket).is_ok()
        });
        c
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// PIDs of the shims this containerd started (their command line names its socket).
    fn shim_pids(&self) -> Vec<i32> {
        let socket = self.socket.display().to_string();
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else { continue };
            let args: Vec<String> =
                cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            let is_shim = args.first().is_some_and(|a| a.ends_with("containerd-shim-runc-v2"));
            if is_shim && args.windows(2).any(|w| w[0] == "-address" && w[1] == socket) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id() as i32, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for pid in self.shim_pids() {
            signal(pid, libc::SIGKILL);
        }
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a PID this test started; no memory is involved.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// A tmpfs at `path` (created), unmounted on drop.
pub struct Tmpfs(PathBuf);

pub fn mount_tmpfs(path: &Path) -> Tmpfs {
    std::fs::create_dir_all(path).unwrap();
    run(Command::new("mount").args(["-t", "tmpfs", "-o", "size=1g,mode=0711", "tmpfs"]).arg(path));
    Tmpfs(path.to_owned())
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

// ---------------------------------------------------------------------------------
// CRI client

/// A blocking CRI client on a current-thread tokio runtime, like the kubelet's peer.
pub struct Cri {
    rt: tokio::runtime::Runtime,
    pub runtime: RuntimeServiceClient<Channel>,
    pub images: ImageServiceClient<Channel>,
}

impl Cri {
    pub fn connect(socket: &Path) -> Cri {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let path = socket.to_owned();
        let channel = rt
            .block_on(Endpoint::from_static("http://[::]").connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            })))
            .expect("connect to containerd's CRI socket");
        let cri =
            Cri { rt, runtime: RuntimeServiceClient::new(channel.clone()), images: ImageServiceClient::new(channel) };
        cri.wait_until_initialized();
        cri
    }

    /// containerd accepts connections before its CRI plugin has finished starting (CNI
    /// set-up included) and answers "server is not initialized yet" until then; the
    /// kubelet retries, and so do the tests.
    fn wait_until_initialized(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut runtime = self.runtime.clone();
            match self.rt.block_on(runtime.status(k8s_cri::v1::StatusRequest { verbose: false })) {
                Err(e) if e.message().contains("not initialized") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                // Ready, or an error the first real call will report in context.
                _ => return,
            }
        }
    }

    /// Runs one CRI call to completion.
    pub fn call<F: std::future::Future>(&self, f: impl FnOnce(RuntimeServiceClient<Channel>) -> F) -> F::Output {
        self.rt.block_on(f(self.runtime.clone()))
    }

    pub fn pull(&self, image: &str) {
        let mut images = self.images.clone();
        let req = PullImageRequest { image: Some(image_spec(image)), ..Default::default() };
        self.rt.block_on(images.pull_image(req)).unwrap_or_else(|e| panic!("PullImage {image}: {e}"));
    }

    /// `repo@sha256:…` of a pulled image: the manifest digest containerd resolved.
    pub fn repo_digest(&self, image: &str) -> String {
        let mut images = self.images.clone();
        let req = ImageStatusRequest { image: Some(image_spec(image)), verbose: false };
        let status = self.rt.block_on(images.image_status(req)).unwrap_or_else(|e| panic!("ImageStatus {image}: {e}"));
        let image_info = status.into_inner().image.unwrap_or_else(|| panic!("{image} is not pulled"));
        image_info.repo_digests.into_iter().next().unwrap_or_else(|| panic!("{image} has no repo digest"))
    }

    pub fn run_pod(&self, config: &PodSandboxConfig, handler: &str) -> Result<String, tonic::Status> {
        let req = RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: handler.into() };
        self.call(|mut c| async move { c.run_pod_sandbox(req).await }).map(|r| r.into_inner().pod_sandbox_id)
    }

    pub fn create(
        &self,
        pod: &str,
        sandbox: &PodSandboxConfig,
        config: ContainerConfig,
    ) -> Result<String, tonic::Status> {
        let req = CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(config),
            sandbox_config: Some(sandbox.clone()),
        };
        self.call(|mut c| async move { c.create_container(req).await }).map(|r| r.into_inner().container_id)
    }

    pub fn start(&self, id: &str) -> Result<(), tonic::Status> {
        let req = StartContainerRequest { container_id: id.into() };
        self.call(|mut c| async move { c.start_container(req).await }).map(|_| ())
    }

    pub fn status(&self, id: &str) -> k8s_cri::v1::ContainerStatus {
        let req = ContainerStatusRequest { container_id: id.into(), verbose: false };
        self.call(|mut c| async move { c.container_status(req).await })
            .expect("ContainerStatus")
            .into_inner()
            .status
            .expect("a status")
    }

    /// Verbose `PodSandboxStatus` info (containerd puts the sandbox's pid in `info`).
    pub fn pod_info(&self, id: &str) -> std::collections::HashMap<String, String> {
        let req = PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: true };
        self.call(|mut c| async move { c.pod_sandbox_status(req).await }).expect("PodSandboxStatus").into_inner().info
    }

    /// Verbose `ContainerStatus` info (containerd puts the container's pid in `info`).
    pub fn container_info(&self, id: &str) -> std::collections::HashMap<String, String> {
        let req = ContainerStatusRequest { container_id: id.into(), verbose: true };
        self.call(|mut c| async move { c.container_status(req).await }).expect("ContainerStatus").into_inner().info
    }

    /// `ExecSync`: exit code, stdout, stderr.
    pub fn exec_sync(&self, id: &str, cmd: &[&str]) -> (i32, String, String) {
        self.try_exec_sync(id, cmd).expect("ExecSync")
    }

    /// `ExecSync`, its error returned.
    pub fn try_exec_sync(&self, id: &str, cmd: &[&str]) -> Result<(i32, String, String), tonic::Status> {
        let req =
            ExecSyncRequest { container_id: id.into(), cmd: cmd.iter().map(|s| s.to_string()).collect(), timeout: 20 };
        let r = self.call(|mut c| async move { c.exec_sync(req).await })?.into_inner();
        Ok((
            r.exit_code,
            String::from_utf8_lossy(&r.stdout).into_owned(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
        ))
    }

    pub fn stop_and_remove_pod(&self, id: &str) {
        let stop = StopPodSandboxRequest { pod_sandbox_id: id.into() };
        self.call(|mut c| async move { c.stop_pod_sandbox(stop).await }).expect("StopPodSandbox");
        let remove = RemovePodSandboxRequest { pod_sandbox_id: id.into() };
        self.call(|mut c| async move { c.remove_pod_sandbox(remove).await }).expect("RemovePodSandbox");
    }

    pub fn pod_ids(&self) -> Vec<String> {
        let req = ListPodSandboxRequest { filter: None };
        self.call(|mut c| async move { c.list_pod_sandbox(req).await })
            .map(|r| r.into_inner().items.into_iter().map(|p| p.id).collect())
            .unwrap_or_default()
    }

    /// Removes every pod (best effort, for cleanup).
    pub fn remove_all_pods(&self) {
        for id in self.pod_ids() {
            let stop = StopPodSandboxRequest { pod_sandbox_id: id.clone() };
            let _ = self.call(|mut c| async move { c.stop_pod_sandbox(stop).await });
            let remove = RemovePodSandboxRequest { pod_sandbox_id: id };
            let _ = self.call(|mut c| async move { c.remove_pod_sandbox(remove).await });
        }
    }
}

pub fn image_spec(image: &str) -> ImageSpec {
    ImageSpec { image: image.into(), ..Default::default() }
}

fn host_network() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A host-network pod (no CNI needed), as the kubelet describes it.
pub fn pod_config(name: &str, log_dir: &Path) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "e2e".into(),
            attempt: 0,
        }),
        log_directory: log_dir.display().to_string(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(host_network()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The pod in a network namespace of its own, set up by the tests' CNI plugin.
pub fn with_pod_network(mut pod: PodSandboxConfig) -> PodSandboxConfig {
    let ctx = pod.linux.as_mut().and_then(|l| l.security_context.as_mut()).unwrap();
    ctx.namespace_options.as_mut().unwrap().network = NamespaceMode::Pod as i32;
    pod
}

/// The container in its pod's network namespace (see [`with_pod_network`]).
pub fn in_pod_network(mut container: ContainerConfig) -> ContainerConfig {
    let ctx = container.linux.as_mut().and_then(|l| l.security_context.as_mut()).unwrap();
    ctx.namespace_options.as_mut().unwrap().network = NamespaceMode::Pod as i32;
    container
}

/// The PID containerd reports for a pod's sandbox or a container (verbose status `info`).
pub fn pid_of(info: &std::collections::HashMap<String, String>) -> i32 {
    let v: serde_json::Value = serde_json::from_str(&info["info"]).expect("verbose info is JSON");
    v["pid"].as_i64().expect("a pid") as i32
}

/// A container running `sh -c script`, logging to `<name>.log` in the pod's log dir.
pub fn container_config(name: &str, image: &str, script: &str, add_caps: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata { name: name.into(), attempt: 0 }),
        image: Some(image_spec(image)),
        command: vec!["sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}.log"),
        linux: Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(host_network()),
                capabilities: (!add_caps.is_empty()).then(|| Capability {
                    add_capabilities: add_caps.iter().map(|c| c.to_string()).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The text of a CRI log file (`<time> <stream> <P|F> <line>` per line), joined back.
pub fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Waits until the container's log holds `marker`; returns the log text.
pub fn wait_for_log(path: &Path, marker: &str) -> String {
    let mut text = String::new();
    wait_for(&format!("{marker:?} in {}", path.display()), Duration::from_secs(30), || {
        text = log_text(path);
        text.contains(marker)
    });
    text
}
