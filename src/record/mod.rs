//! Seccomp profile recording with the kernel's seccomp user notification (no eBPF,
//! no auditd): a `kind: Recording` puts matched containers in recording mode.
//!
//! At create, [`arm`] starts the recorder ([`recorder`], `hardrun __recorder`) and
//! replaces `linux.seccomp` with a filter that sends every call to it
//! ([`notify_section`]); runc hands the recorder the notify fd; the recorder answers
//! "continue" to each call and, when the container's last process is gone, writes a
//! Docker/OCI profile under `stateDir/recordings/` ([`profile`]) that `localhost/`
//! policies load. docs/seccomp.md "Recording profiles" describes it end to end.

pub mod model;
pub mod notify;
pub mod profile;
pub mod recorder;

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::audit::{Decision, RecordingEvent};
use crate::config::NodeConfig;
use crate::context::ContainerContext;
use crate::enforce::seccomp::Target;
use crate::pipeline::Evaluation;
use crate::spec::PatchOp;
pub use model::{MergeMode, OnRecorderFailure, Recording, RecordingSpec, KIND_RECORDING};
use recorder::RecorderConfig;

/// `stateDir/recordings`: the profiles.
pub fn recordings_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("recordings")
}

/// The profile name of one container: the Recording's `output`, plus the CRI
/// container name when there is one (so one Recording can cover a pod's containers).
pub fn output_name(spec: &RecordingSpec, container_name: Option<&str>) -> String {
    let clean = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect()
    };
    match container_name {
        Some(n) if !n.is_empty() => {
            let mut name = format!("{}-{}", spec.output, clean(n));
            name.truncate(100);
            name
        }
        _ => spec.output.clone(),
    }
}

/// The `linux.seccomp` of recording mode: every call the kernel tables here name is
/// sent to the recorder (`SCMP_ACT_NOTIFY`) except those runc must make before the
/// recorder holds the fd ([`profile::ALWAYS_ALLOWED`]: runc 1.1 refuses NOTIFY for
/// `write`, and refuses it as the default action, so the default is ALLOW and the
/// calls are listed).
pub fn notify_section(socket: &Path, token: &str, target: &Target) -> Value {
    let mut names: Vec<&str> = crate::policy::seccomp::target_names()
        .iter()
        .map(|n| notify::unraw(n))
        .filter(|n| !profile::ALWAYS_ALLOWED.contains(n))
        .collect();
    names.sort_unstable();
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": target.arches,
        "listenerPath": socket.display().to_string(),
        "listenerMetadata": token,
        "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}]
    })
}

/// Puts the container in recording mode when a Recording selects it: starts the
/// recorder and replaces `linux.seccomp` in the evaluation's result and patch.
/// `Ok(None)`: no Recording applies (or the container is denied anyway).
/// `Err`: the recorder could not start and the Recording says `kill`: deny.
pub fn arm(
    config: &NodeConfig,
    eval: &mut Evaluation,
    container_id: Option<&str>,
) -> Result<Option<RecordingEvent>, String> {
    let Some(rec) = eval.recording.clone() else { return Ok(None) };
    if eval.decision == Decision::Denied {
        return Ok(None);
    }
    let output = output_name(&rec.spec, eval.context.container_name.as_deref());
    let mut event = RecordingEvent {
        recording: rec.name.clone(),
        output: output.clone(),
        state: "armed".into(),
        ..Default::default()
    };
    match start(config, &rec, &output, container_id, &eval.context) {
        Ok((socket, token)) => {
            let section = notify_section(&socket, &token, &Target::host());
            let op = PatchOp::set(&eval.result, "/linux/seccomp", section);
            let mut one = crate::spec::Patch::default();
            one.push(op);
            one.apply(&mut eval.result).map_err(|e| format!("recording: {e}"))?;
            eval.patch.extend(one);
            eval.decision = Decision::Mutated;
            event.message = Some(format!("recorder listening on {}", socket.display()));
            Ok(Some(event))
        }
        Err(e) if rec.spec.on_recorder_failure == OnRecorderFailure::Allow => {
            event.state = "not-started".into();
            event.message = Some(format!("{e}; running unrecorded (onRecorderFailure: allow)"));
            Ok(Some(event))
        }
        Err(e) => Err(format!("recording {}: {e} (onRecorderFailure: kill)", rec.name)),
    }
}

/// Creates the directories, binds the socket and spawns the recorder with it.
/// The socket's name hashes containerd's namespace (from runc's root) with the id, so
/// two containers with one id in different roots are kept apart.
fn start(
    config: &NodeConfig,
    rec: &Recording,
    output: &str,
    container_id: Option<&str>,
    context: &ContainerContext,
) -> Result<(PathBuf, String), String> {
    let namespace = context.containerd_namespace.as_deref().unwrap_or_default();
    let id = container_id.ok_or("no container id")?;
    let dir = recordings_dir(&config.state_dir);
    let run = dir.join("run");
    private_dir(&dir)?;
    private_dir(&run)?;
    let key = &format!("{:x}", Sha256::digest(format!("{namespace}/{id}").as_bytes()))[..16];
    let socket = run.join(format!("{key}.sock"));
    // sun_path holds 108 bytes with the terminating NUL.
    if socket.as_os_str().len() > 107 {
        return Err(format!("socket path {} is too long for a unix socket", socket.display()));
    }
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
    let token = crate::audit::random_id();
    let cfg = RecorderConfig {
        recording: rec.name.clone(),
        output: output.to_owned(),
        merge: rec.spec.merge,
        on_failure: rec.spec.on_recorder_failure,
        timeout_ms: u64::from(rec.spec.timeout_seconds) * 1000,
        checkpoint_ms: u64::from(rec.spec.checkpoint_seconds) * 1000,
        container_id: id.to_owned(),
        token: token.clone(),
        dir: dir.clone(),
        socket: socket.clone(),
        log: run.join(format!("{key}.log")),
        arches: Target::host().arches.iter().map(|a| (*a).to_owned()).collect(),
        context: context.clone(),
    };
    spawn(&cfg, listener.as_raw_fd()).inspect_err(|_| {
        let _ = std::fs::remove_file(&socket);
    })?;
    Ok((socket, token))
}

/// A directory only root can enter; an existing symlink in its place is refused.
fn private_dir(dir: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
            return Err(format!("{} is not a directory (symlinks are refused)", dir.display()))
        }
        Ok(_) => {}
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?,
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Runs `hardrun __recorder` with the listener as fd 3 in a new session, stdio on
/// /dev/null; it forks and its first process exits at once, which this waits for.
fn spawn(cfg: &RecorderConfig, listener: RawFd) -> Result<(), String> {
    let env = serde_json::to_string(cfg).map_err(|e| e.to_string())?;
    // The magic link, not its target: it execs this very binary even when the file
    // was replaced (an upgrade) since hardrun started.
    let mut cmd = Command::new("/proc/self/exe");
    cmd.args(recorder::argv())
        .env(recorder::CONFIG_ENV, env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls (dup2, fcntl, setsid) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if listener == recorder::LISTEN_FD {
                let flags = libc::fcntl(listener, libc::F_GETFD);
                if flags < 0 || libc::fcntl(listener, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(listener, recorder::LISTEN_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd.status().map_err(|e| format!("cannot start the recorder: {e}"))?;
    if !status.success() {
        return Err(format!("the recorder did not start ({status})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_section_never_notifies_write() {
        let v = notify_section(Path::new("/s"), "t", &Target::host());
        let names = v["syscalls"][0]["names"].as_array().unwrap();
        assert!(names.iter().any(|n| n == "mkdir"));
        assert!(!names.iter().any(|n| n == "write"));
        assert_eq!(v["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(v["listenerMetadata"], "t");
    }

    #[test]
    fn output_names_are_safe() {
        let spec: RecordingSpec = serde_yaml::from_str("output: web").unwrap();
        assert_eq!(output_name(&spec, None), "web");
        assert_eq!(output_name(&spec, Some("nginx")), "web-nginx");
        assert_eq!(output_name(&spec, Some("../x")), "web-.._x");
        assert!(profile::check_name(&output_name(&spec, Some(&"x".repeat(300)))).is_ok());
    }
}
