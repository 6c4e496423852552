//! Crash points for the crash-consistency tests (`tests/crash.rs`): with
//! `HARDRUN_CRASH_AT=<point>`, a debug build kills itself with SIGKILL at that point,
//! as a power cut or an OOM kill would. Release builds compile every point to nothing
//! and never read the variable.

/// The variable naming the point to crash at.
pub const CRASH_ENV: &str = "HARDRUN_CRASH_AT";

/// Every point of the audit and spec writes, in the order a create passes them
/// (`tests/crash.rs` kills at each). The user-namespace table has its own:
/// `userns.before-write`, `userns.before-rename`, `userns.after-rename` (tests/userns.rs).
pub const POINTS: &[&str] = &[
    "create.evaluated",
    "audit.locked",
    "audit.partial-line",
    "audit.written",
    "spec.temp-written",
    "spec.renamed",
    "create.before-exec",
];

/// Dies here when the crash variable names `point` (debug builds only).
#[inline]
pub fn crash_point(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var_os(CRASH_ENV).is_some_and(|want| want == point) {
        die();
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}

/// Whether a crash is requested at `point`, for points that must act first (write half
/// a line) and then die.
#[inline]
pub fn crash_requested(point: &str) -> bool {
    cfg!(debug_assertions) && std::env::var_os(CRASH_ENV).is_some_and(|want| want == point)
}

/// SIGKILL to ourselves: no destructors, no flushing, no unlock but the kernel's.
pub fn die() -> ! {
    // SAFETY: raise has no memory-safety preconditions.
    unsafe { libc::raise(libc::SIGKILL) };
    std::process::abort()
}
