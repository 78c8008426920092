//! The pure reconcilers: given a service (desired state), its tasks and the nodes (observed
//! state) and `now`, compute the [`Change`]s that close the gap.
//!
//! Nothing here does IO, reads a clock or touches a global RNG: time comes in as
//! [`Context::now`], IDs from the caller's [`IdGen`]. The same inputs (and the same IdGen seed)
//! give the same output in the same order, so the manager, unit tests, property tests and the
//! cluster simulator all drive the same code.
//!
//! # Concurrency contract
//! Every function is a pure function of its arguments. The manager calls
//! [`reconcile_service`] (and [`reap_history`]) for a service whenever the store changes in a way
//! that touches it, or when a returned [`Reconciled::requeue_at`] arrives; it applies the
//! changes in one store transaction and calls again with the new state. The reconcilers are
//! level-triggered: they keep no memory between calls, so every decision (restart attempts,
//! update progress, failure counts) is recomputed from what the store holds. A call on stale
//! state is harmless as long as the manager applies its changes with optimistic concurrency on
//! the task versions it read.
//!
//! # Modules
//! - [`replicated`]: replica slots `1..=replicas`.
//! - [`global`]: one task per eligible node.
//! - [`jobs`]: replicated and global jobs (run to completion).
//! - `slot`: what one slot (replica number or node) needs, shared by all modes: live-task
//!   selection, node loss, and when to create a replacement.
//! - [`restart`]: the restart policy (condition, delay, attempts in a window).
//! - [`update`]: rolling updates and rollbacks, and the service's update status.
//! - [`reaper`]: task history retention.
//! - [`orphans`]: tasks whose service is gone.
//! - [`attachments`]: standalone containers' network attachments, which no reconciler owns;
//!   only those of deleted nodes go.
//! - [`depends`]: start order between services (compose's `depends_on`): whether a service
//!   must wait for others before its first tasks. It looks across services, so the manager
//!   asks it before calling [`reconcile_service`] (see `shoal-manager`'s `loops`).
//! - [`constraint`]: placement-constraint matching on the grammar shared with the scheduler
//!   (`shoal_types::constraint`).
//!
//! # Decisions where Swarm is silent (or where shoal differs)
//! - **Restart delay.** A replacement is created only when the delay since the ended task's
//!   `status.timestamp` has passed (the call returns `requeue_at` for that moment); new tasks are
//!   always created with desired state `Running`. Swarm instead creates the replacement at once
//!   with desired `Ready` and promotes it after the delay; shoal's agents need not know about a
//!   desired `Ready`. Until the replacement exists the ended task keeps its desired `Running`,
//!   which is the level-triggered record that a restart is pending; it gets desired `Shutdown`
//!   when replaced, or at once when the policy says it will never be.
//! - **Restart attempts** are counted from [`Task::restart_history`], carried from a task to its
//!   replacement while the task spec stays the same (a new spec starts a fresh count, as
//!   Swarm's spec-version reset), bounded to `max_attempts` entries (at least 1, at most 1024)
//!   and to the window. Whether a task may be restarted depends only on the task itself (its
//!   end time is the reference for the window, as Swarm), so a slot that gave up stays given up.
//! - **A slot that gave up** (restart `none`, `on-failure` after a clean exit, attempts used up)
//!   keeps its last task as its record and gets no new task, also not on scale-up, until the
//!   service spec changes: then the rolling update recreates it (Swarm's
//!   `UpdatableTasksInSlot`); a rollback recreates only the slots that gave up under the spec it
//!   leaves.
//! - **Node loss** (`Down`, drained, deleted, or no longer matching the task's own placement
//!   constraints, which is Swarm's constraint enforcer) shuts live tasks down and replaces them at
//!   once, whatever the restart policy (Swarm would not replace under `none`). Pause keeps them.
//! - **Waiting for the old task.** A slot whose task is being shut down (desired past running,
//!   not yet terminal) gets its replacement only once it has stopped, so one slot never runs two
//!   containers; tasks never assigned, or on a Down, drained or deleted node, are not waited for.
//! - **Rolling updates** follow Swarm's worker model rather than strict batches: at most
//!   `parallelism` slots are in flight at once, a slot being in flight from the moment its old
//!   task is told to stop (stop-first) or its new task is created (start-first) until the new
//!   task runs, and then `delay` more. Start-first keeps the old task running next to the new
//!   one until the new one runs. A slot is attempted once per update: if its new task fails by
//!   itself, retries are the restart policy's business (a new task lost with its node is not a
//!   failure and the slot is tried again). A global service's paused nodes are not updated.
//! - **Update failures** are tasks created by the update (new spec, created after the update
//!   started, not a restart) that end `failed`, `rejected` or `complete` while the update is in
//!   progress. shoal-types has no "started running at" for a task, so the `monitor` window is
//!   applied as: the update stays in progress until `max(monitor, delay)` after the last new task
//!   started running, and failures count until then (Swarm also ignores failures later than
//!   `monitor` after a task started, even while the update still runs). The failure ratio's
//!   denominator is the number of slots of the service. The update completes once every task
//!   it made runs and that window has passed; tasks it did not make (a restart waiting for its
//!   delay, a slot that failed under `continue`) do not hold it open.
//! - **Starting an update.** An update starts when the service has no update status, or a
//!   completed one, and some slot's task does not match the spec. The manager is expected to
//!   clear `update_status` when the spec changes (as Swarm's control API does), and to set
//!   `RollbackStarted` (with `started_at`) for a manual rollback.
//! - **Scale-down** gives the highest slots desired `Shutdown` (Swarm uses `Remove`); the reaper
//!   deletes their tasks once they have stopped.
//! - **Jobs** are created with desired `Running` (Swarm uses `Complete`) and get desired
//!   `Complete` once they complete. A job's iteration is its task spec: tasks with another spec
//!   are from an earlier run and are shut down. `max_concurrent == 0` means no limit. A failed
//!   job task that may not be restarted leaves its slot failed (Swarm would start a new task).
//!   A slot with a completed task is done, even if a newer one exists (a task on a lost node
//!   can finish after its replacement was made: jobs run at least once per slot).
//! - **Task order.** A slot's tasks are ordered by `meta.created_at`, which the store must fill
//!   on create with a time that moves between transactions; equal times (a fake clock standing
//!   still) fall back to "still wanted is newer", then the ID.

pub mod attachments;
pub mod constraint;
pub mod depends;
pub mod global;
pub mod jobs;
mod moves;
pub mod orphans;
mod plan;
pub mod reaper;
pub mod replicated;
pub mod restart;
mod slot;
pub mod update;
mod view;

use shoal_types::service::UpdateStatus;
use shoal_types::{ClusterSpec, Id, IdGen, Node, Service, ServiceMode, Task, TaskState, Timestamp};

pub use attachments::reconcile_attachments;
pub use orphans::reconcile_orphans;

pub use reaper::reap_history;

/// The replacement that moves `from` (a running task of a replicated service) to node `to`:
/// the same slot, placed on `to` by the scheduler's filters. The slot then carries it as a
/// start-first move (see `moves`): `from` stops once it runs.
pub fn move_replacement(
    service: &Service,
    from: &Task,
    to: &Id,
    now: Timestamp,
    ids: &mut IdGen,
) -> Task {
    let mut t = plan::new_task(
        service,
        &plan::Place::Slot(from.slot),
        from.restart_history.clone(),
        now,
        ids,
    );
    t.node_id = Some(to.clone());
    t
}

/// One write the manager should make to the store.
// A task inline rather than boxed: the manager matches on these, and a call returns a handful.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new task: `status.state == Pending` ("pending task scheduling"), desired `Running`,
    /// `meta` left default for the store to fill.
    CreateTask(Task),
    /// Moves a task's desired state forward (never backward).
    SetDesiredState {
        task_id: Id,
        desired: TaskState,
    },
    DeleteTask {
        task_id: Id,
    },
    SetUpdateStatus {
        service_id: Id,
        status: Option<UpdateStatus>,
    },
    /// Automatic rollback: the manager swaps `spec` and `previous_spec` and sets the update
    /// status to `RollbackStarted` with this message and `started_at = now`.
    RollbackService {
        service_id: Id,
        message: String,
    },
}

/// What a reconcile produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reconciled {
    pub changes: Vec<Change>,
    /// The earliest time at which the answer may change without any store change (a restart
    /// delay, an update delay, a monitor window ending). `None`: only a store change can.
    pub requeue_at: Option<Timestamp>,
}

/// What every reconciler may look at besides the service and its tasks.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub now: Timestamp,
    pub cluster: &'a ClusterSpec,
    /// Every node of the cluster: a task on a node missing from this list counts as lost.
    pub nodes: &'a [&'a Node],
}

/// Computes the changes that bring `service`'s tasks to its spec. `tasks` are the service's
/// tasks (any others are ignored), in any order.
pub fn reconcile_service(
    ctx: &Context,
    service: &Service,
    tasks: &[&Task],
    ids: &mut IdGen,
) -> Reconciled {
    let own: Vec<&Task> = tasks
        .iter()
        .copied()
        .filter(|t| t.service_id == service.id)
        .collect();
    match service.spec.mode {
        ServiceMode::Replicated { replicas } => {
            replicated::reconcile(ctx, service, replicas, &own, ids)
        }
        ServiceMode::Global => global::reconcile(ctx, service, &own, ids),
        ServiceMode::ReplicatedJob {
            max_concurrent,
            total_completions,
        } => jobs::reconcile_replicated(ctx, service, max_concurrent, total_completions, &own, ids),
        ServiceMode::GlobalJob => jobs::reconcile_global(ctx, service, &own, ids),
    }
}
