//! Node-local bridge networks end to end: a node (an `ip netns` host on the 192.0.2.0/24
//! underlay) whose `NetAgent` makes the networks and wires tasks in front of the fake runtime;
//! the tasks' namespaces are the agent's own, and servers in them are real processes (`socat`
//! entered by `nsenter --net`). Traffic only goes between these namespaces and their loopbacks.
//!
//! Needs root, `nft`, `iptables`, `socat`, `nsenter` and `ip`; everything a test makes goes on
//! Drop, passed or failed (see the harness).

#[path = "local/harness.rs"]
mod harness;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use harness::*;
use shoal_net::NetError;
use shoal_runtime::RuntimeError;
use shoal_types::Id;
use shoal_types::local_net::{DEFAULT_NETWORK, LocalAttachment, LocalNetworkSpec};

fn spec(name: &str) -> LocalNetworkSpec {
    LocalNetworkSpec {
        name: name.into(),
        ..Default::default()
    }
}

fn addr_of(node: &Node, task: &str, i: usize) -> Ipv4Addr {
    node.agent().local_endpoints(&Id::from_raw(task))[i]
        .addr
        .addr()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tasks_on_a_user_network_reach_each_other_by_name_and_address() {
    if !needs() {
        return;
    }
    let mut node = Node::new("lnames", 1);
    let app = node
        .agent()
        .create_local_network(spec("app"))
        .await
        .expect("network app");
    assert_eq!(app.id.len(), 64);
    assert!(
        output(&node.netns(), &["ip", "-br", "addr", "show", &app.bridge]).contains(&format!(
            "{}/{}",
            app.gateway,
            app.subnet.prefix_len()
        )),
        "the bridge holds the gateway address"
    );
    for (t, aliases) in [("t1", &["web", "t1c"][..]), ("t2", &["db"][..])] {
        node.driver()
            .prepare(&run(t, &[("app", aliases)], vec![]))
            .await
            .unwrap_or_else(|e| panic!("prepare {t}: {e}"));
    }
    // One on the default network too: its names are not served (as Docker's).
    node.driver()
        .prepare(&run("t3", &[(DEFAULT_NETWORK, &["hidden"][..])], vec![]))
        .await
        .expect("prepare t3");
    let (a1, a2) = (addr_of(&node, "t1", 0), addr_of(&node, "t2", 0));
    assert!(app.subnet.contains(&a1) && app.subnet.contains(&a2) && a1 != a2);
    let e = &node.agent().local_endpoints(&Id::from_raw("t1"))[0];
    assert_eq!(e.network_id, app.id);
    assert_eq!(e.gateway, app.gateway);
    assert_eq!(e.aliases, ["web", "t1c"]);
    assert!(e.mac.starts_with("02:42:"), "{}", e.mac);
    let default_route = output(&node.task_netns("t1"), &["ip", "route", "show", "default"]);
    assert!(
        default_route.contains(&format!("via {} dev eth0", app.gateway)),
        "{default_route}"
    );

    node.serve("t1", 80, "t1");
    let t2 = node.task_netns("t2");
    assert_eq!(resolve(&t2, "web"), [a1]);
    assert_eq!(resolve(&t2, "T1C"), [a1], "names are case-insensitive");
    assert_eq!(resolve(&node.task_netns("t1"), "db"), [a2]);
    assert!(resolve(&t2, "hidden").is_empty(), "not a name on app");
    let by_name = resolve(&t2, "web")[0];
    let line = greeting(&t2, SocketAddr::from((by_name, 80)), Duration::from_secs(5))
        .expect("t2 reaches t1 by name");
    assert_eq!(line, format!("t1 {a2}"), "t1 sees t2's own address");
    // The node reaches its containers too.
    greeting(
        &node.netns(),
        SocketAddr::from((a1, 80)),
        Duration::from_secs(5),
    )
    .expect("the node reaches t1");

    // A third container joins: the others resolve it at once, and lose it when it goes.
    node.driver()
        .prepare(&run("t4", &[("app", &["cache"][..])], vec![]))
        .await
        .expect("prepare t4");
    let a4 = addr_of(&node, "t4", 0);
    assert_eq!(resolve(&t2, "cache"), [a4]);
    node.driver()
        .remove(&Id::from_raw("t4"))
        .await
        .expect("remove t4");
    assert!(resolve(&t2, "cache").is_empty());
    assert!(node.agent().local_endpoints(&Id::from_raw("t4")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_on_different_local_networks_cannot_reach_each_other() {
    if !needs() {
        return;
    }
    let mut node = Node::new("lisol", 1);
    for n in ["a", "b"] {
        node.agent()
            .create_local_network(spec(n))
            .await
            .unwrap_or_else(|e| panic!("network {n}: {e}"));
    }
    for (t, net) in [("ta", "a"), ("tb", "b")] {
        node.driver()
            .prepare(&run(t, &[(net, &[t][..])], vec![]))
            .await
            .unwrap_or_else(|e| panic!("prepare {t}: {e}"));
    }
    // One on both: eth0 on a (its default route), eth1 on b.
    node.driver()
        .prepare(&run(
            "tab",
            &[("a", &["both"][..]), ("b", &["both"][..])],
            vec![],
        ))
        .await
        .expect("prepare tab");
    node.serve("ta", 80, "ta");
    node.serve("tb", 80, "tb");
    let (aa, ab) = (addr_of(&node, "ta", 0), addr_of(&node, "tb", 0));
    let tb = node.task_netns("tb");
    assert!(unreachable(&tb, SocketAddr::from((aa, 80))), "b reached a");
    assert!(
        unreachable(&node.task_netns("ta"), SocketAddr::from((ab, 80))),
        "a reached b"
    );
    assert!(resolve(&tb, "ta").is_empty(), "a's names are not b's");
    let tab = node.task_netns("tab");
    let links = output(&tab, &["ip", "-br", "link"]);
    assert!(links.contains("eth0") && links.contains("eth1"), "{links}");
    for (to, name) in [(aa, "ta"), (ab, "tb")] {
        let line = greeting(&tab, SocketAddr::from((to, 80)), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("the task on both reaches {name}: {e}"));
        assert!(line.starts_with(name), "{line}");
    }
    assert_eq!(
        resolve(&tab, "both").len(),
        2,
        "its own name on both networks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_ports_answer_at_loopback_and_the_node_address_and_conflicts_are_refused() {
    if !needs() {
        return;
    }
    let mut node = Node::new("lports", 2);
    node.driver()
        .prepare(&run(
            "web",
            &[(DEFAULT_NETWORK, &[][..])],
            vec![tcp(18099, 80), tcp(0, 81)],
        ))
        .await
        .expect("prepare web");
    node.serve("web", 80, "web80");
    node.serve("web", 81, "web81");
    let published = node.agent().published(&Id::from_raw("web"));
    assert_eq!(published[0].host_port, 18099);
    let picked = published[1].host_port;
    assert_ne!(picked, 0, "the node's pick is read back");
    let wait = Duration::from_secs(5);
    let ns = node.netns();
    for at in [Ipv4Addr::LOCALHOST, node.addr()] {
        let line = greeting(&ns, SocketAddr::from((at, 18099)), wait)
            .unwrap_or_else(|e| panic!("the node reaches the port at {at}: {e}"));
        assert!(line.starts_with("web80"), "{line}");
        let line = greeting(&ns, SocketAddr::from((at, picked)), wait)
            .unwrap_or_else(|e| panic!("the node reaches the picked port at {at}: {e}"));
        assert!(line.starts_with("web81"), "{line}");
    }
    // From another host, with the client's address kept.
    let other = node.hosts.host(2);
    let line = greeting(
        &other.netns_path(),
        SocketAddr::from((node.addr(), 18099)),
        wait,
    )
    .expect("another host reaches the port");
    assert_eq!(line, format!("web80 {}", other.addr));

    // From a container of the same network, through the node (the reply must come back the
    // same way, so the node stands in for the client).
    node.driver()
        .prepare(&run("peer", &[(DEFAULT_NETWORK, &[][..])], vec![]))
        .await
        .expect("prepare peer");
    let gateway = node.agent().local_endpoints(&Id::from_raw("peer"))[0].gateway;
    let line = greeting(
        &node.task_netns("peer"),
        SocketAddr::from((node.addr(), 18099)),
        wait,
    )
    .expect("a container of the same network reaches the port");
    assert_eq!(line, format!("web80 {gateway}"));

    // Taken by another container.
    let err = node
        .driver()
        .prepare(&run(
            "web2",
            &[(DEFAULT_NETWORK, &[][..])],
            vec![tcp(18099, 80)],
        ))
        .await
        .expect_err("the port is taken");
    match &err {
        RuntimeError::Conflict(m) => {
            assert_eq!(
                m,
                "Bind for 0.0.0.0:18099 failed: port is already allocated"
            )
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert!(
        node.agent()
            .local_endpoints(&Id::from_raw("web2"))
            .is_empty()
    );
    assert!(!node.task_netns("web2").exists(), "no namespace left");
    // Taken by a process of the node.
    let ns = node.netns();
    node.serve_in(&ns, 18098, "node");
    let err = node
        .driver()
        .prepare(&run(
            "web3",
            &[(DEFAULT_NETWORK, &[][..])],
            vec![tcp(18098, 80)],
        ))
        .await
        .expect_err("the port is the node's");
    assert!(
        err.to_string()
            .contains("Bind for 0.0.0.0:18098 failed: port is already allocated"),
        "{err}"
    );

    // Removed: the port is free again, for the next container.
    node.driver()
        .remove(&Id::from_raw("web"))
        .await
        .expect("remove web");
    assert!(unreachable(
        &ns,
        SocketAddr::from((Ipv4Addr::LOCALHOST, 18099))
    ));
    node.driver()
        .prepare(&run(
            "web2",
            &[(DEFAULT_NETWORK, &[][..])],
            vec![tcp(18099, 80)],
        ))
        .await
        .expect("the port is free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_go_out_as_the_node_unless_their_network_is_internal() {
    if !needs() {
        return;
    }
    let mut node = Node::new("lout", 2);
    let sealed = node
        .agent()
        .create_local_network(LocalNetworkSpec {
            internal: true,
            ..spec("sealed")
        })
        .await
        .expect("sealed");
    node.driver()
        .prepare(&run("out", &[(DEFAULT_NETWORK, &[][..])], vec![]))
        .await
        .expect("prepare out");
    for t in ["in1", "in2"] {
        node.driver()
            .prepare(&run(t, &[("sealed", &[t][..])], vec![tcp(0, 80)]))
            .await
            .unwrap_or_else(|e| panic!("prepare {t}: {e}"));
    }
    let other = node.hosts.host(2);
    let (far, far_ns) = (other.addr, other.netns_path());
    node.serve_in(&far_ns, 7000, "far");
    let to = SocketAddr::from((far, 7000));
    let line = greeting(&node.task_netns("out"), to, Duration::from_secs(5))
        .expect("a container reaches another host");
    assert_eq!(
        line,
        format!("far {}", node.addr()),
        "masqueraded as the node"
    );
    let in1 = node.task_netns("in1");
    assert!(
        unreachable(&in1, to),
        "an internal network's container got out"
    );
    assert!(
        output(&in1, &["ip", "route", "show", "default"]).is_empty(),
        "no default route on an internal network"
    );
    // Inside, it is a network as any other; its ports are not published outside.
    node.serve("in2", 80, "in2");
    let a2 = resolve(&in1, "in2");
    assert_eq!(a2.len(), 1);
    assert!(sealed.subnet.contains(&a2[0]));
    greeting(&in1, SocketAddr::from((a2[0], 80)), Duration::from_secs(5))
        .expect("containers of an internal network reach each other");
    let port = node.agent().published(&Id::from_raw("in2"))[0].host_port;
    assert!(unreachable(&far_ns, SocketAddr::from((node.addr(), port))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_in_use_are_kept_and_unused_ones_go_with_their_bridge_and_rules() {
    if !needs() {
        return;
    }
    let node = Node::new("lrm", 1);
    let agent = node.agent();
    let app = agent.create_local_network(spec("app")).await.expect("app");
    match agent.create_local_network(spec("app")).await {
        Err(NetError::Conflict(m)) => assert_eq!(m, "network with name app already exists"),
        other => panic!("expected the name refused, got {other:?}"),
    }
    let overlapping = LocalNetworkSpec {
        subnet: Some(app.subnet),
        ..spec("other")
    };
    assert!(matches!(
        agent.create_local_network(overlapping).await,
        Err(NetError::Conflict(_))
    ));
    node.driver()
        .prepare(&run("t1", &[("app", &[][..])], vec![]))
        .await
        .expect("prepare t1");
    match agent.remove_local_network("app").await {
        Err(NetError::Conflict(m)) => assert!(m.contains("active endpoints (t1)"), "{m}"),
        other => panic!("expected the network kept, got {other:?}"),
    }
    match agent.remove_local_network(DEFAULT_NETWORK).await {
        Err(NetError::Conflict(m)) => {
            assert_eq!(m, "bridge is a pre-defined network and cannot be removed")
        }
        other => panic!("expected the default network kept, got {other:?}"),
    }
    let ns = node.netns();
    let table = || output(&ns, &["nft", "list", "table", "ip", "shoal-bridges"]);
    assert!(table().contains(&app.bridge));
    node.driver()
        .remove(&Id::from_raw("t1"))
        .await
        .expect("remove t1");
    agent
        .remove_local_network(&app.id[..12])
        .await
        .expect("removed by ID prefix");
    assert!(agent.local_network("app").is_none());
    assert!(
        !output(&ns, &["ip", "-br", "link"]).contains(&app.bridge),
        "the bridge is gone"
    );
    assert!(!table().contains(&app.bridge), "{}", table());
    assert!(
        !output(&ns, &["iptables", "-w", "-S", "FORWARD"]).contains(&app.bridge),
        "its iptables accepts are gone"
    );
    assert!(matches!(
        agent.remove_local_network("app").await,
        Err(NetError::NotFound(_))
    ));
    let names: Vec<String> = agent.local_networks().into_iter().map(|n| n.name).collect();
    assert_eq!(names, [DEFAULT_NETWORK]);
}

/// A daemon restart: each agent runs on a runtime of its own, so the first one's sockets
/// (DNS, held ports) are closed when its runtime goes, as a dead daemon's are.
#[test]
fn a_restarted_agent_keeps_the_networks_and_the_endpoints() {
    if !needs() {
        return;
    }
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    };
    let mut node = Node::new("lrestart", 1);
    let first = rt();
    let (app, before) = first.block_on(async {
        let app = node
            .agent()
            .create_local_network(LocalNetworkSpec {
                subnet: Some("10.77.0.0/24".parse().expect("subnet")),
                gateway: Some(Ipv4Addr::new(10, 77, 0, 254)),
                ..spec("app")
            })
            .await
            .expect("app");
        node.driver()
            .prepare(&run("t1", &[("app", &["web"][..])], vec![tcp(18097, 80)]))
            .await
            .expect("prepare t1");
        node.driver()
            .prepare(&run("t2", &[("app", &["db"][..])], vec![]))
            .await
            .expect("prepare t2");
        let before = (
            node.agent().local_endpoints(&Id::from_raw("t1")),
            node.agent().local_endpoints(&Id::from_raw("t2")),
            node.agent().published(&Id::from_raw("t1")),
        );
        (app, before)
    });
    assert_eq!(app.gateway, Ipv4Addr::new(10, 77, 0, 254));
    node.driver = None;
    node.agent = None;
    drop(first);
    node.serve("t1", 80, "t1");

    let second = rt();
    second.block_on(async {
        node.start_agent();
        let agent = node.agent();
        assert_eq!(agent.local_network("app"), Some(app.clone()));
        let after = (
            agent.local_endpoints(&Id::from_raw("t1")),
            agent.local_endpoints(&Id::from_raw("t2")),
            agent.published(&Id::from_raw("t1")),
        );
        assert_eq!(after, before);
        // The runtime's list adopts the tasks: names served, ports held again.
        let listed = node.driver().list().await.expect("list");
        assert_eq!(listed.len(), 2);
        let t2 = node.task_netns("t2");
        let a1 = before.0[0].addr.addr();
        assert_eq!(resolve(&t2, "web"), [a1]);
        let line = greeting(
            &node.netns(),
            SocketAddr::from((Ipv4Addr::LOCALHOST, 18097)),
            Duration::from_secs(5),
        )
        .expect("the published port still answers");
        assert!(line.starts_with("t1"), "{line}");
        let err = node
            .driver()
            .prepare(&run("t3", &[("app", &[][..])], vec![tcp(18097, 80)]))
            .await
            .expect_err("the port is still held");
        assert!(matches!(err, RuntimeError::Conflict(_)), "{err}");
        node.driver()
            .prepare(&run("t3", &[("app", &[][..])], vec![]))
            .await
            .expect("prepare t3");
        let a3 = addr_of(&node, "t3", 0);
        assert!(a3 != a1 && a3 != before.1[0].addr.addr(), "{a3} is taken");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_task_is_connected_and_disconnected() {
    if !needs() {
        return;
    }
    let mut node = Node::new("lplug", 1);
    node.agent()
        .create_local_network(spec("app"))
        .await
        .expect("app");
    node.driver()
        .prepare(&run("t1", &[(DEFAULT_NETWORK, &[][..])], vec![]))
        .await
        .expect("prepare t1");
    node.driver()
        .prepare(&run("t2", &[("app", &["db"][..])], vec![]))
        .await
        .expect("prepare t2");
    node.serve("t2", 80, "t2");
    let a2 = addr_of(&node, "t2", 0);
    let t1 = node.task_netns("t1");
    assert!(unreachable(&t1, SocketAddr::from((a2, 80))));

    let t1_id = Id::from_raw("t1");
    let e = node
        .agent()
        .connect_local(
            &t1_id,
            LocalAttachment {
                network: "app".into(),
                aliases: vec!["front".into()],
            },
        )
        .await
        .expect("connect");
    assert!(output(&t1, &["ip", "-br", "addr", "show", "eth1"]).contains(&e.addr.to_string()));
    assert_eq!(node.agent().local_endpoints(&t1_id).len(), 2);
    let line = greeting(&t1, SocketAddr::from((a2, 80)), Duration::from_secs(5))
        .expect("t1 reaches t2 once connected");
    assert!(line.starts_with("t2"), "{line}");
    assert_eq!(resolve(&t1, "db"), [a2]);
    assert_eq!(resolve(&node.task_netns("t2"), "front"), [e.addr.addr()]);
    assert!(matches!(
        node.agent()
            .connect_local(
                &t1_id,
                LocalAttachment {
                    network: "app".into(),
                    aliases: vec![],
                },
            )
            .await,
        Err(NetError::Conflict(_))
    ));

    node.agent()
        .disconnect_local(&t1_id, "app")
        .await
        .expect("disconnect");
    assert!(unreachable(&t1, SocketAddr::from((a2, 80))));
    assert!(resolve(&node.task_netns("t2"), "front").is_empty());
    assert_eq!(node.agent().local_endpoints(&t1_id).len(), 1);
    assert!(!output(&t1, &["ip", "-br", "link"]).contains("eth1"));
}

/// The map a manager would send for one overlay with task `t1` of this node on it, and the
/// services named `services` (each served by t1).
fn overlay_map(node: &Node, services: &[&str]) -> shoal_types::dispatch::NetworkMap {
    use shoal_types::dispatch::{Endpoint, NetworkMap, NetworkPlan, ServiceOnNetwork};
    let subnet: shoal_ipam::Ipv4Net = "10.0.9.0/24".parse().expect("subnet");
    let t1 = Ipv4Addr::new(10, 0, 9, 2);
    NetworkMap {
        local_addr: Some(node.addr()),
        data_path_port: 4789,
        networks: vec![NetworkPlan {
            network: shoal_types::Network {
                id: Id::from_raw("ov1"),
                meta: Default::default(),
                spec: shoal_types::NetworkSpec {
                    name: "ov1".into(),
                    driver: "overlay".into(),
                    ..Default::default()
                },
                addrs: shoal_ipam::NetworkAddrs {
                    subnet,
                    gateway: Ipv4Addr::new(10, 0, 9, 1),
                    range: subnet,
                },
                vni: 4300,
            },
            endpoints: vec![Endpoint {
                task: Id::from_raw("t1"),
                addr: t1,
                node: Id::from_raw("n1"),
                node_addr: Some(node.addr()),
            }],
            services: services
                .iter()
                .map(|s| ServiceOnNetwork {
                    id: Id::from_raw(*s),
                    name: s.to_string(),
                    vip: None,
                    aliases: vec![],
                    ready: vec![t1],
                })
                .collect(),
            gateways: vec![],
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_on_an_overlay_and_a_local_network_resolves_both_and_goes_out_locally() {
    if !needs() {
        return;
    }
    let node = Node::new("lboth", 1);
    let app = node
        .agent()
        .create_local_network(spec("app"))
        .await
        .expect("app");
    node.agent()
        .set_map(std::sync::Arc::new(overlay_map(&node, &["svc"])));
    let mut t1 = run("t1", &[("app", &["loc"][..])], vec![]);
    t1.networks = vec![shoal_types::task::NetworkAttachment {
        network: Id::from_raw("ov1"),
        addr: "10.0.9.2/24".parse().expect("addr"),
        aliases: vec![],
    }];
    node.driver().prepare(&t1).await.expect("prepare t1");
    node.driver()
        .prepare(&run("t2", &[("app", &["other"][..])], vec![]))
        .await
        .expect("prepare t2");
    let ns1 = node.task_netns("t1");
    let addrs = output(&ns1, &["ip", "-br", "addr"]);
    let local = addr_of(&node, "t1", 0);
    assert!(
        addrs.contains("10.0.9.2/24"),
        "the overlay on eth0: {addrs}"
    );
    assert!(
        addrs.contains(&local.to_string()),
        "the local network: {addrs}"
    );
    assert_eq!(
        node.agent().local_endpoints(&Id::from_raw("t1"))[0]
            .mac
            .len(),
        17
    );
    let route = output(&ns1, &["ip", "route", "show", "default"]);
    assert!(
        route.contains(&format!("via {} dev eth1", app.gateway)),
        "out through the local network, not the node's gateway bridge: {route}"
    );
    assert_eq!(resolve(&ns1, "svc"), [Ipv4Addr::new(10, 0, 9, 2)]);
    assert_eq!(resolve(&ns1, "other"), [addr_of(&node, "t2", 0)]);
    let ns2 = node.task_netns("t2");
    assert_eq!(resolve(&ns2, "loc"), [local]);
    assert!(resolve(&ns2, "svc").is_empty(), "t2 is not on the overlay");

    // The map changes: the overlay's names follow, the local ones stay.
    let reconciler = node.agent.as_ref().expect("agent").spawn_reconciler();
    node.agent()
        .set_map(std::sync::Arc::new(overlay_map(&node, &["svc", "svc2"])));
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = resolve(&ns1, "svc2");
        if !seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reconciler.abort();
    assert_eq!(seen, [Ipv4Addr::new(10, 0, 9, 2)], "the new service's name");
    assert_eq!(resolve(&ns1, "other"), [addr_of(&node, "t2", 0)]);
}
