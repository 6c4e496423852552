//! Dispatch only: hardrun's own commands, or runc's command line (runtime mode).

use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = if args.is_empty() { String::from("hardrun") } else { args.remove(0).to_string_lossy().into_owned() };
    if hardrun::cli::is_tool_command(&args) {
        return hardrun::cli::run(&args);
    }
    let code = hardrun::run_runtime(&argv0, &args);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
