//! Images and volumes as an engine serves them (see `shoal_runtime::catalog`), answered by the
//! Docker Engine itself: inspect, history, tag and save of its images, and volumes made and
//! pruned with shoal's labels.
//!
//! Volumes made here carry [`LABEL_MANAGED`] and [`LABEL_OWNER`] like the ones tasks make, so
//! they are listed (every shoal volume on the engine is) and cleaned up with their daemon. A
//! prune removes only this daemon's volumes: the engine is shared, and another daemon's unused
//! volume may be about to be mounted. Which volumes are anonymous is said by
//! [`ANONYMOUS_VOLUME_LABEL`] as an explicit label filter, so engines older than API 1.42
//! (which prune every unused volume) prune the same ones as newer engines.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ImageInspect, VolumeCreateRequest};
use bollard::query_parameters::{PruneVolumesOptions, TagImageOptions};
use futures::StreamExt;
use shoal_runtime::catalog::{
    ANONYMOUS_VOLUME_LABEL, ImageDetails, ImageHistoryEntry, VolumeCreate, VolumePrune,
    VolumesPruned,
};
use shoal_runtime::image::ImageConfig;
use shoal_runtime::{ImageInfo, RuntimeError, VolumeInfo};
use shoal_types::Timestamp;
use shoal_types::container::HealthConfig;
use shoal_types::image_ref::ImageRef;
use tokio::io::AsyncWriteExt;

use crate::{DockerDriver, LABEL_MANAGED, LABEL_OWNER, api_err, message_of, parse_time, status_of};

/// An image call's error: the engine's 404 is `ImageNotFound` naming what the caller asked for,
/// its refusals of a bad name or tag are `InvalidSpec` (engines before 23 answer those with
/// 500).
fn image_err(e: bollard::errors::Error, reference: &str, doing: String) -> RuntimeError {
    let message = message_of(&e);
    match status_of(&e) {
        Some(404) => RuntimeError::ImageNotFound(reference.to_string()),
        Some(400) => RuntimeError::InvalidSpec {
            field: "image",
            why: message,
        },
        Some(500) if message.starts_with("invalid ") => RuntimeError::InvalidSpec {
            field: "image",
            why: message,
        },
        Some(409) => RuntimeError::Conflict(message),
        _ => api_err(doing, e),
    }
}

fn nanos(n: Option<i64>) -> Option<Duration> {
    n.filter(|n| *n > 0)
        .map(|n| Duration::from_nanos(n.unsigned_abs()))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn details(i: ImageInspect) -> ImageDetails {
    let c = i.config.unwrap_or_default();
    let created = parse_time(i.created.as_deref().unwrap_or(""));
    let last_tag = i
        .metadata
        .and_then(|m| m.last_tag_time)
        .map(|t| parse_time(&t))
        .filter(|t| *t != Timestamp::ZERO);
    ImageDetails {
        info: ImageInfo {
            id: i.id.unwrap_or_default(),
            repo_tags: i.repo_tags.unwrap_or_default(),
            repo_digests: i.repo_digests.unwrap_or_default(),
            size: i.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
            created,
        },
        // bollard's model (API 1.53) has neither: both went from the API in 1.45/1.44.
        parent: String::new(),
        docker_version: String::new(),
        comment: i.comment.unwrap_or_default(),
        author: i.author.unwrap_or_default(),
        architecture: i.architecture.unwrap_or_default(),
        variant: i.variant.unwrap_or_default(),
        os: i.os.unwrap_or_default(),
        config: ImageConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: c.working_dir.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
            stop_signal: c.stop_signal.unwrap_or_default(),
            healthcheck: c.healthcheck.map(|h| HealthConfig {
                test: h.test.unwrap_or_default(),
                interval: nanos(h.interval),
                timeout: nanos(h.timeout),
                start_period: nanos(h.start_period),
                retries: h
                    .retries
                    .filter(|r| *r > 0)
                    .and_then(|r| u64::try_from(r).ok()),
            }),
            volumes: sorted(c.volumes.unwrap_or_default()),
            labels: c.labels.unwrap_or_default().into_iter().collect(),
        },
        exposed_ports: sorted(c.exposed_ports.unwrap_or_default()),
        layers: i.root_fs.and_then(|r| r.layers).unwrap_or_default(),
        last_tag_time: last_tag,
        storage_driver: i.graph_driver.map(|g| g.name).unwrap_or_default(),
    }
}

impl DockerDriver {
    pub(crate) async fn image_details(
        &self,
        reference: &str,
    ) -> Result<ImageDetails, RuntimeError> {
        self.docker
            .inspect_image(reference)
            .await
            .map(details)
            .map_err(|e| image_err(e, reference, format!("inspecting image {reference}")))
    }

    pub(crate) async fn history(
        &self,
        reference: &str,
    ) -> Result<Vec<ImageHistoryEntry>, RuntimeError> {
        let steps =
            self.docker.image_history(reference).await.map_err(|e| {
                image_err(e, reference, format!("the history of image {reference}"))
            })?;
        Ok(steps
            .into_iter()
            .map(|s| ImageHistoryEntry {
                id: s.id,
                created: Timestamp::from_unix_nanos(s.created.saturating_mul(1_000_000_000)),
                created_by: s.created_by,
                tags: s.tags,
                size: u64::try_from(s.size).unwrap_or(0),
                comment: s.comment,
            })
            .collect())
    }

    pub(crate) async fn tag(&self, source: &str, target: &str) -> Result<(), RuntimeError> {
        let r = ImageRef::parse(target).map_err(|e| RuntimeError::InvalidSpec {
            field: "tag",
            why: e.to_string(),
        })?;
        let (Some(tag), None) = (r.tag(), r.digest()) else {
            return Err(RuntimeError::InvalidSpec {
                field: "tag",
                why: format!("{target:?} is not a name:tag reference"),
            });
        };
        let options = TagImageOptions {
            repo: Some(r.familiar_name()),
            tag: Some(tag.to_string()),
        };
        self.docker
            .tag_image(source, Some(options))
            .await
            .map_err(|e| image_err(e, source, format!("tagging image {source} as {target}")))
    }

    /// Streams the engine's own archive into `archive`; removes it on failure.
    pub(crate) async fn save(
        &self,
        references: &[String],
        archive: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        let written = self.save_into(references, archive).await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(archive).await;
        }
        written
    }

    async fn save_into(
        &self,
        references: &[String],
        archive: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        let io = |e| RuntimeError::Io {
            context: format!("writing {}", archive.display()),
            source: e,
        };
        let mut file = tokio::fs::File::create(archive).await.map_err(io)?;
        let names: Vec<&str> = references.iter().map(String::as_str).collect();
        let mut body = self.docker.export_images(&names);
        let what = references.join(", ");
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| image_err(e, &what, format!("saving {what}")))?;
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.flush().await.map_err(io)
    }

    pub(crate) async fn make_volume(
        &self,
        spec: &VolumeCreate,
    ) -> Result<VolumeInfo, RuntimeError> {
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.insert(LABEL_MANAGED.into(), "true".into());
        labels.insert(LABEL_OWNER.into(), self.owner.clone());
        let made = self
            .docker
            .create_volume(VolumeCreateRequest {
                name: Some(spec.name.clone()),
                driver: Some("local".into()),
                driver_opts: Some(spec.options.clone().into_iter().collect()),
                labels: Some(labels),
                cluster_volume_spec: None,
            })
            .await;
        let v = match made {
            Ok(v) => v,
            Err(e) if status_of(&e) == Some(400) => {
                return Err(RuntimeError::InvalidSpec {
                    field: "Name",
                    why: message_of(&e),
                });
            }
            Err(e) => return Err(api_err(format!("creating volume {}", spec.name), e)),
        };
        // The engine returns a volume of that name as it is, even one shoal did not make.
        if !v.labels.contains_key(LABEL_MANAGED) {
            return Err(RuntimeError::Conflict(format!(
                "volume {} exists on the Docker Engine but was not made by shoal; remove it there or pick another name",
                spec.name
            )));
        }
        let users = self.volume_users().await?;
        Ok(VolumeInfo {
            in_use_by: users.get(&v.name).cloned().unwrap_or_default(),
            created_at: parse_time(v.created_at.as_deref().unwrap_or("")),
            labels: v.labels.into_iter().collect(),
            options: v.options.into_iter().collect(),
            mountpoint: v.mountpoint,
            name: v.name,
        })
    }

    pub(crate) async fn prune(&self, filter: &VolumePrune) -> Result<VolumesPruned, RuntimeError> {
        let mut labels = vec![
            format!("{LABEL_MANAGED}=true"),
            format!("{LABEL_OWNER}={}", self.owner),
        ];
        labels.extend(filter.labels.iter().cloned());
        if !filter.all {
            labels.push(ANONYMOUS_VOLUME_LABEL.to_string());
        }
        let mut filters = HashMap::from([("label".to_string(), labels)]);
        if !filter.not_labels.is_empty() {
            filters.insert("label!".into(), filter.not_labels.clone());
        }
        // From API 1.42 the engine prunes only its anonymous volumes unless told `all`; which
        // ones are anonymous is the label filter above.
        if api_at_least(&self.api_version, (1, 42)) {
            filters.insert("all".into(), vec!["true".into()]);
        }
        let r = self
            .docker
            .prune_volumes(Some(PruneVolumesOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(|e| api_err("pruning volumes", e))?;
        let mut names = r.volumes_deleted.unwrap_or_default();
        names.sort();
        Ok(VolumesPruned {
            names,
            space_reclaimed: r
                .space_reclaimed
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
        })
    }
}

/// Whether the negotiated API version `v` (`1.41`) is at least `min`.
fn api_at_least(v: &str, min: (u32, u32)) -> bool {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= min,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_compare_numerically() {
        assert!(api_at_least("1.42", (1, 42)));
        assert!(api_at_least("1.50", (1, 42)));
        assert!(!api_at_least("1.41", (1, 42)));
        assert!(!api_at_least("1.9", (1, 42)));
        assert!(!api_at_least("garbage", (1, 42)));
    }

    #[test]
    fn an_inspect_answer_becomes_details() {
        let i: ImageInspect = serde_json::from_value(serde_json::json!({
            "Id": "sha256:abc",
            "RepoTags": ["a:1"],
            "Created": "2026-11-24T17:40:00Z",
            "Config": {
                "Cmd": ["/bin/sh"],
                "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                "Volumes": {"/z": {}, "/a": {}},
                "Healthcheck": {"Test": ["CMD", "true"], "Interval": 2_000_000_000i64, "Retries": 0}
            },
            "Architecture": "amd64", "Os": "linux", "Size": 10,
            "GraphDriver": {"Name": "overlay2", "Data": {}},
            "RootFS": {"Type": "layers", "Layers": ["sha256:l1"]},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"}
        }))
        .expect("an inspect answer");
        let d = details(i);
        assert_eq!(d.info.repo_tags, vec!["a:1".to_string()]);
        assert_eq!(
            d.exposed_ports,
            vec!["53/udp".to_string(), "80/tcp".to_string()]
        );
        assert_eq!(d.config.volumes, vec!["/a".to_string(), "/z".to_string()]);
        let hc = d.config.healthcheck.expect("a health check");
        assert_eq!(
            (hc.interval, hc.retries),
            (Some(Duration::from_secs(2)), None)
        );
        assert_eq!(d.last_tag_time, None, "Docker's zero time is never");
        assert_eq!(d.storage_driver, "overlay2");
        assert_eq!(d.layers, vec!["sha256:l1".to_string()]);
    }
}
