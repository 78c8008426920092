//! What the store shows of an image (inspect, history), tags, and `docker save` archives
//! written from the store: the same bytes come out (config and layer digests are the image's),
//! the archive loads back into an empty store as the same image, a repository name saves its
//! every tag, and what cannot be saved is refused without leaving an archive behind.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use shoal_image::LocalImageStore;
use shoal_runtime::RuntimeError;
use shoal_runtime::image::ImageStore;
use shoal_types::Timestamp;

fn open(dir: &Path, name: &str) -> LocalImageStore {
    match LocalImageStore::open(&dir.join(name), Vec::new()) {
        Ok(s) => s,
        Err(e) => panic!("open: {e}"),
    }
}

/// A docker save archive of one image of two layers (one gzip'd in the archive, as a pull
/// keeps it) whose config has Docker's build history, exposed ports and a comment.
fn archive(tags: &[&str]) -> (Vec<u8>, Vec<u8>, Vec<String>) {
    let l1 = layer(&[
        ("bin/", Kind::Dir, b"", ""),
        ("bin/tool", Kind::File, b"#!/bin/sh\necho tool\n", ""),
    ]);
    let l2 = layer(&[("etc/motd", Kind::File, b"hello\n", "")]);
    let diff_ids = vec![sha256(&l1), sha256(&l2)];
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "comment": "made by hand",
        "docker_version": "20.10.24",
        "author": "shoal",
        "config": {
            "Cmd": ["/bin/tool"],
            "Env": ["PATH=/bin"],
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "Volumes": {"/data": {}},
            "Labels": {"a": "1"},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": "2024-01-02T03:04:01Z", "created_by": "COPY tool /bin/tool"},
            {"created": "2024-01-02T03:04:02Z", "created_by": "ENV PATH=/bin", "empty_layer": true},
            {"created": "2024-01-02T03:04:03Z", "created_by": "RUN echo hello > /etc/motd", "comment": "step 3"},
            {"created": "2024-01-02T03:04:05Z", "created_by": "CMD [\"/bin/tool\"]", "empty_layer": true},
        ],
    })
    .to_string()
    .into_bytes();
    let mut out = Vec::new();
    entry(&mut out, "l0.tar.gz", Kind::File, &gzip(&l1), "");
    entry(&mut out, "l1.tar", Kind::File, &l2, "");
    let config_name = format!("{}.json", hexof(&config));
    entry(&mut out, &config_name, Kind::File, &config, "");
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": tags, "Layers": ["l0.tar.gz", "l1.tar"],
    }])
    .to_string();
    entry(
        &mut out,
        "manifest.json",
        Kind::File,
        manifest.as_bytes(),
        "",
    );
    (finish(out), config, diff_ids)
}

struct Env {
    dir: tempfile::TempDir,
    store: LocalImageStore,
}

impl Env {
    async fn with(tags: &[&str]) -> (Env, Vec<u8>, Vec<String>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(dir.path(), "store");
        let (bytes, config, diff_ids) = archive(tags);
        let p = write(dir.path(), "in.tar", &bytes);
        if let Err(e) = store.load(&p).await {
            panic!("load: {e}");
        }
        (Env { dir, store }, config, diff_ids)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn save(&self, refs: &[&str], name: &str) -> Result<Vec<u8>, RuntimeError> {
        let refs: Vec<String> = refs.iter().map(|s| s.to_string()).collect();
        let out = self.path(name);
        self.store.save(&refs, &out).await?;
        Ok(std::fs::read(&out).expect("the archive"))
    }
}

fn json_member(files: &BTreeMap<String, Vec<u8>>, name: &str) -> serde_json::Value {
    let bytes = files
        .get(name)
        .unwrap_or_else(|| panic!("{name} is in the archive: {:?}", files.keys()));
    serde_json::from_slice(bytes).expect("JSON")
}

#[tokio::test]
async fn inspect_and_history_read_the_config() {
    let (env, config, diff_ids) = Env::with(&["shoal-test/hand:1"]).await;
    let d = env
        .store
        .inspect("shoal-test/hand:1")
        .await
        .expect("inspect");
    assert_eq!(d.info.id, sha256(&config));
    assert_eq!(d.info.repo_tags, vec!["shoal-test/hand:1".to_string()]);
    assert_eq!(d.layers, diff_ids);
    assert_eq!(
        d.exposed_ports,
        vec!["53/udp".to_string(), "80/tcp".to_string()]
    );
    assert_eq!((d.architecture.as_str(), d.os.as_str()), ("amd64", "linux"));
    assert_eq!(
        (d.comment.as_str(), d.author.as_str()),
        ("made by hand", "shoal")
    );
    assert_eq!(d.docker_version, "20.10.24");
    assert_eq!(d.config.volumes, vec!["/data".to_string()]);
    assert_eq!(d.last_tag_time, None, "never tagged here");
    for by in [&d.info.id[..], &d.info.id[7..19], "shoal-test/hand:1"] {
        let again = env.store.inspect(by).await.expect("inspect");
        assert_eq!(again.info.id, d.info.id, "{by}");
    }
    assert!(matches!(
        env.store.inspect("shoal-test/hand:2").await,
        Err(RuntimeError::ImageNotFound(n)) if n == "shoal-test/hand:2"
    ));

    let h = env
        .store
        .history("shoal-test/hand:1")
        .await
        .expect("history");
    let steps: Vec<(&str, &str, bool)> = h
        .iter()
        .map(|s| (s.id.as_str(), s.created_by.as_str(), s.size > 0))
        .collect();
    assert_eq!(
        steps,
        vec![
            (d.info.id.as_str(), "CMD [\"/bin/tool\"]", false),
            ("<missing>", "RUN echo hello > /etc/motd", true),
            ("<missing>", "ENV PATH=/bin", false),
            ("<missing>", "COPY tool /bin/tool", true),
        ]
    );
    assert_eq!(h[0].tags, vec!["shoal-test/hand:1".to_string()]);
    assert_eq!(h[1].comment, "step 3");
    assert_eq!(
        h[3].created,
        Timestamp::from_unix_nanos(1_704_164_641_000_000_000)
    );
}

#[tokio::test]
async fn tags_move_and_record_their_time() {
    let (env, _, _) = Env::with(&["shoal-test/hand:1"]).await;
    let now = Timestamp::from_unix_nanos(1_800_000_000_000_000_000);
    env.store
        .tag("shoal-test/hand:1", "localhost:5000/team/app:v2", now)
        .await
        .expect("tag");
    let d = env
        .store
        .inspect("localhost:5000/team/app:v2")
        .await
        .expect("inspect");
    assert_eq!(d.last_tag_time, Some(now));
    let mut tags = d.info.repo_tags;
    tags.sort();
    assert_eq!(
        tags,
        vec![
            "localhost:5000/team/app:v2".to_string(),
            "shoal-test/hand:1".to_string()
        ]
    );
    assert!(matches!(
        env.store.tag("shoal-test/nothing", "x:1", now).await,
        Err(RuntimeError::ImageNotFound(_))
    ));
    for bad in ["Bad:1", &format!("x@sha256:{}", "a".repeat(64))] {
        assert!(
            matches!(
                env.store.tag("shoal-test/hand:1", bad, now).await,
                Err(RuntimeError::InvalidSpec { .. })
            ),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_save_holds_the_same_bytes_and_loads_back_as_the_same_image() {
    let (env, config, diff_ids) = Env::with(&["shoal-test/hand:1", "shoal-test/hand:2"]).await;
    let id = sha256(&config);
    let saved = env
        .save(&["shoal-test/hand"], "out.tar")
        .await
        .expect("save");
    let files: BTreeMap<String, Vec<u8>> = members(&saved).into_iter().collect();
    assert_eq!(
        files.get(&format!("blobs/sha256/{}", &id[7..])),
        Some(&config),
        "the config byte for byte"
    );
    for d in &diff_ids {
        let layer = files
            .get(&format!("blobs/sha256/{}", &d[7..]))
            .unwrap_or_else(|| panic!("layer {d}"));
        assert_eq!(
            &sha256(layer),
            d,
            "an uncompressed layer whose digest is its diff ID"
        );
    }
    let manifest = json_member(&files, "manifest.json");
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["shoal-test/hand:1", "shoal-test/hand:2"]),
        "a repository name saves its every tag"
    );
    assert_eq!(manifest[0]["Config"], format!("blobs/sha256/{}", &id[7..]));
    let index = json_member(&files, "index.json");
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        "docker.io/shoal-test/hand:1"
    );
    let repositories = json_member(&files, "repositories");
    assert!(
        repositories["shoal-test/hand"]["2"].is_string(),
        "{repositories}"
    );
    assert!(files.contains_key("oci-layout"));

    // The same images give the same archive.
    let again = env
        .save(&["shoal-test/hand"], "again.tar")
        .await
        .expect("save");
    assert_eq!(again, saved);

    let fresh = open(env.dir.path(), "fresh");
    let loaded = fresh.load(&env.path("out.tar")).await.expect("load");
    assert_eq!(
        loaded,
        vec![
            "shoal-test/hand:1".to_string(),
            "shoal-test/hand:2".to_string()
        ]
    );
    let d = fresh.inspect("shoal-test/hand:2").await.expect("inspect");
    assert_eq!(d.info.id, id, "the same image ID after the round trip");
    assert_eq!(d.layers, diff_ids);

    // By ID: the image, untagged.
    let by_id = env.save(&[&id[7..19]], "by-id.tar").await.expect("save");
    let files: BTreeMap<String, Vec<u8>> = members(&by_id).into_iter().collect();
    assert_eq!(
        json_member(&files, "manifest.json")[0]["RepoTags"],
        serde_json::Value::Null
    );
    assert!(!files.contains_key("repositories"));
}

#[tokio::test]
async fn what_cannot_be_saved_is_refused_and_leaves_no_archive() {
    let (env, _, diff_ids) = Env::with(&["shoal-test/hand:1"]).await;
    let missing = env
        .save(&["shoal-test/hand:1", "shoal-test/none:1"], "m.tar")
        .await;
    assert!(
        matches!(&missing, Err(RuntimeError::ImageNotFound(n)) if n == "shoal-test/none:1"),
        "{missing:?}"
    );
    assert!(!env.path("m.tar").exists());

    // A layer stored before the store kept layer blobs.
    let blob = env
        .path("store/layers")
        .join(&diff_ids[1][7..])
        .join("blob");
    std::fs::remove_file(&blob).expect("remove the blob");
    let old = env.save(&["shoal-test/hand:1"], "old.tar").await;
    let why = match old {
        Err(e @ RuntimeError::InvalidImage(_)) => e.to_string(),
        other => panic!("expected InvalidImage, got {other:?}"),
    };
    assert!(why.contains("load or pull it again"), "{why}");
    assert!(!env.path("old.tar").exists());

    // A kept blob that no longer matches its diff ID.
    std::fs::write(&blob, layer(&[("etc/motd", Kind::File, b"tampered", "")])).expect("write");
    std::fs::write(blob.with_file_name("tar-size"), "2048").expect("write");
    let damaged = env.save(&["shoal-test/hand:1"], "damaged.tar").await;
    assert!(
        matches!(&damaged, Err(RuntimeError::InvalidImage(w)) if w.contains("damaged")),
        "{damaged:?}"
    );
    assert!(!env.path("damaged.tar").exists());
}
