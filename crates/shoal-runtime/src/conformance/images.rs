//! The behaviour of images and volumes as an engine serves them (see [`crate::catalog`]):
//! inspect and history of the harness's image by every name it has, tags that move and go,
//! a save that loads back with the same image ID, volumes made on request and pruned.
//!
//! What the suite tags and makes carries the harness's unique name: images under the
//! repositories [`image_repositories`] names (a harness on a shared engine removes them on
//! drop), volumes with the label [`MARK_LABEL`], which every prune here is scoped to.

use std::collections::BTreeMap;

use shoal_types::container::{Mount, MountKind};
use shoal_types::image_ref::familiar;

use super::{Harness, task};
use crate::catalog::{ANONYMOUS_VOLUME_LABEL, VolumeCreate, VolumePrune, VolumesPruned};
use crate::{RuntimeDriver, RuntimeError};

/// The label on the suite's volumes; its value is the harness's unique name.
pub const MARK_LABEL: &str = "com.shoal.conformance";

/// The repositories the suite tags images into for a harness whose unique name is `unique`:
/// one on Docker Hub's default registry, one with a registry and port.
pub fn image_repositories(unique: &str) -> [String; 2] {
    [
        format!("shoal-conformance/{unique}"),
        format!("localhost:5000/shoal-conformance/{unique}"),
    ]
}

fn not_found<T: std::fmt::Debug>(r: Result<T, RuntimeError>, what: &str) -> bool {
    match r {
        Err(RuntimeError::ImageNotFound(named)) => named.contains(what),
        _ => false,
    }
}

/// The harness's image in detail, by its name, its name without tag, its ID with and without
/// `sha256:` and a 12-digit prefix of it, all the same image; its history, newest first with
/// the image's ID and tags on top; a missing image is `ImageNotFound` naming it.
pub async fn image_inspect_and_history<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let image = h.image();
    let details = match d.inspect_image(&image).await {
        Ok(x) => x,
        Err(e) => panic!("{name}: inspecting {image}: {e}"),
    };
    let id = details.info.id.clone();
    let hex = id.strip_prefix("sha256:").unwrap_or_default().to_string();
    assert!(
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}: the image ID is sha256:<64 hex>: {id:?}"
    );
    assert!(
        details.info.repo_tags.contains(&familiar(&image)),
        "{name}: its tags name it: {:?}",
        details.info.repo_tags
    );
    assert_eq!(details.os, "linux", "{name}: {details:?}");
    assert!(!details.architecture.is_empty(), "{name}: {details:?}");
    assert!(
        !details.layers.is_empty() && details.layers.iter().all(|l| l.starts_with("sha256:")),
        "{name}: its layers are diff IDs: {:?}",
        details.layers
    );
    assert!(
        details.info.created.unix_nanos() > 0 && details.info.size > 0,
        "{name}: creation time and size: {:?}",
        details.info
    );
    assert_eq!(
        details.config.cmd,
        vec!["/bin/sh".to_string()],
        "{name}: the image's command"
    );
    assert!(
        details.config.env.contains(&"PATH=/bin".to_string()),
        "{name}: the image's environment: {:?}",
        details.config.env
    );
    let repository = image.split(':').next().unwrap_or(&image).to_string();
    for other in [
        id.clone(),
        hex.clone(),
        hex[..12].to_string(),
        format!("sha256:{}", &hex[..12]),
        repository,
    ] {
        match d.inspect_image(&other).await {
            Ok(x) => assert_eq!(x.info.id, id, "{name}: {other} is the same image"),
            Err(e) => panic!("{name}: inspecting {image} as {other}: {e}"),
        }
    }

    let history = match d.image_history(&image).await {
        Ok(x) => x,
        Err(e) => panic!("{name}: the history of {image}: {e}"),
    };
    let top = history
        .first()
        .unwrap_or_else(|| panic!("{name}: {image} has a history"));
    assert_eq!(top.id, id, "{name}: the newest step is the image");
    assert!(
        top.tags.contains(&familiar(&image)),
        "{name}: the newest step carries the tags: {top:?}"
    );
    assert!(
        history
            .iter()
            .skip(1)
            .all(|s| s.id == "<missing>" || s.id.starts_with("sha256:")),
        "{name}: steps below are <missing> or images: {history:?}"
    );
    assert!(
        history.iter().any(|s| s.size > 0) && history.iter().all(|s| s.created.unix_nanos() > 0),
        "{name}: steps with layers have sizes, every step a time: {history:?}"
    );

    let missing = "shoal-test/missing:latest";
    assert!(
        not_found(d.inspect_image(missing).await, missing),
        "{name}: inspecting a missing image is ImageNotFound naming it"
    );
    assert!(
        not_found(d.image_history(missing).await, missing),
        "{name}: the history of a missing image is ImageNotFound naming it"
    );
    let no_id = "0123456789ab";
    assert!(
        not_found(d.inspect_image(no_id).await, no_id),
        "{name}: an ID prefix no image has is ImageNotFound"
    );
}

/// Tags point at the image (by a Docker Hub name and by a registry with a port); a save of a
/// repository name holds its every tag, and loads back with the same image ID after the tags
/// were removed; a missing image saves nothing and tags nothing.
pub async fn image_tag_save_and_load<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let image = h.image();
    let id = match d.inspect_image(&image).await {
        Ok(x) => x.info.id,
        Err(e) => panic!("{name}: inspecting {image}: {e}"),
    };
    let [hub, registry] = image_repositories(&h.unique());
    let tags = [
        format!("{hub}:one"),
        format!("{hub}:three"),
        format!("{registry}:two"),
    ];
    for t in &tags {
        if let Err(e) = d.tag_image(&image, t).await {
            panic!("{name}: tagging {image} as {t}: {e}");
        }
        match d.inspect_image(t).await {
            Ok(x) => {
                assert_eq!(x.info.id, id, "{name}: {t} names the image");
                assert!(
                    x.last_tag_time.is_some_and(|t| t.unix_nanos() > 0),
                    "{name}: a tagged image has a last tag time: {x:?}"
                );
            }
            Err(e) => panic!("{name}: inspecting {t}: {e}"),
        }
    }
    let listed = d.inspect_image(&image).await.map(|x| x.info.repo_tags);
    assert!(
        listed
            .as_ref()
            .is_ok_and(|l| tags.iter().all(|t| l.contains(&familiar(t)))),
        "{name}: the image lists its new tags: {listed:?}"
    );
    let missing = "shoal-test/missing:latest";
    assert!(
        not_found(d.tag_image(missing, &tags[0]).await, missing),
        "{name}: tagging a missing image is ImageNotFound"
    );

    let dir = h.host_dir(&[]).await;
    let archive = std::path::PathBuf::from(format!("{dir}/images.tar"));
    if let Err(e) = d.save_images(std::slice::from_ref(&hub), &archive).await {
        panic!("{name}: saving {hub}: {e}");
    }
    let nothing = std::path::PathBuf::from(format!("{dir}/nothing.tar"));
    assert!(
        not_found(
            d.save_images(&[missing.to_string()], &nothing).await,
            missing
        ),
        "{name}: saving a missing image is ImageNotFound"
    );
    assert!(!nothing.exists(), "{name}: a failed save leaves no archive");
    for t in &tags[..2] {
        if let Err(e) = d.remove_image(t, false).await {
            panic!("{name}: untagging {t}: {e}");
        }
        assert!(
            not_found(d.inspect_image(t).await, t),
            "{name}: an untagged name is gone"
        );
    }
    let loaded = match d.load_image(&archive).await {
        Ok(l) => l,
        Err(e) => panic!("{name}: loading what it saved: {e}"),
    };
    for t in &tags[..2] {
        assert!(
            loaded.contains(&familiar(t)),
            "{name}: the load reports {t}: {loaded:?}"
        );
        match d.inspect_image(t).await {
            Ok(x) => assert_eq!(x.info.id, id, "{name}: {t} is back, the same image"),
            Err(e) => panic!("{name}: inspecting {t} after the load: {e}"),
        }
    }
    for t in &tags {
        if let Err(e) = d.remove_image(t, false).await {
            panic!("{name}: untagging {t}: {e}");
        }
    }
    assert!(
        d.inspect_image(&image).await.is_ok(),
        "{name}: untagging the copies keeps the image"
    );
}

fn volume(name: &str, labels: &[(&str, &str)]) -> VolumeCreate {
    VolumeCreate {
        name: name.to_string(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        options: BTreeMap::new(),
    }
}

async fn prune<H: Harness>(h: &H, d: &H::Driver, filter: VolumePrune) -> Vec<String> {
    match d.prune_volumes(&filter).await {
        Ok(VolumesPruned { mut names, .. }) => {
            names.sort();
            names
        }
        Err(e) => panic!("{}: pruning with {filter:?}: {e}", h.name()),
    }
}

/// A volume made on request is listed with its labels, and making it again returns it as it
/// was; a bad name is refused. A prune removes unused anonymous volumes, named ones too with
/// `all`, honours `label` and `label!`, and never removes a volume a task uses.
pub async fn volume_create_and_prune<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let u = h.unique();
    let mark = (MARK_LABEL, u.as_str());
    let (named, anon, used) = (
        format!("conf-{u}-named"),
        format!("conf-{u}-anon"),
        format!("conf-{u}-used"),
    );
    let made = match d
        .create_volume(&volume(&named, &[mark, ("team", "a")]))
        .await
    {
        Ok(v) => v,
        Err(e) => panic!("{name}: creating {named}: {e}"),
    };
    assert_eq!(made.name, named, "{name}");
    assert_eq!(
        made.labels.get("team").map(String::as_str),
        Some("a"),
        "{name}: its labels: {made:?}"
    );
    assert!(
        !made.mountpoint.is_empty()
            && made.created_at.unix_nanos() > 0
            && made.in_use_by.is_empty(),
        "{name}: {made:?}"
    );
    let again = d.create_volume(&volume(&named, &[("team", "b")])).await;
    assert!(
        again
            .as_ref()
            .is_ok_and(|v| v.labels.get("team").map(String::as_str) == Some("a")),
        "{name}: making it again returns it unchanged: {again:?}"
    );
    let listed = d
        .volumes()
        .await
        .map(|l| l.into_iter().any(|v| v.name == named));
    assert!(
        matches!(listed, Ok(true)),
        "{name}: it is listed: {listed:?}"
    );
    assert!(
        matches!(
            d.create_volume(&volume("bad/name", &[])).await,
            Err(RuntimeError::InvalidSpec { .. })
        ),
        "{name}: a name with a slash is refused"
    );

    let anonymous = [mark, (ANONYMOUS_VOLUME_LABEL, "")];
    for v in [&anon, &used] {
        if let Err(e) = d.create_volume(&volume(v, &anonymous)).await {
            panic!("{name}: creating {v}: {e}");
        }
    }
    let mut user = task(h, "voluser", "exit 0");
    user.container.mounts = vec![Mount {
        kind: MountKind::Volume,
        source: used.clone(),
        target: "/data".into(),
        ..Default::default()
    }];
    if let Err(e) = d.prepare(&user).await {
        panic!("{name}: preparing a task that mounts {used}: {e}");
    }
    let ours = || vec![format!("{MARK_LABEL}={u}")];
    assert_eq!(
        prune(
            h,
            &d,
            VolumePrune {
                labels: ours(),
                ..Default::default()
            }
        )
        .await,
        vec![anon.clone()],
        "{name}: by default only unused anonymous volumes go"
    );
    assert_eq!(
        prune(
            h,
            &d,
            VolumePrune {
                all: true,
                labels: ours(),
                not_labels: vec!["team=a".into()],
            }
        )
        .await,
        Vec::<String>::new(),
        "{name}: label! keeps the volumes that carry it"
    );
    assert_eq!(
        prune(
            h,
            &d,
            VolumePrune {
                all: true,
                labels: ours(),
                ..Default::default()
            }
        )
        .await,
        vec![named.clone()],
        "{name}: with all, named volumes go too, but never one in use"
    );
    if let Err(e) = d.remove(&user.task_id).await {
        panic!("{name}: removing the task: {e}");
    }
    assert_eq!(
        prune(
            h,
            &d,
            VolumePrune {
                all: true,
                labels: ours(),
                ..Default::default()
            }
        )
        .await,
        vec![used.clone()],
        "{name}: a volume no task uses any more goes"
    );
    let left: Vec<String> = d
        .volumes()
        .await
        .map(|l| {
            l.into_iter()
                .filter(|v| v.labels.get(MARK_LABEL) == Some(&u))
                .map(|v| v.name)
                .collect()
        })
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "{name}: nothing of the suite's is left: {left:?}"
    );
}
