//! The digest containerd runs for a container, from containerd's API over its socket:
//! containers.Get(id) gives the image name, images.Get(name) that image's target
//! digest (a manifest, or an index). The namespace is the last element of runc's
//! `--root`, as the shim sets it. Bounded by a timeout; any failure is reported, and
//! the create path then falls back to a digest the reference pins (or denies).

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_client::services::v1::{GetContainerRequest, GetImageRequest};
use containerd_client::tonic::Request;
use containerd_client::{with_namespace, Client};

use super::gate::DigestResolver;

/// The whole exchange (connect and two calls) may take this long.
pub const CONTAINERD_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Containerd {
    socket: PathBuf,
}

impl Containerd {
    pub fn new(socket: &Path) -> Self {
        Containerd { socket: socket.to_owned() }
    }

    async fn ask(&self, namespace: &str, id: &str) -> Result<(String, String), String> {
        let client = Client::from_path(&self.socket).await.map_err(|e| format!("connect: {e}"))?;
        let container = client
            .containers()
            .get(with_namespace!(GetContainerRequest { id: id.to_owned() }, namespace))
            .await
            .map_err(|e| format!("containers.Get({id}): {}", e.message()))?
            .into_inner()
            .container
            .ok_or("containers.Get: no container")?;
        if container.image.is_empty() {
            return Err(format!("container {id} has no image"));
        }
        let image = client
            .images()
            .get(with_namespace!(GetImageRequest { name: container.image.clone() }, namespace))
            .await
            .map_err(|e| format!("images.Get({}): {}", container.image, e.message()))?
            .into_inner()
            .image
            .ok_or("images.Get: no image")?;
        let digest = image.target.map(|t| t.digest).filter(|d| !d.is_empty()).ok_or("image has no target digest")?;
        Ok((container.image, digest))
    }
}

impl DigestResolver for Containerd {
    fn resolve(&self, namespace: &str, id: &str) -> Result<(String, String), String> {
        // No socket: plain runc use; say so without spinning up a runtime.
        if !self.socket.exists() {
            return Err(format!("no containerd socket at {}", self.socket.display()));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("async runtime: {e}"))?;
        rt.block_on(async {
            tokio::time::timeout(CONTAINERD_TIMEOUT, self.ask(namespace, id))
                .await
                .map_err(|_| format!("containerd did not answer within {} s", CONTAINERD_TIMEOUT.as_secs()))?
        })
        .map_err(|e| format!("containerd at {}: {e}", self.socket.display()))
    }
}
