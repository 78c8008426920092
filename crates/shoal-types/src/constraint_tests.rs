//! Unit tests of the constraint grammar and its matching semantics.

use super::*;
use crate::{Id, NodeRole};

fn node() -> Node {
    let mut n = Node {
        id: Id::from_raw("n1"),
        ..Node::default()
    };
    n.description.hostname = "worker-1".into();
    n.description.platform.os = "linux".into();
    n.description.platform.arch = "x86_64".into();
    n.spec.labels.insert("zone".into(), "east".into());
    n.spec.labels.insert("Tier".into(), "web".into());
    n.description
        .engine
        .labels
        .insert("storage".into(), "ssd".into());
    n.status.addr = "10.0.1.7".into();
    n
}

fn kind(expr: &str) -> ConstraintErrorKind {
    match parse(expr) {
        Ok(c) => panic!("{expr:?} parsed as {c}"),
        Err(e) => e.kind,
    }
}

fn m(expr: &str, n: &Node) -> bool {
    match parse(expr) {
        Ok(c) => c.matches(n),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn parses_every_known_key_with_either_operator_and_whitespace() {
    for expr in [
        "node.id==n1",
        "node.hostname != worker-2",
        " node.role == worker ",
        "node.platform.os==linux",
        "node.platform.arch==x86_64",
        "node.labels.zone==east",
        "engine.labels.storage!=hdd",
        "node.ip==10.0.1.7",
        "node.ip!=10.0.0.0/8",
        "node.ip==fe80::1",
        "Node.Labels.zone==east",
        "NODE.ROLE==manager",
        "node.labels.rack==r 1",
        "node.labels.x==[a-b]+c*(n|b)/",
    ] {
        let c = parse(expr).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.value().is_empty(), "{expr}");
    }
    let c = parse(" node.labels.zone  ==  east ").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.to_string(), "node.labels.zone==east");
    assert_eq!(c.operator(), Operator::Eq);
    assert_eq!(
        parse("node.id!=x").map(|c| c.operator()),
        Ok(Operator::NotEq)
    );
}

#[test]
fn rejects_bad_expressions_with_the_reason() {
    assert_eq!(kind(""), ConstraintErrorKind::Empty);
    assert_eq!(kind("   "), ConstraintErrorKind::Empty);
    assert_eq!(kind("node.id"), ConstraintErrorKind::MissingOperator);
    assert_eq!(
        kind("node.labels.zone=east"),
        ConstraintErrorKind::MissingOperator
    );
    assert_eq!(kind("="), ConstraintErrorKind::MissingOperator);
    assert_eq!(kind("node.id ~ x"), ConstraintErrorKind::MissingOperator);
    assert_eq!(kind("==east"), ConstraintErrorKind::EmptyKey);
    assert_eq!(kind("  != east"), ConstraintErrorKind::EmptyKey);
    assert_eq!(kind("node.id=="), ConstraintErrorKind::EmptyValue);
    assert_eq!(kind("node.id==  "), ConstraintErrorKind::EmptyValue);
    assert_eq!(
        kind("node.foo==x"),
        ConstraintErrorKind::UnknownKey("node.foo".into())
    );
    assert_eq!(
        kind("nodeid==x"),
        ConstraintErrorKind::UnknownKey("nodeid".into())
    );
    assert_eq!(
        kind("node.labels.==x"),
        ConstraintErrorKind::EmptyLabelName("node.labels.".into())
    );
    assert_eq!(
        kind("1node==x"),
        ConstraintErrorKind::InvalidKey("1node".into())
    );
    assert_eq!(
        kind("no de==x"),
        ConstraintErrorKind::InvalidKey("no de".into())
    );
    assert_eq!(
        kind("no*de==x"),
        ConstraintErrorKind::InvalidKey("no*de".into())
    );
    assert_eq!(kind("n==x"), ConstraintErrorKind::InvalidKey("n".into()));
    assert_eq!(
        kind("node.id===x"),
        ConstraintErrorKind::InvalidValue {
            value: "=x".into(),
            found: '='
        }
    );
    assert_eq!(
        kind("node.id!==x"),
        ConstraintErrorKind::InvalidValue {
            value: "=x".into(),
            found: '='
        }
    );
    assert_eq!(
        kind("node.id==a,b"),
        ConstraintErrorKind::InvalidValue {
            value: "a,b".into(),
            found: ','
        }
    );
    assert_eq!(
        kind("node.id==é"),
        ConstraintErrorKind::InvalidValue {
            value: "é".into(),
            found: 'é'
        }
    );
    assert_eq!(
        kind("node.ip==10.0.0.300"),
        ConstraintErrorKind::InvalidIp("10.0.0.300".into())
    );
    assert_eq!(
        kind("node.ip==10.0.0.0/33"),
        ConstraintErrorKind::InvalidIp("10.0.0.0/33".into())
    );
}

#[test]
fn errors_name_the_expression_and_its_position() {
    let e = parse("node.labels.zone=east").err();
    assert_eq!(
        e.map(|e| e.to_string()).as_deref(),
        Some(r#"constraint "node.labels.zone=east": expected an operator == or !="#)
    );
    let exprs = vec!["node.role==worker".to_owned(), "node.foo==x".to_owned()];
    let e = parse_all(&exprs).err();
    assert_eq!(e.as_ref().and_then(|e| e.index), Some(1));
    let text = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.starts_with(
            r#"constraints[1] "node.foo==x": unknown key "node.foo"; expected one of node.id"#
        ),
        "{text}"
    );
    assert_eq!(parse_all(&exprs[..1]).map(|v| v.len()), Ok(1));
    assert_eq!(parse_all(&[]).map(|v| v.len()), Ok(0));
}

#[test]
fn matches_node_attributes() {
    let n = node();
    assert!(m("node.id==n1", &n));
    assert!(!m("node.id==n2", &n));
    assert!(m("node.hostname==worker-1", &n));
    assert!(m("node.role==worker", &n));
    assert!(!m("node.role==manager", &n));
    assert!(m("node.platform.os==linux", &n));
    assert!(m("node.platform.arch!=arm64", &n));
    assert!(m("node.labels.zone==east", &n));
    assert!(m("node.labels.zone!=west", &n));
    assert!(!m("node.labels.zone!=east", &n));
    assert!(m("engine.labels.storage==ssd", &n));
    assert!(m("node.ip==10.0.1.7", &n));
    assert!(m("node.ip==10.0.0.0/16", &n));
    assert!(!m("node.ip!=10.0.0.0/16", &n));
    assert!(!m("node.ip==10.0.2.0/24", &n));
    assert!(!m("node.ip==fe80::/10", &n));

    let mut mgr = node();
    mgr.spec.role = NodeRole::Manager;
    mgr.status.addr = "10.0.2.1:2377".into();
    assert!(m("node.role==manager", &mgr));
    assert!(m("node.ip==10.0.2.0/24", &mgr));
}

#[test]
fn missing_attributes_read_as_empty() {
    let n = node();
    // `==` on a missing label never matches; `!=` always does.
    assert!(!m("node.labels.rack==r1", &n));
    assert!(m("node.labels.rack!=r1", &n));
    assert!(!m("engine.labels.gpu==yes", &n));
    assert!(m("engine.labels.gpu!=yes", &n));
    let mut bare = Node {
        id: Id::from_raw("n9"),
        ..Node::default()
    };
    assert!(!m("node.hostname==worker-1", &bare));
    assert!(m("node.platform.os!=linux", &bare));
    // No address: an IP can never be equal, so `!=` holds.
    assert!(!m("node.ip==10.0.0.0/8", &bare));
    assert!(m("node.ip!=10.0.0.1", &bare));
    bare.status.addr = "not-an-ip".into();
    assert!(m("node.ip!=10.0.0.0/8", &bare));
}

#[test]
fn keys_fold_case_but_label_names_and_values_follow_swarm() {
    let n = node();
    assert!(m("NODE.LABELS.zone==east", &n));
    assert!(m("Node.Hostname==worker-1", &n));
    // Values compare case-insensitively, as swarmkit's EqualFold.
    assert!(m("node.labels.zone==EAST", &n));
    assert!(m("node.platform.os==Linux", &n));
    assert!(!m("node.labels.zone!=East", &n));
    // The label name itself is case-sensitive: `zone` exists, `Zone` does not.
    assert!(!m("node.labels.Zone==east", &n));
    assert!(m("node.labels.Tier==web", &n));
    assert!(!m("node.labels.tier==web", &n));
}

#[test]
fn all_match_requires_every_constraint() {
    let n = node();
    let cs = parse_all(&[
        "node.role==worker".to_owned(),
        "node.labels.zone==east".to_owned(),
    ])
    .unwrap_or_default();
    assert_eq!(cs.len(), 2);
    assert!(all_match(&cs, &n));
    let cs = parse_all(&[
        "node.role==worker".to_owned(),
        "node.labels.zone==west".to_owned(),
    ])
    .unwrap_or_default();
    assert!(!all_match(&cs, &n));
    assert!(all_match(&[], &n));
}

#[test]
fn spread_descriptors_name_any_attribute_a_constraint_can() {
    let mut n = node();
    n.status.addr = "10.0.1.7:2377".into();
    n.spec.role = NodeRole::Manager;
    for (d, want, value) in [
        ("node.id", Descriptor::Id, "n1"),
        ("node.hostname", Descriptor::Hostname, "worker-1"),
        ("Node.IP", Descriptor::Ip, "10.0.1.7"),
        ("node.role", Descriptor::Role, "manager"),
        (" node.platform.os ", Descriptor::Os, "linux"),
        ("node.platform.arch", Descriptor::Arch, "x86_64"),
        (
            "NODE.LABELS.zone",
            Descriptor::NodeLabel("zone".into()),
            "east",
        ),
        ("node.labels.Zone", Descriptor::NodeLabel("Zone".into()), ""),
        (
            "engine.labels.storage",
            Descriptor::EngineLabel("storage".into()),
            "ssd",
        ),
    ] {
        let got = parse_descriptor(d).expect(d);
        assert_eq!(got, want, "{d}");
        assert_eq!(got.value(&n), value, "{d}");
    }
    assert_eq!(
        parse_descriptor("node.lables.zone"),
        Err(ConstraintErrorKind::UnknownKey("node.lables.zone".into()))
    );
    assert_eq!(
        parse_descriptor("engine.labels."),
        Err(ConstraintErrorKind::EmptyLabelName("engine.labels.".into()))
    );
    assert_eq!(parse_descriptor("  "), Err(ConstraintErrorKind::EmptyKey));
}
