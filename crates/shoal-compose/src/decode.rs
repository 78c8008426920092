//! Typed reads of tree nodes, each recording an error at the node when it has the wrong type:
//! the strictness of docker's JSON schema, with messages that say what was expected and what
//! was found (`expected a number, got "three"`).
//!
//! Types follow docker: a string field takes only a string (`user: 1000` is an error, as
//! docker's schema has it), maps of strings (environment, labels, options) take numbers and
//! booleans as text the way Go prints them, and an interpolated value (`${N}`) is parsed into a
//! typed field (docker casts those).

use std::collections::BTreeSet;

use crate::error::{Diag, index, join};
use crate::syntax;
use crate::yaml::{Entry, Kind, Node, Resolved, Style, go_float};

/// A `list_or_dict` value before a consumer gives it meaning.
pub(crate) enum ListOrDict {
    /// Keys with their values as text; `None` for null.
    Map(Vec<(String, Option<String>)>),
    List(Vec<String>),
}

impl Diag<'_> {
    fn expected(&mut self, n: &Node, key: &str, what: &str) {
        let got = n.describe();
        self.err(n.pos, key, format!("expected {what}, got {got}"));
    }

    pub fn unknown(&mut self, e: &Entry, parent: &str) {
        self.err(e.key_pos, parent, format!("unknown key {:?}", e.key));
    }

    pub fn mapping<'n>(&mut self, n: &'n Node, key: &str) -> Option<&'n [Entry]> {
        match &n.kind {
            Kind::Map(m) => Some(m),
            _ => {
                self.expected(n, key, "a mapping");
                None
            }
        }
    }

    /// A mapping, or null read as an empty one (`networks: {back: }`).
    pub fn mapping_or_null<'n>(&mut self, n: &'n Node, key: &str) -> Option<&'n [Entry]> {
        if n.is_null() {
            return Some(&[]);
        }
        self.mapping(n, key)
    }

    pub fn seq<'n>(&mut self, n: &'n Node, key: &str) -> Option<&'n [Node]> {
        match &n.kind {
            Kind::Seq(s) => Some(s),
            _ => {
                self.expected(n, key, "a list");
                None
            }
        }
    }

    pub fn string(&mut self, n: &Node, key: &str) -> Option<String> {
        match n.scalar().map(|s| s.resolve()) {
            Some(Resolved::Str(s)) => Some(s.to_string()),
            _ => {
                self.expected(n, key, "a string");
                None
            }
        }
    }

    /// A string, number or boolean as text (numbers printed like Go's `fmt.Sprint`); `None`
    /// inside for null.
    pub fn text_or_null(&mut self, n: &Node, key: &str) -> Option<Option<String>> {
        match n.scalar().map(|s| s.resolve()) {
            Some(Resolved::Str(s)) => Some(Some(s.to_string())),
            Some(Resolved::Int(i)) => Some(Some(i.to_string())),
            Some(Resolved::Float(f)) => Some(Some(go_float(f))),
            Some(Resolved::Bool(b)) => Some(Some(b.to_string())),
            Some(Resolved::Null) => Some(None),
            None => {
                self.expected(n, key, "a string, number or null");
                None
            }
        }
    }

    /// A string or number as text.
    pub fn text(&mut self, n: &Node, key: &str) -> Option<String> {
        match self.text_or_null(n, key) {
            Some(Some(t)) => Some(t),
            Some(None) => {
                self.expected(n, key, "a string or number");
                None
            }
            None => None,
        }
    }

    pub fn int(&mut self, n: &Node, key: &str) -> Option<i64> {
        let v = n.scalar().and_then(|s| match s.resolve() {
            Resolved::Int(i) => Some(i),
            Resolved::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Some(f as i64),
            Resolved::Str(t) if s.style == Style::Interpolated => t.trim().parse().ok(),
            _ => None,
        });
        if v.is_none() {
            self.expected(n, key, "a number");
        }
        v
    }

    pub fn uint(&mut self, n: &Node, key: &str) -> Option<u64> {
        let v = self.int(n, key)?;
        match u64::try_from(v) {
            Ok(v) => Some(v),
            Err(_) => {
                self.err(n.pos, key, format!("expected a number >= 0, got {v}"));
                None
            }
        }
    }

    pub fn float(&mut self, n: &Node, key: &str) -> Option<f64> {
        let v = n.scalar().and_then(|s| match s.resolve() {
            Resolved::Int(i) => Some(i as f64),
            Resolved::Float(f) => Some(f),
            Resolved::Str(t) if s.style == Style::Interpolated => t.trim().parse().ok(),
            _ => None,
        });
        if v.is_none() {
            self.expected(n, key, "a number");
        }
        v
    }

    pub fn boolean(&mut self, n: &Node, key: &str) -> Option<bool> {
        let v = n.scalar().and_then(|s| match s.resolve() {
            Resolved::Bool(b) => Some(b),
            // docker's cast of interpolated booleans (YAML 1.1 words).
            Resolved::Str(t) if s.style == Style::Interpolated => match t.to_lowercase().as_str() {
                "y" | "yes" | "true" | "on" => Some(true),
                "n" | "no" | "false" | "off" => Some(false),
                _ => None,
            },
            _ => None,
        });
        if v.is_none() {
            self.expected(n, key, "a boolean");
        }
        v
    }

    /// A Go duration string (`1m30s`), in nanoseconds.
    pub fn duration(&mut self, n: &Node, key: &str) -> Option<i64> {
        let s = self.string(n, key)?;
        match syntax::parse_duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(n.pos, key, format!("expected a duration like 1m30s: {e}"));
                None
            }
        }
    }

    /// A byte count: a number, or a string with a binary unit (`512M`).
    pub fn bytes(&mut self, n: &Node, key: &str) -> Option<i64> {
        if let Some(Resolved::Int(i)) = n.scalar().map(|s| s.resolve()) {
            return Some(i);
        }
        let s = self.text(n, key)?;
        match syntax::parse_ram_bytes(&s) {
            Ok(b) => Some(b),
            Err(e) => {
                self.err(n.pos, key, format!("expected a size like 512M: {e}"));
                None
            }
        }
    }

    /// A list of strings without duplicates.
    pub fn strings(&mut self, n: &Node, key: &str) -> Option<Vec<String>> {
        let items = self.seq(n, key)?;
        let mut out = Vec::with_capacity(items.len());
        let mut seen = BTreeSet::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let k = index(key, i);
            match self.string(item, &k) {
                Some(s) => {
                    if !seen.insert(s.clone()) {
                        self.err(item.pos, &k, format!("duplicate entry {s:?}"));
                        ok = false;
                    }
                    out.push(s);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// A string (one item) or a list of strings.
    pub fn string_or_list(&mut self, n: &Node, key: &str) -> Option<Vec<String>> {
        if let Kind::Scalar(_) = n.kind {
            return self.string(n, key).map(|s| vec![s]);
        }
        self.strings(n, key)
    }

    pub fn list_or_dict(&mut self, n: &Node, key: &str) -> Option<ListOrDict> {
        match &n.kind {
            Kind::Map(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                let mut ok = true;
                for e in entries {
                    match self.text_or_null(&e.value, &join(key, &e.key)) {
                        Some(v) => out.push((e.key.clone(), v)),
                        None => ok = false,
                    }
                }
                ok.then_some(ListOrDict::Map(out))
            }
            Kind::Seq(_) => self.strings(n, key).map(ListOrDict::List),
            Kind::Scalar(_) => {
                self.expected(n, key, "a mapping or a list");
                None
            }
        }
    }

    /// A `list_or_dict` as `KEY=VALUE` pairs: docker's `Mapping`/`Labels` (a bare `KEY` or a
    /// null value is the empty string) when `allow_nil` is false, its `MappingWithEquals`
    /// (both stay `None`) when true. Later keys win.
    pub fn mapping_of(
        &mut self,
        n: &Node,
        key: &str,
        allow_nil: bool,
    ) -> Option<Vec<(String, Option<String>)>> {
        let pairs = match self.list_or_dict(n, key)? {
            ListOrDict::Map(m) => m,
            ListOrDict::List(items) => items
                .into_iter()
                .map(|s| match s.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (s, None),
                })
                .collect(),
        };
        Some(
            pairs
                .into_iter()
                .map(|(k, v)| match v {
                    None if !allow_nil => (k, Some(String::new())),
                    v => (k, v),
                })
                .collect(),
        )
    }

    /// A mapping of strings (or numbers) to strings: options, driver_opts.
    pub fn string_map(
        &mut self,
        n: &Node,
        key: &str,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        let entries = self.mapping(n, key)?;
        let mut out = std::collections::BTreeMap::new();
        for e in entries {
            if let Some(v) = self.text_or_null(&e.value, &join(key, &e.key)) {
                out.insert(e.key.clone(), v.unwrap_or_default());
            }
        }
        Some(out)
    }
}
