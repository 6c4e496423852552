//! The sandboxed child (src/sandbox/), checked from inside it: what it may no longer
//! do fails, what it may do works, and the parent is untouched. A plain `main` (no
//! test harness): `fork` must happen in a single-threaded process.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use hardrun::sandbox::{run, Confinement, SandboxError};

fn status_field(name: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).unwrap_or_default().trim().to_owned()
}

fn errno_of(ret: libc::c_long) -> i32 {
    if ret < 0 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    }
}

/// The child's own status file: landlock hides everything not named, /proc included.
fn proc_status_readable() -> Confinement {
    Confinement { read: vec!["/proc/self/status".into()], ..Default::default() }
}

fn confined_child_reports_full_confinement() {
    let (status, achieved) = run(&proc_status_readable(), || {
        ["Seccomp", "NoNewPrivs", "CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"].map(status_field).to_vec()
    })
    .unwrap();
    assert_eq!(
        status,
        ["2", "1", "0000000000000000", "0000000000000000", "0000000000000000", "0000000000000000", "0000000000000000"]
    );
    assert!(achieved.seccomp && achieved.capabilities && achieved.no_new_privs, "{achieved:?}");
    // hardrun asks for landlock ABI 6; an older kernel gives what it has (best effort).
    let want = if landlock_abi(&achieved.landlock) >= 6 { "fully enforced" } else { "partially enforced" };
    assert!(achieved.landlock.contains(want), "landlock on this kernel: {}", achieved.landlock);
    println!("  landlock reached here: {}", achieved.landlock);
}

fn files_outside_the_allowed_paths_are_out_of_reach() {
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    std::fs::write(allowed.join("key.pub"), "pem").unwrap();
    std::fs::write(dir.path().join("secret"), "s").unwrap();
    let conf = Confinement { read: vec![allowed.clone()], ..Default::default() };
    let d = dir.path().to_owned();
    let (results, _) = run(&conf, move || {
        let read_allowed = std::fs::read_to_string(allowed.join("key.pub")).ok();
        let write_allowed = std::fs::write(allowed.join("new"), "x").map_err(|e| e.raw_os_error());
        let read_outside = std::fs::read(d.join("secret")).map_err(|e| e.raw_os_error()).map(|_| ());
        let write_outside = std::fs::write(d.join("new"), "x").map_err(|e| e.raw_os_error());
        let write_tmp = std::fs::write("/tmp/hardrun-sandbox-escape", "x").map_err(|e| e.raw_os_error());
        (read_allowed, write_allowed, read_outside, write_outside, write_tmp)
    })
    .unwrap();
    let eacces = Err(Some(libc::EACCES));
    assert_eq!(results.0.as_deref(), Some("pem"), "an allowed file must stay readable");
    assert_eq!(results.1, eacces, "write inside the read-only path");
    assert_eq!(results.2, eacces, "read outside the allowed paths");
    assert_eq!(results.3, eacces, "write outside the allowed paths");
    assert_eq!(results.4, eacces, "write to /tmp");
    assert!(!Path::new("/tmp/hardrun-sandbox-escape").exists());
    assert!(!dir.path().join("new").exists());
}

fn forbidden_system_calls_fail() {
    let (errnos, _) = run(&Confinement::default(), || unsafe {
        let src = c"none".as_ptr();
        let target = c"/tmp".as_ptr();
        vec![
            ("unshare(CLONE_NEWNS)", errno_of(libc::unshare(libc::CLONE_NEWNS) as libc::c_long)),
            ("unshare(CLONE_NEWUSER)", errno_of(libc::unshare(libc::CLONE_NEWUSER) as libc::c_long)),
            ("mount", errno_of(libc::mount(src, target, c"tmpfs".as_ptr(), 0, std::ptr::null()) as libc::c_long)),
            (
                "clone(CLONE_NEWUSER)",
                errno_of(libc::syscall(libc::SYS_clone, libc::CLONE_NEWUSER | libc::SIGCHLD, 0, 0, 0, 0)),
            ),
            ("clone3", errno_of(libc::syscall(libc::SYS_clone3, 0, 0))),
            ("ptrace(PTRACE_TRACEME)", errno_of(libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0))),
            ("bpf", errno_of(libc::syscall(libc::SYS_bpf, 0, 0, 0))),
            ("keyctl", errno_of(libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0))),
            ("setns", errno_of(libc::setns(0, 0) as libc::c_long)),
            (
                "execve",
                errno_of(libc::execve(c"/bin/true".as_ptr(), [std::ptr::null()].as_ptr(), [std::ptr::null()].as_ptr())
                    as libc::c_long),
            ),
            ("personality", errno_of(libc::personality(0xffff_ffff) as libc::c_long)),
        ]
        .into_iter()
        .map(|(call, errno)| (call.to_owned(), errno))
        .collect::<Vec<(String, i32)>>()
    })
    .unwrap();
    for (call, errno) in &errnos {
        let want = if *call == "clone3" { libc::ENOSYS } else { libc::EPERM };
        assert_eq!(*errno, want, "{call} inside the child: errno {errno}, want {want}");
    }
    // A plain fork (no namespace flags) still works: libc's fork is clone(SIGCHLD).
    let (forked, _) = run(&Confinement::default(), || unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(7);
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        libc::WEXITSTATUS(status)
    })
    .unwrap();
    assert_eq!(forked, 7);
}

/// The kernel's landlock ABI from the child's report ("V7, fully enforced").
fn landlock_abi(report: &str) -> u32 {
    report.strip_prefix('V').and_then(|r| r.split(',').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn tcp_connect_only_to_the_allowed_port() {
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let (a, o) = (allowed.local_addr().unwrap(), other.local_addr().unwrap());
    let conf = Confinement { connect_ports: vec![a.port()], ..Default::default() };
    let (results, achieved) = run(&conf, move || {
        let timeout = Duration::from_secs(2);
        let to_allowed = std::net::TcpStream::connect_timeout(&a, timeout).map(|_| ()).map_err(|e| e.raw_os_error());
        let to_other = std::net::TcpStream::connect_timeout(&o, timeout).map(|_| ()).map_err(|e| e.raw_os_error());
        (to_allowed, to_other)
    })
    .unwrap();
    assert_eq!(results.0, Ok(()), "connect to the registry's port");
    if landlock_abi(&achieved.landlock) < 4 {
        println!("  landlock below ABI 4 ({}): TCP ports not restricted here", achieved.landlock);
        return;
    }
    assert_eq!(results.1, Err(Some(libc::EACCES)), "connect to any other port");
}

fn the_parent_stays_unconfined() {
    run(&Confinement::default(), || ()).unwrap();
    assert_eq!(status_field("Seccomp"), "0", "the parent must not carry the child's filter into runc");
    assert_eq!(status_field("NoNewPrivs"), "0");
    assert_ne!(status_field("CapEff"), "0000000000000000");
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"still writable").unwrap();
}

fn a_crashing_child_is_an_error() {
    let e = run(&Confinement::default(), || -> u32 {
        // A real fault, as a parser bug in unsafe code would make.
        unsafe { std::ptr::null_mut::<u32>().write_volatile(1) };
        1
    })
    .unwrap_err();
    assert!(matches!(e, SandboxError::Died(ref why) if why.contains("SIGSEGV")), "{e}");
    let e = run(&Confinement::default(), || -> u32 { panic!("parser bug") }).unwrap_err();
    assert!(matches!(e, SandboxError::Died(ref why) if why.contains("101")), "{e}");
}

fn a_hanging_child_is_killed_at_the_deadline() {
    let conf = Confinement { timeout: Duration::from_millis(300), ..Default::default() };
    let started = std::time::Instant::now();
    let e = run(&conf, || std::thread::sleep(Duration::from_secs(30))).unwrap_err();
    assert!(matches!(e, SandboxError::Timeout(_)), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "the parent waited for the child");
    // No child left behind: waitpid(-1) finds none.
    assert_eq!(unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) }, -1);
}

fn an_oversized_reply_is_refused() {
    let e = run(&Confinement::default(), || "x".repeat(hardrun::sandbox::MAX_REPLY_BYTES)).unwrap_err();
    assert!(matches!(e, SandboxError::TooLarge), "{e}");
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        println!("sandbox tests need root (capability checks); skipped");
        return;
    }
    let tests: &[(&str, fn())] = &[
        ("confined_child_reports_full_confinement", confined_child_reports_full_confinement),
        ("files_outside_the_allowed_paths_are_out_of_reach", files_outside_the_allowed_paths_are_out_of_reach),
        ("forbidden_system_calls_fail", forbidden_system_calls_fail),
        ("tcp_connect_only_to_the_allowed_port", tcp_connect_only_to_the_allowed_port),
        ("the_parent_stays_unconfined", the_parent_stays_unconfined),
        ("a_crashing_child_is_an_error", a_crashing_child_is_an_error),
        ("a_hanging_child_is_killed_at_the_deadline", a_hanging_child_is_killed_at_the_deadline),
        ("an_oversized_reply_is_refused", an_oversized_reply_is_refused),
    ];
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    for (name, test) in tests {
        if filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str())) {
            test();
            println!("test {name} ... ok");
        }
    }
}
