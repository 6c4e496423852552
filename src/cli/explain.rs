//! `hardrun explain`: the create pipeline without its effects.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::audit::Decision;
use crate::config::NodeConfig;
use crate::pipeline::{self, CreateRequest, Evaluation};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// Decision, policies, findings, then the resulting config.json
    Text,
    /// Everything as one JSON object
    Json,
    /// Only the JSON-Patch (RFC 6902) that enforcement applies
    Patch,
    /// Only the resulting config.json
    Spec,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The bundle whose config.json to evaluate
    #[arg(long, short = 'b', default_value = ".")]
    bundle: PathBuf,
    /// Node config to use instead of $HARDRUN_CONFIG or /etc/hardrun/config.yaml
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Container id, as runc would be given it
    #[arg(long)]
    id: Option<String>,
    /// runc's --root (its last element is the containerd namespace)
    #[arg(long)]
    root: Option<PathBuf>,
    /// Runtime class, as `hardrun-<class>` would select it
    #[arg(long)]
    runtime_class: Option<String>,
    #[command(flatten)]
    selector: super::explain_selector::SelectorArgs,
}

/// Exit 0: the container would start; 1: it would be denied.
pub fn run(a: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let config = match &a.config {
        Some(p) => NodeConfig::load(p)?,
        None => NodeConfig::load_from_env()?,
    };
    if a.selector.is_set() {
        anyhow::ensure!(
            matches!(a.format, Format::Text | Format::Json),
            "--format patch and spec need a bundle, not a hypothetical container"
        );
        let json = matches!(a.format, Format::Json);
        return super::explain_selector::run(&config, &a.selector, a.runtime_class.as_deref(), a.root.as_deref(), json);
    }
    let req = CreateRequest {
        command: "create",
        bundle: &a.bundle,
        container_id: a.id.as_deref(),
        runtime_class: a.runtime_class.as_deref(),
        runc_root: a.root.as_deref(),
    };
    let (_, eval) = pipeline::evaluate_bundle(&config, &req).context("cannot evaluate the bundle")?;
    let out = match a.format {
        Format::Text => text(&eval)?,
        Format::Json => serde_json::to_string_pretty(&json(&eval))?,
        Format::Patch => serde_json::to_string_pretty(&eval.patch)?,
        Format::Spec => serde_json::to_string_pretty(&eval.result)?,
    };
    super::print_stdout(&format!("{out}\n"))?;
    Ok(if eval.decision == Decision::Denied { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn json(eval: &Evaluation) -> serde_json::Value {
    serde_json::json!({
        "decision": eval.decision,
        "mode": eval.settings.mode,
        "context": eval.context,
        "policies": eval.policies,
        "settings": eval.settings,
        "findings": eval.plan.findings,
        "patch": eval.patch,
        "exemptions": eval.exemptions,
        "recording": eval.recording.as_ref().map(|r| &r.name),
        "spec": eval.result,
    })
}

fn text(eval: &Evaluation) -> anyhow::Result<String> {
    use std::fmt::Write;
    let mut s = String::new();
    let decision = serde_json::to_value(eval.decision)?;
    let mode = serde_json::to_value(eval.settings.mode)?;
    writeln!(s, "decision: {} (mode {})", decision.as_str().unwrap_or("?"), mode.as_str().unwrap_or("?"))?;
    if eval.policies.is_empty() {
        writeln!(s, "policies: none matched")?;
    }
    for p in &eval.policies {
        writeln!(s, "policy:   {} ({}, {})", p.name, p.source, p.hash)?;
    }
    for e in &eval.exemptions {
        writeln!(s, "exemption: {} ({}, {})", e.name, e.source, e.hash)?;
    }
    if let Some(r) = &eval.recording {
        // The recording filter is set at create (it needs the recorder's socket), so
        // the patch and spec below do not show it.
        writeln!(
            s,
            "recording: {} ({}): at create, linux.seccomp becomes the recording filter",
            r.name,
            r.source.display()
        )?;
    }
    for f in &eval.plan.findings {
        let action = serde_json::to_value(f.action)?;
        let by = f.exemption.as_deref().map(|e| format!(" (exempted by {e})")).unwrap_or_default();
        writeln!(s, "finding:  {} [{}] {}{by}", action.as_str().unwrap_or("?"), f.rule, f.message)?;
    }
    for op in &eval.patch.0 {
        writeln!(s, "patch:    {}", serde_json::to_string(op)?)?;
    }
    writeln!(s, "config.json:")?;
    s.push_str(&serde_json::to_string_pretty(&eval.result)?);
    Ok(s)
}
