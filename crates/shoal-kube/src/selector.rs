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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn label(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?} does not parse: {e}"))
    }

    fn label_err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(sel) => panic!("{s:?} parses, to {sel:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn field(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s:?} does not parse: {e}"))
    }

    fn field_err(s: &str) -> String {
        match FieldSelector::parse(s) {
            Ok(sel) => panic!("{s:?} parses, to {sel:?}"),
            Err(e) => e.to_string(),
        }
    }

    const NAME_REGEX_ERR: &str = "name part must consist of alphanumeric characters, '-', '_' or \
         '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or \
         'my.name',  or '123-abc', regex used for validation is \
         '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
    const VALUE_REGEX_ERR: &str = "a valid label must be an empty string or consist of \
         alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric \
         character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
         '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
    const PREFIX_REGEX_ERR: &str = "prefix part a lowercase RFC 1123 subdomain must consist of \
         lower case alphanumeric characters, '-' or '.', and must start and end with an \
         alphanumeric character (e.g. 'example.com', regex used for validation is \
         '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

    // ---- label selectors: operators and matching ----

    #[test]
    fn equality_operators() {
        let web = labels(&[("app", "web")]);
        let db = labels(&[("app", "db")]);
        let none = labels(&[]);
        for s in ["app=web", "app==web"] {
            let sel = label(s);
            assert!(sel.matches(&web), "{s}");
            assert!(!sel.matches(&db), "{s}");
            assert!(!sel.matches(&none), "{s} needs the key");
        }
        assert_eq!(
            label("app=web").requirements()[0].operator(),
            LabelOperator::Equals
        );
        assert_eq!(
            label("app==web").requirements()[0].operator(),
            LabelOperator::DoubleEquals
        );
        let sel = label("app!=web");
        assert!(!sel.matches(&web));
        assert!(sel.matches(&db));
        assert!(sel.matches(&none), "!= holds for an object without the key");
    }

    #[test]
    fn set_operators() {
        let sel = label("tier in (front,back)");
        assert_eq!(sel.requirements()[0].operator(), LabelOperator::In);
        assert_eq!(sel.requirements()[0].values(), ["back", "front"]);
        assert!(sel.matches(&labels(&[("tier", "front")])));
        assert!(sel.matches(&labels(&[("tier", "back")])));
        assert!(!sel.matches(&labels(&[("tier", "cache")])));
        assert!(!sel.matches(&labels(&[])), "in needs the key");

        let sel = label("tier notin (front,back)");
        assert_eq!(sel.requirements()[0].operator(), LabelOperator::NotIn);
        assert!(!sel.matches(&labels(&[("tier", "front")])));
        assert!(sel.matches(&labels(&[("tier", "cache")])));
        assert!(sel.matches(&labels(&[])), "notin holds without the key");
    }

    #[test]
    fn existence_operators() {
        let sel = label("canary");
        assert_eq!(sel.requirements()[0].operator(), LabelOperator::Exists);
        assert!(sel.matches(&labels(&[("canary", "")])));
        assert!(!sel.matches(&labels(&[("other", "x")])));

        let sel = label("!canary");
        assert_eq!(
            sel.requirements()[0].operator(),
            LabelOperator::DoesNotExist
        );
        assert!(!sel.matches(&labels(&[("canary", "")])));
        assert!(sel.matches(&labels(&[("other", "x")])));
    }

    #[test]
    fn integer_operators() {
        let gt = label("replicas>2");
        let lt = label("replicas<2");
        assert_eq!(gt.requirements()[0].operator(), LabelOperator::GreaterThan);
        assert_eq!(lt.requirements()[0].operator(), LabelOperator::LessThan);
        assert!(gt.matches(&labels(&[("replicas", "3")])));
        assert!(!gt.matches(&labels(&[("replicas", "2")])));
        assert!(lt.matches(&labels(&[("replicas", "1")])));
        assert!(lt.matches(&labels(&[("replicas", "-5")])));
        assert!(!lt.matches(&labels(&[("replicas", "2")])));
        assert!(!gt.matches(&labels(&[])), "gt needs the key");
        assert!(!lt.matches(&labels(&[])), "lt needs the key");
        assert!(!gt.matches(&labels(&[("replicas", "many")])));
        assert!(!lt.matches(&labels(&[("replicas", "many")])));
        assert_eq!(
            label_err("replicas>many"),
            "unable to parse requirement: values[0]: Invalid value: \"many\": for 'Gt', 'Lt' \
             operators, the value must be an integer"
        );
    }

    #[test]
    fn several_requirements_all_hold() {
        let sel = label("app=web,tier in (front),!canary,env");
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "front"), ("env", "p")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "front")])));
        assert!(!sel.matches(&labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("env", "p"),
            ("canary", "1"),
        ])));
        let keys: Vec<&str> = sel.requirements().iter().map(|r| r.key()).collect();
        assert_eq!(keys, ["app", "canary", "env", "tier"], "sorted by key");
    }

    #[test]
    fn empty_selects_everything() {
        for s in ["", "   ", " \t\r\n"] {
            let sel = label(s);
            assert!(sel.is_empty());
            assert!(sel.matches(&labels(&[])));
            assert!(sel.matches(&labels(&[("a", "b")])));
            assert_eq!(sel, LabelSelector::default());
        }
        assert!(!label("a").is_empty());
    }

    #[test]
    fn blanks_around_tokens() {
        let compact = label("a=b,c in (x,y),!d,e!=f,g");
        let spaced = label(" a = b ,\tc  in(x , y ) ,\n! d , e != f , g\r\n");
        assert_eq!(compact, spaced);
        assert_eq!(label("a in(x)"), label("a in (x)"));
        assert_eq!(
            label_err("a=b c"),
            "found 'c', expected: ',' or 'end of string'"
        );
    }

    #[test]
    fn empty_values() {
        let sel = label("a=");
        assert_eq!(sel.requirements()[0].values(), [""]);
        assert!(sel.matches(&labels(&[("a", "")])));
        assert!(!sel.matches(&labels(&[])));
        assert_eq!(label("a=,b").requirements()[0].values(), [""]);
        assert_eq!(label("a!=").requirements()[0].values(), [""]);
        assert_eq!(label("a in ()").requirements()[0].values(), [""]);
        assert_eq!(label("a in (,)").requirements()[0].values(), [""]);
        assert_eq!(label("a in (,x)").requirements()[0].values(), ["", "x"]);
        assert_eq!(label("a in (x,)").requirements()[0].values(), ["", "x"]);
        assert_eq!(
            label("a in (x,,y)").requirements()[0].values(),
            ["", "x", "y"]
        );
        assert_eq!(label("a in (y,x,y)").requirements()[0].values(), ["x", "y"]);
        assert!(label("a in (,x)").matches(&labels(&[("a", "")])));
    }

    #[test]
    fn in_and_notin_are_words_outside_the_operator() {
        let sel = label("in in (in,notin),notin=in");
        let r = &sel.requirements()[0];
        assert_eq!((r.key(), r.operator()), ("in", LabelOperator::In));
        assert_eq!(r.values(), ["in", "notin"]);
        let r = &sel.requirements()[1];
        assert_eq!(
            (r.key(), r.operator(), r.values()),
            ("notin", LabelOperator::Equals, &["in".to_owned()][..])
        );
        assert_eq!(
            label("in").requirements()[0].operator(),
            LabelOperator::Exists
        );
    }

    #[test]
    fn prefixed_keys() {
        let sel = label("app.kubernetes.io/name=web");
        assert!(sel.matches(&labels(&[("app.kubernetes.io/name", "web")])));
    }

    #[test]
    fn nul_ends_the_selector_where_a_token_would_start() {
        assert_eq!(label("a \0 ((("), label("a"));
        assert_eq!(label("\0garbage"), LabelSelector::default());
        assert_eq!(
            label_err("a=b\0c"),
            "found 'c', expected: ',' or 'end of string'"
        );
    }

    // ---- label selectors: errors ----

    #[test]
    fn syntax_errors() {
        let cases = [
            (
                "a (",
                "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt",
            ),
            (
                "a b",
                "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            ),
            ("a=b,", "found '', expected: identifier after ','"),
            ("a=b,,c", "found ',', expected: identifier after ','"),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            (
                "=a",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            (
                ",",
                "found ',', expected: !, identifier, or 'end of string'",
            ),
            (
                "(",
                "found '(', expected: !, identifier, or 'end of string'",
            ),
            (
                "!",
                "unable to parse requirement: found '', expected: identifier",
            ),
            (
                "!=a",
                "found '!=', expected: !, identifier, or 'end of string'",
            ),
            (
                "!!a",
                "unable to parse requirement: found '!', expected: identifier",
            ),
            (
                "a in",
                "unable to parse requirement: found '' expected: '('",
            ),
            (
                "a in x",
                "unable to parse requirement: found 'x' expected: '('",
            ),
            (
                "a in (x",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            (
                "a in (x y)",
                "unable to parse requirement: found 'y', expected: ',' or ')'",
            ),
            (
                "a in (=",
                "unable to parse requirement: found '=', expected: ',', ')' or identifier",
            ),
            (
                "a in (",
                "unable to parse requirement: found '', expected: ',', ')' or identifier",
            ),
            (
                "a in (x,=)",
                "unable to parse requirement: found '=', expected: ',', or identifier",
            ),
            (
                "a in (x,",
                "unable to parse requirement: found '', expected: ',', or identifier",
            ),
            (
                "a==(",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            (
                "a=!",
                "unable to parse requirement: found '!', expected: identifier",
            ),
            ("a in (x))", "found ')', expected: ',' or 'end of string'"),
        ];
        for (s, want) in cases {
            assert_eq!(label_err(s), want, "{s:?}");
        }
    }

    #[test]
    fn invalid_value_is_reported_with_its_path() {
        assert_eq!(
            label_err("app=-x"),
            format!(
                "unable to parse requirement: values[0][app]: Invalid value: \"-x\": \
                 {VALUE_REGEX_ERR}"
            )
        );
        assert_eq!(
            label_err("app in (ok,-x,y-)"),
            format!(
                "unable to parse requirement: [values[0][app]: Invalid value: \"-x\": \
                 {VALUE_REGEX_ERR}, values[2][app]: Invalid value: \"y-\": {VALUE_REGEX_ERR}]"
            ),
            "indexes count in the sorted set"
        );
        let long = "v".repeat(64);
        assert_eq!(
            label_err(&format!("app={long}")),
            format!(
                "unable to parse requirement: values[0][app]: Invalid value: \"{long}\": must be \
                 no more than 63 characters"
            )
        );
        assert!(LabelSelector::parse(&format!("app={}", "v".repeat(63))).is_ok());
    }

    #[test]
    fn invalid_key_is_reported_against_the_nil_path() {
        assert_eq!(
            label_err("-x"),
            format!("unable to parse requirement: <nil>: Invalid value: \"-x\": {NAME_REGEX_ERR}")
        );
        assert_eq!(
            label_err("a/b/c=d"),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name \
                 {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                NAME_REGEX_ERR.trim_start_matches("name part ")
            )
        );
        assert_eq!(
            label_err("Example.com/a in (x)"),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": \
                 {PREFIX_REGEX_ERR}"
            )
        );
        assert_eq!(
            label_err("/a"),
            "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be \
             non-empty"
        );
        assert_eq!(
            label_err("a\u{1}"),
            format!(
                "unable to parse requirement: <nil>: Invalid value: \"a\\x01\": {NAME_REGEX_ERR}"
            )
        );
    }

    // ---- key and value validation ----

    #[test]
    fn label_keys() {
        for ok in [
            "a",
            "app",
            "A-b_c.D9",
            "app.kubernetes.io/name",
            "k8s.io/x",
            "1/2",
            &"k".repeat(63),
            &format!("{}/n", "p".repeat(253)),
        ] {
            assert_eq!(label_key_errors(ok), Vec::<String>::new(), "{ok:?}");
        }
        assert_eq!(
            label_key_errors(""),
            ["name part must be non-empty", NAME_REGEX_ERR]
        );
        assert_eq!(
            label_key_errors(&"k".repeat(64)),
            ["name part must be no more than 63 characters"]
        );
        assert_eq!(
            label_key_errors(&format!("-{}", "k".repeat(63))),
            [
                "name part must be no more than 63 characters",
                NAME_REGEX_ERR
            ]
        );
        assert_eq!(label_key_errors("a_"), [NAME_REGEX_ERR]);
        assert_eq!(label_key_errors("a b"), [NAME_REGEX_ERR]);
        assert_eq!(label_key_errors("é"), [NAME_REGEX_ERR]);
        assert_eq!(
            label_key_errors("/"),
            [
                "prefix part must be non-empty",
                "name part must be non-empty",
                NAME_REGEX_ERR
            ]
        );
        assert_eq!(
            label_key_errors(&format!("{}/n", "p".repeat(254))),
            ["prefix part must be no more than 253 characters"]
        );
        for prefix in ["Upper.io", "a..b", "-a.io", "a-.io", "a_b.io", ".a"] {
            assert_eq!(
                label_key_errors(&format!("{prefix}/n")),
                [PREFIX_REGEX_ERR],
                "{prefix:?}"
            );
        }
        assert_eq!(label_key_errors("a/b/c").len(), 1);
        assert!(label_key_errors("a/b/c")[0].starts_with("a qualified name must consist of"));
    }

    #[test]
    fn label_values() {
        for ok in [
            "",
            "a",
            "MyValue",
            "my_value",
            "12345",
            "a.b-c_d",
            &"v".repeat(63),
        ] {
            assert_eq!(label_value_errors(ok), Vec::<String>::new(), "{ok:?}");
        }
        for bad in ["-x", "x-", "_", ".a", "a b", "a/b", "é"] {
            assert_eq!(label_value_errors(bad), [VALUE_REGEX_ERR], "{bad:?}");
        }
        assert_eq!(
            label_value_errors(&"v".repeat(64)),
            ["must be no more than 63 characters"]
        );
        assert_eq!(
            label_value_errors(&format!("{}-", "v".repeat(63))),
            ["must be no more than 63 characters", VALUE_REGEX_ERR]
        );
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("plain"), "\"plain\"");
        assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(
            go_quote("\n\t\r\u{7}\u{8}\u{b}\u{c}"),
            "\"\\n\\t\\r\\a\\b\\v\\f\""
        );
        assert_eq!(go_quote("\0\u{1f}\u{7f}"), "\"\\x00\\x1f\\x7f\"");
        assert_eq!(go_quote("é\u{a0}\u{200b}"), "\"é\\u00a0\\u200b\"");
        assert_eq!(go_quote("\u{10ffff}"), "\"\\U0010ffff\"");
    }

    // ---- label selectors: display ----

    #[test]
    fn display_is_kubernetes_string() {
        let sel = label("b notin (y,x), a , !c, d==1, e>3, f<4, g in (), h=, i!=j");
        assert_eq!(
            sel.to_string(),
            "a,b notin (x,y),!c,d==1,e>3,f<4,g in (),h=,i!=j"
        );
        assert_eq!(label(&sel.to_string()), sel);
        assert_eq!(label("a in (,x)").to_string(), "a in (,x)");
    }

    // ---- typed selectors ----

    fn typed(
        match_labels: &[(&str, &str)],
        exprs: &[(&str, &str, Option<&[&str]>)],
    ) -> meta::LabelSelector {
        meta::LabelSelector {
            match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
            match_expressions: (!exprs.is_empty()).then(|| {
                exprs
                    .iter()
                    .map(|(key, op, values)| meta::LabelSelectorRequirement {
                        key: (*key).to_owned(),
                        operator: (*op).to_owned(),
                        values: values.map(|v| v.iter().map(|s| (*s).to_owned()).collect()),
                    })
                    .collect()
            }),
        }
    }

    fn typed_err(sel: &meta::LabelSelector) -> String {
        match LabelSelector::from_label_selector(sel) {
            Ok(s) => panic!("{sel:?} converts, to {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn from_typed_selector() {
        let sel = typed(
            &[("app", "web"), ("tier", "front")],
            &[
                ("env", "In", Some(&["prod", "staging", "prod"])),
                ("zone", "NotIn", Some(&["a"])),
                ("ready", "Exists", None),
                ("canary", "DoesNotExist", Some(&[])),
            ],
        );
        let got = LabelSelector::from_label_selector(&sel).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            got,
            label("app=web,tier=front,env in (prod,staging),zone notin (a),ready,!canary")
        );
        assert!(got.matches(&labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("env", "prod"),
            ("ready", "")
        ])));
        assert!(!got.matches(&labels(&[
            ("app", "web"),
            ("tier", "front"),
            ("env", "prod")
        ])));

        let everything = LabelSelector::from_label_selector(&meta::LabelSelector::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(everything.is_empty());
        assert!(everything.matches(&labels(&[("x", "y")])));
    }

    #[test]
    fn typed_selector_errors() {
        assert_eq!(
            typed_err(&typed(&[], &[("a", "Gt", Some(&["1"]))])),
            "\"Gt\" is not a valid label selector operator"
        );
        assert_eq!(
            typed_err(&typed(&[], &[("a", "in", Some(&["1"]))])),
            "\"in\" is not a valid label selector operator"
        );
        assert_eq!(
            typed_err(&typed(&[], &[("a", "In", None)])),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't \
             be empty"
        );
        assert_eq!(
            typed_err(&typed(&[], &[("a", "NotIn", Some(&[]))])),
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't \
             be empty"
        );
        assert_eq!(
            typed_err(&typed(&[], &[("a", "Exists", Some(&["x", "y"]))])),
            "values: Invalid value: []string{\"x\", \"y\"}: values set must be empty for exists \
             and does not exist"
        );
        assert_eq!(
            typed_err(&typed(&[("-a", "ok")], &[])),
            format!("key: Invalid value: \"-a\": {NAME_REGEX_ERR}")
        );
        assert_eq!(
            typed_err(&typed(&[("-a", "-v")], &[])),
            format!(
                "[key: Invalid value: \"-a\": {NAME_REGEX_ERR}, values[0][-a]: Invalid value: \
                 \"-v\": {VALUE_REGEX_ERR}]"
            )
        );
        assert_eq!(
            typed_err(&typed(&[], &[("a", "In", Some(&["ok", "b c"]))])),
            format!("values[1][a]: Invalid value: \"b c\": {VALUE_REGEX_ERR}")
        );
    }

    // ---- field selectors ----

    const POD_FIELDS: &[&str] = &[
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "status.phase",
    ];

    fn pod(name: &str, node: Option<&str>, phase: &str) -> impl Fn(&str) -> Option<String> {
        let (name, node, phase) = (name.to_owned(), node.map(str::to_owned), phase.to_owned());
        move |path: &str| match path {
            "metadata.name" => Some(name.clone()),
            "metadata.namespace" => Some("default".to_owned()),
            "spec.nodeName" => node.clone(),
            "status.phase" => Some(phase.clone()),
            _ => None,
        }
    }

    #[test]
    fn field_operators() {
        let sel = field("metadata.name=web,status.phase!=Running");
        assert!(sel.check(POD_FIELDS).is_ok());
        assert!(sel.matches(pod("web", None, "Pending")));
        assert!(!sel.matches(pod("web", None, "Running")));
        assert!(!sel.matches(pod("db", None, "Pending")));
        assert_eq!(sel.exact("metadata.name"), Some("web"));
        assert_eq!(sel.exact("status.phase"), None, "!= pins nothing");
        assert_eq!(sel.exact("spec.nodeName"), None);

        let sel = field("metadata.name==web");
        assert_eq!(
            sel.requirements()[0].operator(),
            FieldOperator::DoubleEquals
        );
        assert_eq!(sel.exact("metadata.name"), Some("web"));
        assert!(sel.matches(pod("web", None, "Running")));
        assert_eq!(
            field("metadata.name=web").requirements()[0].operator(),
            FieldOperator::Equals
        );
    }

    #[test]
    fn absent_field_reads_as_empty() {
        let unscheduled = field("spec.nodeName=");
        assert!(unscheduled.matches(pod("web", None, "Pending")));
        assert!(!unscheduled.matches(pod("web", Some("n1"), "Running")));
        let scheduled = field("spec.nodeName!=");
        assert!(!scheduled.matches(pod("web", None, "Pending")));
        assert!(scheduled.matches(pod("web", Some("n1"), "Running")));
        assert!(field("spec.nodeName=n1").matches(pod("web", Some("n1"), "Running")));
    }

    #[test]
    fn empty_field_selectors() {
        for s in ["", ",", ",,", "=", "==,!=", ",="] {
            let sel = field(s);
            assert!(sel.is_empty(), "{s:?}");
            assert!(sel.matches(|_| None));
            assert!(sel.check(&[]).is_ok());
        }
        assert!(!field("=x").is_empty(), "an empty key with a value stays");
        assert_eq!(
            field("=x").check(POD_FIELDS),
            Err(SelectorError::FieldNotSupported(String::new()))
        );
        assert_eq!(field("a=b,,c=d").requirements().len(), 2);
    }

    #[test]
    fn field_check_wording_and_order() {
        let err = field("spec.foo=1").check(POD_FIELDS);
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("field label not supported: spec.foo".to_owned())
        );
        // Terms are checked in sorted order, as Kubernetes transforms them.
        assert_eq!(
            field("zeta=1,beta=2").check(POD_FIELDS),
            Err(SelectorError::FieldNotSupported("beta".to_owned()))
        );
        // Nothing is trimmed: the blank belongs to the key.
        assert_eq!(
            field("metadata.name = web").check(POD_FIELDS),
            Err(SelectorError::FieldNotSupported(
                "metadata.name ".to_owned()
            ))
        );
        assert_eq!(
            field("metadata.name= web").exact("metadata.name"),
            Some(" web")
        );
    }

    #[test]
    fn field_syntax_errors() {
        assert_eq!(
            field_err("metadata.name"),
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            field_err("a=b,c"),
            "invalid selector: 'a=b,c'; can't understand 'c'"
        );
        assert_eq!(
            field_err("a<b"),
            "invalid selector: 'a<b'; can't understand 'a<b'"
        );
        assert_eq!(
            field_err("a=b=c"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            field_err("a!==c"),
            "invalid field selector: unescaped character in value: 61"
        );
        assert_eq!(
            field_err("a=b\\x"),
            "invalid field selector: invalid escape sequence: \\x"
        );
        assert_eq!(
            field_err("a=b\\"),
            "invalid field selector: invalid escape sequence: \\"
        );
    }

    #[test]
    fn field_escapes() {
        let sel = field("a=x\\,y\\=z\\\\,b!=\\,");
        assert_eq!(sel.exact("a"), Some("x,y=z\\"));
        assert_eq!(sel.requirements()[1].value(), ",");
        assert_eq!(sel.to_string(), "a=x\\,y\\=z\\\\,b!=\\,");
        assert_eq!(field(&sel.to_string()), sel);
        // An escaped comma does not split the key either; the key stays as written.
        let sel = field("a\\,b=c");
        assert_eq!(sel.requirements()[0].key(), "a\\,b");
    }

    #[test]
    fn field_operator_split_is_the_first_operator() {
        let sel = field("a!b=c");
        assert_eq!(sel.requirements()[0].key(), "a!b");
        assert_eq!(sel.requirements()[0].operator(), FieldOperator::Equals);
        let sel = field("é!=ü");
        assert_eq!(
            (sel.requirements()[0].key(), sel.requirements()[0].value()),
            ("é", "ü")
        );
    }

    #[test]
    fn field_exact_takes_the_first_pinning_term() {
        let sel = field("metadata.name!=x,metadata.name=b,metadata.name=a");
        assert_eq!(sel.exact("metadata.name"), Some("a"));
    }

    // ---- properties ----

    fn key_strategy() -> impl Strategy<Value = String> {
        "(([a-z0-9]{1,4}\\.)?[a-z]{1,5}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?"
    }

    fn value_strategy() -> impl Strategy<Value = String> {
        "([A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?)?"
    }

    /// Text built from the selector grammar's own pieces, to get past the first token often.
    fn selectorish() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("a"),
                Just("b/c"),
                Just("x.io/k"),
                Just("in"),
                Just("notin"),
                Just("="),
                Just("=="),
                Just("!="),
                Just("!"),
                Just("("),
                Just(")"),
                Just(","),
                Just(">"),
                Just("<"),
                Just("7"),
                Just(" "),
                Just("\t"),
                Just("\\"),
                Just("\0"),
                Just("-"),
                Just("é"),
            ],
            0..16,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in any::<String>()) {
            if let Ok(sel) = LabelSelector::parse(&s) {
                let _ = sel.matches(&labels(&[("a", "1")]));
            }
            if let Ok(sel) = FieldSelector::parse(&s) {
                let _ = sel.check(POD_FIELDS);
                let _ = sel.matches(|_| None);
            }
        }

        #[test]
        fn parsed_selectors_print_back(s in selectorish()) {
            if let Ok(sel) = LabelSelector::parse(&s) {
                let again = LabelSelector::parse(&sel.to_string());
                prop_assert_eq!(again, Ok(sel));
            }
            if let Ok(sel) = FieldSelector::parse(&s) {
                let again = FieldSelector::parse(&sel.to_string());
                prop_assert_eq!(again, Ok(sel));
            }
        }

        #[test]
        fn a_map_selects_itself(
            map in proptest::collection::btree_map(key_strategy(), value_strategy(), 0..6),
            spaced in any::<bool>(),
        ) {
            let sep = if spaced { " , " } else { "," };
            let text = map
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(sep);
            let sel = LabelSelector::parse(&text);
            prop_assert!(sel.is_ok(), "{:?}: {:?}", text, sel);
            let sel = sel.unwrap_or_default();
            prop_assert!(sel.matches(&map));
            prop_assert_eq!(sel.is_empty(), map.is_empty());
            prop_assert_eq!(sel.requirements().len(), map.len());
            for (k, v) in &map {
                let mut other = map.clone();
                other.insert(k.clone(), format!("{v}x"));
                prop_assert!(!sel.matches(&other));
                other.remove(k);
                prop_assert!(!sel.matches(&other));
            }
            let typed = meta::LabelSelector { match_labels: Some(map.clone()), match_expressions: None };
            prop_assert_eq!(LabelSelector::from_label_selector(&typed), Ok(sel));
        }

        #[test]
        fn a_field_map_selects_itself(
            map in proptest::collection::btree_map("[a-z]{1,4}(\\.[a-zA-Z]{1,4})?", any::<String>(), 0..5),
        ) {
            let text = map
                .iter()
                .map(|(k, v)| format!("{k}={}", escape_field_value(v)))
                .collect::<Vec<_>>()
                .join(",");
            let sel = FieldSelector::parse(&text);
            prop_assert!(sel.is_ok(), "{:?}: {:?}", text, sel);
            let sel = sel.unwrap_or_default();
            prop_assert!(sel.matches(|k| map.get(k).cloned()));
            for (k, v) in &map {
                prop_assert_eq!(sel.exact(k), Some(v.as_str()));
            }
            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
            prop_assert!(sel.check(&keys).is_ok());
        }
    }
}
