//! YAML error positions, shared by the node config and policy loaders.

/// (line, column, message without yaml_serde's trailing position).
pub fn split_error(e: &serde_yaml::Error) -> (Option<usize>, Option<usize>, String) {
    let loc = e.location();
    let message = e.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
    (loc.as_ref().map(|l| l.line()), loc.as_ref().map(|l| l.column()), message)
}

/// `line L column C: message`, or just the message when the position is unknown.
pub fn describe_error(e: &serde_yaml::Error) -> String {
    match split_error(e) {
        (Some(l), Some(c), m) => format!("line {l} column {c}: {m}"),
        (_, _, m) => m,
    }
}
