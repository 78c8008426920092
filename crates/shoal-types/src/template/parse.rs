//! The template parser: recursive descent over the text, resolving field paths against Swarm's
//! context as it goes so errors point at the misspelt part.

use super::{Expr, FUNCTIONS, Part, Path, Position, Template, TemplateError};

/// Go's `text/template` whitespace.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Go's identifier characters.
fn is_ident(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

const GO_KEYWORDS: [&str; 10] = [
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];
const GO_BUILTINS: [&str; 18] = [
    "and", "or", "not", "len", "print", "printf", "println", "eq", "ne", "lt", "le", "gt", "ge",
    "call", "html", "js", "urlquery", "slice",
];

/// What an operand turned out to be: a value, or a function awaiting its arguments.
enum Head {
    Value(Expr),
    Func(&'static str, usize),
}

/// A recursive-descent parser over the template's text. `i` is a byte offset on a char boundary.
pub(super) struct Parser<'a> {
    name: &'a str,
    src: &'a str,
    i: usize,
    /// Added to columns on the first line: the template is the tail of what the user wrote
    /// (an env value after `KEY=`).
    col_offset: usize,
    /// Where the action being parsed opened, for "unclosed action".
    open: usize,
}

impl<'a> Parser<'a> {
    pub(super) fn new(name: &'a str, src: &'a str, col_offset: usize) -> Self {
        Parser {
            name,
            src,
            i: 0,
            col_offset,
            open: 0,
        }
    }

    fn position(&self, at: usize) -> Position {
        let before = &self.src[..at];
        let line = 1 + before.matches('\n').count();
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        let mut column = before[line_start..].chars().count() + 1;
        if line == 1 {
            column += self.col_offset;
        }
        Position { line, column }
    }

    fn err(&self, at: usize, message: impl Into<String>) -> TemplateError {
        TemplateError {
            name: self.name.to_string(),
            position: self.position(at),
            message: message.into(),
        }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.i..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.i += rest.len() - rest.trim_start_matches(is_space).len();
    }

    pub(super) fn template(mut self) -> Result<Template, TemplateError> {
        let mut nodes = Vec::new();
        let mut trim_next = false;
        loop {
            let rest = self.rest();
            let Some(off) = rest.find("{{") else {
                let text = if trim_next {
                    rest.trim_start_matches(is_space)
                } else {
                    rest
                };
                if !text.is_empty() {
                    nodes.push(Part::Text(text.to_string()));
                }
                return Ok(Template {
                    name: self.name.to_string(),
                    nodes,
                });
            };
            let mut text = &rest[..off];
            if trim_next {
                text = text.trim_start_matches(is_space);
            }
            self.open = self.i + off;
            self.i = self.open + 2;
            // `{{- ` trims the text before; `{{-3}}` would be a number, so the space is required.
            let mut after = self.rest().chars();
            if after.next() == Some('-') && after.next().is_some_and(is_space) {
                text = text.trim_end_matches(is_space);
                self.i += 1;
            }
            if !text.is_empty() {
                nodes.push(Part::Text(text.to_string()));
            }
            let (expr, trim) = self.action()?;
            nodes.extend(expr.map(Part::Action));
            trim_next = trim;
        }
    }

    /// Consumes `}}` or ` -}}` (telling whether it trims what follows), if the action ends here.
    fn end(&mut self) -> Option<bool> {
        let rest = self.rest();
        if rest.starts_with("}}") {
            self.i += 2;
            Some(false)
        } else if rest.starts_with("-}}") && self.src[..self.i].ends_with(is_space) {
            self.i += 3;
            Some(true)
        } else {
            None
        }
    }

    fn at_terminator(&self) -> bool {
        let rest = self.rest();
        rest.is_empty()
            || rest.starts_with("}}")
            || rest.starts_with(')')
            || rest.starts_with('|')
            || (rest.starts_with("-}}") && self.src[..self.i].ends_with(is_space))
    }

    fn unclosed(&self) -> TemplateError {
        self.err(self.open, "unclosed action: no \"}}\" after this \"{{\"")
    }

    fn action(&mut self) -> Result<(Option<Expr>, bool), TemplateError> {
        self.skip_space();
        if self.rest().starts_with("/*") {
            return self.comment().map(|trim| (None, trim));
        }
        if self.rest().is_empty() {
            return Err(self.unclosed());
        }
        if self.end().is_some() {
            return Err(self.err(self.open, "empty action: \"{{}}\" needs a value inside"));
        }
        let expr = self.command()?;
        self.skip_space();
        match self.end() {
            Some(trim) => Ok((Some(expr), trim)),
            None => Err(self.stray()),
        }
    }

    fn comment(&mut self) -> Result<bool, TemplateError> {
        let at = self.i;
        let Some(close) = self.rest().find("*/") else {
            return Err(self.err(at, "unclosed comment: no \"*/\" after this \"/*\""));
        };
        self.i += close + 2;
        self.skip_space();
        self.end()
            .ok_or_else(|| self.err(at, "a comment must end just before \"}}\""))
    }

    /// The error for a token where the action should have ended.
    fn stray(&self) -> TemplateError {
        match self.peek() {
            None => self.unclosed(),
            Some('}') => self.unclosed(),
            Some('|') => self.err(self.i, "pipelines (\"|\") are not supported here"),
            Some(')') => self.err(self.i, "unexpected \")\" with no \"(\" before it"),
            Some(_) => self.err(
                self.i,
                format!(
                    "unexpected {} after a value: only a function ({FUNCTIONS}) takes arguments",
                    self.describe_next()
                ),
            ),
        }
    }

    /// The next token as an error message shows it: `".Task"`, `"foo"`.
    fn describe_next(&self) -> String {
        let rest = self.rest();
        let word: String = rest
            .chars()
            .take_while(|c| !is_space(*c) && *c != '}' && *c != ')')
            .take(40)
            .collect();
        if word.is_empty() {
            format!("{:?}", rest.chars().next().unwrap_or(' '))
        } else {
            format!("{word:?}")
        }
    }

    /// A value, or a function with its arguments, up to the end of the action or a `)`.
    fn command(&mut self) -> Result<Expr, TemplateError> {
        match self.operand()? {
            Head::Value(e) => Ok(e),
            Head::Func(name, at) => {
                let mut args = Vec::new();
                loop {
                    let before = self.i;
                    self.skip_space();
                    if self.at_terminator() {
                        break;
                    }
                    if before == self.i {
                        return Err(self.err(
                            self.i,
                            format!("a space must separate {name} from its arguments"),
                        ));
                    }
                    let arg_at = self.i;
                    match self.operand()? {
                        Head::Value(e) => args.push((e, arg_at)),
                        Head::Func(f, _) => {
                            return Err(self.err(
                                arg_at,
                                format!(
                                    "to pass the result of {f} as an argument, write ({f} ...)"
                                ),
                            ));
                        }
                    }
                }
                self.call(name, at, args)
            }
        }
    }

    fn call(&self, name: &str, at: usize, args: Vec<(Expr, usize)>) -> Result<Expr, TemplateError> {
        let need_text = |(e, at): (Expr, usize)| match e {
            Expr::Path(p) if !p.is_text() => Err(self.err(
                at,
                format!("{name}: this argument must be text, not a struct or a map"),
            )),
            e => Ok(e),
        };
        if name == "join" {
            if args.is_empty() {
                return Err(self.err(
                    at,
                    "join needs a separator and the values to join: {{join \"-\" .Service.Name .Task.Slot}}",
                ));
            }
            return Ok(Expr::Join(
                args.into_iter().map(need_text).collect::<Result<_, _>>()?,
            ));
        }
        let mut args = args.into_iter();
        let Some((map, map_at)) = args.next() else {
            return Err(self.err(
                at,
                "index needs a map and a key: {{index .Service.Labels \"com.example.key\"}}",
            ));
        };
        if map != Expr::Path(Path::Labels) {
            return Err(self.err(map_at, "index: the only map to index is .Service.Labels"));
        }
        let Some(key) = args.next() else {
            return Ok(map);
        };
        if let Some((_, extra_at)) = args.next() {
            return Err(self.err(
                extra_at,
                "index: a label value is text and cannot be indexed further",
            ));
        }
        Ok(Expr::Label(Box::new(need_text(key)?)))
    }

    fn operand(&mut self) -> Result<Head, TemplateError> {
        let at = self.i;
        let Some(c) = self.peek() else {
            return Err(self.unclosed());
        };
        let value = match c {
            '.' => self.path(at, "")?,
            '$' => {
                self.i += 1;
                match self.peek() {
                    Some('.') if self.rest()[1..].starts_with(is_ident) => self.path(at, "$")?,
                    Some(c) if is_ident(c) => {
                        return Err(self.err(at, "variables are not supported; use $ or ."));
                    }
                    _ => Expr::Path(Path::Root),
                }
            }
            '"' => Expr::Str(self.quoted(at)?),
            '`' => {
                let body = &self.rest()[1..];
                let Some(end) = body.find('`') else {
                    return Err(self.err(at, "unterminated raw quoted string"));
                };
                self.i += end + 2;
                Expr::Str(body[..end].to_string())
            }
            '(' => {
                self.i += 1;
                self.skip_space();
                let e = self.command()?;
                self.skip_space();
                if self.peek() != Some(')') {
                    if self.at_terminator() && !self.rest().starts_with('|') {
                        return Err(self.err(at, "unclosed \"(\": no \")\" before the action ends"));
                    }
                    return Err(self.stray());
                }
                self.i += 1;
                e
            }
            c if c == '_' || c.is_alphabetic() => return self.identifier(at),
            _ => {
                return Err(self.err(at, format!("unexpected {} in action", self.describe_next())));
            }
        };
        self.after_operand(&value)?;
        Ok(Head::Value(value))
    }

    /// An operand must be followed by a space, `)` or the end of the action: `.Service.Name-x`
    /// is an error in Go, not text.
    fn after_operand(&self, value: &Expr) -> Result<(), TemplateError> {
        let Some(c) = self.peek() else {
            return Ok(());
        };
        if is_space(c) || self.at_terminator() {
            return Ok(());
        }
        let mut msg = format!("unexpected {:?} right after a value", c);
        if let Expr::Path(Path::Label { key, .. }) = value {
            let tail: String = self
                .rest()
                .chars()
                .take_while(|c| !is_space(*c) && *c != '}' && *c != ')')
                .collect();
            msg = format!(
                "{msg}: for a label named with {c:?} write {{{{index .Service.Labels \"{key}{tail}\"}}}}"
            );
        }
        Err(self.err(self.i, msg))
    }

    fn identifier(&mut self, at: usize) -> Result<Head, TemplateError> {
        let word_len = self
            .rest()
            .find(|c: char| !is_ident(c))
            .unwrap_or(self.rest().len());
        let word = &self.rest()[..word_len];
        let head = match word {
            "index" => Head::Func("index", at),
            "join" => Head::Func("join", at),
            w if GO_KEYWORDS.contains(&w) => {
                return Err(self.err(
                    at,
                    format!("{{{{{w}}}}} actions are not supported in service templates"),
                ));
            }
            w if GO_BUILTINS.contains(&w) => {
                return Err(self.err(
                    at,
                    format!(
                        "function {w:?} is not supported in service templates (only {FUNCTIONS} are)"
                    ),
                ));
            }
            w => {
                return Err(self.err(
                    at,
                    format!(
                        "function {w:?} not defined (fields start with a dot: .{w}; functions are {FUNCTIONS})"
                    ),
                ));
            }
        };
        self.i += word_len;
        Ok(head)
    }

    /// A Go interpreted string: `"..."` with backslash escapes, on one line.
    fn quoted(&mut self, at: usize) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut chars = self.rest().char_indices().skip(1);
        while let Some((off, c)) = chars.next() {
            match c {
                '"' => {
                    self.i += off + 1;
                    return Ok(out);
                }
                '\n' => break,
                '\\' => {
                    let Some((esc_off, e)) = chars.next() else {
                        break;
                    };
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '\\' => '\\',
                        '"' => '"',
                        '\'' => '\'',
                        _ => {
                            return Err(self.err(
                                self.i + esc_off - 1,
                                format!("unknown escape \\{e} in quoted string"),
                            ));
                        }
                    });
                }
                c => out.push(c),
            }
        }
        Err(self.err(at, "unterminated quoted string"))
    }

    /// A field path `.A.B.C` (after an optional `$`, already consumed), resolved against the
    /// context so a misspelt field is refused now, pointing at the misspelt part.
    fn path(&mut self, start: usize, prefix: &str) -> Result<Expr, TemplateError> {
        let mut path = Path::Root;
        let mut shown = prefix.to_string();
        loop {
            let rest = self.rest();
            if !rest.starts_with('.') {
                break;
            }
            let name_len = rest[1..]
                .find(|c: char| !is_ident(c))
                .unwrap_or(rest.len() - 1);
            if name_len == 0 {
                if self.i == start + prefix.len() {
                    // A lone `.` is the whole context.
                    self.i += 1;
                    break;
                }
                return Err(self.err(self.i, format!("a field name must follow {shown}.")));
            }
            let seg_at = self.i;
            let name = &rest[1..=name_len];
            self.i += 1 + name_len;
            path = match &path {
                Path::Labels => Path::Label {
                    key: name.to_string(),
                    at: self.position(seg_at),
                },
                Path::Label { key, .. } => {
                    let mut full = key.clone();
                    full.push('.');
                    full.push_str(name);
                    let tail: String = self
                        .rest()
                        .chars()
                        .take_while(|c| is_ident(*c) || *c == '.' || *c == '-')
                        .collect();
                    full.push_str(&tail);
                    return Err(self.err(
                        seg_at,
                        format!(
                            "a label's value has no field .{name}; for a label named \"{full}\" \
                             write {{{{index .Service.Labels \"{full}\"}}}}"
                        ),
                    ));
                }
                parent => match parent.child(name) {
                    Some(p) => p,
                    None => return Err(self.err(seg_at, unknown_field(parent, &shown, name))),
                },
            };
            shown.push('.');
            shown.push_str(name);
        }
        Ok(Expr::Path(path))
    }
}

fn unknown_field(parent: &Path, shown: &str, name: &str) -> String {
    let fields = parent.fields();
    if fields.is_empty() {
        return format!("unknown field {shown}.{name}: {shown} is text and has no fields");
    }
    let close = fields
        .iter()
        .find(|f| f.eq_ignore_ascii_case(name))
        .or_else(|| fields.iter().find(|f| edit_distance(f, name) <= 2));
    if let Some(f) = close {
        return format!("unknown field {shown}.{name} (did you mean {shown}.{f}?)");
    }
    let list: Vec<String> = fields.iter().map(|f| format!("{shown}.{f}")).collect();
    format!(
        "unknown field {shown}.{name} (the fields here are {})",
        list.join(", ")
    )
}

/// Levenshtein distance over characters; the names compared are a few letters long.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
