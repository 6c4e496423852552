//! Replays the fuzz seeds and every saved crash input (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/`) through the functions the fuzz targets call, on the
//! stable toolchain: a crash the fuzzer found stays fixed.

use std::path::{Path, PathBuf};

type Entry = fn(&[u8]);

const TARGETS: &[(&str, Entry)] = &[
    ("argv", hardrun::fuzz_entry::argv),
    ("policy", hardrun::fuzz_entry::policy),
    ("spec_patch", hardrun::fuzz_entry::spec_patch),
    ("seccomp_profile", hardrun::fuzz_entry::seccomp_profile),
    ("audit_log", hardrun::fuzz_entry::audit_log),
    ("verifier_reply", hardrun::fuzz_entry::verifier_reply),
];

fn inputs(target: &str) -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(rd) = std::fs::read_dir(fuzz.join(kind).join(target)) else { continue };
        out.extend(rd.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
    }
    out.sort();
    out
}

#[test]
fn every_target_has_seeds() {
    for (target, _) in TARGETS {
        assert!(!inputs(target).is_empty(), "fuzz/seeds/{target} is empty");
    }
}

#[test]
fn saved_inputs_do_not_panic() {
    for (target, entry) in TARGETS {
        for path in inputs(target) {
            let data = std::fs::read(&path).unwrap();
            if std::panic::catch_unwind(|| entry(&data)).is_err() {
                panic!("fuzz target {target} panics on {}", path.display());
            }
        }
    }
}

/// The spec_patch invariant is not vacuous: the seed is a spec the baseline changes,
/// and mangled variants of it (truncations) never panic either.
#[test]
fn truncated_seeds_do_not_panic() {
    for (target, entry) in TARGETS {
        for path in inputs(target) {
            let data = std::fs::read(&path).unwrap();
            for cut in (0..data.len()).step_by((data.len() / 64).max(1)) {
                entry(&data[..cut]);
            }
        }
    }
}
