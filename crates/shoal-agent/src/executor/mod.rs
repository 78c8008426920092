//! The agent executor: the node side of Swarm's dispatcher protocol. It keeps one session open
//! (reconnecting with backoff), heartbeats at the period the dispatcher asks for, and turns each
//! complete assignment set into one runner per task (see `runner`), adopting the tasks the
//! runtime already holds after a daemon restart instead of starting them again, and removing the
//! ones nobody assigned any more.
//!
//! Concurrency: `run` owns the session and the runner table (no lock); runners are tokio tasks
//! that share the driver, the reporter and the clock; `node_id` and `logs` may be called from
//! anywhere at any time.

pub mod controller;
mod reporter;
mod runner;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use shoal_types::dispatch::{Assignments, SessionRequest};
use shoal_types::node::{EngineDescription, Platform, Resources};
use shoal_types::service::DEFAULT_STOP_GRACE;
use shoal_types::{Clock, Id, NodeDescription, Task};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::controller::Facts;
use self::reporter::Reporter;
use self::runner::{Ctx, Runner};
use crate::{DispatchError, DispatcherClient, Session};
use shoal_runtime::{LogOptions, LogStream, RuntimeDriver, RuntimeError, RuntimeTaskState};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
// Below a new leader's grace (three heartbeat periods of 1 s by default): an agent still
// backing off after a failover would otherwise be marked Down and its tasks replaced.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Floor on the heartbeat period, so a dispatcher answering zero cannot make the agent spin.
const MIN_HEARTBEAT: Duration = Duration::from_millis(10);
const NODE_ID_FILE: &str = "node-id";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Where the agent keeps what must survive a restart (its node ID).
    pub state_dir: PathBuf,
    pub description: NodeDescription,
    /// How long status changes collect before they are sent as one batch.
    pub report_interval: Duration,
}

impl AgentConfig {
    pub fn new(state_dir: PathBuf, description: NodeDescription) -> Self {
        AgentConfig {
            state_dir,
            description,
            report_interval: Duration::from_millis(50),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The managers removed this node from the cluster.
    #[error("node {0} is not part of the cluster")]
    UnknownNode(Id),
    /// The runtime could not list its tasks at start, so nothing can be adopted safely.
    #[error("listing the runtime's tasks")]
    Runtime(#[from] RuntimeError),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// What this node reports about itself: hostname, `linux`, the architecture as Docker shows it
/// (`x86_64`, `aarch64`), CPUs as NanoCPUs and memory from `/proc/meminfo`.
pub fn describe_node(engine_version: &str, runtimes: &[&str]) -> NodeDescription {
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| parse_mem_total(&m))
        .unwrap_or(0);
    NodeDescription {
        hostname,
        platform: Platform {
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
        },
        resources: Resources {
            nano_cpus: cpus.saturating_mul(1_000_000_000),
            memory_bytes: memory,
        },
        // Operator-declared (`--node-generic-resource`); the daemon fills them in.
        generic_resources: Vec::new(),
        engine: EngineDescription {
            version: engine_version.to_string(),
            labels: Default::default(),
            runtimes: runtimes.iter().map(|s| s.to_string()).collect(),
        },
        // The daemon's network layer fills it in.
        network_key: None,
    }
}

/// `MemTotal:  16318480 kB` in bytes.
fn parse_mem_total(meminfo: &str) -> Option<i64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

pub struct Agent {
    cfg: AgentConfig,
    driver: Arc<dyn RuntimeDriver>,
    dispatcher: Arc<dyn DispatcherClient>,
    clock: Arc<dyn Clock>,
    node_id: watch::Sender<Option<Id>>,
    reporter: Arc<Reporter>,
    /// The tasks assigned to the node now, as last assigned: what the node's engine shows as
    /// its containers.
    assigned: Assigned,
}

type Assigned = Arc<std::sync::RwLock<BTreeMap<Id, Task>>>;

/// Why serving one session ended.
enum Ended {
    Shutdown,
    Lost(String),
    Fatal(AgentError),
}

/// The runner table and what is still being cleaned up.
struct Worker {
    ctx: Arc<Ctx>,
    /// Ordered maps: the order tasks are removed, stopped and cleaned up in is the order their
    /// work is spawned in, and it must not depend on a per-instance hash (a simulation seed
    /// must run the same way twice).
    runners: BTreeMap<Id, Runner>,
    cleanups: Vec<JoinHandle<()>>,
    assigned: Assigned,
    /// What the runtime held at start, until the first complete assignment set sorts it into
    /// adopted tasks and strays.
    adopted: Option<BTreeMap<Id, RuntimeTaskState>>,
}

impl Worker {
    fn apply(&mut self, mut a: Assignments) {
        // Before the tasks: a task in this message may need what it brings.
        if let Some(d) = a.payloads.take() {
            let d = Arc::new(d);
            match self.ctx.payloads.write() {
                Ok(mut g) => *g = d,
                Err(p) => *p.into_inner() = d,
            }
        }
        let gone: Vec<Id> = if a.complete {
            let ids: HashSet<&Id> = a.tasks.iter().map(|t| &t.id).collect();
            self.runners
                .keys()
                .filter(|id| !ids.contains(id))
                .cloned()
                .collect()
        } else {
            a.removed
        };
        for id in gone {
            self.assigned
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if let Some(r) = self.runners.remove(&id) {
                tracing::info!(task.id = %id, "agent: task no longer assigned; removing it");
                self.cleanups.push(r.remove());
            }
        }
        // What the runtime held is sorted by the first complete set: what it names is adopted,
        // the rest are strays. A set of changes before that (never sent) adopts what it names.
        let mut adopted = self.adopted.take();
        // A network attachment stands for the engine's container, never for something to run
        // (managers do not send them; one that came anyway is not the agent's).
        for task in a.tasks.into_iter().filter(|t| !t.is_attachment()) {
            self.take(task, &mut adopted);
        }
        if a.complete {
            for (id, state) in adopted.unwrap_or_default() {
                tracing::info!(task.id = %id, "agent: removing stray task the runtime held but nobody assigned");
                let ctx = self.ctx.clone();
                let facts = runner::facts_from_runtime(&state);
                self.cleanups.push(tokio::spawn(async move {
                    runner::cleanup(&ctx, &id, &facts, DEFAULT_STOP_GRACE).await;
                }));
            }
        } else {
            self.adopted = adopted;
        }
        self.cleanups.retain(|h| !h.is_finished());
    }

    /// Hands a newer version of a task to its runner, or starts a runner for a new one
    /// (adopting what the runtime still holds of it).
    fn take(&mut self, task: Task, adopted: &mut Option<BTreeMap<Id, RuntimeTaskState>>) {
        self.ctx.reporter.known(&task.id, task.status.state);
        self.assigned
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task.id.clone(), task.clone());
        match self.runners.get(&task.id) {
            Some(r) => r.update(task),
            None => {
                let facts = adopted
                    .as_mut()
                    .and_then(|m| m.remove(&task.id))
                    .map_or(Facts::Absent, |s| runner::facts_from_runtime(&s));
                if facts != Facts::Absent {
                    tracing::info!(task.id = %task.id, ?facts, "agent: adopting task from the runtime");
                }
                self.runners.insert(
                    task.id.clone(),
                    Runner::spawn(self.ctx.clone(), task, facts),
                );
            }
        }
    }

    /// Stops every task (each with its grace) and waits until each has reported its end.
    async fn stop_all(&mut self) {
        for r in self.runners.values() {
            r.stop_local();
        }
        for r in std::mem::take(&mut self.runners).into_values() {
            let _ = r.join.await;
        }
        for h in self.cleanups.drain(..) {
            let _ = h.await;
        }
    }

    fn abort_all(&mut self) {
        for r in std::mem::take(&mut self.runners).into_values() {
            r.join.abort();
        }
        for h in self.cleanups.drain(..) {
            h.abort();
        }
    }
}

async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    // A dropped sender also means "stop".
    let _ = rx.wait_for(|v| *v).await;
}

impl Agent {
    pub fn new(
        cfg: AgentConfig,
        driver: Arc<dyn RuntimeDriver>,
        dispatcher: Arc<dyn DispatcherClient>,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        let saved = std::fs::read_to_string(cfg.state_dir.join(NODE_ID_FILE))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .map(Id::from_raw);
        let (node_id, _) = watch::channel(saved);
        Arc::new(Agent {
            cfg,
            driver,
            dispatcher,
            clock,
            node_id,
            reporter: Arc::new(Reporter::default()),
            assigned: Default::default(),
        })
    }

    /// The tasks assigned to this node now, as last assigned (their status is what the
    /// managers last knew).
    pub fn tasks(&self) -> Vec<Task> {
        self.assigned
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The node's runtime.
    pub fn driver(&self) -> Arc<dyn RuntimeDriver> {
        self.driver.clone()
    }

    /// The node's ID once a session has given it one (or from a previous run).
    pub fn node_id(&self) -> Option<Id> {
        self.node_id.borrow().clone()
    }

    pub async fn logs(&self, task_id: &Id, opts: LogOptions) -> Result<LogStream, RuntimeError> {
        self.driver.logs(task_id, opts).await
    }

    fn set_node_id(&self, id: &Id) -> Result<(), AgentError> {
        if self.node_id().as_ref() == Some(id) {
            return Ok(());
        }
        let path = self.cfg.state_dir.join(NODE_ID_FILE);
        std::fs::create_dir_all(&self.cfg.state_dir)
            .and_then(|()| std::fs::write(&path, id.as_str()))
            .map_err(|source| AgentError::Io {
                context: format!("saving node ID to {}", path.display()),
                source,
            })?;
        self.node_id.send_replace(Some(id.clone()));
        Ok(())
    }

    /// Runs until `shutdown` flips to true; then, if `stop_tasks`, stops every task (each with its
    /// grace), reports their final status, and returns. Without `stop_tasks` the tasks keep
    /// running, to be adopted by the next agent on this node.
    pub async fn run(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
        stop_tasks: bool,
    ) -> Result<(), AgentError> {
        // Standalone containers run through the same driver but are the engine's, not strays.
        let held: Vec<_> = self
            .driver
            .list()
            .await?
            .into_iter()
            .filter(|t| !shoal_runtime::is_standalone(&t.task_id))
            .collect();
        tracing::info!(
            tasks = held.len(),
            runtime = self.driver.name(),
            "agent: starting"
        );
        let (flusher_stop, flusher_stop_rx) = watch::channel(false);
        let flusher = tokio::spawn(self.reporter.clone().run(
            self.dispatcher.clone(),
            self.node_id.subscribe(),
            self.cfg.report_interval,
            flusher_stop_rx,
        ));
        let mut worker: Option<Worker> = None;
        let mut adopted = Some(
            held.into_iter()
                .map(|t| (t.task_id, t.state))
                .collect::<BTreeMap<_, _>>(),
        );

        let result = self
            .sessions(&mut worker, &mut adopted, &mut shutdown)
            .await;
        match worker.as_mut() {
            Some(w) => {
                if stop_tasks {
                    tracing::info!(tasks = w.runners.len(), "agent: stopping all tasks");
                    w.stop_all().await;
                }
                w.abort_all();
            }
            // Never got a session: the runtime's tasks were never sorted into adopted and strays,
            // but stopping every task still means every task.
            None if stop_tasks => {
                for (id, state) in adopted.take().unwrap_or_default() {
                    if let RuntimeTaskState::Running { .. } = state
                        && let Err(e) = self.driver.stop(&id, DEFAULT_STOP_GRACE).await
                    {
                        tracing::warn!(task.id = %id, error = %shoal_types::error::Chain(&e), "agent: stopping a task failed");
                    }
                }
            }
            None => {}
        }
        let _ = flusher_stop.send(true);
        let _ = flusher.await;
        result
    }

    async fn sessions(
        &self,
        worker: &mut Option<Worker>,
        adopted: &mut Option<BTreeMap<Id, RuntimeTaskState>>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), AgentError> {
        let mut backoff = MIN_BACKOFF;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let req = SessionRequest {
                node_id: self.node_id(),
                description: self.cfg.description.clone(),
            };
            let opened = tokio::select! {
                s = self.dispatcher.session(req) => s,
                () = shutdown_requested(shutdown) => return Ok(()),
            };
            let why = match opened {
                Ok(session) => {
                    backoff = MIN_BACKOFF;
                    self.set_node_id(&session.node_id)?;
                    let w = worker.get_or_insert_with(|| Worker {
                        ctx: Arc::new(Ctx {
                            driver: self.driver.clone(),
                            reporter: self.reporter.clone(),
                            clock: self.clock.clone(),
                            node_id: session.node_id.clone(),
                            node: self.cfg.description.clone(),
                            payloads: Default::default(),
                        }),
                        runners: BTreeMap::new(),
                        cleanups: Vec::new(),
                        assigned: self.assigned.clone(),
                        adopted: adopted.take(),
                    });
                    match self.serve(session, w, shutdown).await {
                        Ended::Shutdown => return Ok(()),
                        Ended::Fatal(e) => return Err(e),
                        Ended::Lost(why) => why,
                    }
                }
                Err(DispatchError::UnknownNode(id)) => return Err(AgentError::UnknownNode(id)),
                Err(DispatchError::Unavailable(why)) => why,
            };
            tracing::warn!(error = %why, retry_in = ?backoff, "agent: no session with the dispatcher");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown_requested(shutdown) => return Ok(()),
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn serve(
        &self,
        mut session: Session,
        worker: &mut Worker,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        let node = session.node_id.clone();
        tracing::info!(node.id = %node, "agent: session open");
        let heartbeat = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(heartbeat);
        loop {
            tokio::select! {
                () = shutdown_requested(shutdown) => return Ended::Shutdown,
                () = &mut heartbeat => match self.dispatcher.heartbeat(&node).await {
                    Ok(period) => heartbeat.set(tokio::time::sleep(period.max(MIN_HEARTBEAT))),
                    Err(DispatchError::Unavailable(why)) => return Ended::Lost(format!("heartbeat: {why}")),
                    Err(DispatchError::UnknownNode(id)) => return Ended::Fatal(AgentError::UnknownNode(id)),
                },
                a = session.assignments.next() => match a {
                    Some(a) => {
                        tracing::debug!(version = a.version, tasks = a.tasks.len(), "agent: assignments");
                        worker.apply(a);
                    }
                    None => return Ended::Lost("the assignment stream ended".into()),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_this_node() {
        let d = describe_node("0.1.0", &["native"]);
        assert_eq!(d.platform.os, "linux");
        assert!(
            ["x86_64", "aarch64"].contains(&d.platform.arch.as_str()),
            "{}",
            d.platform.arch
        );
        assert!(d.resources.nano_cpus >= 1_000_000_000);
        assert!(d.resources.memory_bytes > 0);
        assert!(!d.hostname.is_empty());
        assert_eq!(d.engine.runtimes, vec!["native".to_string()]);
        assert_eq!(
            parse_mem_total("MemFree: 1 kB\nMemTotal:   2048 kB\n"),
            Some(2 * 1024 * 1024)
        );
        assert_eq!(parse_mem_total("nothing"), None);
    }
}

#[cfg(test)]
#[path = "agent_tests.rs"]
mod agent_tests;
