//! The document formats (`apiVersion: hardrun.dev/v1alpha1`: `kind: Policy` and
//! `kind: Exemption`) and the merged settings policies contribute to. Pure data: no
//! effects, no I/O.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::glob::Glob;
use super::merge::{DenyList, Mode, Require, Strictness};
pub use super::settings::*;
use crate::context::{ContainerContext, ContainerType};
use crate::strictness_by_fields;

pub const API_VERSION: &str = "hardrun.dev/v1alpha1";
pub const KIND_POLICY: &str = "Policy";
pub const KIND_EXEMPTION: &str = "Exemption";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// A `kind: Policy` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicyDoc {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: PolicySpec,
}

/// A `kind: Exemption` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExemptionDoc {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: ExemptionSpec,
}

/// What a policy selects and what it asks for. Every control is off unless the
/// policy names it; the shipped policies say everything they do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PolicySpec {
    #[serde(rename = "match", default)]
    pub selector: Selector,
    /// A policy enforces unless it says otherwise.
    #[serde(default = "enforce")]
    pub mode: Mode,
    #[serde(default)]
    pub no_new_privileges: Require,
    #[serde(default)]
    pub capabilities: CapabilitySettings,
    #[serde(default)]
    pub apparmor: AppArmorSettings,
    #[serde(default)]
    pub process: ProcessSettings,
    #[serde(default)]
    pub filesystem: FilesystemSettings,
    #[serde(default)]
    pub namespaces: NamespaceSettings,
    #[serde(default)]
    pub devices: DeviceSettings,
    #[serde(default)]
    pub sysctls: SysctlSettings,
    /// Deny containers shaped like `privileged: true` (all capabilities, writable
    /// /sys, or the host's /dev).
    #[serde(default)]
    pub deny_privileged: Require,
    /// OCI hook definitions (by name, from the node's hook directories) to inject.
    #[serde(default)]
    pub hooks: DenyList<String>,
    /// The seccomp profile and syscall deltas (see docs/seccomp.md).
    #[serde(default)]
    pub seccomp: super::seccomp::SeccompSettings,
    /// A user namespace per pod (see docs/userns.md).
    #[serde(default)]
    pub user_namespace: super::userns::UserNamespaceSettings,
    /// Cosign signatures images must carry (see docs/signatures.md).
    #[serde(default, skip_serializing_if = "super::signature::SignatureSettings::is_empty")]
    pub image_signature: super::signature::SignatureSettings,
}

fn enforce() -> Mode {
    Mode::Enforce
}

impl PolicySpec {
    /// This policy's contribution to the merge.
    pub fn settings(&self) -> Settings {
        Settings {
            mode: self.mode,
            no_new_privileges: self.no_new_privileges,
            capabilities: self.capabilities.clone(),
            apparmor: self.apparmor.clone(),
            process: self.process.clone(),
            filesystem: self.filesystem.clone(),
            namespaces: self.namespaces.clone(),
            devices: self.devices.clone(),
            sysctls: self.sysctls.clone(),
            deny_privileged: self.deny_privileged,
            hooks: self.hooks.clone(),
            seccomp: self.seccomp.clone(),
            user_namespace: self.user_namespace.clone(),
            image_signature: self.image_signature.with_policy_mode(self.mode),
        }
    }
}

/// Which rules an exemption lifts, for which containers, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExemptionSpec {
    #[serde(rename = "match", default)]
    pub selector: Selector,
    /// Rule IDs (globs: `namespaces.host-*`) whose findings are lifted.
    pub rules: Vec<Glob>,
    /// Why: shown in the audit record and by the linter.
    pub reason: String,
}

/// Which containers a policy applies to. Every listed field must match (AND); within
/// a field any entry may match (OR); an empty field matches anything. A field that
/// names values a container does not have (a plain `runc run` has no Kubernetes
/// namespace) does not match it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Selector {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<Glob>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pods: Vec<Glob>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<Glob>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Glob>,
    /// Absent: `[container]`. Pod sandboxes get a fixed minimal hardening unless a
    /// policy names them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_types: Option<Vec<ContainerType>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runtime_classes: Vec<Glob>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub containerd_namespaces: Vec<Glob>,
}

fn field_matches(globs: &[Glob], value: Option<&str>) -> bool {
    globs.is_empty() || value.is_some_and(|v| globs.iter().any(|g| g.matches(v)))
}

impl Selector {
    pub fn matches(&self, ctx: &ContainerContext) -> bool {
        let types = self.container_types.as_deref().unwrap_or(&[ContainerType::Container]);
        ctx.container_type.is_some_and(|t| types.contains(&t))
            && field_matches(&self.namespaces, ctx.namespace.as_deref())
            && field_matches(&self.pods, ctx.pod_name.as_deref())
            && field_matches(&self.containers, ctx.container_name.as_deref())
            && field_matches(&self.images, ctx.image.as_deref())
            && field_matches(&self.runtime_classes, ctx.runtime_class.as_deref())
            && field_matches(&self.containerd_namespaces, ctx.containerd_namespace.as_deref())
    }
}

/// The merged settings for one container: the stricter of every matching policy's
/// value, setting by setting. `Settings::default()` is the identity of the merge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub mode: Mode,
    pub no_new_privileges: Require,
    pub capabilities: CapabilitySettings,
    pub apparmor: AppArmorSettings,
    pub process: ProcessSettings,
    pub filesystem: FilesystemSettings,
    pub namespaces: NamespaceSettings,
    pub devices: DeviceSettings,
    pub sysctls: SysctlSettings,
    pub deny_privileged: Require,
    /// Hooks to inject; merging unions (every matching policy's hooks run).
    pub hooks: DenyList<String>,
    /// Every matching policy's seccomp constraint; the filter is their intersection.
    pub seccomp: super::seccomp::SeccompSettings,
    pub user_namespace: super::userns::UserNamespaceSettings,
    /// Every matching policy's signature requirements; each must pass.
    pub image_signature: super::signature::SignatureSettings,
}

strictness_by_fields!(Settings {
    mode,
    no_new_privileges,
    capabilities,
    apparmor,
    process,
    filesystem,
    namespaces,
    devices,
    sysctls,
    deny_privileged,
    hooks,
    seccomp,
    user_namespace,
    image_signature,
});

impl Settings {
    /// Merges any number of settings (the identity when there are none).
    pub fn merge_all(items: impl IntoIterator<Item = Settings>) -> Settings {
        items.into_iter().fold(Settings::default(), Strictness::stricter)
    }

    /// The fixed hardening of a pod's sandbox (pause) container: it needs no
    /// privilege at all, and nothing here can break it.
    pub fn sandbox_floor() -> Settings {
        Settings {
            mode: Mode::Enforce,
            no_new_privileges: Require(true),
            capabilities: CapabilitySettings { allow: super::AllowList::only([]), ..Default::default() },
            // pause needs a handful of syscalls, all in runtime/default without caps.
            seccomp: super::seccomp::SeccompSettings::single(super::seccomp::SeccompConstraint {
                profile: Some(super::seccomp::ProfileRef::RuntimeDefault),
                deny_syscalls: Default::default(),
                allow_syscalls: Default::default(),
                errno: Default::default(),
                existing: Default::default(),
            }),
            ..Default::default()
        }
    }
}
