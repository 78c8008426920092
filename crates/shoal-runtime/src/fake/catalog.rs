//! The fake's images and the volume calls an engine serves (see [`crate::catalog`]).
//!
//! Images: a table of image IDs and the tags pointing at them. A task's image is put in it at
//! `prepare`, as a pull would ([`FakeNode::add_image`] puts one there beforehand); its ID is
//! derived from the name it was first seen by, so a run is reproducible. Every image has the
//! test image's config (`/bin/sh`, `PATH=/bin`) and two build steps. `save_images` writes the
//! fake's own archive format among the node's files, which `load_image` reads back: the
//! contract asks for a round trip, not for Docker's format, which the real drivers' tests check.

use std::collections::BTreeMap;

use shoal_types::Timestamp;
use shoal_types::image_ref::{ImageRef, familiar};

use super::{FakeDriver, FakeNode, Inner, Volume};
use crate::catalog::{ImageDetails, ImageHistoryEntry, VolumeCreate, VolumePrune, VolumesPruned};
use crate::image::ImageConfig;
use crate::{ImageInfo, RuntimeError, VolumeInfo};

const ARCHIVE_MAGIC: &str = "shoal-fake-archive v1";
/// What the fake says each image's one layer holds.
const LAYER_SIZE: u64 = 1_994_240;

#[derive(Debug, Clone)]
pub(super) struct Image {
    created: Timestamp,
    last_tagged: Option<Timestamp>,
}

#[derive(Debug, Default)]
pub(super) struct Images {
    /// Image ID → the image.
    by_id: BTreeMap<String, Image>,
    /// `registry/repository:tag` → image ID.
    tags: BTreeMap<String, String>,
}

/// 64 hex digits from `name`: FNV-1a under four seeds. Only the fake needs IDs this way.
fn derive_hex(name: &str) -> String {
    (0u64..4)
        .map(|seed| {
            let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for b in name.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            format!("{h:016x}")
        })
        .collect()
}

fn is_hex_prefix(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Images {
    /// The image ID `reference` names: a tag, or an ID (with or without `sha256:`) or a unique
    /// prefix of one.
    fn lookup(&self, reference: &str) -> Result<Option<String>, RuntimeError> {
        if let Ok(r) = ImageRef::parse(reference)
            && r.digest().is_none()
            && let Some(id) = r.tagged().and_then(|t| self.tags.get(&t))
        {
            return Ok(Some(id.clone()));
        }
        let prefix = reference.strip_prefix("sha256:").unwrap_or(reference);
        if !is_hex_prefix(prefix) {
            return Ok(None);
        }
        let prefix = prefix.to_ascii_lowercase();
        let hits: Vec<&String> = self
            .by_id
            .keys()
            .filter(|id| id.trim_start_matches("sha256:").starts_with(&prefix))
            .collect();
        match hits.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one).clone())),
            _ => Err(RuntimeError::InvalidSpec {
                field: "image",
                why: format!("the ID prefix {reference:?} is ambiguous"),
            }),
        }
    }

    fn found(&self, reference: &str) -> Result<String, RuntimeError> {
        self.lookup(reference)?
            .ok_or_else(|| RuntimeError::ImageNotFound(reference.to_string()))
    }

    fn tags_of(&self, id: &str) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, v)| v.as_str() == id)
            .map(|(k, _)| familiar(k))
            .collect()
    }

    /// Puts an image in the table under `reference` unless the tag is there already.
    pub(super) fn pull(&mut self, reference: &str, now: Timestamp) {
        let Some(tagged) = ImageRef::parse(reference)
            .ok()
            .filter(|r| r.digest().is_none())
            .and_then(|r| r.tagged())
        else {
            return;
        };
        if self.tags.contains_key(&tagged) {
            return;
        }
        let id = format!("sha256:{}", derive_hex(&tagged));
        self.by_id.entry(id.clone()).or_insert(Image {
            created: now,
            last_tagged: None,
        });
        self.tags.insert(tagged, id);
    }

    fn info(&self, id: &str) -> Option<ImageInfo> {
        let img = self.by_id.get(id)?;
        Some(ImageInfo {
            id: id.to_string(),
            repo_tags: self.tags_of(id),
            repo_digests: Vec::new(),
            size: LAYER_SIZE,
            created: img.created,
        })
    }

    fn set_tag(&mut self, id: &str, target: &str, now: Timestamp) -> Result<(), RuntimeError> {
        let r = ImageRef::parse(target).map_err(|e| RuntimeError::InvalidSpec {
            field: "tag",
            why: e.to_string(),
        })?;
        let Some(tagged) = r.tagged().filter(|_| r.digest().is_none()) else {
            return Err(RuntimeError::InvalidSpec {
                field: "tag",
                why: format!("{target:?} is not a name:tag reference"),
            });
        };
        self.tags.insert(tagged, id.to_string());
        if let Some(img) = self.by_id.get_mut(id) {
            img.last_tagged = Some(now);
        }
        Ok(())
    }
}

impl FakeNode {
    /// Puts an image in the node's table, as a pull would.
    pub fn add_image(&self, reference: &str) {
        let now = self.0.now();
        self.0.lock().images.pull(reference, now);
        self.0.bump();
    }
}

/// Docker's rule for local volume names.
fn valid_volume_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

impl FakeDriver {
    pub(super) fn image_list(&self) -> Vec<ImageInfo> {
        let g = self.lock();
        g.images
            .by_id
            .keys()
            .filter_map(|id| g.images.info(id))
            .collect()
    }

    pub(super) fn image_details(&self, reference: &str) -> Result<ImageDetails, RuntimeError> {
        let g = self.lock();
        let id = g.images.found(reference)?;
        let info = g
            .images
            .info(&id)
            .ok_or_else(|| RuntimeError::ImageNotFound(reference.to_string()))?;
        let last_tag_time = g.images.by_id.get(&id).and_then(|i| i.last_tagged);
        Ok(ImageDetails {
            layers: vec![format!("sha256:{}", derive_hex(&format!("layer {id}")))],
            info,
            parent: String::new(),
            comment: String::new(),
            author: String::new(),
            docker_version: String::new(),
            architecture: "amd64".into(),
            variant: String::new(),
            os: "linux".into(),
            config: ImageConfig {
                cmd: vec!["/bin/sh".into()],
                env: vec!["PATH=/bin".into()],
                ..Default::default()
            },
            exposed_ports: Vec::new(),
            last_tag_time,
            storage_driver: "fake".into(),
        })
    }

    pub(super) fn history_of(
        &self,
        reference: &str,
    ) -> Result<Vec<ImageHistoryEntry>, RuntimeError> {
        let g = self.lock();
        let id = g.images.found(reference)?;
        let created = g
            .images
            .by_id
            .get(&id)
            .map_or(Timestamp::ZERO, |i| i.created);
        Ok(vec![
            ImageHistoryEntry {
                id: id.clone(),
                created,
                created_by: "CMD [\"/bin/sh\"]".into(),
                tags: g.images.tags_of(&id),
                size: 0,
                comment: String::new(),
            },
            ImageHistoryEntry {
                id: "<missing>".into(),
                created,
                created_by: "COPY busybox /bin/busybox".into(),
                tags: Vec::new(),
                size: LAYER_SIZE,
                comment: String::new(),
            },
        ])
    }

    pub(super) fn tag(&self, source: &str, target: &str) -> Result<(), RuntimeError> {
        let now = self.node.now();
        let mut g = self.lock();
        let id = g.images.found(source)?;
        g.images.set_tag(&id, target, now)
    }

    /// Docker's `rmi`: untags a name (deleting the image with its last tag), or deletes an
    /// image named by ID with every tag (refused without `force` when it has several).
    pub(super) fn untag(&self, reference: &str, force: bool) -> Result<Vec<String>, RuntimeError> {
        let mut g = self.lock();
        let id = g.images.found(reference)?;
        let by_name = ImageRef::parse(reference)
            .ok()
            .and_then(|r| r.tagged())
            .filter(|t| g.images.tags.get(t) == Some(&id));
        let untag: Vec<String> = match by_name {
            Some(t) => vec![t],
            None => {
                let all: Vec<String> = g
                    .images
                    .tags
                    .iter()
                    .filter(|(_, v)| **v == id)
                    .map(|(k, _)| k.clone())
                    .collect();
                if all.len() > 1 && !force {
                    return Err(RuntimeError::Conflict(format!(
                        "unable to delete {id} (must be forced) - image is referenced in multiple repositories"
                    )));
                }
                all
            }
        };
        let mut lines = Vec::new();
        for t in untag {
            g.images.tags.remove(&t);
            lines.push(format!("Untagged: {}", familiar(&t)));
        }
        if !g.images.tags.values().any(|v| *v == id) {
            g.images.by_id.remove(&id);
            lines.push(format!("Deleted: {id}"));
        }
        Ok(lines)
    }

    /// The fake's archive: one line per image, `ID CREATED TAG,TAG`, among the node's files.
    pub(super) fn save(&self, references: &[String], archive: &str) -> Result<(), RuntimeError> {
        let mut g = self.lock();
        let mut chosen: Vec<(String, Vec<String>)> = Vec::new();
        let mut add = |id: String, tag: Option<String>| {
            let at = match chosen.iter().position(|(i, _)| *i == id) {
                Some(at) => at,
                None => {
                    chosen.push((id, Vec::new()));
                    chosen.len() - 1
                }
            };
            if let Some(t) = tag.filter(|t| !chosen[at].1.contains(t)) {
                chosen[at].1.push(t);
            }
        };
        for reference in references {
            let parsed = ImageRef::parse(reference).ok();
            if let Some(r) = parsed
                .as_ref()
                .filter(|r| !r.tag_written() && r.digest().is_none())
            {
                let repo: Vec<(String, String)> = g
                    .images
                    .tags
                    .iter()
                    .filter(|(t, _)| ImageRef::parse(t).is_ok_and(|t| t.name() == r.name()))
                    .map(|(t, id)| (t.clone(), id.clone()))
                    .collect();
                if !repo.is_empty() {
                    for (t, id) in repo {
                        add(id, Some(t));
                    }
                    continue;
                }
            }
            let id = g.images.found(reference)?;
            let tag = parsed
                .and_then(|r| r.tagged())
                .filter(|t| g.images.tags.get(t) == Some(&id));
            add(id, tag);
        }
        let mut text = format!("{ARCHIVE_MAGIC}\n");
        for (id, tags) in &chosen {
            let created = g.images.by_id.get(id).map_or(0, |i| i.created.unix_nanos());
            text.push_str(&format!("{id} {created} {}\n", tags.join(",")));
        }
        g.host_files
            .insert(archive.to_string(), bytes::Bytes::from(text.into_bytes()));
        Ok(())
    }

    pub(super) fn load(&self, archive: &str) -> Result<Vec<String>, RuntimeError> {
        let now = self.node.now();
        let mut g = self.lock();
        let bad = |why: &str| RuntimeError::InvalidImage(format!("{archive}: {why}"));
        let bytes = g
            .host_files
            .get(archive)
            .cloned()
            .ok_or_else(|| bad("no such file"))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| bad("not a fake archive"))?;
        let mut lines = text.lines();
        if lines.next() != Some(ARCHIVE_MAGIC) {
            return Err(bad("not a fake archive"));
        }
        let mut loaded = Vec::new();
        for l in lines {
            let mut parts = l.splitn(3, ' ');
            let (Some(id), Some(created), tags) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad("a truncated line"));
            };
            let created = created.parse::<i64>().map_err(|_| bad("a bad time"))?;
            g.images.by_id.entry(id.to_string()).or_insert(Image {
                created: Timestamp::from_unix_nanos(created),
                last_tagged: None,
            });
            let tags: Vec<&str> = tags
                .unwrap_or("")
                .split(',')
                .filter(|t| !t.is_empty())
                .collect();
            if tags.is_empty() {
                loaded.push(id.to_string());
            }
            for t in tags {
                g.images.set_tag(id, t, now)?;
                loaded.push(familiar(t));
            }
        }
        drop(g);
        self.bump();
        Ok(loaded)
    }

    pub(super) fn volume_info(g: &Inner, name: &str, v: &Volume) -> VolumeInfo {
        VolumeInfo {
            name: name.to_string(),
            mountpoint: format!("/fake/volumes/{name}"),
            labels: v.labels.clone(),
            options: v.options.clone(),
            created_at: v.created_at,
            in_use_by: Self::in_use_by(g, name),
        }
    }

    pub(super) fn make_volume(&self, spec: &VolumeCreate) -> Result<VolumeInfo, RuntimeError> {
        if !valid_volume_name(&spec.name) {
            return Err(RuntimeError::InvalidSpec {
                field: "Name",
                why: format!(
                    "{:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed",
                    spec.name
                ),
            });
        }
        let now = self.node.now();
        let mut g = self.lock();
        g.volumes
            .entry(spec.name.clone())
            .or_insert_with(|| Volume {
                labels: spec.labels.clone(),
                options: spec.options.clone(),
                created_at: now,
                files: BTreeMap::new(),
            });
        let info = g
            .volumes
            .get(&spec.name)
            .map(|v| Self::volume_info(&g, &spec.name, v))
            .ok_or_else(|| RuntimeError::VolumeNotFound(spec.name.clone()))?;
        drop(g);
        self.bump();
        Ok(info)
    }

    pub(super) fn prune(&self, filter: &VolumePrune) -> VolumesPruned {
        let mut g = self.lock();
        let chosen: Vec<(String, u64)> = g
            .volumes
            .iter()
            .filter(|(name, v)| filter.selects(&Self::volume_info(&g, name, v)))
            .map(|(name, v)| {
                let size = v.files.values().map(|b| b.len() as u64).sum();
                (name.clone(), size)
            })
            .collect();
        let mut out = VolumesPruned::default();
        for (name, size) in chosen {
            g.volumes.remove(&name);
            out.names.push(name);
            out.space_reclaimed += size;
        }
        drop(g);
        self.bump();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_hex() {
        let a = derive_hex("docker.io/library/busybox:latest");
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, derive_hex("docker.io/library/busybox:latest"));
        assert_ne!(a, derive_hex("docker.io/library/busybox:1"));
    }
}
