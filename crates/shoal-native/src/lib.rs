//! The native runtime: runs each task as a real Linux process under its own shim (see [`shim`]),
//! in its own PID, mount, UTS and IPC namespaces and its own cgroup, where the node allows.
//!
//! The reserved image `host` (any tag) runs the command on the node's own filesystem, the shim
//! setting up the namespaces itself (see `spawn`). Any other image is resolved through the
//! node's [`ImageStore`] and runs as an OCI container: the task gets its own root filesystem
//! (an overlay mount of the image's layers, or a copy where overlayfs is not available, see
//! `rootfs`), an OCI bundle (see `oci`, `image_task`), and the shim has the OCI runtime (`crun`,
//! or `runc`) `create` and `start` it so that it still supervises the container's init itself
//! (see `crun`): logs, exit codes, OOM kills, stop and adoption work the same for both kinds.
//! Named volumes live under `<data-dir>/volumes` (see `volumes`) and outlive tasks. Health checks
//! of both kinds run in the shim (see `health`). Everything about a task is on disk under
//! `<root>/tasks/<task-id>` (see `layout`), so a new driver on the same root adopts the tasks of a previous one: `list`
//! finds them, `wait` and `stop` work on them (by pidfd, with pid + start-time checks so a reused
//! pid is never signalled).
//!
//! A task that exited starts again in place (see `restart`): same directory, rootfs and log, a
//! new shim. Its files can be read and written as archives (`docker cp`, see `archive`,
//! `fsroot`).
//!
//! A client can attach to a task's process (see `attach`): the shim serves its output, its stdin
//! (`open_stdin`) and its terminal (`tty`).
//!
//! Concurrency: the driver holds no per-task state in memory but the secret and config files of
//! the tasks it prepared (for a start again in place) and the clients attached to tasks not
//! running (for their next start), each behind a mutex never held across an await; calls for
//! different tasks run
//! concurrently, and the agent never runs start/stop for one task concurrently. Blocking cgroupfs
//! work runs on tokio's blocking pool.

mod archive;
mod attach;
mod attach_hub;
mod cgroup;
mod crun;
mod driver;
mod driver_images;
mod etc_files;
mod exec;
mod fsroot;
mod health;
mod image_task;
mod layout;
mod logread;
mod logs;
mod oci;
mod prepare;
mod proc;
mod restart;
mod rootfs;
pub mod shim;
mod spawn;
mod start;
mod usage;
mod user;
mod volumes;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use shoal_types::clock::SystemClock;
use shoal_types::{Clock, Id};

pub use cgroup::CgroupVersion;

use self::cgroup::CgroupSupport;
use self::layout::{Namespaces, TaskDir};
use shoal_runtime::RuntimeError;
use shoal_runtime::image::ImageStore;

/// How long `start` waits for the shim's report before giving up on it.
const SHIM_REPORT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop` waits, after SIGKILL, for the process and then the shim to finish.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);
/// The exit code recorded when a task's process vanished with its shim (node reboot, both
/// killed): Docker's code for a container whose runtime lost it.
const LOST_EXIT_CODE: i64 = 255;

#[derive(Clone)]
pub struct NativeConfig {
    /// Where task directories live, e.g. `<data-dir>/native`.
    pub root: PathBuf,
    /// The `shoal` binary, run as `shoal shim <task-dir>`.
    pub shim_exe: PathBuf,
    /// The cgroup under which each task gets `<cgroup_parent>/<task-id>`; "shoal" by default.
    pub cgroup_parent: String,
    /// Where images come from; without a store only the `host` image exists.
    pub images: Option<Arc<dyn ImageStore>>,
    /// Where named volumes live: `<data-dir>/volumes` when `root` is `<data-dir>/native`.
    pub volumes_root: PathBuf,
    /// The OCI runtime for image tasks: `crun` (or else `runc`) from PATH by default.
    pub oci_runtime: PathBuf,
    /// Use overlay mounts for image rootfs where the node allows (true by default); false
    /// always copies the layers (slower, more disk; for filesystems overlayfs mishandles).
    pub allow_overlay: bool,
}

impl std::fmt::Debug for NativeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeConfig")
            .field("root", &self.root)
            .field("shim_exe", &self.shim_exe)
            .field("cgroup_parent", &self.cgroup_parent)
            .field("images", &self.images.is_some())
            .field("volumes_root", &self.volumes_root)
            .field("oci_runtime", &self.oci_runtime)
            .field("allow_overlay", &self.allow_overlay)
            .finish()
    }
}

impl NativeConfig {
    pub fn new(root: PathBuf, shim_exe: PathBuf) -> Self {
        let volumes_root = root
            .parent()
            .map_or_else(|| root.join("volumes"), |p| p.join("volumes"));
        NativeConfig {
            root,
            shim_exe,
            cgroup_parent: "shoal".into(),
            images: None,
            volumes_root,
            oci_runtime: find_oci_runtime(),
            allow_overlay: true,
        }
    }
}

/// `crun`, else `runc`, from PATH (and the usual places when PATH is bare); `crun` when neither
/// is found, so the error names it when an image task starts. On a hybrid cgroup node whose
/// unified hierarchy holds controllers crun refuses to run anything ("cgroups in hybrid mode
/// not supported"), so there `runc` comes first.
fn find_oci_runtime() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/local/bin", "/usr/bin", "/usr/sbin", "/bin"].map(PathBuf::from));
    let hybrid_with_controllers =
        std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
            .is_ok_and(|c| !c.trim().is_empty());
    let order = if hybrid_with_controllers {
        ["runc", "crun"]
    } else {
        ["crun", "runc"]
    };
    for name in order {
        if let Some(p) = dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()) {
            return p;
        }
    }
    PathBuf::from("crun")
}

/// What this node lets the native runtime enforce, probed once when the driver is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeCapabilities {
    pub pid_ns: bool,
    pub mount_ns: bool,
    pub uts_ns: bool,
    pub ipc_ns: bool,
    /// A fresh `/proc` is mounted for each task (needs the PID and mount namespaces).
    pub proc_mount: bool,
    pub cgroup_memory: bool,
    pub cgroup_cpu: bool,
    pub cgroup_pids: bool,
    pub cgroup_version: CgroupVersion,
    /// Running as root: needed to switch users and for all of the above.
    pub root: bool,
}

impl NativeCapabilities {
    /// What is not enforced on this node, for the daemon's log (empty when everything is).
    pub fn missing(&self) -> Vec<&'static str> {
        let checks = [
            (self.pid_ns, "PID namespace"),
            (self.mount_ns, "mount namespace"),
            (self.uts_ns, "UTS namespace"),
            (self.ipc_ns, "IPC namespace"),
            (self.proc_mount, "private /proc"),
            (self.cgroup_memory, "memory limits"),
            (self.cgroup_cpu, "CPU limits"),
            (self.cgroup_pids, "PIDs limits"),
        ];
        checks
            .iter()
            .filter(|(ok, _)| !ok)
            .map(|(_, what)| *what)
            .collect()
    }
}

pub struct NativeDriver {
    cfg: NativeConfig,
    caps: NativeCapabilities,
    namespaces: Namespaces,
    cgroups: CgroupSupport,
    /// Image rootfs as overlay mounts (probed once), else as copies.
    overlay: bool,
    ncpus: i64,
    clock: Arc<dyn Clock>,
    /// The secret and config files of the tasks this driver prepared, for a start again in
    /// place (see `restart`).
    kept: shoal_runtime::files::KeptFiles,
    /// The shim's ends of the clients attached to tasks not running, for their next start (see
    /// `attach`).
    pending_attach: std::sync::Mutex<std::collections::HashMap<Id, Vec<std::os::fd::OwnedFd>>>,
}

fn io(context: impl Into<String>, source: std::io::Error) -> RuntimeError {
    RuntimeError::Io {
        context: context.into(),
        source,
    }
}

fn cgroup_err(why: String) -> RuntimeError {
    io("cgroup", std::io::Error::other(why))
}

/// Runs blocking cgroupfs work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io("cgroup worker", std::io::Error::other(e)))
}

fn probe_namespaces(shim_exe: &std::path::Path) -> Namespaces {
    let out = std::process::Command::new(shim_exe)
        .args(["shim", "--probe"])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output();
    match out {
        Ok(o) if o.status.success() => match serde_json::from_slice::<shim::Probe>(&o.stdout) {
            Ok(p) => p.namespaces,
            Err(e) => {
                tracing::warn!(error = %shoal_types::error::Chain(&e), "native runtime: unreadable namespace probe; running tasks without namespaces");
                Namespaces::default()
            }
        },
        Ok(o) => {
            tracing::warn!(status = %o.status, "native runtime: namespace probe failed; running tasks without namespaces");
            Namespaces::default()
        }
        Err(e) => {
            tracing::warn!(error = %shoal_types::error::Chain(&e), shim = %shim_exe.display(), "native runtime: cannot run the shim to probe namespaces");
            Namespaces::default()
        }
    }
}

impl NativeDriver {
    /// Makes the driver: creates `<root>/tasks`, probes namespaces (by running the shim once) and
    /// cgroups (by creating the parent cgroup); see [`NativeDriver::capabilities`].
    pub fn new(cfg: NativeConfig) -> Result<Self, RuntimeError> {
        std::fs::create_dir_all(cfg.root.join("tasks"))
            .map_err(|e| io(format!("creating {}", cfg.root.join("tasks").display()), e))?;
        if !cfg.shim_exe.is_file() {
            return Err(io(
                format!("shim executable {}", cfg.shim_exe.display()),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let is_root = nix::unistd::geteuid().is_root();
        let namespaces = probe_namespaces(&cfg.shim_exe);
        let cgroups = cgroup::probe(&cfg.cgroup_parent);
        let caps = NativeCapabilities {
            pid_ns: namespaces.pid,
            mount_ns: namespaces.mount,
            uts_ns: namespaces.uts,
            ipc_ns: namespaces.ipc,
            proc_mount: namespaces.proc && namespaces.pid && namespaces.mount,
            cgroup_memory: cgroups.memory,
            cgroup_cpu: cgroups.cpu,
            cgroup_pids: cgroups.pids,
            cgroup_version: cgroups.version,
            root: is_root,
        };
        // The daemon logs what is enforced (at info/warn) from `capabilities()`.
        tracing::debug!(?caps, missing = ?caps.missing(), "native runtime: probed");
        let ncpus = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
        let overlay = is_root && cfg.allow_overlay && rootfs::probe_overlay(&cfg.root);
        if !overlay {
            tracing::info!(root = %cfg.root.display(), "native runtime: no overlayfs here; image tasks get a copy of their image");
        }
        Ok(NativeDriver {
            cfg,
            caps,
            namespaces,
            cgroups,
            overlay,
            ncpus,
            clock: Arc::new(SystemClock),
            kept: Default::default(),
            pending_attach: Default::default(),
        })
    }

    pub fn capabilities(&self) -> NativeCapabilities {
        self.caps
    }

    /// Whether image tasks get an overlay rootfs (else a copy of their layers).
    pub fn uses_overlay(&self) -> bool {
        self.overlay
    }

    pub fn config(&self) -> &NativeConfig {
        &self.cfg
    }

    /// The task's directory (config, state, logs).
    pub fn task_dir(&self, task_id: &Id) -> PathBuf {
        TaskDir::new(&self.cfg.root, task_id.as_str())
            .path()
            .to_path_buf()
    }

    /// The task's cgroup directories (one per v1 hierarchy; one on v2), whether or not they exist.
    pub fn task_cgroup_dirs(&self, task_id: &Id) -> Vec<PathBuf> {
        cgroup::task_dirs(&self.cgroups, &self.cfg.cgroup_parent, task_id.as_str())
    }

    /// Removes the parent cgroup (it must hold no task cgroups any more): node teardown, tests.
    pub async fn remove_cgroup_parent(&self) -> Result<(), RuntimeError> {
        let (support, parent) = (self.cgroups, self.cfg.cgroup_parent.clone());
        blocking(move || cgroup::remove_parent(&support, &parent))
            .await?
            .map_err(cgroup_err)
    }

    /// The task's directory. Task IDs become path and cgroup names, so only plain names pass.
    fn dir(&self, task_id: &Id) -> Result<TaskDir, RuntimeError> {
        let id = task_id.as_str();
        let plain = !id.is_empty()
            && id.len() <= 128
            && id != "."
            && id != ".."
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !plain {
            return Err(RuntimeError::InvalidSpec {
                field: "task_id",
                why: format!("{id:?} is not a valid task ID"),
            });
        }
        Ok(TaskDir::new(&self.cfg.root, id))
    }

    fn pending_attach(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<Id, Vec<std::os::fd::OwnedFd>>> {
        self.pending_attach
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn known(&self, task_id: &Id) -> Result<TaskDir, RuntimeError> {
        let d = self.dir(task_id)?;
        if d.exists() {
            Ok(d)
        } else {
            Err(RuntimeError::NotFound(task_id.clone()))
        }
    }
}
