//! Placement constraints (`node.labels.zone==east`, `node.role!=manager`), parsed and matched
//! against a node as Swarm does: `==` and `!=` only, values compared case-insensitively, label
//! names case-sensitively, an unknown key never matches.
//!
//! This is a minimal local copy: the scheduler crate owns constraint parsing and will expose
//! `constraint::parse_all` and `Constraint::matches`; once it does, the orchestrator should use
//! it instead so both stages agree on every edge case.

use std::net::IpAddr;

use shoal_types::Node;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    #[error("constraint {expr:?}: expected one operator from ==, !=")]
    NoOperator { expr: String },
    #[error("constraint {expr:?}: key {key:?} is invalid")]
    InvalidKey { expr: String, key: String },
    #[error("constraint {expr:?}: value {value:?} is invalid")]
    InvalidValue { expr: String, value: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    key: String,
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
        // Swarm tries `==` before `!=`, so `a!==b` reads as key `a!`, which the key check rejects.
        let (key, value, equal) = if let Some((k, v)) = expr.split_once("==") {
            (k, v, true)
        } else if let Some((k, v)) = expr.split_once("!=") {
            (k, v, false)
        } else {
            return Err(ConstraintError::NoOperator {
                expr: expr.to_string(),
            });
        };
        let (key, value) = (key.trim(), value.trim());
        if !valid_key(key) {
            return Err(ConstraintError::InvalidKey {
                expr: expr.to_string(),
                key: key.to_string(),
            });
        }
        if !valid_value(value) {
            return Err(ConstraintError::InvalidValue {
                expr: expr.to_string(),
                value: value.to_string(),
            });
        }
        Ok(Constraint {
            key: key.to_string(),
            equal,
            value: value.to_string(),
        })
    }

    pub fn matches(&self, node: &Node) -> bool {
        let key = self.key.to_ascii_lowercase();
        let label = |prefix: &str| {
            // The prefix is matched case-insensitively, the label name exactly.
            (key.len() > prefix.len() && key.starts_with(prefix)).then(|| &self.key[prefix.len()..])
        };
        let actual: &str = match key.as_str() {
            "node.id" => node.id.as_str(),
            "node.hostname" => &node.description.hostname,
            "node.role" => node.spec.role.as_str(),
            "node.platform.os" => &node.description.platform.os,
            "node.platform.arch" => &node.description.platform.arch,
            "node.ip" => return self.matches_ip(&node.status.addr),
            _ => {
                if let Some(name) = label("node.labels.") {
                    node.spec.labels.get(name).map(String::as_str).unwrap_or("")
                } else if let Some(name) = label("engine.labels.") {
                    node.description
                        .engine
                        .labels
                        .get(name)
                        .map(String::as_str)
                        .unwrap_or("")
                } else {
                    return false;
                }
            }
        };
        self.value.eq_ignore_ascii_case(actual) == self.equal
    }

    /// `node.ip` compares an address or a CIDR block; a malformed one never matches.
    fn matches_ip(&self, addr: &str) -> bool {
        let Some(node_ip) = parse_addr(addr) else {
            return !self.equal
                && (self.value.parse::<IpAddr>().is_ok() || parse_cidr(&self.value).is_some());
        };
        let inside = if let Ok(ip) = self.value.parse::<IpAddr>() {
            ip == node_ip
        } else if let Some((net, bits)) = parse_cidr(&self.value) {
            in_subnet(node_ip, net, bits)
        } else {
            return false;
        };
        inside == self.equal
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
                || c.is_whitespace()
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
        assert!(!m("node.colour==red"), "unknown keys never match");
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
