//! `shoal_net::nat` against the kernel: namespaces made by `create_netns` (tasks, bridges) and
//! `shoal_testkit::hosts` (nodes on an underlay), servers run with `socat` entered into a
//! namespace by `nsenter --net`, clients as sockets opened inside a namespace. Servers answer
//! each connection with their name and the peer address they saw, so a client learns both
//! where its connection landed and whether its address survived the trip.
//!
//! Everything a test makes goes on Drop, passed or failed: its processes, then its namespaces
//! (which take their interfaces, rules and routes with them).

#[path = "nat/harness.rs"]
mod harness;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use harness::*;
use ipnet::Ipv4Net;
use shoal_net::nat::{
    Proto, Published, ReturnPath, Vip, clear_return_paths, clear_vips,
    ensure_iptables_forward_accept, program_masquerade, program_published, program_return_paths,
    program_vips, remove_iptables_forward_accept, remove_masquerade, remove_published,
};
use shoal_net::{NetError, bridge_name};
use shoal_testkit::Need;
use shoal_testkit::hosts::Hosts;

#[test]
fn vips_balance_refuse_without_backends_and_keep_established_connections() {
    if !needs(&[]) {
        return;
    }
    let ns = Namespaces::new(&["lan", "client", "b1", "b2"]);
    let mut procs = Procs::default();
    let vni = 4101;
    bridge(&ns.path("lan"), vni, None);
    let b1 = Ipv4Addr::new(10, 88, 0, 3);
    let b2 = Ipv4Addr::new(10, 88, 0, 4);
    let client = ns.path("client");
    plug(
        &ns.path("lan"),
        vni,
        &client,
        "10.88.0.2/24",
        "eth0",
        "vipc",
    );
    plug(
        &ns.path("lan"),
        vni,
        &ns.path("b1"),
        "10.88.0.3/24",
        "eth0",
        "vipb1",
    );
    plug(
        &ns.path("lan"),
        vni,
        &ns.path("b2"),
        "10.88.0.4/24",
        "eth0",
        "vipb2",
    );
    for name in ["b1", "b2"] {
        serve_tcp(&mut procs, &ns.path(name), 80, name);
        serve_udp(&mut procs, &ns.path(name), 5300, name);
    }
    // In the network's subnet, as Swarm's VIPs are: the client routes them out of eth0.
    let vip = Ipv4Addr::new(10, 88, 0, 100);
    let dead = Ipv4Addr::new(10, 88, 0, 101);
    let both = |backends: Vec<Ipv4Addr>| {
        vec![
            Vip { vip, backends },
            Vip {
                vip: dead,
                backends: vec![],
            },
        ]
    };
    program_vips(&client, &both(vec![b1, b2])).expect("program VIPs");
    program_vips(&client, &both(vec![b1, b2])).expect("program VIPs again");

    let at = SocketAddr::from((vip, 80));
    let (landed, peers) = spread(&client, at, 40);
    assert_eq!(landed.len(), 2, "40 connections to the VIP: {landed:?}");
    assert_eq!(
        peers,
        ["10.88.0.2"],
        "backends see the client's own address"
    );
    // Any protocol, any port.
    let answer = ask_udp(&client, SocketAddr::from((vip, 5300))).expect("UDP through the VIP");
    assert!(answer.ends_with(" 10.88.0.2"), "{answer}");

    // No backends: refused at once, not left to time out.
    let refused = greeting(&client, SocketAddr::from((dead, 80)))
        .expect_err("connect to a VIP without backends");
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{refused}"
    );
    // A datagram rejected in the output hook fails its own send (EPERM), before any ICMP.
    let refused = ask_udp(&client, SocketAddr::from((dead, 5300)))
        .expect_err("UDP to a VIP without backends");
    assert!(
        matches!(
            refused.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ConnectionRefused
        ),
        "{refused}"
    );

    // An idle connection outlives every reprogramming: conntrack keeps its translation.
    let mut held = Held::open(&client, at);
    assert!(held.echoes("one"));
    let (kept, other) = if held.backend == "b1" {
        (b1, b2)
    } else {
        (b2, b1)
    };
    let other_name = if held.backend == "b1" { "b2" } else { "b1" };

    program_vips(&client, &both(vec![kept])).expect("only the held connection's backend");
    assert!(held.echoes("two"), "after the set shrank to its backend");
    let (landed, _) = spread(&client, at, 20);
    assert_eq!(
        landed.keys().collect::<Vec<_>>(),
        [&held.backend],
        "{landed:?}"
    );

    program_vips(&client, &both(vec![other])).expect("only the other backend");
    assert!(held.echoes("three"), "after its backend left the set");
    let (landed, _) = spread(&client, at, 20);
    assert_eq!(
        landed.keys().collect::<Vec<_>>(),
        [other_name],
        "{landed:?}"
    );

    program_vips(&client, &both(vec![])).expect("no backends at all");
    assert!(held.echoes("four"), "after the VIP lost every backend");
    let refused = greeting(&client, at).expect_err("new connection to the emptied VIP");
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{refused}"
    );

    // Reprogramming never leaves a moment without rules: connections made meanwhile all land.
    let stop = Arc::new(AtomicBool::new(false));
    let (made, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    program_vips(&client, &both(vec![b1, b2])).expect("both again");
    let prober = {
        let (stop, made, failed, client) =
            (stop.clone(), made.clone(), failed.clone(), client.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match greeting(&client, at) {
                    Ok(_) => made.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    for i in 0..30 {
        let order = if i % 2 == 0 {
            vec![b1, b2]
        } else {
            vec![b2, b1]
        };
        program_vips(&client, &both(order)).expect("reprogram");
    }
    stop.store(true, Ordering::Relaxed);
    prober.join().expect("prober");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "connections failed during reprogramming"
    );
    assert!(made.load(Ordering::Relaxed) > 0);

    clear_vips(&client).expect("clear");
    clear_vips(&client).expect("clear twice");
    assert!(!tables(&client).contains("shoal-lb"), "{}", tables(&client));
    drop(held);
    drop(procs);
    drop(ns);
}

#[test]
fn masquerade_takes_a_task_out_as_its_node_through_dockerds_forward_drop() {
    if !needs(&[Need::Tool("iptables")]) {
        return;
    }
    let hosts = Hosts::new("nat-masq", 2).expect("hosts");
    let ns = Namespaces::new(&["task"]);
    let mut procs = Procs::default();
    let (node, outside) = (hosts.host(1).netns_path(), hosts.host(2).netns_path());
    let task = ns.path("task");
    let vni = 4102;
    let br = bridge_name(vni);
    forwarding_on(&node);
    bridge(&node, vni, Some("10.66.0.1/24"));
    plug(&node, vni, &task, "10.66.0.2/24", "eth0", "gwt");
    sh(
        &task,
        &["ip", "route", "add", "default", "via", "10.66.0.1"],
    );
    serve_tcp(&mut procs, &outside, 9000, "outside");
    as_dockerd_leaves_it(&node);
    let to = SocketAddr::from((hosts.host(2).addr, 9000));
    let short = Duration::from_secs(1);

    let subnet: Ipv4Net = "10.66.0.0/24".parse().expect("cidr");
    program_masquerade(&node, "t1", subnet, &br).expect("masquerade");
    program_masquerade(&node, "t1", subnet, &br).expect("masquerade again");
    assert!(
        greeting_within(&task, to, short).is_err(),
        "forwarded in spite of iptables' FORWARD DROP: an nftables accept is not meant to overrule it"
    );

    ensure_iptables_forward_accept(&node, &br).expect("iptables accept");
    ensure_iptables_forward_accept(&node, &br).expect("iptables accept again");
    let docker_user = rules_naming(&node, "DOCKER-USER", &br);
    assert_eq!(
        docker_user,
        [
            format!("-A DOCKER-USER -o {br} -j ACCEPT"),
            format!("-A DOCKER-USER -i {br} -j ACCEPT")
        ],
        "one of each, in DOCKER-USER"
    );
    assert!(rules_naming(&node, "FORWARD", &br).is_empty());
    assert_eq!(
        greeting(&task, to).expect("the task reaches outside"),
        format!("outside {}", hosts.host(1).addr),
        "outside sees the node's address"
    );

    remove_masquerade(&node, "t1").expect("remove");
    remove_masquerade(&node, "t1").expect("remove twice");
    assert!(!tables(&node).contains("shoal-gw-t1"), "{}", tables(&node));
    assert!(
        greeting_within(&task, to, short).is_err(),
        "still masqueraded: outside has no way back to 10.66.0.2"
    );
    remove_iptables_forward_accept(&node, &br).expect("remove iptables");
    assert!(rules_naming(&node, "DOCKER-USER", &br).is_empty());
    drop(procs);
    drop(ns);
    drop(hosts);
}

#[test]
fn iptables_accept_goes_to_forward_without_a_docker_user_chain() {
    if !needs(&[Need::Tool("iptables")]) {
        return;
    }
    let ns = Namespaces::new(&["node"]);
    let node = ns.path("node");
    remove_iptables_forward_accept(&node, "shgw1").expect("remove when absent");
    ensure_iptables_forward_accept(&node, "shgw1").expect("accept");
    ensure_iptables_forward_accept(&node, "shgw1").expect("accept again");
    assert_eq!(
        rules_naming(&node, "FORWARD", "shgw1"),
        [
            "-A FORWARD -o shgw1 -j ACCEPT",
            "-A FORWARD -i shgw1 -j ACCEPT"
        ]
    );
    remove_iptables_forward_accept(&node, "shgw1").expect("remove");
    assert!(rules_naming(&node, "FORWARD", "shgw1").is_empty());
    let e = ensure_iptables_forward_accept(&node, "br+").expect_err("a wildcard");
    assert!(
        matches!(e, NetError::InvalidArgument { ref field, .. } if field == "bridge"),
        "{e}"
    );
    drop(ns);
}

#[test]
fn published_ports_reach_backends_with_the_clients_address() {
    if !needs(&[]) {
        return;
    }
    let hosts = Hosts::new("nat-pub", 2).expect("hosts");
    let ns = Namespaces::new(&["b1", "b2"]);
    let mut procs = Procs::default();
    let (node, client) = (hosts.host(1).netns_path(), hosts.host(2).netns_path());
    let vni = 4103;
    forwarding_on(&node);
    bridge(&node, vni, Some("10.77.0.1/24"));
    for (name, cidr) in [("b1", "10.77.0.2/24"), ("b2", "10.77.0.3/24")] {
        plug(
            &node,
            vni,
            &ns.path(name),
            cidr,
            "eth0",
            &format!("pub{name}"),
        );
        sh(
            &ns.path(name),
            &["ip", "route", "add", "default", "via", "10.77.0.1"],
        );
    }
    serve_tcp(&mut procs, &ns.path("b1"), 80, "b1");
    serve_tcp(&mut procs, &ns.path("b2"), 81, "b2");
    serve_udp(&mut procs, &ns.path("b1"), 5300, "u1");
    let ports = [
        Published {
            proto: Proto::Tcp,
            port: 8080,
            backends: vec![
                (Ipv4Addr::new(10, 77, 0, 2), 80),
                (Ipv4Addr::new(10, 77, 0, 3), 81),
            ],
        },
        Published {
            proto: Proto::Udp,
            port: 5353,
            backends: vec![(Ipv4Addr::new(10, 77, 0, 2), 5300)],
        },
    ];
    program_published(&node, "shoal-pub-t", &ports).expect("publish");
    program_published(&node, "shoal-pub-t", &ports).expect("publish again");

    let node_addr = hosts.host(1).addr;
    let at = SocketAddr::from((node_addr, 8080));
    let (landed, peers) = spread(&client, at, 40);
    assert_eq!(
        landed.len(),
        2,
        "40 connections to the published port: {landed:?}"
    );
    assert_eq!(
        peers,
        [hosts.host(2).addr.to_string()],
        "backends see the client's address"
    );
    assert_eq!(
        ask_udp(&client, SocketAddr::from((node_addr, 5353))).expect("UDP"),
        format!("u1 {}", hosts.host(2).addr)
    );
    // From the node itself: to its own address, and to its loopback (masqueraded, as its
    // source cannot leave the node).
    let own = greeting(&node, at).expect("from the node to its address");
    assert!(own.ends_with(&format!(" {node_addr}")), "{own}");
    let looped = greeting(&node, SocketAddr::from(([127, 0, 0, 1], 8080)))
        .expect("from the node to localhost");
    assert!(looped.ends_with(" 10.77.0.1"), "{looped}");
    assert!(
        tables(&node).contains("shoal-localnet"),
        "{}",
        tables(&node)
    );
    assert_eq!(net_sysctl(&node, "ipv4/conf/all/route_localnet"), "1");

    remove_published(&node, "shoal-pub-t").expect("remove");
    remove_published(&node, "shoal-pub-t").expect("remove twice");
    let refused = greeting(&client, at).expect_err("nothing published any more");
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::ConnectionRefused,
        "{refused}"
    );
    drop(procs);
    drop(ns);
    drop(hosts);
}

/// NETWORKING-NOTES' mesh: a client reaches a task through a node that does not run it (DNAT
/// without SNAT), the task's replies go back through that node by connection mark, and the task
/// sees the client's address.
#[test]
fn return_paths_send_replies_back_through_the_receiving_node() {
    if !needs(&[]) {
        return;
    }
    let hosts = Hosts::new("nat-mesh", 3).expect("hosts");
    let ns = Namespaces::new(&["ingress", "task"]);
    let mut procs = Procs::default();
    let (a, b, client) = (
        hosts.host(1).netns_path(),
        hosts.host(2).netns_path(),
        hosts.host(3).netns_path(),
    );
    let (ingress, task) = (ns.path("ingress"), ns.path("task"));
    let vni = 4104;
    bridge(&ingress, vni, None);
    let mac_a = plug(&ingress, vni, &a, "10.255.0.2/24", "ing0", "inga");
    let mac_b = plug(&ingress, vni, &b, "10.255.0.3/24", "ing0", "ingb");
    plug(&ingress, vni, &task, "10.255.0.5/24", "eth0", "ingt");
    // The task runs on node B: its default route.
    sh(
        &task,
        &["ip", "route", "add", "default", "via", "10.255.0.3"],
    );
    serve_tcp(&mut procs, &task, 80, "task");
    let published = [Published {
        proto: Proto::Tcp,
        port: 8080,
        backends: vec![(Ipv4Addr::new(10, 255, 0, 5), 80)],
    }];
    for node in [&a, &b] {
        forwarding_on(node);
        program_published(node, "shoal-mesh", &published).expect("publish");
    }
    let (via_a, via_b) = (
        SocketAddr::from((hosts.host(1).addr, 8080)),
        SocketAddr::from((hosts.host(2).addr, 8080)),
    );
    let sees_client = format!("task {}", hosts.host(3).addr);
    let short = Duration::from_secs(1);
    assert_eq!(
        greeting(&client, via_b).expect("through B, the task's node"),
        sees_client
    );
    assert!(
        greeting_within(&client, via_a, short).is_err(),
        "through A without return paths: the replies should leave by B and be lost"
    );

    let paths = [
        ReturnPath {
            mark: 1,
            mac: mac_a,
            via: Ipv4Addr::new(10, 255, 0, 2),
        },
        ReturnPath {
            mark: 2,
            mac: mac_b,
            via: Ipv4Addr::new(10, 255, 0, 3),
        },
    ];
    program_return_paths(&task, "eth0", &paths).expect("return paths");
    program_return_paths(&task, "eth0", &paths).expect("return paths again");
    for i in 0..5 {
        assert_eq!(
            greeting(&client, via_a).unwrap_or_else(|e| panic!("through A, {i}: {e}")),
            sees_client
        );
        assert_eq!(
            greeting(&client, via_b).unwrap_or_else(|e| panic!("through B, {i}: {e}")),
            sees_client
        );
    }
    let rules = output(&task, &["ip", "rule"]);
    assert_eq!(rules.matches("fwmark 0x1 lookup 1").count(), 1, "{rules}");
    assert_eq!(rules.matches("fwmark 0x2 lookup 2").count(), 1, "{rules}");

    // B's path goes stale: its rule and route go, A's stay.
    program_return_paths(&task, "eth0", &paths[..1]).expect("only A");
    let rules = output(&task, &["ip", "rule"]);
    assert!(!rules.contains("fwmark 0x2"), "{rules}");
    assert!(
        output(&task, &["ip", "route", "show", "table", "2"])
            .trim()
            .is_empty()
    );
    assert_eq!(greeting(&client, via_a).expect("through A"), sees_client);

    clear_return_paths(&task).expect("clear");
    clear_return_paths(&task).expect("clear twice");
    assert!(!output(&task, &["ip", "rule"]).contains("fwmark"));
    assert!(
        output(&task, &["ip", "route", "show", "table", "1"])
            .trim()
            .is_empty()
    );
    assert!(!tables(&task).contains("shoal-rp"), "{}", tables(&task));
    assert!(
        greeting_within(&client, via_a, short).is_err(),
        "return paths cleared"
    );
    drop(procs);
    drop(ns);
    drop(hosts);
}

#[test]
fn errors_name_the_namespace_the_table_and_what_nft_said() {
    if !needs(&[]) {
        return;
    }
    let ns = Namespaces::new(&["task"]);
    let mut procs = Procs::default();
    let task = ns.path("task");
    let missing = ns.path("missing");
    let e = program_vips(&missing, &[]).expect_err("no such namespace");
    assert!(
        matches!(e, NetError::Netns { ref path, .. } if path == &missing),
        "{e}"
    );

    // A table owned by another process's netlink socket (`flags owner`) cannot be replaced.
    let mut owner = nsenter(&task, &["nft", "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("nft -i");
    let mut stdin = owner.stdin.take().expect("stdin");
    procs.0.push(owner);
    writeln!(stdin, "add table ip shoal-lb {{ flags owner; }}").expect("write to nft");
    stdin.flush().expect("flush");
    for _ in 0..100 {
        if tables(&task).contains("shoal-lb") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let e = program_vips(&task, &[]).expect_err("the table is someone else's");
    let text = e.to_string();
    assert!(
        matches!(e, NetError::Tool { ref program, .. } if program == "nft"),
        "{e}"
    );
    for part in [
        task.display().to_string(),
        "table ip shoal-lb".into(),
        "Operation not permitted".into(),
    ] {
        assert!(text.contains(&part), "{part:?} missing from: {text}");
    }
    drop(stdin);

    let path = ReturnPath {
        mark: 7,
        mac: [2, 0x42, 0, 0, 0, 1],
        via: Ipv4Addr::new(10, 0, 0, 1),
    };
    let e = program_return_paths(&task, "nope0", &[path]).expect_err("no such interface");
    assert!(e.to_string().contains("nope0"), "{e}");
    drop(procs);
    drop(ns);
}
