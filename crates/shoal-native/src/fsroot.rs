//! A task's root filesystem, opened by the daemon as if chrooted into it: the walk the archive
//! calls (`archive`) use to find, read and write the task's paths without ever leaving its
//! root.
//!
//! The root is a directory fd: `/proc/<pid>/root` of a running task's process (which sees its
//! mounts: volumes, tmpfs, secrets, /etc files), or the bundle's rootfs of a task not running,
//! with the bind mounts of its bundle laid over it by path (see [`Root::open`]). Every lookup is
//! one component at a time, `openat(parent_fd, name, O_PATH | O_NOFOLLOW)`: symlinks are read
//! and their targets walked here (an absolute one from the task's root, `..` stopping at the
//! root), never followed by the kernel, whose resolution would start from the daemon's own
//! root. Everything after the walk works on the fds it returns (`*at` calls with
//! `AT_SYMLINK_NOFOLLOW`, `O_NOFOLLOW` opens, reopening through `/proc/self/fd`), so a task that
//! swaps a path for a symlink meanwhile changes what is found in its own root, never where.
//!
//! Blocking: callers run it on tokio's blocking pool.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};

/// How many symlinks one walk follows before giving up (Linux's own limit).
const MAX_LINKS: usize = 40;

/// Why a walk found nothing.
#[derive(Debug)]
pub(crate) enum WalkError {
    /// A component does not exist; the path the walk would have reached (its missing part
    /// taken as written), which is what a dangling symlink points at.
    NotFound(String),
    /// A component before the last is not a directory.
    NotDir(String),
    TooManyLinks(String),
    Io(String, Errno),
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WalkError::NotFound(p) => write!(f, "{p}: no such file or directory"),
            WalkError::NotDir(p) => write!(f, "{p}: not a directory"),
            WalkError::TooManyLinks(p) => write!(f, "{p}: too many levels of symbolic links"),
            WalkError::Io(p, e) => write!(f, "{p}: {}", e.desc()),
        }
    }
}

/// A bind mount of a task not running, laid over its rootfs by path.
#[derive(Debug, Clone)]
pub(crate) struct Overlay {
    /// Where it is in the task (absolute, clean).
    pub target: String,
    pub source: PathBuf,
    pub read_only: bool,
}

pub(crate) struct Root {
    fd: OwnedFd,
    overlays: Vec<Overlay>,
    read_only: bool,
}

/// What a walk found: its path in the task, an `O_PATH` fd of it (not followed, when it is a
/// symlink the walk was not asked to follow), and its parent directory's fd and its name there,
/// for the `*at` calls that act on it.
pub(crate) struct Found {
    pub path: String,
    pub fd: OwnedFd,
    pub parent: Option<OwnedFd>,
    pub name: String,
    pub stat: FileStat,
}

impl Found {
    pub fn is_dir(&self) -> bool {
        kind(&self.stat) == SFlag::S_IFDIR
    }

    pub fn is_symlink(&self) -> bool {
        kind(&self.stat) == SFlag::S_IFLNK
    }
}

pub(crate) fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn opath(dir: BorrowedFd<'_>, name: &str) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Reopens an `O_PATH` fd for real IO (the same inode, whatever its path holds now).
pub(crate) fn reopen(fd: &OwnedFd, flags: OFlag) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        Path::new(&format!("/proc/self/fd/{}", fd.as_raw_fd())),
        flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    )
}

fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

impl Root {
    /// The root at `path` (a directory of the node), with `overlays` over it and, when
    /// `read_only`, no writes outside a writable overlay.
    pub fn open(path: &Path, overlays: Vec<Overlay>, read_only: bool) -> std::io::Result<Root> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| std::io::Error::other(format!("opening {}: {}", path.display(), e.desc())))?;
        Ok(Root {
            fd,
            overlays,
            read_only,
        })
    }

    /// Whether something may be written at `path` (a path in the task).
    pub fn writable(&self, path: &str) -> bool {
        let over = self
            .overlays
            .iter()
            .filter(|o| path == o.target || path.starts_with(&format!("{}/", o.target)))
            .max_by_key(|o| o.target.len());
        match over {
            Some(o) => !o.read_only,
            None => !self.read_only,
        }
    }

    fn overlay(&self, path: &str) -> Option<&Overlay> {
        self.overlays.iter().find(|o| o.target == path)
    }

    /// Walks `path` (absolute, clean) from the root; the last component is followed only with
    /// `follow_last`. With `make_dirs`, what is missing on the way, the last component too, is
    /// made a directory (mode 0755), as extracting an archive makes an entry's parents.
    pub fn walk(&self, path: &str, follow_last: bool, make_dirs: bool) -> Result<Found, WalkError> {
        // The directories walked so far: their names and fds; empty at the root.
        let mut stack: Vec<(String, OwnedFd)> = Vec::new();
        let mut todo: VecDeque<String> = path
            .split('/')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        let mut links = 0;
        let here = |stack: &[(String, OwnedFd)]| -> String {
            let names: Vec<&str> = stack.iter().map(|(n, _)| n.as_str()).collect();
            format!("/{}", names.join("/"))
        };
        let io = |p: String, e: Errno| WalkError::Io(p, e);
        while let Some(c) = todo.pop_front() {
            if c == "." {
                continue;
            }
            if c == ".." {
                stack.pop();
                continue;
            }
            let parent_path = here(&stack);
            let child_path = join(&parent_path, &c);
            let dir = stack.last().map_or(self.fd.as_fd(), |(_, fd)| fd.as_fd());
            let opened = match self.overlay(&child_path) {
                Some(o) => nix::fcntl::open(
                    &o.source,
                    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                ),
                None => opath(dir, &c),
            };
            let fd = match opened {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if make_dirs => {
                    match nix::sys::stat::mkdirat(dir, c.as_str(), Mode::from_bits_truncate(0o755))
                    {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(io(child_path, e)),
                    }
                    opath(dir, &c).map_err(|e| io(child_path.clone(), e))?
                }
                Err(Errno::ENOENT) => {
                    let rest: Vec<String> = todo.into_iter().collect();
                    let mut would = child_path;
                    for r in rest.iter().filter(|r| !r.is_empty() && *r != ".") {
                        would = join(&would, r);
                    }
                    return Err(WalkError::NotFound(would));
                }
                Err(Errno::ENOTDIR) => return Err(WalkError::NotDir(parent_path)),
                Err(e) => return Err(io(child_path, e)),
            };
            let st = fstat(&fd).map_err(|e| io(child_path.clone(), e))?;
            let last = todo.is_empty();
            if kind(&st) == SFlag::S_IFLNK && (!last || follow_last) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(WalkError::TooManyLinks(path.to_string()));
                }
                let target = nix::fcntl::readlinkat(dir, c.as_str())
                    .map_err(|e| io(child_path.clone(), e))?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    stack.clear();
                }
                for part in target.split('/').filter(|p| !p.is_empty()).rev() {
                    todo.push_front(part.to_string());
                }
                continue;
            }
            if !last && kind(&st) != SFlag::S_IFDIR {
                return Err(WalkError::NotDir(child_path));
            }
            stack.push((c, fd));
        }
        let path = here(&stack);
        match stack.pop() {
            None => {
                let fd = self.fd.try_clone().map_err(|e| {
                    io(
                        "/".into(),
                        e.raw_os_error().map_or(Errno::EIO, Errno::from_raw),
                    )
                })?;
                let stat = fstat(&fd).map_err(|e| io("/".into(), e))?;
                Ok(Found {
                    path,
                    fd,
                    parent: None,
                    name: String::new(),
                    stat,
                })
            }
            Some((name, fd)) => {
                let parent = match stack.pop() {
                    Some((_, p)) => p,
                    None => self.fd.try_clone().map_err(|e| {
                        io(
                            "/".into(),
                            e.raw_os_error().map_or(Errno::EIO, Errno::from_raw),
                        )
                    })?,
                };
                let stat = fstat(&fd).map_err(|e| io(path.clone(), e))?;
                Ok(Found {
                    path,
                    fd,
                    parent: Some(parent),
                    name,
                    stat,
                })
            }
        }
    }

    /// The fd of the child `name` of the directory `dir` (at `dir_path` in the task), not
    /// followed; an overlay at that path instead of what the rootfs has there.
    pub fn child(&self, dir: &OwnedFd, dir_path: &str, name: &str) -> nix::Result<OwnedFd> {
        match self.overlay(&join(dir_path, name)) {
            Some(o) => nix::fcntl::open(
                &o.source,
                OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            ),
            None => opath(dir.as_fd(), name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        std::fs::create_dir_all(r.join("etc")).expect("mkdir");
        std::fs::write(r.join("etc/f"), b"in the root").expect("write");
        std::os::unix::fs::symlink("../../../../..", r.join("etc/up")).expect("symlink");
        std::os::unix::fs::symlink("/etc", r.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("/nowhere/x", r.join("dangling")).expect("symlink");
        t
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let t = tree();
        let root = Root::open(t.path(), Vec::new(), false).expect("root");
        let f = root
            .walk("/etc/up/etc/up/abs/f", true, false)
            .expect("walk");
        assert_eq!(f.path, "/etc/f");
        assert_eq!(f.stat.st_size, 11);
        let l = root.walk("/abs", false, false).expect("walk");
        assert!(l.is_symlink());
        assert_eq!(root.walk("/abs", true, false).expect("walk").path, "/etc");
        assert!(matches!(
            root.walk("/dangling", true, false),
            Err(WalkError::NotFound(p)) if p == "/nowhere/x"
        ));
        assert!(matches!(
            root.walk("/etc/f/x", true, false),
            Err(WalkError::NotDir(_))
        ));
        let made = root.walk("/abs/new/deeper", true, true).expect("made");
        assert!(made.is_dir() && made.path == "/etc/new/deeper");
        assert!(t.path().join("etc/new/deeper").is_dir());
    }

    #[test]
    fn overlays_stand_over_the_rootfs() {
        let t = tree();
        let vol = tempfile::tempdir().expect("tempdir");
        std::fs::write(vol.path().join("v"), b"volume").expect("write");
        let over = Overlay {
            target: "/data".into(),
            source: vol.path().to_path_buf(),
            read_only: true,
        };
        std::fs::create_dir_all(t.path().join("data")).expect("mkdir");
        let root = Root::open(t.path(), vec![over], false).expect("root");
        assert_eq!(
            root.walk("/etc/up/data/v", true, false)
                .expect("walk")
                .stat
                .st_size,
            6
        );
        assert!(!root.writable("/data/v") && root.writable("/etc"));
    }
}
