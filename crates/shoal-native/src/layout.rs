//! The native runtime's on-disk state: one directory per task under `<root>/tasks/<task-id>`,
//! holding everything needed to adopt the task after the daemon restarts. Nothing about a task
//! lives only in memory.
//!
//! Files and who writes them (each written once, atomically by write + rename, so a reader sees
//! either nothing or the whole record):
//! - `config.json` ([`ShimConfig`]): the driver, at prepare.
//! - `running.json` ([`RunningInfo`]): the shim, once the task's process runs.
//! - `exit.json` ([`ExitInfo`]): the shim, after the process has exited and its output is drained;
//!   or the driver when it finds the shim dead without one (the process was lost).
//! - `log.json` / `log.json.1`: the shim (see `logs`).
//! - `shim.log`: the shim's own stderr, for diagnosing the shim itself.
//! - `health.json` ([`HealthRecord`]): the shim's health checker, after every check.
//! - `attach.sock`: the shim's socket for clients attaching to the process (see `attach`),
//!   while it runs; `console.sock`, briefly, where the OCI runtime hands over a terminal.
//!
//! A task of a real image also has (all written at prepare, before `config.json`):
//! - `bundle/config.json` and `bundle/rootfs`: the OCI bundle; `rootfs` is an overlay mount
//!   (`upper/`, `work/` beside it) or a plain copy of the layers;
//! - `etc/`: the task's own `hostname`, `hosts` and `resolv.conf`, bind-mounted into it;
//! - `anon/<n>`: its anonymous volumes, removed with it;
//! - `health-process.json`: the OCI process the health checker runs with `crun exec`;
//! - `runtime/` and `runtime.log`: the OCI runtime's state directory (`--root`) and error log;
//! - `container.pid`: the container init's pid as the OCI runtime wrote it.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use shoal_runtime::ExitInfo;

pub(crate) const CONFIG: &str = "config.json";
pub(crate) const RUNNING: &str = "running.json";
pub(crate) const EXIT: &str = "exit.json";
pub(crate) const LOG: &str = "log.json";
pub(crate) const SHIM_LOG: &str = "shim.log";
pub(crate) const HEALTH: &str = "health.json";
pub(crate) const HEALTH_PROCESS: &str = "health-process.json";
pub(crate) const BUNDLE: &str = "bundle";
pub(crate) const ROOTFS: &str = "bundle/rootfs";

/// Which namespaces the task's process gets (decided by the driver's probe, so the shim never
/// guesses and never silently differs from what the daemon logged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Namespaces {
    pub pid: bool,
    pub mount: bool,
    pub uts: bool,
    pub ipc: bool,
    /// A fresh `/proc` can be mounted (needs `pid` and `mount`).
    #[serde(default)]
    pub proc: bool,
}

impl Namespaces {
    /// Every namespace the shim can make, with a fresh `/proc`.
    pub(crate) const ALL: Namespaces = Namespaces {
        pid: true,
        mount: true,
        uts: true,
        ipc: true,
        proc: true,
    };
}

/// The numeric identity the process runs as; `None` in [`ShimConfig`] keeps the shim's own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Where the shim reads whether the kernel OOM-killed something in the task's cgroup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct OomSource {
    /// `memory.oom_control` (v1) or `memory.events` (v2); both carry an `oom_kill N` line.
    pub path: PathBuf,
}

/// Everything the shim needs to start and supervise the task, resolved by the driver at prepare
/// so the shim does no policy of its own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ShimConfig {
    pub task_id: String,
    /// The argv as given; the shim resolves argv[0] against the task's PATH when it starts it,
    /// so a missing executable fails the start (not the prepare), as with Docker.
    pub argv: Vec<String>,
    /// The complete environment, `KEY=VALUE`.
    pub env: Vec<String>,
    pub dir: PathBuf,
    pub creds: Option<Creds>,
    pub hostname: String,
    pub namespaces: Namespaces,
    /// `cgroup.procs` of every cgroup the process joins before exec.
    pub cgroup_procs: Vec<PathBuf>,
    pub oom: Option<OomSource>,
    pub stop_signal: i32,
    /// Rotate the log file past this size, keeping one old file.
    pub log_max_bytes: u64,
    /// Set for a task of a real image: the process runs in an OCI bundle through this runtime
    /// instead of being spawned by the shim itself (then `argv`, `env`, `dir`, `creds` and
    /// `namespaces` are informational; the bundle is what runs).
    #[serde(default)]
    pub oci: Option<OciRun>,
    #[serde(default)]
    pub health: Option<HealthSpec>,
    /// The named volumes the task mounts: a volume is in use while such a task directory exists.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// The image's ID (empty for `host`), so an image in use is not deleted under the task.
    #[serde(default)]
    pub image_id: String,
    /// The network namespace the task joins (its overlays'); `None`: the node's network.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// The task's limits, which its cgroup is made again with when it starts again in place
    /// (the cgroup goes with the OCI runtime's container, and a fresh one counts no old OOM
    /// kill against the new run).
    #[serde(default)]
    pub limits: shoal_types::service::Limits,
    /// The paths of its secret and config files: made again on a new tmpfs when it starts
    /// again in place (their bytes are never on disk; see `shoal_runtime::files::KeptFiles`).
    #[serde(default)]
    pub files: Vec<String>,
    /// The process runs on a terminal the shim holds (see `attach`).
    #[serde(default)]
    pub tty: bool,
    /// The shim holds the process's stdin for attached clients to write (see `attach`).
    #[serde(default)]
    pub open_stdin: bool,
}

/// How the shim runs an OCI bundle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct OciRun {
    /// The OCI runtime binary (`crun` or `runc`: the same command line).
    pub runtime: PathBuf,
    /// Its `--root` state directory.
    pub state_root: PathBuf,
    pub bundle: PathBuf,
    pub container_id: String,
}

/// The task's effective health check, with Docker's defaults already applied.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct HealthSpec {
    pub argv: Vec<String>,
    pub interval: std::time::Duration,
    pub timeout: std::time::Duration,
    pub start_period: std::time::Duration,
    pub retries: u64,
}

/// What the health checker last concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct HealthRecord {
    pub status: HealthStatus,
    pub failing_streak: u64,
    /// The last check's exit code (-1 when it could not run or timed out) and output.
    pub last_exit: i64,
    pub last_output: String,
    pub checks: u64,
}

/// What the shim records once the task's process runs. Start times (clock ticks since boot, from
/// `/proc/<pid>/stat`) make a pid unambiguous: a reused pid has a different start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RunningInfo {
    pub pid: i32,
    pub start_time: u64,
    pub shim_pid: i32,
    pub shim_start_time: u64,
}

/// What the shim reports to the driver over its stdout: one JSON line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum ShimReport {
    Started { pid: i32, start_time: u64 },
    Failed { error: String },
}

/// The paths of one task's directory.
#[derive(Debug, Clone)]
pub(crate) struct TaskDir(PathBuf);

impl TaskDir {
    pub fn new(root: &Path, task_id: &str) -> Self {
        TaskDir(root.join("tasks").join(task_id))
    }

    pub fn from_path(p: PathBuf) -> Self {
        TaskDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub fn exists(&self) -> bool {
        self.file(CONFIG).exists()
    }

    pub fn config(&self) -> std::io::Result<Option<ShimConfig>> {
        read_json(&self.file(CONFIG))
    }

    pub fn running(&self) -> std::io::Result<Option<RunningInfo>> {
        read_json(&self.file(RUNNING))
    }

    pub fn exit(&self) -> std::io::Result<Option<ExitInfo>> {
        read_json(&self.file(EXIT))
    }

    pub fn health(&self) -> std::io::Result<Option<HealthRecord>> {
        read_json(&self.file(HEALTH))
    }
}

/// Reads a JSON record; `None` when the file does not exist (not written yet).
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a record so that readers see either the old state or the whole new file: write a
/// temporary sibling, flush it to disk, rename over the target.
pub(crate) fn write_json_atomic<T: serde::Serialize>(
    path: &Path,
    value: &T,
) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_missing_is_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("r.json");
        assert_eq!(read_json::<RunningInfo>(&p).expect("read"), None);
        let r = RunningInfo {
            pid: 7,
            start_time: 9,
            shim_pid: 6,
            shim_start_time: 8,
        };
        write_json_atomic(&p, &r).expect("write");
        assert_eq!(read_json::<RunningInfo>(&p).expect("read"), Some(r));
        std::fs::write(&p, b"{not json").expect("write");
        assert!(read_json::<RunningInfo>(&p).is_err());
    }

    #[test]
    fn shim_report_shapes() {
        let ok: ShimReport = serde_json::from_str(r#"{"pid":12,"start_time":34}"#).expect("parse");
        assert_eq!(
            ok,
            ShimReport::Started {
                pid: 12,
                start_time: 34
            }
        );
        let err: ShimReport = serde_json::from_str(r#"{"error":"boom"}"#).expect("parse");
        assert_eq!(
            err,
            ShimReport::Failed {
                error: "boom".into()
            }
        );
    }
}
