//! Entry points for the fuzz targets in `fuzz/` and their regression tests
//! (`tests/fuzz_regressions.rs`). Each takes arbitrary bytes, runs one parser the way
//! the runtime does, and panics only when an invariant breaks: a panic here is a bug,
//! an `Err` is the parser doing its job.
//!
//! They live in the library (not in `fuzz/`) so that the stable-toolchain test suite
//! replays every saved crash input through exactly the code the fuzzer ran.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use serde_json::Value;

use crate::context::ContainerContext;
use crate::enforce::seccomp::{docker, Target};
use crate::enforce::Host;
use crate::policy::{load, PolicySet};
use crate::spec::{view, SpecFile};

/// Splits fuzz input at the first `sep` byte: two independent inputs from one.
fn split_at_byte(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// runc's argv: NUL-separated arguments, parsed strictly and leniently.
pub fn argv(data: &[u8]) {
    let args: Vec<OsString> = data.split(|b| *b == 0).map(|a| OsString::from_vec(a.to_vec())).collect();
    let _ = crate::runtime::argv::parse(&args);
    let _ = crate::runtime::argv::lenient_globals(&args);
}

/// A policy file as the loader reads it.
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(docs) = load::parse_documents(Path::new("fuzz.yaml"), text) {
        let _ = crate::policy::lint::check_set(&PolicySet::from(docs), &[]);
    }
}

/// A policy file (before the first NUL) and a config.json (after it), through the
/// whole evaluation: no panic; in enforce mode the result is still a JSON object that
/// keeps every top-level key of the input, known to hardrun or not.
pub fn spec_patch(data: &[u8]) {
    let (policy, spec) = split_at_byte(data, 0);
    let Ok(text) = std::str::from_utf8(policy) else { return };
    let Ok(docs) = load::parse_documents(Path::new("fuzz.yaml"), text) else { return };
    let set = PolicySet::from(docs);
    let Ok(value) = SpecFile::parse(Path::new("config.json"), spec) else { return };
    let context = ContainerContext::from_parts(&view::annotations(&value), Some("fuzz"), None, None);
    let Ok(eval) = crate::pipeline::evaluate(&set, &value, context, &Host::default()) else { return };
    let out = serde_json::to_vec(&eval.result).expect("an evaluated spec serializes");
    let reparsed: Value = serde_json::from_slice(&out).expect("an evaluated spec is valid JSON");
    if let (Some(before), Some(after)) = (value.as_object(), reparsed.as_object()) {
        for key in before.keys() {
            assert!(after.contains_key(key), "evaluation dropped the top-level key {key:?}");
        }
    }
}

/// A Docker/OCI seccomp profile, as `localhost/` policies and spec sections are read.
pub fn seccomp_profile(data: &[u8]) {
    let caps: BTreeSet<String> = ["CAP_CHOWN", "CAP_SYS_ADMIN"].iter().map(|s| s.to_string()).collect();
    let target = Target::host();
    for names in [docker::Names::Strict, docker::Names::Lenient] {
        let reading = docker::Reading { caps: &caps, target: &target, names };
        if let Ok(parsed) = docker::parse_bytes(data, &reading) {
            let _ = crate::enforce::seccomp::emit::emit(&parsed.profile);
        }
    }
}

/// What a sandboxed verifier child sends back (src/sandbox/, src/verify/gate.rs).
pub fn verifier_reply(data: &[u8]) {
    type Outcome = Result<Vec<crate::verify::Signer>, crate::verify::VerifyError>;
    let _ = crate::sandbox::parse_reply::<Outcome>(data, "exit status 0");
}

/// An audit log file: every line through the review parser, and the chain check.
pub fn audit_log(data: &[u8]) {
    let Ok(dir) = tempfile_dir() else { return };
    let path = dir.join("audit.log");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(set) = crate::audit::reader::LogSet::open(std::slice::from_ref(&path)) {
        let mut lines = set.lines();
        while let Ok(Some(line)) = lines.next_line() {
            let _ = crate::audit::review::parse_line(&line);
        }
    }
    if let Ok(set) = crate::audit::reader::LogSet::open(std::slice::from_ref(&path)) {
        let _ = crate::audit::verify::verify(set, Default::default());
    }
}

/// One scratch directory per process, on tmpfs when there is one: the audit reader
/// takes paths, and a fuzzer calls this millions of times.
fn tempfile_dir() -> std::io::Result<&'static Path> {
    static DIR: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() { Path::new("/dev/shm") } else { Path::new("/tmp") };
        let d = base.join(format!("hardrun-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).ok().map(|_| d)
    });
    dir.as_deref().ok_or_else(|| std::io::Error::other("no scratch directory"))
}

#[cfg(test)]
mod tests {
    /// The seeds are real replies: they decode, so the fuzzer starts from valid input.
    #[test]
    fn verifier_reply_seeds_decode() {
        type Outcome = Result<Vec<crate::verify::Signer>, crate::verify::VerifyError>;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/verifier_reply");
        let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
        let (trusted, _) = crate::sandbox::parse_reply::<Outcome>(&read("trusted.json"), "exit status 0").unwrap();
        assert_eq!(trusted.unwrap().len(), 2);
        let (denied, _) = crate::sandbox::parse_reply::<Outcome>(&read("no-signature.json"), "exit status 0").unwrap();
        assert_eq!(denied.unwrap_err().kind(), "no-signature");
        let refused = crate::sandbox::parse_reply::<Outcome>(&read("not-confined.json"), "exit status 0");
        assert!(matches!(refused, Err(crate::sandbox::SandboxError::Confine(_))));
    }
}
