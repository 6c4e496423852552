//! `hardrun schema`: the JSON Schema of a policy document, for editors and CI.

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct SchemaArgs {}

pub fn run(_: &SchemaArgs) -> anyhow::Result<ExitCode> {
    let schema = crate::policy::lint::schema::policy_schema();
    super::print_stdout(&(serde_json::to_string_pretty(&schema)? + "\n"))?;
    Ok(ExitCode::SUCCESS)
}
