//! Converge progress as docker draws it: the per-mode updaters (replicated, global, replicated
//! job, global job) that turn a service and its up-to-date tasks into progress lines, and the
//! renderer that redraws those lines in place on a terminal (docker's jsonmessage cursor moves) or
//! prints each changed line once elsewhere. Pure: no IO but the writer it is given, no clock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

use bollard_stubs::models::{Service, Task, TaskState};

use crate::error::{CliError, Result};
use crate::format::truncate_id;

/// docker's task state order; 0 for states progress ignores.
pub fn state_number(s: Option<TaskState>) -> i64 {
    match s {
        Some(TaskState::NEW) => 1,
        Some(TaskState::ALLOCATED) => 2,
        Some(TaskState::PENDING) => 3,
        Some(TaskState::ASSIGNED) => 4,
        Some(TaskState::ACCEPTED) => 5,
        Some(TaskState::PREPARING) => 6,
        Some(TaskState::READY) => 7,
        Some(TaskState::STARTING) => 8,
        Some(TaskState::RUNNING) => 9,
        Some(TaskState::COMPLETE) => 10,
        Some(TaskState::SHUTDOWN) => 11,
        Some(TaskState::FAILED) => 12,
        Some(TaskState::REJECTED) => 13,
        _ => 0,
    }
}

fn terminal(s: Option<TaskState>) -> bool {
    state_number(s) > state_number(Some(TaskState::RUNNING))
}

/// Width of the longest state progress shows ("allocated", "preparing").
const LONGEST_STATE: usize = 9;
const MAX_PROGRESS: i64 = 9;
const MAX_JOB_PROGRESS: i64 = 10;
const MAX_PROGRESS_BARS: i64 = 20;

/// Where progress goes.
pub trait Sink {
    /// A progress line: `id: action`, with a bar of `current/total` on wide terminals.
    fn line(&mut self, id: &str, action: &str, bar: Option<(i64, i64)>);
    /// A plain message (ends the block of redrawn lines).
    fn message(&mut self, id: Option<&str>, text: &str);
    /// A counted line (`3/5 nodes`), drawn like docker's `RenderTUIProgress`.
    fn count(&mut self, id: &str, action: &str, current: i64, total: i64, units: &str);
}

/// Discards everything (`--quiet`).
pub struct Quiet;

impl Sink for Quiet {
    fn line(&mut self, _: &str, _: &str, _: Option<(i64, i64)>) {}
    fn message(&mut self, _: Option<&str>, _: &str) {}
    fn count(&mut self, _: &str, _: &str, _: i64, _: i64, _: &str) {}
}

/// Renders like docker's `jsonmessage.DisplayJSONMessagesStream`.
pub struct Renderer<W: Write> {
    out: W,
    tty: bool,
    width: u16,
    /// Lines on screen, in order (terminal mode).
    ids: Vec<String>,
    /// Last text printed per ID (non-terminal mode prints only changes).
    last: HashMap<String, String>,
}

impl<W: Write> Renderer<W> {
    pub fn new(out: W, tty: bool, width: u16) -> Renderer<W> {
        Renderer {
            out,
            tty,
            width: if width == 0 { 200 } else { width },
            ids: Vec::new(),
            last: HashMap::new(),
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    /// The bar docker draws when the terminal is wider than 110 columns.
    fn bar(&self, bar: Option<(i64, i64)>) -> String {
        match bar {
            Some((current, total)) if self.width > 110 && total > 0 && current > 0 => {
                let pct = ((current as f64 / total as f64 * 100.0) as i64 / 2).min(50) as usize;
                format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct))
            }
            _ => String::new(),
        }
    }
}

impl<W: Write> Renderer<W> {
    /// Prints `id: text` once per change (non-terminal mode).
    fn plain(&mut self, id: &str, text: String) {
        if self.last.get(id) == Some(&text) {
            return;
        }
        let _ = if text.is_empty() {
            writeln!(self.out, "{id}:")
        } else {
            writeln!(self.out, "{id}: {text}")
        };
        let _ = self.out.flush();
        self.last.insert(id.to_string(), text);
    }

    /// Redraws the line of `id` in place (terminal mode), adding it below the others if new.
    fn redraw(&mut self, id: &str, text: &str) {
        let line = match self.ids.iter().position(|i| i == id) {
            Some(l) => l,
            None => {
                self.ids.push(id.to_string());
                let _ = writeln!(self.out);
                self.ids.len() - 1
            }
        };
        let diff = self.ids.len() - line;
        let _ = write!(self.out, "\x1b[{diff}A\x1b[2K\r{id}: {text}\r\x1b[{diff}B");
        let _ = self.out.flush();
    }
}

/// docker's `RenderTUIProgress` for a count with units (no byte sizes, no time left: counted
/// progress carries no start time).
pub fn count_progress(current: i64, total: i64, units: &str, width: u16) -> String {
    if current <= 0 && total <= 0 {
        return String::new();
    }
    if total <= 0 {
        return format!("{current} {units}");
    }
    let mut bar = String::new();
    if width > 110 {
        let pct = ((current as f64 / total as f64 * 100.0) as i64 / 2).clamp(0, 50) as usize;
        bar = format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct));
    }
    if current > total {
        format!("{bar}{current} {units}")
    } else {
        format!("{bar}{current}/{total} {units}")
    }
}

impl<W: Write> Sink for Renderer<W> {
    fn line(&mut self, id: &str, action: &str, bar: Option<(i64, i64)>) {
        if !self.tty {
            self.plain(id, action.trim_end().to_string());
            return;
        }
        let bar = self.bar(bar);
        self.redraw(id, &format!("{action} {bar}"));
    }

    fn count(&mut self, id: &str, action: &str, current: i64, total: i64, units: &str) {
        if self.tty {
            let progress = count_progress(current, total, units, self.width);
            self.redraw(id, &format!("{action} {progress}"));
        } else {
            // Counts without the bar (docker hides counted lines off a terminal).
            let counts = count_progress(current, total, units, 0);
            self.plain(id, format!("{action}{counts}").trim_end().to_string());
        }
    }

    fn message(&mut self, id: Option<&str>, text: &str) {
        self.ids.clear();
        let _ = match id {
            Some(id) => writeln!(self.out, "{id}: {text}"),
            None => writeln!(self.out, "{text}"),
        };
        let _ = self.out.flush();
    }
}

/// docker's `truncError`: one line, at most 75 characters.
pub fn trunc_error(err: &str) -> String {
    let one_line = err.replace('\n', " ");
    if one_line.chars().count() > 75 {
        let mut s: String = one_line.chars().take(74).collect();
        s.push('…');
        s
    } else {
        one_line
    }
}

fn overall(out: &mut dyn Sink, n: i64, d: i64, rollback: bool) {
    let action = if rollback {
        format!("rolling back update: {n} out of {d} tasks")
    } else {
        format!("{n} out of {d} tasks")
    };
    out.line("overall progress", &action, None);
}

fn state_text(t: &Task) -> String {
    let s = t
        .status
        .as_ref()
        .and_then(|s| s.state)
        .map(|s| s.to_string())
        .unwrap_or_default();
    format!("{s:<LONGEST_STATE$}")
}

fn task_state(t: &Task) -> Option<TaskState> {
    t.status.as_ref().and_then(|s| s.state)
}

fn task_err(t: &Task) -> &str {
    t.status
        .as_ref()
        .and_then(|s| s.err.as_deref())
        .unwrap_or("")
}

/// Keeps, per key, the task with the lowest desired state, then the lowest observed state (docker
/// favours it in restart and start-first scenarios).
fn pick_lowest<'a, K: Ord>(map: &mut BTreeMap<K, &'a Task>, key: K, t: &'a Task) {
    if let Some(existing) = map.get(&key) {
        let (ed, td) = (
            state_number(existing.desired_state),
            state_number(t.desired_state),
        );
        if ed < td {
            return;
        }
        if ed == td && state_number(task_state(existing)) <= state_number(task_state(t)) {
            return;
        }
    }
    map.insert(key, t);
}

/// The per-mode progress state.
pub enum Updater {
    Replicated {
        slot_map: HashMap<i64, i64>,
        initialized: bool,
        done: bool,
    },
    Global {
        initialized: bool,
        done: bool,
    },
    ReplicatedJob {
        iteration: u64,
        concurrent: i64,
        total: i64,
        initialized: bool,
    },
    GlobalJob {
        initialized: bool,
        total: i64,
        nodes: HashSet<String>,
    },
}

impl Updater {
    pub fn for_service(s: &Service) -> Result<Updater> {
        let mode = s
            .spec
            .as_ref()
            .and_then(|sp| sp.mode.clone())
            .unwrap_or_default();
        if mode.replicated.as_ref().and_then(|r| r.replicas).is_some() {
            return Ok(Updater::Replicated {
                slot_map: HashMap::new(),
                initialized: false,
                done: false,
            });
        }
        if mode.global.is_some() {
            return Ok(Updater::Global {
                initialized: false,
                done: false,
            });
        }
        if let Some(j) = mode.replicated_job {
            return Ok(Updater::ReplicatedJob {
                iteration: job_iteration(s),
                concurrent: j.max_concurrent.unwrap_or(1),
                total: j.total_completions.unwrap_or(1),
                initialized: false,
            });
        }
        if mode.global_job.is_some() {
            return Ok(Updater::GlobalJob {
                initialized: false,
                total: 0,
                nodes: HashSet::new(),
            });
        }
        Err(CliError::Failed("unrecognized service mode".into()))
    }

    /// Writes progress for this poll and says whether the service has converged.
    pub fn update(
        &mut self,
        service: &Service,
        tasks: &[Task],
        active_nodes: &HashSet<String>,
        rollback: bool,
        out: &mut dyn Sink,
    ) -> Result<bool> {
        match self {
            Updater::Replicated {
                slot_map,
                initialized,
                done,
            } => {
                let replicas = service
                    .spec
                    .as_ref()
                    .and_then(|s| s.mode.as_ref())
                    .and_then(|m| m.replicated.as_ref())
                    .and_then(|r| r.replicas)
                    .ok_or_else(|| CliError::Failed("no replica count".into()))?;
                if !*initialized {
                    overall(out, 0, replicas, rollback);
                    if replicas <= MAX_PROGRESS_BARS {
                        for i in 1..=replicas {
                            out.line(&format!("{i}/{replicas}"), " ", None);
                        }
                    }
                    *initialized = true;
                }
                let mut by_slot: BTreeMap<i64, &Task> = BTreeMap::new();
                for t in tasks {
                    if state_number(t.desired_state) == 0 || state_number(task_state(t)) == 0 {
                        continue;
                    }
                    if let Some(node) = t.node_id.as_deref().filter(|n| !n.is_empty())
                        && !active_nodes.contains(node)
                    {
                        continue;
                    }
                    pick_lowest(&mut by_slot, t.slot.unwrap_or(0), t);
                }
                if *done
                    && by_slot
                        .values()
                        .any(|t| task_state(t) != Some(TaskState::RUNNING))
                {
                    *done = false;
                }
                let mut running = 0;
                for (slot, t) in &by_slot {
                    let next = slot_map.len() as i64 + 1;
                    let mapped = *slot_map.entry(*slot).or_insert(next);
                    if !terminal(t.desired_state) && task_state(t) == Some(TaskState::RUNNING) {
                        running += 1;
                    }
                    if *done || replicas > MAX_PROGRESS_BARS || mapped > replicas {
                        continue;
                    }
                    let id = format!("{mapped}/{replicas}");
                    task_line(out, &id, t, MAX_PROGRESS);
                }
                if !*done {
                    overall(out, running, replicas, rollback);
                    if running == replicas {
                        *done = true;
                    }
                }
                Ok(running == replicas)
            }
            Updater::Global { initialized, done } => {
                let mut by_node: BTreeMap<String, &Task> = BTreeMap::new();
                for t in tasks {
                    if state_number(t.desired_state) == 0 || state_number(task_state(t)) == 0 {
                        continue;
                    }
                    pick_lowest(&mut by_node, t.node_id.clone().unwrap_or_default(), t);
                }
                let node_count = by_node.len() as i64;
                if !*initialized {
                    if node_count == 0 {
                        out.line("overall progress", "waiting for new tasks", None);
                        return Ok(false);
                    }
                    overall(out, 0, node_count, rollback);
                    *initialized = true;
                }
                if *done
                    && by_node
                        .values()
                        .any(|t| task_state(t) != Some(TaskState::RUNNING))
                {
                    *done = false;
                }
                let mut running = 0;
                for (node, t) in &by_node {
                    if !active_nodes.contains(node) {
                        continue;
                    }
                    if !terminal(t.desired_state) && task_state(t) == Some(TaskState::RUNNING) {
                        running += 1;
                    }
                    if !*done && node_count <= MAX_PROGRESS_BARS {
                        task_line(out, truncate_id(node), t, MAX_PROGRESS);
                    }
                }
                if !*done {
                    overall(out, running, node_count, rollback);
                    if running == node_count {
                        *done = true;
                    }
                }
                Ok(running == node_count)
            }
            Updater::ReplicatedJob {
                iteration,
                concurrent,
                total,
                initialized,
            } => {
                let (total, concurrent) = (*total, *concurrent);
                if !*initialized {
                    job_overall(out, total, concurrent, 0, 0);
                    if total <= MAX_PROGRESS_BARS {
                        for i in 1..=total {
                            out.line(&format!("{i}/{total}"), " ", None);
                        }
                    }
                    *initialized = true;
                }
                let mut by_slot: BTreeMap<i64, &Task> = BTreeMap::new();
                for t in tasks {
                    if iteration_of(t) != Some(*iteration) {
                        continue;
                    }
                    if state_number(t.desired_state) == 0 || state_number(task_state(t)) == 0 {
                        continue;
                    }
                    let slot = t.slot.unwrap_or(0);
                    match by_slot.get(&slot) {
                        Some(e) if state_number(task_state(e)) <= state_number(task_state(t)) => {}
                        _ => {
                            by_slot.insert(slot, t);
                        }
                    }
                }
                let (mut active, mut complete) = (0, 0);
                for (slot, t) in &by_slot {
                    if total <= MAX_PROGRESS_BARS {
                        task_line(out, &format!("{}/{total}", slot + 1), t, MAX_JOB_PROGRESS);
                    }
                    let n = state_number(task_state(t));
                    if n < state_number(Some(TaskState::COMPLETE)) {
                        active += 1;
                    }
                    if task_state(t) == Some(TaskState::COMPLETE) {
                        complete += 1;
                    }
                }
                job_overall(out, total, concurrent, active, complete);
                Ok(complete == total)
            }
            Updater::GlobalJob {
                initialized,
                total,
                nodes,
            } => {
                let iteration = job_iteration(service);
                if !*initialized {
                    if tasks.is_empty() && !active_nodes.is_empty() {
                        out.line("job progress", "waiting for tasks", None);
                        return Ok(false);
                    }
                    for t in tasks {
                        if iteration_of(t) == Some(iteration) {
                            nodes.insert(t.node_id.clone().unwrap_or_default());
                        }
                    }
                    *total = nodes.len() as i64;
                    global_job_overall(out, *total, 0);
                    *initialized = true;
                }
                let mut by_node: BTreeMap<String, &Task> = BTreeMap::new();
                for t in tasks {
                    let node = t.node_id.clone().unwrap_or_default();
                    if iteration_of(t) != Some(iteration) || !nodes.contains(&node) {
                        continue;
                    }
                    match by_node.get(&node) {
                        Some(e) if state_number(task_state(e)) <= state_number(task_state(t)) => {}
                        _ => {
                            by_node.insert(node, t);
                        }
                    }
                }
                let mut complete = 0;
                for (node, t) in &by_node {
                    if *total <= MAX_PROGRESS_BARS {
                        task_line(out, node, t, MAX_JOB_PROGRESS);
                    }
                    if task_state(t) == Some(TaskState::COMPLETE) {
                        complete += 1;
                    }
                }
                global_job_overall(out, *total, complete);
                Ok(complete == *total)
            }
        }
    }
}

/// A task's job iteration; an empty `{}` is iteration 0 (Go omits a zero index).
fn iteration_of(t: &Task) -> Option<u64> {
    t.job_iteration.as_ref().map(|v| v.index.unwrap_or(0))
}

fn job_iteration(s: &Service) -> u64 {
    s.job_status
        .as_ref()
        .and_then(|j| j.job_iteration.as_ref())
        .and_then(|v| v.index)
        .unwrap_or(0)
}

/// A task's line: its error, or its state with a bar while neither desired nor observed state is
/// terminal (replicated/global); jobs always show the state.
fn task_line(out: &mut dyn Sink, id: &str, t: &Task, max: i64) {
    let err = task_err(t);
    if !err.is_empty() {
        out.line(id, &trunc_error(err), None);
        return;
    }
    if max == MAX_JOB_PROGRESS || (!terminal(t.desired_state) && !terminal(task_state(t))) {
        out.line(id, &state_text(t), Some((state_number(task_state(t)), max)));
    }
}

fn job_overall(out: &mut dyn Sink, total: i64, concurrent: i64, active: i64, completed: i64) {
    let pd = total.to_string().len();
    out.line(
        "job progress",
        &format!("{completed:>pd$} out of {total} complete"),
        Some((completed, total)),
    );
    let desired = (total - completed).min(concurrent);
    let ad = concurrent.to_string().len();
    out.line(
        "active tasks",
        &format!("{active:>ad$} out of {desired:>ad$} tasks"),
        None,
    );
}

fn global_job_overall(out: &mut dyn Sink, total: i64, complete: i64) {
    let pd = total.to_string().len();
    out.line(
        "job progress",
        &format!("{complete:>pd$} out of {total} complete"),
        Some((complete, total)),
    );
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
