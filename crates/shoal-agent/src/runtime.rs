//! The seam between the agent and whatever actually runs processes. A driver owns a task's
//! process, its log and its leftovers on the node; the agent owns the task's life cycle.
//!
//! Drivers are called concurrently for different tasks and never twice concurrently for the same
//! task's start/stop.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use shoal_types::service::{ContainerSpec, ResourceRequirements};
use shoal_types::{Id, Timestamp};

/// Everything a driver needs to run one task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRun {
    pub task_id: Id,
    pub task_name: String,
    pub service_id: Id,
    pub service_name: String,
    pub node_id: Id,
    pub slot: u64,
    pub container: ContainerSpec,
    pub resources: ResourceRequirements,
    /// The hostname the task sees (already defaulted by the agent).
    pub hostname: String,
}

/// How a task's process ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExitInfo {
    /// The exit code; 128+N when killed by signal N, as shells and Docker report it.
    pub code: i64,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    pub finished_at: Timestamp,
}

/// What a driver knows of a task it was asked to run, for re-adoption after an agent restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeTaskState {
    /// Prepared, not started.
    Created,
    Running {
        pid: i64,
    },
    Exited(ExitInfo),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeTask {
    pub task_id: Id,
    pub state: RuntimeTaskState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStreamKind {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub time: Timestamp,
    pub stream: LogStreamKind,
    /// One line, including its trailing newline if it had one.
    pub line: Bytes,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    /// Only the last N lines (before following); `None` means all.
    pub tail: Option<usize>,
    /// Only lines at or after this time; zero means no bound.
    pub since: Timestamp,
    pub stdout: bool,
    pub stderr: bool,
}

pub type LogStream = BoxStream<'static, Result<LogLine, RuntimeError>>;

/// The next item of a log stream, for callers that do not depend on `futures` themselves.
pub async fn next_log_line(stream: &mut LogStream) -> Option<Result<LogLine, RuntimeError>> {
    futures::StreamExt::next(stream).await
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("No such image: {0}")]
    ImageNotFound(String),
    /// A spec field this driver cannot honour; the task is rejected with this message.
    #[error("{field}: {why}")]
    InvalidSpec { field: &'static str, why: String },
    #[error("task {0} is not known to this runtime")]
    NotFound(Id),
    /// Starting the process failed (e.g. the executable does not exist).
    #[error("starting the task failed: {0}")]
    StartFailed(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

#[async_trait]
pub trait RuntimeDriver: Send + Sync + 'static {
    /// The name tasks select it by (`native`, `docker`).
    fn name(&self) -> &'static str;

    /// Checks the spec and image and creates what the task needs, without starting it.
    /// Errors here reject the task. Calling it again for a prepared task is a no-op.
    async fn prepare(&self, run: &TaskRun) -> Result<(), RuntimeError>;

    /// Starts the prepared task's process and returns its PID once it runs.
    async fn start(&self, task_id: &Id) -> Result<i64, RuntimeError>;

    /// Resolves when the task's process has exited (at once if it already has). Works for tasks
    /// this driver instance did not start itself (adopted after a restart).
    async fn wait(&self, task_id: &Id) -> Result<ExitInfo, RuntimeError>;

    /// Sends the stop signal (the spec's, default SIGTERM), then SIGKILL after `grace`.
    /// Returns once the process is gone. Stopping an exited task is a no-op.
    async fn stop(&self, task_id: &Id, grace: Duration) -> Result<(), RuntimeError>;

    /// Removes everything the task left on the node except what outlives tasks (volumes).
    /// The task must not be running.
    async fn remove(&self, task_id: &Id) -> Result<(), RuntimeError>;

    /// Every task this driver holds on the node, running or not.
    async fn list(&self) -> Result<Vec<RuntimeTask>, RuntimeError>;

    /// The task's output, oldest first; with `follow`, new lines until the task exits and its
    /// output is drained.
    async fn logs(&self, task_id: &Id, opts: LogOptions) -> Result<LogStream, RuntimeError>;
}
