//! Runs a piece of work that parses untrusted bytes (registry responses, signatures,
//! certificates) in a forked child that can do almost nothing else: no capabilities
//! (bounding set included), no_new_privs, landlock (read-only access to named paths, no
//! writes, TCP connect only to named ports where the kernel supports it) and a seccomp
//! deny-list. The child sends one JSON reply over a pipe; the parent reads it with a
//! size cap and a deadline and parses it strictly. A child that crashes, hangs or sends
//! garbage is an error, which callers turn into a denial.
//!
//! The parent never confines itself: landlock and seccomp would survive its `execve`
//! into runc and then bind the container.
//!
//! ```no_run
//! use hardrun::sandbox::{Confinement, run};
//! use std::time::Duration;
//!
//! let conf = Confinement { read: vec!["/etc/hardrun".into()], connect_ports: vec![443], ..Default::default() };
//! let (len, report) = run(&conf, || std::fs::read("/etc/hardrun/config.yaml").map(|b| b.len()).ok())?;
//! println!("{len:?} bytes, landlock: {}", report.landlock);
//! # Ok::<(), hardrun::sandbox::SandboxError>(())
//! ```

mod confine;

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use confine::{denied_syscalls, Achieved};

/// The largest reply a child may send.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;
/// How long a child may run when the caller sets no deadline.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the child may still do.
#[derive(Debug, Clone)]
pub struct Confinement {
    /// Files and directories the child may read (and nothing else).
    pub read: Vec<PathBuf>,
    /// TCP ports the child may connect to (landlock ABI 4 and later).
    pub connect_ports: Vec<u16>,
    /// The deadline for the reply, after which the child is killed.
    pub timeout: Duration,
}

impl Default for Confinement {
    fn default() -> Self {
        Confinement { read: Vec::new(), connect_ports: Vec::new(), timeout: DEFAULT_TIMEOUT }
    }
}

/// The system files name resolution and TLS need: resolver config, NSS modules
/// (a static glibc loads them at run time) and the CA store.
pub fn network_read_paths() -> Vec<PathBuf> {
    [
        "/etc/resolv.conf",
        "/etc/hosts",
        "/etc/nsswitch.conf",
        "/etc/gai.conf",
        "/etc/host.conf",
        "/etc/ssl",
        "/usr/lib",
        "/lib",
    ]
    .iter()
    .map(PathBuf::from)
    .filter(|p| p.exists())
    .collect()
}

#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("cannot start the sandboxed child: {0}")]
    Start(String),
    #[error("the sandboxed child could not confine itself: {0}")]
    Confine(String),
    #[error("the sandboxed child did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the sandboxed child died ({0}) without a complete reply")]
    Died(String),
    #[error("the sandboxed child's reply is larger than {MAX_REPLY_BYTES} bytes")]
    TooLarge,
    #[error("the sandboxed child's reply is malformed: {0}")]
    Malformed(String),
}

/// What the child sends: how far confinement went, then the work's result or why it
/// could not run. Unknown fields are an error: the reply comes from code that parsed
/// hostile input, so it is read as strictly as any other.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply<T> {
    achieved: Option<Achieved>,
    result: Result<T, String>,
}

/// Runs `work` in a confined child and returns its result with what confinement the
/// child reached. Call from a single-threaded process (hardrun's runtime mode is): the
/// child of a multi-threaded fork may deadlock on a lock another thread held.
pub fn run<T, F>(conf: &Confinement, work: F) -> Result<(T, Achieved), SandboxError>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> T,
{
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SandboxError::Start(format!("pipe: {e}")))?;
    // SAFETY: the child only runs `child_main`, which never returns.
    match unsafe { fork() }.map_err(|e| SandboxError::Start(format!("fork: {e}")))? {
        ForkResult::Child => {
            drop(read_end);
            child_main(conf, write_end, work)
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let reply = read_reply(&read_end, conf.timeout);
            let status = reap(child, reply.is_err());
            let bytes = reply?;
            parse_reply(&bytes, &status)
        }
    }
}

fn child_main<T: Serialize, F: FnOnce() -> T>(conf: &Confinement, out: OwnedFd, work: F) -> ! {
    let reply = match confine::confine(conf, out.as_raw_fd()) {
        Ok(achieved) => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
            Ok(value) => Reply { achieved: Some(achieved), result: Ok(value) },
            // Never unwind into the parent's stack frames, which this fork copied.
            Err(_) => unsafe { libc::_exit(101) },
        },
        Err(e) => Reply { achieved: None, result: Err(e) },
    };
    let mut file = std::fs::File::from(out);
    let ok = serde_json::to_writer(&mut file, &reply).is_ok();
    // _exit: no atexit handlers or destructors of the parent's state run twice.
    unsafe { libc::_exit(if ok { 0 } else { 1 }) }
}

/// Reads until EOF, the cap or the deadline.
fn read_reply(fd: &OwnedFd, timeout: Duration) -> Result<Vec<u8>, SandboxError> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut file = std::fs::File::from(fd.try_clone().map_err(|e| SandboxError::Start(e.to_string()))?);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(SandboxError::Timeout(timeout));
        }
        let ms = PollTimeout::try_from(left.as_millis().min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) => return Err(SandboxError::Timeout(timeout)),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(SandboxError::Start(format!("poll: {e}"))),
        }
        match file.read(&mut chunk) {
            Ok(0) => return Ok(buf),
            Ok(n) if buf.len() + n > MAX_REPLY_BYTES => return Err(SandboxError::TooLarge),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(SandboxError::Start(format!("read: {e}"))),
        }
    }
}

/// Waits for the child, killing it first when its reply failed (it may still run).
fn reap(child: Pid, kill: bool) -> String {
    if kill {
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    }
    // After EOF on the pipe the child is exiting; a child that closed the pipe and
    // kept running is killed after a short grace.
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
            Ok(WaitStatus::StillAlive) => {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(child, None);
                return "killed after closing its pipe".into();
            }
            Ok(WaitStatus::Exited(_, code)) => return format!("exit status {code}"),
            Ok(WaitStatus::Signaled(_, sig, _)) => return format!("signal {sig}"),
            Ok(other) => return format!("{other:?}"),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return format!("waitpid: {e}"),
        }
    }
}

/// The parent's reading of a reply from a child that exited with `status`.
pub(crate) fn parse_reply<T: DeserializeOwned>(bytes: &[u8], status: &str) -> Result<(T, Achieved), SandboxError> {
    if bytes.is_empty() {
        return Err(SandboxError::Died(status.to_owned()));
    }
    if status != "exit status 0" {
        return Err(SandboxError::Died(status.to_owned()));
    }
    let reply: Reply<T> = serde_json::from_slice(bytes).map_err(|e| SandboxError::Malformed(e.to_string()))?;
    match (reply.achieved, reply.result) {
        (Some(achieved), Ok(value)) => Ok((value, achieved)),
        (None, Err(e)) => Err(SandboxError::Confine(e)),
        (Some(_), Err(e)) => Err(SandboxError::Malformed(format!("an error after confinement: {e}"))),
        (None, Ok(_)) => Err(SandboxError::Malformed("a result without confinement".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_parsed_strictly() {
        let ok = br#"{"achieved":{"landlock":"v6, fully enforced","seccomp":true,"capabilities":true,"noNewPrivs":true},"result":{"Ok":7}}"#;
        let (v, a): (u32, Achieved) = parse_reply(ok, "exit status 0").unwrap();
        assert_eq!((v, a.seccomp), (7, true));
        let extra = br#"{"achieved":null,"result":{"Ok":7},"more":1}"#;
        assert!(matches!(parse_reply::<u32>(extra, "exit status 0"), Err(SandboxError::Malformed(_))));
        assert!(matches!(parse_reply::<u32>(b"", "signal SIGSEGV"), Err(SandboxError::Died(_))));
        assert!(matches!(parse_reply::<u32>(b"{\"achieved\"", "exit status 0"), Err(SandboxError::Malformed(_))));
        assert!(matches!(parse_reply::<u32>(ok, "exit status 3"), Err(SandboxError::Died(_))));
        let unconfined = br#"{"achieved":null,"result":{"Ok":7}}"#;
        assert!(matches!(parse_reply::<u32>(unconfined, "exit status 0"), Err(SandboxError::Malformed(_))));
        let refused = br#"{"achieved":null,"result":{"Err":"no landlock"}}"#;
        assert!(matches!(parse_reply::<u32>(refused, "exit status 0"), Err(SandboxError::Confine(_))));
    }
}
