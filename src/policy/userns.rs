//! `userNamespace:` in a policy (docs/userns.md): run containers in a user namespace
//! whose IDs come from a per-pod block of the node's host range.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::merge::Strictness;
use crate::strictness_by_fields;

/// Whether containers get a user namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UsernsMode {
    /// Not asked for: containers keep the host's user namespace.
    #[default]
    Off,
    /// One user namespace (and one block of host IDs) per pod; a container outside
    /// any pod gets its own.
    Pod,
}

/// How the image's files, owned by host root, become usable by the mapped root.
/// Ordered from least to most strict: `chown` rewrites the rootfs's owners on the
/// host, `idmap` leaves the host's files alone, `read-only` grants no write at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RootfsStrategy {
    /// Shift the rootfs's ownership into the pod's range before runc starts.
    Chown,
    /// An idmapped rootfs mount (needs a runtime that supports idmapped mounts).
    Idmap,
    /// Change nothing: image files stay owned by host root (`nobody` inside), so
    /// the container cannot write them.
    ReadOnly,
}

/// What to do with a container that shares the host's network or pid namespace,
/// where a user namespace cannot be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnHostNamespace {
    /// Start it without a user namespace (recorded).
    Skip,
    /// Refuse it.
    Deny,
}

/// What happens to a pod's `emptyDir` volumes (bind mounts from the kubelet's
/// directory for this pod). Ordered from least to most strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmptyDirStrategy {
    /// Shift their ownership into the pod's range, like `rootfs: chown`.
    Chown,
    /// Leave them as the kubelet made them.
    Leave,
}

/// `userNamespace:` in a policy. Absent fields are the merge identity: `rootfs`
/// means `read-only` and `onHostNamespace` means `deny` when no policy says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserNamespaceSettings {
    #[serde(default)]
    pub mode: UsernsMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<RootfsStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_host_namespace: Option<OnHostNamespace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dirs: Option<EmptyDirStrategy>,
}

impl UserNamespaceSettings {
    pub fn rootfs(&self) -> RootfsStrategy {
        self.rootfs.unwrap_or(RootfsStrategy::ReadOnly)
    }
    pub fn on_host_namespace(&self) -> OnHostNamespace {
        self.on_host_namespace.unwrap_or(OnHostNamespace::Deny)
    }
    pub fn empty_dirs(&self) -> EmptyDirStrategy {
        self.empty_dirs.unwrap_or(EmptyDirStrategy::Leave)
    }
}

macro_rules! max_order {
    ($($ty:ty),+) => {$(
        impl Strictness for $ty {
            fn stricter(self, other: Self) -> Self {
                self.max(other)
            }
            fn at_least_as_strict_as(&self, other: &Self) -> bool {
                self >= other
            }
        }
    )+};
}

// `Option`'s order puts `None` (not said) below every value, which is the identity.
max_order!(UsernsMode, Option<RootfsStrategy>, Option<OnHostNamespace>, Option<EmptyDirStrategy>);

strictness_by_fields!(UserNamespaceSettings { mode, rootfs, on_host_namespace, empty_dirs });

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_settings() -> impl Strategy<Value = UserNamespaceSettings> {
        let mode = prop_oneof![Just(UsernsMode::Off), Just(UsernsMode::Pod)];
        let rootfs = prop_oneof![
            Just(None),
            Just(Some(RootfsStrategy::Chown)),
            Just(Some(RootfsStrategy::Idmap)),
            Just(Some(RootfsStrategy::ReadOnly))
        ];
        let host = prop_oneof![Just(None), Just(Some(OnHostNamespace::Skip)), Just(Some(OnHostNamespace::Deny))];
        let dirs = prop_oneof![Just(None), Just(Some(EmptyDirStrategy::Chown)), Just(Some(EmptyDirStrategy::Leave))];
        (mode, rootfs, host, dirs).prop_map(|(mode, rootfs, on_host_namespace, empty_dirs)| UserNamespaceSettings {
            mode,
            rootfs,
            on_host_namespace,
            empty_dirs,
        })
    }

    proptest! {
        #[test]
        fn merge_laws(a in any_settings(), b in any_settings()) {
            prop_assert_eq!(a.clone().stricter(b.clone()), b.clone().stricter(a.clone()));
            prop_assert!(a.clone().stricter(b.clone()).at_least_as_strict_as(&a));
            prop_assert_eq!(a.clone().stricter(a.clone()), a.clone());
            prop_assert!(a.clone().stricter(UserNamespaceSettings::default()) == a);
        }
    }

    #[test]
    fn pod_and_strict_choices_win() {
        let pod_chown = UserNamespaceSettings {
            mode: UsernsMode::Pod,
            rootfs: Some(RootfsStrategy::Chown),
            on_host_namespace: Some(OnHostNamespace::Skip),
            empty_dirs: Some(EmptyDirStrategy::Chown),
        };
        let off_ro = UserNamespaceSettings { rootfs: Some(RootfsStrategy::ReadOnly), ..Default::default() };
        let m = pod_chown.stricter(off_ro);
        assert_eq!(m.mode, UsernsMode::Pod);
        assert_eq!(m.rootfs(), RootfsStrategy::ReadOnly);
        assert_eq!(m.on_host_namespace(), OnHostNamespace::Skip);
        assert_eq!(m.empty_dirs(), EmptyDirStrategy::Chown);
        assert_eq!(UserNamespaceSettings::default().empty_dirs(), EmptyDirStrategy::Leave);
        assert_eq!(UserNamespaceSettings::default().on_host_namespace(), OnHostNamespace::Deny);
        let y: UserNamespaceSettings =
            serde_yaml::from_str("{mode: pod, rootfs: read-only, onHostNamespace: skip}").unwrap();
        assert_eq!(y.rootfs, Some(RootfsStrategy::ReadOnly));
        assert!(serde_yaml::from_str::<UserNamespaceSettings>("{mode: pods}").is_err());
        assert!(serde_yaml::from_str::<UserNamespaceSettings>("{mode: pod, rootFS: chown}").is_err());
    }
}
