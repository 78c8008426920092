//! Unpacking one layer tar into a directory in overlayfs format. This is where hostile input
//! meets the filesystem, so it never follows a symlink: entry paths are cleaned lexically
//! (absolute paths and `..` above the root are refused), every parent of an entry must be a real
//! directory inside the layer (created when missing), hardlinks must name a non-directory
//! already in the layer, and device nodes other than whiteouts are skipped. Runs on a blocking
//! thread; the caller owns `dest` (a fresh directory under the store's tmp dir) and removes it
//! on any error.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use shoal_runtime::RuntimeError;
use tar::EntryType;

use crate::digest::{Digest, HashingReader};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// Tells gzip from plain tar by the magic bytes, and names the compressions we do not read.
pub fn sniff(head: &[u8]) -> Result<Compression, String> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err("zstd-compressed layers are not supported".into())
    } else if head.starts_with(b"BZh") {
        Err("bzip2-compressed layers are not supported".into())
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
        Err("xz-compressed layers are not supported".into())
    } else {
        Ok(Compression::None)
    }
}

/// A reader over the decompressed bytes of `r`, whatever of plain or gzip it holds.
pub fn decompressed<'a, R: Read + 'a>(r: R) -> io::Result<Result<Box<dyn Read + 'a>, String>> {
    let mut br = BufReader::new(r);
    let head = br.fill_buf()?.to_vec();
    Ok(match sniff(&head) {
        Ok(Compression::Gzip) => Ok(Box::new(GzDecoder::new(br))),
        Ok(Compression::None) => Ok(Box::new(br)),
        Err(e) => Err(e),
    })
}

/// What unpacking found: the digest of the uncompressed tar (the layer's diff ID), the
/// bytes its regular files take, and the length of the uncompressed tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub diff_id: Digest,
    pub size: u64,
    pub tar_size: u64,
}

/// Cleans an entry's path lexically into components below the root. `what` names the entry in
/// errors.
pub fn clean_path(raw: &[u8]) -> Result<Vec<PathBuf>, String> {
    let path = Path::new(OsStr::from_bytes(raw));
    let mut out: Vec<PathBuf> = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => {
                return Err("an absolute path".into());
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if out.pop().is_none() {
                    return Err("a path escaping the root with '..'".into());
                }
            }
            Component::Normal(n) => out.push(PathBuf::from(n)),
        }
    }
    Ok(out)
}

/// Unpacks the (plain or gzip) layer tar `blob` into `dest`.
pub fn unpack_layer<R: Read>(blob: R, dest: &Path, what: &str) -> Result<Unpacked, RuntimeError> {
    let io_err = |context: String| move |source| RuntimeError::Io { context, source };
    let plain = decompressed(blob)
        .map_err(io_err(format!("reading {what}")))?
        .map_err(|why| RuntimeError::InvalidImage(format!("{what}: {why}")))?;
    let mut hashing = HashingReader::new(plain);
    let size = {
        let mut archive = tar::Archive::new(&mut hashing);
        let mut u = Unpacker {
            root: dest,
            root_user: nix::unistd::geteuid().is_root(),
            dirs: Vec::new(),
            size: 0,
        };
        let entries = archive
            .entries()
            .map_err(|e| RuntimeError::corrupt(format!("{what}: not a tar archive"), e))?;
        for entry in entries {
            let mut entry = entry
                .map_err(|e| RuntimeError::corrupt(format!("{what}: corrupt tar archive"), e))?;
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            u.entry(&mut entry).map_err(|e| match e {
                EntryError::Refused(why) => {
                    RuntimeError::InvalidImage(format!("{what}: entry {name:?}: {why}"))
                }
                EntryError::Io(source) => {
                    RuntimeError::corrupt(format!("{what}: entry {name:?}"), source)
                }
            })?;
        }
        u.finish_dirs()
            .map_err(io_err(format!("setting directory metadata in {what}")))?;
        u.size
    };
    let (diff_id, tar_size) = hashing
        .finish()
        .map_err(|e| RuntimeError::corrupt(format!("{what}: corrupt layer"), e))?;
    Ok(Unpacked {
        diff_id,
        size,
        tar_size,
    })
}

enum EntryError {
    Refused(String),
    Io(io::Error),
}

impl From<io::Error> for EntryError {
    fn from(e: io::Error) -> Self {
        EntryError::Io(e)
    }
}

fn refused<T>(why: impl Into<String>) -> Result<T, EntryError> {
    Err(EntryError::Refused(why.into()))
}

struct DirMeta {
    path: PathBuf,
    mode: u32,
    owner: Option<(u32, u32)>,
    mtime: i64,
}

struct Unpacker<'a> {
    root: &'a Path,
    root_user: bool,
    /// Directory metadata is applied last: creating children would change mtimes, and a
    /// read-only mode must not stop us writing into it.
    dirs: Vec<DirMeta>,
    size: u64,
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), EntryError> {
        let comps = match clean_path(&entry.path_bytes()) {
            Ok(c) => c,
            Err(why) => return refused(why),
        };
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode()? & 0o7777;
        let owner = match (u32::try_from(header.uid()?), u32::try_from(header.gid()?)) {
            (Ok(u), Ok(g)) => Some((u, g)),
            _ => return refused("uid or gid out of range"),
        };
        let mtime = i64::try_from(header.mtime()?).unwrap_or(0);

        let Some((last, parents)) = comps.split_last() else {
            // The archive's own root (`./`): only its metadata matters.
            if kind == EntryType::Directory {
                self.dirs.push(DirMeta {
                    path: self.root.to_path_buf(),
                    mode,
                    owner,
                    mtime,
                });
            }
            return Ok(());
        };
        let last_name = last.as_os_str().as_bytes();

        if let Some(hidden) = last_name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            let parent = self.ensure_parents(parents)?;
            if last_name == OPAQUE_MARKER.as_bytes() {
                xattr::set(&parent, OPAQUE_XATTR, b"y")?;
            } else if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
                // Other `.wh..wh.` names are aufs bookkeeping with no overlayfs meaning.
            } else if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return refused("a whiteout with no name");
            } else {
                let target = parent.join(OsStr::from_bytes(hidden));
                remove_existing(&target)?;
                nix::sys::stat::mknod(
                    &target,
                    nix::sys::stat::SFlag::S_IFCHR,
                    nix::sys::stat::Mode::empty(),
                    nix::sys::stat::makedev(0, 0),
                )
                .map_err(io::Error::from)?;
            }
            return Ok(());
        }

        let xattrs = pax_xattrs(entry)?;
        let parent = self.ensure_parents(parents)?;
        let target = parent.join(last);
        match kind {
            EntryType::Directory => {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        fs::remove_file(&target)?;
                        fs::create_dir(&target)?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&target)?,
                    Err(e) => return Err(e.into()),
                }
                self.set_xattrs(&target, &xattrs);
                self.dirs.push(DirMeta {
                    path: target,
                    mode,
                    owner,
                    mtime,
                });
                return Ok(());
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                remove_existing(&target)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)?;
                self.size += io::copy(entry, &mut file)?;
                drop(file);
                self.chown(&target, owner)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
                self.set_xattrs(&target, &xattrs);
            }
            EntryType::Symlink => {
                let Some(link) = entry.link_name_bytes() else {
                    return refused("a symlink with no target");
                };
                remove_existing(&target)?;
                // Where it points does not matter here: nothing below ever follows it.
                std::os::unix::fs::symlink(OsStr::from_bytes(&link), &target)?;
                self.chown(&target, owner)?;
            }
            EntryType::Link => {
                let Some(link) = entry.link_name_bytes() else {
                    return refused("a hardlink with no target");
                };
                let source = match clean_path(&link) {
                    Ok(c) if !c.is_empty() => self.existing(&c).map_err(|why| {
                        EntryError::Refused(format!(
                            "hardlink to {:?}: {why}",
                            String::from_utf8_lossy(&link)
                        ))
                    })?,
                    Ok(_) => return refused("a hardlink to the layer root"),
                    Err(why) => {
                        return refused(format!(
                            "hardlink to {:?}: {why}",
                            String::from_utf8_lossy(&link)
                        ));
                    }
                };
                if source == target {
                    return Ok(());
                }
                remove_existing(&target)?;
                // link(2) does not dereference a symlink source, so this stays in the layer.
                fs::hard_link(&source, &target)?;
                return Ok(());
            }
            EntryType::Fifo => {
                remove_existing(&target)?;
                nix::unistd::mkfifo(&target, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .map_err(io::Error::from)?;
                self.chown(&target, owner)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(mode))?;
            }
            EntryType::Char | EntryType::Block => {
                tracing::debug!(path = %target.display(), "skipping a device node in a layer");
                return Ok(());
            }
            _ => return Ok(()),
        }
        let t = filetime::FileTime::from_unix_time(mtime, 0);
        filetime::set_symlink_file_times(&target, t, t)?;
        Ok(())
    }

    /// The directory holding an entry: each parent must be a real directory (never a symlink)
    /// inside the layer; missing ones are created as Docker does.
    fn ensure_parents(&self, parents: &[PathBuf]) -> Result<PathBuf, EntryError> {
        let mut cur = self.root.to_path_buf();
        for p in parents {
            cur.push(p);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return refused(format!(
                        "its parent {:?} is a symlink (writing through it could escape the layer)",
                        rel(self.root, &cur)
                    ));
                }
                Ok(_) => {
                    return refused(format!(
                        "its parent {:?} is not a directory",
                        rel(self.root, &cur)
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&cur)?;
                    fs::set_permissions(&cur, fs::Permissions::from_mode(0o755))?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(cur)
    }

    /// An existing non-directory in the layer, reached through real directories only.
    fn existing(&self, comps: &[PathBuf]) -> Result<PathBuf, String> {
        let mut cur = self.root.to_path_buf();
        for (i, c) in comps.iter().enumerate() {
            cur.push(c);
            let m = fs::symlink_metadata(&cur)
                .map_err(|_| "the target is not in the layer (yet)".to_string())?;
            let last = i + 1 == comps.len();
            if last && m.is_dir() {
                return Err("the target is a directory".into());
            }
            if !last && !m.is_dir() {
                return Err(format!(
                    "{:?} on its way is not a directory",
                    rel(self.root, &cur)
                ));
            }
        }
        Ok(cur)
    }

    fn real_dir(&self, path: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(self.root) else {
            return false;
        };
        let mut cur = self.root.to_path_buf();
        for c in rel.components() {
            cur.push(c);
            if !fs::symlink_metadata(&cur).is_ok_and(|m| m.is_dir()) {
                return false;
            }
        }
        true
    }

    fn chown(&self, path: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
        if let (true, Some((u, g))) = (self.root_user, owner) {
            std::os::unix::fs::lchown(path, Some(u), Some(g))?;
        }
        Ok(())
    }

    fn set_xattrs(&self, path: &Path, xattrs: &[(String, Vec<u8>)]) {
        if !self.root_user {
            return;
        }
        for (k, v) in xattrs {
            if let Err(e) = xattr::set(path, k, v) {
                tracing::debug!(path = %path.display(), xattr = %k, error = %shoal_types::error::Chain(&e), "xattr not kept");
            }
        }
    }

    fn finish_dirs(&mut self) -> io::Result<()> {
        for d in self.dirs.iter().rev() {
            // A later entry may have replaced this directory, or one above it, with a
            // symlink; chmod follows symlinks, so only a directory still reached through real
            // directories is touched.
            if !self.real_dir(&d.path) {
                continue;
            }
            self.chown(&d.path, d.owner)?;
            fs::set_permissions(&d.path, fs::Permissions::from_mode(d.mode))?;
            let t = filetime::FileTime::from_unix_time(d.mtime, 0);
            filetime::set_symlink_file_times(&d.path, t, t)?;
        }
        Ok(())
    }
}

/// The entry's `SCHILY.xattr.*` PAX records, less overlayfs's own: a layer must not mark its
/// directories opaque or redirect them except through whiteout files.
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.")
                && !name.starts_with("trusted.overlay.")
            {
                out.push((name.to_string(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

/// Removes what is at `path` without following it, so an entry can replace it.
fn remove_existing(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        let ok = |s: &str| clean_path(s.as_bytes()).map(|v| v.len());
        assert_eq!(ok("./a/b/"), Ok(2));
        assert_eq!(ok("a/../b"), Ok(1));
        assert_eq!(ok("./"), Ok(0));
        assert!(ok("/etc/passwd").is_err());
        assert!(ok("../evil").is_err());
        assert!(ok("a/../../evil").is_err());
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Ok(Compression::Gzip));
        assert_eq!(sniff(b"bin/"), Ok(Compression::None));
        assert!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]).is_err());
    }
}
