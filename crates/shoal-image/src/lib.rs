//! The native runtime's image store: [`LocalImageStore`] implements the agent's
//! [`ImageStore`] seam over a content-addressed store on disk ([`store`]), fed by `docker save`
//! and OCI archives ([`archive`]) and by registry pulls ([`registry`]), with layers unpacked
//! safely for overlayfs ([`unpack`]); [`rootfs`] turns an image into a task's root filesystem.
//! [`details`] is what inspect and history show of an image, [`save`] writes `docker save`
//! archives from the store.
//!
//! Concurrency: any number of loads, pulls, saves and resolves run at once (each on blocking
//! threads for its disk work); `remove` waits for loads, pulls and saves in flight and holds them
//! off while it collects garbage, so it never deletes a layer a load has unpacked but not yet
//! recorded, nor one a save is writing.

pub mod archive;
pub mod config;
pub mod details;
pub mod digest;
pub mod registry;
pub mod rootfs;
pub mod save;
pub mod store;
pub mod unpack;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use shoal_runtime::ImageInfo;
use shoal_runtime::RuntimeError;
use shoal_runtime::catalog::{ImageDetails, ImageHistoryEntry};
use shoal_runtime::image::{ImageStore, ResolvedImage};
use shoal_types::Timestamp;
use shoal_types::error::Chain;
use shoal_types::image_ref::ImageRef;
use tokio::sync::RwLock;

use crate::config::{ConfigFile, Document, Parsed, descriptor_digest, pick_platform};
use crate::digest::Digest;
use crate::registry::Registry;
use crate::store::{NewImage, Store};

pub struct LocalImageStore {
    store: Arc<Store>,
    registry: Registry,
    /// Read-held by loads and pulls, write-held by removal's garbage collection.
    gc_guard: RwLock<()>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::Io {
            context: "image store worker".into(),
            source: std::io::Error::other(e),
        })?
}

fn parse_ref(reference: &str) -> Result<ImageRef, RuntimeError> {
    ImageRef::parse(reference).map_err(|e| RuntimeError::InvalidSpec {
        field: "image",
        why: e.to_string(),
    })
}

impl LocalImageStore {
    /// Opens the store under `root` (e.g. `<data-dir>/images`). `insecure_registries`
    /// (`host:port`) are pulled from over plain HTTP; loopback registries always are.
    pub fn open(root: &Path, insecure_registries: Vec<String>) -> Result<Self, RuntimeError> {
        Ok(LocalImageStore {
            store: Arc::new(Store::open(root)?),
            registry: Registry::new(insecure_registries)?,
            gc_guard: RwLock::new(()),
        })
    }

    pub fn root(&self) -> PathBuf {
        self.store.root().to_path_buf()
    }

    /// Runs `f` on the image `reference` names (its ID given), on a blocking thread.
    async fn with_image<T: Send + 'static>(
        &self,
        reference: &str,
        f: impl FnOnce(&Store, &store::Index, &str) -> Result<T, RuntimeError> + Send + 'static,
    ) -> Result<T, RuntimeError> {
        let store = self.store.clone();
        let reference = reference.to_string();
        blocking(move || {
            let index = store.read_index()?;
            let Some(id) = store.lookup(&index, &reference)? else {
                return Err(RuntimeError::ImageNotFound(reference));
            };
            f(&store, &index, &id)
        })
        .await
    }

    async fn lookup(&self, reference: &str) -> Result<Option<ResolvedImage>, RuntimeError> {
        let store = self.store.clone();
        let reference = reference.to_string();
        blocking(move || {
            let index = store.read_index()?;
            match store.lookup(&index, &reference)? {
                Some(id) => Ok(Some(store.resolve_id(&index, &id)?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Removes the layers a failed load or pull unpacked before it failed; they were never
    /// visible, and waiting for the write guard keeps other loads' layers safe.
    async fn collect_after_failure(&self) {
        let _g = self.gc_guard.write().await;
        let store = self.store.clone();
        if let Err(e) = blocking(move || store.gc(&[])).await {
            tracing::warn!(error = %Chain(&e), "collecting a failed load's layers");
        }
    }

    async fn pull_inner(&self, r: &ImageRef) -> Result<ImageInfo, RuntimeError> {
        let mut session = self.registry.session(r);
        let (top, top_digest) = session.manifest(r.manifest_ref()).await?;
        let what = format!("{r}: manifest {top_digest}");
        let manifest = match Document::parse(&top, &what)? {
            Parsed::Manifest(m) => m,
            Parsed::Index(index) => {
                let chosen = descriptor_digest(pick_platform(index.manifests(), &what)?, &what)?;
                let (bytes, d) = session.manifest(&chosen.to_string()).await?;
                match Document::parse(&bytes, &format!("{r}: manifest {d}"))? {
                    Parsed::Manifest(m) => m,
                    Parsed::Index(_) => {
                        return Err(RuntimeError::InvalidImage(format!(
                            "{r}: manifest {d}: an index inside an index"
                        )));
                    }
                }
            }
        };
        let layers = manifest.layers();
        let config_digest = descriptor_digest(manifest.config(), &what)?;
        let config = session.small_blob(&config_digest).await?;
        let parsed = ConfigFile::parse(&config, &what)?;
        let diff_ids = parsed.diff_ids();
        if diff_ids.len() != layers.len() {
            return Err(RuntimeError::InvalidImage(format!(
                "{what}: the manifest lists {} layers but the config has {} diff IDs",
                layers.len(),
                diff_ids.len()
            )));
        }
        for (l, diff_id) in layers.iter().zip(&diff_ids) {
            if self.store.has_layer(diff_id) {
                continue;
            }
            let ld = descriptor_digest(l, &what)?;
            let tmp = self.store.temp_dir("pull-")?;
            let file = tmp.path().join("blob");
            session.blob_to_file(&ld, &file).await?;
            let store = self.store.clone();
            let diff_id = diff_id.clone();
            let lwhat = format!("{r}: layer {ld}");
            blocking(move || {
                let f = std::fs::File::open(&file).map_err(|source| RuntimeError::Io {
                    context: format!("reading {}", file.display()),
                    source,
                })?;
                store.install_layer(f, None, &diff_id, &lwhat)?;
                drop(tmp);
                Ok(())
            })
            .await?;
        }
        let mut tags = Vec::new();
        if r.digest().is_none() {
            tags.push(r.clone());
        }
        let repo_digests = vec![format!("{}@{top_digest}", r.name())];
        let store = self.store.clone();
        let config_digest: Digest = config_digest;
        blocking(move || {
            let id = store.commit(&NewImage {
                config,
                config_digest,
                parsed,
                tags,
                repo_digests,
            })?;
            let index = store.read_index()?;
            store
                .info(&index, &id)
                .ok_or_else(|| RuntimeError::ImageNotFound(id.clone()))
        })
        .await
    }
}

#[async_trait]
impl ImageStore for LocalImageStore {
    async fn resolve(&self, reference: &str, pull: bool) -> Result<ResolvedImage, RuntimeError> {
        if let Some(img) = self.lookup(reference).await? {
            return Ok(img);
        }
        if !pull {
            return Err(RuntimeError::ImageNotFound(reference.to_string()));
        }
        let info = self.pull(reference).await?;
        self.lookup(&info.id)
            .await?
            .ok_or_else(|| RuntimeError::ImageNotFound(reference.to_string()))
    }

    async fn list(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        let store = self.store.clone();
        blocking(move || store.list()).await
    }

    async fn load(&self, archive: &Path) -> Result<Vec<String>, RuntimeError> {
        let g = self.gc_guard.read().await;
        let store = self.store.clone();
        let path = archive.to_path_buf();
        let out = blocking(move || archive::load(&store, &path)).await;
        drop(g);
        if let Err(e) = &out {
            tracing::warn!(archive = %archive.display(), error = %Chain(e), "image load failed");
            self.collect_after_failure().await;
        }
        out
    }

    async fn pull(&self, reference: &str) -> Result<ImageInfo, RuntimeError> {
        let r = parse_ref(reference)?;
        let g = self.gc_guard.read().await;
        tracing::info!(image = %r, "pulling");
        let out = self.pull_inner(&r).await;
        drop(g);
        if let Err(e) = &out {
            tracing::warn!(image = %r, error = %Chain(e), "image pull failed");
            self.collect_after_failure().await;
        }
        out
    }

    async fn remove(
        &self,
        reference: &str,
        force: bool,
        in_use: &[String],
    ) -> Result<Vec<String>, RuntimeError> {
        let _g = self.gc_guard.write().await;
        let store = self.store.clone();
        let reference = reference.to_string();
        let in_use = in_use.to_vec();
        blocking(move || store.remove(&reference, force, &in_use)).await
    }

    async fn inspect(&self, reference: &str) -> Result<ImageDetails, RuntimeError> {
        self.with_image(reference, details::details).await
    }

    async fn history(&self, reference: &str) -> Result<Vec<ImageHistoryEntry>, RuntimeError> {
        self.with_image(reference, details::history).await
    }

    async fn tag(&self, source: &str, target: &str, now: Timestamp) -> Result<(), RuntimeError> {
        let target = ImageRef::parse(target).map_err(|e| RuntimeError::InvalidSpec {
            field: "tag",
            why: e.to_string(),
        })?;
        let store = self.store.clone();
        let source = source.to_string();
        blocking(move || store.tag(&source, &target, now).map(|_| ())).await
    }

    async fn save(&self, references: &[String], archive: &Path) -> Result<(), RuntimeError> {
        // Held for the whole save: the layers it reads must not be collected under it.
        let _g = self.gc_guard.read().await;
        let store = self.store.clone();
        let (references, out) = (references.to_vec(), archive.to_path_buf());
        blocking(move || save::save(&store, &references, &out)).await
    }
}
