//! The content-addressed store on disk:
//!
//! ```text
//! <root>/blobs/sha256/<hex>        image configs, named by their verified digest
//! <root>/layers/<diff-id hex>/fs   a layer unpacked once for overlayfs, shared by images
//! <root>/layers/<diff-id hex>/size bytes its files take
//! <root>/layers/<diff-id hex>/blob the layer as it came (tar or gzip'd tar), for saves
//! <root>/layers/<diff-id hex>/tar-size  bytes of its uncompressed tar
//! <root>/index.json                images, tags and digests → image ID
//! <root>/tmp/                      work in progress; emptied on open
//! ```
//!
//! Everything becomes visible by a rename (blobs and layers from `tmp/`, the index from a temp
//! file), and the index is written last, so an interrupted load or pull leaves only
//! unreferenced files, which [`Store::gc`] removes. Blocking IO: call it from blocking
//! threads. Index updates are serialised by one mutex; the caller keeps `gc` from running while
//! a load or pull has layers not yet in the index.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use shoal_runtime::ImageInfo;
use shoal_runtime::RuntimeError;
use shoal_runtime::image::ResolvedImage;
use shoal_types::clock::Timestamp;

use crate::config::ConfigFile;
use crate::digest::{Digest, HashingReader};
use crate::unpack::unpack_layer;
use shoal_types::image_ref::{ImageRef, familiar};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Index {
    /// Image ID (`sha256:<config hex>`) → what it is made of.
    #[serde(default)]
    pub images: BTreeMap<String, ImageRecord>,
    /// `registry/repo:tag` → image ID.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `registry/repo@sha256:<manifest>` → image ID.
    #[serde(default)]
    pub digests: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Diff IDs, lowest layer first.
    pub layers: Vec<String>,
    pub created: Timestamp,
    /// When a tag was last pointed at it with `tag` (Docker's `LastTagTime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_tagged: Option<Timestamp>,
}

impl Index {
    fn refs_of(&self, id: &str) -> Vec<String> {
        self.tags
            .iter()
            .chain(self.digests.iter())
            .filter(|(_, v)| v.as_str() == id)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// An image ready to be recorded once its layers are in the store.
pub struct NewImage {
    pub config: Vec<u8>,
    pub config_digest: Digest,
    pub parsed: ConfigFile,
    pub tags: Vec<ImageRef>,
    pub repo_digests: Vec<String>,
}

pub struct Store {
    root: PathBuf,
    index_lock: Mutex<()>,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> RuntimeError {
    let context = context.into();
    move |source| RuntimeError::Io { context, source }
}

fn not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

impl Store {
    /// Opens (creating) the store at `root`, dropping leftovers of interrupted work.
    pub fn open(root: &Path) -> Result<Store, RuntimeError> {
        let s = Store {
            root: root.to_path_buf(),
            index_lock: Mutex::new(()),
        };
        for d in [s.blobs_dir(), s.layers_dir()] {
            fs::create_dir_all(&d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        let tmp = s.tmp_dir();
        match fs::remove_dir_all(&tmp) {
            Err(e) if !not_found(&e) => {
                return Err(io_err(format!("clearing {}", tmp.display()))(e));
            }
            _ => {}
        }
        fs::create_dir_all(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
        s.gc(&[])?;
        Ok(s)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layers_dir().join(diff_id.hex())
    }

    pub fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_dir(diff_id).join("size").is_file()
    }

    /// A temp dir under the store, removed when dropped.
    pub fn temp_dir(&self, prefix: &str) -> Result<tempfile::TempDir, RuntimeError> {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(self.tmp_dir())
            .map_err(io_err("creating a temp dir in the image store"))
    }

    /// Unpacks a layer blob unless the store has it, checking the uncompressed tar against
    /// `diff_id` and, when given, the blob against `blob_digest`, before it becomes visible.
    pub fn install_layer(
        &self,
        blob: impl Read,
        blob_digest: Option<&Digest>,
        diff_id: &Digest,
        what: &str,
    ) -> Result<(), RuntimeError> {
        if self.has_layer(diff_id) {
            return Ok(());
        }
        let tmp = self.temp_dir("layer-")?;
        let fs_dir = tmp.path().join("fs");
        fs::create_dir(&fs_dir).map_err(io_err("creating a layer dir"))?;
        // The blob is kept as it came: unpacked files cannot be turned back into the same tar
        // bytes, and a save must reproduce them exactly (its diff ID is the image's).
        let copy = fs::File::create(tmp.path().join(LAYER_BLOB))
            .map_err(io_err("keeping a layer's blob"))?;
        let mut outer = HashingReader::new(Tee { inner: blob, copy });
        let unpacked = unpack_layer(&mut outer, &fs_dir, what)?;
        if unpacked.diff_id != *diff_id {
            return Err(RuntimeError::InvalidImage(format!(
                "{what}: digest mismatch: the layer's content is {} but the image config says {diff_id}",
                unpacked.diff_id
            )));
        }
        // Read to its end (past the tar's end and a gzip trailer) so the kept copy is whole.
        let (got, _) = outer
            .finish()
            .map_err(|e| RuntimeError::corrupt(what.to_string(), e))?;
        if let Some(expected) = blob_digest
            && got != *expected
        {
            return Err(RuntimeError::InvalidImage(format!(
                "{what}: digest mismatch: the blob is {got} but the manifest says {expected}"
            )));
        }
        fs::write(tmp.path().join("size"), unpacked.size.to_string())
            .map_err(io_err("writing a layer's size"))?;
        fs::write(
            tmp.path().join(LAYER_TAR_SIZE),
            unpacked.tar_size.to_string(),
        )
        .map_err(io_err("writing a layer's size"))?;
        let dest = self.layer_dir(diff_id);
        let kept = tmp.keep();
        if let Err(e) = fs::rename(&kept, &dest) {
            // Another load unpacked the same layer first: keep theirs.
            let _ = fs::remove_dir_all(&kept);
            if !self.has_layer(diff_id) {
                return Err(io_err(format!("moving {what} into the store"))(e));
            }
        }
        Ok(())
    }

    /// Writes `bytes` as a blob, by its digest.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest, RuntimeError> {
        let d = Digest::of(bytes);
        let dest = self.blobs_dir().join(d.hex());
        if dest.is_file() {
            return Ok(d);
        }
        atomic_write(&self.tmp_dir(), &dest, bytes)?;
        Ok(d)
    }

    /// The image's config as stored: the bytes its ID is the digest of.
    pub fn config_bytes(&self, id: &str) -> Result<Vec<u8>, RuntimeError> {
        let d =
            Digest::parse(id).map_err(|why| RuntimeError::InvalidImage(format!("{id}: {why}")))?;
        let p = self.blobs_dir().join(d.hex());
        fs::read(&p).map_err(io_err(format!("reading {}", p.display())))
    }

    pub fn read_config(&self, id: &str) -> Result<ConfigFile, RuntimeError> {
        ConfigFile::parse(&self.config_bytes(id)?, id)
    }

    /// The layer's blob as it came (plain or gzip'd tar) and the length of its uncompressed
    /// tar; `None` for layers stored before blobs were kept.
    pub fn layer_blob(&self, diff_id: &Digest) -> Option<(PathBuf, u64)> {
        let dir = self.layer_dir(diff_id);
        let blob = dir.join(LAYER_BLOB);
        let size = fs::read_to_string(dir.join(LAYER_TAR_SIZE))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        blob.is_file().then_some((blob, size))
    }

    /// Points `target` (a tag) at the image `source` names, moving it off any other image.
    pub fn tag(
        &self,
        source: &str,
        target: &ImageRef,
        now: Timestamp,
    ) -> Result<String, RuntimeError> {
        let Some(key) = target.tagged().filter(|_| target.digest().is_none()) else {
            return Err(RuntimeError::InvalidSpec {
                field: "tag",
                why: format!("{target} is not a name:tag reference"),
            });
        };
        self.update_index(|index| {
            let Some(id) = self.lookup(index, source)? else {
                return Err(RuntimeError::ImageNotFound(source.to_string()));
            };
            index.tags.insert(key, id.clone());
            if let Some(rec) = index.images.get_mut(&id) {
                rec.last_tagged = Some(now);
            }
            Ok(id)
        })
    }

    pub fn read_index(&self) -> Result<Index, RuntimeError> {
        let p = self.index_path();
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| RuntimeError::Io {
                context: format!("reading {}", p.display()),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            }),
            Err(e) if not_found(&e) => Ok(Index::default()),
            Err(e) => Err(io_err(format!("reading {}", p.display()))(e)),
        }
    }

    fn write_index(&self, index: &Index) -> Result<(), RuntimeError> {
        let bytes = serde_json::to_vec_pretty(index).map_err(|e| RuntimeError::Io {
            context: "encoding the image index".into(),
            source: io::Error::other(e),
        })?;
        atomic_write(&self.tmp_dir(), &self.index_path(), &bytes)
    }

    fn update_index<T>(
        &self,
        f: impl FnOnce(&mut Index) -> Result<T, RuntimeError>,
    ) -> Result<T, RuntimeError> {
        let _g = self
            .index_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut index = self.read_index()?;
        let out = f(&mut index)?;
        self.write_index(&index)?;
        Ok(out)
    }

    /// Records an image whose layers are all installed, and points its tags at it (moving a tag
    /// off an older image, as Docker does). Returns the image ID.
    pub fn commit(&self, img: &NewImage) -> Result<String, RuntimeError> {
        let diff_ids = img.parsed.diff_ids();
        if let Some(missing) = diff_ids.iter().find(|d| !self.has_layer(d)) {
            return Err(RuntimeError::InvalidImage(format!(
                "layer {missing} is missing from the store"
            )));
        }
        let written = self.write_blob(&img.config)?;
        if written != img.config_digest {
            return Err(RuntimeError::InvalidImage(format!(
                "digest mismatch: the config is {written}, expected {}",
                img.config_digest
            )));
        }
        let id = img.config_digest.to_string();
        self.update_index(|index| {
            let last_tagged = index.images.get(&id).and_then(|r| r.last_tagged);
            index.images.insert(
                id.clone(),
                ImageRecord {
                    layers: diff_ids.iter().map(|d| d.to_string()).collect(),
                    created: img.parsed.created(),
                    last_tagged,
                },
            );
            for t in &img.tags {
                if let Some(tagged) = t.tagged() {
                    index.tags.insert(tagged, id.clone());
                }
            }
            for d in &img.repo_digests {
                index.digests.insert(d.clone(), id.clone());
            }
            Ok(())
        })?;
        Ok(id)
    }

    /// The image ID `reference` names: a tag, a digest reference, or an ID or its prefix.
    pub fn lookup(&self, index: &Index, reference: &str) -> Result<Option<String>, RuntimeError> {
        if let Ok(r) = ImageRef::parse(reference) {
            let hit = match (r.digested(), r.tagged()) {
                (Some(d), _) => index.digests.get(&d),
                (None, Some(t)) => index.tags.get(&t),
                (None, None) => None,
            };
            if let Some(id) = hit {
                return Ok(Some(id.clone()));
            }
        }
        let prefix = reference.strip_prefix("sha256:").unwrap_or(reference);
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let prefix = prefix.to_ascii_lowercase();
        let hits: Vec<&String> = index
            .images
            .keys()
            .filter(|id| {
                id.strip_prefix("sha256:")
                    .is_some_and(|h| h.starts_with(&prefix))
            })
            .collect();
        match hits.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one).clone())),
            many => Err(RuntimeError::InvalidSpec {
                field: "image",
                why: format!(
                    "the ID prefix {reference:?} is ambiguous: it matches {} images",
                    many.len()
                ),
            }),
        }
    }

    pub fn resolve_id(&self, index: &Index, id: &str) -> Result<ResolvedImage, RuntimeError> {
        let Some(rec) = index.images.get(id) else {
            return Err(RuntimeError::ImageNotFound(id.to_string()));
        };
        let config = self.read_config(id)?;
        let mut layers = Vec::with_capacity(rec.layers.len());
        for l in &rec.layers {
            let d = Digest::parse(l)
                .map_err(|why| RuntimeError::InvalidImage(format!("{id}: layer {l:?}: {why}")))?;
            if !self.has_layer(&d) {
                return Err(RuntimeError::InvalidImage(format!(
                    "{id}: layer {l} is missing from the store"
                )));
            }
            let fs_dir = self.layer_dir(&d).join("fs");
            // Empty layers (ENV, CMD and no-op RUN steps of older builders) change nothing,
            // and overlayfs refuses the same lower dir twice, which they often are.
            if !is_empty_layer(&fs_dir) {
                layers.push(fs_dir);
            }
        }
        Ok(ResolvedImage {
            id: id.to_string(),
            layers,
            config: config.image_config(),
        })
    }

    pub fn layer_size(&self, diff_id: &str) -> u64 {
        Digest::parse(diff_id)
            .ok()
            .and_then(|d| fs::read_to_string(self.layer_dir(&d).join("size")).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn info(&self, index: &Index, id: &str) -> Option<ImageInfo> {
        let rec = index.images.get(id)?;
        let pick = |m: &BTreeMap<String, String>| -> Vec<String> {
            m.iter()
                .filter(|(_, v)| v.as_str() == id)
                .map(|(k, _)| familiar(k))
                .collect()
        };
        Some(ImageInfo {
            id: id.to_string(),
            repo_tags: pick(&index.tags),
            repo_digests: pick(&index.digests),
            size: rec.layers.iter().map(|l| self.layer_size(l)).sum(),
            created: rec.created,
        })
    }

    pub fn list(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        let index = self.read_index()?;
        let mut out: Vec<ImageInfo> = index
            .images
            .keys()
            .filter_map(|id| self.info(&index, id))
            .collect();
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Docker's `rmi`: untags `reference`; deletes the image when no reference is left. An
    /// image in use is never deleted (with `force` it is only untagged, and goes at a later
    /// removal once unused).
    pub fn remove(
        &self,
        reference: &str,
        force: bool,
        in_use: &[String],
    ) -> Result<Vec<String>, RuntimeError> {
        let out = self.update_index(|index| {
            let Some(id) = self.lookup(index, reference)? else {
                return Err(RuntimeError::ImageNotFound(reference.to_string()));
            };
            let by_name = ImageRef::parse(reference).ok().and_then(|r| {
                let key = r.digested().or_else(|| r.tagged())?;
                (index.tags.get(&key) == Some(&id) || index.digests.get(&key) == Some(&id))
                    .then_some(key)
            });
            let refs = index.refs_of(&id);
            let used = in_use.contains(&id);
            let short = id.strip_prefix("sha256:").unwrap_or(&id);
            let short = &short[..short.len().min(12)];
            let untag: Vec<String> = match &by_name {
                Some(key) => {
                    let u = with_orphaned_digests(index, &id, key);
                    let last = refs.iter().all(|r| u.contains(r));
                    if last && used && !force {
                        return Err(conflict(format!(
                            "unable to remove repository reference {:?} (must force) - image {short} is used by a running task",
                            familiar(key)
                        )));
                    }
                    u
                }
                None => {
                    if refs.len() > 1 && !force {
                        return Err(conflict(format!(
                            "unable to delete {short} (must be forced) - image is referenced in multiple repositories"
                        )));
                    }
                    if used && !force {
                        return Err(conflict(format!(
                            "unable to delete {short} (must be forced) - image is used by a running task"
                        )));
                    }
                    refs.clone()
                }
            };
            let mut lines = Vec::new();
            for key in &untag {
                index.tags.remove(key);
                index.digests.remove(key);
                lines.push(format!("Untagged: {}", familiar(key)));
            }
            if index.refs_of(&id).is_empty() && !used {
                index.images.remove(&id);
                lines.push(format!("Deleted: {id}"));
            }
            Ok(lines)
        })?;
        let mut out = out;
        out.extend(
            self.gc(in_use)?
                .into_iter()
                .map(|d| format!("Deleted: {d}")),
        );
        Ok(out)
    }

    /// Removes layers and blobs no indexed image needs (nor any image in `in_use`), and
    /// returns the diff IDs of the layers it removed. The caller guarantees no load or pull is
    /// between unpacking layers and committing them.
    pub fn gc(&self, in_use: &[String]) -> Result<Vec<String>, RuntimeError> {
        let index = self.read_index()?;
        let mut keep_layers = BTreeSet::new();
        let mut keep_blobs = BTreeSet::new();
        for (id, rec) in &index.images {
            keep_blobs.insert(id.strip_prefix("sha256:").unwrap_or(id).to_string());
            for l in &rec.layers {
                keep_layers.insert(l.strip_prefix("sha256:").unwrap_or(l).to_string());
            }
        }
        for id in in_use {
            keep_blobs.insert(id.strip_prefix("sha256:").unwrap_or(id).to_string());
        }
        let mut removed = Vec::new();
        for (dir, keep, is_layer) in [
            (self.layers_dir(), &keep_layers, true),
            (self.blobs_dir(), &keep_blobs, false),
        ] {
            let entries =
                fs::read_dir(&dir).map_err(io_err(format!("listing {}", dir.display())))?;
            for e in entries {
                let e = e.map_err(io_err(format!("listing {}", dir.display())))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if keep.contains(&name) {
                    continue;
                }
                let p = e.path();
                let r = if is_layer {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                r.map_err(io_err(format!("removing {}", p.display())))?;
                if is_layer {
                    removed.push(format!("sha256:{name}"));
                }
            }
        }
        Ok(removed)
    }
}

/// `key` and, when it is the image's last tag in its repository, that repository's digest
/// references to the image too: Docker drops them with the tag, so a pulled image goes with
/// its tag rather than lingering as `<none>`.
fn with_orphaned_digests(index: &Index, id: &str, key: &str) -> Vec<String> {
    let mut out = vec![key.to_string()];
    if key.contains('@') {
        return out;
    }
    let repo = |k: &str| ImageRef::parse(k).ok().map(|r| r.name());
    let name = repo(key);
    let other_tag = index
        .tags
        .iter()
        .any(|(k, v)| v == id && k != key && repo(k) == name);
    if !other_tag {
        out.extend(
            index
                .digests
                .iter()
                .filter(|(k, v)| *v == id && repo(k) == name)
                .map(|(k, _)| k.clone()),
        );
    }
    out
}

/// Within a layer's directory (see the module doc).
const LAYER_BLOB: &str = "blob";
const LAYER_TAR_SIZE: &str = "tar-size";

/// Writes everything read through it to `copy`; a failed write fails the read.
struct Tee<R> {
    inner: R,
    copy: fs::File,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

fn is_empty_layer(fs_dir: &Path) -> bool {
    fs::read_dir(fs_dir).is_ok_and(|mut d| d.next().is_none())
        && !matches!(xattr::get(fs_dir, "trusted.overlay.opaque"), Ok(Some(_)))
}

fn conflict(why: String) -> RuntimeError {
    RuntimeError::Conflict(why)
}

/// Writes `dest` through a temp file in `tmp` and a rename, so readers see all or nothing.
pub fn atomic_write(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<(), RuntimeError> {
    let ctx = || format!("writing {}", dest.display());
    let mut f = tempfile::NamedTempFile::new_in(tmp).map_err(io_err(ctx()))?;
    f.write_all(bytes).map_err(io_err(ctx()))?;
    f.as_file().sync_all().map_err(io_err(ctx()))?;
    f.persist(dest).map_err(|e| io_err(ctx())(e.error))?;
    Ok(())
}
