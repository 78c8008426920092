//! Output helpers shared by every command: docker's table writer (Go tabwriter with min width 10,
//! padding 3), ID truncation, ellipsis, capitalisation, natural sort, `--format json` rows, Go-style
//! JSON indentation for `inspect`, and "N seconds ago".

use std::cmp::Ordering;

use chrono::{DateTime, Utc};

use crate::units::human_duration;

/// A table laid out like docker's `formatter.Context` does with Go's tabwriter
/// (`NewWriter(out, 10, 1, 3, ' ', 0)`): every cell but the last of a row is padded to its
/// column's width (widest cell + 3, at least 10); the last cell is written as is.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|s| s.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        self.render_with(10, 3)
    }

    /// Renders with another min width and padding (docker's `version` uses 20 and 1).
    pub fn render_with(&self, min_width: usize, padding: usize) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![min_width; columns.saturating_sub(1)];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
                let w = cell.chars().count() + padding;
                if w > widths[i] {
                    widths[i] = w;
                }
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                out.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// docker's `stringid.TruncateID`: the first 12 characters.
pub fn truncate_id(id: &str) -> &str {
    match id.char_indices().nth(12) {
        Some((i, _)) => &id[..i],
        None => id,
    }
}

/// docker's `formatter.Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    let count = s.chars().count();
    if count <= max {
        return s.to_string();
    }
    if max == 1 {
        return s.chars().take(1).collect();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// docker's `formatter.PrettyPrint`: first letter upper case, the rest lower case.
pub fn pretty(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), s.chars().count()) {
        (None, _) => String::new(),
        (Some(_), 1) => s.to_lowercase(),
        (Some(first), _) => first
            .to_uppercase()
            .chain(chars.as_str().to_lowercase().chars())
            .collect(),
    }
}

/// `sortorder.NaturalLess` as an ordering: digit runs compare by value ("web.2" < "web.10").
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (da, db) = (a[i].is_ascii_digit(), b[j].is_ascii_digit());
        if da != db {
            return if da {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        if !da {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
            continue;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let (nz_a, nz_b) = (i, j);
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (la, lb) = (i - nz_a, j - nz_b);
        if la != lb {
            return la.cmp(&lb);
        }
        match a[nz_a..i].cmp(&b[nz_b..j]) {
            Ordering::Equal => {}
            other => return other,
        }
        if nz_a != nz_b {
            return nz_a.cmp(&nz_b);
        }
    }
    // Equal so far and at least one ended: the longer sorts last, as in Go.
    a.len().cmp(&b.len())
}

/// Parses an API timestamp (RFC 3339 with nanoseconds).
pub fn parse_time(ts: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Nanoseconds from `ts` to `now` (0 when `ts` does not parse).
pub fn since_nanos(ts: Option<&str>, now: DateTime<Utc>) -> i64 {
    ts.and_then(parse_time)
        .and_then(|t| (now - t).num_nanoseconds())
        .unwrap_or(0)
}

/// "5 seconds ago" as `service ps` writes it (go-units' text, lower-cased).
pub fn ago_lower(ts: Option<&str>, now: DateTime<Utc>) -> String {
    format!(
        "{} ago",
        human_duration(since_nanos(ts, now)).to_lowercase()
    )
}

/// How docker's node inspect shows a time: Go's `time.Time.String()` passed through
/// `PrettyPrint`, e.g. `2026-11-24 12:55:22.827113773 +0000 utc`.
pub fn go_time_pretty(ts: &str) -> String {
    match parse_time(ts) {
        Some(t) => {
            let nanos = t.timestamp_subsec_nanos();
            let frac = if nanos == 0 {
                String::new()
            } else {
                format!(".{:09}", nanos).trim_end_matches('0').to_string()
            };
            format!("{}{frac} +0000 utc", t.format("%Y-%m-%d %H:%M:%S"))
        }
        None => pretty(ts),
    }
}

/// Go's `json.Indent(dst, src, "", "    ")`: re-indents compact JSON text without reordering keys
/// (inspect output keeps the daemon's field order, which our typed models would lose).
pub fn json_indent(src: &[u8]) -> String {
    let text = String::from_utf8_lossy(src);
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut need_indent = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("    ");
        }
    };
    for c in text.chars() {
        if in_string {
            // Go's encoder (which docker's inspect re-encodes with) escapes these for HTML safety.
            match c {
                '<' if !escaped => out.push_str("\\u003c"),
                '>' if !escaped => out.push_str("\\u003e"),
                '&' if !escaped => out.push_str("\\u0026"),
                '\u{2028}' => out.push_str("\\u2028"),
                '\u{2029}' => out.push_str("\\u2029"),
                _ => out.push(c),
            }
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c.is_whitespace() {
            continue;
        }
        if need_indent && c != ']' && c != '}' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                need_indent = true;
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            '}' | ']' => {
                if need_indent {
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// A JSON array of raw documents, indented like docker's `inspect`.
pub fn inspect_array(docs: &[bytes::Bytes]) -> String {
    let mut joined = Vec::new();
    joined.push(b'[');
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            joined.push(b',');
        }
        joined.extend_from_slice(d);
    }
    joined.push(b']');
    json_indent(&joined)
}

/// One `--format json` row: an object of string/bool fields with keys sorted, as Go marshals the
/// formatter context's map.
pub fn json_row(fields: &[(&str, serde_json::Value)]) -> String {
    let map: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    // Go's encoder escapes these for HTML safety; outside strings JSON never contains them.
    serde_json::Value::Object(map)
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_like_go_tabwriter() {
        let mut t = Table::new(&["ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"]);
        t.row(vec![
            "z7455svtw0xn".into(),
            "ep".into(),
            "replicated".into(),
            "1/1".into(),
            "bb:latest".into(),
            "".into(),
        ]);
        t.row(vec![
            "o1na3s1s76cg".into(),
            "web".into(),
            "replicated".into(),
            "0/3 (max 2 per node)".into(),
            "bb:latest".into(),
            "".into(),
        ]);
        let expected = "\
ID             NAME      MODE         REPLICAS               IMAGE       PORTS
z7455svtw0xn   ep        replicated   1/1                    bb:latest   
o1na3s1s76cg   web       replicated   0/3 (max 2 per node)   bb:latest   
";
        assert_eq!(t.render(), expected);
    }

    #[test]
    fn ids_and_ellipsis() {
        assert_eq!(truncate_id("o1na3s1s76cga4717peya4f45"), "o1na3s1s76cg");
        assert_eq!(truncate_id("short"), "short");
        assert_eq!(
            ellipsis("starting container failed: unable to find user nobody", 30),
            "starting container failed: un…"
        );
        assert_eq!(ellipsis("short", 30), "short");
        assert_eq!(ellipsis("ab", 1), "a");
    }

    #[test]
    fn pretty_capitalises_first_only() {
        assert_eq!(pretty("running"), "Running");
        assert_eq!(pretty("ACTIVE"), "Active");
        assert_eq!(pretty("x"), "x");
        assert_eq!(pretty(""), "");
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["web.10", "web.2", "api", "web.1", "web.01", "Web"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["Web", "api", "web.1", "web.01", "web.2", "web.10"]);
        assert_eq!(natural_cmp("a", "ab"), Ordering::Less);
        assert_eq!(natural_cmp("same", "same"), Ordering::Equal);
    }

    #[test]
    fn time_ago() {
        let now = parse_time("2026-11-24T12:00:10.5Z").expect("valid");
        assert_eq!(
            ago_lower(Some("2026-11-24T12:00:05.000000001Z"), now),
            "5 seconds ago"
        );
        assert_eq!(
            ago_lower(Some("2026-11-24T12:00:10Z"), now),
            "less than a second ago"
        );
        assert_eq!(
            ago_lower(Some("2026-11-24T11:59:00Z"), now),
            "about a minute ago"
        );
        assert_eq!(ago_lower(Some("garbage"), now), "less than a second ago");
    }

    #[test]
    fn go_time_strings() {
        assert_eq!(
            go_time_pretty("2026-11-24T12:55:22.827113773Z"),
            "2026-11-24 12:55:22.827113773 +0000 utc"
        );
        assert_eq!(
            go_time_pretty("2026-11-24T12:55:22.5Z"),
            "2026-11-24 12:55:22.5 +0000 utc"
        );
        assert_eq!(
            go_time_pretty("2026-11-24T12:55:22Z"),
            "2026-11-24 12:55:22 +0000 utc"
        );
    }

    #[test]
    fn json_indent_matches_go() {
        let src = br#"{"ID":"x","Spec":{"Labels":{},"Args":["a","b\"c"]},"E":[],"N":1}"#;
        let expected = r#"{
    "ID": "x",
    "Spec": {
        "Labels": {},
        "Args": [
            "a",
            "b\"c"
        ]
    },
    "E": [],
    "N": 1
}"#;
        assert_eq!(json_indent(src), expected);
        assert_eq!(
            json_indent(br#"{"A":"x >&2 <y>"}"#),
            "{\n    \"A\": \"x \\u003e\\u00262 \\u003cy\\u003e\"\n}"
        );
        assert_eq!(inspect_array(&[]), "[]");
        assert_eq!(
            inspect_array(&[bytes::Bytes::from_static(b"{\"A\":1}")]),
            "[\n    {\n        \"A\": 1\n    }\n]"
        );
    }

    #[test]
    fn json_rows_sort_keys() {
        let row = json_row(&[
            ("Name", "web".into()),
            ("ID", "abc".into()),
            ("Self", true.into()),
        ]);
        assert_eq!(row, r#"{"ID":"abc","Name":"web","Self":true}"#);
        let row = json_row(&[("Ports", "*:80->80/tcp".into())]);
        assert_eq!(row, r#"{"Ports":"*:80-\u003e80/tcp"}"#);
    }
}
