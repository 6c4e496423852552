//! `kind: Recording`: which containers run in recording mode and where their profile
//! goes. Loaded with the policies (src/policy/load.rs), selected like them.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::context::ContainerContext;
use crate::policy::model::Metadata;
use crate::policy::Selector;

pub const KIND_RECORDING: &str = "Recording";
/// The recorder's default patience with a pending notification, seconds.
pub const DEFAULT_TIMEOUT_SECONDS: u32 = 10;
pub const MAX_TIMEOUT_SECONDS: u32 = 3600;
pub const DEFAULT_CHECKPOINT_SECONDS: u32 = 60;
pub const MAX_CHECKPOINT_SECONDS: u32 = 86_400;

/// A `kind: Recording` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecordingDoc {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: RecordingSpec,
}

/// Which containers are recorded, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecordingSpec {
    /// The containers recorded: the same selector as a policy's.
    #[serde(rename = "match", default)]
    pub selector: Selector,
    /// The profile's name under `stateDir/recordings/` (`<output>.json`, or
    /// `<output>-<container name>.json` when the container has a CRI name).
    pub output: String,
    /// `none`: each run replaces the profile; `containers`: each run is added to it
    /// (replicas and restarts of the container accumulate).
    #[serde(default)]
    pub merge: MergeMode,
    /// When the recorder dies or stops answering: `allow` (hardrun answers every call
    /// with "continue" from then on, unrecorded) or `kill` (the container is killed).
    #[serde(default)]
    pub on_recorder_failure: OnRecorderFailure,
    /// How long a notification may wait for the recorder before it counts as failed.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    /// While the container runs, the profile is also written this often when it has
    /// changed (a service may never end); 0: only at the end.
    #[serde(default = "default_checkpoint")]
    pub checkpoint_seconds: u32,
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_SECONDS
}

fn default_checkpoint() -> u32 {
    DEFAULT_CHECKPOINT_SECONDS
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MergeMode {
    #[default]
    None,
    Containers,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnRecorderFailure {
    Allow,
    /// Fail closed: the default.
    #[default]
    Kill,
}

impl RecordingSpec {
    /// The checks serde cannot make.
    pub fn validate(&self) -> Result<(), String> {
        super::profile::check_name(&self.output).map_err(|e| format!("spec.output: {e}"))?;
        if self.timeout_seconds == 0 || self.timeout_seconds > MAX_TIMEOUT_SECONDS {
            return Err(format!("spec.timeoutSeconds must be 1..={MAX_TIMEOUT_SECONDS}"));
        }
        if self.checkpoint_seconds > MAX_CHECKPOINT_SECONDS {
            return Err(format!("spec.checkpointSeconds must be 0..={MAX_CHECKPOINT_SECONDS}"));
        }
        Ok(())
    }
}

/// A loaded Recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub name: String,
    pub source: PathBuf,
    pub hash: String,
    pub spec: RecordingSpec,
}

/// The Recording that applies to a container: the first by name of those matching
/// (one container has one recorder).
pub fn select<'a>(recordings: &'a [Recording], ctx: &ContainerContext) -> Option<&'a Recording> {
    recordings.iter().filter(|r| r.spec.selector.matches(ctx)).min_by(|a, b| a.name.cmp(&b.name))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::policy::load::{parse_documents, LoadError};

    const HEAD: &str = "apiVersion: hardrun.dev/v1alpha1\nkind: Recording\nmetadata: {name: r}\n";

    fn parse(spec: &str) -> Result<crate::policy::load::Documents, LoadError> {
        parse_documents(Path::new("/p/r.yaml"), &format!("{HEAD}spec:\n{spec}"))
    }

    #[test]
    fn a_recording_loads_with_its_defaults() {
        let docs = parse("  output: web\n").unwrap();
        assert_eq!(docs.recordings.len(), 1);
        let r = &docs.recordings[0];
        assert_eq!(r.name, "r");
        assert_eq!(r.spec.merge, super::MergeMode::None);
        assert_eq!(r.spec.on_recorder_failure, super::OnRecorderFailure::Kill);
        assert_eq!(r.spec.timeout_seconds, super::DEFAULT_TIMEOUT_SECONDS);
        assert!(r.hash.starts_with("sha256:"));
        assert!(docs.policies.is_empty());
    }

    #[test]
    fn invalid_recordings_are_errors() {
        for (spec, want) in [
            ("  output: ../x\n", "invalid recording name"),
            ("  output: web\n  timeoutSeconds: 0\n", "timeoutSeconds"),
            ("  output: web\n  timeoutSeconds: 4000\n", "timeoutSeconds"),
            ("  output: web\n  checkpointSeconds: 100000\n", "checkpointSeconds"),
            ("  output: web\n  merge: pods\n", "unknown variant"),
            ("  output: web\n  onRecorderFailure: ignore\n", "unknown variant"),
            ("  output: web\n  seccomp: {}\n", "unknown field"),
            ("  merge: none\n", "missing field `output`"),
        ] {
            let e = parse(spec).err().unwrap_or_else(|| panic!("{spec} loaded"));
            assert!(e.to_string().contains(want), "{spec}: {e}");
        }
    }

    #[test]
    fn the_first_matching_recording_by_name_applies() {
        let text = format!(
            "{HEAD}spec: {{output: a}}\n---\napiVersion: hardrun.dev/v1alpha1\nkind: Recording\nmetadata: {{name: b}}\n\
             spec: {{output: b, match: {{namespaces: [x]}}}}\n"
        );
        let docs = parse_documents(Path::new("/p/r.yaml"), &text).unwrap();
        let mut ctx = crate::context::ContainerContext {
            container_type: Some(crate::context::ContainerType::Container),
            ..Default::default()
        };
        assert_eq!(super::select(&docs.recordings, &ctx).unwrap().name, "r");
        ctx.container_type = Some(crate::context::ContainerType::Sandbox);
        assert!(super::select(&docs.recordings, &ctx).is_none(), "sandboxes are not recorded by default");
    }
}
