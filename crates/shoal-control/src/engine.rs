//! The node as a Docker Engine ([`Engine`]): the containers it runs (each task it runs is one,
//! named and labelled as Swarm names them), what the engine API does to them (logs, top,
//! stats, wait, kill, stop, restart, remove) and exec instances in them. Front ends see the
//! node's engine through this trait only; the implementation is `shoal-engine`.
//!
//! Everything here is local to the node: a container on another node is not found here, as
//! with Docker, where each node is an engine for its own containers.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use http::StatusCode;
use shoal_runtime::exec::{ExecInput, ExecOutput, TaskStats};
use shoal_runtime::{LogOptions, LogStream};
use shoal_types::service::ContainerSpec;
use shoal_types::{Id, Timestamp};

/// What a container engine call can fail with, worded as Docker words it (clients and users
/// match on these messages).
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    #[error("Container {0} is not running")]
    NotRunning(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {why}")]
    Invalid { field: String, why: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Internal(String),
}

impl EngineError {
    pub fn invalid(field: impl Into<String>, why: impl Into<String>) -> Self {
        EngineError::Invalid {
            field: field.into(),
            why: why.into(),
        }
    }

    /// Docker's status for each.
    pub fn status(&self) -> StatusCode {
        match self {
            EngineError::NoSuchContainer(_) | EngineError::NoSuchExec(_) => StatusCode::NOT_FOUND,
            EngineError::NotRunning(_) | EngineError::Conflict(_) => StatusCode::CONFLICT,
            EngineError::Invalid { .. } => StatusCode::BAD_REQUEST,
            EngineError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
            EngineError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Docker's container states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerStatus {
    Created,
    Running,
    Exited,
}

impl ContainerStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Exited => "exited",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub status: ContainerStatus,
    pub pid: i64,
    pub exit_code: i64,
    pub oom_killed: bool,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// Why it failed to start or was rejected, as the task's status says.
    pub error: String,
    /// `starting`, `healthy` or `unhealthy` when it has a health check.
    pub health: Option<String>,
}

/// One network a container is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerNetwork {
    pub id: Id,
    /// Its name, when the node knows it; else the ID.
    pub name: String,
    /// The address with its prefix length (`10.0.1.5/24`).
    pub addr: String,
    pub aliases: Vec<String>,
}

/// A container as the engine shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    /// 64 hex digits, as Docker's container IDs are.
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    /// The task this container is.
    pub task_id: Option<Id>,
    pub created: Timestamp,
    pub labels: BTreeMap<String, String>,
    pub spec: ContainerSpec,
    pub hostname: String,
    pub state: ContainerState,
    pub networks: Vec<ContainerNetwork>,
    /// The runtime it runs on (`native`, `docker`).
    pub runtime: String,
}

/// What `POST /containers/{id}/exec` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecConfig {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub privileged: bool,
    pub detach_keys: String,
    /// `(rows, cols)`.
    pub console_size: Option<(u16, u16)>,
}

/// An exec instance, as `GET /exec/{id}/json` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecInfo {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    pub running: bool,
    /// `None` until it has exited.
    pub exit_code: Option<i64>,
    pub pid: i64,
}

/// A started exec's streams; the caller copies them, then calls [`Engine::exec_wait`] so the
/// exit code is final before it tells its client the exec ended.
pub struct ExecStreams {
    pub input: Option<ExecInput>,
    pub output: ExecOutput,
    pub tty: bool,
}

/// What `POST /containers/{id}/wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitCondition {
    /// Until it is not running (at once if it is not).
    #[default]
    NotRunning,
    /// Until it next exits (after a start, when it has not started yet).
    NextExit,
    /// Until it is removed.
    Removed,
}

/// A container's usage at one moment, with the node's CPU time (what Docker's CPU percentage is
/// computed against).
#[derive(Debug, Clone, PartialEq)]
pub struct StatsSample {
    pub container: ContainerInfo,
    pub usage: TaskStats,
    /// CPU time of the whole node, in nanoseconds.
    pub system_cpu_ns: u64,
    pub online_cpus: u32,
}

/// Something that happened, as `GET /events` streams it: a container's or exec's (`local`) or a
/// cluster object's (`swarm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEvent {
    /// `container`, `service`, `task`, `node`, `network`, `secret`, `config`.
    pub typ: String,
    /// `create`, `start`, `die`, `update`, `remove`, `exec_start: sh -c ...`...
    pub action: String,
    pub id: String,
    /// `name`, `image`, `exitCode`, labels...
    pub attributes: BTreeMap<String, String>,
    /// `local` or `swarm`.
    pub scope: String,
    pub time: Timestamp,
}

/// The processes of a container as `ps` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Top {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

#[async_trait]
pub trait Engine: Send + Sync {
    /// Every container of the node.
    async fn containers(&self) -> Result<Vec<ContainerInfo>, EngineError>;

    /// The container with this ID, unique ID prefix or name (with or without a leading `/`).
    async fn container(&self, key: &str) -> Result<ContainerInfo, EngineError>;

    async fn logs(
        &self,
        key: &str,
        opts: LogOptions,
    ) -> Result<(ContainerInfo, LogStream), EngineError>;

    /// `ps` with `ps_args` (default `-ef`), only the container's processes.
    async fn top(&self, key: &str, ps_args: &str) -> Result<Top, EngineError>;

    async fn stats(&self, key: &str) -> Result<StatsSample, EngineError>;

    /// The exit code once the condition is met.
    async fn wait(&self, key: &str, condition: WaitCondition) -> Result<i64, EngineError>;

    async fn kill(&self, key: &str, signal: i32) -> Result<(), EngineError>;

    /// Stops it with its stop signal, killing it after `timeout` (its own grace by default).
    async fn stop(&self, key: &str, timeout: Option<Duration>) -> Result<(), EngineError>;

    async fn restart(&self, key: &str, timeout: Option<Duration>) -> Result<(), EngineError>;

    /// Removes it; a running one only with `force` (which kills it first).
    async fn remove(&self, key: &str, force: bool) -> Result<(), EngineError>;

    /// Makes an exec instance in a running container; its ID.
    async fn exec_create(&self, key: &str, config: ExecConfig) -> Result<String, EngineError>;

    /// Starts it; each instance starts once.
    async fn exec_start(&self, id: &str) -> Result<ExecStreams, EngineError>;

    /// Its exit code, once it has exited.
    async fn exec_wait(&self, id: &str) -> Result<i64, EngineError>;

    async fn exec_resize(&self, id: &str, rows: u16, cols: u16) -> Result<(), EngineError>;

    fn exec_inspect(&self, id: &str) -> Result<ExecInfo, EngineError>;

    /// The events kept (the last ones, oldest first) and every one after them, without a gap.
    fn events(
        &self,
    ) -> (
        Vec<EngineEvent>,
        tokio::sync::broadcast::Receiver<EngineEvent>,
    );

    /// Records an event that happened outside the engine (a cluster object's).
    fn publish(&self, event: EngineEvent);
}
