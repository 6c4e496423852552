//! `hardrun install`: configures containerd and installs hardrun's files (see
//! src/install/). Exit 0: done (or nothing to do); 2: refused, nothing written.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::install::{self, Options, DEFAULT_HANDLER, DEFAULT_PREFIX};

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// containerd's config file (default: <root-dir>/etc/containerd/config.toml)
    #[arg(long, value_name = "FILE")]
    containerd_config: Option<PathBuf>,
    /// Runtime handler to add (repeatable): `hardrun`, or `hardrun-<class>` for a
    /// runtime class (installed as a link to the binary)
    #[arg(long = "handler", value_name = "NAME", default_value = DEFAULT_HANDLER)]
    handlers: Vec<String>,
    /// Install prefix on the node: the binary goes to <prefix>/bin/hardrun
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PREFIX)]
    prefix: PathBuf,
    /// The node's root filesystem, e.g. a DaemonSet's host mount; paths written into
    /// configs are relative to it
    #[arg(long, value_name = "DIR", default_value = "/")]
    root_dir: PathBuf,
    /// The binary to install (default: this one)
    #[arg(long, value_name = "FILE")]
    binary: Option<PathBuf>,
    /// Shipped policy to install into the policy directory when absent (repeatable)
    #[arg(long = "policy", value_name = "NAME", default_value = "baseline")]
    policies: Vec<String>,
    /// Install no policies (e.g. they come from a ConfigMap)
    #[arg(long, conflicts_with = "policies")]
    no_policies: bool,
    /// Only edit containerd's config; install no files
    #[arg(long)]
    containerd_only: bool,
    /// Print what would change (a unified diff of containerd's config) and write nothing
    #[arg(long)]
    dry_run: bool,
    /// Remove the handlers, the binary and its links (node config and policies stay)
    #[arg(long)]
    uninstall: bool,
    /// Run `systemctl restart containerd` after a change
    #[arg(long)]
    restart: bool,
}

pub fn run(a: &InstallArgs) -> anyhow::Result<ExitCode> {
    let binary_source = match &a.binary {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("cannot find the running binary; pass --binary")?,
    };
    let opts = Options {
        handlers: a.handlers.clone(),
        prefix: a.prefix.clone(),
        root_dir: a.root_dir.clone(),
        containerd_config: a.containerd_config.clone(),
        binary_source,
        policies: if a.no_policies { Vec::new() } else { a.policies.clone() },
        containerd_only: a.containerd_only,
        dry_run: a.dry_run,
        uninstall: a.uninstall,
    };
    let report = install::run(&opts)?;
    let mut out = String::new();
    if a.dry_run {
        out.push_str(&report.diff);
    }
    for step in &report.steps {
        out.push_str(step);
        out.push('\n');
    }
    if report.containerd_changed && !a.dry_run {
        if a.restart {
            install::restart_containerd()?;
            out.push_str("containerd restarted\n");
        } else {
            out.push_str(
                "containerd reads its config at start: run `systemctl restart containerd` (or pass --restart)\n",
            );
        }
    }
    super::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}
