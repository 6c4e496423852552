//! Shared harness for integration tests that drive hardrun and the real runc.
//!
//! * [`Env`]: one node in a temp dir: `config.yaml` (runtime, auditLog, stateDir,
//!   policyDir), a private runc `--root`, and helpers to write policies and read the
//!   audit log. Every container left in its root is `runc delete -f`'d on drop.
//! * [`Bundle`]: a busybox bundle: `rootfs/bin/busybox` plus applet symlinks and a
//!   `config.json` made by `runc spec`, then edited as a `serde_json::Value`.
//! * [`Invocation`]: one run of hardrun (as runc, with `HARDRUN_CONFIG` set) or of the
//!   bare runc, with `--root <env root>` and optionally `--log <file> --log-format json`.
//!
//! Each test binary includes this file with `mod common;` and uses what it needs.
//! Tests start with `if !common::prerequisites_met() { return; }`: without root or
//! runc they skip with a message, except under CI, where that is a failure.
//!
//! `runc create` hands its own stdio to the container, so a pipe on it is held open
//! until the container exits: [`Invocation::run_to_files`] sends stdio to files for
//! commands that leave a container behind; [`Invocation::output`] is for the rest.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod registry;

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

/// The real runc every test uses.
pub const RUNC: &str = "/usr/sbin/runc";
/// The hardrun binary under test.
pub const HARDRUN: &str = env!("CARGO_BIN_EXE_hardrun");
const BUSYBOX: &str = "/bin/busybox";
/// Applets linked into every bundle's `/bin`.
const APPLETS: &[&str] = &["sh", "cat", "echo", "sleep", "grep", "ls", "true", "false", "id", "head", "wc"];

/// Docker's (and containerd's) default capability set: 14 capabilities, NET_RAW among them.
pub const DOCKER_DEFAULT_CAPS: &[&str] = hardrun::policy::CONTAINERD_DEFAULT_CAPS;

/// Whether these tests can run here (root and runc). When not, says why on stderr and
/// returns false, so the test returns early; under CI (`CI` set) it panics instead,
/// because CI machines have both and a silent skip would hide a broken setup.
pub fn prerequisites_met() -> bool {
    let reason = if !nix::unistd::Uid::effective().is_root() {
        Some("not running as root".to_owned())
    } else if !Path::new(RUNC).is_file() {
        Some(format!("{RUNC} is missing"))
    } else if !Path::new(BUSYBOX).is_file() {
        Some(format!("{BUSYBOX} is missing (apt-get install busybox-static)"))
    } else {
        None
    };
    match reason {
        None => true,
        Some(r) if std::env::var_os("CI").is_some() => panic!("integration tests need root and runc under CI: {r}"),
        Some(r) => {
            eprintln!("skipping: {r}; these tests need root, {RUNC} and {BUSYBOX}");
            false
        }
    }
}

/// A container id unique across tests, test binaries and runs: runc's default cgroup
/// path is derived from the id, so two roots must not share one either.
pub fn unique_id(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("hr-{tag}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------
// Env: a node

/// One node: config, policies, audit log and runc root, all in one temp dir.
pub struct Env {
    dir: TempDir,
    pub config_path: PathBuf,
    pub audit_log: PathBuf,
    pub state_dir: PathBuf,
    /// Absent until a policy is written: hardrun then uses its embedded baseline.
    pub policy_dir: PathBuf,
    /// runc's `--root` for every invocation made through this env.
    pub root: PathBuf,
}

impl Env {
    /// A node using `/usr/sbin/runc` and, until [`Env::write_policy`], the embedded baseline.
    pub fn new() -> Self {
        Self::with_runtime(RUNC)
    }

    /// A node whose config names `runtime` as the real runc.
    pub fn with_runtime(runtime: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("hardrun-env-").tempdir().expect("temp dir");
        let env = Env {
            config_path: dir.path().join("config.yaml"),
            audit_log: dir.path().join("audit").join("audit.jsonl"),
            state_dir: dir.path().join("state"),
            policy_dir: dir.path().join("policies.d"),
            root: dir.path().join("runc-root"),
            dir,
        };
        env.write_config(&env.config_yaml(runtime));
        env
    }

    /// The standard config text for this env with `runtime` as runc.
    pub fn config_yaml(&self, runtime: &str) -> String {
        format!(
            "runtime: {runtime}\nauditLog: {}\nstateDir: {}\npolicyDir: {}\n",
            self.audit_log.display(),
            self.state_dir.display(),
            self.policy_dir.display()
        )
    }

    /// Replaces config.yaml with `text` (for tests of bad node configs).
    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config_path, text).expect("write config.yaml");
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `<policyDir>/<file>`, creating the directory: from then on the embedded
    /// baseline is no longer used. Returns the file's path.
    pub fn write_policy(&self, file: &str, yaml: &str) -> PathBuf {
        std::fs::create_dir_all(&self.policy_dir).expect("create policy dir");
        let path = self.policy_dir.join(file);
        std::fs::write(&path, yaml).expect("write policy");
        path
    }

    /// A fresh path in the env for a log or output file (not created).
    pub fn file(&self, tag: &str) -> PathBuf {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        self.dir.path().join(format!("{tag}-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
    }

    /// A container id unique to this test (see [`unique_id`]).
    pub fn id(&self, tag: &str) -> String {
        unique_id(tag)
    }

    pub fn hardrun(&self) -> Invocation<'_> {
        Invocation::new(self, Runtime::Hardrun)
    }

    pub fn runc(&self) -> Invocation<'_> {
        Invocation::new(self, Runtime::Runc)
    }

    pub fn invoke(&self, runtime: Runtime) -> Invocation<'_> {
        Invocation::new(self, runtime)
    }

    /// `hardrun create`s every bundle under its id at once (threads released together
    /// by a barrier, so the creates really overlap); each must succeed.
    pub fn create_in_parallel(&self, bundles: &[Bundle], ids: &[String]) {
        let start = std::sync::Barrier::new(bundles.len());
        std::thread::scope(|s| {
            let handles: Vec<_> = bundles
                .iter()
                .zip(ids)
                .map(|(bundle, id)| {
                    let start = &start;
                    s.spawn(move || {
                        start.wait();
                        self.hardrun().args(["create", "--bundle"]).arg(bundle.path()).arg(id).run_to_files().0
                    })
                })
                .collect();
            for (h, id) in handles.into_iter().zip(ids) {
                let out = h.join().unwrap();
                assert_eq!(out.code, 0, "create {id}: {out:?}");
            }
        });
    }

    /// The audit log's text ("" when it does not exist).
    pub fn audit_text(&self) -> String {
        match std::fs::read_to_string(&self.audit_log) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => panic!("read {}: {e}", self.audit_log.display()),
        }
    }

    /// Every audit line, each parsed (panics on a line that is not a JSON object).
    pub fn audit_records(&self) -> Vec<Value> {
        json_lines(&self.audit_text(), "audit log")
    }

    /// Every audit record of container `id`, in log order.
    pub fn audit_records_of(&self, id: &str) -> Vec<Value> {
        self.audit_records().into_iter().filter(|r| r["containerId"].as_str() == Some(id)).collect()
    }

    /// The decision record of container `id`: the one of its create/run/restore
    /// (exactly one is expected; start and delete leave lifecycle records too).
    pub fn audit_record(&self, id: &str) -> Value {
        let mut found: Vec<Value> = self
            .audit_records_of(id)
            .into_iter()
            .filter(|r| matches!(r["command"].as_str(), Some("create" | "run" | "restore")))
            .collect();
        assert_eq!(found.len(), 1, "decision records for {id}: {found:?}");
        found.remove(0)
    }

    /// `runc state <id>` by the bare runc: `None` when runc knows no such container.
    pub fn state(&self, id: &str) -> Option<Value> {
        let out = self.runc().args(["state", id]).output();
        (out.code == 0).then(|| out.json())
    }

    /// The ids of every container in this env's root, by the bare runc.
    pub fn containers(&self) -> Vec<String> {
        let out = self.runc().args(["list", "-q"]).output();
        assert_eq!(out.code, 0, "runc list: {out:?}");
        out.stdout.lines().map(str::to_owned).collect()
    }

    /// Polls the bare runc until container `id` has `status` (panics after 5 s).
    pub fn wait_status(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let state = self.state(id);
            match &state {
                Some(s) if s["status"] == status => return s.clone(),
                _ if Instant::now() > deadline => panic!("container {id} never became {status}: {state:?}"),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Force-deletes `id` with the bare runc.
    pub fn delete(&self, id: &str) {
        let _ = self.runc().args(["delete", "-f", id]).output();
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !self.root.exists() {
            return;
        }
        let Ok(out) = Command::new(RUNC).arg("--root").arg(&self.root).args(["list", "-q"]).output() else { return };
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = Command::new(RUNC)
                .arg("--root")
                .arg(&self.root)
                .args(["delete", "-f", id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A policy document. `allow: None` leaves capabilities unrestricted.
pub fn policy_yaml(name: &str, mode: &str, no_new_privileges: bool, allow: Option<&[&str]>) -> String {
    let mut y = format!(
        "apiVersion: hardrun.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: {name}\nspec:\n  mode: {mode}\n  \
         noNewPrivileges: {no_new_privileges}\n"
    );
    if let Some(caps) = allow {
        y.push_str(&format!("  capabilities:\n    allow: [{}]\n", caps.join(", ")));
    }
    y
}

/// Parses JSON lines; every line must be a JSON object.
pub fn json_lines(text: &str, what: &str) -> Vec<Value> {
    text.lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: line {} is not JSON: {e}", clip(l)));
            assert!(v.is_object(), "{what}: line {} is not a JSON object", clip(l));
            v
        })
        .collect()
}

/// A line short enough for a panic message.
fn clip(line: &str) -> String {
    const KEEP: usize = 300;
    match line.char_indices().nth(KEEP) {
        Some((i, _)) => format!("{:?}… ({} bytes)", &line[..i], line.len()),
        None => format!("{line:?}"),
    }
}

/// The lines of a runc/hardrun `--log-format json` file ([] when it does not exist).
pub fn log_lines(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(t) => json_lines(&t, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", path.display()),
    }
}

// ---------------------------------------------------------------------------------
// Invocation: one run of hardrun or runc

/// Which binary an [`Invocation`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// hardrun in runtime mode, with `HARDRUN_CONFIG` pointing at the env's config.
    Hardrun,
    /// The real runc.
    Runc,
}

/// A command line: `<binary> --root <root> [--log F --log-format json] <args>`.
pub struct Invocation<'e> {
    env: &'e Env,
    runtime: Runtime,
    log: Option<PathBuf>,
    globals: Vec<OsString>,
    args: Vec<OsString>,
    extra_fd: Option<File>,
    cwd: Option<PathBuf>,
}

/// How an invocation ended and what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The exit code; a death by signal N is reported as 128 + N, as a shell would.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// stdout parsed as JSON (panics, showing the outcome, when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    fn from_status(status: std::process::ExitStatus, stdout: String, stderr: String) -> Self {
        use std::os::unix::process::ExitStatusExt;
        let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        Outcome { code, stdout, stderr }
    }
}

impl<'e> Invocation<'e> {
    fn new(env: &'e Env, runtime: Runtime) -> Self {
        Invocation { env, runtime, log: None, globals: Vec::new(), args: Vec::new(), extra_fd: None, cwd: None }
    }

    /// Adds `--log <path> --log-format json` (as containerd's shim does).
    pub fn log(mut self, path: &Path) -> Self {
        self.log = Some(path.to_owned());
        self
    }

    /// Adds a global flag before the subcommand (after `--root`/`--log`).
    pub fn global(mut self, arg: impl Into<OsString>) -> Self {
        self.globals.push(arg.into());
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Passes `file` to the child as fd 3 (for `--preserve-fds 1`).
    pub fn fd3(mut self, file: File) -> Self {
        self.extra_fd = Some(file);
        self
    }

    /// Runs the command in `dir` (runc's default bundle is the working directory).
    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_owned());
        self
    }

    /// The full argv after the program name.
    pub fn argv(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["--root".into(), self.env.root.clone().into()];
        if let Some(log) = &self.log {
            v.extend(["--log".into(), log.clone().into(), "--log-format".into(), "json".into()]);
        }
        v.extend(self.globals.iter().cloned());
        v.extend(self.args.iter().cloned());
        v
    }

    /// The command, stdin from /dev/null, stdout and stderr not yet set.
    pub fn command(&self) -> Command {
        let program = match self.runtime {
            Runtime::Hardrun => HARDRUN,
            Runtime::Runc => RUNC,
        };
        let mut cmd = Command::new(program);
        cmd.args(self.argv()).stdin(Stdio::null());
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        match self.runtime {
            Runtime::Hardrun => cmd.env("HARDRUN_CONFIG", &self.env.config_path),
            // A stray node config must not matter to the bare runc; make that visible.
            Runtime::Runc => cmd.env_remove("HARDRUN_CONFIG"),
        };
        if let Some(file) = &self.extra_fd {
            let fd = file.as_raw_fd();
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let r = if fd == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(fd, 3) };
                    if r < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cmd
    }

    /// Runs to completion capturing stdout and stderr through pipes. Not for commands
    /// that leave a container holding their stdio (`create`, `run -d`): see `run_to_files`.
    pub fn output(&self) -> Outcome {
        let out = self.command().output().unwrap_or_else(|e| panic!("spawn {:?}: {e}", self.argv()));
        Outcome::from_status(
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs to completion with stdout and stderr sent to files in the env, so a
    /// container that inherits them does not keep the caller waiting. The outcome
    /// holds what the files held when the command exited. Returns the stdout file's
    /// path too, for output the container writes later.
    pub fn run_to_files(&self) -> (Outcome, PathBuf) {
        let out_path = self.env.file("stdout");
        let err_path = self.env.file("stderr");
        let status = self
            .command()
            .stdout(File::create(&out_path).expect("stdout file"))
            .stderr(File::create(&err_path).expect("stderr file"))
            .status()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", self.argv()));
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        (Outcome::from_status(status, read(&out_path), read(&err_path)), out_path)
    }
}

// ---------------------------------------------------------------------------------
// Bundle: a busybox OCI bundle

/// A busybox bundle in a temp dir. Its config.json starts as `runc spec` makes it,
/// with `terminal: false`, the given args, and no other change.
pub struct Bundle {
    dir: TempDir,
}

/// `runc spec`'s output, made once per test binary.
fn runc_spec_template() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let d = tempfile::tempdir().expect("temp dir");
        let out = Command::new(RUNC).args(["spec", "--bundle"]).arg(d.path()).output().expect("run runc spec");
        assert!(out.status.success(), "runc spec: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&std::fs::read(d.path().join("config.json")).expect("read spec")).expect("spec JSON")
    })
}

impl Bundle {
    /// A bundle whose process runs `args` (e.g. `["sleep", "30"]`).
    pub fn new(args: &[&str]) -> Self {
        let dir = tempfile::Builder::new().prefix("hardrun-bundle-").tempdir().expect("temp dir");
        let bin = dir.path().join("rootfs/bin");
        std::fs::create_dir_all(&bin).expect("create rootfs/bin");
        std::fs::copy(BUSYBOX, bin.join("busybox")).expect("copy busybox");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet symlink");
        }
        let bundle = Bundle { dir };
        let mut spec = runc_spec_template().clone();
        spec["process"]["terminal"] = json!(false);
        spec["process"]["args"] = json!(args);
        bundle.write_spec(&spec);
        bundle
    }

    /// Another bundle with the same config.json and a rootfs sharing this one's files
    /// (hard links): cheap, for tests that need many bundles.
    pub fn duplicate(&self) -> Self {
        let dir = tempfile::Builder::new().prefix("hardrun-bundle-").tempdir().expect("temp dir");
        let bin = dir.path().join("rootfs/bin");
        std::fs::create_dir_all(&bin).expect("create rootfs/bin");
        std::fs::hard_link(self.path().join("rootfs/bin/busybox"), bin.join("busybox")).expect("link busybox");
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("applet symlink");
        }
        std::fs::copy(self.config_path(), dir.path().join("config.json")).expect("copy config.json");
        Bundle { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    /// config.json's exact bytes.
    pub fn config_bytes(&self) -> Vec<u8> {
        std::fs::read(self.config_path()).expect("read config.json")
    }

    /// config.json parsed.
    pub fn spec(&self) -> Value {
        serde_json::from_slice(&self.config_bytes()).expect("config.json is JSON")
    }

    /// Writes config.json (pretty, as `runc spec` does).
    pub fn write_spec(&self, spec: &Value) {
        std::fs::write(self.config_path(), serde_json::to_vec_pretty(spec).expect("encode")).expect("write spec");
    }

    /// Reads config.json, lets `f` change it, writes it back.
    pub fn edit(&self, f: impl FnOnce(&mut Value)) -> &Self {
        let mut spec = self.spec();
        f(&mut spec);
        self.write_spec(&spec);
        self
    }

    pub fn set_args(&self, args: &[&str]) -> &Self {
        self.edit(|s| s["process"]["args"] = json!(args))
    }

    /// Sets bounding, effective and permitted to `caps` and removes inheritable and
    /// ambient: the shape containerd and Docker give a container.
    pub fn set_caps(&self, caps: &[&str]) -> &Self {
        self.edit(|s| {
            s["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
        })
    }

    pub fn set_no_new_privileges(&self, on: bool) -> &Self {
        self.edit(|s| s["process"]["noNewPrivileges"] = json!(on))
    }

    /// Adds (or replaces) annotations.
    pub fn set_annotations(&self, pairs: &[(&str, &str)]) -> &Self {
        self.edit(|s| {
            if !s["annotations"].is_object() {
                s["annotations"] = json!({});
            }
            for (k, v) in pairs {
                s["annotations"][*k] = json!(v);
            }
        })
    }
}

// ---------------------------------------------------------------------------------
// Capabilities, as the kernel numbers them

/// The kernel's number for a capability (include/uapi/linux/capability.h).
pub fn cap_number(name: &str) -> u32 {
    const CAPS: &[&str] = &[
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    let short = name.strip_prefix("CAP_").unwrap_or(name);
    CAPS.iter().position(|c| *c == short).unwrap_or_else(|| panic!("unknown capability {name}")) as u32
}

/// The bit mask of a capability list, as /proc/<pid>/status shows it (in hex).
pub fn cap_mask(caps: &[&str]) -> u64 {
    caps.iter().fold(0, |m, c| m | 1u64 << cap_number(c))
}

/// The fields of a /proc/<pid>/status dump (`Name:\tvalue` lines).
pub fn proc_status(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect()
}

/// A capability field of a /proc/<pid>/status dump (`CapEff`, `CapBnd`, …) as a mask.
pub fn status_mask(status: &std::collections::BTreeMap<String, String>, field: &str) -> u64 {
    let hex = status.get(field).unwrap_or_else(|| panic!("no {field} in status: {status:?}"));
    u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{field} {hex:?}: {e}"))
}
