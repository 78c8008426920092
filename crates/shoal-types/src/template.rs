//! Swarm's service templates: the subset of Go's `text/template` that users write in a service's
//! hostname, environment values and (once shoal has them) mount sources and targets, such as
//! `{{.Service.Name}}-{{.Task.Slot}}`.
//!
//! Templates stay unexpanded in the stored spec, so comparing a task's spec with its service's
//! still tells whether the task is up to date; the node expands them when it builds the runtime
//! spec, from a [`Context`] describing the task, its service and the node. The manager parses
//! them when a spec is created or updated, so a typo is refused with its position instead of
//! failing on every node.
//!
//! Unlike Go, which finds a misspelt field only when the template runs, field paths are checked
//! here at parse time against Swarm's fixed context; the one thing left to expansion is whether
//! a label named with `.Service.Labels.KEY` exists (Swarm runs with `missingkey=error`, so a
//! missing one is an error there too). Positions are 1-based lines and columns, counted in
//! characters so that text before the error in any script counts as the user sees it.
//!
//! Pure: no IO, no clock.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use crate::node::NodeDescription;
use crate::service::ContainerSpec;
use crate::{Id, Task};

/// Swarm's name for a template that is not tied to a field.
const DEFAULT_NAME: &str = "expansion";

/// The only functions Swarm's templates offer besides Go's builtins; of those, shoal takes `index`.
const FUNCTIONS: &str = "index and join";

/// A 1-based line and column (in characters) in a template's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// What is wrong with a template and where, printed as Go prints template errors:
/// `template: Env[2]:1:14: unknown field .Node.Hostnme (did you mean .Node.Hostname?)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template: {name}:{}:{}: {message}", .position.line, .position.column)]
pub struct TemplateError {
    /// The field the template came from (`Hostname`, `Env[2]`), as the Docker API names it.
    pub name: String,
    pub position: Position,
    pub message: String,
}

/// Everything a template can refer to, as strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub service_id: String,
    pub service_name: String,
    pub service_labels: BTreeMap<String, String>,
    pub node_id: String,
    pub node_hostname: String,
    pub node_os: String,
    pub node_arch: String,
    pub task_id: String,
    pub task_name: String,
    /// The replica slot; for global services, which have none, the node's ID, as Swarm does.
    pub task_slot: String,
}

impl Context {
    /// The context of `task` on the node `node_id` described by `node`.
    pub fn for_task(task: &Task, node_id: &Id, node: &NodeDescription) -> Context {
        let node_id = task.node_id.as_ref().unwrap_or(node_id).to_string();
        Context {
            service_id: task.service_id.to_string(),
            service_name: task.service_name.clone(),
            service_labels: task.service_labels.clone(),
            task_slot: if task.slot > 0 {
                task.slot.to_string()
            } else {
                node_id.clone()
            },
            node_id,
            node_hostname: node.hostname.clone(),
            node_os: node.platform.os.clone(),
            node_arch: node.platform.arch.clone(),
            task_id: task.id.to_string(),
            task_name: task.name(),
        }
    }
}

/// A parsed template, ready to expand any number of times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    name: String,
    nodes: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Action(Expr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expr {
    Path(Path),
    Str(String),
    /// `index .Service.Labels KEY`: an absent label is empty, as Go's `index` makes it.
    Label(Box<Expr>),
    /// Swarm's `join SEP ARGS...`.
    Join(Vec<Expr>),
}

/// A field path, resolved against Swarm's context when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Path {
    Root,
    Service,
    ServiceId,
    ServiceName,
    Labels,
    Label { key: String, at: Position },
    Node,
    NodeId,
    NodeHostname,
    Platform,
    Os,
    Arch,
    Task,
    TaskId,
    TaskName,
    TaskSlot,
}

impl Path {
    fn child(&self, name: &str) -> Option<Path> {
        use Path::*;
        Some(match (self, name) {
            (Root, "Service") => Service,
            (Root, "Node") => Node,
            (Root, "Task") => Task,
            (Service, "ID") => ServiceId,
            (Service, "Name") => ServiceName,
            (Service, "Labels") => Labels,
            (Node, "ID") => NodeId,
            (Node, "Hostname") => NodeHostname,
            (Node, "Platform") => Platform,
            (Platform, "Architecture") => Arch,
            (Platform, "OS") => Os,
            (Task, "ID") => TaskId,
            (Task, "Name") => TaskName,
            (Task, "Slot") => TaskSlot,
            _ => return None,
        })
    }

    fn fields(&self) -> &'static [&'static str] {
        match self {
            Path::Root => &["Service", "Node", "Task"],
            Path::Service => &["ID", "Name", "Labels"],
            Path::Node => &["ID", "Hostname", "Platform"],
            Path::Platform => &["Architecture", "OS"],
            Path::Task => &["ID", "Name", "Slot"],
            _ => &[],
        }
    }

    /// Whether the value is text (usable as an argument), not a struct or a map.
    fn is_text(&self) -> bool {
        self.fields().is_empty() && *self != Path::Labels
    }
}

/// Parses `text` as a template not tied to a field (errors name it `expansion`, as Swarm's do).
pub fn parse(text: &str) -> Result<Template, TemplateError> {
    parse_named(DEFAULT_NAME, text)
}

/// Parses `text`, the value of the field `name` (which errors repeat).
pub fn parse_named(name: &str, text: &str) -> Result<Template, TemplateError> {
    Parser::new(name, text, 0).template()
}

/// One `KEY=VALUE` environment entry. Swarm templates the value only; an entry without `=` is
/// passed on as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvTemplate {
    key: String,
    value: Option<Template>,
}

/// Parses an environment entry; error columns count from the start of the entry, key included.
pub fn parse_env(name: &str, entry: &str) -> Result<EnvTemplate, TemplateError> {
    match entry.split_once('=') {
        None => Ok(EnvTemplate {
            key: entry.to_string(),
            value: None,
        }),
        Some((key, value)) => Ok(EnvTemplate {
            key: key.to_string(),
            value: Some(Parser::new(name, value, key.chars().count() + 1).template()?),
        }),
    }
}

impl EnvTemplate {
    pub fn expand(&self, ctx: &Context) -> Result<String, TemplateError> {
        match &self.value {
            None => Ok(self.key.clone()),
            Some(v) => Ok(format!("{}={}", self.key, v.expand(ctx)?)),
        }
    }
}

/// The runtime copy of `spec` with every templated field expanded, as Swarm's agent makes it
/// before creating a container: `Hostname` and each `Env` value. Mount sources and targets join
/// here when shoal has mounts. Errors are named after the field (`Env[2]`).
pub fn expand_container(
    spec: &ContainerSpec,
    ctx: &Context,
) -> Result<ContainerSpec, TemplateError> {
    let mut out = spec.clone();
    out.hostname = parse_named("Hostname", &spec.hostname)?.expand(ctx)?;
    for (i, e) in out.env.iter_mut().enumerate() {
        *e = parse_env(&format!("Env[{i}]"), e)?.expand(ctx)?;
    }
    Ok(out)
}

impl Template {
    /// The template's text with every action replaced by its value. Fails only for a label
    /// named with `.Service.Labels.KEY` that the service does not have.
    pub fn expand(&self, ctx: &Context) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.nodes {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Action(e) => {
                    e.eval(ctx, &mut out)
                        .map_err(|(position, message)| TemplateError {
                            name: self.name.clone(),
                            position,
                            message,
                        })?
                }
            }
        }
        Ok(out)
    }

    /// Whether the template has no actions, so expanding it gives back its text.
    pub fn is_plain(&self) -> bool {
        self.nodes.iter().all(|p| matches!(p, Part::Text(_)))
    }
}

type EvalError = (Position, String);

impl Expr {
    fn eval(&self, ctx: &Context, out: &mut String) -> Result<(), EvalError> {
        match self {
            Expr::Path(p) => p.eval(ctx, out),
            Expr::Str(s) => {
                out.push_str(s);
                Ok(())
            }
            Expr::Label(key) => {
                let mut k = String::new();
                key.eval(ctx, &mut k)?;
                if let Some(v) = ctx.service_labels.get(&k) {
                    out.push_str(v);
                }
                Ok(())
            }
            Expr::Join(args) => {
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    let mut s = String::new();
                    a.eval(ctx, &mut s)?;
                    vals.push(s);
                }
                if let Some((sep, rest)) = vals.split_first() {
                    out.push_str(&rest.join(sep));
                }
                Ok(())
            }
        }
    }
}

impl Path {
    /// Writes the value as Go's `fmt` prints it (`{a b}` for structs, `map[k:v]` for maps), so
    /// `{{.Node.Platform}}` reads as it does on Swarm.
    fn eval(&self, c: &Context, out: &mut String) -> Result<(), EvalError> {
        let labels = |out: &mut String| {
            out.push_str("map[");
            for (i, (k, v)) in c.service_labels.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "{k}:{v}");
            }
            out.push(']');
        };
        let platform = |out: &mut String| {
            let _ = write!(out, "{{{} {}}}", c.node_arch, c.node_os);
        };
        match self {
            Path::Root => {
                out.push('{');
                Path::Service.eval(c, out)?;
                out.push(' ');
                Path::Node.eval(c, out)?;
                out.push(' ');
                Path::Task.eval(c, out)?;
                out.push('}');
            }
            Path::Service => {
                let _ = write!(out, "{{{} {} ", c.service_id, c.service_name);
                labels(out);
                out.push('}');
            }
            Path::Labels => labels(out),
            Path::Label { key, at } => match c.service_labels.get(key) {
                Some(v) => out.push_str(v),
                None => {
                    return Err((
                        *at,
                        format!(
                            "the service has no label {key:?} (for a label that may be absent \
                             write {{{{index .Service.Labels {key:?}}}}})"
                        ),
                    ));
                }
            },
            Path::Node => {
                let _ = write!(out, "{{{} {} ", c.node_id, c.node_hostname);
                platform(out);
                out.push('}');
            }
            Path::Platform => platform(out),
            Path::Task => {
                let _ = write!(out, "{{{} {} {}}}", c.task_id, c.task_name, c.task_slot);
            }
            Path::ServiceId => out.push_str(&c.service_id),
            Path::ServiceName => out.push_str(&c.service_name),
            Path::NodeId => out.push_str(&c.node_id),
            Path::NodeHostname => out.push_str(&c.node_hostname),
            Path::Os => out.push_str(&c.node_os),
            Path::Arch => out.push_str(&c.node_arch),
            Path::TaskId => out.push_str(&c.task_id),
            Path::TaskName => out.push_str(&c.task_name),
            Path::TaskSlot => out.push_str(&c.task_slot),
        }
        Ok(())
    }
}

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
struct Parser<'a> {
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
    fn new(name: &'a str, src: &'a str, col_offset: usize) -> Self {
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

    fn template(mut self) -> Result<Template, TemplateError> {
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
fn edit_distance(a: &str, b: &str) -> usize {
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

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
