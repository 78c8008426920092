//! A node as a Docker Engine ([`NodeEngine`], the implementation of
//! [`shoal_control::Engine`]): every task the node runs is a container, named and labelled as
//! Swarm names them (`web.1.<task-id>`, `com.docker.swarm.*`), with the runtime's own container
//! ID where it has one (Docker's) and otherwise an ID derived from the task's; what the engine
//! API does to a container goes to the node's [`RuntimeDriver`]; exec instances live here.
//!
//! - [`containers`]: the containers view (from the agent's assignments and the runtime's list)
//!   and lookup by ID, ID prefix or name.
//! - [`events`]: the node's events (containers as they change, execs, and the cluster objects'
//!   the node publishes).
//! - [`execs`]: exec instances: made, started once, waited for, inspected, forgotten.
//! - [`top`]: `docker top`'s `ps` run and filtered to a container's processes.
//!
//! A task container the user stops, kills or removes is the runtime's business: the agent sees
//! its process end and reports the task's end, and the service's restart policy decides what
//! replaces it, as Swarm does when its engine's container is stopped under it.
//!
//! Concurrency: the exec table is one mutex, never held across an await; everything else is
//! read fresh from the agent and the runtime at each call.

pub mod containers;
pub mod events;
pub mod execs;
pub mod top;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shoal_control::engine::{
    ContainerInfo, ContainerStatus, Engine, EngineError, ExecConfig, ExecInfo, ExecStreams,
    StatsSample, Top, WaitCondition,
};
use shoal_runtime::exec::TaskStats;
use shoal_runtime::{LogOptions, LogStream, RuntimeDriver, RuntimeError};
use shoal_types::{Clock, Id, Task};

/// Where the engine learns which tasks the node runs: the agent's assignments.
pub trait TaskSource: Send + Sync {
    fn tasks(&self) -> Vec<Task>;

    /// A network's name, when the node knows it.
    fn network_name(&self, _id: &Id) -> Option<String> {
        None
    }
}

/// A node without an agent (not in a swarm) runs no tasks.
pub struct NoTasks;

impl TaskSource for NoTasks {
    fn tasks(&self) -> Vec<Task> {
        Vec::new()
    }
}

/// How often `wait` looks again for a container that is not there yet or not gone yet.
const WAIT_POLL: Duration = Duration::from_millis(100);

pub struct NodeEngine {
    driver: Arc<dyn RuntimeDriver>,
    tasks: Arc<dyn TaskSource>,
    execs: execs::Execs,
    events: events::EventHub,
    clock: Arc<dyn Clock>,
    /// Exec IDs come from here.
    ids: std::sync::Mutex<shoal_types::id::IdGen>,
}

/// How often the containers are compared for their events.
const WATCH_EVERY: Duration = Duration::from_millis(250);

impl NodeEngine {
    pub fn new(
        driver: Arc<dyn RuntimeDriver>,
        tasks: Arc<dyn TaskSource>,
        clock: Arc<dyn Clock>,
        ids: shoal_types::id::IdGen,
    ) -> Self {
        NodeEngine {
            driver,
            tasks,
            execs: execs::Execs::default(),
            events: events::EventHub::default(),
            clock,
            ids: std::sync::Mutex::new(ids),
        }
    }

    /// Publishes the containers' events as they change, until `stop` flips.
    pub async fn watch(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut before = self.containers().await.unwrap_or_default();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(WATCH_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let Ok(after) = self.containers().await else {
                continue;
            };
            for e in events::diff(&before, &after, self.clock.now()) {
                self.events.publish(e);
            }
            before = after;
        }
    }

    /// An exec's event; an `action` ending in `:` is followed by the exec's command, as
    /// Docker names `exec_create: CMD` and `exec_start: CMD` (but not `exec_die`).
    fn exec_event(&self, id: &str, action: &str, extra: &[(&str, String)]) {
        let Ok(i) = self.execs.inspect(id) else {
            return;
        };
        let mut e = shoal_control::engine::EngineEvent {
            typ: "container".into(),
            action: match action.strip_suffix(':') {
                Some(a) => format!("{a}: {}", i.config.cmd.join(" ")),
                None => action.to_string(),
            },
            id: i.container_id.clone(),
            attributes: [("execID".to_string(), id.to_string())].into(),
            scope: "local".into(),
            time: self.clock.now(),
        };
        for (k, v) in extra {
            e.attributes.insert(k.to_string(), v.clone());
        }
        self.events.publish(e);
    }

    /// The task behind a container, or Docker's "No such container".
    fn task_of(&self, c: &ContainerInfo) -> Result<Id, EngineError> {
        c.task_id
            .clone()
            .ok_or_else(|| EngineError::NoSuchContainer(c.name.clone()))
    }
}

/// The node's CPU time in nanoseconds from `/proc/stat`'s first line (user to steal, in
/// USER_HZ ticks of 10 ms), as Docker computes `system_cpu_usage`.
pub fn system_cpu_ns(proc_stat: &str) -> u64 {
    proc_stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
                .saturating_mul(10_000_000)
        })
        .unwrap_or(0)
}

/// A runtime error as the engine API answers it, for the container `c`.
pub(crate) fn from_runtime(c: &str, e: RuntimeError) -> EngineError {
    match e {
        RuntimeError::NotFound(_) => EngineError::NoSuchContainer(c.to_string()),
        RuntimeError::NotRunning(_) => EngineError::NotRunning(c.to_string()),
        RuntimeError::InvalidSpec { field, why } => EngineError::invalid(field, why),
        RuntimeError::Unsupported { .. } => EngineError::Unsupported(e.to_string()),
        RuntimeError::Conflict(m) => EngineError::Conflict(m),
        other => EngineError::Internal(shoal_types::error::chain(&other)),
    }
}

#[async_trait]
impl Engine for NodeEngine {
    async fn containers(&self) -> Result<Vec<ContainerInfo>, EngineError> {
        let held = self
            .driver
            .list()
            .await
            .map_err(|e| EngineError::Internal(shoal_types::error::chain(&e)))?;
        let tasks = self.tasks.tasks();
        Ok(containers::view(
            &tasks,
            &held,
            self.tasks.as_ref(),
            self.driver.name(),
        ))
    }

    async fn container(&self, key: &str) -> Result<ContainerInfo, EngineError> {
        let all = self.containers().await?;
        containers::find(all, key)
    }

    async fn logs(
        &self,
        key: &str,
        opts: LogOptions,
    ) -> Result<(ContainerInfo, LogStream), EngineError> {
        let c = self.container(key).await?;
        let task = self.task_of(&c)?;
        let s = self
            .driver
            .logs(&task, opts)
            .await
            .map_err(|e| from_runtime(key, e))?;
        Ok((c, s))
    }

    async fn top(&self, key: &str, ps_args: &str) -> Result<Top, EngineError> {
        let c = self.container(key).await?;
        if c.state.status != ContainerStatus::Running {
            return Err(EngineError::NotRunning(c.id));
        }
        let task = self.task_of(&c)?;
        let pids = self
            .driver
            .processes(&task)
            .await
            .map_err(|e| from_runtime(key, e))?;
        top::run(ps_args, &pids).await
    }

    async fn stats(&self, key: &str) -> Result<StatsSample, EngineError> {
        let c = self.container(key).await?;
        let usage = if c.state.status == ContainerStatus::Running {
            let task = self.task_of(&c)?;
            self.driver
                .stats(&task)
                .await
                .map_err(|e| from_runtime(key, e))?
        } else {
            // Docker answers a stopped container's stats with zeroes, not an error.
            TaskStats {
                read: self.clock.now(),
                ..Default::default()
            }
        };
        let system_cpu_ns = system_cpu_ns(
            &tokio::fs::read_to_string("/proc/stat")
                .await
                .unwrap_or_default(),
        );
        Ok(StatsSample {
            container: c,
            usage,
            system_cpu_ns,
            online_cpus: std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(1)),
        })
    }

    async fn wait(&self, key: &str, condition: WaitCondition) -> Result<i64, EngineError> {
        let c = self.container(key).await?;
        let task = self.task_of(&c)?;
        if condition == WaitCondition::NotRunning && c.state.status != ContainerStatus::Running {
            return Ok(c.state.exit_code);
        }
        if condition == WaitCondition::Removed {
            loop {
                match self.container(&c.id).await {
                    Err(EngineError::NoSuchContainer(_)) => return Ok(c.state.exit_code),
                    Err(e) => return Err(e),
                    Ok(_) => tokio::time::sleep(WAIT_POLL).await,
                }
            }
        }
        loop {
            match self.driver.wait(&task).await {
                Ok(exit) => return Ok(exit.code),
                // Not started yet: the next exit comes after a start.
                Err(RuntimeError::StartFailed(_)) => tokio::time::sleep(WAIT_POLL).await,
                Err(e) => return Err(from_runtime(key, e)),
            }
        }
    }

    async fn kill(&self, key: &str, signal: i32) -> Result<(), EngineError> {
        let c = self.container(key).await?;
        let task = self.task_of(&c)?;
        self.driver
            .signal(&task, signal)
            .await
            .map_err(|e| from_runtime(&c.id, e))?;
        let mut e = events::container_event(&c, "kill", self.clock.now());
        e.attributes.insert("signal".into(), signal.to_string());
        self.events.publish(e);
        Ok(())
    }

    async fn stop(&self, key: &str, timeout: Option<Duration>) -> Result<(), EngineError> {
        let c = self.container(key).await?;
        let task = self.task_of(&c)?;
        let grace = timeout.unwrap_or_else(|| c.spec.effective_stop_grace());
        self.driver
            .stop(&task, grace)
            .await
            .map_err(|e| from_runtime(key, e))?;
        self.events
            .publish(events::container_event(&c, "stop", self.clock.now()));
        Ok(())
    }

    async fn restart(&self, key: &str, timeout: Option<Duration>) -> Result<(), EngineError> {
        // A task's container is not restarted in place: once it stops, its service's restart
        // policy decides what runs next (see the module doc).
        self.stop(key, timeout).await
    }

    async fn remove(&self, key: &str, force: bool) -> Result<(), EngineError> {
        let c = self.container(key).await?;
        let task = self.task_of(&c)?;
        if c.state.status == ContainerStatus::Running {
            if !force {
                return Err(EngineError::Conflict(format!(
                    "You cannot remove a running container {}. Stop the container before attempting removal or force remove",
                    c.id
                )));
            }
            self.driver
                .stop(&task, Duration::ZERO)
                .await
                .map_err(|e| from_runtime(key, e))?;
        }
        match self.driver.remove(&task).await {
            Ok(()) | Err(RuntimeError::NotFound(_)) => {
                self.execs.forget_container(&c.id);
                Ok(())
            }
            Err(e) => Err(from_runtime(key, e)),
        }
    }

    async fn exec_create(&self, key: &str, config: ExecConfig) -> Result<String, EngineError> {
        let c = self.container(key).await?;
        if c.state.status != ContainerStatus::Running {
            return Err(EngineError::NotRunning(c.id));
        }
        if config.cmd.is_empty() {
            return Err(EngineError::invalid("Cmd", "No exec command specified"));
        }
        let task = self.task_of(&c)?;
        let attrs = [("image", c.spec.image.clone()), ("name", c.name.clone())];
        // 64 hex digits, as Docker's exec IDs.
        let mut bytes = [0u8; 32];
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fill(&mut bytes);
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let id = self.execs.create(id, c.id, task, config, self.clock.now());
        self.exec_event(&id, "exec_create:", &attrs);
        Ok(id)
    }

    async fn exec_start(&self, id: &str) -> Result<ExecStreams, EngineError> {
        let s = self.execs.start(id, self.driver.as_ref()).await?;
        self.exec_event(id, "exec_start:", &[]);
        Ok(s)
    }

    async fn exec_wait(&self, id: &str) -> Result<i64, EngineError> {
        let (code, first) = self.execs.wait(id).await?;
        if first {
            self.exec_event(id, "exec_die", &[("exitCode", code.to_string())]);
        }
        Ok(code)
    }

    async fn exec_resize(&self, id: &str, rows: u16, cols: u16) -> Result<(), EngineError> {
        self.execs.resize(id, rows, cols).await
    }

    fn exec_inspect(&self, id: &str) -> Result<ExecInfo, EngineError> {
        self.execs.inspect(id)
    }

    fn events(
        &self,
    ) -> (
        Vec<shoal_control::engine::EngineEvent>,
        tokio::sync::broadcast::Receiver<shoal_control::engine::EngineEvent>,
    ) {
        self.events.subscribe()
    }

    fn publish(&self, event: shoal_control::engine::EngineEvent) {
        self.events.publish(event);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn system_cpu_is_the_first_lines_ticks() {
        let stat = "cpu  10 1 5 100 2 0 1 0 0 0\ncpu0 5 0 2 50 1 0 0 0 0 0\n";
        assert_eq!(super::system_cpu_ns(stat), 119 * 10_000_000);
        assert_eq!(super::system_cpu_ns(""), 0);
    }
}
