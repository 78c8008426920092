//! One run: builds the cluster, plays the seed's plan step by step (client requests, faults,
//! task behaviour), checks every invariant after every step, then heals everything and requires
//! convergence within a bound, and that it lasts.
//!
//! Everything runs on one current-thread tokio runtime with paused time: a step is a sleep of
//! `Config::step` virtual time, during which every manager, dispatcher and agent runs until all
//! of them wait on a timer again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shoal_agent::{Agent, AgentConfig};
use shoal_manager::{Control, Manager};
use shoal_node::remote::RemoteDispatcher;
use shoal_node::routes::Shared;
use shoal_node::transport::RpcRaft;
use shoal_runtime::fake::FakeDriver;
use shoal_runtime::{RuntimeDriver, RuntimeTaskState};
use shoal_store::network::Network;
use shoal_store::storage::MemoryDisk;
use shoal_store::{RaftTiming, Store};
use shoal_types::cluster::ClusterSpec;
use shoal_types::node::{Availability, EngineDescription, Platform};
use shoal_types::service::{ServiceMode, UpdateState};
use shoal_types::{Clock, Id, IdGen, NodeDescription};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::SimClock;
use crate::invariants::{self, Acked, Invariant, ManagerObs, NodeObs, Observation};
use crate::net::{Live, Net, SimTransport, node_addr};
use crate::plan::{Action, NODE_CAPACITY, PROBE_LABEL, Plan, Planned, Target};
use crate::{Config, Report, Violation, digest};
use shoal_node::join;

/// How long a client waits for an answer before giving up (the write may still happen).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

struct SimNode {
    id: Id,
    /// A manager's Raft member ID, as its join gave it.
    raft_id: u64,
    /// Who the node's certificate says it is, once it has one.
    identity: Option<shoal_pki::Identity>,
    /// Where the current agent's session is open.
    session: Arc<Mutex<Live>>,
    disk: Option<MemoryDisk>,
    manager: Option<Manager>,
    driver: Arc<FakeDriver>,
    agent: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    /// A crashed node's agent and manager finishing their shutdown; awaited before a restart.
    dying: Vec<JoinHandle<()>>,
    up: bool,
    /// When a fault last touched the node (or the leader changed), in simulated time.
    disturbed_at: Duration,
    incarnation: u64,
}

enum Undo {
    Restart(usize),
    Uncut(usize, usize),
    Unslow(usize),
}

pub(crate) struct Sim {
    seed: u64,
    cfg: Config,
    plan: Plan,
    behaviour: StdRng,
    net: Arc<Net>,
    clock: Arc<SimClock>,
    nodes: Vec<SimNode>,
    acked: Arc<Mutex<Vec<Acked>>>,
    next_seq: Vec<u64>,
    invariants: Vec<Box<dyn Invariant>>,
    undo: BTreeMap<u64, Vec<Undo>>,
    trace: Arc<Mutex<Vec<String>>>,
    operator_busy: Arc<AtomicBool>,
    writes_ok: Arc<AtomicU64>,
    writes_failed: Arc<AtomicU64>,
    leader: Option<usize>,
    report: Report,
    dir: tempfile::TempDir,
    /// The roots the swarm's certificates chain to: what a manager's `/ca` answers.
    trust: Vec<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn description(n: usize) -> NodeDescription {
    NodeDescription {
        hostname: format!("node{n}"),
        platform: Platform {
            os: "linux".into(),
            arch: "x86_64".into(),
        },
        resources: NODE_CAPACITY,
        engine: EngineDescription {
            version: "sim".into(),
            labels: Default::default(),
            runtimes: vec!["native".into()],
        },
        ..Default::default()
    }
}

impl Sim {
    pub fn new(seed: u64, cfg: &Config, plan: Plan) -> Result<Sim, String> {
        let behaviour = StdRng::seed_from_u64(plan.behaviour_seed);
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let n = cfg.managers + cfg.workers;
        let nodes = (0..n)
            .map(|i| SimNode {
                // Given by the managers when the node joins.
                id: Id::default(),
                raft_id: 0,
                identity: None,
                session: Arc::default(),
                disk: (i < cfg.managers).then(MemoryDisk::new),
                manager: None,
                driver: Arc::new(FakeDriver::new()),
                agent: None,
                dying: Vec::new(),
                up: true,
                disturbed_at: Duration::ZERO,
                incarnation: 0,
            })
            .collect();
        let report = Report {
            seed,
            plan_digest: plan.digest(),
            ..Default::default()
        };
        Ok(Sim {
            seed,
            cfg: cfg.clone(),
            next_seq: vec![0; plan.services.len()],
            plan,
            behaviour,
            net: Net::new(),
            clock: Arc::new(SimClock::new()),
            nodes,
            acked: Arc::new(Mutex::new(Vec::new())),
            invariants: invariants::all(),
            undo: BTreeMap::new(),
            trace: Arc::new(Mutex::new(Vec::new())),
            operator_busy: Arc::new(AtomicBool::new(false)),
            writes_ok: Arc::new(AtomicU64::new(0)),
            writes_failed: Arc::new(AtomicU64::new(0)),
            leader: None,
            report,
            dir,
            trust: Vec::new(),
        })
    }

    /// The run's trace, to read after [`Sim::run`] consumed the simulation.
    pub fn trace_handle(&self) -> Arc<Mutex<Vec<String>>> {
        self.trace.clone()
    }

    fn transport(&self, n: usize) -> SimTransport {
        SimTransport {
            net: self.net.clone(),
            from: n,
            identity: self.nodes[n].identity.clone(),
            live: self.nodes[n].session.clone(),
        }
    }

    fn trace(&self, line: String) {
        let t = self.clock.elapsed();
        lock(&self.trace).push(format!("[{:>8.3}s] {line}", t.as_secs_f64()));
    }

    fn violation(&self, step: u64, invariant: &str, detail: String) -> Violation {
        let trace = lock(&self.trace);
        // The whole story can be long; SHOAL_SIM_TRACE_LINES asks for more of it.
        let keep = std::env::var("SHOAL_SIM_TRACE_LINES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(40);
        let tail = trace.len().saturating_sub(keep);
        Violation {
            seed: self.seed,
            step,
            invariant: invariant.to_string(),
            detail,
            trace_tail: trace[tail..].to_vec(),
        }
    }

    fn timing(&self, m: usize, order: &[usize]) -> RaftTiming {
        // openraft draws each election timeout from its own thread RNG; a range one
        // millisecond wide makes the draw a constant, and the seed decides which manager times
        // out first.
        let min = Duration::from_millis(1000 + 200 * order[m] as u64);
        RaftTiming {
            heartbeat: Duration::from_millis(200),
            election_min: min,
            election_max: min + Duration::from_millis(1),
            snapshot_every: 0,
            keep_after_snapshot: 0,
        }
    }

    async fn open_store(&mut self, m: usize, order: &[usize]) -> Result<Store, String> {
        let disk = self.nodes[m]
            .disk
            .clone()
            .ok_or_else(|| format!("node {m} is not a manager"))?;
        let network = Network::new(Arc::new(RpcRaft {
            client: self.transport(m),
        }));
        let raft_id = self.nodes[m].raft_id;
        // Each member's own data key, fixed by its raft id: the simulation's disks are sealed
        // as real ones are, and a restarted member opens its own.
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&raft_id.to_be_bytes());
        let sealer = shoal_store::Sealer::new(&shoal_store::seal::SecretKey::from_bytes(key));
        let store = Store::open_in_memory(&disk, raft_id, self.timing(m, order), network, sealer)
            .await
            .map_err(|e| format!("m{m}: {e}"))?;
        self.net.register(m, store.clone(), None);
        Ok(store)
    }

    fn start_manager(&mut self, m: usize, store: Store) {
        let node = &mut self.nodes[m];
        node.incarnation += 1;
        let ids = IdGen::seeded(self.seed ^ ((m as u64 + 1) << 32) ^ node.incarnation);
        let clock: Arc<dyn Clock> = self.clock.clone();
        let manager = Manager::start(store.clone(), clock, ids);
        // The routes a real manager serves, with what a real node gives them.
        let shared = Shared {
            manager: std::sync::RwLock::new(Some(manager.clone())),
            agent: std::sync::RwLock::new(None),
            trust: watch::channel(self.trust.clone()).1,
        };
        node.manager = Some(manager);
        let router = shoal_node::routes::router(Arc::new(shared));
        self.net.register(m, store, Some(router));
    }

    fn start_agent(&mut self, n: usize) {
        let client = Arc::new(RemoteDispatcher::new(
            self.transport(n),
            self.nodes[n].id.clone(),
            node_addr(n),
            (0..self.cfg.managers).map(node_addr).collect(),
        ));
        let cfg = AgentConfig {
            state_dir: self.dir.path().join(format!("node{n}")),
            description: description(n),
            report_interval: Duration::from_millis(50),
        };
        let driver: Arc<dyn RuntimeDriver> = self.nodes[n].driver.clone();
        let agent = Agent::new(cfg, driver, client, self.clock.clone());
        let (stop, rx) = watch::channel(false);
        let trace = self.trace.clone();
        let join = tokio::spawn(async move {
            if let Err(e) = agent.run(rx, false).await {
                lock(&trace).push(format!("agent on node {n} stopped: {e}"));
            }
        });
        self.nodes[n].agent = Some((stop, join));
    }

    async fn bootstrap(&mut self) -> Result<(), String> {
        let mut order: Vec<usize> = (0..self.cfg.managers).collect();
        for i in (1..order.len()).rev() {
            let j = self.behaviour.random_range(0..=i);
            order.swap(i, j);
        }
        // `swarm init` on node 0, through the node's own founding code.
        let now = self.clock.now();
        let mut ids = IdGen::seeded(self.seed.wrapping_add(1));
        let spec = ClusterSpec {
            snapshot_interval: self.cfg.snapshot_interval,
            log_entries_for_slow_followers: 50,
            ..Default::default()
        };
        let founding = join::found(
            spec,
            Availability::Active,
            description(0),
            &node_addr(0),
            now,
            &mut ids,
        )
        .map_err(|e| format!("swarm init on node 0: {e}"))?;
        let tokens = founding.cluster.join_tokens.clone();
        self.trust = founding.creds.trust.clone();
        self.nodes[0].id = founding.node.id.clone();
        self.nodes[0].raft_id = founding.raft_id;
        self.nodes[0].identity = Some(
            founding
                .creds
                .identity()
                .map_err(|e| format!("node 0's certificate: {e}"))?,
        );
        let store = self.open_store(0, &order).await?;
        join::bootstrap_store(&store, &node_addr(0), founding.cluster, founding.node, now)
            .await
            .map_err(|e| format!("swarm init on node 0: {e}"))?;
        self.start_manager(0, store);
        // Every other node joins with the token for its role: managers first, so workers may
        // join through any of them.
        for n in 1..self.nodes.len() {
            let token = if n < self.cfg.managers {
                &tokens.manager
            } else {
                &tokens.worker
            };
            self.join(n, token, &order)
                .await
                .map_err(|e| format!("node {n} joining: {e}"))?;
        }
        for n in 0..self.nodes.len() {
            self.start_agent(n);
        }
        Ok(())
    }

    /// `swarm join` on node `n`, through the node's own joining code over the simulated
    /// network: the CA check against the token, a CSR for a certificate the managers issue,
    /// and for a manager its Raft member, started and given a seat by the leader.
    async fn join(&mut self, n: usize, token: &str, order: &[usize]) -> Result<String, String> {
        let parsed = shoal_pki::JoinToken::parse(token).map_err(|e| e.to_string())?;
        // No certificate yet: the calls go out anonymous, as a joining node's do.
        let anonymous = self.transport(n);
        let remotes: Vec<String> = (0..n.min(self.cfg.managers)).map(node_addr).collect();
        let (remote, _trust) = join::find_swarm(&anonymous, &remotes, &parsed)
            .await
            .map_err(|e| e.to_string())?;
        let (key_pem, csr_pem) = shoal_pki::new_key_and_csr().map_err(|e| e.to_string())?;
        let req = shoal_types::dispatch::JoinRequest {
            token: token.to_string(),
            csr_pem,
            advertise_addr: node_addr(n),
            availability: Availability::Active,
            description: description(n),
        };
        let resp = join::request_join(&anonymous, &remote, &req)
            .await
            .map_err(|e| e.to_string())?;
        let creds = shoal_pki::Credentials {
            key_pem,
            cert_pem: resp.cert_pem,
            intermediate_pem: resp.intermediate_pem,
            trust: resp.trust,
        };
        let node = &mut self.nodes[n];
        node.identity = Some(creds.identity().map_err(|e| e.to_string())?);
        node.id = resp.node_id;
        if let Some(raft_id) = resp.raft_id {
            node.raft_id = raft_id;
            let store = self.open_store(n, order).await?;
            self.start_manager(n, store);
            let managers = resp.managers;
            let seat = shoal_node::wire::RaftJoin {
                raft_id,
                addr: node_addr(n),
            };
            join::take_raft_seat(
                &self.transport(n),
                || managers.clone(),
                &seat,
                20,
                Duration::from_millis(500),
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        Ok(remote)
    }

    // -- faults -------------------------------------------------------------------------

    fn disturb(&mut self, n: usize) {
        self.nodes[n].disturbed_at = self.clock.elapsed();
    }

    fn current_leader(&self) -> Option<usize> {
        (0..self.cfg.managers)
            .filter(|&m| self.nodes[m].up)
            .filter_map(|m| self.nodes[m].manager.as_ref().map(|x| (m, x)))
            .filter(|(_, x)| x.store.is_leader())
            .max_by_key(|(_, x)| x.store.raft().metrics().borrow().current_term)
            .map(|(m, _)| m)
    }

    fn crash(&mut self, n: usize, reboot: bool) {
        if !self.nodes[n].up {
            return;
        }
        self.net.set_down(n, true);
        self.disturb(n);
        let node = &mut self.nodes[n];
        node.up = false;
        self.report.crashes += 1;
        if let Some((stop, join)) = node.agent.take() {
            // Without stopping its tasks: a crashed agent leaves its containers running.
            let _ = stop.send(true);
            node.dying.push(join);
        }
        if let Some(m) = node.manager.take() {
            node.dying.push(tokio::spawn(m.stop()));
        }
        if reboot {
            // The machine went down: its runtime, and every process in it, is gone.
            node.driver = Arc::new(FakeDriver::new());
        }
    }

    async fn restart(&mut self, n: usize) -> Result<(), String> {
        if self.nodes[n].up {
            return Ok(());
        }
        for h in std::mem::take(&mut self.nodes[n].dying) {
            let _ = h.await;
        }
        if n < self.cfg.managers {
            self.net.unregister(n);
            let order: Vec<usize> = (0..self.cfg.managers).collect();
            let store = self.open_store(n, &order).await?;
            self.start_manager(n, store);
        }
        self.nodes[n].up = true;
        self.net.set_down(n, false);
        self.disturb(n);
        self.start_agent(n);
        Ok(())
    }

    async fn apply(&mut self, step: u64, p: Planned) -> Result<(), String> {
        let Planned { action, via } = p;
        match action {
            Action::Crash {
                target,
                reboot,
                steps,
            } => {
                let n = match target {
                    Target::Node(n) => Some(n),
                    Target::Leader => self.current_leader(),
                };
                if let Some(n) = n.filter(|&n| self.nodes[n].up) {
                    self.trace(format!(
                        "step {step}: crash node {n}{} for {steps} steps",
                        if reboot { " (reboot)" } else { "" }
                    ));
                    self.crash(n, reboot);
                    self.undo
                        .entry(step + steps)
                        .or_default()
                        .push(Undo::Restart(n));
                }
            }
            Action::Cut { a, b, steps } => {
                self.trace(format!("step {step}: cut {a} <-> {b} for {steps} steps"));
                self.report.partitions += 1;
                self.net.cut(a, b);
                self.disturb(a);
                self.disturb(b);
                self.undo
                    .entry(step + steps)
                    .or_default()
                    .push(Undo::Uncut(a, b));
            }
            Action::Isolate { node, steps } => {
                self.trace(format!("step {step}: isolate {node} for {steps} steps"));
                self.report.partitions += 1;
                self.disturb(node);
                for other in 0..self.nodes.len() {
                    if other != node {
                        self.net.cut(node, other);
                        self.undo
                            .entry(step + steps)
                            .or_default()
                            .push(Undo::Uncut(node, other));
                    }
                }
            }
            Action::Slow { node, delay, steps } => {
                self.trace(format!(
                    "step {step}: slow {node} by {delay:?} for {steps} steps"
                ));
                self.net.set_slow(node, delay);
                self.disturb(node);
                self.undo
                    .entry(step + steps)
                    .or_default()
                    .push(Undo::Unslow(node));
            }
            Action::FailTask { pick } => {
                let mut running = Vec::new();
                for (i, n) in self.nodes.iter().enumerate() {
                    if let Ok(list) = n.driver.list().await {
                        for t in list {
                            if matches!(t.state, RuntimeTaskState::Running { .. }) {
                                running.push((i, t.task_id));
                            }
                        }
                    }
                }
                running.sort();
                if !running.is_empty() {
                    let (i, id) = &running[(pick % running.len() as u64) as usize];
                    self.trace(format!("step {step}: task {id} on node {i} exits 1"));
                    self.nodes[*i].driver.exit(id, 1);
                }
            }
            client => self.client(step, via, client),
        }
        Ok(())
    }

    async fn undo(&mut self, step: u64) -> Result<(), String> {
        for u in self.undo.remove(&step).unwrap_or_default() {
            match u {
                Undo::Restart(n) => {
                    self.trace(format!("step {step}: restart node {n}"));
                    self.restart(n).await?;
                }
                Undo::Uncut(a, b) => {
                    self.net.uncut(a, b);
                    self.disturb(a);
                    self.disturb(b);
                }
                Undo::Unslow(n) => {
                    self.net.set_slow(n, Duration::ZERO);
                    self.disturb(n);
                }
            }
        }
        Ok(())
    }

    async fn heal(&mut self) -> Result<(), String> {
        self.trace("heal: every partition and slow link ends, every node restarts".into());
        self.undo.clear();
        self.net.heal();
        for n in 0..self.nodes.len() {
            self.restart(n).await?;
            self.disturb(n);
        }
        Ok(())
    }

    // -- clients ------------------------------------------------------------------------

    fn control(&self, via: usize) -> Option<Control> {
        let n = self.nodes.get(via)?;
        if !n.up {
            return None;
        }
        n.manager.as_ref().map(|m| m.control.clone())
    }

    /// The highest term any manager has: see [`Acked::term`].
    fn max_term(net: &Net, managers: usize) -> u64 {
        (0..managers)
            .filter_map(|m| net.endpoint(m))
            .map(|e| e.store.raft().metrics().borrow().current_term)
            .max()
            .unwrap_or(0)
    }

    fn client(&mut self, step: u64, via: usize, action: Action) {
        let what = format!("step {step}: via m{via} {}", short(&action));
        let Some(control) = self.control(via) else {
            self.trace(format!("{what}: manager down"));
            self.writes_failed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let seq = if let Action::Probe { svc } = action {
            self.next_seq[svc] += 1;
            self.next_seq[svc]
        } else {
            0
        };
        let names: Vec<String> = self.plan.services.iter().map(|s| s.name.clone()).collect();
        let name_of = move |svc: usize| names.get(svc).cloned().unwrap_or_default();
        let node_ids: Vec<Id> = self.nodes.iter().map(|n| n.id.clone()).collect();
        let node_id = move |n: usize| node_ids.get(n).cloned().unwrap_or_default();
        let (trace, acked, net, managers) = (
            self.trace.clone(),
            self.acked.clone(),
            self.net.clone(),
            self.cfg.managers,
        );
        let clock = self.clock.clone();
        let call = async move {
            match action {
                Action::CreateService { spec, .. } => {
                    control.create_service(*spec).await.map(|s| s.meta.version)
                }
                Action::Scale { svc, replicas } => {
                    update(&control, &name_of(svc), |spec| {
                        if let ServiceMode::Replicated { replicas: r } = &mut spec.mode {
                            *r = replicas;
                        }
                    })
                    .await
                }
                Action::Update {
                    svc,
                    image_tag,
                    bad,
                } => {
                    update(&control, &name_of(svc), |spec| {
                        spec.task.container.image = image(image_tag, bad);
                    })
                    .await
                }
                Action::Probe { svc } => {
                    let name = name_of(svc);
                    let r = update(&control, &name, |spec| {
                        spec.labels.insert(PROBE_LABEL.into(), seq.to_string());
                    })
                    .await;
                    if let Ok(version) = r {
                        lock(&acked).push(Acked {
                            service: name,
                            seq,
                            version,
                            term: Self::max_term(&net, managers),
                        });
                    }
                    r
                }
                Action::Availability { node, availability } => {
                    let id = node_id(node);
                    set_availability(&control, &id, availability).await
                }
                _ => Ok(0),
            }
        };
        let (writes_ok, writes_failed) = (self.writes_ok.clone(), self.writes_failed.clone());
        tokio::spawn(async move {
            let r = tokio::time::timeout(CLIENT_TIMEOUT, call).await;
            let line = match r {
                Ok(Ok(v)) => {
                    writes_ok.fetch_add(1, Ordering::Relaxed);
                    format!("{what}: ok at version {v}")
                }
                Ok(Err(e)) => {
                    writes_failed.fetch_add(1, Ordering::Relaxed);
                    format!("{what}: {e}")
                }
                Err(_) => {
                    writes_failed.fetch_add(1, Ordering::Relaxed);
                    format!("{what}: timed out")
                }
            };
            let t = clock.elapsed();
            lock(&trace).push(format!("[{:>8.3}s] {line}", t.as_secs_f64()));
        });
    }

    /// After the heal, the operator puts every node's availability back to what the plan last
    /// asked for, since some of those writes may have failed. One request at a time.
    fn operator(&mut self) {
        if self.operator_busy.load(Ordering::Relaxed) {
            return;
        }
        let Some(l) = self.current_leader() else {
            return;
        };
        let Some(control) = self.control(l) else {
            return;
        };
        let view = control.view();
        let busy = self.operator_busy.clone();
        if let Some((id, want)) = self.nodes.iter().enumerate().find_map(|(i, n)| {
            let want = self.plan.availability[i];
            view.node(&n.id)
                .filter(|node| node.spec.availability != want)
                .map(|_| (n.id.clone(), want))
        }) {
            self.trace(format!("operator: node {id} back to {}", want.as_str()));
            busy.store(true, Ordering::Relaxed);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(CLIENT_TIMEOUT, set_availability(&control, &id, want))
                    .await;
                busy.store(false, Ordering::Relaxed);
            });
            return;
        }
        // A bad spec stays without a rollback only when no update ran into it: the service
        // had no live task to update then (no replicas, or all of them had failed), so its new
        // tasks were simply made from it. The operator deploys a good image. A bad update that
        // failed but did not roll back is left alone, and convergence reports it.
        let Some(name) = view
            .services()
            .find(|s| {
                s.spec.task.container.image.starts_with("missing")
                    && s.update_status
                        .as_ref()
                        .is_none_or(|u| u.state == UpdateState::Completed)
            })
            .map(|s| s.spec.name.clone())
        else {
            return;
        };
        self.trace(format!("operator: service {name} back to a good image"));
        busy.store(true, Ordering::Relaxed);
        tokio::spawn(async move {
            let fix = update(&control, &name, |spec| {
                spec.task.container.image = image(u64::MAX, false);
            });
            let _ = tokio::time::timeout(CLIENT_TIMEOUT, fix).await;
            busy.store(false, Ordering::Relaxed);
        });
    }

    // -- task behaviour -----------------------------------------------------------------

    /// Job tasks finish: each running one exits 0 with some chance per step.
    async fn behave(&mut self) {
        let Some(l) = self.current_leader() else {
            return;
        };
        let Some(view) = self.nodes[l].manager.as_ref().map(|m| m.store.view()) else {
            return;
        };
        for n in &self.nodes {
            let Ok(list) = n.driver.list().await else {
                continue;
            };
            for t in list {
                if !matches!(t.state, RuntimeTaskState::Running { .. }) {
                    continue;
                }
                let is_job = view
                    .task(&t.task_id)
                    .and_then(|t| view.service(&t.service_id))
                    .is_some_and(|s| s.spec.mode.is_job());
                if is_job && self.behaviour.random_bool(0.3) {
                    n.driver.exit(&t.task_id, 0);
                }
            }
        }
    }

    // -- observation --------------------------------------------------------------------

    async fn observe(&mut self) -> (Vec<ManagerObs>, Vec<NodeObs>) {
        let mut managers = Vec::new();
        for m in 0..self.cfg.managers {
            let node = &self.nodes[m];
            let Some(mgr) = node.manager.as_ref().filter(|_| node.up) else {
                continue;
            };
            let metrics = mgr.store.raft().metrics().borrow().clone();
            let state = mgr.store.view();
            managers.push(ManagerObs {
                idx: m,
                leader: mgr.store.is_leader(),
                term: metrics.current_term,
                last_log: metrics.last_log_index.unwrap_or(0),
                applied: state.version,
                state,
            });
        }
        let leader = managers
            .iter()
            .filter(|m| m.leader)
            .max_by_key(|m| m.term)
            .map(|m| m.idx);
        if leader != self.leader {
            self.trace(format!("leader is now {leader:?}"));
            self.report.leader_changes += 1;
            self.leader = leader;
            for n in 0..self.nodes.len() {
                self.disturb(n);
            }
        }
        let now = self.clock.elapsed();
        let mut nodes = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let running = match n.driver.list().await {
                Ok(list) => list
                    .into_iter()
                    .filter(|t| matches!(t.state, RuntimeTaskState::Running { .. }))
                    .map(|t| t.task_id)
                    .collect(),
                Err(_) => Vec::new(),
            };
            let connected = n.up && leader.is_some_and(|l| self.net.reachable(i, l));
            nodes.push(NodeObs {
                idx: i,
                id: n.id.clone(),
                up: n.up,
                capacity: NODE_CAPACITY,
                running,
                session: if n.up { lock(&n.session).at } else { None },
                settled_for: if connected {
                    now.saturating_sub(n.disturbed_at)
                } else {
                    Duration::ZERO
                },
            });
        }
        (managers, nodes)
    }

    /// Checks every invariant (and, with `converged`, the runtime-side ones); returns the
    /// observation's convergence verdict.
    async fn check(&mut self, step: u64, converged: bool) -> Result<Result<(), String>, Violation> {
        let (managers, nodes) = self.observe().await;
        let acked = lock(&self.acked).clone();
        let obs = Observation {
            step,
            elapsed: self.clock.elapsed(),
            managers,
            nodes,
            converged,
            acked: &acked,
        };
        for inv in &mut self.invariants {
            if let Err(detail) = inv.check(&obs) {
                let name = inv.name();
                return Err(self.violation(step, name, detail));
            }
        }
        self.report.running_at_end = obs.nodes.iter().map(|n| n.running.len() as u64).sum();
        for m in &obs.managers {
            self.report.tasks_seen = self.report.tasks_seen.max(m.state.task_count() as u64);
        }
        Ok(crate::converge::check(&obs, self.cfg.managers))
    }

    pub async fn run(mut self) -> Result<Report, Violation> {
        if let Err(e) = self.bootstrap().await {
            return Err(self.violation(0, "setup", e));
        }
        let steps = self.cfg.fault_steps as u64;
        let mut step = 0;
        while step < steps {
            let planned = std::mem::take(&mut self.plan.steps[step as usize]);
            for p in planned {
                if let Err(e) = self.apply(step, p).await {
                    return Err(self.violation(step, "setup", e));
                }
            }
            if let Err(e) = self.undo(step).await {
                return Err(self.violation(step, "setup", e));
            }
            self.behave().await;
            tokio::time::sleep(self.cfg.step).await;
            // Before the heal only the invariants count, not whether it has converged.
            let _ = self.check(step, false).await?;
            step += 1;
        }
        if let Err(e) = self.heal().await {
            return Err(self.violation(step, "setup", e));
        }
        let healed_at = self.clock.elapsed();
        let mut converged_at: Option<Duration> = None;
        loop {
            self.operator();
            self.behave().await;
            tokio::time::sleep(self.cfg.step).await;
            let verdict = self.check(step, converged_at.is_some()).await?;
            let now = self.clock.elapsed();
            match (converged_at, verdict) {
                (None, Ok(())) => {
                    self.trace(format!("step {step}: converged"));
                    converged_at = Some(now);
                    self.report.converged_after = now.saturating_sub(healed_at);
                }
                (None, Err(why)) if now.saturating_sub(healed_at) > self.cfg.converge_within => {
                    return Err(self.violation(
                        step,
                        "convergence after the faults stop",
                        format!(
                            "not converged {:?} after the heal: {why}",
                            self.cfg.converge_within
                        ),
                    ));
                }
                (None, Err(_)) => {}
                (Some(_), Err(why)) => {
                    return Err(self.violation(step, "stays converged", why));
                }
                (Some(at), Ok(())) if now.saturating_sub(at) >= self.cfg.stable_for => break,
                (Some(_), Ok(())) => {}
            }
            step += 1;
        }
        self.report.steps = step + 1;
        self.report.sim_time = self.clock.elapsed();
        self.report.probes_acked = lock(&self.acked).len() as u64;
        self.report.writes_ok = self.writes_ok.load(Ordering::Relaxed);
        self.report.writes_failed = self.writes_failed.load(Ordering::Relaxed);
        self.report.trace_digest = digest(&lock(&self.trace));
        self.shutdown().await;
        Ok(self.report)
    }

    async fn shutdown(&mut self) {
        for n in &mut self.nodes {
            if let Some((stop, join)) = n.agent.take() {
                let _ = stop.send(true);
                let _ = join.await;
            }
            if let Some(m) = n.manager.take() {
                m.stop().await;
            }
            for h in n.dying.drain(..) {
                let _ = h.await;
            }
        }
    }
}

fn short(a: &Action) -> String {
    match a {
        Action::CreateService { svc, spec } => format!("create svc{svc} {:?}", spec.mode),
        Action::Scale { svc, replicas } => format!("scale svc{svc} to {replicas}"),
        Action::Update {
            svc,
            image_tag,
            bad,
        } => format!("update svc{svc} to {}", image(*image_tag, *bad)),
        Action::Probe { svc } => format!("probe svc{svc}"),
        Action::Availability { node, availability } => {
            format!("node {node} {}", availability.as_str())
        }
        other => format!("{other:?}"),
    }
}

/// The fake runtime has every image but `missing`.
fn image(tag: u64, bad: bool) -> String {
    if bad {
        format!("missing:{tag}")
    } else {
        format!("app:{tag}")
    }
}

/// Reads the service from the manager the client talks to and writes a changed spec, based on
/// the version it read.
async fn update(
    control: &Control,
    name: &str,
    change: impl FnOnce(&mut shoal_types::ServiceSpec),
) -> Result<u64, shoal_manager::ControlError> {
    let cur = Control::find_service(&control.view(), name)?;
    let mut spec = cur.spec.clone();
    change(&mut spec);
    control
        .update_service(name, cur.meta.version, spec, false)
        .await
        .map(|s| s.meta.version)
}

async fn set_availability(
    control: &Control,
    id: &Id,
    availability: Availability,
) -> Result<u64, shoal_manager::ControlError> {
    let cur = Control::find_node(&control.view(), id.as_str())?;
    let mut spec = cur.spec.clone();
    spec.availability = availability;
    control
        .update_node(id.as_str(), cur.meta.version, spec)
        .await
        .map(|n| n.meta.version)
}
