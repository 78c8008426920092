//! A task's files as archives (`docker cp`) for image tasks: stat, a tar of a path, a tar
//! extracted into a directory, all through [`fsroot`](super::fsroot) so nothing leaves the
//! task's root.
//!
//! Which root: a running task's is its process's (`/proc/<pid>/root`), so what is put or read
//! is what the task itself sees, its volumes, tmpfs mounts and secrets included, and a write
//! lands where the task would have made it. A task that is not running (prepared, or exited)
//! has no process to look through: its bundle's rootfs stands in (the overlay mount outlives
//! the process and keeps what the last run changed), with the bundle's bind mounts (volumes,
//! binds, /etc files) laid over it by path as Docker mounts them for a stopped container's
//! copy; its tmpfs mounts are gone with its process, and with them what they held. A read-only
//! rootfs takes no writes outside a writable mount, as Docker refuses them.
//!
//! A task of the `host` image shares the node's own files: no archives of those.
//!
//! Blocking work (the walk, the tar) runs on tokio's blocking pool; an archive read streams
//! from there ([`shoal_runtime::archive::archive_channel`]), one written is read there
//! ([`shoal_runtime::archive::blocking_reader`]).

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, UtimensatFlags, fstatat};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, unlinkat};
use shoal_runtime::RuntimeError;
use shoal_runtime::RuntimeTaskState;
use shoal_runtime::archive::{
    ArchiveStream, ChannelWriter, PathStat, archive_channel, base_name, blocking_reader,
    check_symlink_target, clean_path, entry_components, go_file_mode, read_error,
};
use shoal_types::{Id, Timestamp};

use super::fsroot::{Found, Overlay, Root, WalkError, kind, reopen};
use super::layout::{self, TaskDir};
use super::{NativeDriver, blocking, io, proc};

fn not_found(path: &str) -> RuntimeError {
    RuntimeError::PathNotFound {
        path: path.to_string(),
    }
}

fn invalid(field: &'static str, why: String) -> RuntimeError {
    RuntimeError::InvalidSpec { field, why }
}

/// A walk's failure for the path the caller asked for.
fn walk_err(requested: &str, e: WalkError) -> RuntimeError {
    match e {
        WalkError::NotFound(_) | WalkError::NotDir(_) => not_found(requested),
        other => RuntimeError::Io {
            context: format!("resolving {requested} in the container"),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

/// An errno from working on `what`, as the caller should see it.
fn errno(what: &str, e: Errno) -> RuntimeError {
    match e {
        Errno::EROFS => invalid("path", format!("{what}: the filesystem is read-only")),
        e => RuntimeError::Io {
            context: what.to_string(),
            source: std::io::Error::from(e),
        },
    }
}

fn timestamp(st: &FileStat) -> Timestamp {
    Timestamp::from_unix_nanos(
        st.st_mtime
            .saturating_mul(1_000_000_000)
            .saturating_add(st.st_mtime_nsec),
    )
}

/// The stat Docker gives of `found`, asked for as `clean`.
fn stat_of(root: &Root, clean: &str, found: &Found) -> PathStat {
    let link_target = if found.is_symlink() {
        match root.walk(clean, true, false) {
            Ok(f) => f.path,
            // A dangling link points where the walk would have gone.
            Err(WalkError::NotFound(p)) => p,
            Err(_) => String::new(),
        }
    } else {
        String::new()
    };
    PathStat {
        name: base_name(clean),
        size: found.stat.st_size,
        mode: go_file_mode(found.stat.st_mode),
        mtime: timestamp(&found.stat),
        link_target,
    }
}

/// The bundle's bind mounts whose sources are still there (secrets go when the task exits).
fn bundle_overlays(dir: &TaskDir) -> Result<(Vec<Overlay>, bool), RuntimeError> {
    let spec: oci_spec::runtime::Spec =
        layout::read_json(&dir.file(layout::BUNDLE).join("config.json"))
            .map_err(|e| io("reading the task's bundle", e))?
            .ok_or_else(|| {
                io(
                    "reading the task's bundle",
                    std::io::Error::other("it is missing"),
                )
            })?;
    let read_only = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let is_bind = m.typ().as_deref() == Some("bind")
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        let Some(source) = m.source() else { continue };
        if !is_bind || !source.exists() {
            continue;
        }
        let Ok(target) = clean_path(&m.destination().to_string_lossy()) else {
            continue;
        };
        out.push(Overlay {
            target,
            source: source.clone(),
            read_only: m.options().iter().flatten().any(|o| o == "ro"),
        });
    }
    Ok((out, read_only))
}

/// File systems whose contents are the kernel's, not the task's: listed, never descended into
/// (a running task's `/proc`, `/sys`, cgroups), as Docker's archive of a container's rootfs
/// holds only their empty mount points.
fn is_pseudo(fd: &OwnedFd) -> bool {
    use nix::sys::statfs::*;
    fstatfs(fd).is_ok_and(|s| {
        [
            PROC_SUPER_MAGIC,
            SYSFS_MAGIC,
            DEVPTS_SUPER_MAGIC,
            CGROUP_SUPER_MAGIC,
            CGROUP2_SUPER_MAGIC,
            DEBUGFS_MAGIC,
            TRACEFS_MAGIC,
            SECURITYFS_MAGIC,
            BPF_FS_MAGIC,
        ]
        .contains(&s.filesystem_type())
    })
}

/// `size` bytes of `r`, zeros past its end: a file that shrank while archived still fills
/// its entry as the header announced it.
fn exact(r: impl Read, size: u64) -> impl Read {
    r.take(size).chain(std::io::repeat(0)).take(size)
}

fn header(st: &FileStat) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h.set_size(0);
    h
}

/// Appends `found` (its parent `parent`, its name `name` there) as `entry`, and everything under
/// it when it is a directory.
fn append(
    b: &mut tar::Builder<ChannelWriter>,
    root: &Root,
    found: &Found,
    entry: &str,
) -> Result<(), RuntimeError> {
    let failed = |e: std::io::Error| read_error(format!("archiving {}", found.path), e);
    let st = &found.stat;
    let mut h = header(st);
    match kind(st) {
        SFlag::S_IFREG => {
            let f = reopen(&found.fd, OFlag::O_RDONLY).map_err(|e| errno(&found.path, e))?;
            let size = u64::try_from(st.st_size).unwrap_or(0);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(size);
            b.append_data(&mut h, entry, exact(std::fs::File::from(f), size))
                .map_err(failed)?;
        }
        SFlag::S_IFLNK => {
            let target = match &found.parent {
                Some(p) => nix::fcntl::readlinkat(p, found.name.as_str()),
                None => Err(Errno::EINVAL),
            }
            .map_err(|e| errno(&found.path, e))?;
            h.set_entry_type(tar::EntryType::Symlink);
            b.append_link(&mut h, entry, target).map_err(failed)?;
        }
        SFlag::S_IFDIR => {
            h.set_entry_type(tar::EntryType::Directory);
            b.append_data(&mut h, format!("{entry}/"), std::io::empty())
                .map_err(failed)?;
            if is_pseudo(&found.fd) {
                return Ok(());
            }
            let listing = reopen(&found.fd, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                .and_then(nix::dir::Dir::from_fd)
                .map_err(|e| errno(&found.path, e))?;
            let mut names: Vec<String> = Vec::new();
            let mut listing = listing;
            for e in listing.iter() {
                let e = e.map_err(|e| errno(&found.path, e))?;
                let n = e.file_name().to_string_lossy().into_owned();
                if n != "." && n != ".." {
                    names.push(n);
                }
            }
            names.sort();
            for n in names {
                let path = if found.path == "/" {
                    format!("/{n}")
                } else {
                    format!("{}/{n}", found.path)
                };
                let fd = match root.child(&found.fd, &found.path, &n) {
                    Ok(fd) => fd,
                    // Gone since the listing.
                    Err(Errno::ENOENT) => continue,
                    Err(e) => return Err(errno(&path, e)),
                };
                let stat = nix::sys::stat::fstat(&fd).map_err(|e| errno(&path, e))?;
                let parent = found.fd.try_clone().map_err(|e| io(path.clone(), e))?;
                let child = Found {
                    path,
                    fd,
                    parent: Some(parent),
                    name: n.clone(),
                    stat,
                };
                append(b, root, &child, &format!("{entry}/{n}"))?;
            }
        }
        k @ (SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO) => {
            h.set_entry_type(match k {
                SFlag::S_IFCHR => tar::EntryType::Char,
                SFlag::S_IFBLK => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            });
            let (major, minor) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
            let _ = h.set_device_major(major);
            let _ = h.set_device_minor(minor);
            b.append_data(&mut h, entry, std::io::empty())
                .map_err(failed)?;
        }
        // Sockets: not files one can copy, as Docker's archives leave them out.
        _ => {}
    }
    Ok(())
}

/// Removes `name` in `dir`, everything under it when it is a directory, never following a
/// symlink.
fn remove_all(dir: BorrowedFd<'_>, name: &str) -> nix::Result<()> {
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Err(Errno::EISDIR) => {}
        other => return other,
    }
    let d = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    let mut listing = nix::dir::Dir::from_fd(d.try_clone().map_err(|_| Errno::EMFILE)?)?;
    for e in listing.iter() {
        let n = e?.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            names.push(n);
        }
    }
    for n in names {
        remove_all(d.as_fd(), &n)?;
    }
    unlinkat(dir, name, UnlinkatFlags::RemoveDir)
}

/// Owner, mode and time of what was just made at an fd opened without following.
fn finish_fd(fd: &OwnedFd, h: &tar::Header, times: bool) -> nix::Result<()> {
    let uid = Uid::from_raw(u32::try_from(h.uid().unwrap_or(0)).unwrap_or(0));
    let gid = Gid::from_raw(u32::try_from(h.gid().unwrap_or(0)).unwrap_or(0));
    fchown(fd, Some(uid), Some(gid))?;
    // After the owner: chown clears setuid and setgid.
    let mode = Mode::from_bits_truncate(h.mode().unwrap_or(0o644) & 0o7777);
    nix::sys::stat::fchmod(fd, mode)?;
    if times {
        let t = TimeSpec::new(i64::try_from(h.mtime().unwrap_or(0)).unwrap_or(0), 0);
        nix::sys::stat::futimens(fd, &t, &t)?;
    }
    Ok(())
}

/// Extracts `archive` into the directory at `dir` (its path in the task), as Docker's
/// extraction does: entries in order, parents made as needed, what is there replaced (a
/// directory merged with a directory), owners, modes and times from the archive.
fn extract(
    root: &Root,
    dir: &str,
    shown: &str,
    archive: impl Read,
    no_overwrite: bool,
) -> Result<(), RuntimeError> {
    let unreadable = |e: std::io::Error| match read_error("reading the archive", e) {
        RuntimeError::Io { source, .. } => {
            invalid("archive", format!("not a readable tar archive: {source}"))
        }
        other => other,
    };
    let mut a = tar::Archive::new(archive);
    // Directories get their times last: what is put into them changes them.
    let mut dir_times: Vec<(String, tar::Header)> = Vec::new();
    for entry in a.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let name = entry.path().map_err(unreadable)?.into_owned();
        let parts = entry_components(&name)?;
        let Some((last, parents)) = parts.split_last() else {
            continue;
        };
        let h = entry.header().clone();
        let ty = h.entry_type();
        let link = entry
            .link_name()
            .map_err(unreadable)?
            .map(|l| l.into_owned());
        if ty.is_symlink() {
            check_symlink_target(&parts, link.as_deref().unwrap_or(std::path::Path::new("")))?;
        }
        let mut parent_path = dir.to_string();
        for p in parents {
            parent_path = if parent_path == "/" {
                format!("/{p}")
            } else {
                format!("{parent_path}/{p}")
            };
        }
        let parent = match root.walk(&parent_path, true, true) {
            Ok(p) if p.is_dir() => p,
            Ok(p) => return Err(invalid("archive", format!("{} is not a directory", p.path))),
            Err(e) => return Err(walk_err(&parent_path, e)),
        };
        let target = if parent.path == "/" {
            format!("/{last}")
        } else {
            format!("{}/{last}", parent.path)
        };
        if !root.writable(&target) {
            return Err(invalid(
                "path",
                format!("{shown}: the container's root filesystem is read-only"),
            ));
        }
        let pfd = parent.fd.as_fd();
        let old = match fstatat(pfd, last.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Some(kind(&st)),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(errno(&target, e)),
        };
        let new_is_dir = ty.is_dir();
        match old {
            Some(SFlag::S_IFDIR) if new_is_dir => {}
            Some(SFlag::S_IFDIR) if no_overwrite => {
                return Err(invalid(
                    "noOverwriteDirNonDir",
                    format!(
                        "cannot overwrite directory {target} with non-directory {}",
                        name.display()
                    ),
                ));
            }
            Some(_) if new_is_dir && no_overwrite => {
                return Err(invalid(
                    "noOverwriteDirNonDir",
                    format!(
                        "cannot overwrite non-directory {target} with directory {}",
                        name.display()
                    ),
                ));
            }
            Some(_) => remove_all(pfd, last).map_err(|e| errno(&target, e))?,
            None => {}
        }
        let made = || -> nix::Result<()> {
            if new_is_dir {
                match nix::sys::stat::mkdirat(pfd, last.as_str(), Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                let d = openat(
                    pfd,
                    last.as_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )?;
                finish_fd(&d, &h, false)
            } else if ty.is_symlink() {
                let t = link.clone().unwrap_or_default();
                nix::unistd::symlinkat(&t, pfd, last.as_str())?;
                let uid = Uid::from_raw(u32::try_from(h.uid().unwrap_or(0)).unwrap_or(0));
                let gid = Gid::from_raw(u32::try_from(h.gid().unwrap_or(0)).unwrap_or(0));
                fchownat(
                    pfd,
                    last.as_str(),
                    Some(uid),
                    Some(gid),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )?;
                let t = TimeSpec::new(i64::try_from(h.mtime().unwrap_or(0)).unwrap_or(0), 0);
                nix::sys::stat::utimensat(
                    pfd,
                    last.as_str(),
                    &t,
                    &t,
                    UtimensatFlags::NoFollowSymlink,
                )
            } else {
                Ok(())
            }
        };
        if new_is_dir || ty.is_symlink() {
            made().map_err(|e| errno(&target, e))?;
            if new_is_dir {
                dir_times.push((target, h));
            }
            continue;
        }
        if ty.is_hard_link() {
            let from_parts = entry_components(link.as_deref().unwrap_or(std::path::Path::new("")))?;
            let from = format!("{}/{}", dir.trim_end_matches('/'), from_parts.join("/"));
            let src = root
                .walk(&from, false, false)
                .map_err(|e| walk_err(&from, e))?;
            let Some(src_parent) = &src.parent else {
                return Err(invalid(
                    "archive",
                    format!("{}: cannot link to the root", name.display()),
                ));
            };
            nix::unistd::linkat(
                src_parent,
                src.name.as_str(),
                pfd,
                last.as_str(),
                AtFlags::empty(),
            )
            .map_err(|e| errno(&target, e))?;
            continue;
        }
        if !(ty.is_file() || ty == tar::EntryType::Continuous) {
            return Err(invalid(
                "archive",
                format!(
                    "the archive entry {} is a device or a pipe, which this runtime does not make",
                    name.display()
                ),
            ));
        }
        let fd = openat(
            pfd,
            last.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| errno(&target, e))?;
        let mut f = std::fs::File::from(fd);
        std::io::copy(&mut entry, &mut f).map_err(|e| {
            match read_error(format!("writing {target}"), e) {
                RuntimeError::Io { source, .. } if source.raw_os_error() == Some(libc::EROFS) => {
                    invalid("path", format!("{target}: the filesystem is read-only"))
                }
                other => other,
            }
        })?;
        finish_fd(&OwnedFd::from(f), &h, true).map_err(|e| errno(&target, e))?;
    }
    for (path, h) in dir_times.into_iter().rev() {
        if let Ok(found) = root.walk(&path, false, false)
            && found.is_dir()
            && let Ok(d) = reopen(&found.fd, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
        {
            let t = TimeSpec::new(i64::try_from(h.mtime().unwrap_or(0)).unwrap_or(0), 0);
            let _ = nix::sys::stat::futimens(&d, &t, &t);
        }
    }
    Ok(())
}

impl NativeDriver {
    /// The root archives of the task work in (see the module doc).
    async fn archive_root(&self, task_id: &Id) -> Result<Root, RuntimeError> {
        let dir = self.known(task_id)?;
        let cfg = dir
            .config()
            .map_err(|e| io(format!("reading {}", dir.path().display()), e))?
            .ok_or_else(|| RuntimeError::NotFound(task_id.clone()))?;
        if cfg.oci.is_none() {
            return Err(RuntimeError::Unsupported {
                runtime: "native",
                what: "file archives of tasks of the host image (they run on the node's own files)",
            });
        }
        let running = match self.observe(&dir)? {
            RuntimeTaskState::Running { .. } => dir
                .running()
                .map_err(|e| io(format!("reading {}", dir.path().display()), e))?,
            _ => None,
        };
        blocking(move || -> Result<Root, RuntimeError> {
            if let Some(r) = running {
                let at = format!("/proc/{}/root", r.pid);
                // Checked after the open: the fd is then surely the task's process's root.
                if let Ok(root) = Root::open(std::path::Path::new(&at), Vec::new(), false)
                    && proc::is_same_and_alive(r.pid, r.start_time)
                {
                    return Ok(root);
                }
            }
            let (overlays, read_only) = bundle_overlays(&dir)?;
            Root::open(&dir.file(layout::ROOTFS), overlays, read_only)
                .map_err(|e| io("opening the task's root filesystem", e))
        })
        .await?
    }

    pub(crate) async fn stat_path(
        &self,
        task_id: &Id,
        path: &str,
    ) -> Result<PathStat, RuntimeError> {
        let clean = clean_path(path)?;
        let root = self.archive_root(task_id).await?;
        let requested = path.to_string();
        blocking(move || {
            let found = root
                .walk(&clean, false, false)
                .map_err(|e| walk_err(&requested, e))?;
            Ok(stat_of(&root, &clean, &found))
        })
        .await?
    }

    pub(crate) async fn get_archive(
        &self,
        task_id: &Id,
        path: &str,
    ) -> Result<(PathStat, ArchiveStream), RuntimeError> {
        let clean = clean_path(path)?;
        let root = self.archive_root(task_id).await?;
        let requested = path.to_string();
        let (root, found, stat) = blocking(move || {
            let found = root
                .walk(&clean, false, false)
                .map_err(|e| walk_err(&requested, e))?;
            let stat = stat_of(&root, &clean, &found);
            Ok::<_, RuntimeError>((root, found, stat))
        })
        .await??;
        let entry = if stat.name == "/" {
            ".".to_string()
        } else {
            stat.name.clone()
        };
        let (w, stream) = archive_channel();
        tokio::task::spawn_blocking(move || {
            let mut b = tar::Builder::new(w);
            let done = append(&mut b, &root, &found, &entry).and_then(|()| {
                b.finish()
                    .map_err(|e| read_error("finishing the archive", e))
            });
            match (done, b.into_inner()) {
                (Ok(()), Ok(mut w)) => {
                    let _ = std::io::Write::flush(&mut w);
                }
                (Err(e), Ok(w)) => w.fail(e),
                // The reader went away: nobody to tell.
                (_, Err(_)) => {}
            }
        });
        Ok((stat, stream))
    }

    pub(crate) async fn put_archive(
        &self,
        task_id: &Id,
        dir: &str,
        archive: ArchiveStream,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<(), RuntimeError> {
        let clean = clean_path(dir)?;
        let root = self.archive_root(task_id).await?;
        let shown = dir.to_string();
        let reader = blocking_reader(archive);
        blocking(move || {
            let at = match root.walk(&clean, true, false) {
                Ok(f) if f.is_dir() => f,
                Ok(_) => {
                    return Err(invalid(
                        "path",
                        format!("extraction point {shown} is not a directory"),
                    ));
                }
                Err(e) => return Err(walk_err(&shown, e)),
            };
            extract(&root, &at.path, &shown, reader, no_overwrite_dir_non_dir)
        })
        .await?
    }
}
