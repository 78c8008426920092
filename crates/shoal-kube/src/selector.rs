//! Label and field selectors: the `labelSelector` and `fieldSelector` query parameters of a list or
//! watch, and a workload's typed `spec.selector`. Parsed, matched and refused as the Kubernetes
//! API server does (apimachinery's `labels.Parse`, `fields.ParseSelector` and
//! `metav1.LabelSelectorAsSelector`), with its error wording, so kubectl prints what it prints
//! against Kubernetes. Pure and stateless; a parsed selector is immutable.
//!
//! Label selectors (`app=web,tier in (a,b),!canary`):
//! - requirements are comma-separated and all must hold; the empty selector selects everything;
//! - `k=v` / `k==v` and `k in (..)` need the key with one of the values; `k!=v` and
//!   `k notin (..)` hold for an object that lacks the key; `k` needs the key, `!k` its absence;
//!   `k>n` / `k<n` need the key with an integer value above / below `n`;
//! - blanks (space, tab, CR, LF) may surround every token; `in`/`notin` are keywords only
//!   where an operator goes, so they are valid keys and values;
//! - a value may be empty: `k=`, `k in ()` (the set holding ""), `k in (,x)`;
//! - keys and values are checked as `metadata.labels` are ([`label_key_errors`],
//!   [`label_value_errors`]);
//! - requirements are kept sorted by key (stably), as Kubernetes sorts them;
//! - as in Kubernetes' lexer, a NUL byte ends the token it follows, and where a token would
//!   start, ends the selector.
//!
//! Field selectors (`metadata.name=web,status.phase!=Running`):
//! - terms are split at commas not escaped with `\`, sorted as strings, and split at the first
//!   `!=`, `==` or `=`; nothing is trimmed, so a blank belongs to the key or value;
//! - a value unescapes `\\`, `\,`, `\=`, and may not hold a bare `,` or `=`;
//! - a term with an empty key and an empty value (`=`) is dropped; empty terms are skipped;
//! - an absent field reads as "".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;

/// Why a selector is refused, worded as the API server words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label selector's syntax between requirements: `found ',', expected: identifier after
    /// ','`.
    #[error("{0}")]
    Syntax(String),
    /// One requirement of a label selector: its syntax, key or values.
    #[error("unable to parse requirement: {0}")]
    Requirement(String),
    /// A typed selector's requirement (`matchLabels` / `matchExpressions`) with an invalid key or
    /// values: `key: Invalid value: "-a": ...`.
    #[error("{0}")]
    InvalidRequirement(String),
    /// A `matchExpressions` operator other than In, NotIn, Exists and DoesNotExist.
    #[error("{} is not a valid label selector operator", go_quote(.0))]
    Operator(String),
    /// A field selector term without an operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldTerm { selector: String, term: String },
    /// A field selector value with a `\` before anything but `\`, `,` or `=`, or at its end.
    #[error("invalid field selector: invalid escape sequence: {0}")]
    FieldEscape(String),
    /// A field selector value holding a bare `,` or `=`; printed, as Go prints a rune, as its
    /// code point number.
    #[error("invalid field selector: unescaped character in value: {}", code_point(.0))]
    FieldUnescaped(char),
    /// A field selector key the kind does not offer.
    #[error("field label not supported: {0}")]
    FieldNotSupported(String),
}

fn code_point(c: &char) -> u32 {
    u32::from(*c)
}

// ---- label key and value validation ------------------------------------------------------------

const NAME_PART_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const NAME_PART_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must \
                             start and end with an alphanumeric character";
const NAME_PART_EXAMPLES: &[&str] = &["MyName", "my.name", "123-abc"];
const NAME_PART_MAX: usize = 63;
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric \
                               characters, '-', '_' or '.', and must start and end with an \
                               alphanumeric character";
const LABEL_VALUE_EXAMPLES: &[&str] = &["MyValue", "my_value", "12345"];
const LABEL_VALUE_MAX: usize = 63;
const SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
                             alphanumeric characters, '-' or '.', and must start and end with an \
                             alphanumeric character";
const SUBDOMAIN_MAX: usize = 253;
const EMPTY_MSG: &str = "must be non-empty";

/// A pattern mismatch, worded as apimachinery's `RegexError` words it (examples, then the
/// pattern).
fn regex_error(msg: &str, pattern: &str, examples: &[&str]) -> String {
    let mut out = String::from(msg);
    if examples.is_empty() {
        let _ = write!(out, " (regex used for validation is '{pattern}')");
        return out;
    }
    out.push_str(" (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        let _ = write!(out, "'{example}', ");
    }
    let _ = write!(out, "regex used for validation is '{pattern}')");
    out
}

fn max_len_error(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, the whole string.
fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    let (Some(first), Some(last)) = (b.first(), b.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// One RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    let lower_alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let (Some(first), Some(last)) = (b.first(), b.last()) else {
        return false;
    };
    lower_alnum(first) && lower_alnum(last) && b.iter().all(|c| lower_alnum(c) || *c == b'-')
}

fn subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > SUBDOMAIN_MAX {
        errs.push(max_len_error(SUBDOMAIN_MAX));
    }
    if !s.split('.').all(is_dns_label) {
        errs.push(regex_error(SUBDOMAIN_MSG, SUBDOMAIN_FMT, &["example.com"]));
    }
    errs
}

/// Kubernetes' qualified-name check, which label keys pass: an optional prefix (a lowercase DNS
/// subdomain of at most 253 characters) and `/`, then a name of at most 63 characters of
/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`. Returns the messages Kubernetes gives, in its
/// order (empty = valid); the API server joins them with `"; "`.
pub fn label_key_errors(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let mut parts = key.split('/');
    let (first, second, more) = (parts.next(), parts.next(), parts.next().is_some());
    let name = match (first, second) {
        _ if more => {
            return vec![format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. \
                 'example.com/MyName')",
                regex_error(NAME_PART_MSG, NAME_PART_FMT, NAME_PART_EXAMPLES)
            )];
        }
        (Some(prefix), Some(name)) => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {EMPTY_MSG}"));
            } else {
                errs.extend(
                    subdomain_errors(prefix)
                        .into_iter()
                        .map(|e| format!("prefix part {e}")),
                );
            }
            name
        }
        (name, _) => name.unwrap_or_default(),
    };
    if name.is_empty() {
        errs.push(format!("name part {EMPTY_MSG}"));
    } else if name.len() > NAME_PART_MAX {
        errs.push(format!("name part {}", max_len_error(NAME_PART_MAX)));
    }
    if !is_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(NAME_PART_MSG, NAME_PART_FMT, NAME_PART_EXAMPLES)
        ));
    }
    errs
}

/// Kubernetes' label value check: empty, or at most 63 characters of
/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`. Returns the messages Kubernetes gives (empty =
/// valid).
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX {
        errs.push(max_len_error(LABEL_VALUE_MAX));
    }
    if !value.is_empty() && !is_name_part(value) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            LABEL_VALUE_FMT,
            LABEL_VALUE_EXAMPLES,
        ));
    }
    errs
}

// ---- Go's renderings in field errors -------------------------------------------------------------

/// A string as Go's `%q` prints it: quoted, with `"` and `\` escaped, control characters as
/// `\n`/`\x01`, and other unprintable characters as `\u00a0`. Go's notion of printable is
/// approximated for unassigned code points (kept as they are).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if go_printable(c) => out.push(c),
            c if u32::from(c) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if u32::from(c) < 0x1_0000 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`, closely: no controls, no blanks but the space, no format
/// characters, private use or noncharacters.
fn go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(
        u32::from(c),
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x890..=0x891
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0xD800..=0xF8FF
            | 0xFDD0..=0xFDEF
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0xFFFE..=0xFFFF
            | 0x110BD
            | 0x110CD
            | 0xE0001
            | 0xE0020..=0xE007F
            | 0xF0000..=0x10FFFF
    )
}

/// A `[]string` as Go's `%#v` prints it (an empty one is the nil slice apimachinery builds from
/// a requirement without values).
fn go_string_slice(values: &[String]) -> String {
    if values.is_empty() {
        return "[]string(nil)".to_owned();
    }
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// One `field.Invalid` error: `path: Invalid value: <value>: detail`.
fn invalid(path: &str, rendered_value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {rendered_value}: {detail}")
}

/// An error list as apimachinery's aggregate prints it: one message alone, several (repeats
/// dropped) as `[a, b]`.
fn aggregate(errs: Vec<String>) -> String {
    let mut seen = BTreeSet::new();
    let unique: Vec<String> = errs
        .into_iter()
        .filter(|e| seen.insert(e.clone()))
        .collect();
    match unique.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

// ---- label selectors -------------------------------------------------------------------------

/// How a label requirement relates its key to its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelOperator {
    /// `k=v`
    Equals,
    /// `k==v`
    DoubleEquals,
    /// `k!=v`
    NotEquals,
    /// `k in (..)`
    In,
    /// `k notin (..)`
    NotIn,
    /// `k`
    Exists,
    /// `!k`
    DoesNotExist,
    /// `k>n`
    GreaterThan,
    /// `k<n`
    LessThan,
}

/// One requirement of a [`LabelSelector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelRequirement {
    key: String,
    operator: LabelOperator,
    /// One value for the exact-match and integer operators, a sorted set for `in`/`notin`, none
    /// for the existence ones.
    values: Vec<String>,
}

impl LabelRequirement {
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> LabelOperator {
        self.operator
    }

    /// The values, sorted for `in` / `notin`.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        let listed = |v: &String| self.values.contains(v);
        match self.operator {
            LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::In => {
                value.is_some_and(listed)
            }
            LabelOperator::NotEquals | LabelOperator::NotIn => !value.is_some_and(listed),
            LabelOperator::Exists => value.is_some(),
            LabelOperator::DoesNotExist => value.is_none(),
            LabelOperator::GreaterThan | LabelOperator::LessThan => {
                let (Some(have), [bound]) = (value, self.values.as_slice()) else {
                    return false;
                };
                let (Ok(have), Ok(bound)) = (have.parse::<i64>(), bound.parse::<i64>()) else {
                    return false;
                };
                if self.operator == LabelOperator::GreaterThan {
                    have > bound
                } else {
                    have < bound
                }
            }
        }
    }

    /// apimachinery's `NewRequirement`: checks the key, the number of values the operator takes
    /// and every value, and reports all that fails as one aggregate message.
    fn new(key: &str, operator: LabelOperator, values: Vec<String>) -> Result<Self, String> {
        let mut errs = Vec::new();
        let key_errs = label_key_errors(key);
        if !key_errs.is_empty() {
            errs.push(invalid("key", &go_quote(key), &key_errs.join("; ")));
        }
        let count_error = match operator {
            LabelOperator::In | LabelOperator::NotIn => values
                .is_empty()
                .then_some("for 'in', 'notin' operators, values set can't be empty"),
            LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::NotEquals => {
                (values.len() != 1).then_some("exact-match compatibility requires one single value")
            }
            LabelOperator::Exists | LabelOperator::DoesNotExist => (!values.is_empty())
                .then_some("values set must be empty for exists and does not exist"),
            LabelOperator::GreaterThan | LabelOperator::LessThan => (values.len() != 1)
                .then_some("for 'Gt', 'Lt' operators, exactly one value is required"),
        };
        if let Some(detail) = count_error {
            errs.push(invalid("values", &go_string_slice(&values), detail));
        }
        if matches!(
            operator,
            LabelOperator::GreaterThan | LabelOperator::LessThan
        ) {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(invalid(
                        &format!("values[{i}]"),
                        &go_quote(v),
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    ));
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = label_value_errors(v);
            if !value_errs.is_empty() {
                errs.push(invalid(
                    &format!("values[{i}][{key}]"),
                    &go_quote(v),
                    &value_errs.join("; "),
                ));
            }
        }
        if !errs.is_empty() {
            return Err(aggregate(errs));
        }
        let mut values = values;
        if matches!(operator, LabelOperator::In | LabelOperator::NotIn) {
            values.sort();
            values.dedup();
        }
        Ok(LabelRequirement {
            key: key.to_owned(),
            operator,
            values,
        })
    }
}

/// As Kubernetes prints a requirement (`Requirement.String`), which parses back to it.
impl fmt::Display for LabelRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            LabelOperator::Exists => return f.write_str(&self.key),
            LabelOperator::DoesNotExist => return write!(f, "!{}", self.key),
            LabelOperator::Equals => "=",
            LabelOperator::DoubleEquals => "==",
            LabelOperator::NotEquals => "!=",
            LabelOperator::GreaterThan => ">",
            LabelOperator::LessThan => "<",
            LabelOperator::In => return write!(f, "{} in ({})", self.key, self.values.join(",")),
            LabelOperator::NotIn => {
                return write!(f, "{} notin ({})", self.key, self.values.join(","));
            }
        };
        write!(f, "{}{op}{}", self.key, self.values.join(","))
    }
}

/// A parsed `labelSelector` query parameter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    /// Sorted by key (stably), as Kubernetes sorts them.
    requirements: Vec<LabelRequirement>,
}

impl LabelSelector {
    /// Parses Kubernetes' label selector syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
    /// `a notin (x,y)`, `a` (exists), `!a` (does not exist), `a>1`, `a<1`, comma-separated (AND),
    /// with blanks around tokens. Empty string = everything.
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let mut parser = Parser {
            items: scan(s),
            pos: 0,
        };
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = parser.peek(Context::Values);
            match token {
                Token::Identifier | Token::Not => {
                    requirements.push(parser.requirement().map_err(SelectorError::Requirement)?);
                    let (token, literal) = parser.next(Context::Values);
                    match token {
                        Token::End => break,
                        Token::Comma => {
                            let (next, literal) = parser.peek(Context::Values);
                            if !matches!(next, Token::Identifier | Token::Not) {
                                return Err(SelectorError::Syntax(format!(
                                    "found '{literal}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(SelectorError::Syntax(format!(
                                "found '{literal}', expected: ',' or 'end of string'"
                            )));
                        }
                    }
                }
                Token::End => break,
                _ => {
                    return Err(SelectorError::Syntax(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    )));
                }
            }
        }
        Ok(LabelSelector::sorted(requirements))
    }

    fn sorted(mut requirements: Vec<LabelRequirement>) -> LabelSelector {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements }
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True for the selector that selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[LabelRequirement] {
        &self.requirements
    }

    /// From a typed selector's `matchLabels` + `matchExpressions` (operators In, NotIn, Exists,
    /// DoesNotExist) as in a Deployment's `spec.selector`. An empty one selects everything.
    /// `matchLabels` are checked in key order, then the expressions in theirs; the first
    /// invalid one is the error.
    pub fn from_label_selector(sel: &meta::LabelSelector) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in sel.match_labels.iter().flatten() {
            let r = LabelRequirement::new(key, LabelOperator::Equals, vec![value.clone()])
                .map_err(SelectorError::InvalidRequirement)?;
            requirements.push(r);
        }
        for expr in sel.match_expressions.iter().flatten() {
            let operator = match expr.operator.as_str() {
                "In" => LabelOperator::In,
                "NotIn" => LabelOperator::NotIn,
                "Exists" => LabelOperator::Exists,
                "DoesNotExist" => LabelOperator::DoesNotExist,
                other => return Err(SelectorError::Operator(other.to_owned())),
            };
            let values = expr.values.clone().unwrap_or_default();
            let r = LabelRequirement::new(&expr.key, operator, values)
                .map_err(SelectorError::InvalidRequirement)?;
            requirements.push(r);
        }
        Ok(LabelSelector::sorted(requirements))
    }
}

/// As Kubernetes prints a selector: the requirements joined by `,`; parses back to the same
/// selector.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    End,
    OpenPar,
    ClosePar,
    Comma,
    /// `!`
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    In,
    NotIn,
    Identifier,
}

/// Whether `in`/`notin` are operators (after a key) or plain words (keys and values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Operator,
    Values,
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_symbol(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// Splits a label selector into tokens, up to and including the end. Symbols take the longest
/// operator (`!=`, `==`) they start; any other run of bytes up to a blank or symbol is a word.
fn scan(s: &str) -> Vec<(Token, &str)> {
    let b = s.as_bytes();
    let mut items = Vec::new();
    let mut pos = 0;
    loop {
        while b.get(pos).copied().is_some_and(is_blank) {
            pos += 1;
        }
        let start = pos;
        let Some(&first) = b.get(start).filter(|c| **c != 0) else {
            items.push((Token::End, ""));
            return items;
        };
        let (token, end) = if is_symbol(first) {
            match (first, b.get(start + 1)) {
                (b'=', Some(b'=')) => (Token::DoubleEquals, start + 2),
                (b'!', Some(b'=')) => (Token::NotEquals, start + 2),
                (b'=', _) => (Token::Equals, start + 1),
                (b'!', _) => (Token::Not, start + 1),
                (b'(', _) => (Token::OpenPar, start + 1),
                (b')', _) => (Token::ClosePar, start + 1),
                (b',', _) => (Token::Comma, start + 1),
                (b'>', _) => (Token::GreaterThan, start + 1),
                _ => (Token::LessThan, start + 1),
            }
        } else {
            let mut end = start;
            while b
                .get(end)
                .is_some_and(|c| *c != 0 && !is_blank(*c) && !is_symbol(*c))
            {
                end += 1;
            }
            let token = match &s[start..end] {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier,
            };
            (token, end)
        };
        // Tokens end at ASCII bytes (or the end), so these are character boundaries.
        items.push((token, &s[start..end]));
        pos = end;
        // Kubernetes' lexer swallows a NUL right after a token.
        if b.get(pos) == Some(&0) {
            pos += 1;
        }
    }
}

struct Parser<'a> {
    items: Vec<(Token, &'a str)>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self, context: Context) -> (Token, &'a str) {
        let (token, literal) = self
            .items
            .get(self.pos)
            .copied()
            .unwrap_or((Token::End, ""));
        match token {
            Token::In | Token::NotIn if context == Context::Values => (Token::Identifier, literal),
            _ => (token, literal),
        }
    }

    fn next(&mut self, context: Context) -> (Token, &'a str) {
        let item = self.peek(context);
        self.pos += 1;
        item
    }

    /// `[!] key [operator values]`; the error is the part after "unable to parse requirement: ".
    fn requirement(&mut self) -> Result<LabelRequirement, String> {
        let (mut token, mut key) = self.next(Context::Values);
        let negated = token == Token::Not;
        if negated {
            (token, key) = self.next(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{key}', expected: identifier"));
        }
        let key_errs = label_key_errors(key);
        if !key_errs.is_empty() {
            // Kubernetes checks the key here against its nil path, which prints as `<nil>`.
            return Err(invalid("<nil>", &go_quote(key), &key_errs.join("; ")));
        }
        let (after, _) = self.peek(Context::Values);
        if negated {
            return LabelRequirement::new(key, LabelOperator::DoesNotExist, Vec::new());
        }
        if matches!(after, Token::End | Token::Comma) {
            return LabelRequirement::new(key, LabelOperator::Exists, Vec::new());
        }
        let (token, literal) = self.next(Context::Operator);
        let operator = match token {
            Token::In => LabelOperator::In,
            Token::NotIn => LabelOperator::NotIn,
            Token::Equals => LabelOperator::Equals,
            Token::DoubleEquals => LabelOperator::DoubleEquals,
            Token::NotEquals => LabelOperator::NotEquals,
            Token::GreaterThan => LabelOperator::GreaterThan,
            Token::LessThan => LabelOperator::LessThan,
            _ => {
                return Err(format!(
                    "found '{literal}', expected: in, notin, =, ==, !=, gt, lt"
                ));
            }
        };
        let values = match operator {
            LabelOperator::In | LabelOperator::NotIn => self.value_set()?,
            _ => vec![self.exact_value()?],
        };
        LabelRequirement::new(key, operator, values)
    }

    /// `( [value] {, [value]} )`, sorted; an empty place is the value "".
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        let (token, literal) = self.next(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.peek(Context::Values);
        let set = match token {
            Token::Identifier | Token::Comma => {
                let set = self.value_list()?;
                // value_list returns only before a ')'.
                self.next(Context::Values);
                set
            }
            Token::ClosePar => {
                self.next(Context::Values);
                BTreeSet::from([""])
            }
            _ => {
                return Err(format!(
                    "found '{literal}', expected: ',', ')' or identifier"
                ));
            }
        };
        Ok(set.into_iter().map(str::to_owned).collect())
    }

    /// The values inside the parentheses, leaving the `)` to the caller.
    fn value_list(&mut self) -> Result<BTreeSet<&'a str>, String> {
        let mut set = BTreeSet::new();
        loop {
            let (token, literal) = self.next(Context::Values);
            match token {
                Token::Identifier => {
                    set.insert(literal);
                    let (after, literal) = self.peek(Context::Values);
                    match after {
                        Token::Comma => {}
                        Token::ClosePar => return Ok(set),
                        _ => return Err(format!("found '{literal}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.insert("");
                    }
                    match self.peek(Context::Values).0 {
                        Token::ClosePar => {
                            set.insert("");
                            return Ok(set);
                        }
                        Token::Comma => {
                            self.next(Context::Values);
                            set.insert("");
                        }
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    /// The value after `=`, `==`, `!=`, `>`, `<`: a word, or "" before a comma or the end.
    fn exact_value(&mut self) -> Result<String, String> {
        if matches!(self.peek(Context::Values).0, Token::End | Token::Comma) {
            return Ok(String::new());
        }
        match self.next(Context::Values) {
            (Token::Identifier, literal) => Ok(literal.to_owned()),
            (_, literal) => Err(format!("found '{literal}', expected: identifier")),
        }
    }
}

// ---- field selectors -------------------------------------------------------------------------

/// How a field requirement compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `k=v`
    Equals,
    /// `k==v`, the same test as `=`.
    DoubleEquals,
    /// `k!=v`
    NotEquals,
}

/// One term of a [`FieldSelector`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    key: String,
    operator: FieldOperator,
    /// Unescaped.
    value: String,
}

impl FieldRequirement {
    /// The field path, as written (nothing trimmed).
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> FieldOperator {
        self.operator
    }

    /// The value, unescaped.
    pub fn value(&self) -> &str {
        &self.value
    }

    fn matches(&self, actual: &str) -> bool {
        (actual == self.value) != (self.operator == FieldOperator::NotEquals)
    }
}

/// Prints the term as written: the key, the operator and the value escaped.
impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::DoubleEquals => "==",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.key, escape_field_value(&self.value))
    }
}

/// A parsed `fieldSelector`: `key=value`, `key==value`, `key!=value`, comma-separated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    /// In the order Kubernetes checks them: sorted by the term as written.
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = split_field_terms(s);
        terms.sort_unstable();
        let mut requirements = Vec::new();
        for term in terms.into_iter().filter(|t| !t.is_empty()) {
            let Some((key, operator, raw)) = split_field_term(term) else {
                return Err(SelectorError::FieldTerm {
                    selector: s.to_owned(),
                    term: term.to_owned(),
                });
            };
            let value = unescape_field_value(raw)?;
            // Kubernetes drops a term naming no field and no value.
            if key.is_empty() && value.is_empty() {
                continue;
            }
            requirements.push(FieldRequirement {
                key: key.to_owned(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// `supported` lists the field paths the kind allows (e.g. `["metadata.name",
    /// "metadata.namespace", "spec.nodeName", "status.phase"]`); the first term (in Kubernetes'
    /// order) with another key is `field label not supported: <key>`.
    pub fn check(&self, supported: &[&str]) -> Result<(), SelectorError> {
        match self
            .requirements
            .iter()
            .find(|r| !supported.contains(&r.key.as_str()))
        {
            Some(r) => Err(SelectorError::FieldNotSupported(r.key.clone())),
            None => Ok(()),
        }
    }

    /// `value_of` returns the object's value for a field path (None = field absent, treated as
    /// "").
    pub fn matches(&self, value_of: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(value_of(&r.key).as_deref().unwrap_or_default()))
    }

    /// True for the selector that selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The value a requirement `key=value` (or `==`) pins, e.g. to answer `metadata.name=x`
    /// without scanning; the first such term when several name the key.
    pub fn exact(&self, key: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.key == key && r.operator != FieldOperator::NotEquals)
            .map(|r| r.value.as_str())
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }
}

/// The terms joined by `,`; parses back to the same selector.
impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The comma-separated terms; a `\` makes the character after it data (it stays in the term).
fn split_field_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits at the first place an operator starts (`!=` before `==` before `=`).
fn split_field_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPERATORS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::DoubleEquals),
        ("=", FieldOperator::Equals),
    ];
    term.char_indices().find_map(|(i, _)| {
        let rest = &term[i..];
        OPERATORS.iter().find_map(|(text, op)| {
            rest.strip_prefix(text)
                .map(|value| (&term[..i], *op, value))
        })
    })
}

fn unescape_field_value(raw: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(raw.len());
    let mut escaped = false;
    for c in raw.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError::FieldEscape(format!("\\{c}")));
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => return Err(SelectorError::FieldUnescaped(c)),
            c => out.push(c),
        }
    }
    if escaped {
        return Err(SelectorError::FieldEscape("\\".to_owned()));
    }
    Ok(out)
}

/// A literal value as a field selector writes it: `\`, `,` and `=` escaped with `\`.
fn escape_field_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[path = "selector_tests.rs"]
mod tests;
