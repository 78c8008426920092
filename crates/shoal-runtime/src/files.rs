//! Files a task gets from memory: its secrets and configs. Every driver puts them on a tmpfs of
//! the task's own (so their bytes never reach a disk) and binds each file read-only at its path
//! in the task; removing the task unmounts the tmpfs, and the bytes are gone from the node.
//!
//! Blocking (mount, write); drivers call it from their blocking pools.

use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use shoal_types::payload::Bytes;

/// Where the tmpfs mounts live: under `/run`, never under a node's data directory, so nothing
/// that copies, backs up or searches a data directory ever meets a secret's bytes.
pub const FILES_ROOT: &str = "/run/shoal/files";

/// The mount point for the files of the task that `key` names uniquely on this machine (a
/// driver's own task directory, or its owner and the task ID).
pub fn dir_for(key: &Path) -> PathBuf {
    let flat = key
        .to_string_lossy()
        .trim_start_matches('/')
        .replace('/', "_");
    Path::new(FILES_ROOT).join(flat)
}

/// One file of a task: a secret or a config, resolved by the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFile {
    /// Absolute path in the task.
    pub path: String,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    /// `Debug` shows only its length.
    pub data: Bytes,
}

/// What the driver binds: the file on the tmpfs and its path in the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub source: PathBuf,
    pub target: String,
}

/// Mounts a fresh tmpfs at `dir` (only root may enter it) and writes `files` on it, each with
/// its owner and mode. On error, whatever was mounted is unmounted again.
pub fn materialize(dir: &Path, files: &[TaskFile]) -> io::Result<Vec<Bound>> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let size: usize = files.iter().map(|f| f.data.len() + 4096).sum::<usize>() + 64 * 1024;
    let opts = format!("mode=0700,size={size}");
    nix::mount::mount(
        Some("shoal-files"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(opts.as_str()),
    )
    .map_err(|e| io::Error::other(format!("mounting a tmpfs at {}: {e}", dir.display())))?;
    let written = write_all(dir, files);
    if written.is_err() {
        let _ = release(dir);
    }
    written
}

fn write_all(dir: &Path, files: &[TaskFile]) -> io::Result<Vec<Bound>> {
    let mut out = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let source = dir.join(i.to_string());
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&source)?;
        file.write_all(f.data.as_slice())?;
        std::os::unix::fs::fchown(&file, Some(f.uid), Some(f.gid)).map_err(|e| {
            io::Error::other(format!("giving {} to {}:{}: {e}", f.path, f.uid, f.gid))
        })?;
        file.set_permissions(std::fs::Permissions::from_mode(f.mode & 0o777))?;
        out.push(Bound {
            source,
            target: f.path.clone(),
        });
    }
    Ok(out)
}

/// Unmounts the tmpfs at `dir` (if one is there) and removes the directory; nothing there is
/// not an error, so it can run on every removal.
pub fn release(dir: &Path) -> io::Result<()> {
    match nix::mount::umount2(dir, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => {
            return Err(io::Error::other(format!(
                "unmounting {}: {e}",
                dir.display()
            )));
        }
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The files of the tasks a driver runs, kept in the driver's memory from `prepare` on: a task
/// started again in place (see [`crate::RuntimeDriver::start`]) gets them back on a new tmpfs
/// after its exit released the last one. Never written to disk, so a daemon that restarted
/// since the task's `prepare` no longer has them until the task is prepared again.
///
/// Concurrency: one mutex, never held across an await.
#[derive(Debug, Default)]
pub struct KeptFiles(std::sync::Mutex<std::collections::HashMap<shoal_types::Id, Vec<TaskFile>>>);

impl KeptFiles {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<shoal_types::Id, Vec<TaskFile>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `files` for the task (nothing for a task without files).
    pub fn keep(&self, task: &shoal_types::Id, files: &[TaskFile]) {
        if !files.is_empty() {
            self.lock().insert(task.clone(), files.to_vec());
        }
    }

    /// The task's files, when this driver still has them.
    pub fn get(&self, task: &shoal_types::Id) -> Option<Vec<TaskFile>> {
        self.lock().get(task).cloned()
    }

    pub fn forget(&self, task: &shoal_types::Id) {
        self.lock().remove(task);
    }
}
