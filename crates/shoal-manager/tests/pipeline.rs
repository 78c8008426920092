//! The manager's pipeline as pure functions over the state machine: many nodes in one process,
//! a fake clock, fake agents that move tasks forward. No Raft, no IO, fully deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use shoal_manager::loops::{changes_to_ops, rebalance_ops, reconcile_all, schedule_ops};
use shoal_manager::testing;
use shoal_store::{Op, Proposal, State};
use shoal_types::cluster::Cluster;
use shoal_types::node::{Availability, NodeRole, NodeState};
use shoal_types::service::{Service, ServiceMode, ServiceSpec, UpdateConfig};
use shoal_types::task::{TaskState, TaskStatus};
use shoal_types::{GenericResource, Id, IdGen, Timestamp};

struct Sim {
    state: State,
    version: u64,
    now: Timestamp,
    ids: IdGen,
    /// Most tasks observed between two node-local steps, per service: bounds rolling updates.
    max_updating: usize,
    /// Running tasks a service must keep at least (set by a test once it has them).
    floor: BTreeMap<Id, u64>,
}

impl Sim {
    fn new(nodes: usize, seed: u64) -> Sim {
        let mut sim = Sim {
            state: State::default(),
            version: 0,
            now: Timestamp(1_700_000_000_000_000_000),
            ids: IdGen::seeded(seed),
            max_updating: 0,
            floor: BTreeMap::new(),
        };
        let cluster = Cluster {
            id: Id::from_raw("c"),
            ..Default::default()
        };
        sim.apply(vec![Op::PutCluster {
            cluster,
            expect_version: None,
        }]);
        for i in 0..nodes {
            sim.add_node(i);
        }
        sim
    }

    fn add_node(&mut self, i: usize) {
        let mut node = testing::ready_node(format!("node{i:03}"), 4_000_000_000, 8 << 30);
        node.description.hostname = format!("host{i}");
        if i == 0 {
            node.spec.role = NodeRole::Manager;
        }
        self.apply(vec![Op::CreateNode(node)]);
    }

    fn apply(&mut self, ops: Vec<Op>) {
        self.version += 1;
        self.state
            .apply(self.version, &Proposal::each(self.now, ops));
    }

    fn service(&mut self, spec: ServiceSpec) -> Id {
        let id = self.ids.next_id();
        self.apply(vec![Op::CreateService(Service {
            id: id.clone(),
            spec,
            ..Default::default()
        })]);
        id
    }

    /// What the agents on every node do: run what is assigned, stop what should stop.
    fn agents(&mut self) -> Vec<Op> {
        let mut ops = Vec::new();
        for t in self.state.tasks() {
            let Some(node) = t.node_id.as_ref().and_then(|n| self.state.node(n)) else {
                continue;
            };
            if node.status.state != NodeState::Ready || t.status.state.is_terminal() {
                continue;
            }
            let next = if t.desired_state > TaskState::Running {
                TaskState::Shutdown
            } else if t.status.state >= TaskState::Assigned && t.status.state < TaskState::Running {
                TaskState::Running
            } else {
                continue;
            };
            ops.push(Op::SetTaskStatus {
                id: t.id.clone(),
                status: TaskStatus {
                    state: next,
                    timestamp: self.now,
                    ..Default::default()
                },
            });
        }
        ops
    }

    /// One round of every stage; true when nothing changed.
    fn step(&mut self) -> bool {
        let mut quiet = true;
        let mut ops = schedule_ops(&self.state, self.now);
        if ops.is_empty() {
            ops = rebalance_ops(&self.state, self.now, &mut self.ids);
        }
        quiet &= ops.is_empty();
        self.apply(ops);
        let r = reconcile_all(&self.state, self.now, &mut self.ids);
        let ops = changes_to_ops(&self.state, self.now, r.changes);
        quiet &= ops.is_empty();
        self.apply(ops);
        self.check_invariants();
        let ops = self.agents();
        quiet &= ops.is_empty();
        self.apply(ops);
        self.now = self.now.add(Duration::from_millis(500));
        quiet
    }

    fn converge(&mut self) {
        let mut quiet_rounds = 0;
        for _ in 0..2000 {
            if self.step() {
                quiet_rounds += 1;
                // Quiet long enough for every restart delay and update monitor to pass.
                if quiet_rounds > 30 {
                    return;
                }
            } else {
                quiet_rounds = 0;
            }
        }
        panic!(
            "did not converge; tasks: {:#?}",
            self.state
                .tasks()
                .map(|t| (t.name(), t.status.state, t.desired_state))
                .collect::<Vec<_>>()
        );
    }

    fn check_invariants(&mut self) {
        // No node holds more reservations than it has.
        for n in self.state.nodes() {
            let used: i64 = self
                .state
                .tasks_on_node(&n.id)
                .filter(|t| !t.status.state.is_terminal() && t.status.state >= TaskState::Assigned)
                .map(|t| t.spec.resources.reservations.memory_bytes)
                .sum();
            assert!(
                used <= n.description.resources.memory_bytes,
                "node {} oversubscribed",
                n.id
            );
        }
        // Moves (drains, rebalancing) and updates never leave a service short of running
        // tasks once it had them all, except where a node was lost under it.
        for s in self.state.services() {
            if let ServiceMode::Replicated { replicas } = s.spec.mode {
                let running = self.running(&s.id).len() as u64;
                let floor = self.floor.get(&s.id).copied().unwrap_or(0);
                assert!(
                    running >= floor.min(replicas),
                    "service {} dropped to {running} running (held {floor})",
                    s.spec.name
                );
            }
        }
        // No named generic unit (a GPU) is held by two live tasks of a node.
        for n in self.state.nodes() {
            let mut held = BTreeSet::new();
            for t in self
                .state
                .tasks_on_node(&n.id)
                .filter(|t| !t.status.state.is_terminal() && t.status.state >= TaskState::Assigned)
            {
                for r in &t.assigned_generic_resources {
                    if let GenericResource::Named { .. } = r {
                        assert!(held.insert(r.clone()), "node {}: {r:?} held twice", n.id);
                    }
                }
            }
        }
        // Rolling updates stay within their parallelism: count slots whose live task is not up
        // to date or not yet running.
        for s in self.state.services() {
            let updating = self
                .state
                .tasks_of_service(&s.id)
                .filter(|t| {
                    t.desired_state == TaskState::Running
                        && t.spec == s.spec.task
                        && t.status.state < TaskState::Running
                })
                .count();
            self.max_updating = self.max_updating.max(updating);
        }
    }

    fn running(&self, service: &Id) -> Vec<(u64, Id)> {
        let mut v: Vec<_> = self
            .state
            .tasks_of_service(service)
            .filter(|t| {
                t.status.state == TaskState::Running && t.desired_state == TaskState::Running
            })
            .map(|t| (t.slot, t.node_id.clone().unwrap_or_default()))
            .collect();
        v.sort();
        v
    }

    fn set_availability(&mut self, node: &str, a: Availability) {
        let mut n = (**self.state.node(&Id::from_raw(node)).expect("node")).clone();
        n.spec.availability = a;
        self.apply(vec![Op::UpdateNode {
            node: n,
            expect_version: None,
        }]);
    }

    fn set_node_state(&mut self, node: &str, s: NodeState) {
        let mut n = (**self.state.node(&Id::from_raw(node)).expect("node")).clone();
        n.status.state = s;
        self.apply(vec![Op::UpdateNode {
            node: n,
            expect_version: None,
        }]);
    }

    fn fail_task_on(&mut self, service: &Id, slot: u64) {
        let t = self
            .state
            .tasks_of_service(service)
            .find(|t| t.slot == slot && t.status.state == TaskState::Running)
            .expect("running task in slot")
            .clone();
        self.apply(vec![Op::SetTaskStatus {
            id: t.id.clone(),
            status: TaskStatus {
                state: TaskState::Failed,
                timestamp: self.now,
                err: "task: non-zero exit (137)".into(),
                ..Default::default()
            },
        }]);
    }
}

fn spec(name: &str, replicas: u64) -> ServiceSpec {
    let mut spec = testing::replicated(name, "host", replicas);
    spec.task.container.args = vec!["sleep".into()];
    spec
}

fn per_node(running: &[(u64, Id)]) -> BTreeMap<Id, usize> {
    let mut m = BTreeMap::new();
    for (_, n) in running {
        *m.entry(n.clone()).or_default() += 1;
    }
    m
}

#[test]
fn replicas_converge_one_per_slot_spread_evenly() {
    let mut sim = Sim::new(50, 1);
    let svc = sim.service(spec("web", 200));
    sim.converge();
    let running = sim.running(&svc);
    let slots: BTreeSet<u64> = running.iter().map(|(s, _)| *s).collect();
    assert_eq!(running.len(), 200);
    assert_eq!(slots, (1..=200).collect());
    let counts = per_node(&running);
    assert_eq!(counts.len(), 50);
    assert!(counts.values().all(|c| *c == 4), "{counts:?}");
}

#[test]
fn drained_and_down_nodes_lose_their_tasks_and_replicas_hold() {
    let mut sim = Sim::new(10, 2);
    let svc = sim.service(spec("web", 30));
    sim.converge();
    sim.set_availability("node003", Availability::Drain);
    sim.set_node_state("node004", NodeState::Down);
    sim.converge();
    let running = sim.running(&svc);
    assert_eq!(running.len(), 30);
    assert!(
        running
            .iter()
            .all(|(_, n)| n.as_str() != "node003" && n.as_str() != "node004"),
        "{running:?}"
    );
    // Paused: nothing new lands, but what runs stays.
    sim.set_availability("node003", Availability::Active);
    sim.set_availability("node005", Availability::Pause);
    let before = per_node(&sim.running(&svc))
        .get(&Id::from_raw("node005"))
        .copied();
    let mut s = (**sim.state.service(&svc).expect("svc")).clone();
    s.spec.mode = ServiceMode::Replicated { replicas: 60 };
    sim.apply(vec![Op::UpdateService {
        service: s,
        expect_version: None,
    }]);
    sim.converge();
    let after = per_node(&sim.running(&svc));
    assert_eq!(sim.running(&svc).len(), 60);
    assert_eq!(after.get(&Id::from_raw("node005")).copied(), before);
}

#[test]
fn impossible_placement_stays_pending_with_the_reason() {
    let mut sim = Sim::new(3, 3);
    sim.set_availability("node002", Availability::Drain);
    let mut s = spec("nowhere", 2);
    s.task.placement.constraints = vec!["node.labels.zone==mars".into()];
    let svc = sim.service(s);
    sim.converge();
    let tasks: Vec<_> = sim.state.tasks_of_service(&svc).collect();
    assert_eq!(tasks.len(), 2);
    for t in tasks {
        assert_eq!(t.status.state, TaskState::Pending);
        assert_eq!(
            t.status.err,
            "no suitable node (scheduling constraints not satisfied on 2 nodes; 1 node not available for new tasks)"
        );
    }
    let mut big = spec("big", 3);
    big.task.resources.reservations.memory_bytes = 6 << 30;
    let svc = sim.service(big);
    sim.converge();
    assert_eq!(sim.running(&svc).len(), 2);
    let pending: Vec<_> = sim
        .state
        .tasks_of_service(&svc)
        .filter(|t| t.status.state == TaskState::Pending)
        .collect();
    assert_eq!(pending.len(), 1);
    assert!(
        pending[0]
            .status
            .err
            .contains("insufficient resources on 2 nodes"),
        "{}",
        pending[0].status.err
    );
}

#[test]
fn failed_task_is_replaced_after_the_restart_delay() {
    let mut sim = Sim::new(2, 4);
    let svc = sim.service(spec("web", 2));
    sim.converge();
    sim.fail_task_on(&svc, 1);
    let failed_at = sim.now;
    // Not replaced before the 5 s default delay...
    for _ in 0..8 {
        sim.step();
        assert_eq!(
            sim.running(&svc).len(),
            1,
            "replaced before the restart delay"
        );
    }
    sim.converge();
    assert_eq!(sim.running(&svc).len(), 2);
    let slot1: Vec<_> = sim
        .state
        .tasks_of_service(&svc)
        .filter(|t| t.slot == 1)
        .collect();
    assert_eq!(slot1.len(), 2);
    let old = slot1
        .iter()
        .find(|t| t.status.state == TaskState::Failed)
        .expect("failed task kept in history");
    assert_eq!(old.desired_state, TaskState::Shutdown);
    let new = slot1
        .iter()
        .find(|t| t.status.state == TaskState::Running)
        .expect("replacement");
    assert!(new.meta.created_at.since(failed_at) >= Duration::from_secs(5));
}

#[test]
fn rolling_update_respects_parallelism_and_replaces_every_task() {
    let mut sim = Sim::new(5, 5);
    let mut s = spec("web", 10);
    s.update = Some(UpdateConfig {
        parallelism: 2,
        monitor: Some(Duration::from_secs(1)),
        ..Default::default()
    });
    let svc = sim.service(s);
    sim.converge();
    sim.max_updating = 0;
    let mut cur = (**sim.state.service(&svc).expect("svc")).clone();
    cur.previous_spec = Some(cur.spec.clone());
    cur.spec.task.container.env = vec!["A=1".into()];
    sim.apply(vec![Op::UpdateService {
        service: cur,
        expect_version: None,
    }]);
    sim.converge();
    let svc_now = sim.state.service(&svc).expect("svc").clone();
    let running: Vec<_> = sim
        .state
        .tasks_of_service(&svc)
        .filter(|t| t.status.state == TaskState::Running && t.desired_state == TaskState::Running)
        .collect();
    assert_eq!(running.len(), 10);
    assert!(running.iter().all(|t| t.spec == svc_now.spec.task));
    assert!(
        sim.max_updating <= 2,
        "{} tasks updating at once",
        sim.max_updating
    );
    assert!(sim.max_updating >= 1);
    assert_eq!(
        svc_now.update_status.as_ref().map(|u| u.state),
        Some(shoal_types::service::UpdateState::Completed)
    );
}

#[test]
fn global_service_follows_nodes() {
    let mut sim = Sim::new(4, 6);
    let mut s = spec("agent", 0);
    s.mode = ServiceMode::Global;
    let svc = sim.service(s);
    sim.converge();
    assert_eq!(per_node(&sim.running(&svc)).len(), 4);
    sim.add_node(4);
    sim.set_availability("node001", Availability::Drain);
    sim.converge();
    let nodes = per_node(&sim.running(&svc));
    assert_eq!(nodes.len(), 4);
    assert!(nodes.contains_key(&Id::from_raw("node004")));
    assert!(!nodes.contains_key(&Id::from_raw("node001")));
    assert!(nodes.values().all(|c| *c == 1));
}

#[test]
fn removed_service_tasks_stop_and_disappear() {
    let mut sim = Sim::new(3, 7);
    let svc = sim.service(spec("web", 6));
    sim.converge();
    sim.apply(vec![Op::DeleteService { id: svc.clone() }]);
    sim.converge();
    assert_eq!(sim.state.tasks_of_service(&svc).count(), 0);
}

#[test]
fn a_returning_node_gets_its_share_back_gradually_and_replicas_hold() {
    let mut sim = Sim::new(3, 11);
    sim.set_availability("node002", Availability::Pause);
    let mut s = spec("web", 6);
    s.update = Some(UpdateConfig {
        parallelism: 1,
        ..Default::default()
    });
    let web = sim.service(s);
    sim.converge();
    let before = per_node(&sim.running(&web));
    assert_eq!(before.values().copied().collect::<Vec<_>>(), [3, 3]);
    sim.floor.insert(web.clone(), 6);

    sim.set_availability("node002", Availability::Active);
    let mut most_in_flight = 0;
    for _ in 0..200 {
        let quiet = sim.step();
        let live = sim
            .state
            .tasks_of_service(&web)
            .filter(|t| t.is_live())
            .count();
        most_in_flight = most_in_flight.max(live.saturating_sub(6));
        if quiet && per_node(&sim.running(&web)).len() == 3 {
            break;
        }
    }
    sim.converge();
    let after = per_node(&sim.running(&web));
    assert_eq!(
        after.values().copied().collect::<Vec<_>>(),
        [2, 2, 2],
        "{after:?}"
    );
    assert_eq!(most_in_flight, 1, "one move at a time (parallelism 1)");
}

#[test]
fn rebalancing_can_be_turned_off() {
    let mut sim = Sim::new(3, 12);
    let mut c = (**sim.state.cluster().expect("cluster")).clone();
    c.spec.rebalance = false;
    sim.apply(vec![Op::PutCluster {
        cluster: c,
        expect_version: None,
    }]);
    sim.set_availability("node002", Availability::Pause);
    let web = sim.service(spec("web", 6));
    sim.converge();
    let before = sim.running(&web);
    sim.set_availability("node002", Availability::Active);
    sim.converge();
    assert_eq!(sim.running(&web), before, "nothing moves");
}

#[test]
fn draining_moves_tasks_one_at_a_time_and_replicas_hold_with_start_first() {
    let mut sim = Sim::new(3, 13);
    let mut s = spec("web", 6);
    s.update = Some(UpdateConfig {
        parallelism: 1,
        order: shoal_types::service::UpdateOrder::StartFirst,
        ..Default::default()
    });
    let web = sim.service(s);
    sim.converge();
    sim.floor.insert(web.clone(), 6);
    sim.set_availability("node000", Availability::Drain);
    sim.converge();
    let after = per_node(&sim.running(&web));
    assert!(!after.contains_key(&Id::from_raw("node000")), "{after:?}");
    assert_eq!(after.values().sum::<usize>(), 6);
}

#[test]
fn an_update_whose_task_fails_is_rolled_back_and_says_so() {
    let mut sim = Sim::new(3, 21);
    let mut s = spec("web", 4);
    s.task.restart.condition = shoal_types::RestartCondition::None;
    s.update = Some(UpdateConfig {
        parallelism: 1,
        monitor: Some(Duration::from_secs(3)),
        failure_action: shoal_types::service::FailureAction::Rollback,
        ..Default::default()
    });
    let svc = sim.service(s);
    sim.converge();
    let mut cur = (**sim.state.service(&svc).expect("svc")).clone();
    cur.previous_spec = Some(cur.spec.clone());
    cur.spec.task.container.args = vec!["false".into()];
    cur.update_status = None;
    sim.apply(vec![Op::UpdateService {
        service: cur,
        expect_version: None,
    }]);
    // The first new task runs, then fails.
    for _ in 0..4 {
        sim.step();
    }
    let bad = sim
        .state
        .tasks_of_service(&svc)
        .find(|t| t.spec.container.args == ["false"] && t.status.state == TaskState::Running)
        .map(|t| t.slot)
        .expect("a new task runs");
    sim.fail_task_on(&svc, bad);
    sim.converge();
    let now = sim.state.service(&svc).expect("svc").clone();
    let status = now.update_status.clone().expect("status");
    assert_eq!(
        status.state,
        shoal_types::service::UpdateState::RollbackCompleted,
        "{status:?}"
    );
    assert_eq!(now.spec.task.container.args, ["sleep"]);
}

#[test]
fn gpus_go_one_per_task_and_the_rest_wait_until_scaled_down() {
    let mut sim = Sim::new(2, 7);
    let mut n = (**sim.state.node(&Id::from_raw("node000")).expect("node")).clone();
    n.description.generic_resources = vec![
        GenericResource::named("gpu", "GPU-a"),
        GenericResource::named("gpu", "GPU-b"),
    ];
    sim.apply(vec![Op::UpdateNode {
        node: n,
        expect_version: None,
    }]);
    let mut s = spec("train", 3);
    s.task.resources.generic_reservations = vec![GenericResource::discrete("gpu", 1)];
    let svc = sim.service(s);
    sim.converge();
    let gpus = |sim: &Sim| -> BTreeMap<u64, Vec<GenericResource>> {
        sim.state
            .tasks_of_service(&svc)
            .filter(|t| t.status.state == TaskState::Running)
            .map(|t| (t.slot, t.assigned_generic_resources.clone()))
            .collect()
    };
    let before = gpus(&sim);
    let mut given: Vec<GenericResource> = before.values().flatten().cloned().collect();
    given.sort();
    assert_eq!(
        given,
        vec![
            GenericResource::named("gpu", "GPU-a"),
            GenericResource::named("gpu", "GPU-b")
        ]
    );
    assert!(
        sim.running(&svc)
            .iter()
            .all(|(_, n)| n.as_str() == "node000")
    );
    let waiting: Vec<String> = sim
        .state
        .tasks_of_service(&svc)
        .filter(|t| t.status.state == TaskState::Pending)
        .map(|t| t.status.err.clone())
        .collect();
    assert_eq!(
        waiting,
        vec!["no suitable node (insufficient generic resources on 2 nodes)".to_owned()]
    );

    let mut scaled = (**sim.state.service(&svc).expect("service")).clone();
    scaled.spec.mode = ServiceMode::Replicated { replicas: 2 };
    sim.apply(vec![Op::UpdateService {
        service: scaled,
        expect_version: None,
    }]);
    sim.converge();
    // The waiting task goes; the running ones keep their GPUs.
    assert_eq!(gpus(&sim), before);
    assert_eq!(sim.running(&svc).len(), 2);
}

#[test]
fn a_dependent_service_starts_only_once_its_dependency_runs() {
    use shoal_types::stack::{Condition, DEPENDS_ON_LABEL, Dependency, format_depends_on};
    let mut sim = Sim::new(3, 11);
    let mut web = spec("app_web", 2);
    web.labels.insert(
        DEPENDS_ON_LABEL.into(),
        format_depends_on(&[Dependency {
            service: "app_db".into(),
            condition: Condition::Healthy,
        }]),
    );
    let web = sim.service(web);
    sim.converge();
    assert_eq!(
        sim.state.tasks_of_service(&web).count(),
        0,
        "held back while app_db does not exist"
    );
    let db = sim.service(spec("app_db", 1));
    sim.converge();
    assert_eq!(sim.running(&web).len(), 2);
    let db_running_at = sim
        .state
        .tasks_of_service(&db)
        .map(|t| t.status.timestamp)
        .max()
        .expect("a db task");
    let web_first = sim
        .state
        .tasks_of_service(&web)
        .map(|t| t.meta.created_at)
        .min()
        .expect("a web task");
    assert!(
        web_first >= db_running_at,
        "web's first task ({web_first:?}) was made before db ran ({db_running_at:?})"
    );
    // Once started, the dependent is not stopped when its dependency goes away.
    sim.apply(vec![Op::DeleteService { id: db.clone() }]);
    sim.converge();
    assert_eq!(sim.running(&web).len(), 2);
}
