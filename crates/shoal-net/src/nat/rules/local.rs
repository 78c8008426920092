//! The table of a node's local bridge networks ([`super::super::BRIDGES_TABLE`]): built from
//! the whole set of networks and published ports at once, so one transaction always leaves
//! the firewall matching one state of the node.

use std::collections::HashSet;

use nftables::batch::Batch;
use nftables::expr::{Expression, MetaKey, SetItem};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainType, NfHook};

use super::{
    PRIO_DSTNAT, PRIO_FILTER, PRIO_SRCNAT, base_chain, check_ifname, concat, ct, dnat, eq,
    fib_daddr_type, field, fresh_table, goto, invalid, ip, localnet_guard, loopback_net, meta, ne,
    num, plain_chain, prefix, rule, s, vmap,
};
use crate::NetError;
use crate::nat::{BRIDGES_TABLE, BridgeNet, BridgePort};

pub(in crate::nat) fn bridges_batch(
    nets: &[BridgeNet],
    others: &[String],
    ports: &[BridgePort],
) -> Result<Batch<'static>, NetError> {
    let mut names = HashSet::new();
    for (i, n) in nets.iter().enumerate() {
        check_ifname(&format!("nets[{i}].bridge"), &n.bridge)?;
        if !names.insert(n.bridge.as_str()) {
            return Err(invalid(
                format!("nets[{i}].bridge"),
                format!("{} is listed twice", n.bridge),
            ));
        }
    }
    for (i, o) in others.iter().enumerate() {
        check_ifname(&format!("others[{i}]"), o)?;
    }
    let mut seen = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        if p.port == 0 || p.to.1 == 0 {
            return Err(invalid(format!("ports[{i}]"), "0 is not a port"));
        }
        if !seen.insert((p.proto, p.host_ip, p.port)) {
            return Err(invalid(
                format!("ports[{i}]"),
                format!("{}/{} is listed twice", p.port, p.proto.name()),
            ));
        }
    }
    let t = BRIDGES_TABLE;
    let mut b = fresh_table(t);
    b.add(base_chain(
        t,
        "forward",
        NfChainType::Filter,
        NfHook::Forward,
        PRIO_FILTER,
    ));
    // An internal network keeps to itself, published ports included (as Docker's).
    for n in nets.iter().filter(|n| n.internal) {
        let br = || s(&n.bridge);
        b.add(rule(
            t,
            "forward",
            vec![
                eq(meta(MetaKey::Iifname), br()),
                ne(meta(MetaKey::Oifname), br()),
                Statement::Drop(None),
            ],
        ));
        b.add(rule(
            t,
            "forward",
            vec![
                eq(meta(MetaKey::Oifname), br()),
                ne(meta(MetaKey::Iifname), br()),
                Statement::Drop(None),
            ],
        ));
    }
    // A published port is the node's service: any network may reach it, and its replies go
    // back the same way.
    b.add(rule(
        t,
        "forward",
        vec![
            Statement::Match(Match {
                left: ct("status"),
                right: s("dnat"),
                op: Operator::IN,
            }),
            Statement::Accept(None),
        ],
    ));
    // Docker's isolation between bridge networks: nothing routed from one to another.
    let all: Vec<&str> = nets
        .iter()
        .map(|n| n.bridge.as_str())
        .chain(others.iter().map(String::as_str))
        .collect();
    for from in nets
        .iter()
        .map(|n| n.bridge.as_str())
        .chain(others.iter().map(String::as_str))
    {
        let to: Vec<SetItem<'static>> = all
            .iter()
            .filter(|o| **o != from)
            .map(|o| SetItem::Element(s(o)))
            .collect();
        if to.is_empty() {
            continue;
        }
        b.add(rule(
            t,
            "forward",
            vec![
                eq(meta(MetaKey::Iifname), s(from)),
                eq(
                    meta(MetaKey::Oifname),
                    Expression::Named(nftables::expr::NamedExpression::Set(to)),
                ),
                Statement::Drop(None),
            ],
        ));
    }
    b.add(base_chain(
        t,
        "postrouting",
        NfChainType::NAT,
        NfHook::Postrouting,
        PRIO_SRCNAT,
    ));
    for n in nets {
        if !n.internal {
            b.add(rule(
                t,
                "postrouting",
                vec![
                    eq(field("ip", "saddr"), prefix(n.subnet)),
                    ne(meta(MetaKey::Oifname), s(&n.bridge)),
                    Statement::Masquerade(None),
                ],
            ));
        }
        // A container reaching a published port of its own network: the reply must come
        // back through the node to be translated, not straight over the bridge.
        b.add(rule(
            t,
            "postrouting",
            vec![
                eq(meta(MetaKey::Oifname), s(&n.bridge)),
                eq(field("ip", "saddr"), prefix(n.subnet)),
                Statement::Match(Match {
                    left: ct("status"),
                    right: s("dnat"),
                    op: Operator::IN,
                }),
                Statement::Masquerade(None),
            ],
        ));
    }
    if ports.is_empty() {
        return Ok(b);
    }
    // The node itself reaching a published port at 127.0.0.1: that source cannot leave it.
    b.add(rule(
        t,
        "postrouting",
        vec![
            eq(field("ip", "saddr"), prefix(loopback_net())),
            Statement::Match(Match {
                left: ct("status"),
                right: s("dnat"),
                op: Operator::IN,
            }),
            Statement::Masquerade(None),
        ],
    ));
    for (name, hook) in [
        ("prerouting", NfHook::Prerouting),
        ("output", NfHook::Output),
    ] {
        b.add(base_chain(t, name, NfChainType::NAT, hook, PRIO_DSTNAT));
    }
    let (mut any, mut one) = (Vec::new(), Vec::new());
    for (i, p) in ports.iter().enumerate() {
        let chain = format!("hostport-{i}");
        b.add(plain_chain(t, &chain));
        // nft takes a port translation only after a match on the transport protocol.
        b.add(rule(
            t,
            &chain,
            vec![
                eq(meta(MetaKey::L4proto), s(p.proto.name())),
                dnat(ip(p.to.0), Some(num(p.to.1)), None),
            ],
        ));
        match p.host_ip {
            None => any.push(SetItem::Mapping(
                concat(vec![s(p.proto.name()), num(p.port)]),
                goto(&chain),
            )),
            Some(a) => one.push(SetItem::Mapping(
                concat(vec![ip(a), s(p.proto.name()), num(p.port)]),
                goto(&chain),
            )),
        }
    }
    for chain in ["prerouting", "output"] {
        if !one.is_empty() {
            let key = concat(vec![
                field("ip", "daddr"),
                meta(MetaKey::L4proto),
                field("th", "dport"),
            ]);
            b.add(rule(t, chain, vec![vmap(key, one.clone())]));
        }
        if !any.is_empty() {
            let key = concat(vec![meta(MetaKey::L4proto), field("th", "dport")]);
            b.add(rule(
                t,
                chain,
                vec![eq(fib_daddr_type(), s("local")), vmap(key, any.clone())],
            ));
        }
    }
    localnet_guard(&mut b);
    Ok(b)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use serde_json::{Value, json};

    use super::*;
    use crate::nat::Proto;

    fn commands(b: Batch<'static>) -> Vec<Value> {
        let v = serde_json::to_value(b.to_nftables()).expect("encode");
        v["nftables"].as_array().expect("commands").clone()
    }

    fn rules_of(cmds: &[Value], chain: &str) -> Vec<Value> {
        cmds.iter()
            .filter_map(|c| c.get("add")?.get("rule"))
            .filter(|r| r["table"] == BRIDGES_TABLE && r["chain"] == chain)
            .map(|r| r["expr"].clone())
            .collect()
    }

    fn net(bridge: &str, subnet: &str, internal: bool) -> BridgeNet {
        BridgeNet {
            bridge: bridge.into(),
            subnet: subnet.parse().expect("subnet"),
            internal,
        }
    }

    #[test]
    fn networks_are_masqueraded_isolated_and_their_ports_published() {
        let nets = [
            net("br-a", "172.17.0.0/16", false),
            net("br-b", "172.19.0.0/16", true),
        ];
        let ports = [
            BridgePort {
                proto: Proto::Tcp,
                host_ip: None,
                port: 8080,
                to: (Ipv4Addr::new(172, 17, 0, 2), 80),
            },
            BridgePort {
                proto: Proto::Udp,
                host_ip: Some(Ipv4Addr::LOCALHOST),
                port: 5353,
                to: (Ipv4Addr::new(172, 17, 0, 3), 53),
            },
        ];
        let cmds = commands(bridges_batch(&nets, &["gw0".into()], &ports).expect("valid"));
        let forward = rules_of(&cmds, "forward");
        // Internal in and out, the published ports' accept, then one isolation rule each.
        assert_eq!(forward.len(), 2 + 1 + 3, "{forward:#?}");
        assert_eq!(
            forward[3],
            json!([
                {"match": {"left": {"meta": {"key": "iifname"}}, "right": "br-a", "op": "=="}},
                {"match": {"left": {"meta": {"key": "oifname"}}, "right": {"set": ["br-b", "gw0"]}, "op": "=="}},
                {"drop": null}
            ])
        );
        let post = rules_of(&cmds, "postrouting");
        // br-a: out and hairpin; br-b (internal): hairpin only; the node's loopback.
        assert_eq!(post.len(), 4, "{post:#?}");
        let pre = rules_of(&cmds, "prerouting");
        assert_eq!(pre, rules_of(&cmds, "output"));
        assert_eq!(
            pre[0],
            json!([{"vmap": {
                "key": {"concat": [{"payload": {"protocol": "ip", "field": "daddr"}},
                                   {"meta": {"key": "l4proto"}},
                                   {"payload": {"protocol": "th", "field": "dport"}}]},
                "data": {"set": [[{"concat": ["127.0.0.1", "udp", 5353]}, {"goto": {"target": "hostport-1"}}]]}}}])
        );
        assert_eq!(
            rules_of(&cmds, "hostport-0"),
            vec![json!([
                {"match": {"left": {"meta": {"key": "l4proto"}}, "right": "tcp", "op": "=="}},
                {"dnat": {"addr": "172.17.0.2", "port": 80}}
            ])]
        );
    }

    #[test]
    fn without_ports_there_is_no_translation_and_bad_input_is_named() {
        let cmds = commands(
            bridges_batch(&[net("br-a", "172.17.0.0/16", false)], &[], &[]).expect("valid"),
        );
        assert!(rules_of(&cmds, "prerouting").is_empty());
        assert_eq!(
            rules_of(&cmds, "forward").len(),
            1,
            "the published accept only"
        );
        let twice = [
            net("br-a", "172.17.0.0/16", false),
            net("br-a", "172.18.0.0/16", false),
        ];
        match bridges_batch(&twice, &[], &[]) {
            Err(NetError::InvalidArgument { field, .. }) => assert_eq!(field, "nets[1].bridge"),
            other => panic!("expected the second bridge refused, got {other:?}"),
        }
    }
}
