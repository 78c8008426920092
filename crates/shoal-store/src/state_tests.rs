use super::*;
use proptest::prelude::*;
use shoal_types::service::ServiceSpec;
use shoal_types::task::TaskStatus;

fn id(s: &str) -> Id {
    Id::from_raw(s)
}

fn service(i: &str, name: &str) -> Service {
    Service {
        id: id(i),
        spec: ServiceSpec {
            name: name.into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn task(i: &str, svc: &str, node: Option<&str>) -> Task {
    Task {
        id: id(i),
        service_id: id(svc),
        service_name: "web".into(),
        slot: 1,
        node_id: node.map(id),
        desired_state: TaskState::Running,
        status: TaskStatus {
            state: TaskState::Pending,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn status(state: TaskState, t: i64) -> TaskStatus {
    TaskStatus {
        state,
        timestamp: Timestamp(t),
        ..Default::default()
    }
}

#[test]
fn versions_and_times_come_from_the_entry() {
    let mut s = State::default();
    let (a, ev) = s.apply(
        7,
        &Proposal::atomic(
            Timestamp(100),
            vec![Op::CreateService(service("s1", "web"))],
        ),
    );
    assert_eq!(a.results, vec![Ok(())]);
    assert_eq!(ev.len(), 1);
    let svc = s.service(&id("s1")).expect("created");
    assert_eq!(
        (svc.meta.version, svc.meta.created_at, svc.meta.updated_at),
        (7, Timestamp(100), Timestamp(100))
    );
    let mut upd = (**svc).clone();
    upd.spec.labels.insert("a".into(), "b".into());
    let (a, _) = s.apply(
        9,
        &Proposal::atomic(
            Timestamp(200),
            vec![Op::UpdateService {
                service: upd,
                expect_version: Some(7),
            }],
        ),
    );
    assert_eq!(a.results, vec![Ok(())]);
    let svc = s.service(&id("s1")).expect("kept");
    assert_eq!(
        (svc.meta.version, svc.meta.created_at, svc.meta.updated_at),
        (9, Timestamp(100), Timestamp(200))
    );
}

#[test]
fn stale_version_is_refused_and_changes_nothing() {
    let mut s = State::default();
    s.apply(
        1,
        &Proposal::atomic(Timestamp(1), vec![Op::CreateService(service("s1", "web"))]),
    );
    let mut upd = (**s.service(&id("s1")).expect("created")).clone();
    upd.spec.name = "renamed".into();
    let (a, ev) = s.apply(
        2,
        &Proposal::atomic(
            Timestamp(2),
            vec![Op::UpdateService {
                service: upd,
                expect_version: Some(0),
            }],
        ),
    );
    assert!(matches!(
        a.first_error(),
        Some(OpError::VersionConflict {
            current: 1,
            expected: 0,
            ..
        })
    ));
    assert!(ev.is_empty());
    assert!(s.service_by_name("web").is_some());
    assert!(s.service_by_name("renamed").is_none());
}

#[test]
fn service_names_are_unique_and_follow_renames() {
    let mut s = State::default();
    s.apply(
        1,
        &Proposal::atomic(Timestamp(1), vec![Op::CreateService(service("s1", "web"))]),
    );
    let (a, _) = s.apply(
        2,
        &Proposal::atomic(Timestamp(2), vec![Op::CreateService(service("s2", "web"))]),
    );
    assert!(matches!(a.first_error(), Some(OpError::NameInUse { .. })));
    let mut upd = (**s.service(&id("s1")).expect("created")).clone();
    upd.spec.name = "api".into();
    s.apply(
        3,
        &Proposal::atomic(
            Timestamp(3),
            vec![Op::UpdateService {
                service: upd,
                expect_version: None,
            }],
        ),
    );
    let (a, _) = s.apply(
        4,
        &Proposal::atomic(Timestamp(4), vec![Op::CreateService(service("s2", "web"))]),
    );
    assert_eq!(a.results, vec![Ok(())]);
    assert_eq!(
        s.service_by_name("api").map(|s| s.id.clone()),
        Some(id("s1"))
    );
}

#[test]
fn atomic_proposal_applies_all_or_nothing() {
    let mut s = State::default();
    let p = Proposal::atomic(
        Timestamp(1),
        vec![
            Op::CreateTask(task("t1", "s1", None)),
            Op::DeleteTask { id: id("missing") },
        ],
    );
    let (a, ev) = s.apply(1, &p);
    assert_eq!(a.results[0], Err(OpError::Aborted));
    assert!(matches!(a.results[1], Err(OpError::NotFound { .. })));
    assert!(ev.is_empty());
    assert!(s.task(&id("t1")).is_none());
    assert_eq!(s.version, 1);
}

#[test]
fn each_proposal_applies_ops_independently() {
    let mut s = State::default();
    let p = Proposal::each(
        Timestamp(1),
        vec![
            Op::CreateTask(task("t1", "s1", None)),
            Op::DeleteTask { id: id("missing") },
        ],
    );
    let (a, _) = s.apply(1, &p);
    assert_eq!(a.results[0], Ok(()));
    assert!(a.results[1].is_err());
    assert!(s.task(&id("t1")).is_some());
}

#[test]
fn task_status_never_moves_backwards_and_keeps_entry_time() {
    let mut s = State::default();
    s.apply(
        1,
        &Proposal::atomic(
            Timestamp(1),
            vec![Op::CreateTask(task("t1", "s1", Some("n1")))],
        ),
    );
    let st = |state, t| Op::SetTaskStatus {
        id: id("t1"),
        status: status(state, t),
    };
    s.apply(
        2,
        &Proposal::each(Timestamp(2), vec![st(TaskState::Running, 20)]),
    );
    s.apply(
        3,
        &Proposal::each(Timestamp(3), vec![st(TaskState::Starting, 30)]),
    );
    let t = s.task(&id("t1")).expect("exists");
    assert_eq!((t.status.state, t.meta.version), (TaskState::Running, 2));
    let mut again = status(TaskState::Running, 40);
    again.message = "healthy".into();
    s.apply(
        4,
        &Proposal::each(
            Timestamp(4),
            vec![Op::SetTaskStatus {
                id: id("t1"),
                status: again,
            }],
        ),
    );
    let t = s.task(&id("t1")).expect("exists");
    assert_eq!(
        (t.status.timestamp, t.status.message.as_str()),
        (Timestamp(20), "healthy")
    );
}

#[test]
fn assign_only_from_pending() {
    let mut s = State::default();
    s.apply(
        1,
        &Proposal::atomic(Timestamp(1), vec![Op::CreateTask(task("t1", "s1", None))]),
    );
    let gpu = vec![shoal_types::GenericResource::named("gpu", "GPU-a")];
    let assign = |n: &str| Op::AssignTask {
        id: id("t1"),
        node_id: id(n),
        status: status(TaskState::Assigned, 2),
        generic_resources: gpu.clone(),
    };
    let (a, _) = s.apply(2, &Proposal::atomic(Timestamp(2), vec![assign("n1")]));
    assert_eq!(a.results, vec![Ok(())]);
    assert_eq!(
        s.task(&id("t1"))
            .map(|t| t.assigned_generic_resources.clone()),
        Some(gpu.clone()),
        "the task records the units it was given"
    );
    let (a, _) = s.apply(3, &Proposal::atomic(Timestamp(3), vec![assign("n2")]));
    assert!(matches!(a.first_error(), Some(OpError::NotPending { .. })));
    assert_eq!(s.tasks_on_node(&id("n1")).count(), 1);
    assert_eq!(s.tasks_on_node(&id("n2")).count(), 0);
}

#[test]
fn an_assignment_without_generic_resources_reads_as_before() {
    // Log entries written before generic resources existed have no such field.
    let op = Op::AssignTask {
        id: id("t1"),
        node_id: id("n1"),
        status: status(TaskState::Assigned, 2),
        generic_resources: Vec::new(),
    };
    let json = serde_json::to_string(&op).unwrap_or_default();
    assert!(!json.contains("generic_resources"), "{json}");
    assert_eq!(serde_json::from_str::<Op>(&json).ok(), Some(op));
}

fn arb_state() -> impl Strategy<Value = TaskState> {
    (0usize..TaskState::ALL.len()).prop_map(|i| TaskState::ALL[i])
}

fn arb_op() -> impl Strategy<Value = Op> {
    let tid = (0u8..4).prop_map(|i| id(&format!("t{i}")));
    let sid = (0u8..3).prop_map(|i| format!("s{i}"));
    let nid = proptest::option::of((0u8..3).prop_map(|i| format!("n{i}")));
    prop_oneof![
        (tid.clone(), sid, nid).prop_map(|(t, s, n)| Op::CreateTask(task(
            t.as_str(),
            &s,
            n.as_deref()
        ))),
        (tid.clone(), arb_state()).prop_map(|(t, st)| Op::SetTaskStatus {
            id: t,
            status: status(st, 1)
        }),
        (tid.clone(), arb_state()).prop_map(|(t, d)| Op::SetTaskDesired { id: t, desired: d }),
        (tid.clone(), (0u8..3)).prop_map(|(t, n)| Op::AssignTask {
            id: t,
            node_id: id(&format!("n{n}")),
            status: status(TaskState::Assigned, 1),
            generic_resources: Vec::new(),
        }),
        tid.prop_map(|t| Op::DeleteTask { id: t }),
    ]
}

proptest! {
    #[test]
    fn states_only_move_forward_and_indexes_stay_exact(
        batches in proptest::collection::vec((proptest::collection::vec(arb_op(), 1..5), any::<bool>()), 1..30)
    ) {
        let mut s = State::default();
        for (i, (ops, atomic)) in batches.into_iter().enumerate() {
            let before = s.clone();
            let p = Proposal { now: Timestamp(i as i64), ops, atomic };
            s.apply(i as u64 + 1, &p);
            for t in s.tasks() {
                if let Some(old) = before.task(&t.id) {
                    // A task that survived keeps moving forward (a delete then re-create may reset it).
                    if old.meta.created_at == t.meta.created_at {
                        prop_assert!(t.status.state >= old.status.state);
                        prop_assert!(t.desired_state >= old.desired_state);
                    }
                }
            }
            for sid in ["s0", "s1", "s2"] {
                let indexed: Vec<_> = s.tasks_of_service(&id(sid)).map(|t| t.id.clone()).collect();
                let scanned: Vec<_> = s.tasks().filter(|t| t.service_id.as_str() == sid).map(|t| t.id.clone()).collect();
                prop_assert_eq!(indexed, scanned);
            }
            for nid in ["n0", "n1", "n2"] {
                let indexed: Vec<_> = s.tasks_on_node(&id(nid)).map(|t| t.id.clone()).collect();
                let scanned: Vec<_> = s.tasks().filter(|t| t.node_id.as_ref().map(Id::as_str) == Some(nid)).map(|t| t.id.clone()).collect();
                prop_assert_eq!(indexed, scanned);
            }
        }
    }
}

fn network(i: &str, name: &str, subnet: &str) -> Network {
    let subnet: ipnet::Ipv4Net = subnet.parse().expect("subnet");
    Network {
        id: id(i),
        meta: Default::default(),
        spec: shoal_types::NetworkSpec {
            name: name.into(),
            driver: "overlay".into(),
            ..Default::default()
        },
        addrs: shoal_types::network::NetworkAddrs {
            subnet,
            gateway: subnet.hosts().next().expect("a host"),
            range: subnet,
        },
    }
}

/// The state machine checks a network's name and subnet again: two managers that allocated
/// from the same view cannot both create the same subnet.
#[test]
fn networks_keep_names_and_subnets_unique_and_reload() {
    let mut s = State::default();
    let ok = |s: &mut State, v, op| {
        s.apply(v, &Proposal::atomic(Timestamp(v as i64), vec![op]))
            .0
    };
    let a = ok(
        &mut s,
        1,
        Op::CreateNetwork(network("n1", "front", "10.0.0.0/24")),
    );
    assert_eq!(a.results, vec![Ok(())]);
    let clash = ok(
        &mut s,
        2,
        Op::CreateNetwork(network("n2", "back", "10.0.0.0/16")),
    );
    assert_eq!(
        clash.results[0].as_ref().map_err(ToString::to_string),
        Err("subnet 10.0.0.0/16 overlaps network \"front\"'s subnet 10.0.0.0/24".into())
    );
    let same_name = ok(
        &mut s,
        3,
        Op::CreateNetwork(network("n3", "front", "10.1.0.0/24")),
    );
    assert!(matches!(
        same_name.results[0],
        Err(OpError::NameInUse {
            kind: Kind::Network,
            ..
        })
    ));
    ok(
        &mut s,
        4,
        Op::CreateNetwork(network("n4", "back", "10.1.0.0/24")),
    );
    assert_eq!(s.network_by_name("back").map(|n| n.meta.version), Some(4));

    let mut reloaded = State::default();
    for o in s.all_objects() {
        reloaded.load(o);
    }
    assert_eq!(
        reloaded
            .networks()
            .map(|n| n.spec.name.clone())
            .collect::<Vec<_>>(),
        ["front", "back"]
    );
    assert!(reloaded.network_by_name("front").is_some());

    let d = ok(&mut s, 5, Op::DeleteNetwork { id: id("n1") });
    assert_eq!(d.results, vec![Ok(())]);
    assert!(s.network_by_name("front").is_none());
    // Its subnet is free again.
    let again = ok(
        &mut s,
        6,
        Op::CreateNetwork(network("n5", "front2", "10.0.0.0/16")),
    );
    assert_eq!(again.results, vec![Ok(())]);
}
