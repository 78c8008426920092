//! Placement constraints (`node.labels.zone==east`, `node.role!=manager`), parsed and matched
//! against a node as Swarm does: `==` and `!=` only, keys case-insensitive, label names
//! case-sensitive, values compared case-insensitively, a missing attribute never equal.
//!
//! A deliberately small local copy of the scheduler's `constraint` module, kept to the same
//! edge cases (the earliest operator wins; unknown keys and malformed `node.ip` values do not
//! parse), because the design keeps the reconcilers from importing the scheduler. Both stages
//! should share one implementation once it moves somewhere they may both import.

use std::net::IpAddr;

use shoal_types::Node;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    #[error("constraint {expr:?}: expected one operator from ==, !=")]
    NoOperator { expr: String },
    #[error("constraint {expr:?}: key {key:?} is invalid or unknown")]
    InvalidKey { expr: String, key: String },
    #[error("constraint {expr:?}: value {value:?} is invalid")]
    InvalidValue { expr: String, value: String },
}

/// The node attribute a constraint reads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Id,
    Hostname,
    Role,
    Os,
    Arch,
    /// `node.ip`: the value is an address or a CIDR block, checked at parse time.
    Ip,
    NodeLabel(String),
    EngineLabel(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    key: Key,
    equal: bool,
    value: String,
}

/// Parses every expression; the first bad one is the error.
pub fn parse_all(exprs: &[String]) -> Result<Vec<Constraint>, ConstraintError> {
    exprs.iter().map(|e| Constraint::parse(e)).collect()
}

/// Whether `node` satisfies every constraint in `exprs`; `None` when they do not parse.
pub fn node_matches(exprs: &[String], node: &Node) -> Option<bool> {
    let parsed = parse_all(exprs).ok()?;
    Some(parsed.iter().all(|c| c.matches(node)))
}

impl Constraint {
    pub fn parse(expr: &str) -> Result<Constraint, ConstraintError> {
        // The earliest operator wins (as the scheduler reads it): `a!=b==c` is `a != "b==c"`,
        // which the value check then rejects.
        let found = [("==", true), ("!=", false)]
            .into_iter()
            .filter_map(|(op, equal)| expr.find(op).map(|at| (at, equal)))
            .min_by_key(|&(at, _)| at);
        let Some((at, equal)) = found else {
            return Err(ConstraintError::NoOperator {
                expr: expr.to_string(),
            });
        };
        let (key, value) = (expr[..at].trim(), expr[at + 2..].trim());
        let bad_key = || ConstraintError::InvalidKey {
            expr: expr.to_string(),
            key: key.to_string(),
        };
        let bad_value = || ConstraintError::InvalidValue {
            expr: expr.to_string(),
            value: value.to_string(),
        };
        if !valid_key(key) {
            return Err(bad_key());
        }
        if !valid_value(value) {
            return Err(bad_value());
        }
        let label = |prefix: &str| {
            let head = key.get(..prefix.len())?;
            head.eq_ignore_ascii_case(prefix)
                .then(|| key[prefix.len()..].to_string())
        };
        // Key names are case-insensitive; label names are not.
        let key = if let Some(name) = label("node.labels.") {
            Key::NodeLabel(name)
        } else if let Some(name) = label("engine.labels.") {
            Key::EngineLabel(name)
        } else {
            match key.to_ascii_lowercase().as_str() {
                "node.id" => Key::Id,
                "node.hostname" => Key::Hostname,
                "node.role" => Key::Role,
                "node.platform.os" => Key::Os,
                "node.platform.arch" => Key::Arch,
                "node.ip" if value.parse::<IpAddr>().is_ok() || parse_cidr(value).is_some() => {
                    Key::Ip
                }
                "node.ip" => return Err(bad_value()),
                // A key that can never match is a typo: refuse it rather than place nothing.
                _ => return Err(bad_key()),
            }
        };
        if matches!(&key, Key::NodeLabel(n) | Key::EngineLabel(n) if n.is_empty()) {
            return Err(bad_key());
        }
        Ok(Constraint {
            key,
            equal,
            value: value.to_string(),
        })
    }

    pub fn matches(&self, node: &Node) -> bool {
        let is = |actual: &str| self.value.eq_ignore_ascii_case(actual);
        // A missing label reads as empty, which no (non-empty) value equals.
        let same = match &self.key {
            Key::Id => is(node.id.as_str()),
            Key::Hostname => is(&node.description.hostname),
            Key::Role => is(node.spec.role.as_str()),
            Key::Os => is(&node.description.platform.os),
            Key::Arch => is(&node.description.platform.arch),
            Key::NodeLabel(n) => node.spec.labels.get(n).is_some_and(|v| is(v)),
            Key::EngineLabel(n) => node.description.engine.labels.get(n).is_some_and(|v| is(v)),
            Key::Ip => parse_addr(&node.status.addr).is_some_and(|ip| self.ip_matches(ip)),
        };
        same == self.equal
    }

    fn ip_matches(&self, ip: IpAddr) -> bool {
        if let Ok(want) = self.value.parse::<IpAddr>() {
            return ip == want;
        }
        parse_cidr(&self.value).is_some_and(|(net, bits)| in_subnet(ip, net, bits))
    }
}

fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && key.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
                || matches!(
                    c,
                    ':' | '-'
                        | '_'
                        | '.'
                        | '*'
                        | '('
                        | ')'
                        | '?'
                        | '+'
                        | '['
                        | ']'
                        | '\\'
                        | '^'
                        | '$'
                        | '|'
                        | '/'
                )
        })
}

/// A node's address, with or without a port.
fn parse_addr(addr: &str) -> Option<IpAddr> {
    addr.parse::<IpAddr>()
        .ok()
        .or_else(|| addr.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u32)> {
    let (ip, bits) = s.split_once('/')?;
    let ip: IpAddr = ip.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((ip, bits))
}

fn in_subnet(ip: IpAddr, net: IpAddr, bits: u32) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::{Id, NodeRole};

    fn node() -> Node {
        let mut n = Node {
            id: Id::from_raw("n1"),
            ..Default::default()
        };
        n.description.hostname = "Worker-1".into();
        n.spec.role = NodeRole::Manager;
        n.spec.labels.insert("zone".into(), "East".into());
        n.description
            .engine
            .labels
            .insert("disk".into(), "ssd".into());
        n.description.platform.os = "linux".into();
        n.status.addr = "10.0.1.7".into();
        n
    }

    fn m(expr: &str) -> bool {
        Constraint::parse(expr)
            .map(|c| c.matches(&node()))
            .unwrap_or(false)
    }

    #[test]
    fn matches_as_swarm() {
        assert!(m("node.role==manager"));
        assert!(m("node.role != worker"));
        assert!(m("node.hostname==worker-1"));
        assert!(m("node.labels.zone==east"));
        assert!(
            !m("node.labels.Zone==east"),
            "label names are case-sensitive"
        );
        assert!(
            m("node.labels.rack!=a1"),
            "a missing label is the empty string"
        );
        assert!(m("engine.labels.disk==SSD"));
        assert!(m("node.platform.os==linux"));
        assert!(m("node.id==n1"));
        assert!(
            Constraint::parse("node.colour==red").is_err(),
            "unknown keys do not parse"
        );
        assert!(Constraint::parse("node.ip==nowhere").is_err());
        assert!(Constraint::parse("node.labels.==x").is_err());
        assert!(
            Constraint::parse("a!=b==c").is_err(),
            "earliest operator: value b==c"
        );
        assert!(m("NODE.ROLE==manager"), "keys are case-insensitive");
        assert!(m("node.ip==10.0.1.7"));
        assert!(m("node.ip==10.0.0.0/16"));
        assert!(m("node.ip!=10.1.0.0/16"));
        assert!(!m("node.ip==10.0.2.0/24"));
    }

    #[test]
    fn rejects_malformed() {
        assert!(matches!(
            Constraint::parse("node.role"),
            Err(ConstraintError::NoOperator { .. })
        ));
        assert!(matches!(
            Constraint::parse("==x"),
            Err(ConstraintError::InvalidKey { .. })
        ));
        assert!(matches!(
            Constraint::parse("node.role=="),
            Err(ConstraintError::InvalidValue { .. })
        ));
        assert!(matches!(
            Constraint::parse("node.role==a<b"),
            Err(ConstraintError::InvalidValue { .. })
        ));
        assert_eq!(node_matches(&["bad".into()], &node()), None);
        assert_eq!(node_matches(&[], &node()), Some(true));
    }
}
