//! The marked YAML tree: every node, and every mapping key, keeps the line and column it was read
//! at, so every later error can point at the value it is about.
//!
//! The tree is built from `saphyr-parser`'s event stream (the parser gives spans; its own loader
//! would drop them). This module also does what a YAML loader does on top of the events, the way
//! Go's `yaml.v3` (which the docker CLI uses) does it: anchors and aliases, merge keys
//! (`<<: *base`, `<<: [*a, *b]`: keys written in the mapping win, then earlier sources),
//! duplicate keys refused, only the first document read.
//!
//! Hostile documents are bounded: nesting deeper than [`MAX_DEPTH`] and documents that alias
//! expansion would grow past [`MAX_WEIGHT`] (a "billion laughs") are errors, found while
//! building, before anything is copied. Scalars stay text here; [`Scalar::resolve`] types a plain
//! scalar with `yaml.v3`'s rules when a field asks for it.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

use crate::error::Pos;

/// Deeper nesting is refused: compose files nest about eight levels.
pub(crate) const MAX_DEPTH: usize = 64;
/// About bytes of tree (text plus a fixed cost per node), counting every alias copy.
pub(crate) const MAX_WEIGHT: usize = 16 << 20;
const NODE_WEIGHT: usize = 48;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scalar {
    pub text: String,
    pub style: Style,
}

/// How a scalar was written, which decides its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Plain (unquoted): typed by [`Scalar::resolve`].
    Plain,
    /// Quoted, block or tagged `!!str`: always a string.
    Quoted,
    /// The result of `${...}` interpolation: a string, which a typed field may still parse
    /// (docker casts interpolated values of typed fields, so `replicas: ${N}` works).
    Interpolated,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub pos: Pos,
    pub message: String,
}

/// A plain scalar typed the way `yaml.v3` types it when decoding into `interface{}`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Scalar {
    pub fn resolve(&self) -> Resolved<'_> {
        if self.style != Style::Plain {
            return Resolved::Str(&self.text);
        }
        resolve_plain(&self.text)
    }
}

impl Node {
    pub fn scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.scalar()
            .is_some_and(|s| matches!(s.resolve(), Resolved::Null))
    }

    /// What the node is, for "expected X, got Y" messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Seq(_) => "a list".into(),
            Kind::Map(_) => "a mapping".into(),
            Kind::Scalar(s) => match s.resolve() {
                Resolved::Null => "null".into(),
                Resolved::Bool(b) => b.to_string(),
                Resolved::Int(i) => i.to_string(),
                Resolved::Float(f) => go_float(f),
                Resolved::Str(t) => format!("{t:?}"),
            },
        }
    }
}

/// `yaml.v3`'s resolution of a plain scalar (its `resolve` with the YAML 1.1 leftovers it keeps:
/// `0777` is octal, underscores in numbers are dropped). Timestamps stay strings.
pub(crate) fn resolve_plain(t: &str) -> Resolved<'_> {
    match t {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    let first = t.as_bytes()[0];
    if !(first.is_ascii_digit() || first == b'+' || first == b'-' || first == b'.') {
        return Resolved::Str(t);
    }
    let plain: String = t.chars().filter(|&c| c != '_').collect();
    if let Some(i) = go_parse_int(&plain) {
        return Resolved::Int(i);
    }
    if is_yaml_float(&plain)
        && let Ok(f) = plain.parse::<f64>()
    {
        return Resolved::Float(f);
    }
    Resolved::Str(t)
}

/// Go's `strconv.ParseInt(s, 0, 64)`: sign, then `0x`, `0o`, `0b` or a leading `0` (octal).
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mag = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        if mag == 1 << 63 {
            Some(i64::MIN)
        } else {
            i64::try_from(mag).ok().map(|m| -m)
        }
    } else {
        i64::try_from(mag).ok()
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// A float the way Go's `fmt.Sprint` prints it (`%v` is `%g` with the shortest digits: exponent
/// form below 1e-4 and from 1e6): docker turns numbers in string maps (environment, labels) into text with it,
/// so `FOO: 1.0` becomes `FOO=1`.
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.5e-5", "1e21".
    let e = format!("{f:e}");
    let Some((mant, exp)) = e.split_once('e') else {
        return e;
    };
    let Ok(exp) = exp.parse::<i32>() else {
        return e;
    };
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.unsigned_abs())
    }
}

enum Frame {
    Seq {
        pos: Pos,
        anchor: usize,
        items: Vec<Node>,
        weight: usize,
    },
    Map {
        pos: Pos,
        anchor: usize,
        entries: Vec<Entry>,
        merges: Vec<Node>,
        key: Option<(String, Pos, bool)>,
        /// The keys so far, with their lines: duplicates are found without a quadratic scan.
        seen: HashMap<String, u32>,
        weight: usize,
    },
}

struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, (Node, usize)>,
    total: usize,
    root: Option<Node>,
}

fn pos_of(file: u32, span: &Span) -> Pos {
    Pos {
        file,
        line: u32::try_from(span.start.line()).unwrap_or(u32::MAX),
        col: u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX),
    }
}

/// Parses the first document of `text` into a tree. `file` is the index that positions carry.
pub(crate) fn parse(text: &str, file: u32) -> Result<Option<Node>, ParseError> {
    let mut parser = Parser::new_from_str(text);
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        total: 0,
        root: None,
    };
    while let Some(ev) = parser.next_event() {
        let (ev, span) = ev.map_err(|e| ParseError {
            pos: Pos {
                file,
                line: u32::try_from(e.marker().line()).unwrap_or(u32::MAX),
                col: u32::try_from(e.marker().col() + 1).unwrap_or(u32::MAX),
            },
            message: e.info().to_string(),
        })?;
        let pos = pos_of(file, &span);
        match ev {
            // Like yaml.v3's Unmarshal: the first document only.
            Event::DocumentEnd | Event::StreamEnd => break,
            Event::Scalar(text, style, anchor, tag) => {
                let quoted = style != ScalarStyle::Plain
                    || tag.as_ref().is_some_and(|t| {
                        (t.handle == "!!" || t.handle == "tag:yaml.org,2002:") && t.suffix == "str"
                    });
                let weight = NODE_WEIGHT + text.len();
                b.charge(weight, pos)?;
                let node = Node {
                    pos,
                    kind: Kind::Scalar(Scalar {
                        text: text.into_owned(),
                        style: if quoted { Style::Quoted } else { Style::Plain },
                    }),
                };
                b.complete(node, anchor, weight)?;
            }
            Event::Alias(id) => {
                let Some((node, weight)) = b.anchors.get(&id).cloned() else {
                    return Err(ParseError {
                        pos,
                        message: "unknown anchor".into(),
                    });
                };
                b.charge(weight, pos)?;
                // The alias keeps the anchored node's position: errors point at its definition.
                b.complete(node, 0, weight)?;
            }
            Event::SequenceStart(anchor, _) => {
                b.open(
                    Frame::Seq {
                        pos,
                        anchor,
                        items: Vec::new(),
                        weight: NODE_WEIGHT,
                    },
                    pos,
                )?;
            }
            Event::MappingStart(anchor, _) => {
                b.open(
                    Frame::Map {
                        pos,
                        anchor,
                        entries: Vec::new(),
                        merges: Vec::new(),
                        key: None,
                        seen: HashMap::new(),
                        weight: NODE_WEIGHT,
                    },
                    pos,
                )?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = b.stack.pop() else {
                    continue;
                };
                let (node, anchor, weight) = match frame {
                    Frame::Seq {
                        pos,
                        anchor,
                        items,
                        weight,
                    } => (
                        Node {
                            pos,
                            kind: Kind::Seq(items),
                        },
                        anchor,
                        weight,
                    ),
                    Frame::Map {
                        pos,
                        anchor,
                        entries,
                        merges,
                        weight,
                        ..
                    } => (
                        Node {
                            pos,
                            kind: Kind::Map(merge_keys(entries, merges)?),
                        },
                        anchor,
                        weight,
                    ),
                };
                b.complete(node, anchor, weight)?;
            }
            Event::StreamStart | Event::DocumentStart(_) | Event::Nothing => {}
        }
    }
    Ok(b.root)
}

/// Adds the merge sources' keys that the mapping does not write itself, earlier sources first.
fn merge_keys(mut entries: Vec<Entry>, merges: Vec<Node>) -> Result<Vec<Entry>, ParseError> {
    if merges.is_empty() {
        return Ok(entries);
    }
    let mut seen: HashSet<String> = entries.iter().map(|e| e.key.clone()).collect();
    for source in merges {
        let maps = match source.kind {
            Kind::Map(m) => vec![m],
            Kind::Seq(items) => {
                let mut maps = Vec::new();
                for item in items {
                    match item.kind {
                        Kind::Map(m) => maps.push(m),
                        _ => return Err(merge_error(item.pos)),
                    }
                }
                maps
            }
            Kind::Scalar(_) => return Err(merge_error(source.pos)),
        };
        for m in maps {
            for e in m {
                if seen.insert(e.key.clone()) {
                    entries.push(e);
                }
            }
        }
    }
    Ok(entries)
}

fn merge_error(pos: Pos) -> ParseError {
    ParseError {
        pos,
        message: "map merge requires a mapping or a list of mappings".into(),
    }
}

impl Builder {
    fn charge(&mut self, weight: usize, pos: Pos) -> Result<(), ParseError> {
        self.total = self.total.saturating_add(weight);
        if self.total > MAX_WEIGHT {
            return Err(ParseError {
                pos,
                message: format!(
                    "document too large: aliases expand it past {} MiB",
                    MAX_WEIGHT >> 20
                ),
            });
        }
        Ok(())
    }

    fn open(&mut self, frame: Frame, pos: Pos) -> Result<(), ParseError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(ParseError {
                pos,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        self.stack.push(frame);
        Ok(())
    }

    fn complete(&mut self, node: Node, anchor: usize, weight: usize) -> Result<(), ParseError> {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), weight));
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Frame::Seq {
                items, weight: w, ..
            }) => {
                *w = w.saturating_add(weight);
                items.push(node);
            }
            Some(Frame::Map {
                entries,
                merges,
                key,
                seen,
                weight: w,
                ..
            }) => {
                *w = w.saturating_add(weight);
                match key.take() {
                    None => {
                        let Kind::Scalar(s) = node.kind else {
                            return Err(ParseError {
                                pos: node.pos,
                                message: "a mapping key must be a string".into(),
                            });
                        };
                        let is_merge = s.style == Style::Plain && s.text == "<<";
                        *key = Some((s.text, node.pos, is_merge));
                    }
                    Some((_, _, true)) => merges.push(node),
                    Some((k, key_pos, false)) => {
                        if let Some(line) = seen.get(&k) {
                            return Err(ParseError {
                                pos: key_pos,
                                message: format!(
                                    "mapping key {k:?} already defined at line {line}"
                                ),
                            });
                        }
                        seen.insert(k.clone(), key_pos.line);
                        entries.push(Entry {
                            key: k,
                            key_pos,
                            value: node,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> Node {
        parse(s, 0).expect("ok").expect("ok")
    }

    fn map(n: &Node) -> &[Entry] {
        match &n.kind {
            Kind::Map(m) => m,
            _ => panic!("not a map"),
        }
    }

    #[test]
    fn positions_are_one_based() {
        let n = doc("a:\n  b: [x, 'y']\n");
        let a = &map(&n)[0];
        assert_eq!((a.key_pos.line, a.key_pos.col), (1, 1));
        let b = &map(&a.value)[0];
        assert_eq!((b.key_pos.line, b.key_pos.col), (2, 3));
        let Kind::Seq(items) = &b.value.kind else {
            panic!()
        };
        assert_eq!((items[1].pos.line, items[1].pos.col), (2, 10));
        assert_eq!(items[1].scalar().expect("ok").style, Style::Quoted);
    }

    #[test]
    fn merge_keys_keep_explicit_keys_first() {
        let n = doc("b: &b {x: 1, y: 2}\nc: &c {y: 3, z: 4}\nd:\n  <<: [*b, *c]\n  x: 0\n");
        let d = &map(&n)[2];
        let got: Vec<(String, String)> = map(&d.value)
            .iter()
            .map(|e| (e.key.clone(), e.value.scalar().expect("ok").text.clone()))
            .collect();
        let want = [("x", "0"), ("y", "2"), ("z", "4")];
        assert_eq!(
            got,
            want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
        );
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = parse("a: 1\nb: 2\na: 3\n", 0).expect_err("an error");
        assert_eq!((e.pos.line, e.pos.col), (3, 1));
        assert_eq!(e.message, "mapping key \"a\" already defined at line 1");
    }

    #[test]
    fn billion_laughs_and_deep_nesting_are_errors() {
        let mut s =
            String::from("a0: &a0 [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n");
        for i in 1..12 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = parse(&s, 0).expect_err("an error");
        assert!(e.message.starts_with("document too large"), "{e:?}");
        // The parser refuses deep flow nesting itself; block nesting is ours to limit.
        assert!(parse(&"[".repeat(10_000), 0).is_err());
        let block: String = (0..100).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        let e = parse(&block, 0).expect_err("an error");
        assert!(e.message.contains("nesting deeper"), "{e:?}");
    }

    #[test]
    fn plain_scalars_resolve_like_yaml_v3() {
        assert_eq!(resolve_plain("3"), Resolved::Int(3));
        assert_eq!(resolve_plain("0x1F"), Resolved::Int(31));
        assert_eq!(resolve_plain("010"), Resolved::Int(8));
        assert_eq!(resolve_plain("1_000"), Resolved::Int(1000));
        assert_eq!(resolve_plain("1.5"), Resolved::Float(1.5));
        assert_eq!(resolve_plain("1e3"), Resolved::Float(1000.0));
        assert_eq!(resolve_plain("yes"), Resolved::Str("yes"));
        assert_eq!(resolve_plain("True"), Resolved::Bool(true));
        assert_eq!(resolve_plain("~"), Resolved::Null);
        assert_eq!(resolve_plain("1.2.3"), Resolved::Str("1.2.3"));
        assert_eq!(resolve_plain("08"), Resolved::Float(8.0));
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(1.5e-5), "1.5e-05");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(123456789.0), "1.23456789e+08");
        assert_eq!(go_float(100000.0), "100000");
    }

    #[test]
    fn only_the_first_document_is_read() {
        let n = doc("a: 1\n---\nb: [\n");
        assert_eq!(map(&n).len(), 1);
        assert!(parse("", 0).expect("ok").is_none());
    }
}
