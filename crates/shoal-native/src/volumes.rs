//! Named local volumes: `<volumes-dir>/<name>/_data` holds the files, `meta.json` beside it the
//! labels and creation time. A volume is created the first time a task mounts it, filled from
//! the image's files at the mount target while it is still empty (unless `volume_nocopy`), and
//! outlives every task; only `remove` deletes it. Creation and filling of one volume happen
//! under an exclusive lock (`<name>/lock`) so two tasks preparing at once fill it once.
//!
//! Blocking filesystem work; async callers run it on a blocking thread.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use shoal_types::Timestamp;

use super::layout::{read_json, write_json_atomic};

const META: &str = "meta.json";
const DATA: &str = "_data";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct VolumeMeta {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub created_at: Timestamp,
}

/// Docker's rule for volume names.
pub(crate) fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

pub(crate) fn data_dir(root: &Path, name: &str) -> PathBuf {
    root.join(name).join(DATA)
}

/// Creates the volume if needed and fills it from `fill_from` while it is empty. Returns its
/// `_data` directory.
pub(crate) fn ensure(
    root: &Path,
    name: &str,
    labels: &BTreeMap<String, String>,
    now: Timestamp,
    fill_from: Option<&Path>,
) -> io::Result<PathBuf> {
    let dir = root.join(name);
    let data = dir.join(DATA);
    std::fs::create_dir_all(&data)?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))?;
    let _held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io::Error::from(e))?;
    if read_json::<VolumeMeta>(&dir.join(META))?.is_none() {
        let meta = VolumeMeta {
            name: name.to_string(),
            labels: labels.clone(),
            created_at: now,
        };
        write_json_atomic(&dir.join(META), &meta)?;
    }
    if let Some(src) = fill_from.filter(|s| s.is_dir()) {
        let empty = std::fs::read_dir(&data)?.next().is_none();
        if empty {
            super::rootfs::copy_tree(src, &data)?;
        }
    }
    Ok(data)
}

/// Every volume's metadata (a directory without readable metadata is reported as created at
/// time zero with no labels rather than hidden).
pub(crate) fn list(root: &Path) -> io::Result<Vec<VolumeMeta>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !valid_name(&name) || !entry.path().join(DATA).is_dir() {
            continue;
        }
        let meta = read_json::<VolumeMeta>(&entry.path().join(META))
            .ok()
            .flatten()
            .unwrap_or(VolumeMeta {
                name: name.clone(),
                labels: BTreeMap::new(),
                created_at: Timestamp::ZERO,
            });
        out.push(VolumeMeta { name, ..meta });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The volume's metadata (made by [`ensure`]).
pub(crate) fn read(root: &Path, name: &str) -> io::Result<VolumeMeta> {
    read_json::<VolumeMeta>(&root.join(name).join(META))?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("volume {name} has no metadata"),
        )
    })
}

/// Bytes the volume's files take (symlinks not followed; what cannot be read counts 0).
pub(crate) fn size(root: &Path, name: &str) -> u64 {
    fn walk(dir: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) if m.is_file() => m.len(),
                _ => 0,
            })
            .sum()
    }
    walk(&data_dir(root, name))
}

pub(crate) fn exists(root: &Path, name: &str) -> bool {
    valid_name(name) && root.join(name).join(DATA).is_dir()
}

pub(crate) fn remove(root: &Path, name: &str) -> io::Result<()> {
    std::fs::remove_dir_all(root.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_docker() {
        assert!(valid_name("data"));
        assert!(valid_name("my_vol-1.2"));
        assert!(!valid_name(""));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(".."));
    }

    #[test]
    fn created_once_filled_while_empty_and_listed() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("volumes");
        let src = t.path().join("src");
        std::fs::create_dir_all(&src).expect("mkdir");
        std::fs::write(src.join("seed"), "s").expect("write");
        let mut labels = BTreeMap::new();
        labels.insert("a".to_string(), "b".to_string());
        let d = ensure(&root, "v1", &labels, Timestamp(5), Some(&src)).expect("ensure");
        assert_eq!(
            std::fs::read_to_string(d.join("seed")).expect("seeded"),
            "s"
        );
        std::fs::remove_file(d.join("seed")).expect("rm");
        std::fs::write(d.join("mine"), "m").expect("write");
        // Not empty any more: not filled again; metadata kept from the first time.
        ensure(&root, "v1", &BTreeMap::new(), Timestamp(9), Some(&src)).expect("ensure");
        assert!(!d.join("seed").exists());
        let l = list(&root).expect("list");
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].created_at, Timestamp(5));
        assert_eq!(l[0].labels, labels);
        assert!(exists(&root, "v1"));
        remove(&root, "v1").expect("remove");
        assert!(list(&root).expect("list").is_empty());
    }

    /// What a prune reports reclaiming: the files' bytes, in subdirectories too, links not
    /// followed.
    #[test]
    fn size_counts_the_files_and_read_gives_the_metadata() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path().join("volumes");
        let d = ensure(&root, "v2", &BTreeMap::new(), Timestamp(7), None).expect("ensure");
        std::fs::create_dir(d.join("sub")).expect("mkdir");
        std::fs::write(d.join("a"), "12345").expect("write");
        std::fs::write(d.join("sub/b"), "123").expect("write");
        std::os::unix::fs::symlink("/etc/passwd", d.join("link")).expect("symlink");
        assert_eq!(size(&root, "v2"), 8);
        assert_eq!(size(&root, "none"), 0);
        assert_eq!(read(&root, "v2").expect("meta").created_at, Timestamp(7));
        assert!(read(&root, "none").is_err());
    }
}
