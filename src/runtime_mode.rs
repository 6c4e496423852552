//! Runtime mode: hardrun invoked as runc. Parse, decide (create/run/restore/exec
//! only), exec runc. Never writes stdout; errors go to runc's `--log` (or stderr
//! when there is none, as runc does) and exit 1.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::NodeConfig;
use crate::context::runtime_class_from_argv0;
use crate::pipeline::{self, CreateRequest, Outcome};
use crate::runtime::{self, Command, RuncArgs, RuncLog};

/// Runs hardrun as runc. Returns only when runc is not exec'd: the exit status.
pub fn run(argv0: &str, args: &[OsString]) -> i32 {
    let parsed = match runtime::argv::parse(args) {
        Ok(p) => p,
        Err(e) => {
            let log = RuncLog::from_flags(&runtime::argv::lenient_globals(args));
            log.error(&e.to_string());
            return 1;
        }
    };
    let log = RuncLog::from_flags(&parsed.global);
    match decide_and_find(argv0, &parsed) {
        Ok(runc) => {
            let err = runtime::exec_runc(&runc, args);
            log.error(&format!("hardrun: {err}"));
            1
        }
        Err(msg) => {
            log.error(&msg);
            1
        }
    }
}

/// The runc to exec, after the policy work the subcommand needs; `Err`: refuse.
fn decide_and_find(argv0: &str, parsed: &RuncArgs) -> Result<PathBuf, String> {
    let log = RuncLog::from_flags(&parsed.global);
    let proceed = |runc: PathBuf, outcome: Outcome| match outcome {
        Outcome::Exec => Ok(runc),
        Outcome::ExecWithWarning(w) => {
            log.warning(&w);
            Ok(runc)
        }
        Outcome::Deny(msg) => Err(msg),
    };
    let config = NodeConfig::load_from_env().map_err(|e| format!("hardrun: {e}"))?;
    let runc = runtime::find_runc(config.runtime.as_deref()).map_err(|e| format!("hardrun: {e}"))?;
    match &parsed.command {
        Command::Passthrough { name, id } => {
            record_lifecycle(&config, name.as_deref(), id.as_deref(), parsed);
            Ok(runc)
        }
        Command::Exec { flags, id } => {
            init_debug_log(&config);
            let runtime_class = runtime_class_from_argv0(argv0);
            let req = pipeline::ExecRequest {
                container_id: id.as_deref(),
                flags,
                runtime_class: runtime_class.as_deref(),
                runc_root: parsed.global.root.as_deref(),
            };
            proceed(runc, pipeline::exec(&config, &req))
        }
        Command::Create { kind, bundle, id } => {
            init_debug_log(&config);
            let bundle = bundle.clone().unwrap_or_else(|| PathBuf::from("."));
            let runtime_class = runtime_class_from_argv0(argv0);
            let req = CreateRequest {
                command: kind.as_str(),
                bundle: &bundle,
                container_id: id.as_deref(),
                runtime_class: runtime_class.as_deref(),
                runc_root: parsed.global.root.as_deref(),
            };
            let outcome = pipeline::create(&config, &req);
            crate::faults::crash_point("create.before-exec");
            proceed(runc, outcome)
        }
    }
}

/// `start` and `delete` leave a line in the audit log so a container's history reads
/// from create to delete. Not fsync'd and never blocking: these decide nothing, and a
/// delete must work even when the log does not.
fn record_lifecycle(config: &NodeConfig, name: Option<&str>, id: Option<&str>, parsed: &RuncArgs) {
    let Some(command @ ("start" | "delete")) = name else { return };
    let mut record = crate::audit::Record::lifecycle(command, id);
    record.context.containerd_namespace = parsed.global.root.as_deref().and_then(crate::context::containerd_namespace);
    if let (Some(id), "delete") = (id, command) {
        match pipeline::release_on_delete(config, id) {
            Ok(event) => record.userns = event,
            Err(reason) => record.reason = Some(reason),
        }
    }
    let _ = crate::audit::append(&config.audit_log, &mut record, false);
}

/// hardrun's own tracing goes to `debugLog` when configured, nowhere otherwise.
fn init_debug_log(config: &NodeConfig) {
    let Some(path) = config.debug_log.as_deref() else { return };
    if let Ok(file) = open_append(path) {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .try_init();
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
}
