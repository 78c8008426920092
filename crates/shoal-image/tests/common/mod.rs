//! Hand-built archives for the image store's tests. Entries are written byte by byte because
//! the `tar` crate (rightly) refuses to write the hostile paths these tests need.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use shoal_testkit::{Need, need};

pub const BUSYBOX_TAR: &str = shoal_testkit::TEST_ARCHIVE;

pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

pub fn hexof(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[derive(Clone, Copy)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
}

/// Appends one ustar entry with exactly `name` (no cleaning) to `out`.
pub fn entry(out: &mut Vec<u8>, name: &str, kind: Kind, data: &[u8], link: &str) {
    let mut h = tar::Header::new_ustar();
    {
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname = [0; 100];
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    let (t, mode) = match kind {
        Kind::File => (tar::EntryType::Regular, 0o644),
        Kind::Dir => (tar::EntryType::Directory, 0o705),
        Kind::Symlink => (tar::EntryType::Symlink, 0o777),
        Kind::Hardlink => (tar::EntryType::Link, 0o644),
        Kind::Char => (tar::EntryType::Char, 0o600),
    };
    h.set_entry_type(t);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(if matches!(kind, Kind::File) {
        data.len() as u64
    } else {
        0
    });
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    if matches!(kind, Kind::File) {
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
}

pub fn finish(mut out: Vec<u8>) -> Vec<u8> {
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

/// `(name, kind, data, link target)`.
pub type Entry<'a> = (&'a str, Kind, &'a [u8], &'a str);

/// A layer tar from entries.
pub fn layer(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, k, d, l) in entries {
        entry(&mut out, n, *k, d, l);
    }
    finish(out)
}

pub fn config_json(diff_ids: &[String]) -> Vec<u8> {
    serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": {
            "Cmd": ["/bin/sh"],
            "Env": ["PATH=/bin"],
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5_000_000_000i64, "Retries": 3},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string()
    .into_bytes()
}

/// A `docker save`-format archive of one image made of `layers` (uncompressed tars), with
/// `diff_ids` overriding the honest ones when given.
pub fn save_archive(layers: &[Vec<u8>], tags: &[&str], diff_ids: Option<Vec<String>>) -> Vec<u8> {
    let diff_ids = diff_ids.unwrap_or_else(|| layers.iter().map(|l| sha256(l)).collect());
    let config = config_json(&diff_ids);
    let config_name = format!("{}.json", hexof(&config));
    let mut out = Vec::new();
    let mut layer_names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let name = format!("l{i}/layer.tar");
        entry(&mut out, &format!("l{i}/"), Kind::Dir, b"", "");
        entry(&mut out, &name, Kind::File, l, "");
        layer_names.push(name);
    }
    entry(&mut out, &config_name, Kind::File, &config, "");
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": tags, "Layers": layer_names,
    }])
    .to_string();
    entry(
        &mut out,
        "manifest.json",
        Kind::File,
        manifest.as_bytes(),
        "",
    );
    finish(out)
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    if let Err(e) = std::fs::write(&p, bytes) {
        panic!("writing {}: {e}", p.display());
    }
    p
}

pub fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let r = e.write_all(b).and_then(|_| e.finish());
    match r {
        Ok(v) => v,
        Err(e) => panic!("gzip: {e}"),
    }
}

/// The busybox archive `tests/images/build.sh` writes; `None` only when the run opted out of
/// it (`shoal_testkit::need` fails the test otherwise).
pub fn busybox_archive() -> Option<Vec<u8>> {
    if !need(&[Need::TestArchive]) {
        return None;
    }
    match std::fs::read(BUSYBOX_TAR) {
        Ok(b) => Some(b),
        Err(e) => panic!("{BUSYBOX_TAR}: {e}; run tests/images/build.sh"),
    }
}

/// The members of a tar archive, in order, as (name, bytes) for regular files.
pub fn members(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(archive);
    let entries = match a.entries() {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    for e in entries {
        let mut e = match e {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        };
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        if let Err(err) = e.read_to_end(&mut data) {
            panic!("{name}: {err}");
        }
        out.push((name, data));
    }
    out
}

/// An OCI image layout built from a `docker save` archive: blobs/, index.json, oci-layout and
/// no manifest.json. With `gzip_layers`, layer blobs are gzip'd (their diff IDs stay).
/// With `docker25`, also writes the manifest.json Docker 25+ puts beside the layout, naming
/// blobs by path.
pub fn oci_from_save(
    save: &[u8],
    name: &str,
    gzip_layers: bool,
    corrupt_layer: bool,
    docker25: bool,
) -> Vec<u8> {
    let files: std::collections::BTreeMap<String, Vec<u8>> = members(save).into_iter().collect();
    let manifest: serde_json::Value = match files.get("manifest.json") {
        Some(m) => match serde_json::from_slice(m) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        },
        None => panic!("no manifest.json"),
    };
    let m = &manifest[0];
    let config = &files[m["Config"].as_str().unwrap_or_default()];
    let mut blobs: Vec<(String, Vec<u8>)> = vec![(hexof(config), config.clone())];
    let mut layer_descs = Vec::new();
    for l in m["Layers"].as_array().cloned().unwrap_or_default() {
        let raw = &files[l.as_str().unwrap_or_default()];
        let blob = if gzip_layers { gzip(raw) } else { raw.clone() };
        layer_descs.push(serde_json::json!({
            "mediaType": if gzip_layers {
                "application/vnd.oci.image.layer.v1.tar+gzip"
            } else {
                "application/vnd.oci.image.layer.v1.tar"
            },
            "digest": sha256(&blob),
            "size": blob.len(),
        }));
        let mut stored = blob.clone();
        if corrupt_layer && blobs.len() == 1 {
            if gzip_layers {
                // Same tar, other bytes: only the blob digest can tell.
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                stored = match e.write_all(raw).and_then(|_| e.finish()) {
                    Ok(v) => v,
                    Err(e) => panic!("{e}"),
                };
                assert_ne!(stored, blob);
            } else {
                let last = stored.len() - 1;
                stored[last] ^= 0xff;
            }
        }
        blobs.push((hexof(&blob), stored));
    }
    let image_manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(config), "size": config.len(),
        },
        "layers": layer_descs,
    })
    .to_string()
    .into_bytes();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(&image_manifest), "size": image_manifest.len(),
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "1"},
        }],
    })
    .to_string();
    blobs.push((hexof(&image_manifest), image_manifest));
    let mut out = Vec::new();
    entry(
        &mut out,
        "oci-layout",
        Kind::File,
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        "",
    );
    entry(&mut out, "index.json", Kind::File, index.as_bytes(), "");
    entry(&mut out, "blobs/", Kind::Dir, b"", "");
    entry(&mut out, "blobs/sha256/", Kind::Dir, b"", "");
    for (h, b) in &blobs {
        entry(&mut out, &format!("blobs/sha256/{h}"), Kind::File, b, "");
    }
    if docker25 {
        let layers: Vec<String> = blobs[1..blobs.len() - 1]
            .iter()
            .map(|(h, _)| format!("blobs/sha256/{h}"))
            .collect();
        let short = name.strip_prefix("docker.io/").unwrap_or(name);
        let m = serde_json::json!([{
            "Config": format!("blobs/sha256/{}", blobs[0].0),
            "RepoTags": [short],
            "Layers": layers,
        }])
        .to_string();
        entry(&mut out, "manifest.json", Kind::File, m.as_bytes(), "");
    }
    finish(out)
}

/// Root, for whiteouts (device nodes), trusted xattrs and mounts.
pub fn need_root() -> bool {
    need(&[Need::Root])
}

/// Detaches whatever a test mounted under its dir when the test ends, passed or failed.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        shoal_testkit::reap::unmount_under(&self.0);
    }
}
