//! The Docker Engine runtime: each task is one Docker container, made and driven through the
//! Engine API (`bollard`), with the API version negotiated down to what the daemon speaks.
//!
//! A container carries Swarm's labels (`com.docker.swarm.task.id`, service and node IDs) plus
//! [`LABEL_MANAGED`] and [`LABEL_OWNER`]. The owner is the daemon's identity on the engine (its
//! data directory): `list` returns the containers of this owner only, so several shoal daemons
//! sharing one engine (tests, or a node that left and rejoined) never adopt each other's
//! containers, and the agent removes this owner's strays. The node ID is not the filter because a
//! daemon has none before it joins a swarm and gets a new one when it rejoins.
//!
//! A task with overlay networks gets a second container, its network sandbox (`sandbox`): dockerd
//! joins a container only to a namespace it made itself, so the sandbox holds the namespace the
//! node's network layer wires, and the task's container joins it (`container:<sandbox>`). The
//! sandbox carries [`LABEL_SANDBOX_TASK_ID`] instead of Swarm's task labels, so it is never taken
//! for the task's container.
//!
//! - `spec`: the pure mapping from a task to a create request.
//! - `driver`: the [`RuntimeDriver`](shoal_runtime::RuntimeDriver) implementation.
//! - `sandbox`: a task's network sandbox, and `pause`, the image it runs.
//! - `logs`: Docker's log frames as [`LogLine`](shoal_runtime::LogLine)s.
//! - `archive`: a container's files as archives (`docker cp`); `attach`: the streams of its
//!   own process; `exec`: exec, signals, processes and usage.
//! - `store`: volumes and images; `catalog`: what an engine serves of them beyond a listing
//!   (inspect, history, tag, save, volume create and prune).
//!
//! Concurrency: the driver keeps only a cache from task ID to container ID, the set of
//! sandboxes it made and the secret and config files of the tasks it prepared, for a container
//! started again (mutexes never held across an await); the drivers of a process import the
//! pause image one at a time (an async mutex). Docker serialises operations on one container,
//! and every call works for containers an earlier driver made.

mod archive;
mod attach;
mod catalog;
mod driver;
mod exec;
mod files;
mod logs;
pub mod pause;
pub mod sandbox;
pub mod spec;
mod store;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use bollard::Docker;
use shoal_runtime::RuntimeError;
use shoal_types::error::Remote;
use shoal_types::{Id, Timestamp};

pub const LABEL_TASK_ID: &str = "com.docker.swarm.task.id";
pub const LABEL_TASK_NAME: &str = "com.docker.swarm.task.name";
pub const LABEL_SERVICE_ID: &str = "com.docker.swarm.service.id";
pub const LABEL_SERVICE_NAME: &str = "com.docker.swarm.service.name";
pub const LABEL_NODE_ID: &str = "com.docker.swarm.node.id";
/// On every container and volume shoal creates.
pub const LABEL_MANAGED: &str = "com.shoal.managed";
/// Which shoal daemon created it (see the module doc).
pub const LABEL_OWNER: &str = "com.shoal.owner";
/// On a network sandbox: the task whose namespace it holds.
pub const LABEL_SANDBOX_TASK_ID: &str = "com.shoal.sandbox.task.id";

/// How long `connect` waits for the daemon to answer before deciding there is none.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Extra time an API call that waits on the container (stop) gets beyond its own wait.
const CALL_SLACK: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The source is bollard's error, or [`Remote`] naming the wait that ran out.
    #[error("cannot reach the Docker daemon at {host}")]
    Unreachable {
        host: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

pub struct DockerDriver {
    docker: Docker,
    owner: String,
    api_version: String,
    /// Task ID → container ID, for the tasks seen so far; a miss asks Docker by label.
    containers: Mutex<HashMap<Id, String>>,
    /// Tasks whose sandbox this driver made or handed out and that were not removed since:
    /// `list` leaves their sandboxes alone while their containers do not exist yet.
    sandboxes: Mutex<HashSet<Id>>,
    /// The secret and config files of the tasks this driver prepared: a container started
    /// again gets them back on a new tmpfs (its exit released the last one).
    kept: shoal_runtime::files::KeptFiles,
}

impl std::fmt::Debug for DockerDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerDriver")
            .field("owner", &self.owner)
            .field("api_version", &self.api_version)
            .finish()
    }
}

/// Where the daemon is: `DOCKER_HOST`, else the local socket.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

impl DockerDriver {
    /// Connects to `DOCKER_HOST` (or `/var/run/docker.sock`), negotiates the API version and
    /// checks that the daemon answers. `owner` names this shoal daemon on the engine (see the
    /// module doc); it must be stable across restarts for containers to be adopted.
    pub async fn connect(owner: &str) -> Result<DockerDriver, ConnectError> {
        let host = docker_host();
        let unreachable =
            |source: Box<dyn std::error::Error + Send + Sync>| ConnectError::Unreachable {
                host: host.clone(),
                source,
            };
        let no_answer = || Box::new(Remote(format!("no answer within {CONNECT_TIMEOUT:?}")));
        let docker = Docker::connect_with_host(&host).map_err(|e| unreachable(e.into()))?;
        let docker = tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| unreachable(no_answer()))?
            .map_err(|e| unreachable(e.into()))?;
        tokio::time::timeout(CONNECT_TIMEOUT, docker.ping())
            .await
            .map_err(|_| unreachable(no_answer()))?
            .map_err(|e| unreachable(e.into()))?;
        let api_version = docker.client_version().to_string();
        tracing::info!(%host, api.version = %api_version, "docker runtime: connected");
        Ok(DockerDriver {
            docker,
            owner: owner.to_string(),
            api_version,
            containers: Mutex::new(HashMap::new()),
            sandboxes: Mutex::new(HashSet::new()),
            kept: Default::default(),
        })
    }

    /// The Engine API version in use after negotiation, e.g. `1.41`.
    pub fn api_version(&self) -> &str {
        &self.api_version
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Id, String>> {
        self.containers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sandboxes(&self) -> std::sync::MutexGuard<'_, HashSet<Id>> {
        self.sandboxes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A client whose calls may take `wait` longer than usual (bollard bounds each call).
    fn patient(&self, wait: Duration) -> Docker {
        self.docker
            .clone()
            .with_timeout(self.docker.timeout() + wait + CALL_SLACK)
    }

    /// Label filters for this owner's containers or volumes, plus `extra` (`key=value`).
    fn filters(&self, extra: &[String]) -> HashMap<String, Vec<String>> {
        let mut labels = vec![
            format!("{LABEL_MANAGED}=true"),
            format!("{LABEL_OWNER}={}", self.owner),
        ];
        labels.extend(extra.iter().cloned());
        HashMap::from([("label".to_string(), labels)])
    }
}

/// The status code of a Docker error response, if it was one.
fn status_of(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Docker's own message for an error response, or the whole error otherwise.
fn message_of(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// A failed API call: `context` says what was being done, bollard's error is the cause.
fn api_err(context: impl Into<String>, e: bollard::errors::Error) -> RuntimeError {
    RuntimeError::failed(context, e)
}

/// An RFC 3339 time from Docker; Docker's zero time (`0001-01-01T00:00:00Z`) and anything
/// unreadable are [`Timestamp::ZERO`].
fn parse_time(s: &str) -> Timestamp {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .filter(|&n| n > 0)
        .map_or(Timestamp::ZERO, Timestamp::from_unix_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_times() {
        assert_eq!(
            parse_time("2026-11-24T17:40:00.5Z"),
            Timestamp::from_unix_nanos(1_795_542_000_500_000_000)
        );
        assert_eq!(parse_time("0001-01-01T00:00:00Z"), Timestamp::ZERO);
        assert_eq!(parse_time("garbage"), Timestamp::ZERO);
    }

    /// A failed API call keeps bollard's error as the cause, under what was being done.
    #[test]
    fn a_failed_call_keeps_the_daemons_error_as_its_source() {
        let e = api_err(
            "removing container c1",
            bollard::errors::Error::DockerResponseServerError {
                status_code: 500,
                message: "driver failed".into(),
            },
        );
        let source = std::error::Error::source(&e).expect("bollard's error is the source");
        assert!(
            source.downcast_ref::<bollard::errors::Error>().is_some(),
            "{source:?}"
        );
        assert_eq!(e.to_string(), "removing container c1");
        let text = shoal_types::error::chain(&e);
        assert!(
            text.starts_with("removing container c1: ") && text.ends_with("driver failed"),
            "{text}"
        );
    }
}
