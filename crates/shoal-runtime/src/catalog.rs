//! What a node's runtime shows of its images and volumes beyond a listing, as a Docker Engine
//! serves them: an image's details (`docker image inspect`) and history (`docker history`),
//! and volumes made and pruned on request (`docker volume create|prune`). These are parts of
//! the driver contract ([`crate::RuntimeDriver`]), held to the conformance suite like the rest.
//!
//! Pure types and the one rule every driver shares ([`VolumePrune::selects`]); no IO.

use std::collections::BTreeMap;

use shoal_types::Timestamp;

use crate::image::ImageConfig;
use crate::{ImageInfo, VolumeInfo};

/// The label Docker (23+) puts on a volume made without a name, and which marks the volumes
/// a prune removes by default since API 1.42.
pub const ANONYMOUS_VOLUME_LABEL: &str = "com.docker.volume.anonymous";

/// An image as `docker image inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDetails {
    /// Its ID, references, size and creation time, as `images` lists it.
    pub info: ImageInfo,
    /// The ID of the image it was built on, when the runtime knows it (rarely: only local
    /// builds record it); empty otherwise.
    pub parent: String,
    pub comment: String,
    pub author: String,
    /// The Docker version that built it, when the builder wrote one.
    pub docker_version: String,
    /// OCI's names: `amd64`, `arm64`...
    pub architecture: String,
    pub variant: String,
    pub os: String,
    /// What running it means (entrypoint, command, environment, user, volumes, labels...).
    pub config: ImageConfig,
    /// `80/tcp`, `53/udp`, as the image declares them (`EXPOSE`), sorted.
    pub exposed_ports: Vec<String>,
    /// Diff IDs of its layers (`sha256:<hex>` of each uncompressed layer tar), lowest first.
    pub layers: Vec<String>,
    /// When a reference was last pointed at it on this node; `None` when never, or when the
    /// runtime does not record it.
    pub last_tag_time: Option<Timestamp>,
    /// Where the runtime keeps its layers (Docker's `GraphDriver.Name`: `overlay2`, `vfs`...).
    pub storage_driver: String,
}

/// One step of an image's history, newest first in a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageHistoryEntry {
    /// The image's ID on the newest step; `<missing>` on the steps below it, which are not
    /// images of their own here (Docker's word for them).
    pub id: String,
    pub created: Timestamp,
    /// The build instruction, as the builder recorded it.
    pub created_by: String,
    /// The image's tags, on the step that carries its ID.
    pub tags: Vec<String>,
    /// Bytes the step's layer adds; 0 for steps that made no layer.
    pub size: u64,
    pub comment: String,
}

/// A volume to make on request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeCreate {
    /// Docker's volume name rules: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`. The caller names anonymous
    /// volumes itself (with [`ANONYMOUS_VOLUME_LABEL`] among the labels).
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The local driver's options (`type`, `device`, `o`); a runtime that cannot honour them
    /// refuses them.
    pub options: BTreeMap<String, String>,
}

/// Which unused volumes a prune removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumePrune {
    /// Named volumes too; otherwise only anonymous ones ([`ANONYMOUS_VOLUME_LABEL`]), as
    /// Docker prunes since API 1.42.
    pub all: bool,
    /// `key` or `key=value`: a volume must carry every one.
    pub labels: Vec<String>,
    /// `key` or `key=value` (Docker's `label!`): a volume carrying every one of them is kept.
    pub not_labels: Vec<String>,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumesPruned {
    pub names: Vec<String>,
    /// Bytes the removed volumes' files took.
    pub space_reclaimed: u64,
}

/// Docker's `MatchKVList`: every filter (`key` or `key=value`) is on `labels`. No filters
/// match anything; filters never match a volume without labels.
fn match_all(filters: &[String], labels: &BTreeMap<String, String>) -> bool {
    if filters.is_empty() {
        return true;
    }
    if labels.is_empty() {
        return false;
    }
    filters.iter().all(|f| match f.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(f),
    })
}

impl VolumePrune {
    /// Whether a prune with these filters removes `v`: unused, anonymous unless `all`, and
    /// matching the label filters as Docker matches them.
    pub fn selects(&self, v: &VolumeInfo) -> bool {
        v.in_use_by.is_empty()
            && (self.all || v.labels.contains_key(ANONYMOUS_VOLUME_LABEL))
            && match_all(&self.labels, &v.labels)
            && (self.not_labels.is_empty() || !match_all(&self.not_labels, &v.labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::Id;

    fn vol(labels: &[(&str, &str)], users: usize) -> VolumeInfo {
        VolumeInfo {
            name: "v".into(),
            mountpoint: "/v".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            options: BTreeMap::new(),
            created_at: Timestamp::ZERO,
            in_use_by: (0..users).map(|i| Id::from_raw(format!("t{i}"))).collect(),
        }
    }

    #[test]
    fn prunes_unused_anonymous_volumes_unless_all() {
        let anon = vol(&[(ANONYMOUS_VOLUME_LABEL, "")], 0);
        let named = vol(&[("team", "a")], 0);
        let used = vol(&[(ANONYMOUS_VOLUME_LABEL, "")], 1);
        let default = VolumePrune::default();
        assert!(default.selects(&anon));
        assert!(!default.selects(&named), "named volumes need all");
        assert!(!default.selects(&used), "a volume in use is never pruned");
        let all = VolumePrune {
            all: true,
            ..Default::default()
        };
        assert!(all.selects(&named) && all.selects(&anon) && !all.selects(&used));
    }

    /// `label!` keeps a volume only when it carries every one of them, as Docker's
    /// `MatchKVList` decides.
    #[test]
    fn label_filters_match_as_dockers() {
        let v = vol(&[("team", "a"), ("tier", "web")], 0);
        let with = |labels: &[&str], not: &[&str]| VolumePrune {
            all: true,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            not_labels: not.iter().map(|s| s.to_string()).collect(),
        };
        assert!(with(&["team"], &[]).selects(&v));
        assert!(with(&["team=a", "tier"], &[]).selects(&v));
        assert!(!with(&["team=b"], &[]).selects(&v));
        assert!(!with(&[], &["team=a"]).selects(&v));
        assert!(with(&[], &["team=a", "other"]).selects(&v));
        assert!(with(&[], &["team"]).selects(&vol(&[], 0)));
        assert!(!with(&["team"], &[]).selects(&vol(&[], 0)));
    }
}
