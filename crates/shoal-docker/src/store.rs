//! The node's named volumes (those shoal created, by label) and images, through Docker's own
//! volume and image APIs.

use std::collections::BTreeMap;

use bollard::models::ImageSummary;
use bollard::query_parameters::{
    ImportImageOptions, ListContainersOptions, ListImagesOptions, ListVolumesOptions,
    RemoveImageOptions, RemoveVolumeOptions,
};
use futures::StreamExt;
use shoal_runtime::{ImageInfo, RuntimeError, VolumeInfo};
use shoal_types::{Id, Timestamp};
use tokio::io::AsyncReadExt;

use crate::{
    DockerDriver, LABEL_MANAGED, LABEL_TASK_ID, api_err, message_of, parse_time, status_of,
};

/// How much of an image archive is read into memory at once while it streams to Docker.
const LOAD_CHUNK: usize = 1 << 20;

fn image_info(s: ImageSummary) -> ImageInfo {
    ImageInfo {
        id: s.id,
        // Docker before 25 lists untagged images as `<none>:<none>`.
        repo_tags: s
            .repo_tags
            .into_iter()
            .filter(|t| !t.contains("<none>"))
            .collect(),
        repo_digests: s
            .repo_digests
            .into_iter()
            .filter(|t| !t.contains("<none>"))
            .collect(),
        size: u64::try_from(s.size).unwrap_or(0),
        created: Timestamp::from_unix_nanos(s.created.saturating_mul(1_000_000_000)),
    }
}

impl DockerDriver {
    /// Named volume → the tasks (of any shoal daemon on this engine) whose containers use it.
    pub(crate) async fn volume_users(&self) -> Result<BTreeMap<String, Vec<Id>>, RuntimeError> {
        let all = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(
                    [("label".to_string(), vec![format!("{LABEL_MANAGED}=true")])].into(),
                ),
                ..Default::default()
            }))
            .await
            .map_err(|e| api_err("listing containers", e))?;
        let mut users: BTreeMap<String, Vec<Id>> = BTreeMap::new();
        for c in all {
            let Some(task) = c.labels.as_ref().and_then(|l| l.get(LABEL_TASK_ID)) else {
                continue;
            };
            for m in c.mounts.unwrap_or_default() {
                if let Some(name) = m.name.filter(|n| !n.is_empty()) {
                    users
                        .entry(name)
                        .or_default()
                        .push(Id::from_raw(task.clone()));
                }
            }
        }
        Ok(users)
    }

    pub(crate) async fn list_volumes(&self) -> Result<Vec<VolumeInfo>, RuntimeError> {
        // Volumes are the engine's, not one daemon's: every volume shoal made is listed.
        let listed = self
            .docker
            .list_volumes(Some(ListVolumesOptions {
                filters: Some(
                    [("label".to_string(), vec![format!("{LABEL_MANAGED}=true")])].into(),
                ),
            }))
            .await
            .map_err(|e| api_err("listing volumes", e))?;
        let users = self.volume_users().await?;
        let mut out: Vec<VolumeInfo> = listed
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| VolumeInfo {
                in_use_by: users.get(&v.name).cloned().unwrap_or_default(),
                created_at: parse_time(v.created_at.as_deref().unwrap_or("")),
                labels: v.labels.into_iter().collect(),
                options: v.options.into_iter().collect(),
                mountpoint: v.mountpoint,
                name: v.name,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub(crate) async fn delete_volume(&self, name: &str, force: bool) -> Result<(), RuntimeError> {
        let ours = self.list_volumes().await?;
        let Some(v) = ours.into_iter().find(|v| v.name == name) else {
            return Err(RuntimeError::VolumeNotFound(name.to_string()));
        };
        if let Some(task) = v.in_use_by.first() {
            if !force {
                return Err(RuntimeError::VolumeInUse {
                    name: name.to_string(),
                    task: task.clone(),
                });
            }
            // Forced: the containers that hold it go first, as Docker will not free it otherwise.
            for t in &v.in_use_by {
                if let Ok(c) = self.container_of(t).await {
                    let _ = self
                        .docker
                        .remove_container(
                            &c,
                            Some(bollard::query_parameters::RemoveContainerOptions {
                                v: true,
                                force: true,
                                link: false,
                            }),
                        )
                        .await;
                    self.cache().remove(t);
                }
                // A task forced off its volume is gone for good: its sandbox goes with it.
                if let Err(e) = self.remove_sandbox(t).await {
                    tracing::warn!(task.id = %t, error = %shoal_types::error::Chain(&e), "docker runtime: removing the network sandbox of a task forced off its volume");
                }
            }
        }
        match self
            .docker
            .remove_volume(name, Some(RemoveVolumeOptions { force }))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Err(RuntimeError::VolumeNotFound(name.into())),
            Err(e) if status_of(&e) == Some(409) => Err(RuntimeError::VolumeInUse {
                name: name.into(),
                task: v
                    .in_use_by
                    .first()
                    .cloned()
                    .unwrap_or_else(|| Id::from_raw("")),
            }),
            Err(e) => Err(api_err(format!("removing volume {name}"), e)),
        }
    }

    pub(crate) async fn list_images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        let listed = self
            .docker
            .list_images(Some(ListImagesOptions {
                digests: true,
                ..Default::default()
            }))
            .await
            .map_err(|e| api_err("listing images", e))?;
        Ok(listed.into_iter().map(image_info).collect())
    }

    pub(crate) async fn image_info(&self, reference: &str) -> Result<ImageInfo, RuntimeError> {
        let i = match self.docker.inspect_image(reference).await {
            Ok(i) => i,
            Err(e) if status_of(&e) == Some(404) => {
                return Err(RuntimeError::ImageNotFound(reference.to_string()));
            }
            Err(e) => return Err(api_err(format!("inspecting image {reference}"), e)),
        };
        Ok(ImageInfo {
            id: i.id.unwrap_or_default(),
            repo_tags: i.repo_tags.unwrap_or_default(),
            repo_digests: i.repo_digests.unwrap_or_default(),
            size: i.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            created: parse_time(i.created.as_deref().unwrap_or("")),
        })
    }

    pub(crate) async fn delete_image(
        &self,
        reference: &str,
        force: bool,
    ) -> Result<Vec<String>, RuntimeError> {
        let res = self
            .docker
            .remove_image(
                reference,
                Some(RemoveImageOptions {
                    force,
                    noprune: false,
                    platforms: None,
                }),
                None,
            )
            .await;
        match res {
            Ok(items) => Ok(items
                .into_iter()
                .flat_map(|i| {
                    i.untagged
                        .map(|u| format!("Untagged: {u}"))
                        .into_iter()
                        .chain(i.deleted.map(|d| format!("Deleted: {d}")))
                })
                .collect()),
            Err(e) if status_of(&e) == Some(404) => {
                Err(RuntimeError::ImageNotFound(reference.to_string()))
            }
            Err(e) if status_of(&e) == Some(409) => Err(RuntimeError::Conflict(message_of(&e))),
            Err(e) => Err(api_err(format!("removing image {reference}"), e)),
        }
    }

    /// Streams the archive to Docker's load endpoint; the references Docker reports loading.
    pub(crate) async fn load(
        &self,
        archive: &std::path::Path,
    ) -> Result<Vec<String>, RuntimeError> {
        let file = tokio::fs::File::open(archive)
            .await
            .map_err(|e| RuntimeError::Io {
                context: format!("opening {}", archive.display()),
                source: e,
            })?;
        let body = futures::stream::unfold(file, |mut f| async move {
            let mut buf = vec![0u8; LOAD_CHUNK];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        });
        let mut out = self.docker.import_image_stream(
            ImportImageOptions {
                quiet: true,
                platform: None,
            },
            body,
            None,
        );
        let mut refs = Vec::new();
        while let Some(item) = out.next().await {
            let info = item.map_err(|e| match e {
                bollard::errors::Error::DockerStreamError { error } => {
                    RuntimeError::InvalidImage(error)
                }
                e if status_of(&e).is_some() => RuntimeError::InvalidImage(message_of(&e)),
                e => api_err(format!("loading {}", archive.display()), e),
            })?;
            if let Some(msg) = info.error_detail.and_then(|d| d.message) {
                return Err(RuntimeError::InvalidImage(msg));
            }
            for text in info.stream.iter().chain(info.status.iter()) {
                for l in text.lines() {
                    if let Some(r) = l
                        .strip_prefix("Loaded image: ")
                        .or_else(|| l.strip_prefix("Loaded image ID: "))
                    {
                        refs.push(r.trim().to_string());
                    }
                }
            }
        }
        Ok(refs)
    }
}
