//! Replacing hardrun with runc: same arguments (argv[0] becomes runc's path), the
//! environment and every file descriptor inherited as they are.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ExecError {
    #[error("argument contains a NUL byte")]
    Nul,
    #[error("cannot execute {path}: {source}")]
    Exec { path: String, source: nix::Error },
}

fn cstring(bytes: &[u8]) -> Result<CString, ExecError> {
    CString::new(bytes).map_err(|_| ExecError::Nul)
}

/// Rust's runtime ignores SIGPIPE in every program, and an ignored signal survives
/// `execve`: runc, and through it the container's init, would inherit it (a shell
/// pipeline in the container would then see EPIPE instead of dying of SIGPIPE). The
/// shim starts runc with the default disposition; so must hardrun.
fn restore_inherited_signal_dispositions() {
    // SAFETY: setting a disposition to SIG_DFL has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// execv(runc, [runc, args...]) with the current environment. Returns only on failure.
pub fn exec_runc(runc: &Path, args: &[OsString]) -> ExecError {
    let build = || -> Result<(CString, Vec<CString>), ExecError> {
        let path = cstring(runc.as_os_str().as_bytes())?;
        let mut argv = Vec::with_capacity(args.len() + 1);
        argv.push(path.clone());
        for a in args {
            argv.push(cstring(a.as_bytes())?);
        }
        Ok((path, argv))
    };
    restore_inherited_signal_dispositions();
    match build() {
        Ok((path, argv)) => match nix::unistd::execv(&path, &argv) {
            Err(source) => ExecError::Exec { path: runc.display().to_string(), source },
            Ok(never) => match never {},
        },
        Err(e) => e,
    }
}
