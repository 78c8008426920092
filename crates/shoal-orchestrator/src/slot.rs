//! One slot: a replica number of a replicated service or job, or a node of a global one. This
//! module owns what a single slot needs, the same for every mode: which live task it keeps,
//! which tasks it shuts down (duplicates, tasks on lost nodes), whether it waits for a task
//! that is stopping, and whether (and with what restart history) it wants a new task.
//!
//! It only *asks* for new tasks ([`Summary::want`]); the mode decides when to grant them (at once
//! for services, within `max_concurrent` for replicated jobs) and the rolling update reads the
//! summaries to decide which slots to replace.

use std::collections::BTreeMap;

use shoal_types::{IdGen, Service, ServiceMode, Task, TaskSpec, TaskState, Timestamp};

use crate::plan::{Place, Plan};
use crate::restart::{self, Decision};
use crate::view::{self, Kind, Nodes};
use crate::{Context, Reconciled};

/// Every mode's frame: builds the service's [`Env`] (`job` for jobs) and an empty plan, lets
/// `reconcile` fill the plan, and returns what it holds.
pub(crate) fn plan_service(
    ctx: &Context,
    service: &Service,
    job: bool,
    reconcile: impl FnOnce(&mut Plan, &Env),
) -> Reconciled {
    let nodes = Nodes::new(ctx.nodes);
    let env = Env {
        service,
        target: &service.spec.task,
        nodes: &nodes,
        job,
    };
    let mut plan = Plan::new(ctx.now);
    reconcile(&mut plan, &env);
    plan.finish()
}

/// Tasks by slot number, each of the slots `1..=count` present even when it has no task (a
/// slot outside that range appears only when a task holds it).
pub(crate) fn by_number<'t>(
    count: u64,
    tasks: impl IntoIterator<Item = &'t Task>,
) -> BTreeMap<u64, Vec<&'t Task>> {
    let mut by_slot: BTreeMap<u64, Vec<&Task>> = (1..=count).map(|s| (s, Vec::new())).collect();
    for t in tasks {
        by_slot.entry(t.slot).or_default().push(t);
    }
    by_slot
}

/// Reconciles numbered slot `number` (of a replicated service or job) holding `tasks`.
pub(crate) fn reconcile_numbered<'a>(
    plan: &mut Plan,
    env: &Env,
    number: u64,
    tasks: Vec<&'a Task>,
) -> Summary<'a> {
    let slot = Slot {
        place: Place::Slot(number),
        tasks,
        can_create: true,
    };
    reconcile(plan, env, slot)
}

/// What every slot of one service shares.
pub(crate) struct Env<'a> {
    pub service: &'a Service,
    /// The task template new tasks copy (the service's current spec).
    pub target: &'a TaskSpec,
    pub nodes: &'a Nodes<'a>,
    /// Jobs: completed tasks are done and get desired `Complete`.
    pub job: bool,
}

impl Env<'_> {
    pub fn dirty(&self, t: &Task) -> bool {
        view::is_dirty(t, self.target, self.nodes)
    }

    /// Replicated services keep running tasks on a drained node until their slot is moved
    /// (see `moves`); every other mode loses them at once.
    pub fn gentle(&self) -> bool {
        matches!(self.service.spec.mode, ServiceMode::Replicated { .. })
    }
}

pub(crate) struct Slot<'a> {
    pub place: Place,
    /// The slot's tasks, oldest first.
    pub tasks: Vec<&'a Task>,
    /// False on a paused node: keep what runs there, add nothing.
    pub can_create: bool,
}

/// A task a slot asks for.
pub(crate) struct Want<'a> {
    pub history: Vec<Timestamp>,
    /// The ended task this one restarts: it gets desired `Shutdown` when the new task is made.
    pub restart_of: Option<&'a Task>,
}

/// What a slot looks like after its own decisions, for the mode and the rolling update.
pub(crate) struct Summary<'a> {
    pub place: Place,
    pub tasks: Vec<&'a Task>,
    pub can_create: bool,
    /// The live task the slot keeps.
    pub keeper: Option<&'a Task>,
    /// A running task kept next to a keeper that does not run yet (a start-first update or
    /// move): it serves until the keeper runs.
    pub companion: Option<&'a Task>,
    /// Set when the slot has no live task and waits for these to stop.
    pub stopping: Vec<&'a Task>,
    /// The slot's last task ended and will not be restarted (or, for a job, completed).
    pub done: Option<&'a Task>,
    /// A restart is due later (the requeue time is already in the plan).
    pub restart_pending: bool,
    pub want: Option<Want<'a>>,
    /// A task was created in this call; `Some(true)` when it carries no restart history (it is
    /// not a restart, so a rolling update counts it as its own).
    pub created: Option<bool>,
}

impl<'a> Summary<'a> {
    /// Creates the task the slot asked for, if any.
    pub fn fulfil(&mut self, plan: &mut Plan, env: &Env, ids: &mut IdGen) {
        if let Some(want) = self.want.take() {
            if let Some(old) = want.restart_of {
                plan.set_desired(old, TaskState::Shutdown);
            }
            self.created = Some(want.history.is_empty());
            plan.create(env.service, &self.place, want.history, ids);
        }
    }

    /// Applies the restart policy to `ended`, the slot's newest task, which ended while wanted.
    fn consider_restart(&mut self, plan: &mut Plan, env: &Env, ended: &'a Task) {
        let drained = env.nodes.drained(ended.node_id.as_ref());
        match restart::decide(ended, env.job, drained) {
            Decision::RestartAt(at) if at <= plan.now => {
                let history = restart::restarted_history(ended, env.target, plan.now);
                self.want = Some(Want {
                    history,
                    restart_of: Some(ended),
                });
            }
            Decision::RestartAt(at) => {
                plan.requeue_at(at);
                self.restart_pending = true;
            }
            Decision::Never => {
                finish(plan, env, ended);
                if self.keeper.is_none() {
                    self.done = Some(ended);
                }
            }
        }
    }
}

/// Marks a task that ended by itself as handled: desired `Complete` for a completed job task
/// (as Swarm shows it), `Shutdown` otherwise.
pub(crate) fn finish(plan: &mut Plan, env: &Env, t: &Task) {
    let desired = if env.job && t.status.state == TaskState::Complete {
        TaskState::Complete
    } else {
        TaskState::Shutdown
    };
    plan.set_desired(t, desired);
}

/// A slot that should not exist (scaled away, an ineligible node, a task of an earlier job run):
/// shut down what is live and mark what ended as handled; never create anything.
pub(crate) fn retire(plan: &mut Plan, env: &Env, tasks: &[&Task]) {
    for &t in tasks {
        match view::classify(t, plan.desired_of(t), env.nodes, env.gentle()) {
            Kind::Live | Kind::Lost | Kind::Evicted => plan.set_desired(t, TaskState::Shutdown),
            Kind::EndedUnhandled => finish(plan, env, t),
            Kind::Stopping | Kind::Gone | Kind::Ended => {}
        }
    }
}

/// Decides for one wanted slot. New tasks are only asked for (see [`Summary::fulfil`]).
pub(crate) fn reconcile<'a>(plan: &mut Plan, env: &Env, slot: Slot<'a>) -> Summary<'a> {
    let mut live = Vec::new();
    let mut stopping = Vec::new();
    let mut unhandled = Vec::new();
    let mut newest_kind = None;
    for &t in &slot.tasks {
        let kind = view::classify(t, plan.desired_of(t), env.nodes, env.gentle());
        newest_kind = Some(kind);
        match kind {
            Kind::Live | Kind::Evicted => live.push(t),
            // Replaced below like any missing task: no delay, not a restart.
            Kind::Lost => plan.set_desired(t, TaskState::Shutdown),
            Kind::Stopping => stopping.push(t),
            Kind::EndedUnhandled => unhandled.push(t),
            Kind::Gone | Kind::Ended => {}
        }
    }
    let newest = slot.tasks.last().copied();
    let is_newest = |t: &Task| newest.is_some_and(|n| std::ptr::eq(n, t));
    let mut s = Summary {
        place: slot.place,
        tasks: slot.tasks.clone(),
        can_create: slot.can_create,
        keeper: None,
        companion: None,
        stopping: Vec::new(),
        done: None,
        restart_pending: false,
        want: None,
        created: None,
    };

    if let Some((keeper, companion)) = choose_keeper(plan, env, &live) {
        s.keeper = Some(keeper);
        s.companion = companion;
        let keeper_dirty = env.dirty(keeper);
        for u in unhandled {
            // A start-first replacement that failed next to the old task it was to replace is
            // restarted per policy, as Swarm's restart supervisor would; any other ended task
            // is superseded by the live one.
            let retry = is_newest(u) && keeper_dirty && !env.dirty(u) && s.can_create;
            if retry {
                s.consider_restart(plan, env, u);
            } else {
                finish(plan, env, u);
            }
        }
        return s;
    }

    for &u in &unhandled {
        if !is_newest(u) {
            finish(plan, env, u);
        }
    }
    if !stopping.is_empty() {
        // Never two containers for one slot: the replacement waits until the old one stopped.
        s.stopping = stopping;
        return s;
    }
    if !s.can_create {
        return s;
    }
    match newest.zip(newest_kind) {
        None => {
            s.want = Some(Want {
                history: Vec::new(),
                restart_of: None,
            })
        }
        Some((n, Kind::Lost | Kind::Gone)) => {
            s.want = Some(Want {
                history: restart::carried_history(n, env.target),
                restart_of: None,
            });
        }
        Some((n, Kind::EndedUnhandled)) => s.consider_restart(plan, env, n),
        Some((n, Kind::Ended)) => {
            // Ended by itself and the policy gave up: the slot is done. Otherwise it was stopped
            // on purpose (an update, a scale-down then up): replace it at once.
            if view::self_ended(n) && !restart::should_restart(n, env.job) {
                s.done = Some(n);
            } else {
                s.want = Some(Want {
                    history: restart::carried_history(n, env.target),
                    restart_of: None,
                });
            }
        }
        Some((_, Kind::Live | Kind::Stopping | Kind::Evicted)) => {}
    }
    s
}

/// Picks the live task a slot keeps and shuts down the others. Up to date first, then not on a
/// drained node; among out-of-date tasks a running one (resolving duplicates never interrupts
/// a task that serves); among up-to-date ones a task that can be placed, then the newest, so a
/// replacement made by a start-first update or a move is kept. While the kept task does not run
/// yet, the best running task stays too as its companion and serves until it does; except that
/// a task on a drained node does not stay next to a replacement no node can take: the drain
/// wins, as in Swarm.
fn choose_keeper<'a>(
    plan: &mut Plan,
    env: &Env,
    live: &[&'a Task],
) -> Option<(&'a Task, Option<&'a Task>)> {
    let evicted = |t: &Task| env.nodes.loses(t);
    let rank = |t: &&Task| {
        let dirty = env.dirty(t);
        let running = t.status.state == TaskState::Running;
        (
            !dirty,
            !evicted(t),
            if dirty {
                running
            } else {
                !view::unplaceable(t)
            },
            view::created(t),
            t.id.clone(),
        )
    };
    let keeper = live.iter().copied().max_by_key(|t| rank(t))?;
    let companion = if keeper.status.state != TaskState::Running && !env.dirty(keeper) {
        let stuck = view::unplaceable(keeper);
        live.iter()
            .copied()
            .filter(|t| !std::ptr::eq(*t, keeper) && t.status.state == TaskState::Running)
            .filter(|t| !(stuck && evicted(t)))
            .max_by_key(|t| (!evicted(t), rank(t)))
    } else {
        None
    };
    for &t in live {
        let kept = std::ptr::eq(t, keeper) || companion.is_some_and(|c| std::ptr::eq(t, c));
        if !kept {
            plan.set_desired(t, TaskState::Shutdown);
        }
    }
    Some((keeper, companion))
}
