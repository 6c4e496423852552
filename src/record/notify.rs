//! The kernel's seccomp user-notification interface (seccomp_unotify(2)): receive a
//! notification, answer "continue", and tell a seccomp notify fd from any other fd.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// One notification: the call a task of the filter is blocked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    pub id: u64,
    pub pid: u32,
    /// `AUDIT_ARCH_*` of the call.
    pub arch: u32,
    pub nr: i32,
    pub args: [u64; 6],
}

/// What receiving gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    Call(Notification),
    /// The task was killed between the wakeup and the receive (ENOENT), or a signal
    /// interrupted us (EINTR): nothing to answer.
    Nothing,
}

/// `SECCOMP_IOCTL_NOTIF_RECV`. Blocks until a notification is pending: call after
/// poll reported the fd readable.
pub fn receive(fd: BorrowedFd<'_>) -> std::io::Result<Received> {
    // The kernel refuses a buffer that is not zeroed (EINVAL).
    // SAFETY: seccomp_notif is plain old data; all-zero is a valid value.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes one seccomp_notif into the buffer we own.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT | libc::EINTR) => Ok(Received::Nothing),
            _ => Err(e),
        };
    }
    Ok(Received::Call(Notification {
        id: req.id,
        pid: req.pid,
        arch: req.data.arch,
        nr: req.data.nr,
        args: req.data.args,
    }))
}

/// Answers `id` with `SECCOMP_USER_NOTIF_FLAG_CONTINUE`: the kernel runs the call as
/// if there were no filter. A task that died meanwhile (ENOENT) is not an error.
pub fn continue_call(fd: BorrowedFd<'_>, id: u64) -> std::io::Result<()> {
    let resp = libc::seccomp_notif_resp { id, val: 0, error: 0, flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32 };
    // SAFETY: the ioctl reads one seccomp_notif_resp from memory we own.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            return Ok(());
        }
        return Err(e);
    }
    Ok(())
}

/// Whether `id` is a notification that was received and not yet answered
/// (`SECCOMP_IOCTL_NOTIF_ID_VALID`; new ones and answered ones are not).
pub fn id_valid(fd: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64 from memory we own.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
}

/// Asks the kernel to wake the recorder synchronously, on the notifying task's CPU
/// (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`, Linux 6.6): a notification's round trip
/// then costs a switch, not a scheduler wakeup. Older kernels refuse it (EINVAL);
/// recording works either way, only slower.
pub fn prefer_sync_wakeup(fd: BorrowedFd<'_>) -> bool {
    const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;
    // SAFETY: the ioctl takes the flags by value.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) == 0 }
}

/// Whether `fd` is a seccomp notification fd (what runc must have sent): the kernel
/// names its anonymous inode `seccomp notify`.
pub fn is_notify_fd(fd: RawFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok_and(|t| t.as_os_str() == "anon_inode:seccomp notify")
}

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
const X32_SYSCALL_BIT: i32 = 0x4000_0000;

/// The call's name in the kernel table of its architecture; `None`: unknown there.
pub fn syscall_name(arch: u32, nr: i32) -> Option<&'static str> {
    raw_name(arch, nr).map(unraw)
}

/// The syscalls crate spells names that are Rust keywords as raw identifiers
/// (`r#break`); libseccomp and profiles use the plain name.
pub fn unraw(name: &'static str) -> &'static str {
    name.strip_prefix("r#").unwrap_or(name)
}

fn raw_name(arch: u32, nr: i32) -> Option<&'static str> {
    let n = usize::try_from(nr).ok();
    match arch {
        AUDIT_ARCH_X86_64 if nr & X32_SYSCALL_BIT != 0 => {
            syscalls::x86_64::Sysno::new(usize::try_from(nr & !X32_SYSCALL_BIT).ok()?).map(|s| s.name())
        }
        AUDIT_ARCH_X86_64 => syscalls::x86_64::Sysno::new(n?).map(|s| s.name()),
        AUDIT_ARCH_I386 => syscalls::x86::Sysno::new(n?).map(|s| s.name()),
        AUDIT_ARCH_AARCH64 => syscalls::aarch64::Sysno::new(n?).map(|s| s.name()),
        AUDIT_ARCH_ARM => syscalls::arm::Sysno::new(n?).map(|s| s.name()),
        _ => None,
    }
}

/// The `SCMP_ARCH_*` name of an `AUDIT_ARCH_*` value.
pub fn scmp_arch(arch: u32, nr: i32) -> Option<&'static str> {
    match arch {
        AUDIT_ARCH_X86_64 if nr & X32_SYSCALL_BIT != 0 => Some("SCMP_ARCH_X32"),
        AUDIT_ARCH_X86_64 => Some("SCMP_ARCH_X86_64"),
        AUDIT_ARCH_I386 => Some("SCMP_ARCH_X86"),
        AUDIT_ARCH_AARCH64 => Some("SCMP_ARCH_AARCH64"),
        AUDIT_ARCH_ARM => Some("SCMP_ARCH_ARM"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_per_architecture() {
        assert_eq!(syscall_name(AUDIT_ARCH_X86_64, 83), Some("mkdir"));
        assert_eq!(syscall_name(AUDIT_ARCH_X86_64, 41), Some("socket"));
        assert_eq!(syscall_name(AUDIT_ARCH_I386, 39), Some("mkdir"));
        assert_eq!(syscall_name(AUDIT_ARCH_AARCH64, 198), Some("socket"));
        assert_eq!(syscall_name(AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 83), Some("mkdir"));
        assert_eq!(syscall_name(AUDIT_ARCH_X86_64, -1), None);
        assert_eq!(syscall_name(AUDIT_ARCH_X86_64, 100_000), None);
        assert_eq!(syscall_name(0x1234, 1), None);
    }

    #[test]
    fn an_ordinary_fd_is_not_a_notify_fd() {
        let f = std::fs::File::open("/proc/self/status").unwrap();
        assert!(!is_notify_fd(f.as_raw_fd()));
    }
}
