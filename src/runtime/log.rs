//! Error lines in runc's `--log` file, the channel containerd reads a create failure
//! from (its last `error` line becomes the "OCI runtime create failed: …" message).
//! Without `--log`, runc logs to stderr, and so does hardrun.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use serde::Serialize;

use super::argv::GlobalFlags;

/// Where runc would write its log, in the format it would use.
#[derive(Debug, Clone)]
pub struct RuncLog {
    path: Option<PathBuf>,
    json: bool,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    level: &'a str,
    msg: &'a str,
    time: &'a str,
}

impl RuncLog {
    pub fn from_flags(g: &GlobalFlags) -> Self {
        RuncLog { path: g.log.clone(), json: g.log_is_json() }
    }

    /// Formats one line the way runc's logrus formatter does.
    pub fn format(&self, level: &str, msg: &str) -> String {
        let time = crate::timefmt::now_rfc3339_seconds();
        if self.json {
            let mut line = serde_json::to_string(&JsonLine { level, msg, time: &time })
                .unwrap_or_else(|_| String::from(r#"{"level":"error","msg":"hardrun: unprintable message"}"#));
            line.push('\n');
            line
        } else {
            // logrus quotes values that contain spaces or quotes, with Go escaping.
            format!("time=\"{time}\" level={level} msg={}\n", serde_json::Value::from(msg))
        }
    }

    /// Appends an error line. Failures to log are ignored on purpose: the caller is
    /// already failing the command, and stdout must stay untouched.
    pub fn error(&self, msg: &str) {
        self.write_line(&self.format("error", msg));
    }

    /// A warning line (containerd ignores it; operators see it).
    pub fn warning(&self, msg: &str) {
        self.write_line(&self.format("warning", msg));
    }

    fn write_line(&self, line: &str) {
        match &self.path {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o644)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(path);
                if let Ok(mut f) = file {
                    let _ = f.write_all(line.as_bytes());
                }
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_shape() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("log.json");
        let log = RuncLog { path: Some(path.clone()), json: true };
        log.error("hardrun: denied \"x\"");
        log.error("second");
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["level"], "error");
        assert_eq!(lines[0]["msg"], "hardrun: denied \"x\"");
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn text_line_shape() {
        let log = RuncLog { path: None, json: false };
        let line = log.format("error", "a b");
        assert!(line.starts_with("time=\"") && line.ends_with("level=error msg=\"a b\"\n"), "{line}");
    }
}
