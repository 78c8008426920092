//! `image load`: a `docker save` archive (manifest.json beside config and layer files) or an
//! OCI image layout (oci-layout, index.json, blobs/), tar or gzip'd tar; Docker 25+ writes both
//! in one archive and, like `docker load`, we read manifest.json when it is there. The outer
//! archive's files are copied into the store's tmp dir under numbered names (never its own
//! paths), so nothing in it can write outside; its symlinks (older `docker save` links
//! duplicate layers) are resolved by name within the archive. Blocking.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use shoal_runtime::RuntimeError;

use crate::config::{ConfigFile, Document, Parsed, descriptor_digest, pick_platform};
use crate::digest::Digest;
use crate::store::{NewImage, Store};
use crate::unpack::{clean_path, decompressed};
use shoal_types::image_ref::{ImageRef, familiar};

const MAX_JSON: u64 = 16 << 20;

enum Member {
    File(PathBuf),
    Symlink(String),
}

struct Extracted {
    _dir: tempfile::TempDir,
    members: BTreeMap<String, Member>,
    what: String,
}

fn invalid(what: &str, why: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::InvalidImage(format!("{what}: {why}"))
}

fn join_clean(parts: &[PathBuf]) -> String {
    parts
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

impl Extracted {
    fn read(store: &Store, archive: &Path) -> Result<Extracted, RuntimeError> {
        let what = archive.display().to_string();
        let file = File::open(archive).map_err(|source| RuntimeError::Io {
            context: format!("opening {what}"),
            source,
        })?;
        let plain = decompressed(file)
            .map_err(|e| invalid(&what, e))?
            .map_err(|e| invalid(&what, e))?;
        let dir = store.temp_dir("load-")?;
        let mut members = BTreeMap::new();
        let mut tar = tar::Archive::new(plain);
        let entries = tar
            .entries()
            .map_err(|e| RuntimeError::corrupt(format!("{what}: not a tar archive"), e))?;
        for (n, entry) in entries.enumerate() {
            let mut entry = entry
                .map_err(|e| RuntimeError::corrupt(format!("{what}: corrupt tar archive"), e))?;
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let comps = clean_path(&raw)
                .map_err(|why| invalid(&what, format!("entry {shown:?}: {why}")))?;
            let name = join_clean(&comps);
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let dest = dir.path().join(n.to_string());
                    let mut out = File::create(&dest).map_err(|source| RuntimeError::Io {
                        context: format!("unpacking {what}"),
                        source,
                    })?;
                    io::copy(&mut entry, &mut out).map_err(|e| {
                        RuntimeError::corrupt(
                            format!("{what}: entry {shown:?}: corrupt tar archive"),
                            e,
                        )
                    })?;
                    members.insert(name, Member::File(dest));
                }
                tar::EntryType::Symlink => {
                    let Some(target) = entry.link_name_bytes() else {
                        return Err(invalid(
                            &what,
                            format!("entry {shown:?}: symlink with no target"),
                        ));
                    };
                    let mut joined = comps[..comps.len().saturating_sub(1)].to_vec();
                    joined.push(PathBuf::from(String::from_utf8_lossy(&target).into_owned()));
                    let joined = join_clean(&joined);
                    let resolved = clean_path(joined.as_bytes()).map_err(|why| {
                        invalid(&what, format!("entry {shown:?}: symlink target: {why}"))
                    })?;
                    members.insert(name, Member::Symlink(join_clean(&resolved)));
                }
                _ => {}
            }
        }
        Ok(Extracted {
            _dir: dir,
            members,
            what,
        })
    }

    fn path(&self, name: &str) -> Result<&Path, RuntimeError> {
        let mut name = clean_path(name.as_bytes())
            .map(|c| join_clean(&c))
            .map_err(|why| invalid(&self.what, format!("{name:?}: {why}")))?;
        for _ in 0..16 {
            match self.members.get(&name) {
                Some(Member::File(p)) => return Ok(p),
                Some(Member::Symlink(t)) => name = t.clone(),
                None => {
                    return Err(invalid(
                        &self.what,
                        format!("{name:?} is not in the archive"),
                    ));
                }
            }
        }
        Err(invalid(&self.what, format!("{name:?}: too many symlinks")))
    }

    fn has(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    fn read_small(&self, name: &str) -> Result<Vec<u8>, RuntimeError> {
        let p = self.path(name)?;
        let mut buf = Vec::new();
        File::open(p)
            .and_then(|f| f.take(MAX_JSON).read_to_end(&mut buf))
            .map_err(|source| RuntimeError::Io {
                context: format!("reading {name} of {}", self.what),
                source,
            })?;
        Ok(buf)
    }

    fn open(&self, name: &str) -> Result<File, RuntimeError> {
        File::open(self.path(name)?).map_err(|source| RuntimeError::Io {
            context: format!("reading {name} of {}", self.what),
            source,
        })
    }

    /// A blob of the OCI layout, checked against its descriptor's digest.
    fn blob(&self, d: &Digest) -> Result<Vec<u8>, RuntimeError> {
        let name = format!("blobs/sha256/{}", d.hex());
        let b = self.read_small(&name)?;
        let got = Digest::of(&b);
        if got != *d {
            return Err(invalid(
                &self.what,
                format!("{name}: digest mismatch: the content is {got}"),
            ));
        }
        Ok(b)
    }
}

/// The digest a `docker save` path names (`<hex>.json`, `blobs/sha256/<hex>`,
/// `<hex>/layer.tar` is a v1 ID, not a digest, and names none).
fn digest_in_name(name: &str) -> Option<Digest> {
    if let Some(hex) = name.strip_prefix("blobs/sha256/") {
        return Digest::from_hex(hex).ok();
    }
    name.strip_suffix(".json")
        .and_then(|h| Digest::from_hex(h).ok())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Loads every image of the archive; returns what it tagged (`Loaded image: x`, Docker shows
/// familiar names) or, for untagged images, their IDs.
pub fn load(store: &Store, archive: &Path) -> Result<Vec<String>, RuntimeError> {
    let x = Extracted::read(store, archive)?;
    let mut loaded = Vec::new();
    if x.has("manifest.json") {
        let bytes = x.read_small("manifest.json")?;
        let manifests: Vec<SaveManifest> = serde_json::from_slice(&bytes)
            .map_err(|e| RuntimeError::corrupt(format!("{}: manifest.json", x.what), e))?;
        if manifests.is_empty() {
            return Err(invalid(&x.what, "manifest.json lists no image"));
        }
        for m in &manifests {
            loaded.extend(load_saved(store, &x, m)?);
        }
    } else if x.has("index.json") {
        if !x.has("oci-layout") {
            return Err(invalid(&x.what, "index.json without oci-layout"));
        }
        let bytes = x.read_small("index.json")?;
        let Parsed::Index(index) = Document::parse(&bytes, "index.json")? else {
            return Err(invalid(&x.what, "index.json is not an image index"));
        };
        for m in index.manifests() {
            loaded.extend(load_oci(store, &x, m)?);
        }
    } else {
        return Err(invalid(
            &x.what,
            "neither a docker save archive (manifest.json) nor an OCI image layout (index.json)",
        ));
    }
    Ok(loaded)
}

fn parse_tags(what: &str, tags: &[String]) -> Result<Vec<ImageRef>, RuntimeError> {
    tags.iter()
        .map(|t| ImageRef::parse(t).map_err(|e| invalid(what, e)))
        .collect()
}

fn loaded_names(id: &str, tags: &[ImageRef]) -> Vec<String> {
    if tags.is_empty() {
        vec![id.to_string()]
    } else {
        tags.iter()
            .filter_map(|t| t.tagged())
            .map(|t| familiar(&t))
            .collect()
    }
}

fn load_saved(store: &Store, x: &Extracted, m: &SaveManifest) -> Result<Vec<String>, RuntimeError> {
    let what = format!("{}: {}", x.what, m.config);
    let config = x.read_small(&m.config)?;
    let config_digest = Digest::of(&config);
    if let Some(named) = digest_in_name(&m.config)
        && named != config_digest
    {
        return Err(invalid(
            &what,
            format!("digest mismatch: the config is {config_digest}"),
        ));
    }
    let parsed = ConfigFile::parse(&config, &what)?;
    let diff_ids = parsed.diff_ids();
    if diff_ids.len() != m.layers.len() {
        return Err(invalid(
            &what,
            format!(
                "manifest.json lists {} layers but the config has {} diff IDs",
                m.layers.len(),
                diff_ids.len()
            ),
        ));
    }
    for (layer, diff_id) in m.layers.iter().zip(&diff_ids) {
        let lwhat = format!("{}: layer {layer}", x.what);
        store.install_layer(
            x.open(layer)?,
            digest_in_name(layer).as_ref(),
            diff_id,
            &lwhat,
        )?;
    }
    let tags = parse_tags(&what, m.repo_tags.as_deref().unwrap_or_default())?;
    let id = store.commit(&NewImage {
        config,
        config_digest,
        parsed,
        tags: tags.clone(),
        repo_digests: Vec::new(),
    })?;
    Ok(loaded_names(&id, &tags))
}

fn load_oci(
    store: &Store,
    x: &Extracted,
    desc: &oci_spec::image::Descriptor,
) -> Result<Vec<String>, RuntimeError> {
    let d = descriptor_digest(desc, &x.what)?;
    let mut bytes = x.blob(&d)?;
    let mut what = format!("{}: manifest {d}", x.what);
    let (config_desc, layers) = loop {
        match Document::parse(&bytes, &what)? {
            Parsed::Manifest(m) => break (m.config().clone(), m.layers().clone()),
            Parsed::Index(ms) => {
                let chosen = pick_platform(ms.manifests(), &what)?;
                let d = descriptor_digest(chosen, &what)?;
                bytes = x.blob(&d)?;
                what = format!("{}: manifest {d}", x.what);
            }
        }
    };
    let config_digest = descriptor_digest(&config_desc, &what)?;
    let config = x.blob(&config_digest)?;
    let parsed = ConfigFile::parse(&config, &what)?;
    let diff_ids = parsed.diff_ids();
    if diff_ids.len() != layers.len() {
        return Err(invalid(
            &what,
            format!(
                "the manifest lists {} layers but the config has {} diff IDs",
                layers.len(),
                diff_ids.len()
            ),
        ));
    }
    for (l, diff_id) in layers.iter().zip(&diff_ids) {
        let ld = descriptor_digest(l, &what)?;
        let name = format!("blobs/sha256/{}", ld.hex());
        store.install_layer(
            x.open(&name)?,
            Some(&ld),
            diff_id,
            &format!("{}: layer {ld}", x.what),
        )?;
    }
    let annotations = desc.annotations().clone().unwrap_or_default();
    let name = annotations
        .get("io.containerd.image.name")
        .or_else(|| annotations.get("org.opencontainers.image.ref.name"))
        // A bare `latest` ref name says no repository; only full references tag.
        .filter(|n| n.contains('/') || n.contains(':'));
    let tags = parse_tags(&what, name.map(std::slice::from_ref).unwrap_or_default())?;
    let id = store.commit(&NewImage {
        config,
        config_digest,
        parsed,
        tags: tags.clone(),
        repo_digests: Vec::new(),
    })?;
    Ok(loaded_names(&id, &tags))
}
