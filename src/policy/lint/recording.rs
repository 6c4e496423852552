//! HR023: a Recording whose containers an enforce-mode policy also selects. Recording
//! replaces the container's seccomp filter with one that allows every call, so where
//! a policy enforces, a Recording weakens it; the lint names each such pair.

use super::overlap::selectors_overlap;
use super::{Diagnostic, Location, RECORDING_IN_ENFORCE};
use crate::policy::{Mode, PolicySet};

pub fn check(set: &PolicySet, out: &mut Vec<Diagnostic>) {
    for r in &set.recordings {
        let enforcing: Vec<&str> = set
            .policies
            .iter()
            .filter(|p| p.spec.mode == Mode::Enforce && selectors_overlap(&r.spec.selector, &p.spec.selector))
            .map(|p| p.name.as_str())
            .collect();
        if enforcing.is_empty() {
            continue;
        }
        out.push(
            Diagnostic::new(
                RECORDING_IN_ENFORCE,
                format!(
                    "Recording `{}` can select containers that enforce-mode policies also select ({}): while \
                     recording, their seccomp filter allows every call",
                    r.name,
                    enforcing.join(", ")
                ),
                Location::node(&r.source, &r.name, "/spec/match"),
            )
            .help("record in a namespace whose policies are in audit mode, then enforce the recorded profile"),
        );
    }
}
