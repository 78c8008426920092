//! Swarm's service templates: the subset of Go's `text/template` that users write in a service's
//! hostname, environment values and mount sources and targets, such as
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

mod parse;

use parse::Parser;

/// Swarm's name for a template that is not tied to a field.
const DEFAULT_NAME: &str = "expansion";

/// The functions shoal's templates offer: Go's `index` and Swarm's `join`. Go's other builtins
/// are refused by name.
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
#[error("template: {name}:{position}: {message}")]
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
/// before creating a container: `Hostname`, each `Env` value, and each mount's `Source` and
/// `Target`. Errors are named after the field (`Env[2]`, `Mounts[0].Source`).
pub fn expand_container(
    spec: &ContainerSpec,
    ctx: &Context,
) -> Result<ContainerSpec, TemplateError> {
    let mut out = spec.clone();
    out.hostname = parse_named("Hostname", &spec.hostname)?.expand(ctx)?;
    for (i, e) in out.env.iter_mut().enumerate() {
        *e = parse_env(&format!("Env[{i}]"), e)?.expand(ctx)?;
    }
    for (i, m) in out.mounts.iter_mut().enumerate() {
        m.source = parse_named(&format!("Mounts[{i}].Source"), &m.source)?.expand(ctx)?;
        m.target = parse_named(&format!("Mounts[{i}].Target"), &m.target)?.expand(ctx)?;
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

    /// Whether the template has no actions (comments are dropped when parsed), so it expands to
    /// the same text in every context: its text without comments and the spaces they trim.
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

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
