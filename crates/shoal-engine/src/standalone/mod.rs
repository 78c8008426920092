//! Standalone containers (`docker run`, `create`, `start`, `attach`...): containers of the
//! node's own, apart from every service. They run through the same runtime driver as the
//! agent's tasks (behind the network layer, so they get their networks the same way), with
//! their 64-hex container ID as task ID, which the agent never takes for a stray of its own
//! (`shoal_runtime::is_standalone`); no manager knows them, so a service never adopts one and
//! `service ps` never shows one.
//!
//! The runtime keeps each one's process, filesystem and log; [`record`] keeps what only the
//! engine knows on the node's disk. A supervisor per started container waits for its exit and
//! applies its restart policy ([`policy`], pure), or removes it when it was made with `--rm`.
//! A container's filesystem is made with the runtime when it is first needed (its first start,
//! attach or copy), so that networks connected between `create` and `start`, as compose does,
//! are wired once.
//!
//! The daemon does not stop standalone containers when it stops: their processes outlive it
//! (as with Docker's `live-restore`), and the next daemon supervises them again, and starts
//! the exited ones their policy says to start at a daemon's start.
//!
//! Concurrency: the table is one std mutex, never held across an await; operations that call
//! the runtime for one container (prepare, start, remove) hold that container's async lock, so
//! a `start` and an `rm` of the same container never interleave.

pub mod names;
pub mod policy;
pub mod record;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_control::engine::{
    ContainerCreate, ContainerInfo, ContainerState, ContainerStatus, EndpointRequest, EngineError,
    StandaloneInfo, WaitCondition,
};
use shoal_runtime::{RuntimeDriver, RuntimeError, RuntimeTask, RuntimeTaskState, TaskRun};
use shoal_types::id::IdGen;
use shoal_types::local_net::{LocalNetwork, LocalNetworkSpec};
use shoal_types::{Clock, Id, Timestamp};
use tokio::sync::watch;

use crate::from_runtime;
use record::{Record, Records};

/// What the node's network layer does for standalone containers: its local networks, and
/// each container's networks and ports.
#[async_trait::async_trait]
pub trait LocalNets: Send + Sync {
    /// Fills `run`'s networks and published ports from what the container `name` asked for;
    /// refuses a network the node does not have. `check_only`: at create, to refuse early,
    /// reserving nothing.
    async fn plan(
        &self,
        name: &str,
        create: &ContainerCreate,
        run: &mut TaskRun,
        check_only: bool,
    ) -> Result<(), EngineError>;

    /// Gives back what [`LocalNets::plan`] reserved outside the node for the task (its
    /// addresses on the swarm's overlays), once the container is removed.
    async fn release(&self, task: &Id) -> Result<(), EngineError>;

    /// The networks the container's task is on now, as inspect shows them.
    fn endpoints(&self, task: &Id) -> Vec<shoal_control::engine::ContainerNetwork>;

    /// The ports published for the task now, with the node's picks.
    fn published(&self, task: &Id) -> Vec<shoal_types::local_net::PortBinding>;

    /// The node's local networks.
    fn networks(&self) -> Vec<LocalNetwork>;

    async fn create_network(&self, spec: LocalNetworkSpec) -> Result<LocalNetwork, EngineError>;

    async fn remove_network(&self, key: &str) -> Result<(), EngineError>;

    /// Joins a running container's task to a local network.
    async fn connect(
        &self,
        task: &Id,
        name: &str,
        endpoint: &EndpointRequest,
    ) -> Result<(), EngineError>;

    /// Takes a running container's task off a local network.
    async fn disconnect(&self, task: &Id, network: &str) -> Result<(), EngineError>;
}

/// A node without a network layer: standalone containers run on the runtime's default
/// network, and there are no local networks.
pub struct NoNets;

#[async_trait::async_trait]
impl LocalNets for NoNets {
    async fn plan(
        &self,
        _name: &str,
        create: &ContainerCreate,
        _run: &mut TaskRun,
        _check_only: bool,
    ) -> Result<(), EngineError> {
        if !create.publish.is_empty() || create.publish_all || !create.endpoints.is_empty() {
            return Err(EngineError::Unsupported(
                "networks and published ports need the node's network layer".into(),
            ));
        }
        Ok(())
    }

    async fn release(&self, _task: &Id) -> Result<(), EngineError> {
        Ok(())
    }

    fn endpoints(&self, _task: &Id) -> Vec<shoal_control::engine::ContainerNetwork> {
        Vec::new()
    }

    fn published(&self, _task: &Id) -> Vec<shoal_types::local_net::PortBinding> {
        Vec::new()
    }

    fn networks(&self) -> Vec<LocalNetwork> {
        Vec::new()
    }

    async fn create_network(&self, _spec: LocalNetworkSpec) -> Result<LocalNetwork, EngineError> {
        Err(EngineError::Unsupported(
            "this node has no network layer for local networks".into(),
        ))
    }

    async fn remove_network(&self, key: &str) -> Result<(), EngineError> {
        Err(EngineError::NoSuchNetwork(key.to_string()))
    }

    async fn connect(
        &self,
        _task: &Id,
        _name: &str,
        endpoint: &EndpointRequest,
    ) -> Result<(), EngineError> {
        Err(EngineError::NoSuchNetwork(endpoint.network.clone()))
    }

    async fn disconnect(&self, _task: &Id, network: &str) -> Result<(), EngineError> {
        Err(EngineError::NoSuchNetwork(network.to_string()))
    }
}

/// How a container's runs have gone, for `wait`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phase {
    /// Exits seen since the daemon started.
    pub exits: u64,
    pub last_code: i64,
    pub removed: bool,
}

struct Entry {
    rec: Record,
    phase: watch::Sender<Phase>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
    /// Exited, and its policy starts it again after a delay.
    restarting: bool,
    /// When its current (or last) run started, for the back-off.
    last_start: Timestamp,
    /// Serialises the runtime calls of this container's operations.
    busy: Arc<tokio::sync::Mutex<()>>,
    /// The last attach's handle, for resizing the container's terminal.
    attached: Option<Arc<dyn shoal_runtime::ExecHandle>>,
}

pub struct Standalone {
    records: Records,
    runner: Arc<dyn RuntimeDriver>,
    nets: Arc<dyn LocalNets>,
    clock: Arc<dyn Clock>,
    ids: Arc<Mutex<IdGen>>,
    entries: Mutex<BTreeMap<String, Entry>>,
}

fn rec_err(e: record::RecordError) -> EngineError {
    EngineError::Internal(shoal_types::error::chain(&e))
}

impl Standalone {
    /// Standalone containers kept in `dir`, run by `runner` (the node's driver behind its
    /// network layer).
    pub fn new(
        dir: std::path::PathBuf,
        runner: Arc<dyn RuntimeDriver>,
        nets: Arc<dyn LocalNets>,
        clock: Arc<dyn Clock>,
        ids: Arc<Mutex<IdGen>>,
    ) -> Self {
        Standalone {
            records: Records::new(dir),
            runner,
            nets,
            clock,
            ids,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, rec: Record) {
        let busy = Arc::new(tokio::sync::Mutex::new(()));
        self.table().insert(
            rec.id.clone(),
            Entry {
                rec,
                phase: watch::channel(Phase::default()).0,
                supervisor: None,
                restarting: false,
                last_start: Timestamp::ZERO,
                busy,
                attached: None,
            },
        );
    }

    /// Loads the records and takes up what the runtime still holds: running containers are
    /// supervised again, exited ones started when their policy says so at a daemon's start,
    /// `--rm` ones that exited meanwhile removed.
    pub async fn resume(self: &Arc<Self>) {
        let (recs, bad) = self.records.load();
        for e in bad {
            tracing::warn!(error = %e, "engine: skipping a standalone container record");
        }
        let held: BTreeMap<Id, RuntimeTask> = match self.runner.list().await {
            Ok(l) => l.into_iter().map(|t| (t.task_id.clone(), t)).collect(),
            Err(e) => {
                tracing::warn!(error = %shoal_types::error::Chain(&e), "engine: listing the runtime failed; standalone containers are not supervised until they are started again");
                BTreeMap::new()
            }
        };
        for mut rec in recs {
            let id = rec.id.clone();
            let state = held.get(&Id::from_raw(&id)).map(|t| t.state.clone());
            if rec.prepared && state.is_none() {
                // The runtime lost it (its disk was wiped): it is made again at its next start.
                rec.prepared = false;
            }
            let (policy, auto_remove) = (rec.create.restart, rec.create.auto_remove);
            let exit = policy::Exit {
                code: match &state {
                    Some(RuntimeTaskState::Exited(e)) => e.code,
                    _ => 0,
                },
                ran_for: Duration::ZERO,
                manually_stopped: rec.manually_stopped,
                restart_count: rec.restart_count,
                previous_delay: None,
            };
            self.insert(rec);
            match state {
                Some(RuntimeTaskState::Running { .. }) => {
                    self.set_last_start(&id);
                    self.supervise(&id);
                }
                Some(RuntimeTaskState::Exited(_)) if auto_remove => {
                    if let Err(e) = self.remove_now(&id).await {
                        tracing::warn!(container = %id, error = %e, "engine: removing an exited --rm container failed");
                    }
                }
                Some(RuntimeTaskState::Exited(_)) if policy::at_daemon_start(policy, exit) => {
                    if let Err(e) = self.start(&id).await {
                        tracing::warn!(container = %id, error = %e, "engine: starting a container by its restart policy failed");
                    }
                }
                _ => {}
            }
        }
    }

    /// Every standalone container, as the engine shows it.
    pub fn infos(&self, held: &BTreeMap<&Id, &RuntimeTask>, runtime: &str) -> Vec<ContainerInfo> {
        let g = self.table();
        g.values()
            .map(|e| {
                let task = Id::from_raw(&e.rec.id);
                let state = if e.rec.prepared {
                    held.get(&task).map(|t| (&t.state, t.started_at))
                } else {
                    None
                };
                info(e, state, runtime, self.nets.as_ref())
            })
            .collect()
    }

    /// Makes a container record (not yet with the runtime); `taken` are the names in use.
    pub async fn create(
        &self,
        name: Option<&str>,
        create: ContainerCreate,
        taken: &[String],
    ) -> Result<(String, Vec<String>), EngineError> {
        if create.spec.image.is_empty() {
            return Err(EngineError::invalid("Image", "no image given"));
        }
        if !shoal_runtime::is_host_image(&create.spec.image) {
            match self.runner.inspect_image(&create.spec.image).await {
                Ok(_) => {}
                Err(RuntimeError::NotFound(_)) | Err(RuntimeError::ImageNotFound(_)) => {
                    return Err(EngineError::NoSuchImage(create.spec.image.clone()));
                }
                Err(e) => return Err(from_runtime(&create.spec.image, e)),
            }
        }
        // Checked now rather than at the first start, as Docker checks at create.
        let mut probe = task_run_for(&"0".repeat(64), "probe", &create);
        self.nets
            .plan(name.unwrap_or("probe"), &create, &mut probe, true)
            .await?;
        let id = {
            let mut bytes = [0u8; 32];
            self.ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .fill(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = names::valid(n)?;
                self.check_free(&n, taken)?;
                n
            }
            None => self.generated_name(taken),
        };
        let rec = Record {
            version: record::VERSION,
            id: id.clone(),
            name,
            created: self.clock.now(),
            create,
            restart_count: 0,
            manually_stopped: false,
            prepared: false,
        };
        self.records.save(&rec).map_err(rec_err)?;
        self.insert(rec);
        Ok((id, Vec::new()))
    }

    fn check_free(&self, name: &str, taken: &[String]) -> Result<(), EngineError> {
        let g = self.table();
        let holder = g
            .values()
            .find(|e| e.rec.name == name)
            .map(|e| e.rec.id.clone())
            .or_else(|| taken.iter().any(|t| t == name).then(String::new));
        match holder {
            Some(id) => Err(EngineError::Conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
            ))),
            None => Ok(()),
        }
    }

    fn generated_name(&self, taken: &[String]) -> String {
        let (a, b) = {
            let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
            (ids.next_u64(), ids.next_u64())
        };
        let g = self.table();
        (0..)
            .map(|n| names::generated(a, b, n))
            .find(|n| !taken.contains(n) && !g.values().any(|e| &e.rec.name == n))
            .unwrap_or_default()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.table().contains_key(id)
    }

    fn busy(&self, id: &str) -> Result<Arc<tokio::sync::Mutex<()>>, EngineError> {
        self.table()
            .get(id)
            .map(|e| e.busy.clone())
            .ok_or_else(|| EngineError::NoSuchContainer(id.to_string()))
    }

    fn record(&self, id: &str) -> Result<Record, EngineError> {
        self.table()
            .get(id)
            .map(|e| e.rec.clone())
            .ok_or_else(|| EngineError::NoSuchContainer(id.to_string()))
    }

    /// Changes and saves a container's record.
    fn update(&self, id: &str, f: impl FnOnce(&mut Record)) -> Result<(), EngineError> {
        let rec = {
            let mut g = self.table();
            let e = g
                .get_mut(id)
                .ok_or_else(|| EngineError::NoSuchContainer(id.to_string()))?;
            f(&mut e.rec);
            e.rec.clone()
        };
        self.records.save(&rec).map_err(rec_err)
    }

    fn set_last_start(&self, id: &str) {
        let now = self.clock.now();
        if let Some(e) = self.table().get_mut(id) {
            e.last_start = now;
            e.restarting = false;
        }
    }

    /// Makes the container with the runtime if it is not yet. Call with its `busy` lock held.
    async fn ensure_prepared(&self, id: &str) -> Result<(), EngineError> {
        let rec = self.record(id)?;
        if rec.prepared {
            return Ok(());
        }
        let mut run = task_run_for(&rec.id, &rec.name, &rec.create);
        self.nets
            .plan(&rec.name, &rec.create, &mut run, false)
            .await?;
        self.runner
            .prepare(&run)
            .await
            .map_err(|e| from_runtime(&rec.name, e))?;
        self.update(id, |r| r.prepared = true)
    }

    /// Makes it with the runtime (if it is not yet) and returns its task, for what needs its
    /// filesystem or process before it starts (attach, copy).
    pub async fn prepared(&self, id: &str) -> Result<Id, EngineError> {
        let busy = self.busy(id)?;
        let _g = busy.lock().await;
        self.ensure_prepared(id).await?;
        Ok(Id::from_raw(id))
    }

    /// Starts it (first start, or again after it exited); `false` when it was running.
    pub async fn start(self: &Arc<Self>, id: &str) -> Result<bool, EngineError> {
        let busy = self.busy(id)?;
        let _g = busy.lock().await;
        self.ensure_prepared(id).await?;
        let task = Id::from_raw(id);
        let running = self
            .runner
            .list()
            .await
            .map_err(|e| from_runtime(id, e))?
            .iter()
            .any(|t| t.task_id == task && matches!(t.state, RuntimeTaskState::Running { .. }));
        if running {
            return Ok(false);
        }
        // A start by the user resets its policy's count, as Docker's does.
        self.update(id, |r| {
            r.manually_stopped = false;
            r.restart_count = 0;
        })?;
        self.stop_supervisor(id);
        self.runner
            .start(&task)
            .await
            .map_err(|e| from_runtime(id, e))?;
        self.set_last_start(id);
        self.supervise(id);
        Ok(true)
    }

    fn stop_supervisor(&self, id: &str) {
        if let Some(h) = self.table().get_mut(id).and_then(|e| e.supervisor.take()) {
            h.abort();
        }
    }

    /// Watches its runs from now on: each exit is told to waiters, and its policy decides
    /// what follows.
    fn supervise(self: &Arc<Self>, id: &str) {
        let me = self.clone();
        let owned = id.to_string();
        let h = tokio::spawn(async move { me.supervision(owned).await });
        if let Some(e) = self.table().get_mut(id) {
            if let Some(old) = e.supervisor.replace(h) {
                old.abort();
            }
        } else {
            h.abort();
        }
    }

    async fn supervision(self: Arc<Self>, id: String) {
        let task = Id::from_raw(&id);
        let mut previous_delay = None;
        loop {
            let exit = match self.runner.wait(&task).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(container = %id, error = %shoal_types::error::Chain(&e), "engine: waiting for a standalone container failed; it is not supervised until started again");
                    return;
                }
            };
            let (delay, auto_remove) = {
                let mut g = self.table();
                let Some(e) = g.get_mut(&id) else { return };
                e.phase.send_modify(|p| {
                    p.exits += 1;
                    p.last_code = exit.code;
                });
                let d = policy::after_exit(
                    e.rec.create.restart,
                    policy::Exit {
                        code: exit.code,
                        ran_for: exit.finished_at.since(e.last_start),
                        manually_stopped: e.rec.manually_stopped,
                        restart_count: e.rec.restart_count,
                        previous_delay,
                    },
                );
                e.restarting = d.is_some();
                (d, e.rec.create.auto_remove)
            };
            let Some(delay) = delay else {
                if auto_remove && let Err(e) = self.remove_now(&id).await {
                    tracing::warn!(container = %id, error = %e, "engine: removing an exited --rm container failed");
                }
                return;
            };
            tokio::time::sleep(delay).await;
            let go = self
                .table()
                .get(&id)
                .is_some_and(|e| e.restarting && !e.rec.manually_stopped);
            if !go {
                return;
            }
            if let Err(e) = self.runner.start(&task).await {
                tracing::warn!(container = %id, error = %shoal_types::error::Chain(&e), "engine: restarting a standalone container by its policy failed");
                if let Some(e) = self.table().get_mut(&id) {
                    e.restarting = false;
                }
                return;
            }
            self.set_last_start(&id);
            if let Err(e) = self.update(&id, |r| r.restart_count += 1) {
                tracing::warn!(container = %id, error = %e, "engine: saving a container's restart count failed");
            }
            previous_delay = Some(delay);
        }
    }

    /// Stops it by the user's hand: its policy does not start it again.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<(), EngineError> {
        self.update(id, |r| r.manually_stopped = true)?;
        if let Some(e) = self.table().get_mut(id) {
            e.restarting = false;
        }
        if !self.record(id)?.prepared {
            return Ok(());
        }
        self.runner
            .stop(&Id::from_raw(id), grace)
            .await
            .map_err(|e| from_runtime(id, e))
    }

    /// Marks a kill that ends the container for good (SIGKILL or its stop signal), as Docker
    /// does, so its policy leaves it exited.
    pub fn killed_for_good(&self, id: &str) -> Result<(), EngineError> {
        self.update(id, |r| r.manually_stopped = true)
    }

    pub async fn remove(&self, id: &str) -> Result<(), EngineError> {
        self.stop_supervisor(id);
        self.remove_now(id).await
    }

    /// Removes it from the runtime and the disk and tells its waiters.
    async fn remove_now(&self, id: &str) -> Result<(), EngineError> {
        let busy = self.busy(id)?;
        let _g = busy.lock().await;
        let rec = self.record(id)?;
        if rec.prepared {
            match self.runner.remove(&Id::from_raw(id)).await {
                Ok(()) | Err(RuntimeError::NotFound(_)) => {}
                Err(e) => return Err(from_runtime(id, e)),
            }
        }
        if let Err(e) = self.nets.release(&Id::from_raw(id)).await {
            tracing::warn!(container = %id, error = %e, "engine: releasing a removed container's network addresses failed");
        }
        self.records.delete(id).map_err(rec_err)?;
        if let Some(e) = self.table().remove(id) {
            e.phase.send_modify(|p| p.removed = true);
        }
        Ok(())
    }

    pub fn rename(&self, id: &str, name: &str, taken: &[String]) -> Result<String, EngineError> {
        let name = names::valid(name)?;
        let old = self.record(id)?.name;
        if old == name {
            return Ok(old);
        }
        self.check_free(&name, taken)?;
        self.update(id, |r| r.name = name)?;
        Ok(old)
    }

    /// Joins it to a network: a container made with the runtime is joined at once, one not
    /// yet made joins when it is.
    pub async fn connect(&self, id: &str, endpoint: EndpointRequest) -> Result<(), EngineError> {
        let busy = self.busy(id)?;
        let _g = busy.lock().await;
        let rec = self.record(id)?;
        if rec
            .create
            .endpoints
            .iter()
            .any(|e| e.network == endpoint.network)
            && rec.prepared
        {
            return Err(EngineError::Conflict(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, endpoint.network
            )));
        }
        if rec.prepared {
            self.nets
                .connect(&Id::from_raw(id), &rec.name, &endpoint)
                .await?;
        }
        self.update(id, |r| {
            match r
                .create
                .endpoints
                .iter_mut()
                .find(|e| e.network == endpoint.network)
            {
                Some(e) => e.aliases = endpoint.aliases,
                None => r.create.endpoints.push(endpoint),
            }
            if matches!(r.create.network_mode.as_str(), "" | "default") {
                // Joined to a network of its own choosing, it leaves the default one, as a
                // compose container created on `default` and connected to its network does.
                r.create.network_mode = r.create.endpoints[0].network.clone();
            }
        })
    }

    /// Takes it off a network.
    pub async fn disconnect(&self, id: &str, network: &str) -> Result<(), EngineError> {
        let busy = self.busy(id)?;
        let _g = busy.lock().await;
        let rec = self.record(id)?;
        if rec.prepared {
            self.nets.disconnect(&Id::from_raw(id), network).await?;
        }
        self.update(id, |r| {
            r.create.endpoints.retain(|e| e.network != network);
            if r.create.network_mode == network {
                r.create.network_mode = r
                    .create
                    .endpoints
                    .first()
                    .map_or_else(String::new, |e| e.network.clone());
            }
        })
    }

    /// The node's local networks, through its network layer.
    pub fn nets(&self) -> &Arc<dyn LocalNets> {
        &self.nets
    }

    /// The exit code once `condition` holds; `running` is whether it runs now.
    pub async fn wait(
        &self,
        id: &str,
        condition: WaitCondition,
        running: bool,
    ) -> Result<i64, EngineError> {
        let mut rx = self
            .table()
            .get(id)
            .map(|e| e.phase.subscribe())
            .ok_or_else(|| EngineError::NoSuchContainer(id.to_string()))?;
        let at = *rx.borrow_and_update();
        if condition == WaitCondition::NotRunning && !running {
            return Ok(at.last_code);
        }
        let done = |p: &Phase| match condition {
            WaitCondition::Removed => p.removed,
            _ => p.removed || p.exits > at.exits,
        };
        match rx.wait_for(done).await {
            Ok(p) => Ok(p.last_code),
            // The entry went without saying so: it was removed.
            Err(_) => Ok(at.last_code),
        }
    }

    pub fn set_attached(&self, id: &str, h: Arc<dyn shoal_runtime::ExecHandle>) {
        if let Some(e) = self.table().get_mut(id) {
            e.attached = Some(h);
        }
    }

    pub async fn resize(&self, id: &str, rows: u16, cols: u16) -> Result<(), EngineError> {
        let h = self
            .table()
            .get(id)
            .ok_or_else(|| EngineError::NoSuchContainer(id.to_string()))?
            .attached
            .clone();
        match h {
            Some(h) => h.resize(rows, cols).await.map_err(|e| from_runtime(id, e)),
            // Nothing attached: there is no terminal to size yet; Docker accepts this too.
            None => Ok(()),
        }
    }

    /// Aborts the supervisors (the daemon is stopping; the containers keep running).
    pub fn shutdown(&self) {
        for e in self.table().values_mut() {
            if let Some(h) = e.supervisor.take() {
                h.abort();
            }
        }
    }
}

/// The runtime's task for a standalone container (networks are filled in by [`LocalNets`]).
pub fn task_run_for(id: &str, name: &str, create: &ContainerCreate) -> TaskRun {
    let mut container = create.spec.clone();
    let short = id.get(..12).unwrap_or(id);
    if container.hostname.is_empty() {
        container.hostname = short.to_string();
    }
    TaskRun {
        task_id: Id::from_raw(id),
        // The Docker runtime names its container after this: the name and the short ID, so
        // it never takes a name from the engine's own containers.
        task_name: format!("{name}.{short}"),
        service_id: Id::default(),
        service_name: String::new(),
        node_id: Id::default(),
        slot: 0,
        hostname: container.hostname.clone(),
        container,
        resources: create.resources.clone(),
        networks: Vec::new(),
        netns: None,
        files: Vec::new(),
        local_networks: Vec::new(),
        publish: Vec::new(),
    }
}

fn info(
    e: &Entry,
    held: Option<(&RuntimeTaskState, Timestamp)>,
    runtime: &str,
    nets: &dyn LocalNets,
) -> ContainerInfo {
    let r = &e.rec;
    let task = Id::from_raw(&r.id);
    let zero = |status| ContainerState {
        status,
        pid: 0,
        exit_code: 0,
        oom_killed: false,
        started_at: Timestamp::ZERO,
        finished_at: Timestamp::ZERO,
        error: String::new(),
        health: None,
    };
    let state = match held {
        None | Some((RuntimeTaskState::Created, _)) => zero(ContainerStatus::Created),
        Some((RuntimeTaskState::Running { pid }, started)) => ContainerState {
            pid: *pid,
            started_at: started,
            ..zero(ContainerStatus::Running)
        },
        Some((RuntimeTaskState::Exited(x), started)) => ContainerState {
            exit_code: x.code,
            oom_killed: x.oom_killed,
            started_at: started,
            finished_at: x.finished_at,
            ..zero(if e.restarting {
                ContainerStatus::Restarting
            } else {
                ContainerStatus::Exited
            })
        },
    };
    let mut spec = r.create.spec.clone();
    if spec.hostname.is_empty() {
        spec.hostname = r.id.get(..12).unwrap_or(&r.id).to_string();
    }
    ContainerInfo {
        id: r.id.clone(),
        name: r.name.clone(),
        task_id: Some(task.clone()),
        created: r.created,
        labels: spec.labels.clone(),
        hostname: spec.hostname.clone(),
        spec,
        state,
        networks: nets.endpoints(&task),
        runtime: runtime.to_string(),
        standalone: Some(StandaloneInfo {
            create: r.create.clone(),
            restart_count: r.restart_count,
            restarting: e.restarting,
            published: nets.published(&task),
        }),
    }
}

#[cfg(test)]
mod tests;
