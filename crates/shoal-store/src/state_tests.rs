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
        vni: 0,
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

fn on_network(mut t: Task, net: &str) -> Task {
    t.spec.networks = vec![shoal_types::service::NetworkAttachmentConfig {
        target: net.into(),
        aliases: vec!["www".into()],
        ..Default::default()
    }];
    t
}

fn apply_one(s: &mut State, v: u64, op: Op) -> Result<(), OpError> {
    s.apply(v, &Proposal::atomic(Timestamp(v as i64), vec![op]))
        .0
        .results
        .remove(0)
}

fn addr_of(s: &State, task: &str) -> String {
    s.task(&id(task)).expect("task").networks[0]
        .addr
        .to_string()
}

/// A task gets an address with the write that makes it and gives it back with the write that
/// ends it: a /24 serves any number of tasks over time, and a reload keeps who holds what.
#[test]
fn task_addresses_are_given_with_the_task_and_taken_back_when_it_ends() {
    let mut s = State::default();
    apply_one(
        &mut s,
        1,
        Op::CreateNetwork(network("n1", "back", "10.9.0.0/24")),
    )
    .expect("net");
    assert_eq!(
        s.network(&id("n1")).map(|n| n.vni),
        Some(shoal_types::network::FIRST_VNI)
    );
    let mut v = 2;
    for round in 0..1000 {
        let t = format!("t{round}");
        apply_one(
            &mut s,
            v,
            Op::CreateTask(on_network(task(&t, "s1", None), "n1")),
        )
        .unwrap_or_else(|e| panic!("task {round}: {e}"));
        let a = s.task(&id(&t)).expect("made").networks.clone();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].aliases, ["www"]);
        // .1 is the gateway: the first task address is .2, and an ended task's is reused.
        assert_eq!(a[0].addr.to_string(), "10.9.0.2/24");
        let end = if round % 2 == 0 {
            Op::SetTaskStatus {
                id: id(&t),
                status: status(TaskState::Failed, v as i64),
            }
        } else {
            Op::DeleteTask { id: id(&t) }
        };
        apply_one(&mut s, v + 1, end).expect("ends");
        v += 2;
    }
    // Ended tasks keep their record of the address for inspect.
    assert_eq!(addr_of(&s, "t998"), "10.9.0.2/24");

    // Two live tasks of a live service hold two addresses; the network is in use while they
    // live.
    apply_one(&mut s, v - 1, Op::CreateService(service("s1", "web"))).expect("s1");
    apply_one(
        &mut s,
        v,
        Op::CreateTask(on_network(task("a", "s1", None), "n1")),
    )
    .expect("a");
    apply_one(
        &mut s,
        v + 1,
        Op::CreateTask(on_network(task("b", "s1", None), "n1")),
    )
    .expect("b");
    assert_eq!(
        (addr_of(&s, "a"), addr_of(&s, "b")),
        ("10.9.0.2/24".into(), "10.9.0.3/24".into())
    );
    let in_use = apply_one(&mut s, v + 2, Op::DeleteNetwork { id: id("n1") });
    assert!(
        matches!(in_use, Err(OpError::NetworkInUse { .. })),
        "{in_use:?}"
    );

    // A proposer cannot hand a task an address: the store gives it.
    let mut c = on_network(task("c", "s1", None), "n1");
    c.networks = s.task(&id("a")).expect("a").networks.clone();
    apply_one(&mut s, v + 3, Op::CreateTask(c)).expect("c");
    assert_eq!(addr_of(&s, "c"), "10.9.0.4/24");

    // A reload rebuilds who holds what.
    let mut reloaded = State::default();
    for o in s.all_objects() {
        reloaded.load(o);
    }
    apply_one(
        &mut reloaded,
        v + 4,
        Op::CreateTask(on_network(task("d", "s1", None), "n1")),
    )
    .expect("d");
    assert_eq!(addr_of(&reloaded, "d"), "10.9.0.5/24");

    // An unknown network is refused, and nothing is half made.
    let bad = apply_one(
        &mut s,
        v + 5,
        Op::CreateTask(on_network(task("e", "s1", None), "nope")),
    );
    assert!(
        matches!(
            bad,
            Err(OpError::NotFound {
                kind: Kind::Network,
                ..
            })
        ),
        "{bad:?}"
    );
    assert!(s.task(&id("e")).is_none());
}

#[test]
fn a_full_network_refuses_the_task_that_does_not_fit() {
    let mut s = State::default();
    apply_one(
        &mut s,
        1,
        Op::CreateNetwork(network("n1", "tiny", "10.9.0.0/30")),
    )
    .expect("net");
    apply_one(
        &mut s,
        2,
        Op::CreateTask(on_network(task("a", "s1", None), "n1")),
    )
    .expect("a");
    let full = apply_one(
        &mut s,
        3,
        Op::CreateTask(on_network(task("b", "s1", None), "n1")),
    );
    assert_eq!(
        full.map_err(|e| e.to_string()),
        Err("network \"tiny\" has no free address left in 10.9.0.0/30".into())
    );
}

/// A service gets a virtual IP on each of its networks and its published ports (a dynamic
/// one when it asks for none); another service cannot publish the same port; an update keeps
/// both; removing the service frees them.
#[test]
fn services_get_virtual_ips_and_ports_and_give_them_back() {
    use shoal_types::service::{PortConfig, PublishMode};
    let mut s = State::default();
    let mut ingress = network("ing", "ingress", "10.0.0.0/24");
    ingress.spec.ingress = true;
    apply_one(&mut s, 1, Op::CreateNetwork(ingress)).expect("ingress");
    apply_one(
        &mut s,
        2,
        Op::CreateNetwork(network("n1", "back", "10.9.0.0/24")),
    )
    .expect("net");
    let mut web = service("s1", "web");
    web.spec.task = on_network(task("x", "s1", None), "n1").spec;
    web.spec.endpoint.ports = vec![
        PortConfig {
            target_port: 80,
            published_port: 8080,
            ..Default::default()
        },
        PortConfig {
            target_port: 81,
            ..Default::default()
        },
    ];
    apply_one(&mut s, 3, Op::CreateService(web.clone())).expect("web");
    let got = s.service(&id("s1")).expect("web").endpoint.clone();
    let vips: Vec<String> = got
        .virtual_ips
        .iter()
        .map(|v| format!("{}={}", v.network, v.addr))
        .collect();
    assert_eq!(vips, ["ing=10.0.0.2/24", "n1=10.9.0.2/24"]);
    let ports: Vec<u16> = got.ports.iter().map(|p| p.published_port).collect();
    assert_eq!(ports, [8080, 30000]);

    // Its tasks join the ingress network first, then its own.
    apply_one(
        &mut s,
        4,
        Op::CreateTask(Task {
            spec: web.spec.task.clone(),
            ..task("t1", "s1", None)
        }),
    )
    .expect("task");
    let nets: Vec<String> = s
        .task(&id("t1"))
        .expect("t1")
        .networks
        .iter()
        .map(|a| a.addr.to_string())
        .collect();
    assert_eq!(nets, ["10.0.0.3/24", "10.9.0.3/24"]);
    // A task of another version of the spec (made while an update rolls) joins the ingress
    // network all the same: the ports are the service's.
    let mut previous = web.spec.task.clone();
    previous.container.image = "web:previous".into();
    apply_one(
        &mut s,
        4,
        Op::CreateTask(Task {
            spec: previous,
            ..task("t0", "s1", None)
        }),
    )
    .expect("task of the previous version");
    let nets: Vec<String> = s
        .task(&id("t0"))
        .expect("t0")
        .networks
        .iter()
        .map(|a| a.network.to_string())
        .collect();
    assert_eq!(nets, ["ing", "n1"]);

    let mut other = service("s2", "other");
    other.spec.endpoint.ports = vec![PortConfig {
        target_port: 80,
        published_port: 8080,
        ..Default::default()
    }];
    let taken = apply_one(&mut s, 5, Op::CreateService(other.clone()));
    assert_eq!(
        taken.map_err(|e| e.to_string()),
        Err("port 8080/tcp is already published by service \"web\"".into())
    );
    // Host mode does not go through the mesh: the port is the node's business.
    other.spec.endpoint.ports[0].publish_mode = PublishMode::Host;
    apply_one(&mut s, 6, Op::CreateService(other)).expect("host mode");

    // An update keeps the VIPs and the dynamic port.
    let mut upd = (**s.service(&id("s1")).expect("web")).clone();
    upd.spec.labels.insert("k".into(), "v".into());
    upd.endpoint = Default::default();
    apply_one(
        &mut s,
        7,
        Op::UpdateService {
            service: upd,
            expect_version: None,
        },
    )
    .expect("update");
    assert_eq!(s.service(&id("s1")).expect("web").endpoint, got);

    let in_use = apply_one(&mut s, 8, Op::DeleteNetwork { id: id("n1") });
    assert!(
        matches!(in_use, Err(OpError::NetworkInUse { ref services, .. }) if services == &["web"]),
        "{in_use:?}"
    );
    apply_one(&mut s, 9, Op::DeleteTask { id: id("t1") }).expect("task gone");
    apply_one(&mut s, 9, Op::DeleteTask { id: id("t0") }).expect("task gone");
    apply_one(&mut s, 10, Op::DeleteService { id: id("s1") }).expect("web gone");
    apply_one(&mut s, 11, Op::DeleteNetwork { id: id("n1") }).expect("network free");
    let mut again = service("s3", "again");
    again.spec.endpoint.ports = vec![PortConfig {
        target_port: 80,
        published_port: 8080,
        ..Default::default()
    }];
    apply_one(&mut s, 12, Op::CreateService(again)).expect("port free");
    assert_eq!(
        s.service(&id("s3")).expect("again").endpoint.virtual_ips[0]
            .addr
            .to_string(),
        "10.0.0.2/24"
    );
}

#[test]
fn a_network_goes_while_its_tasks_wind_down_and_their_addresses_stay_booked() {
    let mut s = State::default();
    apply_one(
        &mut s,
        1,
        Op::CreateNetwork(network("n1", "back", "10.9.0.0/24")),
    )
    .expect("net");
    apply_one(&mut s, 2, Op::CreateService(service("s1", "web"))).expect("s1");
    apply_one(
        &mut s,
        3,
        Op::CreateTask(on_network(task("a", "s1", None), "n1")),
    )
    .expect("a");
    apply_one(
        &mut s,
        4,
        Op::CreateTask(on_network(task("b", "s1", None), "n1")),
    )
    .expect("b");
    let in_use = apply_one(&mut s, 5, Op::DeleteNetwork { id: id("n1") });
    assert!(
        matches!(in_use, Err(OpError::NetworkInUse { .. })),
        "{in_use:?}"
    );
    // One task told to stop, the other orphaned by its service's removal (what `docker
    // stack rm` does just before it removes the networks): neither keeps the network.
    apply_one(
        &mut s,
        6,
        Op::SetTaskDesired {
            id: id("a"),
            desired: TaskState::Shutdown,
        },
    )
    .expect("a stops");
    let in_use = apply_one(&mut s, 7, Op::DeleteNetwork { id: id("n1") });
    assert!(
        matches!(in_use, Err(OpError::NetworkInUse { .. })),
        "b still runs: {in_use:?}"
    );
    apply_one(&mut s, 8, Op::DeleteService { id: id("s1") }).expect("s1 goes");
    apply_one(&mut s, 9, Op::DeleteNetwork { id: id("n1") }).expect("the network goes");
    assert!(s.network(&id("n1")).is_none());
    // The tasks end later; releasing addresses on a network that is gone is harmless.
    for (v, t) in [(10, "a"), (11, "b")] {
        apply_one(
            &mut s,
            v,
            Op::SetTaskStatus {
                id: id(t),
                status: status(TaskState::Shutdown, v as i64),
            },
        )
        .expect("ends");
    }
}
