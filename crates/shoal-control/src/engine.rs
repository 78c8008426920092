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
    #[error("Could not find the file {path} in container {container}")]
    NoSuchPath { path: String, container: String },
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    #[error("No such image: {0}")]
    NoSuchImage(String),
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
            EngineError::NoSuchContainer(_)
            | EngineError::NoSuchExec(_)
            | EngineError::NoSuchImage(_)
            | EngineError::NoSuchNetwork(_)
            | EngineError::NoSuchPath { .. } => StatusCode::NOT_FOUND,
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
    /// Exited, and its restart policy starts it again after a delay.
    Restarting,
    Exited,
}

impl ContainerStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Restarting => "restarting",
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
    /// The network's gateway, when it has one the container routes through.
    pub gateway: String,
    pub mac: String,
    /// Its name, when the node knows it; else the ID.
    pub name: String,
    /// The address with its prefix length (`10.0.1.5/24`).
    pub addr: String,
    pub aliases: Vec<String>,
}

/// Docker's restart policy of a standalone container (`--restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    UnlessStopped,
    /// `on-failure[:N]`; `max_retries` 0 is no limit.
    OnFailure {
        max_retries: u64,
    },
}

impl RestartPolicy {
    /// Docker's `Name` and `MaximumRetryCount`.
    pub fn docker(&self) -> (&'static str, u64) {
        match self {
            RestartPolicy::No => ("no", 0),
            RestartPolicy::Always => ("always", 0),
            RestartPolicy::UnlessStopped => ("unless-stopped", 0),
            RestartPolicy::OnFailure { max_retries } => ("on-failure", *max_retries),
        }
    }

    /// From Docker's `Name` (empty is `no`) and `MaximumRetryCount`.
    pub fn from_docker(name: &str, max_retries: u64) -> Result<Self, EngineError> {
        let p = match name {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure { max_retries },
            other => {
                return Err(EngineError::invalid(
                    "HostConfig.RestartPolicy.Name",
                    format!(
                        "invalid restart policy {other:?}: expected no, always, unless-stopped or on-failure"
                    ),
                ));
            }
        };
        if max_retries > 0 && !matches!(p, RestartPolicy::OnFailure { .. }) {
            return Err(EngineError::invalid(
                "HostConfig.RestartPolicy.MaximumRetryCount",
                format!("maximum retry count cannot be used with restart policy '{name}'"),
            ));
        }
        Ok(p)
    }
}

/// A network a standalone container is to join, with its aliases there.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EndpointRequest {
    /// The network's name or ID, as the client gave it.
    pub network: String,
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// What `docker create` asks for: a container of its own on this node, apart from any service.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContainerCreate {
    pub spec: ContainerSpec,
    #[serde(default)]
    pub resources: shoal_types::service::ResourceRequirements,
    /// Close the process's stdin when the first attached client detaches.
    #[serde(default)]
    pub stdin_once: bool,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Remove it once it has exited (`--rm`).
    #[serde(default)]
    pub auto_remove: bool,
    /// `default`, `bridge`, `host`, `none`, or the first network's name or ID.
    #[serde(default)]
    pub network_mode: String,
    /// The networks it joins, the one `network_mode` names first.
    #[serde(default)]
    pub endpoints: Vec<EndpointRequest>,
    /// `-p`: ports published on the node.
    #[serde(default)]
    pub publish: Vec<shoal_types::endpoint::PortBinding>,
    /// `-P`: every exposed port on a port the node picks.
    #[serde(default)]
    pub publish_all: bool,
    /// `80/tcp`...: the ports it says it listens on.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// What the front end keeps to show the request back as it was sent; opaque here.
    #[serde(default)]
    pub as_sent: String,
}

/// What only a standalone container has.
#[derive(Debug, Clone, PartialEq)]
pub struct StandaloneInfo {
    pub create: ContainerCreate,
    /// Restarts by its policy since the user last started it.
    pub restart_count: u64,
    /// Exited and waiting for its policy's next start.
    pub restarting: bool,
    /// The ports published for it now, with the node's picks for `host_port` 0.
    pub published: Vec<shoal_types::endpoint::PortBinding>,
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
    /// `None` for a task's container.
    pub standalone: Option<StandaloneInfo>,
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

    /// Makes a standalone container (not started); its ID and warnings.
    async fn create(
        &self,
        name: Option<&str>,
        create: ContainerCreate,
    ) -> Result<(String, Vec<String>), EngineError>;

    /// Starts a standalone container, or starts an exited one again; `false` when it was
    /// already running (Docker's 304).
    async fn start(&self, key: &str) -> Result<bool, EngineError>;

    /// The container's main process's streams from now on (its output from its first byte
    /// when attached before it starts); input only when it keeps its stdin open.
    async fn attach(&self, key: &str, stdin: bool) -> Result<ExecStreams, EngineError>;

    /// Sets the terminal size of a container running on a TTY.
    async fn resize(&self, key: &str, rows: u16, cols: u16) -> Result<(), EngineError>;

    async fn rename(&self, key: &str, name: &str) -> Result<(), EngineError>;

    /// Joins a standalone container to a network (before its start, or while it runs).
    async fn connect(&self, key: &str, endpoint: EndpointRequest) -> Result<(), EngineError>;

    /// Takes a standalone container off a network.
    async fn disconnect(&self, key: &str, network: &str, force: bool) -> Result<(), EngineError>;

    /// What is at `path` in the container's filesystem.
    async fn path_stat(
        &self,
        key: &str,
        path: &str,
    ) -> Result<shoal_runtime::PathStat, EngineError>;

    /// A tar of `path` in the container's filesystem.
    async fn archive_get(
        &self,
        key: &str,
        path: &str,
    ) -> Result<(shoal_runtime::PathStat, shoal_runtime::ArchiveStream), EngineError>;

    /// Extracts a tar into the directory `dir` in the container's filesystem.
    async fn archive_put(
        &self,
        key: &str,
        dir: &str,
        archive: shoal_runtime::ArchiveStream,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<(), EngineError>;

    /// The node's local networks (Docker's `bridge` driver), the default `bridge` among them.
    fn local_networks(&self) -> Vec<shoal_types::local_net::LocalNetwork>;

    /// Makes a local network.
    async fn create_local_network(
        &self,
        spec: shoal_types::local_net::LocalNetworkSpec,
    ) -> Result<shoal_types::local_net::LocalNetwork, EngineError>;

    /// Removes the local network named by `key` (name, ID or ID prefix).
    async fn remove_local_network(&self, key: &str) -> Result<(), EngineError>;

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
