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
pub mod standalone;
pub mod top;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use shoal_control::engine::{
    ContainerCreate, ContainerInfo, ContainerStatus, EndpointRequest, Engine, EngineError,
    ExecConfig, ExecInfo, ExecStreams, StatsSample, Top, WaitCondition,
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
    /// Exec and container IDs come from here.
    ids: Arc<std::sync::Mutex<shoal_types::id::IdGen>>,
    /// The node's standalone containers; `None` until [`NodeEngine::with_standalone`].
    standalone: Option<Arc<standalone::Standalone>>,
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
            ids: Arc::new(std::sync::Mutex::new(ids)),
            standalone: None,
        }
    }

    /// Serves standalone containers too, kept in `dir` and run by `runner` (the node's driver
    /// behind its network layer). Call [`NodeEngine::resume`] once the node is up.
    pub fn with_standalone(
        mut self,
        dir: std::path::PathBuf,
        runner: Arc<dyn RuntimeDriver>,
        nets: Arc<dyn standalone::LocalNets>,
    ) -> Self {
        self.standalone = Some(Arc::new(standalone::Standalone::new(
            dir,
            runner,
            nets,
            self.clock.clone(),
            self.ids.clone(),
        )));
        self
    }

    /// Takes up the standalone containers a previous daemon left.
    pub async fn resume(&self) {
        if let Some(s) = &self.standalone {
            s.resume().await;
        }
    }

    /// Stops supervising standalone containers (the daemon is stopping; they keep running).
    pub fn shutdown(&self) {
        if let Some(s) = &self.standalone {
            s.shutdown();
        }
    }

    fn standalone(&self) -> Result<&Arc<standalone::Standalone>, EngineError> {
        self.standalone.as_ref().ok_or_else(|| {
            EngineError::Unsupported("this node does not run standalone containers".into())
        })
    }

    /// The standalone container `key` names, or Docker's errors; a task's container is
    /// refused for what only standalone containers do.
    async fn standalone_of(
        &self,
        key: &str,
        what: &str,
    ) -> Result<(ContainerInfo, Arc<standalone::Standalone>), EngineError> {
        let c = self.container(key).await?;
        let s = self.standalone()?.clone();
        if c.standalone.is_none() {
            return Err(EngineError::Unsupported(format!(
                "{what} of a service task's container ({}) is not supported: its service decides how it runs",
                c.name
            )));
        }
        Ok((c, s))
    }

    /// The container and its task, made with the runtime if it is a standalone container
    /// that has not been yet (a copy into a created container needs its filesystem).
    async fn filesystem_of(&self, key: &str) -> Result<(ContainerInfo, Id), EngineError> {
        let c = self.container(key).await?;
        let task = match (&c.standalone, &self.standalone) {
            (Some(_), Some(s)) => s.prepared(&c.id).await?,
            _ => self.task_of(&c)?,
        };
        Ok((c, task))
    }

    async fn names_in_use(&self) -> Result<Vec<String>, EngineError> {
        Ok(self
            .containers()
            .await?
            .into_iter()
            .map(|c| c.name)
            .collect())
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

/// A runtime error of a copy, as Docker words it for the container `c`.
fn archive_err(c: &ContainerInfo, e: RuntimeError) -> EngineError {
    match e {
        RuntimeError::PathNotFound { path } => EngineError::NoSuchPath {
            path,
            container: c.name.clone(),
        },
        other => from_runtime(&c.id, other),
    }
}

/// A local network's event, as Docker's (`scope` local, `name` and `type` attributes).
fn network_event(
    n: &shoal_types::local_net::LocalNetwork,
    action: &str,
    time: shoal_types::Timestamp,
) -> shoal_control::engine::EngineEvent {
    shoal_control::engine::EngineEvent {
        typ: "network".into(),
        action: action.into(),
        id: n.id.clone(),
        attributes: [
            ("name".to_string(), n.name.clone()),
            ("type".to_string(), n.driver.clone()),
        ]
        .into(),
        scope: "local".into(),
        time,
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
        let mut all = containers::view(&tasks, &held, self.tasks.as_ref(), self.driver.name());
        if let Some(s) = &self.standalone {
            let by_id = held.iter().map(|t| (&t.task_id, t)).collect();
            all.extend(s.infos(&by_id, self.driver.name()));
            all.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        }
        Ok(all)
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
        if c.standalone.is_some() {
            let running = matches!(
                c.state.status,
                ContainerStatus::Running | ContainerStatus::Restarting
            );
            return self.standalone()?.wait(&c.id, condition, running).await;
        }
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
        if c.state.status != ContainerStatus::Running {
            return Err(EngineError::NotRunning(c.id));
        }
        if c.standalone.is_some() {
            let stop = shoal_runtime::parse_stop_signal(&c.spec.stop_signal).unwrap_or(15);
            if signal == 9 || signal == stop {
                self.standalone()?.killed_for_good(&c.id)?;
            }
        }
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
        if c.standalone.is_some() {
            self.standalone()?.stop(&c.id, grace).await?;
            self.events
                .publish(events::container_event(&c, "stop", self.clock.now()));
            return Ok(());
        }
        self.driver
            .stop(&task, grace)
            .await
            .map_err(|e| from_runtime(key, e))?;
        self.events
            .publish(events::container_event(&c, "stop", self.clock.now()));
        Ok(())
    }

    async fn restart(&self, key: &str, timeout: Option<Duration>) -> Result<(), EngineError> {
        let c = self.container(key).await?;
        self.stop(&c.id, timeout).await?;
        if c.standalone.is_some() {
            self.start(&c.id).await?;
            self.events
                .publish(events::container_event(&c, "restart", self.clock.now()));
        }
        // A task's container is not restarted in place: once it stops, its service's restart
        // policy decides what runs next (see the module doc).
        Ok(())
    }

    async fn remove(&self, key: &str, force: bool) -> Result<(), EngineError> {
        let c = self.container(key).await?;
        let task = self.task_of(&c)?;
        if c.state.status == ContainerStatus::Running
            || c.state.status == ContainerStatus::Restarting
        {
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
        if c.standalone.is_some() {
            self.standalone()?.remove(&c.id).await?;
            self.execs.forget_container(&c.id);
            return Ok(());
        }
        match self.driver.remove(&task).await {
            Ok(()) | Err(RuntimeError::NotFound(_)) => {
                self.execs.forget_container(&c.id);
                Ok(())
            }
            Err(e) => Err(from_runtime(key, e)),
        }
    }

    async fn create(
        &self,
        name: Option<&str>,
        create: ContainerCreate,
    ) -> Result<(String, Vec<String>), EngineError> {
        let taken = self.names_in_use().await?;
        self.standalone()?.create(name, create, &taken).await
    }

    async fn start(&self, key: &str) -> Result<bool, EngineError> {
        let (c, s) = self.standalone_of(key, "starting").await?;
        s.start(&c.id).await
    }

    async fn attach(&self, key: &str, stdin: bool) -> Result<ExecStreams, EngineError> {
        let (c, task) = self.filesystem_of(key).await?;
        let p = self
            .driver
            .attach(&task)
            .await
            .map_err(|e| from_runtime(&c.id, e))?;
        if c.standalone.is_some()
            && let Some(s) = &self.standalone
        {
            s.set_attached(&c.id, p.handle.clone());
        }
        self.events
            .publish(events::container_event(&c, "attach", self.clock.now()));
        Ok(ExecStreams {
            input: if stdin { p.input } else { None },
            output: p.output,
            tty: c.spec.tty,
        })
    }

    async fn resize(&self, key: &str, rows: u16, cols: u16) -> Result<(), EngineError> {
        let (c, s) = self.standalone_of(key, "resizing").await?;
        s.resize(&c.id, rows, cols).await
    }

    async fn rename(&self, key: &str, name: &str) -> Result<(), EngineError> {
        let (c, s) = self.standalone_of(key, "renaming").await?;
        let taken = self.names_in_use().await?;
        let old = s.rename(&c.id, name, &taken)?;
        let mut e = events::container_event(&c, "rename", self.clock.now());
        e.attributes.insert("oldName".into(), format!("/{old}"));
        e.attributes
            .insert("name".into(), name.trim_start_matches('/').to_string());
        self.events.publish(e);
        Ok(())
    }

    async fn connect(&self, key: &str, endpoint: EndpointRequest) -> Result<(), EngineError> {
        let (c, s) = self.standalone_of(key, "connecting").await?;
        s.connect(&c.id, endpoint).await
    }

    async fn disconnect(&self, key: &str, network: &str, _force: bool) -> Result<(), EngineError> {
        let (c, s) = self.standalone_of(key, "disconnecting").await?;
        let on = c
            .standalone
            .as_ref()
            .is_some_and(|i| i.create.endpoints.iter().any(|e| e.network == network));
        if !on {
            return Err(EngineError::Conflict(format!(
                "container {} is not connected to network {network}",
                c.id
            )));
        }
        s.disconnect(&c.id, network).await
    }

    async fn path_stat(
        &self,
        key: &str,
        path: &str,
    ) -> Result<shoal_runtime::PathStat, EngineError> {
        let (c, task) = self.filesystem_of(key).await?;
        self.driver
            .path_stat(&task, path)
            .await
            .map_err(|e| archive_err(&c, e))
    }

    async fn archive_get(
        &self,
        key: &str,
        path: &str,
    ) -> Result<(shoal_runtime::PathStat, shoal_runtime::ArchiveStream), EngineError> {
        let (c, task) = self.filesystem_of(key).await?;
        let got = self
            .driver
            .archive_get(&task, path)
            .await
            .map_err(|e| archive_err(&c, e))?;
        let mut e = events::container_event(&c, "archive-path", self.clock.now());
        e.attributes.insert("path".into(), path.to_string());
        self.events.publish(e);
        Ok(got)
    }

    async fn archive_put(
        &self,
        key: &str,
        dir: &str,
        archive: shoal_runtime::ArchiveStream,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<(), EngineError> {
        let (c, task) = self.filesystem_of(key).await?;
        self.driver
            .archive_put(&task, dir, archive, no_overwrite_dir_non_dir)
            .await
            .map_err(|e| archive_err(&c, e))?;
        let mut e = events::container_event(&c, "extract-to-dir", self.clock.now());
        e.attributes.insert("path".into(), dir.to_string());
        self.events.publish(e);
        Ok(())
    }

    fn local_networks(&self) -> Vec<shoal_types::local_net::LocalNetwork> {
        self.standalone
            .as_ref()
            .map(|s| s.nets().networks())
            .unwrap_or_default()
    }

    async fn create_local_network(
        &self,
        spec: shoal_types::local_net::LocalNetworkSpec,
    ) -> Result<shoal_types::local_net::LocalNetwork, EngineError> {
        let n = self.standalone()?.nets().create_network(spec).await?;
        self.events
            .publish(network_event(&n, "create", self.clock.now()));
        Ok(n)
    }

    async fn remove_local_network(&self, key: &str) -> Result<(), EngineError> {
        let s = self.standalone()?;
        let n = s
            .nets()
            .networks()
            .into_iter()
            .find(|n| n.id == key || n.name == key || n.id.starts_with(key))
            .ok_or_else(|| EngineError::NoSuchNetwork(key.to_string()))?;
        s.nets().remove_network(&n.id).await?;
        self.events
            .publish(network_event(&n, "destroy", self.clock.now()));
        Ok(())
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
