//! The seed's plan: every client request and every fault of a run, decided up front from one RNG
//! so the plan itself is a pure function of (seed, config). What the cluster does with it is the
//! run's business; the plan never looks at the cluster.
//!
//! The plan keeps a model of what it asked for, to stay inside what convergence can require:
//! - at most one node is paused or drained at a time (the heal re-applies this model, since a
//!   client write may have failed), and services reserve at most half of what the remaining
//!   nodes hold, in pieces of at most a quarter node, so any placement order fits;
//! - fewer than half the managers are crashed at once, except that a leader kill may land on an
//!   already short group (that is the "no leader" case writes must survive);
//! - every crash, partition and slow link has a duration and is undone by the run;
//! - only services whose failed updates roll back get bad updates (an image no node has), and
//!   only services that reserve nothing get constraints, spread preferences or a per-node cap.
//!
//! Services differ in mode, reservations, update order (stop-first or start-first) and failure
//! action, so drains (gentle moves), rebalancing after a node returns, rolling updates and
//! rollbacks all run under the faults.

use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use shoal_types::node::{Availability, Resources};
use shoal_types::service::{
    ContainerSpec, FailureAction, ResourceRequirements, RestartPolicy, ServiceMode, ServiceSpec,
    SpreadPreference, TaskSpec, UpdateConfig, UpdateOrder,
};

use crate::Config;

/// What each simulated node reports: 4 CPUs, 8 GiB.
pub const NODE_CAPACITY: Resources = Resources {
    nano_cpus: 4_000_000_000,
    memory_bytes: 8 << 30,
};

/// The label the durable-write probes bump.
pub const PROBE_LABEL: &str = "sim.seq";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Node(usize),
    /// Whichever manager leads when the step runs.
    Leader,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    CreateService {
        svc: usize,
        spec: Box<ServiceSpec>,
    },
    Scale {
        svc: usize,
        replicas: u64,
    },
    /// A spec change that replaces every task (a rolling update). A bad one names an image no
    /// node has, so its tasks are rejected and the update rolls back.
    Update {
        svc: usize,
        image_tag: u64,
        bad: bool,
    },
    /// The durable-write probe: bumps the service's [`PROBE_LABEL`].
    Probe {
        svc: usize,
    },
    Availability {
        node: usize,
        availability: Availability,
    },
    Crash {
        target: Target,
        /// The node's runtime loses its tasks too (a machine reboot, not a daemon crash).
        reboot: bool,
        steps: u64,
    },
    /// The two nodes cannot talk (Raft between managers, sessions from either agent to the
    /// other's manager).
    Cut {
        a: usize,
        b: usize,
        steps: u64,
    },
    /// The node can talk to nobody.
    Isolate {
        node: usize,
        steps: u64,
    },
    Slow {
        node: usize,
        delay: Duration,
        steps: u64,
    },
    /// The `pick`-th running task (in node, then task ID order) exits with a non-zero code.
    FailTask {
        pick: u64,
    },
}

/// A client request goes to this manager (it forwards to the leader itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    pub action: Action,
    pub via: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServicePlan {
    pub name: String,
    pub mode: Mode,
    /// The most replicas a scale may ask for (this service's share of the capacity budget).
    pub max_replicas: u64,
    /// A failed update rolls back, so the plan may send it a bad one.
    pub rolls_back: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    Replicated,
    Global,
    Job,
}

/// Everything a run replays: stored as JSON for regression cases (see `crate::Case`), so what
/// a case exercises does not move when the generator changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<Vec<Planned>>,
    pub services: Vec<ServicePlan>,
    /// Each node's availability as the plan last asked for it: what the heal re-applies.
    pub availability: Vec<Availability>,
    /// Seeds the run's own draws (which job tasks finish when, the managers' election order).
    pub behaviour_seed: u64,
}

impl Plan {
    /// A line per action, for the plan's digest and for failure reports.
    pub fn describe(&self) -> Vec<String> {
        self.steps
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.iter()
                    .map(move |p| format!("step {i}: via m{} {:?}", p.via, p.action))
            })
            .collect()
    }

    /// A stable digest of [`describe`](Self::describe): equal plans, equal digests.
    pub fn digest(&self) -> u64 {
        crate::digest(&self.describe())
    }
}

impl Plan {
    /// Whether the plan fits the cluster `cfg` describes: every node, manager and service it
    /// names exists, and it has one entry per step. A stored plan may have been edited by hand.
    pub fn check(&self, cfg: &Config) -> Result<(), String> {
        let nodes = cfg.managers + cfg.workers;
        if self.steps.len() != cfg.fault_steps as usize {
            return Err(format!(
                "steps: {} planned, the config runs {}",
                self.steps.len(),
                cfg.fault_steps
            ));
        }
        if self.availability.len() != nodes {
            return Err(format!(
                "availability: {} nodes, the config has {nodes}",
                self.availability.len()
            ));
        }
        for (i, step) in self.steps.iter().enumerate() {
            for p in step {
                let bad = |why: String| format!("step {i}: {:?}: {why}", p.action);
                if p.via >= cfg.managers {
                    return Err(bad(format!(
                        "via m{}: there are {} managers",
                        p.via, cfg.managers
                    )));
                }
                let node = |n: usize| {
                    if n < nodes {
                        Ok(())
                    } else {
                        Err(bad(format!("node {n}: there are {nodes} nodes")))
                    }
                };
                let svc = |s: usize| {
                    if s < self.services.len() {
                        Ok(())
                    } else {
                        Err(bad(format!(
                            "svc{s}: the plan has {} services",
                            self.services.len()
                        )))
                    }
                };
                match &p.action {
                    Action::CreateService { svc: s, .. }
                    | Action::Scale { svc: s, .. }
                    | Action::Update { svc: s, .. }
                    | Action::Probe { svc: s } => svc(*s)?,
                    Action::Availability { node: n, .. }
                    | Action::Isolate { node: n, .. }
                    | Action::Slow { node: n, .. }
                    | Action::Crash {
                        target: Target::Node(n),
                        ..
                    } => node(*n)?,
                    Action::Cut { a, b, .. } => {
                        node(*a)?;
                        node(*b)?;
                    }
                    Action::Crash {
                        target: Target::Leader,
                        ..
                    }
                    | Action::FailTask { .. } => {}
                }
            }
        }
        Ok(())
    }
}

/// How a service rolls out changes, drawn at creation.
struct Rollout {
    order: UpdateOrder,
    rolls_back: bool,
}

fn service_spec(
    name: &str,
    mode: ServiceMode,
    res: Resources,
    image: &str,
    rollout: &Rollout,
) -> ServiceSpec {
    // Continue past failures, or roll back: a paused update waits for an operator, and the
    // simulation requires convergence without one.
    let update = UpdateConfig {
        parallelism: 2,
        delay: Duration::from_millis(500),
        failure_action: if rollout.rolls_back {
            FailureAction::Rollback
        } else {
            FailureAction::Continue
        },
        monitor: Some(Duration::from_secs(2)),
        order: rollout.order,
        ..Default::default()
    };
    ServiceSpec {
        name: name.to_string(),
        task: TaskSpec {
            container: ContainerSpec {
                image: image.to_string(),
                ..Default::default()
            },
            resources: ResourceRequirements {
                limits: Default::default(),
                reservations: res,
                ..Default::default()
            },
            restart: RestartPolicy {
                delay: Some(Duration::from_secs(1)),
                ..Default::default()
            },
            ..Default::default()
        },
        mode,
        rollback: Some(UpdateConfig {
            failure_action: FailureAction::Continue,
            ..update.clone()
        }),
        update: Some(update),
        ..Default::default()
    }
}

struct Model {
    /// Steps until which a node is crashed (0: up).
    crashed_until: Vec<u64>,
    unavailable: Option<usize>,
    budget_cpu: i64,
}

pub fn generate(rng: &mut StdRng, cfg: &Config) -> Plan {
    let nodes = cfg.managers + cfg.workers;
    let mut plan = Plan {
        steps: vec![Vec::new(); cfg.fault_steps as usize],
        services: Vec::new(),
        availability: vec![Availability::Active; nodes],
        behaviour_seed: 0,
    };
    let mut model = Model {
        crashed_until: vec![0; nodes],
        unavailable: None,
        // Half of what every node but one holds.
        budget_cpu: NODE_CAPACITY.nano_cpus * (nodes as i64 - 1) / 2,
    };
    for step in 0..cfg.fault_steps as u64 {
        let mut out = Vec::new();
        // The first few steps create the workload; faults start once it exists.
        let early = step < 6;
        let via = rng.random_range(0..cfg.managers);
        if (early || rng.random_bool(0.04)) && plan.services.len() < cfg.max_services {
            out.push(create(rng, &mut plan, &mut model, via, cfg.workers));
        }
        if !plan.services.is_empty() {
            let svc = rng.random_range(0..plan.services.len());
            let s = &plan.services[svc];
            if s.mode == Mode::Replicated && rng.random_bool(0.05) {
                let replicas = rng.random_range(0..=s.max_replicas);
                out.push(Planned {
                    action: Action::Scale { svc, replicas },
                    via,
                });
            }
            if s.mode != Mode::Job && rng.random_bool(0.04) {
                let bad = s.rolls_back && rng.random_bool(0.4);
                out.push(Planned {
                    action: Action::Update {
                        svc,
                        image_tag: step,
                        bad,
                    },
                    via,
                });
            }
            if rng.random_bool(0.15) {
                out.push(Planned {
                    action: Action::Probe { svc },
                    via,
                });
            }
        }
        if rng.random_bool(0.04) {
            out.extend(availability(rng, &mut plan, &mut model, via, nodes));
        }
        if cfg.faults && !early {
            out.extend(faults(rng, &mut model, cfg, step, via));
        }
        plan.steps[step as usize] = out;
    }
    // Drawn last, from the same RNG, so a seed's run is what it was before plans were stored.
    plan.behaviour_seed = rng.random();
    plan
}

fn create(
    rng: &mut StdRng,
    plan: &mut Plan,
    model: &mut Model,
    via: usize,
    workers: usize,
) -> Planned {
    let svc = plan.services.len();
    let name = format!("svc{svc}");
    let quarter = NODE_CAPACITY.nano_cpus / 4;
    let (mode, res, max_replicas, kind) = match rng.random_range(0..10) {
        0..=1 => (ServiceMode::Global, Resources::default(), 0, Mode::Global),
        2 => {
            let res = Resources {
                nano_cpus: quarter / 2,
                memory_bytes: NODE_CAPACITY.memory_bytes / 16,
            };
            model.budget_cpu -= res.nano_cpus * 2;
            (
                ServiceMode::ReplicatedJob {
                    max_concurrent: 2,
                    total_completions: rng.random_range(2..=5),
                },
                res,
                0,
                Mode::Job,
            )
        }
        _ => {
            // None, an eighth or a quarter of a node per replica.
            let cpu = [0, quarter / 2, quarter][rng.random_range(0..3)];
            let res = Resources {
                nano_cpus: cpu,
                memory_bytes: cpu * 2,
            };
            let cap = if cpu == 0 {
                6
            } else {
                (model.budget_cpu.max(0) / cpu).min(6) as u64
            };
            let max = cap.max(if cpu == 0 { 1 } else { 0 });
            model.budget_cpu -= cpu * max as i64;
            let replicas = rng.random_range(0..=max);
            (
                ServiceMode::Replicated { replicas },
                res,
                max,
                Mode::Replicated,
            )
        }
    };
    let image = if kind == Mode::Job { "job:1" } else { "app:0" };
    let rollout = Rollout {
        order: if rng.random_bool(0.3) {
            UpdateOrder::StartFirst
        } else {
            UpdateOrder::StopFirst
        },
        rolls_back: kind != Mode::Job && rng.random_bool(0.5),
    };
    let mut spec = service_spec(&name, mode, res, image, &rollout);
    if kind == Mode::Replicated && res == Resources::default() {
        // Constraints only where nothing is reserved, so the capacity budget still holds on
        // the nodes they leave.
        let placement = &mut spec.task.placement;
        match rng.random_range(0..6) {
            0 if workers > 0 => placement.constraints.push("node.role==worker".into()),
            1 => placement.constraints.push("node.hostname!=node0".into()),
            2 => placement.preferences.push(SpreadPreference {
                spread: "node.role".into(),
            }),
            3 => placement.max_replicas = 3,
            _ => {}
        }
    }
    plan.services.push(ServicePlan {
        name,
        mode: kind,
        max_replicas,
        rolls_back: rollout.rolls_back,
    });
    Planned {
        action: Action::CreateService {
            svc,
            spec: Box::new(spec),
        },
        via,
    }
}

fn availability(
    rng: &mut StdRng,
    plan: &mut Plan,
    model: &mut Model,
    via: usize,
    nodes: usize,
) -> Vec<Planned> {
    let mut out = Vec::new();
    // Bring the one unavailable node back first, so at most one is out at any time.
    if let Some(n) = model.unavailable.take() {
        plan.availability[n] = Availability::Active;
        out.push(Planned {
            action: Action::Availability {
                node: n,
                availability: Availability::Active,
            },
            via,
        });
        if rng.random_bool(0.5) {
            return out;
        }
    }
    let node = rng.random_range(0..nodes);
    let a = if rng.random_bool(0.7) {
        Availability::Drain
    } else {
        Availability::Pause
    };
    plan.availability[node] = a;
    model.unavailable = Some(node);
    out.push(Planned {
        action: Action::Availability {
            node,
            availability: a,
        },
        via,
    });
    out
}

fn faults(
    rng: &mut StdRng,
    model: &mut Model,
    cfg: &Config,
    step: u64,
    via: usize,
) -> Vec<Planned> {
    let nodes = cfg.managers + cfg.workers;
    let mut out = Vec::new();
    let p = cfg.fault_rate;
    let managers_down = (0..cfg.managers)
        .filter(|&m| model.crashed_until[m] > step)
        .count();
    let minority = (cfg.managers - 1) / 2;
    if rng.random_bool(p) {
        let node = rng.random_range(0..nodes);
        let is_manager = node < cfg.managers;
        if model.crashed_until[node] <= step && (!is_manager || managers_down < minority) {
            let steps = rng.random_range(4..30);
            model.crashed_until[node] = step + steps;
            out.push(Planned {
                action: Action::Crash {
                    target: Target::Node(node),
                    reboot: rng.random_bool(0.5),
                    steps,
                },
                via,
            });
        }
    }
    if rng.random_bool(p / 3.0) && managers_down < minority.max(1) {
        let steps = rng.random_range(4..20);
        // The plan cannot know which manager that is; count every manager as possibly down
        // for a moment by blocking further manager crashes until it is back.
        for m in 0..cfg.managers {
            model.crashed_until[m] = model.crashed_until[m].max(step + steps);
        }
        out.push(Planned {
            action: Action::Crash {
                target: Target::Leader,
                reboot: rng.random_bool(0.5),
                steps,
            },
            via,
        });
    }
    if rng.random_bool(p) {
        let a = rng.random_range(0..nodes);
        // Partitions that matter most involve a manager.
        let b = rng.random_range(0..cfg.managers);
        if a != b {
            out.push(Planned {
                action: Action::Cut {
                    a,
                    b,
                    steps: rng.random_range(4..40),
                },
                via,
            });
        }
    }
    if rng.random_bool(p / 2.0) {
        out.push(Planned {
            action: Action::Isolate {
                node: rng.random_range(0..nodes),
                steps: rng.random_range(4..30),
            },
            via,
        });
    }
    if rng.random_bool(p / 2.0) {
        out.push(Planned {
            action: Action::Slow {
                node: rng.random_range(0..nodes),
                delay: Duration::from_millis(rng.random_range(20..800)),
                steps: rng.random_range(4..40),
            },
            via,
        });
    }
    if rng.random_bool(p) {
        out.push(Planned {
            action: Action::FailTask {
                pick: rng.random_range(0..1000),
            },
            via,
        });
    }
    out
}
