//! The JSON documents of an image, as oci-spec's types: the image config (what to run, its
//! layers' diff IDs), image manifests and indexes (OCI and Docker schema 2 share a shape), and
//! their descriptors. What oci-spec leaves out, Docker's `Healthcheck` extension of the config,
//! is read here beside it.

use std::collections::BTreeMap;
use std::time::Duration;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::Deserialize;
use shoal_runtime::RuntimeError;
use shoal_runtime::image::ImageConfig;
use shoal_types::clock::Timestamp;
use shoal_types::container::HealthConfig;

use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// An image config: the OCI fields, and Docker's health check, comment and builder version.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub oci: ImageConfiguration,
    pub healthcheck: Option<Healthcheck>,
    pub comment: String,
    pub docker_version: String,
}

/// The part of Docker's config the OCI image spec does not have.
#[derive(Deserialize)]
struct DockerExtensions {
    #[serde(default)]
    config: Option<DockerRunExtensions>,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    docker_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerRunExtensions {
    #[serde(default)]
    healthcheck: Option<Healthcheck>,
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
        let bad = |e: serde_json::Error| RuntimeError::corrupt(format!("{what}: image config"), e);
        let oci: ImageConfiguration = serde_json::from_slice(bytes).map_err(bad)?;
        let ext: DockerExtensions = serde_json::from_slice(bytes).map_err(bad)?;
        for d in oci.rootfs().diff_ids() {
            Digest::parse(d).map_err(|why| {
                RuntimeError::InvalidImage(format!("{what}: image config: diff ID {d:?}: {why}"))
            })?;
        }
        Ok(ConfigFile {
            oci,
            healthcheck: ext.config.and_then(|c| c.healthcheck),
            comment: ext.comment.unwrap_or_default(),
            docker_version: ext.docker_version.unwrap_or_default(),
        })
    }

    pub fn diff_ids(&self) -> Vec<Digest> {
        self.oci
            .rootfs()
            .diff_ids()
            .iter()
            .filter_map(|d| Digest::parse(d).ok())
            .collect()
    }

    pub fn created(&self) -> Timestamp {
        parse_time(self.oci.created().as_deref())
    }

    pub fn image_config(&self) -> ImageConfig {
        let c = self.oci.config().clone().unwrap_or_default();
        let dur = |ns: Option<i64>| {
            ns.filter(|n| *n > 0)
                .map(|n| Duration::from_nanos(n.unsigned_abs()))
        };
        let mut volumes = c.volumes().clone().unwrap_or_default();
        // oci-spec reads Docker's volume set into a Vec in hash order.
        volumes.sort();
        ImageConfig {
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            env: c.env().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().unwrap_or_default(),
            user: c.user().clone().unwrap_or_default(),
            stop_signal: c.stop_signal().clone().unwrap_or_default(),
            healthcheck: self.healthcheck.clone().map(|h| HealthConfig {
                test: h.test.unwrap_or_default(),
                interval: dur(h.interval),
                timeout: dur(h.timeout),
                start_period: dur(h.start_period),
                retries: h
                    .retries
                    .filter(|r| *r > 0)
                    .and_then(|r| u64::try_from(r).ok()),
            }),
            volumes,
            labels: c
                .labels()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
        }
    }
}

/// An RFC 3339 time of a config; anything unreadable is [`Timestamp::ZERO`].
pub fn parse_time(t: Option<&str>) -> Timestamp {
    t.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
        .and_then(|t| t.timestamp_nanos_opt())
        .map(Timestamp::from_unix_nanos)
        .unwrap_or(Timestamp::ZERO)
}

/// A descriptor's digest in the content store's terms (sha256 only).
pub fn descriptor_digest(d: &Descriptor, what: &str) -> Result<Digest, RuntimeError> {
    let s = d.digest().to_string();
    Digest::parse(&s).map_err(|why| {
        RuntimeError::InvalidImage(format!("{what}: descriptor digest {s:?}: {why}"))
    })
}

/// An image manifest or an index of them.
// Short-lived (one per document read), so its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    Manifest(ImageManifest),
    Index(ImageIndex),
}

/// Just enough of a document to tell which one it is before oci-spec reads it whole.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    manifests: Option<serde::de::IgnoredAny>,
}

pub struct Document;

impl Document {
    pub fn parse(bytes: &[u8], what: &str) -> Result<Parsed, RuntimeError> {
        let bad = |e: serde_json::Error| RuntimeError::corrupt(what, e);
        let probe: Probe = serde_json::from_slice(bytes).map_err(bad)?;
        match (&probe.config, &probe.manifests) {
            (Some(_), _) => Ok(Parsed::Manifest(
                serde_json::from_slice(bytes).map_err(bad)?,
            )),
            (None, Some(_)) => Ok(Parsed::Index(serde_json::from_slice(bytes).map_err(bad)?)),
            (None, None) => Err(RuntimeError::InvalidImage(format!(
                "{what}: neither an image manifest nor an index (media type {:?}, schema \
                 version {}; schema 1 manifests are not supported)",
                probe.media_type.unwrap_or_default(),
                probe.schema_version.unwrap_or_default(),
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
            m.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == arch
            })
        })
        .ok_or_else(|| {
            let have: Vec<String> = manifests
                .iter()
                .filter_map(|m| m.platform().as_ref())
                .map(|p| format!("{}/{}", p.os(), p.architecture()))
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_A: &str = "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";
    const HEX_B: &str = "e7d92cdc71feacf90708cb59182d0df1b911f8ae022d29e8e95d75ca6a99776a";

    /// A Docker schema 2 manifest as `docker push` writes it, which the hand-written types read.
    #[test]
    fn reads_a_docker_schema2_manifest() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",
               "config":{{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":"sha256:{HEX_A}"}},
               "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2479,"digest":"sha256:{HEX_B}"}}]}}"#
        );
        let Ok(Parsed::Manifest(m)) = Document::parse(m.as_bytes(), "m") else {
            panic!("not a manifest");
        };
        assert_eq!(
            descriptor_digest(m.config(), "m")
                .ok()
                .map(|d| d.to_string()),
            Some(format!("sha256:{HEX_A}"))
        );
        assert_eq!(m.layers().len(), 1);
        assert_eq!(m.layers()[0].size(), 2479);
    }

    #[test]
    fn picks_this_platform_from_a_manifest_list() {
        let arch = host_arch();
        let l = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[
               {{"mediaType":"{DOCKER_MANIFEST}","size":1,"digest":"sha256:{HEX_A}","platform":{{"architecture":"s390x","os":"linux"}}}},
               {{"mediaType":"{DOCKER_MANIFEST}","size":1,"digest":"sha256:{HEX_B}","platform":{{"architecture":"{arch}","os":"linux","variant":"v8"}}}}]}}"#
        );
        let Ok(Parsed::Index(i)) = Document::parse(l.as_bytes(), "l") else {
            panic!("not an index");
        };
        let chosen = pick_platform(i.manifests(), "l").map(|d| d.digest().to_string());
        assert_eq!(chosen.ok(), Some(format!("sha256:{HEX_B}")));
        let none = pick_platform(&i.manifests()[..1], "l").map(|_| ());
        let Err(e) = none else { panic!("s390x picked") };
        assert!(e.to_string().contains("linux/s390x"), "{e}");
    }

    #[test]
    fn schema1_and_bad_digests_are_refused_with_the_reason() {
        let s1 = br#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]}"#;
        let Err(e) = Document::parse(s1, "m") else {
            panic!("schema 1 parsed")
        };
        assert!(e.to_string().contains("schema 1"), "{e}");
        let bad = br#"{"schemaVersion":2,"config":{"mediaType":"x","size":1,"digest":"sha256:zz"},"layers":[]}"#;
        let Err(e) = Document::parse(bad, "m") else {
            panic!("bad digest parsed")
        };
        // The digest parser's error is the cause, in the chain after the document's name.
        let text = shoal_types::error::chain(&e);
        assert!(text.contains("m: Invalid digest length"), "{text}");
    }

    /// A config as `docker build` writes it (Docker's `Healthcheck`, volume and port sets, null
    /// fields), read into what a task runs.
    #[test]
    fn reads_a_docker_image_config() {
        let c = format!(
            r#"{{"architecture":"amd64","os":"linux","created":"2024-01-02T03:04:05.5Z",
               "config":{{"User":"app","Env":["PATH=/bin","A=1"],"Entrypoint":["/init"],"Cmd":null,
                 "WorkingDir":"/srv","StopSignal":"SIGINT","Labels":{{"b":"2","a":"1"}},
                 "ExposedPorts":{{"80/tcp":{{}}}},"Volumes":{{"/z":{{}},"/data":{{}}}},
                 "Healthcheck":{{"Test":["CMD-SHELL","true"],"Interval":2000000000,"Timeout":0,"Retries":2}}}},
               "rootfs":{{"type":"layers","diff_ids":["sha256:{HEX_A}","sha256:{HEX_B}"]}},
               "history":[{{"created_by":"x","empty_layer":true}}]}}"#
        );
        let f = match ConfigFile::parse(c.as_bytes(), "c") {
            Ok(f) => f,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(f.diff_ids().len(), 2);
        assert_eq!(
            f.created(),
            Timestamp::from_unix_nanos(1_704_164_645_500_000_000)
        );
        let ic = f.image_config();
        assert_eq!(ic.entrypoint, vec!["/init".to_string()]);
        assert!(ic.cmd.is_empty());
        assert_eq!((ic.user.as_str(), ic.working_dir.as_str()), ("app", "/srv"));
        assert_eq!(ic.stop_signal, "SIGINT");
        assert_eq!(ic.volumes, vec!["/data".to_string(), "/z".to_string()]);
        assert_eq!(
            ic.labels.into_iter().collect::<Vec<_>>(),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        let hc = ic.healthcheck.unwrap_or_default();
        assert_eq!(hc.test, vec!["CMD-SHELL".to_string(), "true".to_string()]);
        assert_eq!(hc.interval, Some(Duration::from_secs(2)));
        assert_eq!((hc.timeout, hc.retries), (None, Some(2)));

        let bad = c.replace(&format!("sha256:{HEX_B}"), "sha256:nothex");
        let Err(e) = ConfigFile::parse(bad.as_bytes(), "c") else {
            panic!("bad diff ID parsed")
        };
        assert!(e.to_string().contains("diff ID \"sha256:nothex\""), "{e}");
    }
}
