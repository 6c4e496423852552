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
    /// 0: write only at the end.
    pub checkpoint_ms: u64,
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
    /// Its index in the shared [`Progress`] page (the order of connections).
    slot: usize,
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
    if !is_listening_socket(LISTEN_FD) {
        eprintln!("hardrun __recorder: fd {LISTEN_FD} is not a listening socket");
        return ExitCode::from(2);
    }
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

fn is_listening_socket(fd: RawFd) -> bool {
    let mut on: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes one c_int into memory we own; a bad fd is an error.
    let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN, (&raw mut on).cast(), &raw mut len) };
    rc == 0 && on == 1
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

/// What the worker tells the supervisor, in memory shared across the fork: a counter
/// bumped after every answer (a stalled worker is told from a busy one by it), and
/// per connection the id of the last notification it received. A notification the
/// worker received but never answered is invisible to poll (it is no longer new)
/// and, while the supervisor holds the fd, never fails with ENOSYS; the supervisor
/// finds it from that id with `SECCOMP_IOCTL_NOTIF_ID_VALID` (ids count up per
/// filter) and answers it.
struct Progress(*mut u64);

/// Layout of the page: beat, the bitmap of slots holding an id, the ids.
const SLOT_BITMAP: usize = 1;
const FIRST_SLOT: usize = 2;

impl Progress {
    fn new() -> std::io::Result<Progress> {
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
        Ok(Progress(p.cast()))
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        assert!(FIRST_SLOT + MAX_CONNECTIONS <= 4096 / 8 && i < FIRST_SLOT + MAX_CONNECTIONS);
        // SAFETY: the mapping is one zeroed page that lives as long as the process
        // (never unmapped); `i` is within it; AtomicU64 has u64's layout.
        unsafe { AtomicU64::from_ptr(self.0.add(i)) }
    }

    fn beat(&self) -> u64 {
        self.word(0).load(Ordering::SeqCst)
    }

    fn bump(&self) {
        self.word(0).fetch_add(1, Ordering::SeqCst);
    }

    fn set_received(&self, slot: usize, id: u64) {
        self.word(FIRST_SLOT + slot).store(id, Ordering::SeqCst);
        self.word(SLOT_BITMAP).fetch_or(1 << slot, Ordering::SeqCst);
    }

    fn received(&self, slot: usize) -> Option<u64> {
        let has = self.word(SLOT_BITMAP).load(Ordering::SeqCst) & (1 << slot) != 0;
        has.then(|| self.word(FIRST_SLOT + slot).load(Ordering::SeqCst))
    }
}

/// Ids past the last one received that may have been received since: one per task
/// that can be waiting, so this bounds the container's threads it covers.
const ID_PROBE: u64 = 4096;

/// The notification of `c` the dead worker received and never answered, if any.
fn unanswered(progress: &Progress, c: &Conn) -> Option<u64> {
    let last = progress.received(c.slot)?;
    (0..=ID_PROBE).map(|k| last.wrapping_add(k)).find(|id| notify::id_valid(c.fd.as_fd(), *id))
}

fn supervise(cfg: &RecorderConfig, listener: UnixListener, log: &Log) -> ExitCode {
    let progress = match Progress::new() {
        Ok(h) => h,
        Err(e) => {
            log.line(&format!("cannot map the progress page: {e}"));
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
            let code = Worker::new(cfg, listener, to_super, &progress, log).run();
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
                return failed(cfg, log, &listener, &progress, watch.conns, &msg);
            }
            Err(e) => {
                let msg = format!("cannot wait for the worker: {e}");
                return failed(cfg, log, &listener, &progress, watch.conns, &msg);
            }
        }
        if watch.stalled(&listener, &progress, timeout) {
            let _ = nix::sys::signal::kill(worker, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(worker, None);
            let msg = format!("the recorder left a call unanswered for {} ms", cfg.timeout_ms);
            return failed(cfg, log, &listener, &progress, watch.conns, &msg);
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
    /// Whether a notification (new, or received and unanswered) or runc's connection
    /// has waited `timeout` while the worker answered none.
    fn stalled(&mut self, listener: &UnixListener, progress: &Progress, timeout: Duration) -> bool {
        let beat = progress.beat();
        let in_flight = |c: &Conn| progress.received(c.slot).is_some_and(|id| notify::id_valid(c.fd.as_fd(), id));
        let waiting = pending(listener.as_fd()) || self.conns.iter().any(|c| pending(c.fd.as_fd()) || in_flight(c));
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
            Ok((data, mut received)) if data.len() == 8 && received.len() == 1 => {
                let pid = i32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                let slot = u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize;
                if slot < MAX_CONNECTIONS {
                    conns.push(Conn { fd: received.remove(0), pid, slot });
                }
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
fn failed(
    cfg: &RecorderConfig,
    log: &Log,
    listener: &UnixListener,
    progress: &Progress,
    mut conns: Vec<Conn>,
    reason: &str,
) -> ExitCode {
    log.line(&format!("recorder failed: {reason}; onRecorderFailure: {:?}", cfg.on_failure));
    if cfg.on_failure == OnRecorderFailure::Allow {
        for c in &conns {
            if let Some(id) = unanswered(progress, c) {
                log.line(&format!("answering notification {id:#x} the worker left unanswered"));
                let _ = notify::continue_call(c.fd.as_fd(), id);
            }
        }
    }
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
    match take_connection(cfg, &stream, held, held) {
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
    progress: &'a Progress,
    log: &'a Log,
    conns: Vec<Conn>,
    /// Connections taken so far: the next one's slot.
    accepted: usize,
    observed: Observed,
    connected: bool,
    /// The observation has news since the last write.
    dirty: bool,
    last_write: Instant,
    /// Notifications already in the written profile (a merge adds only the rest).
    written_notifications: u64,
}

impl<'a> Worker<'a> {
    fn new(
        cfg: &'a RecorderConfig,
        listener: UnixListener,
        to_super: UnixStream,
        progress: &'a Progress,
        log: &'a Log,
    ) -> Self {
        Worker {
            cfg,
            listener,
            to_super,
            progress,
            log,
            conns: Vec::new(),
            accepted: 0,
            observed: Observed::default(),
            connected: false,
            dirty: false,
            last_write: Instant::now(),
            written_notifications: 0,
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
            self.checkpoint();
        }
    }

    /// Writes the profile while the container runs, when it changed and the interval
    /// passed. No audit record (the final write has one); failures are logged.
    fn checkpoint(&mut self) {
        let every = Duration::from_millis(self.cfg.checkpoint_ms);
        if self.cfg.checkpoint_ms == 0 || !self.dirty || self.last_write.elapsed() < every || !self.started() {
            return;
        }
        match self.write() {
            Ok(path) => self.log.line(&format!("checkpoint: wrote {}", path.display())),
            Err(e) => self.log.line(&format!("checkpoint: cannot write the recording: {e}")),
        }
    }

    /// Whether the container's process started (runc init's execve was seen).
    fn started(&self) -> bool {
        self.observed.syscalls.iter().any(|c| c == "execve" || c == "execveat")
    }

    fn write(&mut self) -> Result<PathBuf, String> {
        self.last_write = Instant::now();
        self.observed.containers.insert(self.cfg.container_id.clone());
        self.observed.runs = 1;
        let arches: Vec<&str> = self.cfg.arches.iter().map(String::as_str).collect();
        let path = write_recording(self.cfg, &self.observed, &arches, self.written_notifications)?;
        self.dirty = false;
        self.written_notifications = self.observed.notifications;
        Ok(path)
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
                self.progress.set_received(self.conns[i].slot, n.id);
                let name = notify::syscall_name(n.arch, n.nr);
                self.dirty |= self.observed.add(notify::scmp_arch(n.arch, n.nr), name, (n.arch, n.nr), &n.args);
                if let Err(e) = notify::continue_call(fd, n.id) {
                    self.log.line(&format!("cannot answer notification: {e}"));
                }
                self.progress.bump();
            }
            Ok(Received::Nothing) => {}
            Err(e) => self.log.line(&format!("cannot receive a notification: {e}")),
        }
    }

    fn accept(&mut self) {
        let Ok((stream, _)) = self.listener.accept() else { return };
        self.progress.bump();
        match take_connection(self.cfg, &stream, self.accepted, self.conns.len()) {
            Ok(conn) => {
                self.accepted += 1;
                let mut msg = conn.pid.to_le_bytes().to_vec();
                msg.extend_from_slice(&(conn.slot as u32).to_le_bytes());
                if let Err(e) = send_with_fd(&self.to_super, &msg, conn.fd.as_raw_fd()) {
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
        if !self.started() {
            self.log.line("the container's process never started: nothing written");
            audit_event(self.cfg, "abandoned", None, None, Some("the container's process never started".into()));
            return 0;
        }
        match self.write() {
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
fn take_connection(cfg: &RecorderConfig, stream: &UnixStream, slot: usize, held: usize) -> Result<Conn, String> {
    if held >= MAX_CONNECTIONS || slot >= MAX_CONNECTIONS {
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
    Ok(Conn { fd, pid: state.pid, slot })
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
/// not a valid recording is never overwritten by a merge. `counted`: notifications
/// of `observed` an earlier write of this run already added to the file.
pub fn write_recording(
    cfg: &RecorderConfig,
    observed: &Observed,
    arches: &[&str],
    counted: u64,
) -> Result<PathBuf, String> {
    let path = profile::path_of(&cfg.dir, &cfg.output).map_err(|e| e.to_string())?;
    let _lock = lock_dir(&cfg.dir).map_err(|e| format!("cannot lock {}: {e}", cfg.dir.display()))?;
    let mut all = observed.clone();
    if cfg.merge == MergeMode::Containers {
        match profile::read(&path) {
            Ok((_, before)) => {
                all.notifications -= counted.min(all.notifications);
                all.merge(&before);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Installs, on the calling thread only, a filter that sends `getppid` to a
    /// listener; returns the listener fd.
    fn notify_getppid_on_this_thread() -> OwnedFd {
        let filter = [
            // load seccomp_data.nr
            libc::sock_filter { code: 0x20, jt: 0, jf: 0, k: 0 },
            libc::sock_filter { code: 0x15, jt: 0, jf: 1, k: libc::SYS_getppid as u32 },
            libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: libc::SECCOMP_RET_USER_NOTIF },
            libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW },
        ];
        let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
        // SAFETY: prctl and seccomp on this thread with a valid program.
        unsafe {
            assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
            let fd = libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
                &prog,
            );
            assert!(fd >= 0, "seccomp: {}", std::io::Error::last_os_error());
            OwnedFd::from_raw_fd(fd as RawFd)
        }
    }

    /// A notification the worker received but never answered is found from the
    /// last id it published, and answered: the blocked call completes.
    #[test]
    fn a_received_unanswered_notification_is_found_and_answered() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let fd = notify_getppid_on_this_thread();
            tx.send(fd.try_clone().unwrap()).unwrap();
            // SAFETY: getppid has no arguments.
            let ppid = unsafe { libc::getppid() };
            done_tx.send(ppid).unwrap();
        });
        let fd = rx.recv().unwrap();
        let progress = Progress::new().unwrap();
        let conn = Conn { fd, pid: 0, slot: 3 };
        let mut fds = [PollFd::new(conn.fd.as_fd(), PollFlags::POLLIN)];
        nix::poll::poll(&mut fds, PollTimeout::from(5000u16)).unwrap();
        // The "worker" receives and dies before answering: poll no longer sees it.
        let Ok(Received::Call(n)) = notify::receive(conn.fd.as_fd()) else { panic!("no notification") };
        progress.set_received(3, n.id.wrapping_sub(2));
        assert!(!pending(conn.fd.as_fd()));
        assert!(done_rx.recv_timeout(Duration::from_millis(200)).is_err(), "still blocked");
        assert_eq!(unanswered(&progress, &conn), Some(n.id));
        notify::continue_call(conn.fd.as_fd(), n.id).unwrap();
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(5)).unwrap(), std::os::unix::process::parent_id() as i32);
        assert_eq!(unanswered(&progress, &conn), None, "answered: no longer valid");
        worker.join().unwrap();
    }
}
