//! Placement constraints: the `key==value` / `key!=value` grammar of `--constraint` and matching a
//! parsed constraint against a node. Pure and stateless; a parsed [`Constraint`] is immutable and
//! can be shared freely.
//!
//! Semantics follow swarmkit's `manager/constraint`:
//! - keys are case-insensitive (`Node.Labels.zone` is `node.labels.zone`), but the label name after
//!   `node.labels.` / `engine.labels.` is case-sensitive, as a node's labels are;
//! - values compare case-insensitively (`node.platform.os==Linux` matches `linux`);
//! - an attribute the node lacks reads as the empty string: since a value is never empty, `==`
//!   never matches it and `!=` always does;
//! - `node.ip` takes an address (`10.0.0.7`) or a CIDR subnet (`10.0.0.0/24`).
//!
//! Where swarmkit accepts a key it can never match (`node.foo==x` parses, then matches no node), we
//! reject it at parse time: a typo should fail `service create`, not leave tasks pending forever.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::Node;

const NODE_LABELS: &str = "node.labels.";
const ENGINE_LABELS: &str = "engine.labels.";

/// The keys `parse` accepts, for error messages.
const KNOWN_KEYS: &str = "node.id, node.hostname, node.ip, node.role, node.platform.os, \
                          node.platform.arch, node.labels.<name>, engine.labels.<name>";

/// Why an expression is not a constraint. The expression it came from is in [`ConstraintError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintErrorKind {
    #[error("the expression is empty")]
    Empty,
    #[error("expected an operator == or !=")]
    MissingOperator,
    #[error("the key before the operator is empty")]
    EmptyKey,
    #[error(
        "key {0:?} is invalid: a key starts with a letter or _ and holds only letters, digits, \
         '-', '_' and '.'"
    )]
    InvalidKey(String),
    #[error("unknown key {0:?}; expected one of {KNOWN_KEYS}")]
    UnknownKey(String),
    #[error("key {0:?} has no label name after the prefix")]
    EmptyLabelName(String),
    #[error("the value after the operator is empty")]
    EmptyValue,
    #[error(
        "value {value:?} is invalid: {found:?} is not allowed (use letters, digits, whitespace and \
         : - _ . * ( ) ? + [ ] \\ ^ $ | /)"
    )]
    InvalidValue { value: String, found: char },
    #[error("node.ip value {0:?} is neither an IP address nor a CIDR subnet")]
    InvalidIp(String),
}

/// A constraint expression that does not parse: which one (its position in the list when it came
/// from [`parse_all`]) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConstraintError {
    /// Position of the expression in the list given to [`parse_all`]; `None` from [`parse`].
    pub index: Option<usize>,
    /// The expression as given.
    pub expr: String,
    pub kind: ConstraintErrorKind,
}

impl fmt::Display for ConstraintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "constraints[{i}] {:?}: {}", self.expr, self.kind),
            None => write!(f, "constraint {:?}: {}", self.expr, self.kind),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Eq,
    NotEq,
}

impl Operator {
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "==",
            Operator::NotEq => "!=",
        }
    }
}

/// The node attribute a constraint reads; resolved at parse time so matching never re-reads the key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Id,
    Hostname,
    Ip(IpMatch),
    Role,
    Os,
    Arch,
    NodeLabel(String),
    EngineLabel(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IpMatch {
    Addr(IpAddr),
    Subnet(IpAddr, u8),
}

/// One parsed placement constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    key: Key,
    op: Operator,
    /// The value as written (trimmed); compared case-insensitively.
    value: String,
}

/// Parses one expression, e.g. `node.labels.zone == east` or `node.role!=manager`.
pub fn parse(expr: &str) -> Result<Constraint, ConstraintError> {
    parse_expr(expr).map_err(|kind| ConstraintError {
        index: None,
        expr: expr.to_owned(),
        kind,
    })
}

/// Parses every expression; the error names the first bad one by position and text.
pub fn parse_all(exprs: &[String]) -> Result<Vec<Constraint>, ConstraintError> {
    exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            parse_expr(e).map_err(|kind| ConstraintError {
                index: Some(i),
                expr: e.clone(),
                kind,
            })
        })
        .collect()
}

fn parse_expr(expr: &str) -> Result<Constraint, ConstraintErrorKind> {
    if expr.trim().is_empty() {
        return Err(ConstraintErrorKind::Empty);
    }
    // The earliest operator wins, so `a!=b==c` reads as `a != "b==c"` (and then fails on the value)
    // rather than as a key `a!=b`.
    let (at, op) = [("==", Operator::Eq), ("!=", Operator::NotEq)]
        .into_iter()
        .filter_map(|(s, op)| expr.find(s).map(|at| (at, op)))
        .min_by_key(|&(at, _)| at)
        .ok_or(ConstraintErrorKind::MissingOperator)?;
    let raw_key = expr[..at].trim();
    let value = expr[at + 2..].trim();

    if raw_key.is_empty() {
        return Err(ConstraintErrorKind::EmptyKey);
    }
    if !valid_key(raw_key) {
        return Err(ConstraintErrorKind::InvalidKey(raw_key.to_owned()));
    }
    if value.is_empty() {
        return Err(ConstraintErrorKind::EmptyValue);
    }
    if let Some(found) = value.chars().find(|&c| !valid_value_char(c)) {
        return Err(ConstraintErrorKind::InvalidValue {
            value: value.to_owned(),
            found,
        });
    }
    let key = resolve_key(raw_key, value)?;
    Ok(Constraint {
        key,
        op,
        value: value.to_owned(),
    })
}

/// swarmkit's key pattern `^[a-z_][a-z0-9\-_.]+$` (case-insensitive): at least two characters.
fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && key.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// swarmkit's value pattern: no characters that are (or may become) operators, such as `=`, `<`, `~`.
fn valid_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            ':' | '-' | '_' | '.' | '*' | '(' | ')' | '?' | '+' | '[' | ']' | '\\' | '^' | '$' | '|' | '/'
        )
        // Go's `\s` in RE2: ASCII whitespace only.
        || matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

fn strip_prefix_ci<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    let head = key.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &key[prefix.len()..])
}

fn resolve_key(key: &str, value: &str) -> Result<Key, ConstraintErrorKind> {
    for (prefix, make) in [
        (NODE_LABELS, Key::NodeLabel as fn(String) -> Key),
        (ENGINE_LABELS, Key::EngineLabel),
    ] {
        if let Some(label) = strip_prefix_ci(key, prefix) {
            if label.is_empty() {
                return Err(ConstraintErrorKind::EmptyLabelName(key.to_owned()));
            }
            return Ok(make(label.to_owned()));
        }
    }
    let known = match key.to_ascii_lowercase().as_str() {
        "node.id" => Key::Id,
        "node.hostname" => Key::Hostname,
        "node.ip" => Key::Ip(
            parse_ip_match(value)
                .ok_or_else(|| ConstraintErrorKind::InvalidIp(value.to_owned()))?,
        ),
        "node.role" => Key::Role,
        "node.platform.os" => Key::Os,
        "node.platform.arch" => Key::Arch,
        _ => return Err(ConstraintErrorKind::UnknownKey(key.to_owned())),
    };
    Ok(known)
}

/// A node attribute that a spread preference (`--placement-pref spread=DESCRIPTOR`) groups nodes
/// by: any attribute a constraint can name. swarmkit spreads over `node.labels.*` and
/// `engine.labels.*` only and silently ignores any other descriptor; shoal spreads over every
/// attribute it can read, and refuses a descriptor that names none (a typo would otherwise
/// spread nothing without a word).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Descriptor {
    Id,
    Hostname,
    /// The node's address, without its port.
    Ip,
    Role,
    Os,
    Arch,
    NodeLabel(String),
    EngineLabel(String),
}

/// Parses a spread descriptor: as constraint keys, case-insensitive except for a label's name,
/// around white space.
pub fn parse_descriptor(descriptor: &str) -> Result<Descriptor, ConstraintErrorKind> {
    let d = descriptor.trim();
    if d.is_empty() {
        return Err(ConstraintErrorKind::EmptyKey);
    }
    for (prefix, make) in [
        (
            NODE_LABELS,
            Descriptor::NodeLabel as fn(String) -> Descriptor,
        ),
        (ENGINE_LABELS, Descriptor::EngineLabel),
    ] {
        if let Some(label) = strip_prefix_ci(d, prefix) {
            if label.is_empty() {
                return Err(ConstraintErrorKind::EmptyLabelName(d.to_owned()));
            }
            return Ok(make(label.to_owned()));
        }
    }
    Ok(match d.to_ascii_lowercase().as_str() {
        "node.id" => Descriptor::Id,
        "node.hostname" => Descriptor::Hostname,
        "node.ip" => Descriptor::Ip,
        "node.role" => Descriptor::Role,
        "node.platform.os" => Descriptor::Os,
        "node.platform.arch" => Descriptor::Arch,
        _ => return Err(ConstraintErrorKind::UnknownKey(d.to_owned())),
    })
}

impl Descriptor {
    /// The node's value of the attribute; empty when it has none (an unset label).
    pub fn value<'n>(&self, node: &'n Node) -> std::borrow::Cow<'n, str> {
        use std::borrow::Cow;
        match self {
            Descriptor::Id => Cow::Borrowed(node.id.as_str()),
            Descriptor::Hostname => Cow::Borrowed(&node.description.hostname),
            Descriptor::Ip => Cow::Owned(
                node_ip(&node.status.addr)
                    .map(|ip| ip.to_string())
                    .unwrap_or_default(),
            ),
            Descriptor::Role => Cow::Borrowed(node.spec.role.as_str()),
            Descriptor::Os => Cow::Borrowed(&node.description.platform.os),
            Descriptor::Arch => Cow::Borrowed(&node.description.platform.arch),
            Descriptor::NodeLabel(l) => {
                Cow::Borrowed(node.spec.labels.get(l).map_or("", String::as_str))
            }
            Descriptor::EngineLabel(l) => Cow::Borrowed(
                node.description
                    .engine
                    .labels
                    .get(l)
                    .map_or("", String::as_str),
            ),
        }
    }
}

fn parse_ip_match(value: &str) -> Option<IpMatch> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(IpMatch::Addr(ip));
    }
    let (addr, bits) = value.split_once('/')?;
    let ip: IpAddr = addr.parse().ok()?;
    let bits: u8 = bits.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some(IpMatch::Subnet(ip, bits))
}

/// The node's address as an IP: the status address may carry a port.
fn node_ip(addr: &str) -> Option<IpAddr> {
    addr.parse::<IpAddr>()
        .ok()
        .or_else(|| addr.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

fn in_subnet(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Constraint {
    pub fn operator(&self) -> Operator {
        self.op
    }

    /// The value as written, trimmed.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether `node` satisfies this constraint.
    pub fn matches(&self, node: &Node) -> bool {
        let equal = match &self.key {
            Key::Id => self.value_is(node.id.as_str()),
            Key::Hostname => self.value_is(&node.description.hostname),
            Key::Role => self.value_is(node.spec.role.as_str()),
            Key::Os => self.value_is(&node.description.platform.os),
            Key::Arch => self.value_is(&node.description.platform.arch),
            Key::NodeLabel(l) => node.spec.labels.get(l).is_some_and(|v| self.value_is(v)),
            Key::EngineLabel(l) => node
                .description
                .engine
                .labels
                .get(l)
                .is_some_and(|v| self.value_is(v)),
            Key::Ip(m) => node_ip(&node.status.addr).is_some_and(|ip| match *m {
                IpMatch::Addr(want) => ip == want,
                IpMatch::Subnet(net, bits) => in_subnet(ip, net, bits),
            }),
        };
        match self.op {
            Operator::Eq => equal,
            Operator::NotEq => !equal,
        }
    }

    fn value_is(&self, actual: &str) -> bool {
        // Values are ASCII (the grammar allows nothing else), so ASCII folding is Go's EqualFold here.
        self.value.eq_ignore_ascii_case(actual)
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Key::Id => f.write_str("node.id")?,
            Key::Hostname => f.write_str("node.hostname")?,
            Key::Ip(_) => f.write_str("node.ip")?,
            Key::Role => f.write_str("node.role")?,
            Key::Os => f.write_str("node.platform.os")?,
            Key::Arch => f.write_str("node.platform.arch")?,
            Key::NodeLabel(l) => write!(f, "{NODE_LABELS}{l}")?,
            Key::EngineLabel(l) => write!(f, "{ENGINE_LABELS}{l}")?,
        }
        write!(f, "{}{}", self.op.as_str(), self.value)
    }
}

/// True when `node` satisfies every constraint.
pub fn all_match(constraints: &[Constraint], node: &Node) -> bool {
    constraints.iter().all(|c| c.matches(node))
}

#[cfg(test)]
#[path = "constraint_tests.rs"]
mod tests;
