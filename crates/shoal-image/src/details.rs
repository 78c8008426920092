//! What `docker image inspect` and `docker history` show of a stored image, read from its
//! config and the store's index. Blocking (reads the config blob).

use shoal_runtime::RuntimeError;
use shoal_runtime::catalog::{ImageDetails, ImageHistoryEntry};

use crate::config::parse_time;
use crate::store::{Index, Store};

fn not_found(id: &str) -> RuntimeError {
    RuntimeError::ImageNotFound(id.to_string())
}

/// The image `id` (already looked up) in detail. `storage_driver` is the driver's to fill.
pub fn details(store: &Store, index: &Index, id: &str) -> Result<ImageDetails, RuntimeError> {
    let info = store.info(index, id).ok_or_else(|| not_found(id))?;
    let rec = index.images.get(id).ok_or_else(|| not_found(id))?;
    let config = store.read_config(id)?;
    let mut exposed_ports = config
        .oci
        .config()
        .as_ref()
        .and_then(|c| c.exposed_ports().clone())
        .unwrap_or_default();
    exposed_ports.sort();
    Ok(ImageDetails {
        info,
        // Loads and pulls bring no parent chain; only local builds would record one.
        parent: String::new(),
        comment: config.comment.clone(),
        author: config.oci.author().clone().unwrap_or_default(),
        docker_version: config.docker_version.clone(),
        architecture: config.oci.architecture().to_string(),
        variant: config.oci.variant().clone().unwrap_or_default(),
        os: config.oci.os().to_string(),
        config: config.image_config(),
        exposed_ports,
        layers: rec.layers.clone(),
        last_tag_time: rec.last_tagged,
        storage_driver: String::new(),
    })
}

/// The image's build steps, newest first, as Docker's history shows an image it did not build:
/// the newest step carries the image's ID and tags, the others are `<missing>`; a step that
/// made a layer has that layer's size. A config whose steps name more layers than the image
/// has is refused.
pub fn history(
    store: &Store,
    index: &Index,
    id: &str,
) -> Result<Vec<ImageHistoryEntry>, RuntimeError> {
    let info = store.info(index, id).ok_or_else(|| not_found(id))?;
    let rec = index.images.get(id).ok_or_else(|| not_found(id))?;
    let config = store.read_config(id)?;
    let mut layers = rec.layers.iter();
    let mut out = Vec::new();
    for step in config.oci.history().iter().flatten() {
        let size = if step.empty_layer().unwrap_or(false) {
            0
        } else {
            let layer = layers.next().ok_or_else(|| {
                RuntimeError::InvalidImage(format!(
                    "{id}: its config's history names more layers than its rootfs has"
                ))
            })?;
            store.layer_size(layer)
        };
        out.push(ImageHistoryEntry {
            id: "<missing>".into(),
            created: parse_time(step.created().as_deref()),
            created_by: step.created_by().clone().unwrap_or_default(),
            tags: Vec::new(),
            size,
            comment: step.comment().clone().unwrap_or_default(),
        });
    }
    out.reverse();
    if let Some(top) = out.first_mut() {
        top.id = id.to_string();
        top.tags = info.repo_tags;
    }
    Ok(out)
}
