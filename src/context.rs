//! Who a container is: the facts selectors match on, from the CRI annotations in
//! its spec and from how hardrun was invoked.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub const ANN_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
pub const ANN_SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
pub const ANN_SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
pub const ANN_SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
pub const ANN_SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
pub const ANN_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
pub const ANN_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";

/// A pod's sandbox (pause) container, or any other container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerType {
    Sandbox,
    Container,
}

/// The selector-visible facts about one container. `None`: not known (for example a
/// plain `runc run` has no Kubernetes namespace).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    pub container_type: Option<ContainerType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_class: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containerd_namespace: Option<String>,
}

impl ContainerContext {
    /// Builds the context from a spec's annotations and the invocation.
    ///
    /// A container without the CRI container-type annotation is a `container`: only
    /// the CRI plugin creates pod sandboxes.
    pub fn from_parts(
        annotations: &BTreeMap<String, String>,
        container_id: Option<&str>,
        runtime_class: Option<&str>,
        runc_root: Option<&Path>,
    ) -> Self {
        let ann = |k: &str| annotations.get(k).filter(|v| !v.is_empty()).cloned();
        let container_type = match annotations.get(ANN_CONTAINER_TYPE).map(String::as_str) {
            Some("sandbox") => ContainerType::Sandbox,
            _ => ContainerType::Container,
        };
        ContainerContext {
            container_id: container_id.map(str::to_owned),
            container_type: Some(container_type),
            namespace: ann(ANN_SANDBOX_NAMESPACE),
            pod_name: ann(ANN_SANDBOX_NAME),
            pod_uid: ann(ANN_SANDBOX_UID),
            container_name: ann(ANN_CONTAINER_NAME),
            sandbox_id: ann(ANN_SANDBOX_ID),
            image: ann(ANN_IMAGE_NAME),
            runtime_class: runtime_class.map(str::to_owned),
            containerd_namespace: runc_root.and_then(containerd_namespace),
        }
    }
}

/// containerd runs runc with `--root <runc root>/<namespace>`: the last element.
pub fn containerd_namespace(root: &Path) -> Option<String> {
    root.file_name().and_then(|n| n.to_str()).filter(|n| !n.is_empty()).map(str::to_owned)
}

/// `hardrun-<class>` (a symlink's name in argv[0]) selects runtime class `<class>`.
pub fn runtime_class_from_argv0(argv0: &str) -> Option<String> {
    let name = Path::new(argv0).file_name()?.to_str()?;
    name.strip_prefix("hardrun-").filter(|c| !c.is_empty()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_annotations() {
        let ann: BTreeMap<String, String> = [
            (ANN_CONTAINER_TYPE, "container"),
            (ANN_SANDBOX_NAMESPACE, "team-a"),
            (ANN_SANDBOX_NAME, "web-1"),
            (ANN_CONTAINER_NAME, "app"),
            (ANN_IMAGE_NAME, "docker.io/library/busybox:1.36"),
            (ANN_SANDBOX_ID, "abc"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let c = ContainerContext::from_parts(
            &ann,
            Some("id1"),
            Some("gpu"),
            Some(Path::new("/run/containerd/runc/k8s.io")),
        );
        assert_eq!(c.namespace.as_deref(), Some("team-a"));
        assert_eq!(c.container_type, Some(ContainerType::Container));
        assert_eq!(c.containerd_namespace.as_deref(), Some("k8s.io"));
        assert_eq!(c.runtime_class.as_deref(), Some("gpu"));
    }

    #[test]
    fn plain_runc_container() {
        let c = ContainerContext::from_parts(&BTreeMap::new(), None, None, None);
        assert_eq!(c.container_type, Some(ContainerType::Container));
        assert!(c.namespace.is_none() && c.containerd_namespace.is_none());
    }

    #[test]
    fn runtime_class_names() {
        assert_eq!(runtime_class_from_argv0("/usr/local/bin/hardrun-gpu").as_deref(), Some("gpu"));
        assert_eq!(runtime_class_from_argv0("hardrun"), None);
        assert_eq!(runtime_class_from_argv0("hardrun-"), None);
        assert_eq!(runtime_class_from_argv0("runc"), None);
    }
}
