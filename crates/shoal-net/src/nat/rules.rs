//! The pure half of [`super`]: the nftables transaction each call applies, built from its
//! arguments alone (no namespace, no `nft`), so what would be applied is testable without root.
//! Every builder checks its arguments first and refuses, naming the field, what nft would
//! reject or misread. Chain names avoid nft's keywords (`dnat`, `mark`): `nft list ruleset`
//! prints them bare, and nft could not read such a listing back.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{
    CT, Expression, Fib, FibFlag, FibResult, Map, Meta, MetaKey, NamedExpression, NgMode, Numgen,
    Payload, PayloadField, Prefix, SetItem, Verdict,
};
use nftables::schema::{Chain, NfListObject, Rule, Table};
use nftables::stmt::{
    Counter, JumpTarget, Mangle, Match, NAT, NATFamily, Operator, Reject, RejectType, Statement,
    VerdictMap,
};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook, RejectCode};

use super::{LB_TABLE, LOCALNET_TABLE, Published, RP_TABLE, ReturnPath, Vip};
use crate::NetError;

pub(super) mod local;

/// nftables' standard priorities, as numbers: nft 1.0.6 rejects `dstnat` in an output chain.
const PRIO_RAW: i32 = -300;
const PRIO_MANGLE: i32 = -150;
const PRIO_DSTNAT: i32 = -100;
const PRIO_FILTER: i32 = 0;
const PRIO_SRCNAT: i32 = 100;

pub(super) fn vip_batch(vips: &[Vip]) -> Result<Batch<'static>, NetError> {
    let mut seen = HashSet::new();
    for (i, v) in vips.iter().enumerate() {
        if !seen.insert(v.vip) {
            return Err(invalid(
                format!("vips[{i}].vip"),
                format!("{} is listed twice", v.vip),
            ));
        }
    }
    let t = LB_TABLE;
    let mut b = fresh_table(t);
    b.add(base_chain(
        t,
        "vips",
        NfChainType::NAT,
        NfHook::Output,
        PRIO_DSTNAT,
    ));
    // nftables hooks conntrack into a namespace only while a rule uses it (a `ct` match, a
    // `dnat`), not for a nat chain alone. Without this rule, a table with no backend left
    // would unhook it: established connections, though still listed by `conntrack -L`, would
    // go untracked and so untranslated. The counter shows the new connections seen.
    b.add(rule(
        t,
        "vips",
        vec![
            Statement::Match(Match {
                left: ct("state"),
                right: s("new"),
                op: Operator::IN,
            }),
            Statement::Counter(Counter::Anonymous(None)),
        ],
    ));
    let mut dispatch = Vec::new();
    let mut refused = Vec::new();
    for (i, v) in vips.iter().enumerate() {
        if v.backends.is_empty() {
            refused.push(SetItem::Element(ip(v.vip)));
            continue;
        }
        let chain = format!("vip-{i}");
        b.add(plain_chain(t, &chain));
        let addr = pick(
            v.backends.iter().map(|a| ip(*a)).collect(),
            &format!("vips[{i}]"),
        )?;
        b.add(rule(t, &chain, vec![dnat(addr, None, None)]));
        dispatch.push(SetItem::Mapping(ip(v.vip), goto(&chain)));
    }
    if !dispatch.is_empty() {
        b.add(rule(t, "vips", vec![vmap(field("ip", "daddr"), dispatch)]));
    }
    if !refused.is_empty() {
        b.add(base_chain(
            t,
            "refuse",
            NfChainType::Filter,
            NfHook::Output,
            PRIO_FILTER,
        ));
        let set = Expression::Named(NamedExpression::Set(refused));
        b.add(rule(
            t,
            "refuse",
            vec![
                eq(field("ip", "daddr"), set.clone()),
                eq(meta(MetaKey::L4proto), s("tcp")),
                Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None))),
            ],
        ));
        b.add(rule(
            t,
            "refuse",
            vec![
                eq(field("ip", "daddr"), set),
                Statement::Reject(Some(Reject::new(
                    Some(RejectType::ICMP),
                    Some(RejectCode::PortUnreach),
                ))),
            ],
        ));
    }
    Ok(b)
}

pub(super) fn gateway_table(name: &str) -> String {
    format!("shoal-gw-{name}")
}

pub(super) fn masquerade_batch(
    name: &str,
    subnet: Ipv4Net,
    bridge: &str,
) -> Result<Batch<'static>, NetError> {
    check_name("name", name)?;
    check_ifname("bridge", bridge)?;
    let t = &gateway_table(name);
    let mut b = fresh_table(t);
    b.add(base_chain(
        t,
        "postrouting",
        NfChainType::NAT,
        NfHook::Postrouting,
        PRIO_SRCNAT,
    ));
    b.add(rule(
        t,
        "postrouting",
        vec![
            eq(field("ip", "saddr"), prefix(subnet)),
            ne(meta(MetaKey::Oifname), s(bridge)),
            Statement::Masquerade(None),
        ],
    ));
    b.add(base_chain(
        t,
        "forward",
        NfChainType::Filter,
        NfHook::Forward,
        PRIO_FILTER,
    ));
    b.add(rule(
        t,
        "forward",
        vec![
            eq(meta(MetaKey::Iifname), s(bridge)),
            eq(field("ip", "saddr"), prefix(subnet)),
            Statement::Accept(None),
        ],
    ));
    b.add(rule(
        t,
        "forward",
        vec![
            eq(meta(MetaKey::Oifname), s(bridge)),
            eq(field("ip", "daddr"), prefix(subnet)),
            Statement::Match(Match {
                left: ct("state"),
                right: Expression::List(vec![s("established"), s("related")]),
                op: Operator::IN,
            }),
            Statement::Accept(None),
        ],
    ));
    Ok(b)
}

pub(super) fn published_batch(
    table: &str,
    ports: &[Published],
) -> Result<Batch<'static>, NetError> {
    check_name("table", table)?;
    if table == LOCALNET_TABLE || table == LB_TABLE || table == RP_TABLE {
        return Err(invalid(
            "table",
            format!("{table} is a table of shoal's own"),
        ));
    }
    let mut seen = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        if p.port == 0 {
            return Err(invalid(format!("ports[{i}].port"), "0 is not a port"));
        }
        if !seen.insert((p.proto, p.port)) {
            return Err(invalid(
                format!("ports[{i}]"),
                format!("{}/{} is listed twice", p.port, p.proto.name()),
            ));
        }
        if let Some(j) = p.backends.iter().position(|(_, port)| *port == 0) {
            return Err(invalid(
                format!("ports[{i}].backends[{j}]"),
                "0 is not a port",
            ));
        }
    }
    let t = table;
    let mut b = fresh_table(t);
    b.add(base_chain(
        t,
        "prerouting",
        NfChainType::NAT,
        NfHook::Prerouting,
        PRIO_DSTNAT,
    ));
    b.add(base_chain(
        t,
        "output",
        NfChainType::NAT,
        NfHook::Output,
        PRIO_DSTNAT,
    ));
    b.add(base_chain(
        t,
        "postrouting",
        NfChainType::NAT,
        NfHook::Postrouting,
        PRIO_SRCNAT,
    ));
    let mut dispatch = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        if p.backends.is_empty() {
            continue;
        }
        let chain = format!("{}-{}", p.proto.name(), p.port);
        b.add(plain_chain(t, &chain));
        let targets = p
            .backends
            .iter()
            .map(|(a, port)| concat(vec![ip(*a), num(*port)]));
        let translate = match p.backends.as_slice() {
            [(a, port)] => dnat(ip(*a), Some(num(*port)), None),
            _ => dnat(
                pick(targets.collect(), &format!("ports[{i}]"))?,
                None,
                Some(NATFamily::IP),
            ),
        };
        // nft takes a port translation only after a match on the transport protocol.
        b.add(rule(
            t,
            &chain,
            vec![eq(meta(MetaKey::L4proto), s(p.proto.name())), translate],
        ));
        dispatch.push(SetItem::Mapping(
            concat(vec![s(p.proto.name()), num(p.port)]),
            goto(&chain),
        ));
    }
    if !dispatch.is_empty() {
        let local = eq(fib_daddr_type(), s("local"));
        let key = concat(vec![meta(MetaKey::L4proto), field("th", "dport")]);
        let to_port = vmap(key, dispatch);
        b.add(rule(t, "prerouting", vec![local.clone(), to_port.clone()]));
        b.add(rule(t, "output", vec![local, to_port]));
    }
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
    localnet_guard(&mut b);
    Ok(b)
}

/// Re-created with every published table: `route_localnet` lets packets for 127.0.0.0/8 in
/// from the wire, reaching whatever listens on the node's loopback; this drops them before
/// anything else sees them, leaving the node's own loopback traffic (on `lo`) alone.
fn localnet_guard(b: &mut Batch<'static>) {
    let t = LOCALNET_TABLE;
    recreate(b, t);
    b.add(base_chain(
        t,
        "guard",
        NfChainType::Filter,
        NfHook::Prerouting,
        PRIO_RAW,
    ));
    b.add(rule(
        t,
        "guard",
        vec![
            ne(meta(MetaKey::Iifname), s("lo")),
            eq(field("ip", "daddr"), prefix(loopback_net())),
            Statement::Drop(None),
        ],
    ));
}

pub(super) fn return_path_batch(
    iface: &str,
    paths: &[ReturnPath],
) -> Result<Batch<'static>, NetError> {
    check_ifname("iface", iface)?;
    let (mut marks, mut macs) = (HashSet::new(), HashSet::new());
    for (i, p) in paths.iter().enumerate() {
        if matches!(p.mark, 0 | 253..=255) {
            return Err(invalid(
                format!("paths[{i}].mark"),
                format!(
                    "{} is a mark that matches everything or a kernel's table",
                    p.mark
                ),
            ));
        }
        if !marks.insert(p.mark) {
            return Err(invalid(
                format!("paths[{i}].mark"),
                format!("{} is listed twice", p.mark),
            ));
        }
        if !macs.insert(p.mac) {
            return Err(invalid(
                format!("paths[{i}].mac"),
                format!("{} is listed twice", mac_text(p.mac)),
            ));
        }
    }
    if paths.is_empty() {
        return Ok(remove_table_batch(RP_TABLE));
    }
    let t = RP_TABLE;
    let mut b = fresh_table(t);
    // After conntrack (-200), so the connection's state and mark are known.
    b.add(base_chain(
        t,
        "remember",
        NfChainType::Filter,
        NfHook::Prerouting,
        PRIO_MANGLE,
    ));
    let by_mac = paths
        .iter()
        .map(|p| SetItem::Mapping(s(&mac_text(p.mac)), Expression::Number(p.mark)))
        .collect();
    b.add(rule(
        t,
        "remember",
        vec![
            eq(meta(MetaKey::Iifname), s(iface)),
            Statement::Match(Match {
                left: ct("state"),
                right: s("new"),
                op: Operator::IN,
            }),
            Statement::Mangle(Mangle {
                key: ct("mark"),
                value: Expression::Named(NamedExpression::Map(Box::new(Map {
                    key: field("ether", "saddr"),
                    data: Expression::Named(NamedExpression::Set(by_mac)),
                }))),
            }),
        ],
    ));
    // A `route` chain: a mark changed there makes the kernel route the packet again.
    b.add(base_chain(
        t,
        "restore",
        NfChainType::Route,
        NfHook::Output,
        PRIO_MANGLE,
    ));
    b.add(rule(
        t,
        "restore",
        vec![
            eq(ct("direction"), s("reply")),
            ne(ct("mark"), Expression::Number(0)),
            Statement::Mangle(Mangle {
                key: meta(MetaKey::Mark),
                value: ct("mark"),
            }),
        ],
    ));
    Ok(b)
}

/// `add` then `delete`: gone whether or not it was there, in the same transaction as the rest.
pub(super) fn remove_table_batch(table: &str) -> Batch<'static> {
    let mut b = Batch::new();
    b.add(NfListObject::Table(table_obj(table)));
    b.delete(NfListObject::Table(table_obj(table)));
    b
}

/// An empty `table`, whatever was there before.
fn fresh_table(table: &str) -> Batch<'static> {
    let mut b = Batch::new();
    recreate(&mut b, table);
    b
}

fn recreate(b: &mut Batch<'static>, table: &str) {
    b.add(NfListObject::Table(table_obj(table)));
    b.delete(NfListObject::Table(table_obj(table)));
    b.add(NfListObject::Table(table_obj(table)));
}

fn table_obj(name: &str) -> Table<'static> {
    Table {
        family: NfFamily::IP,
        name: Cow::Owned(name.to_owned()),
        handle: None,
    }
}

fn plain_chain(table: &str, name: &str) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: NfFamily::IP,
        table: Cow::Owned(table.to_owned()),
        name: Cow::Owned(name.to_owned()),
        ..Chain::default()
    })
}

fn base_chain(
    table: &str,
    name: &str,
    kind: NfChainType,
    hook: NfHook,
    prio: i32,
) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: NfFamily::IP,
        table: Cow::Owned(table.to_owned()),
        name: Cow::Owned(name.to_owned()),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    })
}

fn rule(table: &str, chain: &str, expr: Vec<Statement<'static>>) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family: NfFamily::IP,
        table: Cow::Owned(table.to_owned()),
        chain: Cow::Owned(chain.to_owned()),
        expr: Cow::Owned(expr),
        ..Rule::default()
    })
}

fn s(text: &str) -> Expression<'static> {
    Expression::String(Cow::Owned(text.to_owned()))
}

fn ip(a: Ipv4Addr) -> Expression<'static> {
    s(&a.to_string())
}

fn num(n: u16) -> Expression<'static> {
    Expression::Number(u32::from(n))
}

fn field(protocol: &str, name: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Owned(protocol.to_owned()),
            field: Cow::Owned(name.to_owned()),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn ct(key: &str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Owned(key.to_owned()),
        family: None,
        dir: None,
    }))
}

fn concat(parts: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(parts))
}

fn prefix(net: Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(ip(net.network())),
        len: u32::from(net.prefix_len()),
    }))
}

fn loopback_net() -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)
}

fn fib_daddr_type() -> Expression<'static> {
    Expression::Named(NamedExpression::Fib(Fib {
        result: FibResult::Type,
        flags: [FibFlag::Daddr].into_iter().collect(),
    }))
}

fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn ne(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::NEQ,
    })
}

fn goto(chain: &str) -> Expression<'static> {
    Expression::Verdict(Verdict::Goto(JumpTarget {
        target: Cow::Owned(chain.to_owned()),
    }))
}

fn vmap(key: Expression<'static>, items: Vec<SetItem<'static>>) -> Statement<'static> {
    Statement::VerdictMap(VerdictMap {
        key,
        data: Expression::Named(NamedExpression::Set(items)),
    })
}

fn dnat(
    addr: Expression<'static>,
    port: Option<Expression<'static>>,
    family: Option<NATFamily>,
) -> Statement<'static> {
    Statement::DNAT(Some(NAT {
        addr: Some(addr),
        family,
        port,
        flags: None,
    }))
}

/// One of `targets` at random per new connection: `numgen random mod N map { 0 : t0, ... }`,
/// or the target itself when there is one.
fn pick(
    mut targets: Vec<Expression<'static>>,
    field: &str,
) -> Result<Expression<'static>, NetError> {
    if targets.len() == 1 {
        return Ok(targets.remove(0));
    }
    let n = u32::try_from(targets.len())
        .map_err(|_| invalid(format!("{field}.backends"), "more than 2^32 backends"))?;
    let items = (0..n)
        .zip(targets)
        .map(|(i, t)| SetItem::Mapping(Expression::Number(i), t));
    Ok(Expression::Named(NamedExpression::Map(Box::new(Map {
        key: Expression::Named(NamedExpression::Numgen(Numgen {
            mode: NgMode::Random,
            ng_mod: n,
            offset: None,
        })),
        data: Expression::Named(NamedExpression::Set(items.collect())),
    }))))
}

pub(super) fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub(super) fn invalid(field: impl Into<String>, why: impl Into<String>) -> NetError {
    NetError::InvalidArgument {
        field: field.into(),
        why: why.into(),
    }
}

/// Table names: they also name things in error messages and `nft list` output.
pub(super) fn check_name(field: &str, name: &str) -> Result<(), NetError> {
    let ok = (1..=48).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "{name:?}: expected 1 to 48 letters, digits, '-' or '_', starting with a letter"
            ),
        ))
    }
}

/// Interface names as the kernel takes them, minus what iptables reads specially (`+`, `!`).
pub(super) fn check_ifname(field: &str, name: &str) -> Result<(), NetError> {
    let ok = (1..=15).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "{name:?}: expected an interface name (1 to 15 letters, digits, '-', '_' or '.')"
            ),
        ))
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
