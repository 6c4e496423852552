//! `hardrun hook poststop|poststart`: run by runc as an OCI hook, with the container's
//! state on stdin; appends the lifecycle record, so a container's story in the audit
//! log ends with its stop even when the runtime's `delete` never comes.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::audit::{self, Record};
use crate::config::NodeConfig;
use crate::context::ContainerContext;

/// runc's state object is a few KiB (its annotations dominate).
const MAX_STATE_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Stage {
    Poststart,
    Poststop,
}

#[derive(Debug, Args)]
pub struct HookArgs {
    /// The lifecycle stage runc runs this hook at
    #[arg(value_enum)]
    stage: Stage,
}

pub fn run(a: &HookArgs) -> anyhow::Result<ExitCode> {
    let mut bytes = Vec::new();
    std::io::stdin().take(MAX_STATE_BYTES + 1).read_to_end(&mut bytes).context("cannot read the state on stdin")?;
    anyhow::ensure!(
        bytes.len() as u64 <= MAX_STATE_BYTES,
        "container state on stdin is larger than {MAX_STATE_BYTES} bytes"
    );
    let state: Value = serde_json::from_slice(&bytes).context("container state on stdin is not JSON")?;
    anyhow::ensure!(state.is_object(), "container state on stdin is not a JSON object");
    let config = NodeConfig::load_from_env()?;
    let mut record = lifecycle_record(a.stage, &state);
    audit::append(&config.audit_log, &mut record, false)?;
    Ok(ExitCode::SUCCESS)
}

fn lifecycle_record(stage: Stage, state: &Value) -> Record {
    let command = match stage {
        Stage::Poststart => "poststart",
        Stage::Poststop => "poststop",
    };
    let text = |k: &str| state.get(k).and_then(Value::as_str).map(str::to_owned);
    let mut record = Record::lifecycle(command, text("id").as_deref());
    record.bundle = text("bundle");
    let annotations = crate::spec::view::annotations(state);
    record.context = ContainerContext::from_parts(&annotations, text("id").as_deref(), None, None);
    record.reason = text("status").map(|s| format!("container status: {s}"));
    record
}
