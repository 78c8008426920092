//! Variable interpolation (`$VAR`, `${VAR:-default}`, ...) in the scalar values of a document,
//! before anything is typed, so `replicas: ${N}` works and an error points at the value.
//!
//! Hand-written: no crate implements compose's syntax (shell-expansion crates differ on `$$`,
//! on what an invalid `$` is, and on docker's unbraced forms). What is supported:
//!
//! - `$$` is a literal `$`; a `$` followed by anything else that is not a variable is an error,
//!   as in docker ("invalid interpolation format").
//! - `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `${VAR?err}`, and from the
//!   Compose Specification `${VAR:+alt}`, `${VAR+alt}` and nesting (`${A:-${B}}`): the text after
//!   the operator is itself interpolated, only when it is used.
//!   The docker CLI's own template (docker/cli `cli/compose/template`) has neither: it refuses
//!   `:+`/`+` as invalid, and reads `${A:-${B}}` as the default `${B` followed by a literal `}`.
//!   shoal follows the Compose Specification there, on purpose.
//! - `$VAR` unbraced is docker's: a name (`[_A-Za-z][_A-Za-z0-9]*`) optionally followed by
//!   `:-`, `-`, `:?` or `?` and everything up to the next `}` or the end of the value, applied
//!   like the braced form. So `$TAG-alpine` is `$TAG` with the default `alpine`, not `$TAG`
//!   followed by `-alpine`. Odd, but it is what `docker stack deploy` does, and shoal must create
//!   the same services from the same file.
//!
//! Only values are interpolated, never keys, and extension fields (`x-...`) too (docker does).

use crate::error::{Diag, index, join};
use crate::yaml::{Kind, Node, Style};

/// Nesting of `${...}` inside defaults deeper than this is refused (each level recurses).
const MAX_NESTING: usize = 32;

/// Replaces variables in every scalar value under `node`, recording errors in `diag` under the
/// value's dotted path.
pub(crate) fn interpolate(
    node: &mut Node,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    diag: &mut Diag<'_>,
) {
    match &mut node.kind {
        Kind::Scalar(s) => {
            if !s.text.contains('$') {
                return;
            }
            match substitute(&s.text, lookup) {
                Ok(new) => {
                    if new != s.text {
                        s.text = new;
                        s.style = Style::Interpolated;
                    }
                }
                Err(message) => diag.err(node.pos, path, message),
            }
        }
        Kind::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &index(path, i), lookup, diag);
            }
        }
        Kind::Map(entries) => {
            for e in entries {
                interpolate(&mut e.value, &join(path, &e.key), lookup, diag);
            }
        }
    }
}

/// Substitutes the variables in one value. The error is the message to show.
pub(crate) fn substitute(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    substitute_at(s, lookup, 0)
}

fn invalid(s: &str) -> String {
    format!("invalid interpolation format {s:?}: you may need to escape any $ with another $")
}

fn name_len(b: &[u8]) -> usize {
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => b
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count(),
        _ => 0,
    }
}

/// The operators, longest first so `:-` is not read as `:` then `-`.
const OPS: [&str; 6] = [":-", ":?", ":+", "-", "?", "+"];

fn substitute_at(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    depth: usize,
) -> Result<String, String> {
    if depth > MAX_NESTING {
        return Err(format!(
            "invalid interpolation format: nested deeper than {MAX_NESTING} levels"
        ));
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        let Some(off) = s[i..].find('$') else {
            out.push_str(&s[i..]);
            break;
        };
        out.push_str(&s[i..i + off]);
        i += off;
        match b.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let start = i + 2;
                let n = name_len(&b[start..]);
                if n == 0 {
                    return Err(invalid(s));
                }
                let name = &s[start..start + n];
                let after = start + n;
                if b.get(after) == Some(&b'}') {
                    out.push_str(&lookup(name).unwrap_or_default());
                    i = after + 1;
                    continue;
                }
                let Some(op) = OPS.iter().find(|op| s[after..].starts_with(**op)) else {
                    return Err(invalid(s));
                };
                let arg_start = after + op.len();
                let Some(end) = closing_brace(b, arg_start) else {
                    return Err(invalid(s));
                };
                let arg = &s[arg_start..end];
                let value = apply(name, op, arg, lookup, |t| {
                    substitute_at(t, lookup, depth + 1)
                })?;
                out.push_str(&value);
                i = end + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                // docker's unbraced form: `$NAME`, optionally `:-`/`-`/`:?`/`?` and text up
                // to the next `}` (not included) or the end; the text is not interpolated.
                let start = i + 1;
                let n = name_len(&b[start..]);
                let name = &s[start..start + n];
                let after = start + n;
                let op = [":-", ":?", "-", "?"]
                    .into_iter()
                    .find(|op| s[after..].starts_with(op));
                match op {
                    None => {
                        out.push_str(&lookup(name).unwrap_or_default());
                        i = after;
                    }
                    Some(op) => {
                        let arg_start = after + op.len();
                        let end = s[arg_start..].find('}').map_or(s.len(), |o| arg_start + o);
                        let arg = &s[arg_start..end];
                        let value = apply(name, op, arg, lookup, |t| Ok(t.to_string()))?;
                        out.push_str(&value);
                        i = end;
                    }
                }
            }
            _ => return Err(invalid(s)),
        }
    }
    Ok(out)
}

/// The `}` closing a braced expression whose argument starts at `from`, skipping nested
/// `${...}` and `$$`.
fn closing_brace(b: &[u8], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'$') => i += 2,
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
            }
            b'}' => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

fn apply(
    name: &str,
    op: &str,
    arg: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    expand: impl Fn(&str) -> Result<String, String>,
) -> Result<String, String> {
    let value = lookup(name);
    let set_non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    match op {
        ":-" if !set_non_empty => expand(arg),
        "-" if value.is_none() => expand(arg),
        ":?" if !set_non_empty => Err(required(name, &expand(arg)?)),
        "?" if value.is_none() => Err(required(name, &expand(arg)?)),
        ":+" => {
            if set_non_empty {
                expand(arg)
            } else {
                Ok(String::new())
            }
        }
        "+" => {
            if value.is_some() {
                expand(arg)
            } else {
                Ok(String::new())
            }
        }
        _ => Ok(value.unwrap_or_default()),
    }
}

fn required(name: &str, message: &str) -> String {
    if message.is_empty() {
        format!("required variable {name} is missing a value")
    } else {
        format!("required variable {name} is missing a value: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(s: &str) -> Result<String, String> {
        let env = |k: &str| match k {
            "SET" => Some("v".to_string()),
            "EMPTY" => Some(String::new()),
            "N" => Some("3".to_string()),
            _ => None,
        };
        substitute(s, &env)
    }

    #[test]
    fn plain_and_braced() {
        assert_eq!(sub("a $SET b ${SET}c").expect("ok"), "a v b vc");
        assert_eq!(sub("$UNSET|${UNSET}").expect("ok"), "|");
        assert_eq!(sub("cost: $$5 $${SET}").expect("ok"), "cost: $5 ${SET}");
        assert_eq!(sub("${set}").expect("ok"), "");
        assert_eq!(sub("no dollars").expect("ok"), "no dollars");
    }

    #[test]
    fn defaults_and_alternatives() {
        assert_eq!(sub("${UNSET:-d}").expect("ok"), "d");
        assert_eq!(sub("${EMPTY:-d}").expect("ok"), "d");
        assert_eq!(sub("${EMPTY-d}").expect("ok"), "");
        assert_eq!(sub("${UNSET-d}").expect("ok"), "d");
        assert_eq!(sub("${SET:-d}").expect("ok"), "v");
        assert_eq!(
            sub("${SET:+alt}|${EMPTY:+alt}|${UNSET:+alt}").expect("ok"),
            "alt||"
        );
        assert_eq!(sub("${EMPTY+alt}|${UNSET+alt}").expect("ok"), "alt|");
        assert_eq!(sub("${UNSET:-${N}}").expect("ok"), "3");
        assert_eq!(sub("${UNSET:-${ALSO:-x${N}y}}z").expect("ok"), "x3yz");
        assert_eq!(sub("${UNSET:-a:b-c}").expect("ok"), "a:b-c");
        assert_eq!(sub("${SET:-${BAD:?never evaluated}}").expect("ok"), "v");
    }

    #[test]
    fn required_variables() {
        assert_eq!(
            sub("${UNSET:?set it}").expect_err("an error"),
            "required variable UNSET is missing a value: set it"
        );
        assert_eq!(
            sub("${EMPTY:?}").expect_err("an error"),
            "required variable EMPTY is missing a value"
        );
        assert_eq!(sub("${EMPTY?x}").expect("ok"), "");
        assert_eq!(
            sub("${UNSET?need ${N}}").expect_err("an error"),
            "required variable UNSET is missing a value: need 3"
        );
    }

    #[test]
    fn docker_unbraced_forms() {
        // docker's regex takes `-alpine` as a default of $SET.
        assert_eq!(sub("$SET-alpine").expect("ok"), "v");
        assert_eq!(sub("$UNSET-alpine").expect("ok"), "alpine");
        assert_eq!(sub("$UNSET:-x}y").expect("ok"), "x}y");
        assert_eq!(
            sub("$UNSET:?boom").expect_err("an error"),
            "required variable UNSET is missing a value: boom"
        );
    }

    #[test]
    fn invalid_forms() {
        for bad in [
            "$", "a $ b", "${", "${}", "${1}", "$1", "${A", "${A:-x", "${A!}",
        ] {
            let e = sub(bad).expect_err("an error");
            assert!(e.starts_with("invalid interpolation format"), "{bad}: {e}");
        }
        let deep = format!("{}{}", "${A:-".repeat(100), "}".repeat(100));
        assert!(sub(&deep).expect_err("an error").contains("nested deeper"));
    }
}
