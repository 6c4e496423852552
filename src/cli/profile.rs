//! `hardrun profile`: the seccomp profiles recorded under `stateDir/recordings/`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::enforce::seccomp::{default, Target};
use crate::record::profile::{self, Observed};

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The recordings directory (default: `stateDir/recordings` of the node config)
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: ProfileCommand,
}

#[derive(Debug, Subcommand)]
enum ProfileCommand {
    /// List the recorded profiles
    List,
    /// Show what a recording allows (--json: the profile file itself)
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Compare two recordings' calls; exit 1 when they differ
    Diff { a: String, b: String },
    /// Union recordings into a new one
    Merge {
        #[arg(required = true, num_args = 1..)]
        names: Vec<String>,
        #[arg(long)]
        output: String,
    },
    /// Print a policy that enforces a recording, and what it denies compared with runtime/default
    Harden { name: String },
}

pub fn run(args: &ProfileArgs) -> anyhow::Result<ExitCode> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => crate::record::recordings_dir(&crate::config::NodeConfig::load_from_env()?.state_dir),
    };
    match &args.command {
        ProfileCommand::List => list(&dir),
        ProfileCommand::Show { name, json } => show(&dir, name, *json),
        ProfileCommand::Diff { a, b } => diff(&dir, a, b),
        ProfileCommand::Merge { names, output } => merge(&dir, names, output),
        ProfileCommand::Harden { name } => harden(&dir, name),
    }
}

fn load(dir: &Path, name: &str) -> anyhow::Result<(PathBuf, serde_json::Value, Observed)> {
    let path = profile::path_of(dir, name)?;
    let (value, observed) = profile::read(&path)?;
    Ok((path, value, observed))
}

fn list(dir: &Path) -> anyhow::Result<ExitCode> {
    let mut out = format!("{:<40} {:>6} {:>5} {:>11}  NOTE\n", "NAME", "CALLS", "RUNS", "CONTAINERS");
    for (name, path) in profile::list(dir).with_context(|| format!("reading {}", dir.display()))? {
        match profile::read(&path) {
            Ok((_, o)) => {
                let note = if o.incomplete { "incomplete" } else { "" };
                let _ = writeln!(
                    out,
                    "{name:<40} {:>6} {:>5} {:>11}  {note}",
                    o.allowed().len(),
                    o.runs,
                    o.containers.len()
                );
            }
            Err(e) => {
                let _ = writeln!(out, "{name:<40} {:>6} {:>5} {:>11}  invalid: {e}", "-", "-", "-");
            }
        }
    }
    super::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn show(dir: &Path, name: &str, json: bool) -> anyhow::Result<ExitCode> {
    let (path, value, o) = load(dir, name)?;
    if json {
        super::print_stdout(&(serde_json::to_string_pretty(&value)? + "\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = format!("recording {name} ({})\n", path.display());
    let _ = writeln!(out, "runs: {}, containers: {}, notifications: {}", o.runs, o.containers.len(), o.notifications);
    if o.incomplete {
        out.push_str("incomplete: a run ended early or hit the size bound; calls may be missing\n");
    }
    let _ = writeln!(out, "architectures: {}", o.arches.iter().cloned().collect::<Vec<_>>().join(", "));
    let _ = writeln!(out, "allowed calls ({}):", o.allowed().len());
    for call in o.allowed() {
        match o.args.get(&call) {
            Some(a) => {
                let vals: Vec<String> = a.values.iter().map(|v| format!("{v:#x}")).collect();
                let more = if a.overflow { " …" } else { "" };
                let _ = writeln!(out, "  {call}  arg{}: {}{more}", a.index, vals.join(" "));
            }
            None => {
                let _ = writeln!(out, "  {call}");
            }
        }
    }
    if !o.unknown.is_empty() {
        let _ = writeln!(out, "unnamed calls (denied): {}", o.unknown.iter().cloned().collect::<Vec<_>>().join(" "));
    }
    super::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn diff(dir: &Path, a: &str, b: &str) -> anyhow::Result<ExitCode> {
    let (_, _, oa) = load(dir, a)?;
    let (_, _, ob) = load(dir, b)?;
    let (sa, sb) = (oa.allowed(), ob.allowed());
    let only_a: Vec<&String> = sa.difference(&sb).collect();
    let only_b: Vec<&String> = sb.difference(&sa).collect();
    let mut out = String::new();
    for c in &only_a {
        let _ = writeln!(out, "- {c}");
    }
    for c in &only_b {
        let _ = writeln!(out, "+ {c}");
    }
    let mut args_differ = false;
    for call in sa.intersection(&sb) {
        let (x, y) = (oa.args.get(call), ob.args.get(call));
        if x.map(|v| &v.values) != y.map(|v| &v.values) {
            args_differ = true;
            let _ = writeln!(out, "~ {call} (argument values differ)");
        }
    }
    if out.is_empty() {
        out = format!("{a} and {b} allow the same calls\n");
    }
    super::print_stdout(&out)?;
    Ok(if only_a.is_empty() && only_b.is_empty() && !args_differ { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn merge(dir: &Path, names: &[String], output: &str) -> anyhow::Result<ExitCode> {
    let out_path = profile::path_of(dir, output)?;
    let mut all = Observed::default();
    for n in names {
        let (_, _, o) = load(dir, n)?;
        all.merge(&o);
    }
    let target = Target::host();
    let value = profile::to_profile(output, &all, target.arches);
    profile::write_atomic(&out_path, &value).with_context(|| format!("writing {}", out_path.display()))?;
    super::print_stdout(&format!("wrote {} ({} calls)\n", out_path.display(), all.allowed().len()))?;
    Ok(ExitCode::SUCCESS)
}

/// The calls runtime/default allows (for some arguments at least) for Docker's
/// default capability set on this host.
fn runtime_default_allowed() -> BTreeSet<String> {
    let caps: BTreeSet<String> = crate::policy::CONTAINERD_DEFAULT_CAPS.iter().map(|c| (*c).to_owned()).collect();
    let p = default::profile(&caps, &Target::host());
    p.syscalls
        .iter()
        .filter(|(_, d)| !matches!(d, crate::enforce::seccomp::model::Decision::Always(a) if !a.allows()))
        .map(|(n, _)| n.to_string())
        .collect()
}

/// Names as YAML comment lines of at most ~100 characters.
fn comment_lines(names: &[&String]) -> String {
    let mut out = String::new();
    let mut line = String::from("#  ");
    for n in names {
        if line.len() + n.len() + 1 > 100 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#  ");
        }
        line.push(' ');
        line.push_str(n);
    }
    if line.len() > 3 {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn harden(dir: &Path, name: &str) -> anyhow::Result<ExitCode> {
    let (path, _, o) = load(dir, name)?;
    let allowed = o.allowed();
    let default_allowed = runtime_default_allowed();
    let denied: Vec<&String> = default_allowed.difference(&allowed).collect();
    let beyond: Vec<&String> = allowed.difference(&default_allowed).collect();
    let mut out = String::new();
    let _ = writeln!(out, "# Enforces recording {name}: {} calls allowed, everything else EPERM.", allowed.len());
    let _ = writeln!(out, "# Compared with runtime/default it denies {} more calls:", denied.len());
    out.push_str(&comment_lines(&denied));
    if !beyond.is_empty() {
        let _ = writeln!(
            out,
            "# It allows {} calls runtime/default denies (a policy with `profile: runtime/default` keeps them denied):",
            beyond.len()
        );
        out.push_str(&comment_lines(&beyond));
    }
    if o.incomplete {
        out.push_str("# WARNING: the recording is incomplete; record again before enforcing.\n");
    }
    let _ = write!(
        out,
        "apiVersion: {}\nkind: Policy\nmetadata:\n  name: {name}-recorded\nspec:\n  match: {{}}  # narrow this to the recorded workload\n  seccomp:\n    profile: localhost/{}\n",
        crate::policy::model::API_VERSION,
        path.display()
    );
    super::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}
