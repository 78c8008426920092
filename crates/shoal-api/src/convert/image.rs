//! Images as Docker's image endpoints show them (`docker image inspect`, `docker history`), and
//! the checks of what clients send there: image names in paths, `docker tag`'s `repo` and
//! `tag`, and `docker save`'s `names`. Pure; the handlers are in `routes::image_ops`.

use serde_json::{Map, Value, json};
use shoal_runtime::catalog::{ImageDetails, ImageHistoryEntry};
use shoal_runtime::image::ImageConfig;
use shoal_types::Timestamp;
use shoal_types::clock::format_rfc3339;
use shoal_types::image_ref::ImageRef;

use crate::convert::nanos;
use crate::error::ApiError;

/// Docker's zero time, which it shows for times never set (`LastTagTime`).
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn strings(v: &[String]) -> Value {
    if v.is_empty() { Value::Null } else { json!(v) }
}

fn set(v: &[String]) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        Value::Object(v.iter().map(|k| (k.clone(), json!({}))).collect())
    }
}

/// The image's config in the shape of Docker's container config, which every API version
/// shows (1.50's OCI-shaped config is a subset of it).
fn config_json(c: &ImageConfig, exposed_ports: &[String]) -> Value {
    let mut m = Map::new();
    for key in ["Hostname", "Domainname"] {
        m.insert(key.into(), json!(""));
    }
    m.insert("User".into(), json!(c.user));
    for key in ["AttachStdin", "AttachStdout", "AttachStderr"] {
        m.insert(key.into(), json!(false));
    }
    if !exposed_ports.is_empty() {
        m.insert("ExposedPorts".into(), set(exposed_ports));
    }
    for key in ["Tty", "OpenStdin", "StdinOnce"] {
        m.insert(key.into(), json!(false));
    }
    m.insert("Env".into(), strings(&c.env));
    m.insert("Cmd".into(), strings(&c.cmd));
    if let Some(h) = &c.healthcheck {
        let mut hc = Map::new();
        hc.insert("Test".into(), json!(h.test));
        for (key, d) in [
            ("Interval", h.interval),
            ("Timeout", h.timeout),
            ("StartPeriod", h.start_period),
        ] {
            if let Some(d) = d {
                hc.insert(key.into(), json!(nanos(d)));
            }
        }
        if let Some(r) = h.retries {
            hc.insert("Retries".into(), json!(r));
        }
        m.insert("Healthcheck".into(), Value::Object(hc));
    }
    m.insert("Image".into(), json!(""));
    m.insert("Volumes".into(), set(&c.volumes));
    m.insert("WorkingDir".into(), json!(c.working_dir));
    m.insert("Entrypoint".into(), strings(&c.entrypoint));
    m.insert("OnBuild".into(), Value::Null);
    m.insert(
        "Labels".into(),
        if c.labels.is_empty() {
            Value::Null
        } else {
            json!(c.labels)
        },
    );
    if !c.stop_signal.is_empty() {
        m.insert("StopSignal".into(), json!(c.stop_signal));
    }
    Value::Object(m)
}

fn time_or_zero(t: Option<Timestamp>) -> String {
    t.filter(|t| *t != Timestamp::ZERO)
        .map_or_else(|| ZERO_TIME.to_string(), format_rfc3339)
}

/// `GET /images/{name}/json` for API version `version`. `ContainerConfig` (gone from Docker's
/// answer since 1.45) is kept at every version: docker-compose 1.29 reads its `Volumes` when it
/// recreates a container, whatever version it speaks, and the image's config is what a
/// classic build left there.
pub fn inspect_json(d: &ImageDetails, version: (u32, u32)) -> Value {
    let config = config_json(&d.config, &d.exposed_ports);
    let mut m = Map::new();
    m.insert("Id".into(), json!(d.info.id));
    m.insert("RepoTags".into(), json!(d.info.repo_tags));
    m.insert("RepoDigests".into(), json!(d.info.repo_digests));
    m.insert("Parent".into(), json!(d.parent));
    m.insert("Comment".into(), json!(d.comment));
    m.insert("Created".into(), json!(time_or_zero(Some(d.info.created))));
    if version < (1, 45) {
        m.insert("Container".into(), json!(""));
    }
    m.insert("ContainerConfig".into(), config.clone());
    m.insert("DockerVersion".into(), json!(d.docker_version));
    m.insert("Author".into(), json!(d.author));
    m.insert("Config".into(), config);
    m.insert("Architecture".into(), json!(d.architecture));
    if !d.variant.is_empty() {
        m.insert("Variant".into(), json!(d.variant));
    }
    m.insert("Os".into(), json!(d.os));
    m.insert("Size".into(), json!(d.info.size));
    if version < (1, 44) {
        m.insert("VirtualSize".into(), json!(d.info.size));
    }
    m.insert(
        "GraphDriver".into(),
        json!({ "Data": {}, "Name": d.storage_driver }),
    );
    m.insert(
        "RootFS".into(),
        json!({ "Type": "layers", "Layers": d.layers }),
    );
    m.insert(
        "Metadata".into(),
        json!({ "LastTagTime": time_or_zero(d.last_tag_time) }),
    );
    Value::Object(m)
}

/// `GET /images/{name}/history`: newest step first; `Created` in Unix seconds.
pub fn history_json(steps: &[ImageHistoryEntry]) -> Value {
    Value::Array(
        steps
            .iter()
            .map(|s| {
                json!({
                    "Id": s.id,
                    "Created": s.created.unix_nanos().div_euclid(1_000_000_000),
                    "CreatedBy": s.created_by,
                    "Tags": strings(&s.tags),
                    "Size": s.size,
                    "Comment": s.comment,
                })
            })
            .collect(),
    )
}

/// An image name from a path or query: an image ID or a prefix of one (with or without
/// `sha256:`), or a reference (`busybox`, `host:5000/team/app:1`, `app@sha256:...`). Anything
/// else is refused as Docker refuses it, with 400.
pub fn check_image_name(name: &str) -> Result<(), ApiError> {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    // IDs are lowercase, as Docker reads them: `ABC` is a (bad) name, not an ID.
    if !hex.is_empty()
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Ok(());
    }
    ImageRef::parse(name)
        .map(|_| ())
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `docker tag`'s target from `POST /images/{name}/tag?repo=R&tag=T`: a repository (no tag,
/// no digest) and a tag (`latest` when empty). Returns the full `registry/repository:tag`.
pub fn tag_target(repo: &str, tag: &str) -> Result<String, ApiError> {
    if repo.is_empty() {
        return Err(ApiError::invalid(
            "repo",
            "a repository to tag the image into is required",
        ));
    }
    let r = ImageRef::parse(repo).map_err(|e| ApiError::invalid("repo", e))?;
    if r.digest().is_some() {
        return Err(ApiError::invalid("repo", "cannot tag with a digest"));
    }
    if r.tag_written() {
        return Err(ApiError::invalid(
            "repo",
            format!("{repo:?} has a tag; give the tag in `tag`"),
        ));
    }
    if r.familiar_name() == "sha256" {
        return Err(ApiError::invalid(
            "repo",
            "refusing to create an ambiguous tag using digest algorithm as name",
        ));
    }
    let tag = if tag.is_empty() { "latest" } else { tag };
    let full = format!("{}:{tag}", r.familiar_name());
    let t = ImageRef::parse(&full).map_err(|e| ApiError::invalid("tag", e))?;
    match (t.tagged(), t.digest()) {
        (Some(tagged), None) => Ok(tagged),
        _ => Err(ApiError::invalid("tag", format!("{tag:?} is not a tag"))),
    }
}

/// `docker save`'s images from the query (`names=a&names=b`, as `GET /images/get` takes them),
/// each checked; at least one.
pub fn save_names(query: &[(String, String)]) -> Result<Vec<String>, ApiError> {
    let names: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "names")
        .map(|(_, v)| v.clone())
        .collect();
    if names.is_empty() {
        return Err(ApiError::invalid("names", "at least one image is required"));
    }
    for n in &names {
        check_image_name(n)?;
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_runtime::ImageInfo;

    fn details() -> ImageDetails {
        ImageDetails {
            info: ImageInfo {
                id: format!("sha256:{}", "a".repeat(64)),
                repo_tags: vec!["busybox:latest".into()],
                repo_digests: Vec::new(),
                size: 10,
                created: Timestamp::from_unix_nanos(1_700_000_000_000_000_000),
            },
            parent: String::new(),
            comment: String::new(),
            author: String::new(),
            docker_version: String::new(),
            architecture: "amd64".into(),
            variant: String::new(),
            os: "linux".into(),
            config: ImageConfig {
                cmd: vec!["/bin/sh".into()],
                volumes: vec!["/data".into()],
                ..Default::default()
            },
            exposed_ports: vec!["80/tcp".into()],
            layers: vec![format!("sha256:{}", "b".repeat(64))],
            last_tag_time: None,
            storage_driver: "overlay".into(),
        }
    }

    #[test]
    fn inspect_has_dockers_shape_at_each_version() {
        let old = inspect_json(&details(), (1, 41));
        assert_eq!(old["Config"]["Cmd"], json!(["/bin/sh"]));
        assert_eq!(old["Config"]["Entrypoint"], Value::Null);
        assert_eq!(old["Config"]["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(old["ContainerConfig"]["Volumes"], json!({"/data": {}}));
        assert_eq!(old["RootFS"]["Type"], "layers");
        assert_eq!(old["Metadata"]["LastTagTime"], ZERO_TIME);
        assert_eq!(old["Created"], "2023-11-14T22:13:20.000000000Z");
        assert_eq!(old["VirtualSize"], 10);
        let new = inspect_json(&details(), (1, 50));
        assert!(new.get("VirtualSize").is_none() && new.get("Container").is_none());
        assert_eq!(new["ContainerConfig"]["Volumes"], json!({"/data": {}}));
    }

    #[test]
    fn image_names_are_ids_or_references() {
        for ok in [
            "busybox",
            "host:5000/team/app:1",
            "abc123",
            &format!("sha256:{}", "a".repeat(64)),
            &"f".repeat(64),
        ] {
            assert!(check_image_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Bad Name", "Bad", "a//b", "x:-1"] {
            let e = check_image_name(bad).expect_err(bad);
            assert_eq!(e.status, http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn tag_targets_like_dockers() {
        assert_eq!(
            tag_target("host:5000/team/app", "1").ok().as_deref(),
            Some("host:5000/team/app:1")
        );
        assert_eq!(
            tag_target("app", "").ok().as_deref(),
            Some("docker.io/library/app:latest")
        );
        for (repo, tag, needle) in [
            ("", "1", "required"),
            ("App", "1", "lowercase"),
            ("app:2", "1", "has a tag"),
            (&format!("app@sha256:{}", "a".repeat(64)), "1", "digest"),
            ("app", "-x", "tag"),
            ("app", "a b", "tag"),
            ("sha256", "1", "ambiguous"),
        ] {
            let e = tag_target(repo, tag).expect_err(repo);
            assert!(e.message.contains(needle), "{repo} {tag}: {}", e.message);
            assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn save_takes_every_name_given() {
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            save_names(&q(&[("names", "a"), ("x", "y"), ("names", "b:1")])).ok(),
            Some(vec!["a".to_string(), "b:1".to_string()])
        );
        assert!(save_names(&q(&[])).is_err());
        assert!(save_names(&q(&[("names", "Bad")])).is_err());
    }
}
