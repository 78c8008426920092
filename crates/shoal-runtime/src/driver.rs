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
    /// The task's addresses on its overlay networks; empty: the node's own network (the
    /// native runtime) or the engine's default (Docker).
    pub networks: Vec<shoal_types::task::NetworkAttachment>,
    /// The network namespace the task joins, made and wired by the node's network layer
    /// before `prepare`; `None` when the task has no networks.
    pub netns: Option<std::path::PathBuf>,
    /// Its secrets and configs, resolved by the agent: the driver puts them on a tmpfs (see
    /// [`crate::files`]) and binds each read-only at its path.
    pub files: Vec<crate::files::TaskFile>,
    /// The node-local networks of a standalone container, in order (its first is where its
    /// published ports lead and its default route goes); wired by the node's network layer
    /// into `netns`, as overlays are. Empty for services' tasks.
    pub local_networks: Vec<shoal_types::local_net::LocalAttachment>,
    /// The node's ports forwarded to the container's (`-p`); the network layer binds them.
    /// Empty for services' tasks.
    pub publish: Vec<shoal_types::local_net::PortBinding>,
}

impl TaskRun {
    /// Whether the node's network layer gives the task a network namespace of its own: it has
    /// overlays, local networks or published ports. Service tasks that publish host ports
    /// without networks are the network layer's to tell apart.
    pub fn has_own_network(&self) -> bool {
        !self.networks.is_empty() || !self.local_networks.is_empty() || !self.publish.is_empty()
    }
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
    /// The runtime's own ID of the task's container, when it has one apart from the task ID
    /// (Docker's); the engine API shows it as the container's ID.
    pub container_id: Option<String>,
    /// When the task's process last started; zero when it never did or the runtime cannot say.
    pub started_at: Timestamp,
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

/// A task's health as its runtime last saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Health {
    /// The task has no health check (none in the spec or the image, or `NONE`).
    #[default]
    None,
    /// Checked, but not yet healthy: the task stays `starting`.
    Starting,
    Healthy,
    /// The check failed `retries` times in a row; the output of the last run.
    Unhealthy(String),
}

/// A named volume on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeInfo {
    pub name: String,
    /// Where its files are on the node.
    pub mountpoint: String,
    pub labels: std::collections::BTreeMap<String, String>,
    /// The driver options it was made with (empty for volumes tasks made).
    pub options: std::collections::BTreeMap<String, String>,
    pub created_at: Timestamp,
    /// Tasks whose containers use it now.
    pub in_use_by: Vec<Id>,
}

/// An image in the node's store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:<hex>` of the image's config, as Docker shows image IDs.
    pub id: String,
    /// `name:tag` references that point at it.
    pub repo_tags: Vec<String>,
    /// `name@sha256:<hex>` references it was pulled by.
    pub repo_digests: Vec<String>,
    /// Bytes its layers take unpacked.
    pub size: u64,
    pub created: Timestamp,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// An archive, manifest or layer that cannot be used; says which and why. Nothing of it
    /// is kept.
    #[error("invalid image: {0}")]
    InvalidImage(String),
    /// A registry refused or failed a pull.
    #[error("pulling {reference}: {why}")]
    Pull { reference: String, why: String },
    /// The driver cannot do this at all (e.g. volumes on a driver without them).
    #[error("the {runtime} runtime does not support {what}")]
    Unsupported {
        runtime: &'static str,
        what: &'static str,
    },
    /// Refused because something uses it (an image a task runs, without force).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("No such volume: {0}")]
    VolumeNotFound(String),
    #[error("volume {name} is in use by task {task}")]
    VolumeInUse { name: String, task: Id },
    #[error("No such image: {0}")]
    ImageNotFound(String),
    /// A spec field this driver cannot honour; the task is rejected with this message.
    #[error("{field}: {why}")]
    InvalidSpec { field: &'static str, why: String },
    #[error("task {0} is not known to this runtime")]
    NotFound(Id),
    /// A path that does not exist in the task's filesystem (archives, `docker cp`); Docker's
    /// words, which its clients show.
    #[error("Could not find the file {path} in container")]
    PathNotFound { path: String },
    /// The task exists but its process is not running (exec, signal, stats of a stopped task).
    #[error("container {0} is not running")]
    NotRunning(Id),
    /// Starting the process failed (e.g. the executable does not exist).
    #[error("starting the task failed: {0}")]
    StartFailed(String),
    /// An archive, manifest, config or layer that cannot be read: `what` says which, the parser's
    /// error is the source. Nothing of it is kept.
    #[error("invalid image: {what}")]
    Corrupt {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// Something the driver was `doing` failed in a library or on another node (the source).
    #[error("{doing}")]
    Failed {
        doing: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// `context` says what was being done; the io error is the source.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    /// `what` of an image is unreadable; `source` says why.
    pub fn corrupt(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> RuntimeError {
        RuntimeError::Corrupt {
            what: what.into(),
            source: source.into(),
        }
    }

    /// Doing `doing` failed because of `source`.
    pub fn failed(
        doing: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> RuntimeError {
        RuntimeError::Failed {
            doing: doing.into(),
            source: source.into(),
        }
    }
}

#[async_trait]
pub trait RuntimeDriver: Send + Sync + 'static {
    /// The name tasks select it by (`native`, `docker`).
    fn name(&self) -> &'static str;

    /// Every runtime this driver can run tasks with, for the node's description; a driver that
    /// routes tasks to several lists them all.
    fn runtimes(&self) -> Vec<&'static str> {
        vec![self.name()]
    }

    /// The network namespace a task with networks must be wired in, when the driver has to
    /// make it itself: dockerd joins a container only to a namespace it made (a sandbox
    /// container started with `--network none`, the task's container on
    /// `container:<sandbox>`). `None`: the caller makes a namespace and hands it over in
    /// `TaskRun::netns`. Called before `prepare`, which then gets the same path in
    /// `TaskRun::netns`. What it made goes with `remove`, also when `prepare` never ran or
    /// failed; a failing `prepare` removes it too. Calling it again returns the same namespace.
    async fn network_sandbox(
        &self,
        _run: &TaskRun,
    ) -> Result<Option<std::path::PathBuf>, RuntimeError> {
        Ok(None)
    }

    /// Checks the spec and image and creates what the task needs, without starting it.
    /// Errors here reject the task. Calling it again for a prepared task is a no-op.
    async fn prepare(&self, run: &TaskRun) -> Result<(), RuntimeError>;

    /// Starts the prepared task's process and returns its PID once it runs. Starting a running
    /// task starts nothing and returns its PID.
    ///
    /// Starting a task whose process has exited (or was stopped) starts it again in place, as
    /// `docker start` does an exited container: the same container and root filesystem, with
    /// what the previous run changed in it; its secret and config files
    /// ([`TaskRun::files`]) are there again; its log keeps the previous runs' lines and
    /// appends the new one's; [`RuntimeDriver::wait`] then resolves with the new run's exit and
    /// [`RuntimeDriver::list`] shows it running with a new `started_at`. The agent never does
    /// this (Swarm replaces a task that ended); the engine's standalone containers and their
    /// restart policies do. A restart that fails leaves the task exited as it was.
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

    /// The running task's health. The driver runs the checks (the spec's over the image's);
    /// the agent polls this while the task is `starting` or `running`.
    async fn health(&self, _task_id: &Id) -> Result<Health, RuntimeError> {
        Ok(Health::None)
    }

    /// Starts `spec` inside the running task: in every namespace and the cgroup of its
    /// process. Refused with [`RuntimeError::NotRunning`] when the task's process is not
    /// running. No default: every driver, and every driver that wraps another, must say how.
    async fn exec(
        &self,
        task_id: &Id,
        spec: crate::exec::ExecSpec,
    ) -> Result<crate::exec::ExecProcess, RuntimeError>;

    /// Sends `signal` to the running task's process (`docker kill`); refused with
    /// [`RuntimeError::NotRunning`] when it is not running.
    async fn signal(&self, task_id: &Id, signal: i32) -> Result<(), RuntimeError>;

    /// The PIDs (on the node) of every process of the running task (`docker top`).
    async fn processes(&self, task_id: &Id) -> Result<Vec<i64>, RuntimeError>;

    /// The running task's resource usage now (`docker stats`).
    async fn stats(&self, task_id: &Id) -> Result<crate::exec::TaskStats, RuntimeError>;

    /// The streams of the task's own process from now on (`docker attach`, `docker run -it`,
    /// `docker start --attach`): its output as it writes it, from its first byte when attached
    /// before it starts (a prepared task, or an exited one for its next start); its input when
    /// its spec has `open_stdin` (a writer whose shutdown closes the process's stdin); the size
    /// of its terminal when its spec has `tty` (its output then all on stdout, as the terminal
    /// writes it, `\r\n` and all). The output ends when the process exits; the handle's `wait`
    /// gives its exit code. Any number of attachments may be open at once: each gets all the
    /// output, and what each writes goes to the one stdin. An unknown task is
    /// [`RuntimeError::NotFound`]. No default: a driver that wraps another must pass it on.
    async fn attach(&self, task_id: &Id) -> Result<crate::exec::ExecProcess, RuntimeError>;

    // The archive calls (`docker cp`) work on a task that runs, was prepared and not started,
    // or exited; paths are resolved in its root as if chrooted (see [`crate::archive`]). A
    // path that does not exist is [`RuntimeError::PathNotFound`] naming it as requested; one
    // that would leave the root, [`RuntimeError::InvalidSpec`] naming it. No default: a driver
    // that wraps another must pass them on.

    /// What `path` is in the task's filesystem (not following it when it is a symlink).
    async fn path_stat(
        &self,
        task_id: &Id,
        path: &str,
    ) -> Result<crate::archive::PathStat, RuntimeError>;

    /// A tar of `path` (a file, or a directory with everything under it; a symlink as the
    /// symlink), entry names relative to the path's parent, as Docker's `GET archive`; with
    /// the path's stat.
    async fn archive_get(
        &self,
        task_id: &Id,
        path: &str,
    ) -> Result<(crate::archive::PathStat, crate::archive::ArchiveStream), RuntimeError>;

    /// Extracts the tar `archive` into the directory `dir` of the task's filesystem (owners,
    /// modes and times from the archive). An entry that would land outside `dir` is refused,
    /// naming it; with `no_overwrite_dir_non_dir`, so is replacing a directory by a
    /// non-directory or the reverse (Docker's flag); otherwise what is there is replaced (a
    /// directory onto a directory merges). Entries before a refused one stay extracted, as with
    /// Docker.
    async fn archive_put(
        &self,
        task_id: &Id,
        dir: &str,
        archive: crate::archive::ArchiveStream,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<(), RuntimeError>;

    /// The node's named volumes.
    async fn volumes(&self) -> Result<Vec<VolumeInfo>, RuntimeError> {
        Ok(Vec::new())
    }

    /// Removes a named volume; refused while a task uses it unless `force`.
    async fn remove_volume(&self, name: &str, _force: bool) -> Result<(), RuntimeError> {
        Err(RuntimeError::VolumeNotFound(name.to_string()))
    }

    /// The node's images.
    async fn images(&self) -> Result<Vec<ImageInfo>, RuntimeError> {
        Ok(Vec::new())
    }

    /// Loads a `docker save` or OCI image-layout archive (tar, optionally gzip) from a file on
    /// the node; returns the references it tagged.
    async fn load_image(&self, _archive: &std::path::Path) -> Result<Vec<String>, RuntimeError> {
        Err(RuntimeError::Unsupported {
            runtime: self.name(),
            what: "loading images",
        })
    }

    /// Pulls `reference` from its registry.
    async fn pull_image(&self, reference: &str) -> Result<ImageInfo, RuntimeError> {
        Err(RuntimeError::Pull {
            reference: reference.to_string(),
            why: format!("the {} runtime does not pull images", self.name()),
        })
    }

    /// Untags (and deletes when no tag is left) an image; refused while a task uses it unless
    /// `force`. Returns what was untagged and deleted, Docker's way (`Untagged: ...`,
    /// `Deleted: sha256:...`).
    async fn remove_image(
        &self,
        reference: &str,
        _force: bool,
    ) -> Result<Vec<String>, RuntimeError> {
        Err(RuntimeError::ImageNotFound(reference.to_string()))
    }

    // The image and volume calls below have no default: a driver that wraps another must pass
    // them on, and a default would answer for it silently.

    /// The image `reference` names (a name with or without tag, `name@digest`, an image ID,
    /// `sha256:` or not, or a unique prefix of one), in detail. A missing image is
    /// [`RuntimeError::ImageNotFound`] naming `reference`.
    async fn inspect_image(
        &self,
        reference: &str,
    ) -> Result<crate::catalog::ImageDetails, RuntimeError>;

    /// The build steps of the image `reference` names, newest first.
    async fn image_history(
        &self,
        reference: &str,
    ) -> Result<Vec<crate::catalog::ImageHistoryEntry>, RuntimeError>;

    /// Points the tag `target` (`name:tag`, checked by the caller) at the image `source`
    /// names, moving it off any image it named before.
    async fn tag_image(&self, source: &str, target: &str) -> Result<(), RuntimeError>;

    /// Writes the images `references` name to the file `archive` on the node, as a `docker
    /// save` archive that `docker load` (and [`RuntimeDriver::load_image`]) reads back with the
    /// same image IDs. A name without tag saves every tag of that repository; an ID saves the
    /// image untagged. Nothing is left at `archive` when it fails.
    async fn save_images(
        &self,
        references: &[String],
        archive: &std::path::Path,
    ) -> Result<(), RuntimeError>;

    /// Makes a named volume, or returns the one of that name unchanged (as Docker does).
    async fn create_volume(
        &self,
        spec: &crate::catalog::VolumeCreate,
    ) -> Result<VolumeInfo, RuntimeError>;

    /// Removes the volumes `filter` selects (see
    /// [`VolumePrune::selects`](crate::catalog::VolumePrune::selects)) among those no task
    /// uses when the prune looks; returns what it removed.
    async fn prune_volumes(
        &self,
        filter: &crate::catalog::VolumePrune,
    ) -> Result<crate::catalog::VolumesPruned, RuntimeError>;
}
