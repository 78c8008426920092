//! `image save`: images of the store written as the archive Docker 25+ writes, which is both a
//! `docker save` archive (manifest.json, repositories) and an OCI image layout (oci-layout,
//! index.json, blobs/sha256/), so `docker load` of any version since 1.10, shoal's own load
//! and OCI tools read it:
//!
//! ```text
//! blobs/sha256/<config hex>    the image config, byte for byte (its digest is the image ID)
//! blobs/sha256/<diff-id hex>   each layer's uncompressed tar (its digest is its diff ID)
//! blobs/sha256/<manifest hex>  an OCI manifest per image
//! index.json, oci-layout       the OCI layout; one index entry per tag
//! manifest.json, repositories  Docker's
//! ```
//!
//! A layer's tar comes from the blob the store kept when it unpacked the layer, checked against
//! the diff ID as it is written. Every entry has mtime 0, owner root: the same images give the
//! same archive. Blocking; the caller holds off garbage collection while it runs.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use serde_json::{Value, json};
use shoal_runtime::RuntimeError;
use shoal_types::image_ref::{ImageRef, familiar};

use crate::digest::{Digest, HashingReader};
use crate::store::{Index, Store};
use crate::unpack::decompressed;

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// One image of the archive and the tags (full `registry/repo:tag`) it is saved under.
struct Chosen {
    id: String,
    tags: Vec<String>,
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |source| RuntimeError::Io { context, source }
}

/// Which images `references` name, in order, each once. A name without tag or digest is its
/// repository's every tag, when it has any (Docker's rule).
fn choose(
    store: &Store,
    index: &Index,
    references: &[String],
) -> Result<Vec<Chosen>, RuntimeError> {
    let mut out: Vec<Chosen> = Vec::new();
    let mut add = |id: &str, tag: Option<String>| {
        let at = match out.iter().position(|c| c.id == id) {
            Some(at) => at,
            None => {
                out.push(Chosen {
                    id: id.to_string(),
                    tags: Vec::new(),
                });
                out.len() - 1
            }
        };
        if let Some(t) = tag.filter(|t| !out[at].tags.contains(t)) {
            out[at].tags.push(t);
        }
    };
    for reference in references {
        let parsed = ImageRef::parse(reference).ok();
        if let Some(r) = parsed
            .as_ref()
            .filter(|r| !r.tag_written() && r.digest().is_none())
        {
            let name = r.name();
            let repo: Vec<(&String, &String)> = index
                .tags
                .iter()
                .filter(|(t, _)| ImageRef::parse(t).is_ok_and(|t| t.name() == name))
                .collect();
            if !repo.is_empty() {
                for (t, id) in repo {
                    add(id, Some(t.clone()));
                }
                continue;
            }
        }
        let Some(id) = store.lookup(index, reference)? else {
            return Err(RuntimeError::ImageNotFound(reference.to_string()));
        };
        let tag = parsed
            .filter(|r| r.digest().is_none())
            .and_then(|r| r.tagged())
            .filter(|t| index.tags.get(t) == Some(&id));
        add(&id, tag);
    }
    Ok(out)
}

/// A regular file entry (or a directory, with no data): root's, mtime 0.
fn header(path: &str, size: u64, dir: bool) -> Result<tar::Header, RuntimeError> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)
        .map_err(io_err(format!("naming {path} in the archive")))?;
    h.set_size(size);
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_entry_type(if dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    Ok(h)
}

fn add_bytes<W: Write>(
    b: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
) -> Result<(), RuntimeError> {
    let h = header(path, bytes.len() as u64, false)?;
    b.append(&h, bytes)
        .map_err(io_err(format!("writing {path} into the archive")))
}

fn to_json(v: &Value) -> Vec<u8> {
    // Serialising a `Value` cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// Writes the layer's uncompressed tar from the blob the store kept, checking its digest.
fn add_layer<W: Write>(
    b: &mut tar::Builder<W>,
    store: &Store,
    diff_id: &Digest,
    image: &str,
) -> Result<(), RuntimeError> {
    let Some((blob, size)) = store.layer_blob(diff_id) else {
        return Err(RuntimeError::InvalidImage(format!(
            "{image}: layer {diff_id} was stored before shoal kept layer archives, so it cannot \
             be saved; remove the image and load or pull it again"
        )));
    };
    let what = format!("{image}: layer {diff_id}");
    let file = File::open(&blob).map_err(io_err(format!("reading {}", blob.display())))?;
    let plain = decompressed(file)
        .map_err(io_err(format!("reading {}", blob.display())))?
        .map_err(|why| RuntimeError::InvalidImage(format!("{what}: {why}")))?;
    let mut hashing = HashingReader::new(plain.take(size));
    let path = format!("blobs/sha256/{}", diff_id.hex());
    b.append(&header(&path, size, false)?, &mut hashing)
        .map_err(io_err(format!("writing {path} into the archive")))?;
    let (got, len) = hashing
        .finish()
        .map_err(|e| RuntimeError::corrupt(what.clone(), e))?;
    if got != *diff_id || len != size {
        return Err(RuntimeError::InvalidImage(format!(
            "{what}: the stored layer is damaged (its content is {got}, {len} bytes)"
        )));
    }
    Ok(())
}

/// Writes the archive of the images `references` name to `out`; removes it on failure.
pub fn save(store: &Store, references: &[String], out: &Path) -> Result<(), RuntimeError> {
    let index = store.read_index()?;
    let chosen = choose(store, &index, references)?;
    let written = write(store, &index, &chosen, out);
    if written.is_err() {
        let _ = std::fs::remove_file(out);
    }
    written
}

fn write(store: &Store, index: &Index, chosen: &[Chosen], out: &Path) -> Result<(), RuntimeError> {
    let file = File::create(out).map_err(io_err(format!("creating {}", out.display())))?;
    let mut b = tar::Builder::new(BufWriter::new(file));
    for d in ["blobs/", "blobs/sha256/"] {
        b.append(&header(d, 0, true)?, std::io::empty())
            .map_err(io_err(format!("writing {d} into the archive")))?;
    }
    let mut written_layers: Vec<Digest> = Vec::new();
    let mut docker_manifest = Vec::new();
    let mut oci_index = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for c in chosen {
        let config = store.config_bytes(&c.id)?;
        let config_digest = Digest::of(&config);
        let record = index
            .images
            .get(&c.id)
            .ok_or_else(|| RuntimeError::ImageNotFound(c.id.clone()))?;
        let layers = record
            .layers
            .iter()
            .map(|l| {
                Digest::parse(l).map_err(|why| {
                    RuntimeError::InvalidImage(format!("{}: layer {l}: {why}", c.id))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        add_bytes(
            &mut b,
            &format!("blobs/sha256/{}", config_digest.hex()),
            &config,
        )?;
        let mut descriptors = Vec::new();
        for l in &layers {
            if !written_layers.contains(l) {
                add_layer(&mut b, store, l, &c.id)?;
                written_layers.push(l.clone());
            }
            let size = store.layer_blob(l).map_or(0, |(_, s)| s);
            descriptors
                .push(json!({ "mediaType": OCI_LAYER, "digest": l.to_string(), "size": size }));
        }
        let manifest = to_json(&json!({
            "schemaVersion": 2,
            "mediaType": crate::config::OCI_MANIFEST,
            "config": { "mediaType": OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len() },
            "layers": descriptors,
        }));
        let manifest_digest = Digest::of(&manifest);
        add_bytes(
            &mut b,
            &format!("blobs/sha256/{}", manifest_digest.hex()),
            &manifest,
        )?;
        let entry = |annotations: Option<Value>| {
            let mut e = json!({
                "mediaType": crate::config::OCI_MANIFEST,
                "digest": manifest_digest.to_string(),
                "size": manifest.len(),
            });
            if let Some(a) = annotations {
                e["annotations"] = a;
            }
            e
        };
        let mut repo_tags = Vec::new();
        for t in &c.tags {
            let Ok(r) = ImageRef::parse(t) else { continue };
            let tag = r.tag().unwrap_or_default().to_string();
            oci_index.push(entry(Some(json!({
                "io.containerd.image.name": r.to_string(),
                "org.opencontainers.image.ref.name": tag,
            }))));
            if let Some(top) = layers.last() {
                repositories
                    .entry(r.familiar_name())
                    .or_default()
                    .insert(tag, top.hex().to_string());
            }
            repo_tags.push(familiar(t));
        }
        if c.tags.is_empty() {
            oci_index.push(entry(None));
        }
        docker_manifest.push(json!({
            "Config": format!("blobs/sha256/{}", config_digest.hex()),
            "RepoTags": if repo_tags.is_empty() { Value::Null } else { json!(repo_tags) },
            "Layers": layers.iter().map(|l| format!("blobs/sha256/{}", l.hex())).collect::<Vec<_>>(),
        }));
    }
    add_bytes(
        &mut b,
        "index.json",
        &to_json(&json!({
            "schemaVersion": 2,
            "mediaType": crate::config::OCI_INDEX,
            "manifests": oci_index,
        })),
    )?;
    add_bytes(&mut b, "manifest.json", &to_json(&json!(docker_manifest)))?;
    add_bytes(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    if !repositories.is_empty() {
        add_bytes(&mut b, "repositories", &to_json(&json!(repositories)))?;
    }
    let mut w = b
        .into_inner()
        .map_err(io_err(format!("finishing {}", out.display())))?;
    w.flush()
        .map_err(io_err(format!("writing {}", out.display())))?;
    Ok(())
}
