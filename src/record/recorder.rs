//! The recorder: `hardrun __recorder`, started by hardrun before it execs runc.
//!
//! Two processes, both detached from hardrun (own session, stdio on /dev/null, no
//! inherited fds but the listening socket):
//! - the **worker** accepts runc's connection on the socket (the container's process
//!   state JSON with the seccomp notify fd in SCM_RIGHTS), records every notification
//!   and answers it with "continue"; when every notify fd it holds reports POLLHUP
//!   (the filter's last task is gone) it writes the profile and an audit record;
//! - the **supervisor** (the worker's parent) holds a duplicate of every notify fd
//!   and watches the worker: when it dies, or leaves a notification pending for
//!   `timeout` without answering anything, the Recording's `onRecorderFailure`
//!   applies: `allow`, the supervisor answers "continue" to everything until the
//!   container ends; `kill`, it SIGKILLs the container's processes it knows.
//!
//! If both die, the kernel fails every notifying call with ENOSYS: the container
//! does not hang, its calls fail.

use std::ffi::OsString;
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};

use super::model::{MergeMode, OnRecorderFailure};
use super::notify::{self, Received};
use super::profile::{self, Observed};
use crate::audit::{self, Decision, Record, RecordingEvent};
use crate::config::NodeConfig;

/// The environment variable carrying [`RecorderConfig`] as JSON.
pub const CONFIG_ENV: &str = "HARDRUN_RECORDER_CONFIG";
/// The listening socket's fd in the recorder.
pub const LISTEN_FD: RawFd = 3;
/// Notify fds one recorder holds (the container's init and its `runc exec`s).
pub const MAX_CONNECTIONS: usize = 64;
/// The largest process-state message accepted from runc.
pub const MAX_STATE_BYTES: usize = 64 * 1024;
/// How long a connection may take to deliver its message: at most 2 s, and a quarter
/// of the stall timeout, so a slow client cannot make the worker look stalled.
fn connection_timeout(cfg: &RecorderConfig) -> Duration {
    Duration::from_millis((cfg.timeout_ms / 4).clamp(100, 2000))
}
/// How long the worker waits for runc's first connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// What hardrun tells the recorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecorderConfig {
    /// The Recording object's name.
    pub recording: String,
    /// The profile's file stem.
    pub output: String,
    pub merge: MergeMode,
    pub on_failure: OnRecorderFailure,
    pub timeout_ms: u64,
    pub container_id: String,
    /// `listenerMetadata`: runc echoes it; a connection without it is not runc's.
    pub token: String,
    /// `stateDir/recordings`.
    pub dir: PathBuf,
    pub socket: PathBuf,
    /// The recorder's diagnostics.
    pub log: PathBuf,
    /// The architectures the profile's filter covers.
    pub arches: Vec<String>,
    /// The container's context, for the recorder's audit records.
    #[serde(default)]
    pub context: crate::context::ContainerContext,
}

/// runc's `specs.ContainerProcessState` (the fields read; others are ignored).
#[derive(Debug, Deserialize)]
struct ProcessState {
    fds: Vec<String>,
    pid: i32,
    #[serde(default)]
    metadata: String,
    state: ContainerState,
}

#[derive(Debug, Deserialize)]
struct ContainerState {
    id: String,
}

/// One notify fd and the process it came with.
struct Conn {
    fd: OwnedFd,
    pid: i32,
}

/// Entry point of `hardrun __recorder`.
pub fn main() -> ExitCode {
    let Some(raw) = std::env::var_os(CONFIG_ENV) else {
        eprintln!("hardrun __recorder: internal command, started by hardrun");
        return ExitCode::from(2);
    };
    let cfg: RecorderConfig = match serde_json::from_slice(raw.as_encoded_bytes()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hardrun __recorder: bad {CONFIG_ENV}: {e}");
            return ExitCode::from(2);
        }
    };
    std::env::remove_var(CONFIG_ENV);
    // SAFETY: fd 3 is the listening socket hardrun placed there; nothing else owns it.
    let listener = unsafe { UnixListener::from_raw_fd(LISTEN_FD) };
    close_other_fds();
    // The first process only lets hardrun's wait return: the recorder is reparented.
    // SAFETY: single-threaded here (a fresh exec); the child only continues this code.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return ExitCode::SUCCESS,
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(_) => return ExitCode::from(1),
    }
    let _ = nix::unistd::setsid();
    let log = Log::open(&cfg.log);
    supervise(&cfg, listener, &log)
}

/// Closes every fd above the listener (hardrun's caller's fds that are not
/// close-on-exec: runc's `--preserve-fds`, the shim's pipes).
fn close_other_fds() {
    // SAFETY: close_range only closes fds; none above 3 is used by this process yet.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, LISTEN_FD + 1, u32::MAX, 0) };
    if rc != 0 {
        for fd in (LISTEN_FD + 1)..1024 {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
        }
    }
}

/// Diagnostics of one recorder, a line each (stderr is /dev/null).
struct Log(Option<std::fs::File>);

impl Log {
    fn open(path: &Path) -> Log {
        use std::os::unix::fs::OpenOptionsExt;
        Log(std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)
            .ok())
    }

    fn line(&self, msg: &str) {
        if let Some(mut f) = self.0.as_ref() {
            let _ = writeln!(f, "{} [{}] {msg}", crate::timefmt::now_rfc3339_nanos(), std::process::id());
        }
    }
}

// ------------------------------------------------------------------- supervisor

/// A counter the worker bumps after every answer, in memory shared across the fork:
/// the supervisor tells a stalled worker from a busy one by it.
struct Heartbeat(*const AtomicU64);

impl Heartbeat {
    fn new() -> std::io::Result<Heartbeat> {
        // SAFETY: a fresh anonymous shared mapping of one page; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Heartbeat(p.cast()))
    }

    fn get(&self) -> &AtomicU64 {
        // SAFETY: the mapping lives as long as the process and is zeroed, a valid
        // AtomicU64; it is never unmapped.
        unsafe { &*self.0 }
    }
}

fn supervise(cfg: &RecorderConfig, listener: UnixListener, log: &Log) -> ExitCode {
    let heartbeat = match Heartbeat::new() {
        Ok(h) => h,
        Err(e) => {
            log.line(&format!("cannot map the heartbeat: {e}"));
            return ExitCode::from(1);
        }
    };
    let (to_super, from_worker) = match UnixStream::pair() {
        Ok(p) => p,
        Err(e) => {
            log.line(&format!("cannot create the fd channel: {e}"));
            return ExitCode::from(1);
        }
    };
    // SAFETY: still single-threaded.
    let worker = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            drop(from_worker);
            let code = Worker::new(cfg, listener, to_super, &heartbeat, log).run();
            std::process::exit(code);
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
        Err(e) => {
            log.line(&format!("cannot fork the worker: {e}"));
            return ExitCode::from(1);
        }
    };
    // Kept: when the worker fails before runc connected, the supervisor takes the
    // connection (allow) or refuses it (kill).
    drop(to_super);
    log.line(&format!("recording {} for container {} (worker {worker})", cfg.output, cfg.container_id));
    let mut watch = Watch { conns: Vec::new(), beat: 0, pending_since: None };
    let timeout = Duration::from_millis(cfg.timeout_ms);
    loop {
        receive_handoffs(&from_worker, &mut watch.conns, log);
        match nix::sys::wait::waitpid(worker, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => return ExitCode::SUCCESS,
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {}
            Ok(other) => {
                let msg = format!("the recorder's worker ended: {other:?}");
                return failed(cfg, log, &listener, watch.conns, &msg);
            }
            Err(e) => return failed(cfg, log, &listener, watch.conns, &format!("cannot wait for the worker: {e}")),
        }
        if watch.stalled(&listener, heartbeat.get().load(Ordering::Relaxed), timeout) {
            let _ = nix::sys::signal::kill(worker, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(worker, None);
            let msg = format!("the recorder left a call unanswered for {} ms", cfg.timeout_ms);
            return failed(cfg, log, &listener, watch.conns, &msg);
        }
        let mut fds = [PollFd::new(from_worker.as_fd(), PollFlags::POLLIN)];
        let _ = nix::poll::poll(&mut fds, PollTimeout::from(100u8));
    }
}

/// What the supervisor knows of the worker's progress.
struct Watch {
    conns: Vec<Conn>,
    beat: u64,
    pending_since: Option<Instant>,
}

impl Watch {
    /// Whether a notification (or runc's connection) has waited `timeout` while the
    /// worker answered none.
    fn stalled(&mut self, listener: &UnixListener, beat: u64, timeout: Duration) -> bool {
        let waiting = pending(listener.as_fd()) || self.conns.iter().any(|c| pending(c.fd.as_fd()));
        if beat != self.beat || !waiting {
            self.beat = beat;
            self.pending_since = None;
            return false;
        }
        let since = *self.pending_since.get_or_insert_with(Instant::now);
        since.elapsed() >= timeout
    }
}

fn pending(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN))
}

/// Takes the notify fds the worker passed (pid in the data, fd in SCM_RIGHTS).
fn receive_handoffs(chan: &UnixStream, conns: &mut Vec<Conn>, log: &Log) {
    loop {
        let mut fds = [PollFd::new(chan.as_fd(), PollFlags::POLLIN)];
        if !matches!(nix::poll::poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
            return;
        }
        match recv_with_fds(chan.as_raw_fd()) {
            Ok((data, mut received)) if data.len() == 4 && received.len() == 1 => {
                let pid = i32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                conns.push(Conn { fd: received.remove(0), pid });
            }
            Ok((data, _)) if data.is_empty() => return,
            Ok(_) => log.line("malformed hand-off from the worker ignored"),
            Err(e) => {
                log.line(&format!("hand-off channel: {e}"));
                return;
            }
        }
    }
}

/// The worker failed: audit it, then apply `onRecorderFailure`. `kill`: the
/// container's known processes and those of connections already queued are killed,
/// and the socket is closed, so a runc still to connect fails to start the
/// container. `allow`: every call is answered "continue", connections included.
fn failed(cfg: &RecorderConfig, log: &Log, listener: &UnixListener, mut conns: Vec<Conn>, reason: &str) -> ExitCode {
    log.line(&format!("recorder failed: {reason}; onRecorderFailure: {:?}", cfg.on_failure));
    let action = match cfg.on_failure {
        OnRecorderFailure::Allow => "allow: calls continue unrecorded",
        OnRecorderFailure::Kill => "kill: the container's processes are killed",
    };
    audit_event(cfg, "failed", None, None, Some(format!("{reason}; {action}")));
    match cfg.on_failure {
        OnRecorderFailure::Kill => {
            while pending(listener.as_fd()) {
                if let Some(c) = accept_checked(cfg, listener, conns.len(), log) {
                    conns.push(c);
                }
            }
            let _ = std::fs::remove_file(&cfg.socket);
            for c in &conns {
                kill_process(c.pid, log);
            }
        }
        OnRecorderFailure::Allow => pass_through(cfg, listener, conns, log),
    }
    ExitCode::from(1)
}

/// Accepts one connection and checks it ([`take_connection`]); refused ones are logged.
fn accept_checked(cfg: &RecorderConfig, listener: &UnixListener, held: usize, log: &Log) -> Option<Conn> {
    let (stream, _) = listener.accept().ok()?;
    match take_connection(cfg, &stream, held) {
        Ok(c) => {
            log.line(&format!("receiving notifications of process {}", c.pid));
            Some(c)
        }
        Err(e) => {
            log.line(&format!("connection refused: {e}"));
            None
        }
    }
}

/// SIGKILL through a pidfd (the pid was the container's process when runc sent it;
/// a pidfd opened now still refers to it only if it lives, and the check that its
/// pid namespace is not ours keeps a reused pid of a host process safe).
fn kill_process(pid: i32, log: &Log) {
    let ns = |p: &str| std::fs::read_link(format!("{p}/ns/pid")).ok();
    if ns(&format!("/proc/{pid}")) == ns("/proc/self") {
        log.line(&format!("not killing {pid}: it is no longer a container process"));
        return;
    }
    // SAFETY: plain syscalls on integers; the returned fd is owned below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        log.line(&format!("cannot open process {pid}: {}", std::io::Error::last_os_error()));
        return;
    }
    // SAFETY: pidfd_open returned a new fd we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    // SAFETY: as above; null siginfo means a plain kill.
    let rc = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), libc::SIGKILL, std::ptr::null::<u8>(), 0)
    };
    log.line(&format!("SIGKILL to container process {pid}: {}", if rc == 0 { "sent" } else { "failed" }));
}

/// Answers "continue" to every notification until every fd reports POLLHUP,
/// taking runc's connections too (until the first, for at most [`CONNECT_TIMEOUT`]).
fn pass_through(cfg: &RecorderConfig, listener: &UnixListener, mut conns: Vec<Conn>, log: &Log) {
    log.line(&format!("passing {} notify fd(s) through", conns.len()));
    let started = Instant::now();
    let mut connected = !conns.is_empty();
    loop {
        if (connected && conns.is_empty()) || (!connected && started.elapsed() >= CONNECT_TIMEOUT) {
            let _ = std::fs::remove_file(&cfg.socket);
            return;
        }
        let mut fds = vec![PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        fds.extend(conns.iter().map(|c| PollFd::new(c.fd.as_fd(), PollFlags::POLLIN)));
        if nix::poll::poll(&mut fds, PollTimeout::from(1000u16)).is_err() {
            continue;
        }
        let events: Vec<PollFlags> = fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect();
        drop(fds);
        if events[0].contains(PollFlags::POLLIN) {
            if let Some(c) = accept_checked(cfg, listener, conns.len(), log) {
                conns.push(c);
                connected = true;
            }
        }
        let mut done = Vec::new();
        for (i, ev) in events[1..].iter().enumerate() {
            if ev.contains(PollFlags::POLLIN) {
                if let Ok(Received::Call(n)) = notify::receive(conns[i].fd.as_fd()) {
                    let _ = notify::continue_call(conns[i].fd.as_fd(), n.id);
                }
            } else if !ev.is_empty() {
                done.push(i);
            }
        }
        for i in done.into_iter().rev() {
            conns.remove(i);
        }
    }
}

// ------------------------------------------------------------------- worker

struct Worker<'a> {
    cfg: &'a RecorderConfig,
    listener: UnixListener,
    to_super: UnixStream,
    heartbeat: &'a Heartbeat,
    log: &'a Log,
    conns: Vec<Conn>,
    observed: Observed,
    connected: bool,
}

impl<'a> Worker<'a> {
    fn new(
        cfg: &'a RecorderConfig,
        listener: UnixListener,
        to_super: UnixStream,
        heartbeat: &'a Heartbeat,
        log: &'a Log,
    ) -> Self {
        Worker {
            cfg,
            listener,
            to_super,
            heartbeat,
            log,
            conns: Vec::new(),
            observed: Observed::default(),
            connected: false,
        }
    }

    fn run(mut self) -> i32 {
        let started = Instant::now();
        loop {
            if self.connected && self.conns.is_empty() {
                return self.finish();
            }
            if !self.connected && started.elapsed() >= CONNECT_TIMEOUT {
                self.log.line("runc never connected: nothing recorded");
                let _ = std::fs::remove_file(&self.cfg.socket);
                audit_event(self.cfg, "abandoned", None, None, Some("runc never connected".into()));
                return 0;
            }
            self.poll_once();
        }
    }

    fn poll_once(&mut self) {
        let mut fds = vec![PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
        fds.extend(self.conns.iter().map(|c| PollFd::new(c.fd.as_fd(), PollFlags::POLLIN)));
        if nix::poll::poll(&mut fds, PollTimeout::from(1000u16)).is_err() {
            return;
        }
        let events: Vec<PollFlags> = fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect();
        drop(fds);
        if events[0].contains(PollFlags::POLLIN) {
            self.accept();
        }
        let mut done = Vec::new();
        for (i, ev) in events[1..].iter().enumerate() {
            if ev.contains(PollFlags::POLLIN) {
                self.answer(i);
            } else if !ev.is_empty() {
                done.push(i);
            }
        }
        for i in done.into_iter().rev() {
            self.conns.remove(i);
        }
    }

    fn answer(&mut self, i: usize) {
        let fd = self.conns[i].fd.as_fd();
        match notify::receive(fd) {
            Ok(Received::Call(n)) => {
                let name = notify::syscall_name(n.arch, n.nr);
                self.observed.add(notify::scmp_arch(n.arch, n.nr), name, (n.arch, n.nr), &n.args);
                if let Err(e) = notify::continue_call(fd, n.id) {
                    self.log.line(&format!("cannot answer notification: {e}"));
                }
                self.heartbeat.get().fetch_add(1, Ordering::Relaxed);
            }
            Ok(Received::Nothing) => {}
            Err(e) => self.log.line(&format!("cannot receive a notification: {e}")),
        }
    }

    fn accept(&mut self) {
        let Ok((stream, _)) = self.listener.accept() else { return };
        self.heartbeat.get().fetch_add(1, Ordering::Relaxed);
        match take_connection(self.cfg, &stream, self.conns.len()) {
            Ok(conn) => {
                if let Err(e) = send_with_fd(&self.to_super, &conn.pid.to_le_bytes(), conn.fd.as_raw_fd()) {
                    self.log.line(&format!("cannot hand the notify fd to the supervisor: {e}"));
                }
                self.log.line(&format!("receiving notifications of process {}", conn.pid));
                self.conns.push(conn);
                self.connected = true;
            }
            Err(e) => self.log.line(&format!("connection refused: {e}")),
        }
    }

    /// Writes the profile (merging when asked) and the audit record; exit code.
    fn finish(mut self) -> i32 {
        let _ = std::fs::remove_file(&self.cfg.socket);
        // No execve seen: runc init never got to the workload (a container created and
        // deleted without start). Its few calls are not the workload's profile and
        // must not replace one.
        if !self.observed.syscalls.iter().any(|c| c == "execve" || c == "execveat") {
            self.log.line("the container's process never started: nothing written");
            audit_event(self.cfg, "abandoned", None, None, Some("the container's process never started".into()));
            return 0;
        }
        self.observed.containers.insert(self.cfg.container_id.clone());
        self.observed.runs = 1;
        let arches: Vec<&str> = self.cfg.arches.iter().map(String::as_str).collect();
        match write_recording(self.cfg, &self.observed, &arches) {
            Ok(path) => {
                self.log.line(&format!("wrote {} ({} calls)", path.display(), self.observed.syscalls.len()));
                audit_event(self.cfg, "written", Some(&path), Some(&self.observed), None);
                0
            }
            Err(e) => {
                self.log.line(&format!("cannot write the recording: {e}"));
                audit_event(self.cfg, "write-failed", None, Some(&self.observed), Some(e));
                // Not a failure the container should pay for: it has ended.
                0
            }
        }
    }
}

/// Reads and checks one connection: a peer running as root (or as us), one
/// message of runc's process-state JSON naming our container and token, with
/// exactly one fd that is a seccomp notify fd. Anything else is dropped.
fn take_connection(cfg: &RecorderConfig, stream: &UnixStream, held: usize) -> Result<Conn, String> {
    if held >= MAX_CONNECTIONS {
        return Err(format!("more than {MAX_CONNECTIONS} connections"));
    }
    let cred = socket::getsockopt(stream, socket::sockopt::PeerCredentials).map_err(|e| e.to_string())?;
    if cred.uid() != 0 && cred.uid() != nix::unistd::getuid().as_raw() {
        return Err(format!("peer uid {} is not root", cred.uid()));
    }
    stream.set_read_timeout(Some(connection_timeout(cfg))).map_err(|e| e.to_string())?;
    let (mut data, mut fds) = recv_with_fds(stream.as_raw_fd()).map_err(|e| e.to_string())?;
    let state = read_rest(stream, &mut data)?;
    if state.metadata != cfg.token {
        return Err("listenerMetadata is not this recorder's token".into());
    }
    if state.state.id != cfg.container_id {
        return Err(format!("state names container {:?}, not {:?}", state.state.id, cfg.container_id));
    }
    if state.fds != ["seccompFd"] || fds.len() != 1 {
        return Err(format!("expected one seccompFd, got names {:?} and {} fd(s)", state.fds, fds.len()));
    }
    let fd = fds.remove(0);
    if !notify::is_notify_fd(fd.as_raw_fd()) {
        return Err("the fd passed is not a seccomp notify fd".into());
    }
    notify::prefer_sync_wakeup(fd.as_fd());
    Ok(Conn { fd, pid: state.pid })
}

/// Reads until the bytes parse as the process state, the peer closes, the size
/// cap, or the timeout.
fn read_rest(mut stream: &UnixStream, data: &mut Vec<u8>) -> Result<ProcessState, String> {
    let mut buf = [0u8; 4096];
    loop {
        if let Ok(s) = serde_json::from_slice::<ProcessState>(data) {
            return Ok(s);
        }
        if data.len() > MAX_STATE_BYTES {
            return Err(format!("message larger than {MAX_STATE_BYTES} bytes"));
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                let e = serde_json::from_slice::<ProcessState>(data).err().map(|e| e.to_string());
                return Err(format!("not runc's process state: {}", e.unwrap_or_default()));
            }
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading the process state: {e}")),
        }
    }
}

/// One `recvmsg`: the bytes and the fds (owned: extras close when dropped). A
/// truncated control message is an error (an fd could have been lost).
fn recv_with_fds(fd: RawFd) -> Result<(Vec<u8>, Vec<OwnedFd>), std::io::Error> {
    let mut buf = vec![0u8; MAX_STATE_BYTES];
    let mut cmsg = nix::cmsg_space!([RawFd; 8]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = socket::recvmsg::<()>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(std::io::Error::from)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: the kernel installed these fds in this process for us.
            fds.extend(raw.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
    let n = msg.bytes;
    if truncated {
        return Err(std::io::Error::other("control message truncated"));
    }
    buf.truncate(n);
    Ok((buf, fds))
}

fn send_with_fd(chan: &UnixStream, data: &[u8], fd: RawFd) -> std::io::Result<()> {
    let iov = [std::io::IoSlice::new(data)];
    let fds = [fd];
    socket::sendmsg::<()>(chan.as_raw_fd(), &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
        .map(|_| ())
        .map_err(std::io::Error::from)
}

/// Writes the recording under a lock (replicas of one container end together),
/// merging with the existing file for `merge: containers`. An existing file that is
/// not a valid recording is never overwritten by a merge.
pub fn write_recording(cfg: &RecorderConfig, observed: &Observed, arches: &[&str]) -> Result<PathBuf, String> {
    let path = profile::path_of(&cfg.dir, &cfg.output).map_err(|e| e.to_string())?;
    let _lock = lock_dir(&cfg.dir).map_err(|e| format!("cannot lock {}: {e}", cfg.dir.display()))?;
    let mut all = observed.clone();
    if cfg.merge == MergeMode::Containers {
        match profile::read(&path) {
            Ok((_, before)) => all.merge(&before),
            Err(profile::ProfileFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("not merging into it: {e}")),
        }
    }
    let value = profile::to_profile(&cfg.output, &all, arches);
    profile::write_atomic(&path, &value).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// An exclusive flock on `dir/.lock`, released when the file closes.
fn lock_dir(dir: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(dir.join(".lock"))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

/// One audit record of the recorder (command `record`).
fn audit_event(
    cfg: &RecorderConfig,
    state: &str,
    path: Option<&Path>,
    observed: Option<&Observed>,
    message: Option<String>,
) {
    let Ok(node) = NodeConfig::load_from_env() else { return };
    let mut r = Record::lifecycle("record", Some(&cfg.container_id));
    r.context = cfg.context.clone();
    r.decision = if state == "failed" { Decision::FailedOpen } else { Decision::Allowed };
    if state == "failed" && cfg.on_failure == OnRecorderFailure::Kill {
        r.decision = Decision::Denied;
    }
    r.reason = message.clone();
    r.recording = Some(RecordingEvent {
        recording: cfg.recording.clone(),
        output: cfg.output.clone(),
        state: state.to_owned(),
        profile: path.map(|p| p.display().to_string()),
        syscalls: observed.map(|o| o.allowed().len()),
        message,
    });
    let _ = audit::append(&node.audit_log, &mut r, true);
}

/// The recorder's argv: `hardrun __recorder` (the config travels in the environment,
/// which only root can read, not in /proc/PID/cmdline).
pub fn argv() -> Vec<OsString> {
    vec![OsString::from("__recorder")]
}
