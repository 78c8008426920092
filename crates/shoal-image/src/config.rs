//! The JSON documents of an image: the image config (what to run, its layers' diff IDs), image
//! manifests and indexes (OCI and Docker schema 2 share a shape), and their descriptors.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use shoal_agent::RuntimeError;
use shoal_agent::image::ImageConfig;
use shoal_types::clock::Timestamp;
use shoal_types::container::HealthConfig;

use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Debug, Clone, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub config: Option<RunConfig>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Durations are nanoseconds; zero means "not set" in Docker's config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    #[serde(default)]
    pub test: Option<Vec<String>>,
    #[serde(default)]
    pub interval: Option<i64>,
    #[serde(default)]
    pub timeout: Option<i64>,
    #[serde(default)]
    pub start_period: Option<i64>,
    #[serde(default)]
    pub retries: Option<i64>,
}

impl ConfigFile {
    pub fn parse(bytes: &[u8], what: &str) -> Result<ConfigFile, RuntimeError> {
        let c: ConfigFile = serde_json::from_slice(bytes)
            .map_err(|e| RuntimeError::InvalidImage(format!("{what}: image config: {e}")))?;
        for d in &c.rootfs.diff_ids {
            Digest::parse(d).map_err(|why| {
                RuntimeError::InvalidImage(format!("{what}: image config: diff ID {d:?}: {why}"))
            })?;
        }
        Ok(c)
    }

    pub fn diff_ids(&self) -> Vec<Digest> {
        self.rootfs
            .diff_ids
            .iter()
            .filter_map(|d| Digest::parse(d).ok())
            .collect()
    }

    pub fn created(&self) -> Timestamp {
        self.created
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .and_then(|t| t.timestamp_nanos_opt())
            .map(Timestamp::from_unix_nanos)
            .unwrap_or(Timestamp::ZERO)
    }

    pub fn image_config(&self) -> ImageConfig {
        let c = self.config.clone().unwrap_or_default();
        let dur = |ns: Option<i64>| {
            ns.filter(|n| *n > 0)
                .map(|n| Duration::from_nanos(n.unsigned_abs()))
        };
        ImageConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: c.working_dir.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
            stop_signal: c.stop_signal.unwrap_or_default(),
            healthcheck: c.healthcheck.map(|h| HealthConfig {
                test: h.test.unwrap_or_default(),
                interval: dur(h.interval),
                timeout: dur(h.timeout),
                start_period: dur(h.start_period),
                retries: h
                    .retries
                    .filter(|r| *r > 0)
                    .and_then(|r| u64::try_from(r).ok()),
            }),
            volumes: c
                .volumes
                .map(|v| v.into_keys().collect())
                .unwrap_or_default(),
            labels: c.labels.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    pub fn digest(&self, what: &str) -> Result<Digest, RuntimeError> {
        Digest::parse(&self.digest).map_err(|why| {
            RuntimeError::InvalidImage(format!(
                "{what}: descriptor digest {:?}: {why}",
                self.digest
            ))
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// An image manifest or an index of them; OCI and Docker schema 2 documents both fit.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

pub enum Parsed {
    Manifest {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    Index(Vec<Descriptor>),
}

impl Document {
    pub fn parse(bytes: &[u8], what: &str) -> Result<Parsed, RuntimeError> {
        let d: Document = serde_json::from_slice(bytes)
            .map_err(|e| RuntimeError::InvalidImage(format!("{what}: {e}")))?;
        match (d.config, d.manifests) {
            (Some(config), _) => Ok(Parsed::Manifest {
                config,
                layers: d.layers.unwrap_or_default(),
            }),
            (None, Some(m)) => Ok(Parsed::Index(m)),
            (None, None) => Err(RuntimeError::InvalidImage(format!(
                "{what}: neither an image manifest nor an index (media type {:?}; schema 1 \
                 manifests are not supported)",
                d.media_type.unwrap_or_default()
            ))),
        }
    }
}

/// This node's platform in OCI's names.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        _ => "amd64",
    }
}

/// The entry of an index for linux on this node's architecture (attestations and other
/// platforms skipped).
pub fn pick_platform<'a>(
    manifests: &'a [Descriptor],
    what: &str,
) -> Result<&'a Descriptor, RuntimeError> {
    let arch = host_arch();
    manifests
        .iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .ok_or_else(|| {
            let have: Vec<String> = manifests
                .iter()
                .filter_map(|m| m.platform.as_ref())
                .map(|p| format!("{}/{}", p.os, p.architecture))
                .collect();
            RuntimeError::InvalidImage(format!(
                "{what}: no image for linux/{arch} (the index has {})",
                if have.is_empty() {
                    "no platforms".to_string()
                } else {
                    have.join(", ")
                }
            ))
        })
}
