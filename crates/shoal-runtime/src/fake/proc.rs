//! The fake's processes: a task whose command is `sh -c SCRIPT` runs SCRIPT here, in the
//! [`super::shell`] subset, against the node's in-memory files, volumes and logs, on tokio time
//! (which the simulation pauses). It behaves like `sh` as PID 1 of a container: a signal without
//! a trap is ignored (only SIGKILL, which [`super::Node::kill`] applies at once, ends it), a
//! trap runs between commands (after the running `sleep` ends, as `sh` defers it), and memory
//! grows with its variables until the task's limit, where it is OOM-killed. A background job
//! (`CMD &`) is another process of the task: past the task's PIDs limit the fork fails and the
//! shell exits as busybox `sh` does (status 2). Health checks run here too, in the task's files.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use shoal_types::Id;
use shoal_types::container::HealthConfig;

use super::shell::{self, Command, Join, List, Part, Redirect, Simple, Word};
use super::stdio::{Input, on_terminal};
use super::{Node, Task};
use crate::{Health, LogLine, LogStreamKind, RuntimeTaskState, parse_stop_signal};

/// The memory a task without a limit may use before the node runs out.
const NODE_MEMORY: u64 = 256 << 20;
/// Docker's health-check defaults.
const HEALTH_INTERVAL: Duration = Duration::from_secs(30);
const HEALTH_RETRIES: u64 = 3;

enum Trap {
    Ignore,
    Run(List),
}

enum Flow {
    Next,
    Exit(i64),
    /// The task was killed (or removed) meanwhile: stop without a word.
    Gone,
}

/// Where a process's stdout and stderr go.
enum Sink {
    Log,
    /// A health check's output, both streams, as Docker keeps it.
    Capture(Vec<u8>),
    /// An exec's output, as it is written; with a TTY both streams are the terminal's, which
    /// turns `\n` into `\r\n`.
    Exec {
        tx: tokio::sync::mpsc::UnboundedSender<(LogStreamKind, Bytes)>,
        tty: bool,
    },
}

struct Proc {
    node: Weak<Node>,
    task: Id,
    vars: BTreeMap<String, String>,
    traps: BTreeMap<i32, Trap>,
    status: i64,
    sink: Sink,
    memory_limit: u64,
    /// The task's main process handles its signals; a health check does not.
    main: bool,
    /// What `cat` without arguments and `read` read.
    stdin: Input,
    /// Its stdin and stdout are a terminal (`[ -t 0 ]`, `stty`; `\n` written as `\r\n`).
    tty: bool,
    /// The run of the task this process belongs to (see `Task::run_gen`).
    run_gen: u64,
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Starts the task's script; the task must be `Running` already.
pub(super) fn spawn_main(
    node: &Arc<Node>,
    task: &Id,
    script: &str,
    env: &[String],
    limit: u64,
    tty: bool,
    stdin: Input,
) {
    let mut p = Proc::new(node, task, env, limit, true, Sink::Log);
    p.tty = tty;
    p.stdin = stdin;
    let script = script.to_string();
    tokio::spawn(async move {
        let code = match shell::parse(&script) {
            Ok(list) => match p.list(&list).await {
                Flow::Next => p.status,
                Flow::Exit(c) => c,
                Flow::Gone => return,
            },
            Err(e) => {
                p.write(LogStreamKind::Stderr, format!("sh: {e}\n").as_bytes());
                2
            }
        };
        if let Some(node) = p.node.upgrade() {
            node.exited_run(&p.task, Some(p.run_gen), code, None, false);
        }
    });
}

/// Runs the task's health check every interval while the task runs.
pub(super) fn spawn_health(node: &Arc<Node>, task: &Id, check: &HealthConfig, env: &[String]) {
    let Some(argv) = check.argv() else {
        return;
    };
    let interval = check.interval.unwrap_or(HEALTH_INTERVAL);
    let retries = check.retries.unwrap_or(HEALTH_RETRIES).max(1);
    let (weak, task, env) = (Arc::downgrade(node), task.clone(), env.to_vec());
    let run_gen = node.run_gen(&task);
    tokio::spawn(async move {
        let mut failures = 0;
        loop {
            tokio::time::sleep(interval).await;
            let Some(node) = weak.upgrade() else {
                return;
            };
            if !node.is_current(&task, run_gen) {
                return;
            }
            let mut p = Proc::new(
                &node,
                &task,
                &env,
                NODE_MEMORY,
                false,
                Sink::Capture(vec![]),
            );
            drop(node);
            let ok = match run_argv(&mut p, &argv).await {
                Flow::Next => p.status == 0,
                Flow::Exit(c) => c == 0,
                Flow::Gone => return,
            };
            let Some(node) = weak.upgrade() else {
                return;
            };
            let health = if ok {
                failures = 0;
                Some(Health::Healthy)
            } else {
                failures += 1;
                let out = match &p.sink {
                    Sink::Capture(b) => String::from_utf8_lossy(b).trim().to_string(),
                    Sink::Log | Sink::Exec { .. } => String::new(),
                };
                (failures >= retries).then_some(Health::Unhealthy(out))
            };
            if let Some(h) = health {
                node.set_health(&task, h);
            }
        }
    });
}

/// Runs an exec's `argv` in the running task, its output to `tx`; resolves with the exit code
/// (137 when the task dies under it). `stdin`, when given, is read to its end first.
pub(super) async fn run_exec(
    node: &Arc<Node>,
    task: &Id,
    argv: Vec<String>,
    env: Vec<String>,
    tty: bool,
    stdin: Option<tokio::io::DuplexStream>,
    tx: tokio::sync::mpsc::UnboundedSender<(LogStreamKind, Bytes)>,
) -> i64 {
    let mut p = Proc::new(node, task, &env, NODE_MEMORY, false, Sink::Exec { tx, tty });
    p.tty = tty;
    if let Some(mut r) = stdin {
        let mut buf = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut r, &mut buf).await;
        p.stdin = Input::Known(Bytes::from(buf));
    }
    match run_argv(&mut p, &argv).await {
        Flow::Next => p.status,
        Flow::Exit(c) => c,
        Flow::Gone => 137,
    }
}

/// A check's argv: `sh -c SCRIPT` in the shell, anything else as one simple command.
async fn run_argv(p: &mut Proc, argv: &[String]) -> Flow {
    match argv {
        [sh, c, script, ..] if is_sh(sh) && c == "-c" => match shell::parse(script) {
            Ok(list) => p.list(&list).await,
            Err(e) => {
                p.write(LogStreamKind::Stderr, format!("sh: {e}\n").as_bytes());
                Flow::Exit(2)
            }
        },
        _ => {
            let s = Simple {
                assigns: Vec::new(),
                words: argv.iter().map(|a| vec![Part::Lit(a.clone())]).collect(),
                redirect: None,
            };
            p.simple(&s).await
        }
    }
}

pub(super) fn is_sh(argv0: &str) -> bool {
    argv0 == "sh" || argv0 == "/bin/sh"
}

impl Proc {
    fn new(
        node: &Arc<Node>,
        task: &Id,
        env: &[String],
        limit: u64,
        main: bool,
        sink: Sink,
    ) -> Proc {
        let vars = env
            .iter()
            .filter_map(|e| e.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Proc {
            node: Arc::downgrade(node),
            task: task.clone(),
            vars,
            traps: BTreeMap::new(),
            status: 0,
            sink,
            memory_limit: if limit > 0 { limit } else { NODE_MEMORY },
            main,
            stdin: Input::Empty,
            tty: false,
            run_gen: node.run_gen(task),
        }
    }

    fn list<'a>(&'a mut self, list: &'a List) -> BoxFut<'a, Flow> {
        Box::pin(async move {
            for (join, cmd) in list {
                let skip = match join {
                    Join::Always => false,
                    Join::And => self.status != 0,
                    Join::Or => self.status == 0,
                };
                if skip {
                    continue;
                }
                match self.command(cmd).await {
                    Flow::Next => {}
                    other => return other,
                }
            }
            Flow::Next
        })
    }

    async fn command(&mut self, cmd: &Command) -> Flow {
        match cmd {
            Command::Simple(s) => self.simple(s).await,
            Command::Background(job) => self.background(job).await,
            Command::While { cond, body } => loop {
                match self.list(cond).await {
                    Flow::Next => {}
                    other => return other,
                }
                if self.status != 0 {
                    self.status = 0;
                    return Flow::Next;
                }
                match self.list(body).await {
                    Flow::Next => {}
                    other => return other,
                }
            },
        }
    }

    /// `job &`: forks a process of the task for it, unless the task is at its PIDs limit, where
    /// `sh` cannot fork and (not being interactive) exits 2.
    fn background<'a>(&'a mut self, job: &'a Command) -> BoxFut<'a, Flow> {
        // Boxed (as `Send`) because the job it spawns may itself run `background`.
        Box::pin(async move {
            if let Some(flow) = self.checkpoint().await {
                return flow;
            }
            let Some(node) = self.node.upgrade() else {
                return Flow::Gone;
            };
            if !node.fork(&self.task, self.run_gen) {
                self.write(
                    LogStreamKind::Stderr,
                    b"sh: can't fork: Resource temporarily unavailable\n",
                );
                return Flow::Exit(2);
            }
            // The child: the shell's variables, no traps of its own, not PID 1; its output goes
            // where the parent's does (a health check's is not kept).
            let mut child = Proc {
                node: self.node.clone(),
                task: self.task.clone(),
                vars: self.vars.clone(),
                traps: BTreeMap::new(),
                status: 0,
                sink: match &self.sink {
                    Sink::Log => Sink::Log,
                    Sink::Capture(_) => Sink::Capture(Vec::new()),
                    Sink::Exec { tx, tty } => Sink::Exec {
                        tx: tx.clone(),
                        tty: *tty,
                    },
                },
                memory_limit: self.memory_limit,
                main: false,
                stdin: Input::Empty,
                tty: self.tty,
                run_gen: self.run_gen,
            };
            let job = job.clone();
            tokio::spawn(async move {
                child.command(&job).await;
                if let Some(node) = child.node.upgrade() {
                    node.reaped(&child.task, child.run_gen);
                }
            });
            self.status = 0;
            Flow::Next
        })
    }

    /// Between commands: whether the task still lives, and its pending signals' traps.
    async fn checkpoint(&mut self) -> Option<Flow> {
        // A loop that never sleeps must still let the rest of the node run.
        tokio::task::yield_now().await;
        let node = self.node.upgrade()?;
        if !node.is_current(&self.task, self.run_gen) {
            return Some(Flow::Gone);
        }
        if !self.main {
            return None;
        }
        for sig in node.take_signals(&self.task) {
            if let Some(Trap::Run(handler)) = self.traps.get(&sig) {
                let handler = handler.clone();
                match self.list(&handler).await {
                    Flow::Next => {}
                    other => return Some(other),
                }
            }
            // No trap, or an ignoring one: PID 1 ignores it.
        }
        None
    }

    fn expand(&self, w: &Word) -> String {
        let mut out = String::new();
        for p in w {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(v) if v == "$" => out.push('1'),
                Part::Var(v) if v == "?" => out.push_str(&self.status.to_string()),
                Part::Var(v) => out.push_str(self.vars.get(v).map_or("", String::as_str)),
            }
        }
        out
    }

    /// How long `w` would be expanded, without building it.
    fn expanded_len(&self, w: &Word) -> u64 {
        w.iter()
            .map(|p| match p {
                Part::Lit(s) => s.len(),
                Part::Var(v) => self.vars.get(v).map_or(1, String::len),
            } as u64)
            .sum()
    }

    fn write(&mut self, stream: LogStreamKind, bytes: &[u8]) {
        match &mut self.sink {
            Sink::Capture(buf) => buf.extend_from_slice(bytes),
            Sink::Exec { tx, tty } => {
                let (kind, data) = if *tty {
                    (LogStreamKind::Stdout, on_terminal(bytes))
                } else {
                    (stream, Bytes::copy_from_slice(bytes))
                };
                let _ = tx.send((kind, data));
            }
            Sink::Log => {
                if let Some(node) = self.node.upgrade() {
                    if self.tty {
                        node.log(&self.task, LogStreamKind::Stdout, &on_terminal(bytes));
                    } else {
                        node.log(&self.task, stream, bytes);
                    }
                }
            }
        }
    }

    fn simple<'a>(&'a mut self, s: &'a Simple) -> BoxFut<'a, Flow> {
        Box::pin(async move {
            if let Some(flow) = self.checkpoint().await {
                return flow;
            }
            for (name, value) in &s.assigns {
                let used: u64 = self.vars.values().map(|v| v.len() as u64).sum();
                let old = self.vars.get(name).map_or(0, |v| v.len() as u64);
                if used - old + self.expanded_len(value) > self.memory_limit {
                    if let Some(node) = self.node.upgrade() {
                        node.exited_run(&self.task, Some(self.run_gen), 137, Some(9), true);
                    }
                    return Flow::Gone;
                }
                let v = self.expand(value);
                self.vars.insert(name.clone(), v);
            }
            self.status = 0;
            let words: Vec<String> = s.words.iter().map(|w| self.expand(w)).collect();
            let Some((name, args)) = words.split_first() else {
                return Flow::Next;
            };
            let mut out = Vec::new();
            let mut err = Vec::new();
            let flow = self.builtin(name, args, &mut out, &mut err).await;
            if !out.is_empty() {
                match &s.redirect {
                    None => self.write(LogStreamKind::Stdout, &out),
                    Some(Redirect::ToStderr) => self.write(LogStreamKind::Stderr, &out),
                    Some(Redirect::File { path, append }) => {
                        let path = self.expand(path);
                        if let Err(e) = self.write_file(&path, &out, *append) {
                            self.write(LogStreamKind::Stderr, format!("sh: {e}\n").as_bytes());
                            self.status = 1;
                        }
                    }
                }
            } else if let Some(Redirect::File { path, append }) = &s.redirect {
                let path = self.expand(path);
                if let Err(e) = self.write_file(&path, b"", *append) {
                    err.extend_from_slice(format!("sh: {e}\n").as_bytes());
                    self.status = 1;
                }
            }
            if !err.is_empty() {
                self.write(LogStreamKind::Stderr, &err);
            }
            flow
        })
    }

    fn write_file(&self, path: &str, data: &[u8], append: bool) -> Result<(), String> {
        let node = self.node.upgrade().ok_or("the node is gone")?;
        node.write_file(&self.task, path, data, append)
    }

    fn read_file(&self, path: &str) -> Option<Bytes> {
        self.node.upgrade()?.read_file(&self.task, path)
    }

    async fn builtin(
        &mut self,
        name: &str,
        args: &[String],
        out: &mut Vec<u8>,
        err: &mut Vec<u8>,
    ) -> Flow {
        let mut fail = |msg: String, code: i64| {
            err.extend_from_slice(msg.as_bytes());
            code
        };
        self.status = match name {
            ":" | "true" => 0,
            "false" => 1,
            "echo" => {
                out.extend_from_slice(args.join(" ").as_bytes());
                out.push(b'\n');
                0
            }
            "cat" => {
                let mut code = 0;
                if args.is_empty() {
                    out.extend_from_slice(&self.stdin.read_all().await);
                }
                for a in args {
                    match self.read_file(a) {
                        Some(b) => out.extend_from_slice(&b),
                        None => {
                            code = fail(
                                format!("cat: can't open '{a}': No such file or directory\n"),
                                1,
                            )
                        }
                    }
                }
                code
            }
            "sleep" => match args.first().and_then(|a| a.parse::<f64>().ok()) {
                Some(s) if s >= 0.0 && s.is_finite() => {
                    tokio::time::sleep(Duration::from_secs_f64(s)).await;
                    0
                }
                _ => fail("sleep: invalid number\n".into(), 1),
            },
            "exit" => {
                let code = args.first().and_then(|a| a.parse::<i64>().ok());
                return Flow::Exit(code.unwrap_or(self.status) & 0xff);
            }
            "touch" => {
                let mut code = 0;
                for a in args {
                    if self.read_file(a).is_none()
                        && let Err(e) = self.write_file(a, b"", true)
                    {
                        code = fail(format!("touch: {a}: {e}\n"), 1);
                    }
                }
                code
            }
            "rm" => {
                let force = args.first().is_some_and(|a| a == "-f");
                let mut code = 0;
                for a in args.iter().filter(|a| !a.starts_with('-')) {
                    let removed = self
                        .node
                        .upgrade()
                        .is_some_and(|n| n.remove_file(&self.task, a));
                    if !removed && !force {
                        code = fail(
                            format!("rm: can't remove '{a}': No such file or directory\n"),
                            1,
                        );
                    }
                }
                code
            }
            "read" => match self.stdin.read_line().await {
                Some(line) => {
                    if let Some(var) = args.first() {
                        let line = String::from_utf8_lossy(&line).into_owned();
                        self.vars.insert(var.clone(), line);
                    }
                    0
                }
                None => 1,
            },
            "stty" => match (self.tty, args) {
                (false, _) => fail("stty: standard input: Not a tty\n".into(), 1),
                (true, [size]) if size == "size" => {
                    let (rows, cols) = self
                        .node
                        .upgrade()
                        .map_or((0, 0), |n| n.tty_size(&self.task));
                    out.extend_from_slice(format!("{rows} {cols}\n").as_bytes());
                    0
                }
                (true, _) => fail("stty: only stty size is supported\n".into(), 1),
            },
            "ln" => match args {
                [s, target, link] if s == "-s" => {
                    match self.node.upgrade() {
                        Some(node) => node.symlink(&self.task, target, link),
                        None => return Flow::Gone,
                    }
                    0
                }
                _ => fail("ln: only ln -s TARGET LINK is supported\n".into(), 1),
            },
            "test" | "[" => {
                let args = match (name, args.split_last()) {
                    ("[", Some((last, rest))) if last == "]" => rest,
                    ("[", _) => return self.done(fail("[: missing ]\n".into(), 2)),
                    _ => args,
                };
                match args {
                    [op, path] if op == "-f" || op == "-e" => {
                        i64::from(self.read_file(path).is_none())
                    }
                    [op, fd] if op == "-t" => {
                        i64::from(!(self.tty && ["0", "1", "2"].contains(&fd.as_str())))
                    }
                    _ => fail(format!("{name}: unsupported test\n"), 2),
                }
            }
            "trap" => {
                let Some((action, sigs)) = args.split_first() else {
                    return Flow::Next;
                };
                for sig in sigs {
                    let Ok(n) = parse_stop_signal(sig) else {
                        self.status = fail(format!("trap: {sig}: invalid signal\n"), 1);
                        return Flow::Next;
                    };
                    match action.as_str() {
                        "-" => {
                            self.traps.remove(&n);
                        }
                        "" => {
                            self.traps.insert(n, Trap::Ignore);
                        }
                        body => match shell::parse(body) {
                            Ok(l) => {
                                self.traps.insert(n, Trap::Run(l));
                            }
                            Err(e) => {
                                self.status = fail(format!("trap: {e}\n"), 2);
                                return Flow::Next;
                            }
                        },
                    }
                }
                0
            }
            "exec" => {
                // The shell becomes the program: its traps are gone.
                self.traps.clear();
                let Some((prog, rest)) = args.split_first() else {
                    return Flow::Next;
                };
                return match Box::pin(self.builtin(prog, rest, out, err)).await {
                    Flow::Next => Flow::Exit(self.status),
                    other => other,
                };
            }
            other => fail(format!("sh: {other}: not found\n"), 127),
        };
        Flow::Next
    }

    fn done(&mut self, code: i64) -> Flow {
        self.status = code;
        Flow::Next
    }
}

impl Node {
    /// The task's current run (0 before its first start, or for a task that is gone).
    fn run_gen(&self, task: &Id) -> u64 {
        self.lock().tasks.get(task).map_or(0, |t| t.run_gen)
    }

    /// Whether the task runs, in its run `run_gen`.
    fn is_current(&self, task: &Id, run_gen: u64) -> bool {
        self.lock().tasks.get(task).is_some_and(|t| {
            matches!(t.state, RuntimeTaskState::Running { .. }) && t.run_gen == run_gen
        })
    }

    /// A new process of the running task, when its PIDs limit (0: none) leaves room for one.
    fn fork(&self, task: &Id, run_gen: u64) -> bool {
        let mut g = self.lock();
        let Some(t) = g.tasks.get_mut(task) else {
            return false;
        };
        let limit = t.run.as_ref().map_or(0, |r| r.resources.limits.pids);
        if !matches!(t.state, RuntimeTaskState::Running { .. })
            || t.run_gen != run_gen
            || (limit > 0 && t.procs >= limit)
        {
            return false;
        }
        t.procs += 1;
        true
    }

    /// A background process of the task's run `run_gen` ended.
    fn reaped(&self, task: &Id, run_gen: u64) {
        if let Some(t) = self.lock().tasks.get_mut(task)
            && t.run_gen == run_gen
        {
            t.procs = (t.procs - 1).max(0);
        }
    }

    /// `ln -s target link` in the task's own files.
    fn symlink(&self, task: &Id, target: &str, link: &str) {
        let now = self.now();
        if let Some(t) = self.lock().tasks.get_mut(task) {
            let mut m = super::archive::Meta::file(0o777, now);
            m.kind = super::archive::Kind::Symlink(target.to_string());
            t.meta.insert(link.to_string(), m);
        }
        self.bump();
    }

    fn take_signals(&self, task: &Id) -> Vec<i32> {
        self.lock()
            .tasks
            .get_mut(task)
            .map(|t| std::mem::take(&mut t.signals))
            .unwrap_or_default()
    }

    /// The task's own output: into its log, and to whoever is attached to it.
    pub(super) fn log(&self, task: &Id, stream: LogStreamKind, bytes: &[u8]) {
        let time = self.now();
        let mut g = self.lock();
        if let Some(t) = g.tasks.get_mut(task) {
            t.attachers
                .retain(|a| a.send((stream, Bytes::copy_from_slice(bytes))).is_ok());
            for line in bytes.split_inclusive(|b| *b == b'\n') {
                t.logs.push(LogLine {
                    time,
                    stream,
                    line: Bytes::copy_from_slice(line),
                });
            }
        }
        drop(g);
        self.bump();
    }

    pub(super) fn set_health(&self, task: &Id, h: Health) {
        self.lock().health.insert(task.clone(), h);
        self.bump();
    }
}

/// Where a path of a task's filesystem lives.
pub(super) enum Place {
    Task(String),
    Volume(String, String),
    Host(String),
}

impl Task {
    /// The mount holding `path` (the longest target that contains it) and whether it is
    /// writable.
    pub(super) fn place(&self, path: &str) -> (Place, bool) {
        let Some(run) = &self.run else {
            return (Place::Task(path.to_string()), true);
        };
        // A secret or config file: bound read-only over whatever is below.
        if run.files.iter().any(|f| f.path == path) {
            return (Place::Task(path.to_string()), false);
        }
        let best = run
            .container
            .mounts
            .iter()
            .filter_map(|m| {
                let t = m.target.trim_end_matches('/');
                let rest = path.strip_prefix(t)?;
                (rest.is_empty() || rest.starts_with('/')).then_some((m, t.len(), rest))
            })
            .max_by_key(|(_, len, _)| *len);
        use shoal_types::container::MountKind;
        match best {
            Some((m, _, rest)) => {
                let place = match m.kind {
                    MountKind::Volume if !m.source.is_empty() => {
                        Place::Volume(m.source.clone(), rest.to_string())
                    }
                    MountKind::Bind => {
                        Place::Host(format!("{}{rest}", m.source.trim_end_matches('/')))
                    }
                    _ => Place::Task(path.to_string()),
                };
                (place, !m.read_only)
            }
            None => (Place::Task(path.to_string()), !run.container.read_only),
        }
    }
}
