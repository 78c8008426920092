use super::*;
use crate::nat::Proto;
use serde_json::{Value, json};

fn commands(b: Batch<'static>) -> Vec<Value> {
    let v = serde_json::to_value(b.to_nftables()).expect("encode");
    v["nftables"]
        .as_array()
        .expect("an array of commands")
        .clone()
}

/// The rules of `chain`, each as its list of statements.
fn rules_of(cmds: &[Value], chain: &str) -> Vec<Value> {
    cmds.iter()
        .filter_map(|c| c.get("add")?.get("rule"))
        .filter(|r| r["chain"] == chain)
        .map(|r| r["expr"].clone())
        .collect()
}

fn chain_named(cmds: &[Value], name: &str) -> Value {
    cmds.iter()
        .filter_map(|c| c.get("add")?.get("chain"))
        .find(|c| c["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

fn replaces(cmds: &[Value], table: &str) -> bool {
    let t = json!({"table": {"family": "ip", "name": table}});
    cmds.len() >= 3
        && cmds[0] == json!({"add": t})
        && cmds[1] == json!({"delete": t})
        && cmds[2] == json!({"add": t})
}

fn field_of(e: NetError) -> String {
    match e {
        NetError::InvalidArgument { field, .. } => field,
        other => panic!("expected InvalidArgument, got {other}"),
    }
}

#[test]
fn vips_dnat_to_a_random_backend_and_refuse_without_backends() {
    let cmds = commands(
        vip_batch(&[
            Vip {
                vip: Ipv4Addr::new(10, 0, 0, 10),
                backends: vec![Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)],
            },
            Vip {
                vip: Ipv4Addr::new(10, 0, 0, 11),
                backends: vec![],
            },
            Vip {
                vip: Ipv4Addr::new(10, 0, 0, 12),
                backends: vec![Ipv4Addr::new(10, 0, 0, 4)],
            },
        ])
        .expect("valid"),
    );
    assert!(replaces(&cmds, "shoal-lb"), "{cmds:#?}");
    assert_eq!(
        chain_named(&cmds, "vips"),
        json!({"family": "ip", "table": "shoal-lb", "name": "vips", "type": "nat",
               "hook": "output", "prio": -100, "policy": "accept"})
    );
    assert_eq!(
        rules_of(&cmds, "vips"),
        vec![
            json!([{"match": {"left": {"ct": {"key": "state"}}, "right": "new", "op": "in"}},
                   {"counter": null}]),
            json!([{"vmap": {
            "key": {"payload": {"protocol": "ip", "field": "daddr"}},
            "data": {"set": [["10.0.0.10", {"goto": {"target": "vip-0"}}],
                             ["10.0.0.12", {"goto": {"target": "vip-2"}}]]}}}]),
        ]
    );
    assert_eq!(
        rules_of(&cmds, "vip-0"),
        vec![json!([{"dnat": {"addr": {"map": {
            "key": {"numgen": {"mode": "random", "mod": 2}},
            "data": {"set": [[0, "10.0.0.2"], [1, "10.0.0.3"]]}}}}}])]
    );
    // One backend: no numgen; no port: the destination port is kept.
    assert_eq!(
        rules_of(&cmds, "vip-2"),
        vec![json!([{"dnat": {"addr": "10.0.0.4"}}])]
    );
    assert_eq!(chain_named(&cmds, "refuse")["hook"], "output");
    assert_eq!(
        rules_of(&cmds, "refuse"),
        vec![
            json!([
                {"match": {"left": {"payload": {"protocol": "ip", "field": "daddr"}},
                           "right": {"set": ["10.0.0.11"]}, "op": "=="}},
                {"match": {"left": {"meta": {"key": "l4proto"}}, "right": "tcp", "op": "=="}},
                {"reject": {"type": "tcp reset"}}
            ]),
            json!([
                {"match": {"left": {"payload": {"protocol": "ip", "field": "daddr"}},
                           "right": {"set": ["10.0.0.11"]}, "op": "=="}},
                {"reject": {"type": "icmp", "expr": "port-unreachable"}}
            ]),
        ]
    );
}

#[test]
fn no_vips_still_keep_conntrack_hooked_and_nothing_else() {
    let cmds = commands(vip_batch(&[]).expect("valid"));
    assert!(replaces(&cmds, "shoal-lb"));
    assert_eq!(chain_named(&cmds, "vips")["type"], "nat");
    // The rule that keeps conntrack hooked, and nothing else.
    assert_eq!(rules_of(&cmds, "vips").len(), 1);
    assert_eq!(cmds.len(), 5, "{cmds:#?}");
}

#[test]
fn a_vip_listed_twice_is_refused_by_name() {
    let v = Vip {
        vip: Ipv4Addr::new(10, 0, 0, 10),
        backends: vec![],
    };
    let e = vip_batch(&[v.clone(), v]).expect_err("duplicate");
    assert!(e.to_string().contains("10.0.0.10 is listed twice"), "{e}");
    assert_eq!(field_of(e), "vips[1].vip");
}

#[test]
fn masquerade_leaves_the_bridge_out_and_accepts_its_forwarding() {
    let subnet: Ipv4Net = "172.18.0.0/16".parse().expect("cidr");
    let cmds = commands(masquerade_batch("gw", subnet, "shgw0").expect("valid"));
    assert!(replaces(&cmds, "shoal-gw-gw"));
    assert_eq!(chain_named(&cmds, "postrouting")["prio"], 100);
    let saddr = json!({"match": {"left": {"payload": {"protocol": "ip", "field": "saddr"}},
        "right": {"prefix": {"addr": "172.18.0.0", "len": 16}}, "op": "=="}});
    assert_eq!(
        rules_of(&cmds, "postrouting"),
        vec![json!([saddr,
            {"match": {"left": {"meta": {"key": "oifname"}}, "right": "shgw0", "op": "!="}},
            {"masquerade": null}])]
    );
    let forward = rules_of(&cmds, "forward");
    assert_eq!(forward.len(), 2);
    assert_eq!(forward[0][1], saddr);
    assert_eq!(
        forward[1][2]["match"]["right"],
        json!(["established", "related"])
    );
    // Host bits in the subnet do not leak into the prefix.
    let cmds = commands(
        masquerade_batch("gw", "172.18.3.4/16".parse().expect("cidr"), "b").expect("valid"),
    );
    assert_eq!(rules_of(&cmds, "postrouting")[0][0], saddr);
}

#[test]
fn names_that_nft_or_iptables_would_misread_are_refused() {
    let subnet: Ipv4Net = "10.1.0.0/24".parse().expect("cidr");
    for (name, bridge, field) in [
        ("", "br0", "name"),
        ("a b", "br0", "name"),
        ("1gw", "br0", "name"),
        ("gw", "br+", "bridge"),
        ("gw", "", "bridge"),
        ("gw", "a-very-long-interface", "bridge"),
        ("gw", "br0\"; flush ruleset", "bridge"),
    ] {
        let e = masquerade_batch(name, subnet, bridge).expect_err(name);
        assert_eq!(field_of(e), field, "{name:?} {bridge:?}");
    }
}

#[test]
fn published_ports_dnat_local_addresses_to_backends_with_their_ports() {
    let a = Ipv4Addr::new(10, 0, 0, 2);
    let b = Ipv4Addr::new(10, 0, 0, 3);
    let cmds = commands(
        published_batch(
            "pub",
            &[
                Published {
                    proto: Proto::Tcp,
                    port: 8080,
                    backends: vec![(a, 80), (b, 81)],
                },
                Published {
                    proto: Proto::Udp,
                    port: 53,
                    backends: vec![(a, 5353)],
                },
                Published {
                    proto: Proto::Tcp,
                    port: 9,
                    backends: vec![],
                },
            ],
        )
        .expect("valid"),
    );
    assert!(replaces(&cmds, "pub"));
    for (chain, hook) in [("prerouting", "prerouting"), ("output", "output")] {
        assert_eq!(chain_named(&cmds, chain)["hook"], hook);
        assert_eq!(chain_named(&cmds, chain)["prio"], -100);
        assert_eq!(
            rules_of(&cmds, chain),
            vec![json!([
                {"match": {"left": {"fib": {"result": "type", "flags": ["daddr"]}},
                           "right": "local", "op": "=="}},
                {"vmap": {
                    "key": {"concat": [{"meta": {"key": "l4proto"}},
                                       {"payload": {"protocol": "th", "field": "dport"}}]},
                    "data": {"set": [
                        [{"concat": ["tcp", 8080]}, {"goto": {"target": "tcp-8080"}}],
                        [{"concat": ["udp", 53]}, {"goto": {"target": "udp-53"}}]]}}}
            ])],
            "{chain}"
        );
    }
    assert_eq!(
        rules_of(&cmds, "tcp-8080"),
        vec![json!([
            {"match": {"left": {"meta": {"key": "l4proto"}}, "right": "tcp", "op": "=="}},
            {"dnat": {"family": "ip", "addr": {"map": {
                "key": {"numgen": {"mode": "random", "mod": 2}},
                "data": {"set": [[0, {"concat": ["10.0.0.2", 80]}],
                                 [1, {"concat": ["10.0.0.3", 81]}]]}}}}}
        ])]
    );
    assert_eq!(
        rules_of(&cmds, "udp-53"),
        vec![json!([
            {"match": {"left": {"meta": {"key": "l4proto"}}, "right": "udp", "op": "=="}},
            {"dnat": {"addr": "10.0.0.2", "port": 5353}}
        ])]
    );
    assert_eq!(
        chain_named(&cmds, "tcp-9"),
        Value::Null,
        "no backends, no chain"
    );
    // Only loopback sources are masqueraded.
    let post = rules_of(&cmds, "postrouting");
    assert_eq!(post.len(), 1);
    assert_eq!(
        post[0][0]["match"]["right"],
        json!({"prefix": {"addr": "127.0.0.0", "len": 8}})
    );
    assert_eq!(post[0][2], json!({"masquerade": null}));
    // The guard against outside packets for 127.0.0.0/8, re-created in the same transaction.
    let guard: Vec<&Value> = cmds
        .iter()
        .filter(|c| c.to_string().contains("shoal-localnet"))
        .collect();
    assert_eq!(guard.len(), 5, "{guard:#?}");
    assert_eq!(guard[3]["add"]["chain"]["prio"], -300);
    assert_eq!(guard[4]["add"]["rule"]["expr"][2], json!({"drop": null}));
}

#[test]
fn published_ports_refuse_what_nft_would_reject() {
    let a = Ipv4Addr::new(10, 0, 0, 2);
    let p = |proto, port, backend_port| Published {
        proto,
        port,
        backends: vec![(a, backend_port)],
    };
    let cases = [
        (vec![p(Proto::Tcp, 0, 80)], "ports[0].port"),
        (vec![p(Proto::Tcp, 80, 0)], "ports[0].backends[0]"),
        (
            vec![p(Proto::Tcp, 80, 80), p(Proto::Tcp, 80, 81)],
            "ports[1]",
        ),
    ];
    for (ports, field) in cases {
        assert_eq!(
            field_of(published_batch("pub", &ports).expect_err(field)),
            field
        );
    }
    // The same port on both protocols is two ports.
    published_batch("pub", &[p(Proto::Tcp, 80, 80), p(Proto::Udp, 80, 80)]).expect("valid");
    for table in ["shoal-lb", "shoal-rp", "shoal-localnet", "", "a.b"] {
        assert_eq!(
            field_of(published_batch(table, &[]).expect_err(table)),
            "table"
        );
    }
}

#[test]
fn return_paths_mark_by_source_mac_and_restore_marks_on_replies() {
    let paths = [
        ReturnPath {
            mark: 1,
            mac: [0x02, 0x42, 0x0a, 0xff, 0, 2],
            via: Ipv4Addr::new(10, 255, 0, 2),
        },
        ReturnPath {
            mark: 300,
            mac: [0x02, 0x42, 0x0a, 0xff, 0, 0x1b],
            via: Ipv4Addr::new(10, 255, 0, 3),
        },
    ];
    let cmds = commands(return_path_batch("eth0", &paths).expect("valid"));
    assert!(replaces(&cmds, "shoal-rp"));
    assert_eq!(chain_named(&cmds, "remember")["hook"], "prerouting");
    assert_eq!(chain_named(&cmds, "remember")["prio"], -150);
    assert_eq!(
        rules_of(&cmds, "remember"),
        vec![json!([
            {"match": {"left": {"meta": {"key": "iifname"}}, "right": "eth0", "op": "=="}},
            {"match": {"left": {"ct": {"key": "state"}}, "right": "new", "op": "in"}},
            {"mangle": {"key": {"ct": {"key": "mark"}}, "value": {"map": {
                "key": {"payload": {"protocol": "ether", "field": "saddr"}},
                "data": {"set": [["02:42:0a:ff:00:02", 1], ["02:42:0a:ff:00:1b", 300]]}}}}}
        ])]
    );
    assert_eq!(chain_named(&cmds, "restore")["type"], "route");
    assert_eq!(
        rules_of(&cmds, "restore"),
        vec![json!([
            {"match": {"left": {"ct": {"key": "direction"}}, "right": "reply", "op": "=="}},
            {"match": {"left": {"ct": {"key": "mark"}}, "right": 0, "op": "!="}},
            {"mangle": {"key": {"meta": {"key": "mark"}}, "value": {"ct": {"key": "mark"}}}}
        ])]
    );
}

#[test]
fn return_paths_refuse_marks_that_would_misroute() {
    let path = |mark, last| ReturnPath {
        mark,
        mac: [2, 0x42, 0, 0, 0, last],
        via: Ipv4Addr::new(10, 0, 0, 1),
    };
    for mark in [0, 253, 254, 255] {
        let e = return_path_batch("eth0", &[path(mark, 1)]).expect_err("reserved");
        assert_eq!(field_of(e), "paths[0].mark", "{mark}");
    }
    let e = return_path_batch("eth0", &[path(5, 1), path(5, 2)]).expect_err("twice");
    assert_eq!(field_of(e), "paths[1].mark");
    let e = return_path_batch("eth0", &[path(5, 1), path(6, 1)]).expect_err("twice");
    assert_eq!(field_of(e), "paths[1].mac");
    assert_eq!(
        field_of(return_path_batch("", &[]).expect_err("iface")),
        "iface"
    );
    // None: the table goes, nothing is added.
    let cmds = commands(return_path_batch("eth0", &[]).expect("valid"));
    assert_eq!(cmds.len(), 2);
    assert_eq!(
        cmds[1],
        json!({"delete": {"table": {"family": "ip", "name": "shoal-rp"}}})
    );
}
