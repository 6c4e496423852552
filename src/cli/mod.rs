//! hardrun's own commands (tool mode). These may print to stdout: they are run by
//! people and CI, never by containerd.

mod audit;
mod explain;
mod explain_selector;
mod hook;
mod install;
mod lint;
mod profile;
mod schema;
mod sign;
mod verify;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The first arguments that select tool mode. Everything else is a runc command line.
pub const TOOL_COMMANDS: &[&str] = &[
    "audit",
    "explain",
    "hook",
    "install",
    "lint",
    "profile",
    "schema",
    "sign",
    "verify",
    "version",
    "help",
    "--help",
    "-h",
    "__recorder",
];

/// Whether argv (without argv[0]) is a hardrun tool command rather than runc's.
pub fn is_tool_command(args: &[OsString]) -> bool {
    args.first().and_then(|a| a.to_str()).is_some_and(|a| TOOL_COMMANDS.contains(&a))
}

#[derive(Debug, Parser)]
#[command(
    name = "hardrun",
    version,
    about = "An OCI runtime wrapper that hardens, audits and then execs runc",
    long_about = "hardrun runs in place of runc (containerd's BinaryName, or a RuntimeClass handler). \
Called with a runc command line it applies the node's policies to create/run/restore/exec and execs the \
real runc with the same arguments; every other runc subcommand goes straight to runc.\n\n\
Called with one of the commands below it is a tool for operators.",
    after_help = "Node config: /etc/hardrun/config.yaml (or $HARDRUN_CONFIG). Docs: docs/ in the source tree."
)]
struct Cli {
    #[command(subcommand)]
    command: Tool,
}

#[derive(Debug, Subcommand)]
enum Tool {
    /// Read the audit log: list and filter records, verify the hash chain, summary, show, metrics
    Audit(audit::AuditArgs),
    /// Show what hardrun would do to a bundle: decision, policies, resulting spec
    Explain(explain::ExplainArgs),
    /// OCI hook entry points (runc runs these; see hooks/)
    Hook(hook::HookArgs),
    /// Install hardrun on this node: binary, node config, policies, containerd runtime handlers
    Install(install::InstallArgs),
    /// Check policy files: schema, references, conflicts, dangerous grants, permissions
    Lint(lint::LintArgs),
    /// Recorded seccomp profiles: list, show, diff, merge, harden
    Profile(profile::ProfileArgs),
    /// Print the JSON Schema of a policy document (for editors' YAML language server)
    Schema(schema::SchemaArgs),
    /// Sign an image with a cosign key (legacy format) and push the signature; or make a key pair
    Sign(sign::SignArgs),
    /// Check an image's cosign signatures as a create would; exit 0 only when trusted
    Verify(verify::VerifyArgs),
    /// Print hardrun's version and the runc it would run
    Version,
    /// The seccomp recorder hardrun starts for a recorded container (internal)
    #[command(name = "__recorder", hide = true)]
    Recorder,
}

/// Runs a tool command; returns the process exit code.
pub fn run(args: &[OsString]) -> ExitCode {
    let argv = std::iter::once(OsString::from("hardrun")).chain(args.iter().cloned());
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.command {
        Tool::Audit(a) => audit::run(&a),
        Tool::Explain(a) => explain::run(&a),
        Tool::Hook(a) => hook::run(&a),
        Tool::Install(a) => install::run(&a),
        Tool::Lint(a) => lint::run(&a),
        Tool::Schema(a) => schema::run(&a),
        Tool::Profile(a) => profile::run(&a),
        Tool::Sign(a) => sign::run(&a),
        Tool::Verify(a) => verify::run(&a),
        Tool::Version => version(),
        Tool::Recorder => return crate::record::recorder::main(),
    };
    result.unwrap_or_else(|e| {
        eprintln!("hardrun: {e:#}");
        ExitCode::from(2)
    })
}

/// Writes to stdout; a closed pipe (`hardrun … | head`) ends output quietly.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn version() -> anyhow::Result<ExitCode> {
    let config = crate::config::NodeConfig::load_from_env()?;
    let runtime = match crate::runtime::find_runc(config.runtime.as_deref()) {
        Ok(runc) => runc.display().to_string(),
        Err(e) => format!("none ({e})"),
    };
    print_stdout(&format!("hardrun {}\nruntime: {runtime}\n", env!("CARGO_PKG_VERSION")))?;
    Ok(ExitCode::SUCCESS)
}
