//! The seam between the native runtime and the node's image store: the driver asks the store
//! for an image's unpacked layers and config, and passes the operator's image commands through.
//! The store lives in its own crate (`shoal-image`); tests may use any implementation. Also what
//! the reserved `host` image is, which needs no store and which the routing driver keeps native.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use shoal_types::Timestamp;
use shoal_types::container::HealthConfig;

use crate::catalog::{ImageDetails, ImageHistoryEntry};
use crate::{ImageInfo, RuntimeError};

/// Whether the image is the reserved `host` image, with any tag (the docker CLI adds `:latest`).
pub fn is_host_image(image: &str) -> bool {
    shoal_types::image_ref::ImageRef::parse(image).is_ok_and(|r| r.is_host())
}

/// What an image's config says about running it (the OCI image config's `config` object).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=VALUE`, in order; the spec's env is applied over it.
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub stop_signal: String,
    pub healthcheck: Option<HealthConfig>,
    /// Paths the image declares as volumes (`VOLUME`).
    pub volumes: Vec<String>,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// An image ready to become a task's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// `sha256:<hex>` of its config.
    pub id: String,
    /// Unpacked layer directories, lowest first, in overlayfs format (whiteouts as 0/0
    /// character devices, opaque directories marked with `trusted.overlay.opaque=y`).
    pub layers: Vec<PathBuf>,
    pub config: ImageConfig,
}

#[async_trait]
pub trait ImageStore: Send + Sync + 'static {
    /// The image `reference` names (`busybox`, `busybox:1.36`, `reg:5000/app@sha256:...`, or an
    /// image ID or its prefix). With `pull`, a reference not in the store is pulled first.
    /// A missing image is [`RuntimeError::ImageNotFound`].
    async fn resolve(&self, reference: &str, pull: bool) -> Result<ResolvedImage, RuntimeError>;

    async fn list(&self) -> Result<Vec<ImageInfo>, RuntimeError>;

    /// See [`crate::RuntimeDriver::load_image`].
    async fn load(&self, archive: &Path) -> Result<Vec<String>, RuntimeError>;

    async fn pull(&self, reference: &str) -> Result<ImageInfo, RuntimeError>;

    /// See [`crate::RuntimeDriver::remove_image`]; `in_use` names the image IDs tasks use now.
    async fn remove(
        &self,
        reference: &str,
        force: bool,
        in_use: &[String],
    ) -> Result<Vec<String>, RuntimeError>;

    // What an engine serves of images beyond running them. Stores that only serve tasks (test
    // stores) may leave them out.

    /// See [`crate::RuntimeDriver::inspect_image`]; `storage_driver` is left to the driver.
    async fn inspect(&self, _reference: &str) -> Result<ImageDetails, RuntimeError> {
        Err(RuntimeError::Unsupported {
            runtime: "native",
            what: "inspecting images in this image store",
        })
    }

    /// See [`crate::RuntimeDriver::image_history`].
    async fn history(&self, _reference: &str) -> Result<Vec<ImageHistoryEntry>, RuntimeError> {
        Err(RuntimeError::Unsupported {
            runtime: "native",
            what: "image history in this image store",
        })
    }

    /// See [`crate::RuntimeDriver::tag_image`]; `now` becomes the image's last tag time.
    async fn tag(&self, _source: &str, _target: &str, _now: Timestamp) -> Result<(), RuntimeError> {
        Err(RuntimeError::Unsupported {
            runtime: "native",
            what: "tagging images in this image store",
        })
    }

    /// See [`crate::RuntimeDriver::save_images`].
    async fn save(&self, _references: &[String], _archive: &Path) -> Result<(), RuntimeError> {
        Err(RuntimeError::Unsupported {
            runtime: "native",
            what: "saving images from this image store",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_image_names() {
        assert!(is_host_image("host"));
        assert!(is_host_image("host:latest"));
        assert!(is_host_image("host:v2"));
        assert!(!is_host_image("host:"));
        assert!(!is_host_image("busybox"));
        assert!(!is_host_image("hostile"));
        assert!(is_host_image("docker.io/library/host:latest"));
        assert!(!is_host_image("user/host"));
        assert!(!is_host_image("Host"));
    }
}
