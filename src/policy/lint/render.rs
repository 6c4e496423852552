//! The three ways a report is written: for people (rustc style, with the source line
//! and a caret), for scripts (JSON) and for code-scanning viewers (SARIF 2.1.0).

use std::fmt::Write;

use serde_json::{json, Value};

use super::{Diagnostic, Location, Report, Severity, RULES};

/// Where the SARIF 2.1.0 schema is published (what viewers expect in `$schema`).
pub const SARIF_SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    fn severity(&self, s: Severity) -> String {
        match s {
            Severity::Error => self.paint("1;31", "error"),
            Severity::Warning => self.paint("1;33", "warning"),
            Severity::Info => self.paint("1;36", "info"),
        }
    }
    fn blue(&self, text: &str) -> String {
        self.paint("1;34", text)
    }
    fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// How many characters the caret underlines: the token starting at the column.
fn token_len(line: &str, column: usize) -> usize {
    let rest: Vec<char> = line.chars().skip(column.saturating_sub(1)).collect();
    match rest.first() {
        None => 1,
        Some(q @ ('"' | '\'')) => rest.iter().skip(1).position(|c| c == q).map_or(rest.len(), |p| p + 2),
        Some(_) => rest
            .iter()
            .position(|c| c.is_whitespace() || matches!(c, ':' | ',' | '[' | ']' | '{' | '}' | '#'))
            .unwrap_or(rest.len())
            .max(1),
    }
}

/// The snippet for one location: `--> file:line:col`, the line and a caret.
fn snippet(out: &mut String, st: &Style, loc: &Location, label: Option<&str>, report: &Report, gutter: usize) {
    let pad = " ".repeat(gutter);
    let _ = writeln!(out, "{pad}{} {}", st.blue("-->"), loc.display());
    let (Some(line_no), Some(text)) = (loc.line, report.sources.get(&loc.file)) else { return };
    let Some(line) = text.lines().nth(line_no.saturating_sub(1)) else { return };
    let column = loc.column.unwrap_or(1);
    let bar = st.blue("|");
    let _ = writeln!(out, "{pad} {bar}");
    let _ = writeln!(out, "{} {bar} {line}", st.blue(&format!("{line_no:>gutter$}")));
    let caret_pad: String =
        line.chars().take(column.saturating_sub(1)).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
    let carets = "^".repeat(token_len(line, column));
    let label = label.map(|l| format!(" {l}")).unwrap_or_default();
    let _ = writeln!(out, "{pad} {bar} {caret_pad}{}", st.paint("1;31", &format!("{carets}{label}")));
}

/// rustc/clippy style. `color`: ANSI colours (stdout is a terminal).
pub fn human(report: &Report, color: bool) -> String {
    let st = Style { color };
    let mut out = String::new();
    for d in &report.diagnostics {
        let gutter = std::iter::once(&d.location)
            .chain(d.related.iter().map(|r| &r.location))
            .filter_map(|l| l.line)
            .max()
            .map_or(1, |l| l.to_string().len());
        let _ =
            writeln!(out, "{}{}: {}", st.severity(d.severity), st.bold(&format!("[{}]", d.code)), st.bold(&d.message));
        snippet(&mut out, &st, &d.location, None, report, gutter);
        for r in &d.related {
            let _ =
                writeln!(out, "{} {} {}", " ".repeat(gutter), st.blue("="), st.bold(&format!("note: {}", r.message)));
            snippet(&mut out, &st, &r.location, None, report, gutter);
        }
        if let Some(h) = &d.help {
            let _ =
                writeln!(out, "{} {} {}", " ".repeat(gutter), st.blue("="), format_args!("{}: {h}", st.bold("help")));
        }
        out.push('\n');
    }
    let (e, w, i) = (report.count(Severity::Error), report.count(Severity::Warning), report.count(Severity::Info));
    let files = report.files.len();
    let plural = |n: usize, s: &str| format!("{n} {s}{}", if n == 1 { "" } else { "s" });
    if e + w + i == 0 {
        let _ = writeln!(out, "{}: no problems found", plural(files, "file"));
    } else {
        let _ = writeln!(
            out,
            "{}: {}, {}, {}",
            plural(files, "file"),
            plural(e, "error"),
            plural(w, "warning"),
            plural(i, "note")
        );
    }
    out
}

/// One JSON object: the counts and every finding.
pub fn json(report: &Report) -> Value {
    json!({
        "version": 1,
        "files": report.files,
        "summary": {
            "errors": report.count(Severity::Error),
            "warnings": report.count(Severity::Warning),
            "info": report.count(Severity::Info),
        },
        "diagnostics": report.diagnostics,
    })
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// A file path as a SARIF `uri`: relative paths stay relative (viewers resolve them
/// against the repository root), absolute ones become `file://` URIs.
pub fn uri(path: &std::path::Path) -> String {
    let s = path.to_string_lossy();
    let s = s.strip_prefix("./").unwrap_or(&s);
    let mut enc = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b'+' | b'@' | b'=' | b',' => {
                enc.push(b as char)
            }
            other => {
                let _ = write!(enc, "%{other:02X}");
            }
        }
    }
    if path.is_absolute() {
        format!("file://{enc}")
    } else {
        enc
    }
}

fn physical(loc: &Location) -> Value {
    let mut p = json!({ "artifactLocation": { "uri": uri(&loc.file) } });
    if let Some(line) = loc.line {
        p["region"] = json!({ "startLine": line, "startColumn": loc.column.unwrap_or(1) });
    }
    p
}

fn sarif_result(d: &Diagnostic) -> Value {
    let mut text = d.message.clone();
    if let Some(h) = &d.help {
        text.push_str("\nhelp: ");
        text.push_str(h);
    }
    let mut r = json!({
        "ruleId": d.code,
        "ruleIndex": RULES.iter().position(|r| r.code == d.code).unwrap_or(0),
        "level": level(d.severity),
        "message": { "text": text },
        "locations": [ { "physicalLocation": physical(&d.location) } ],
    });
    if let Some(path) = &d.location.path {
        r["properties"] = json!({ "yamlPath": path });
    }
    if !d.related.is_empty() {
        let related: Vec<Value> = d
            .related
            .iter()
            .enumerate()
            .map(|(i, rel)| json!({ "id": i, "physicalLocation": physical(&rel.location), "message": { "text": rel.message } }))
            .collect();
        r["relatedLocations"] = Value::Array(related);
    }
    r
}

/// SARIF 2.1.0: one run, every rule in the driver, one result per finding.
pub fn sarif(report: &Report) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.code,
                "name": r.name,
                "shortDescription": { "text": r.summary },
                "fullDescription": { "text": r.summary },
                "defaultConfiguration": { "level": level(r.severity) },
                "help": { "text": format!("See docs/lint.md, {} {}", r.code, r.name) },
            })
        })
        .collect();
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "hardrun",
                    "version": env!("CARGO_PKG_VERSION"),
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": report.diagnostics.iter().map(sarif_result).collect::<Vec<_>>(),
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carets_cover_the_token() {
        assert_eq!(token_len("    allw: [a]", 5), 4);
        assert_eq!(token_len("  allow: [CAP_FOO, B]", 11), 7);
        assert_eq!(token_len("  x: \"a b\"", 6), 5);
        assert_eq!(token_len("", 1), 1);
    }

    #[test]
    fn uris() {
        assert_eq!(uri(std::path::Path::new("./policies/a b.yaml")), "policies/a%20b.yaml");
        assert_eq!(uri(std::path::Path::new("/etc/hardrun/p.yaml")), "file:///etc/hardrun/p.yaml");
    }
}
