//! `hardrun lint [PATH…]`: checks policy files before they reach a node. Exit 0: no
//! errors (and no warnings with --warnings-as-errors); 1: findings that fail; 2: usage.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::config::NodeConfig;
use crate::policy::lint::{self, render, Options, Report, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// rustc-style, with the source line and a caret
    Human,
    /// One JSON object: summary and findings
    Json,
    /// SARIF 2.1.0, for code-scanning viewers
    Sarif,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// When stdout is a terminal and NO_COLOR is unset
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Policy files or directories, linted as one set (default: the node's policyDir)
    paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Fail (exit 1) on warnings too
    #[arg(long)]
    warnings_as_errors: bool,
    /// Lint as the node's own policy directory: permission problems are errors, runtime
    /// classes must have a hardrun-<class> link (implied for the node's policyDir)
    #[arg(long)]
    node: bool,
    /// Node config to read policyDir from instead of $HARDRUN_CONFIG or /etc/hardrun/config.yaml
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
    /// Print the rule table and exit
    #[arg(long)]
    list_rules: bool,
    /// Check the hooks policies name against the definitions in DIR (repeatable;
    /// default for the node's own policies: the node config's hookDirs)
    #[arg(long = "hook-dir", value_name = "DIR")]
    hook_dirs: Vec<PathBuf>,
}

pub fn run(a: &LintArgs) -> anyhow::Result<ExitCode> {
    if a.list_rules {
        return list_rules(a.format);
    }
    let config = match &a.config {
        Some(p) => Some(NodeConfig::load(p)?),
        None if a.paths.is_empty() => Some(NodeConfig::load_from_env()?),
        // Only to recognise the node's own directory among the paths.
        None => NodeConfig::load_from_env().ok(),
    };
    let node_dir = config.as_ref().map(|c| c.policy_dir.clone());
    let node =
        a.paths.is_empty() || a.node || node_dir.as_deref().is_some_and(|d| a.paths.iter().any(|p| same_path(p, d)));
    let timeout = config.as_ref().map_or(10, |c| c.hook_timeout);
    let hooks = match (&a.hook_dirs[..], &config) {
        ([], Some(c)) if node => Some((c.hook_dirs.clone(), timeout)),
        ([], _) => None,
        (dirs, _) => Some((dirs.to_vec(), timeout)),
    };
    let report = if a.paths.is_empty() {
        let dir = node_dir.expect("config loaded above");
        lint_node_dir(&dir, hooks)
    } else {
        let mut diags = Vec::new();
        let files = lint::collect_files(&a.paths, &mut diags);
        let opts = Options { node, runtime_classes: node, hooks, ..Default::default() };
        let mut report = lint::lint_files(&files, &opts);
        report.diagnostics.splice(0..0, diags);
        report
    };
    let out = match a.format {
        Format::Human => render::human(&report, use_color(a.color)),
        Format::Json => serde_json::to_string_pretty(&render::json(&report))? + "\n",
        Format::Sarif => serde_json::to_string_pretty(&render::sarif(&report))? + "\n",
    };
    super::print_stdout(&out)?;
    Ok(exit_code(&report, a.warnings_as_errors))
}

fn exit_code(report: &Report, warnings_as_errors: bool) -> ExitCode {
    let failing = report.has_errors() || (warnings_as_errors && report.count(Severity::Warning) > 0);
    if failing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The node's policy directory, as the node loads it; without one, the embedded
/// baseline the node falls back to.
fn lint_node_dir(dir: &Path, hooks: Option<(Vec<PathBuf>, u32)>) -> Report {
    let opts = Options { node: true, runtime_classes: true, hooks, ..Default::default() };
    if !dir.exists() {
        eprintln!("hardrun lint: {} does not exist: the node uses the embedded baseline, linted here", dir.display());
        let src = vec![(
            PathBuf::from(crate::policy::load::EMBEDDED_BASELINE_SOURCE),
            crate::policy::load::EMBEDDED_BASELINE.to_owned(),
        )];
        return lint::lint_sources(&src, &opts);
    }
    let mut diags = Vec::new();
    let files = lint::collect_files(&[dir.to_owned()], &mut diags);
    let mut report = lint::lint_files(&files, &opts);
    report.diagnostics.splice(0..0, diags);
    report
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

fn use_color(c: Color) -> bool {
    match c {
        Color::Always => true,
        Color::Never => false,
        // SAFETY: isatty only reads the descriptor's state.
        Color::Auto => std::env::var_os("NO_COLOR").is_none() && unsafe { libc::isatty(libc::STDOUT_FILENO) } == 1,
    }
}

fn list_rules(format: Format) -> anyhow::Result<ExitCode> {
    let out = match format {
        Format::Human => {
            let mut s = String::new();
            for r in lint::RULES {
                s.push_str(&format!("{}  {:<28} {:<8} {}\n", r.code, r.name, r.severity.as_str(), r.summary));
            }
            s
        }
        _ => serde_json::to_string_pretty(lint::RULES)? + "\n",
    };
    super::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}
