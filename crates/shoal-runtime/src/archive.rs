//! A task's files as tar archives (`docker cp`, the engine's `GET/HEAD/PUT
//! /containers/{id}/archive`): the types of the contract's archive calls
//! ([`crate::RuntimeDriver::path_stat`], [`archive_get`](crate::RuntimeDriver::archive_get),
//! [`archive_put`](crate::RuntimeDriver::archive_put)) and what every driver shares about them:
//! how a requested path and an archive's entry names are checked, Docker's file modes, and the
//! bridges between the async archive streams and the blocking tar reader and writer.
//!
//! Paths are the container's: resolved inside its root as if chrooted (a symlink, absolute or
//! with `..`, never leads out of it). A requested path that would leave the root lexically
//! (`/../etc`), and an archive entry that would land outside the directory it is extracted into
//! (an absolute name, a `..` past it, a relative symlink pointing past it), are refused with
//! [`RuntimeError::InvalidSpec`] naming the path.

use std::io::{Read, Write};
use std::path::{Component, Path};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use shoal_types::Timestamp;

use crate::RuntimeError;

/// What `HEAD /containers/{id}/archive` tells of a path (Docker's `ContainerPathStat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    /// The requested path's last component (`/` for the root).
    pub name: String,
    pub size: i64,
    /// Go `os.FileMode` bits as Docker sends them: [`MODE_DIR`], [`MODE_SYMLINK`]… plus the
    /// permission bits (see [`go_file_mode`]).
    pub mode: u32,
    pub mtime: Timestamp,
    /// For a symlink, where it leads in the container, fully resolved (absolute); empty
    /// otherwise.
    pub link_target: String,
}

impl PathStat {
    pub fn is_dir(&self) -> bool {
        self.mode & MODE_DIR != 0
    }

    pub fn is_symlink(&self) -> bool {
        self.mode & MODE_SYMLINK != 0
    }
}

/// A tar archive as it is read or written, in chunks.
pub type ArchiveStream = BoxStream<'static, Result<Bytes, RuntimeError>>;

/// Go's `os.FileMode` type bits, which Docker's path stat carries.
pub const MODE_DIR: u32 = 1 << 31;
pub const MODE_SYMLINK: u32 = 1 << 27;
pub const MODE_DEVICE: u32 = 1 << 26;
pub const MODE_NAMED_PIPE: u32 = 1 << 25;
pub const MODE_SOCKET: u32 = 1 << 24;
pub const MODE_SETUID: u32 = 1 << 23;
pub const MODE_SETGID: u32 = 1 << 22;
pub const MODE_CHAR_DEVICE: u32 = 1 << 21;
pub const MODE_STICKY: u32 = 1 << 20;

/// A Unix `st_mode` as Go's `os.FileMode`.
pub fn go_file_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    m |= match st_mode & 0o170000 {
        0o040000 => MODE_DIR,
        0o120000 => MODE_SYMLINK,
        0o060000 => MODE_DEVICE,
        0o020000 => MODE_DEVICE | MODE_CHAR_DEVICE,
        0o010000 => MODE_NAMED_PIPE,
        0o140000 => MODE_SOCKET,
        _ => 0,
    };
    for (bit, go) in [
        (0o4000, MODE_SETUID),
        (0o2000, MODE_SETGID),
        (0o1000, MODE_STICKY),
    ] {
        if st_mode & bit != 0 {
            m |= go;
        }
    }
    m
}

/// The Unix permission bits (with setuid, setgid and sticky) of a Go `os.FileMode`.
pub fn unix_permissions(go_mode: u32) -> u32 {
    let mut m = go_mode & 0o777;
    for (bit, go) in [
        (0o4000, MODE_SETUID),
        (0o2000, MODE_SETGID),
        (0o1000, MODE_STICKY),
    ] {
        if go_mode & go != 0 {
            m |= bit;
        }
    }
    m
}

fn refused(field: &'static str, why: String) -> RuntimeError {
    RuntimeError::InvalidSpec { field, why }
}

/// The requested path as an absolute path without `.`, `..` or repeated slashes (relative
/// paths are taken from the root, as Docker takes them). A `..` that would leave the root is
/// refused, naming the path.
pub fn clean_path(path: &str) -> Result<String, RuntimeError> {
    if path.is_empty() {
        return Err(refused("path", "no path given".into()));
    }
    if path.contains('\0') {
        return Err(refused("path", format!("{path:?} contains a NUL byte")));
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(refused(
                        "path",
                        format!("{path} leads out of the container's filesystem"),
                    ));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// The last component of a cleaned path; `/` for the root.
pub fn base_name(clean: &str) -> String {
    match clean.rsplit('/').next() {
        Some("") | None => "/".into(),
        Some(b) => b.to_string(),
    }
}

/// The components of an archive entry's name, relative to the directory it is extracted into
/// (empty: that directory itself). Absolute names and names that climb out of it are refused,
/// naming the entry.
pub fn entry_components(name: &Path) -> Result<Vec<String>, RuntimeError> {
    let shown = name.display();
    let mut parts: Vec<String> = Vec::new();
    for c in name.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => {
                return Err(refused(
                    "archive",
                    format!("the archive entry {shown} is an absolute path"),
                ));
            }
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(refused(
                        "archive",
                        format!(
                            "the archive entry {shown} leads out of the directory it is extracted into"
                        ),
                    ));
                }
            }
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
        }
    }
    Ok(parts)
}

/// Refuses a symlink entry at `entry` whose relative `target` climbs out of the directory the
/// archive is extracted into (as Docker's extraction does); an absolute target is resolved in
/// the container's root when used, so it cannot lead out of it.
pub fn check_symlink_target(entry: &[String], target: &Path) -> Result<(), RuntimeError> {
    if target.is_absolute() {
        return Ok(());
    }
    let mut depth = entry.len().saturating_sub(1);
    for c in target.components() {
        match c {
            Component::ParentDir => {
                if depth == 0 {
                    return Err(refused(
                        "archive",
                        format!(
                            "the archive's symlink {} -> {} leads out of the directory it is extracted into",
                            entry.join("/"),
                            target.display()
                        ),
                    ));
                }
                depth -= 1;
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    Ok(())
}

/// Reads a whole archive and checks every entry as [`entry_components`] and
/// [`check_symlink_target`] do (hard links name an entry of the same archive); for a driver
/// that hands the archive on to something that extracts it.
pub fn check_entries(r: impl Read) -> Result<(), RuntimeError> {
    let unreadable =
        |e: std::io::Error| refused("archive", format!("not a readable tar archive: {e}"));
    let mut a = tar::Archive::new(r);
    for entry in a.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let path = entry.path().map_err(unreadable)?.into_owned();
        let parts = entry_components(&path)?;
        let kind = entry.header().entry_type();
        if let Some(target) = entry.link_name().map_err(unreadable)? {
            if kind.is_hard_link() {
                entry_components(&target)?;
            } else if kind.is_symlink() {
                check_symlink_target(&parts, &target)?;
            }
        }
        std::io::copy(&mut entry, &mut std::io::sink()).map_err(unreadable)?;
    }
    Ok(())
}

/// A blocking writer whose bytes become an [`ArchiveStream`], in chunks of up to 64 KiB: what
/// a tar builder on a blocking thread writes into. Writing fails once the stream is dropped
/// (the reader went away), which ends the builder's work.
pub struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, RuntimeError>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

/// A writer for a blocking thread and the stream of what it writes.
pub fn archive_channel() -> (ChannelWriter, ArchiveStream) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed();
    (
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        },
        stream,
    )
}

impl ChannelWriter {
    fn send(&mut self, item: Result<Bytes, RuntimeError>) -> std::io::Result<()> {
        self.tx.blocking_send(item).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the archive's reader went away",
            )
        })
    }

    /// Ends the stream with `e` instead of its last bytes.
    pub fn fail(mut self, e: RuntimeError) {
        let _ = self.send(Err(e));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.send(Ok(chunk))
    }
}

/// A blocking reader of an [`ArchiveStream`], for a tar reader on a blocking thread: a task on
/// the current runtime pulls the stream. A stream error reads as an io error carrying it.
pub struct StreamReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, RuntimeError>>,
    cur: Bytes,
}

/// Starts pulling `stream` (on the current tokio runtime) for a blocking reader.
pub fn blocking_reader(mut stream: ArchiveStream) -> StreamReader {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    StreamReader {
        rx,
        cur: Bytes::new(),
    }
}

impl Read for StreamReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// What a failing read of a [`StreamReader`] means: the stream's own error when it carried one,
/// else `what` failed with the io error.
pub fn read_error(what: impl Into<String>, e: std::io::Error) -> RuntimeError {
    if !e.get_ref().is_some_and(|inner| inner.is::<RuntimeError>()) {
        return RuntimeError::Io {
            context: what.into(),
            source: e,
        };
    }
    match e.into_inner().map(|inner| inner.downcast::<RuntimeError>()) {
        Some(Ok(inner)) => *inner,
        Some(Err(other)) => RuntimeError::failed(what, other),
        None => RuntimeError::failed(what, "the archive stream failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_and_kept_in_the_root() {
        assert_eq!(
            clean_path("/etc//hostname/").ok().as_deref(),
            Some("/etc/hostname")
        );
        assert_eq!(clean_path("tmp/./a/../b").ok().as_deref(), Some("/tmp/b"));
        assert_eq!(clean_path("/").ok().as_deref(), Some("/"));
        assert!(matches!(
            clean_path("/tmp/../../etc"),
            Err(RuntimeError::InvalidSpec { why, .. }) if why.contains("/tmp/../../etc")
        ));
        assert!(clean_path("").is_err());
        assert_eq!(base_name("/"), "/");
        assert_eq!(base_name("/etc/hostname"), "hostname");
    }

    #[test]
    fn entries_stay_in_their_directory() {
        let ok = |p: &str| entry_components(Path::new(p)).ok();
        assert_eq!(ok("./a/b"), Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(ok("a/../b"), Some(vec!["b".to_string()]));
        assert_eq!(ok("./"), Some(vec![]));
        assert!(ok("../x").is_none());
        assert!(ok("a/../../x").is_none());
        assert!(ok("/etc/passwd").is_none());
        let at = |p: &str| p.split('/').map(str::to_string).collect::<Vec<_>>();
        assert!(check_symlink_target(&at("a/l"), Path::new("../b")).is_ok());
        assert!(check_symlink_target(&at("a/l"), Path::new("../../b")).is_err());
        assert!(check_symlink_target(&at("l"), Path::new("/etc")).is_ok());
    }

    #[test]
    fn go_modes_as_docker_sends_them() {
        assert_eq!(go_file_mode(0o040755), MODE_DIR | 0o755);
        assert_eq!(go_file_mode(0o120777), MODE_SYMLINK | 0o777);
        assert_eq!(go_file_mode(0o104755), MODE_SETUID | 0o755);
        assert_eq!(go_file_mode(0o100640), 0o640);
        assert_eq!(unix_permissions(MODE_DIR | MODE_STICKY | 0o777), 0o1777);
    }

    #[test]
    fn archives_with_escaping_entries_are_refused() {
        let tar_of = |name: &str, link: Option<&str>| {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            match link {
                Some(l) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    // Written raw: the builder itself refuses such names.
                    h.set_link_name_literal(l).expect("link");
                }
                None => h.set_size(1),
            }
            let bytes = h.as_gnu_mut().map(|g| &mut g.name);
            if let Some(n) = bytes {
                n[..name.len()].copy_from_slice(name.as_bytes());
            }
            h.set_cksum();
            b.append(&h, if link.is_some() { &b""[..] } else { &b"x"[..] })
                .expect("append");
            b.into_inner().expect("tar")
        };
        assert!(check_entries(&tar_of("ok/f", None)[..]).is_ok());
        assert!(check_entries(&tar_of("../f", None)[..]).is_err());
        assert!(check_entries(&tar_of("/f", None)[..]).is_err());
        assert!(check_entries(&tar_of("l", Some("../../x"))[..]).is_err());
        assert!(check_entries(&tar_of("l", Some("/etc"))[..]).is_ok());
    }
}
