//! The native runtime: runs each task as a real Linux process under its own shim (see [`shim`]),
//! in its own PID, mount, UTS and IPC namespaces and its own cgroup, where the node allows.
//!
//! Only the reserved image `host` (any tag) exists in this step: the command runs on the node's
//! own filesystem. Everything about a task is on disk under `<root>/tasks/<task-id>` (see
//! `layout`), so a new driver on the same root adopts the tasks of a previous one: `list`
//! finds them, `wait` and `stop` work on them (by pidfd, with pid + start-time checks so a reused
//! pid is never signalled).
//!
//! Concurrency: the driver holds no per-task state in memory; calls for different tasks run
//! concurrently, and the agent never runs start/stop for one task concurrently. Blocking cgroupfs
//! work runs on tokio's blocking pool.

mod cgroup;
mod driver;
mod layout;
mod logread;
mod logs;
mod prepare;
mod proc;
pub mod shim;
mod signal;
mod spawn;
mod user;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use shoal_types::clock::SystemClock;
use shoal_types::{Clock, Id};

pub use cgroup::CgroupVersion;
pub use prepare::is_host_image;
pub use signal::parse_stop_signal;

use self::cgroup::CgroupSupport;
use self::layout::{Namespaces, TaskDir};
use crate::runtime::RuntimeError;

/// How long `start` waits for the shim's report before giving up on it.
const SHIM_REPORT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop` waits, after SIGKILL, for the process and then the shim to finish.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);
/// The exit code recorded when a task's process vanished with its shim (node reboot, both
/// killed): Docker's code for a container whose runtime lost it.
const LOST_EXIT_CODE: i64 = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeConfig {
    /// Where task directories live, e.g. `<data-dir>/native`.
    pub root: PathBuf,
    /// The `shoal` binary, run as `shoal shim <task-dir>`.
    pub shim_exe: PathBuf,
    /// The cgroup under which each task gets `<cgroup_parent>/<task-id>`; "shoal" by default.
    pub cgroup_parent: String,
}

impl NativeConfig {
    pub fn new(root: PathBuf, shim_exe: PathBuf) -> Self {
        NativeConfig {
            root,
            shim_exe,
            cgroup_parent: "shoal".into(),
        }
    }
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
    ncpus: i64,
    clock: Arc<dyn Clock>,
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
                tracing::warn!(error = %e, "native runtime: unreadable namespace probe; running tasks without namespaces");
                Namespaces::default()
            }
        },
        Ok(o) => {
            tracing::warn!(status = %o.status, "native runtime: namespace probe failed; running tasks without namespaces");
            Namespaces::default()
        }
        Err(e) => {
            tracing::warn!(error = %e, shim = %shim_exe.display(), "native runtime: cannot run the shim to probe namespaces");
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
            cgroup_version: cgroups.version,
            root: is_root,
        };
        // The daemon logs what is enforced (at info/warn) from `capabilities()`.
        tracing::debug!(?caps, missing = ?caps.missing(), "native runtime: probed");
        let ncpus = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
        Ok(NativeDriver {
            cfg,
            caps,
            namespaces,
            cgroups,
            ncpus,
            clock: Arc::new(SystemClock),
        })
    }

    pub fn capabilities(&self) -> NativeCapabilities {
        self.caps
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

    fn known(&self, task_id: &Id) -> Result<TaskDir, RuntimeError> {
        let d = self.dir(task_id)?;
        if d.exists() {
            Ok(d)
        } else {
            Err(RuntimeError::NotFound(task_id.clone()))
        }
    }
}
