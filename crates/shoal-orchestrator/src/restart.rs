//! The restart policy: whether a task that ended by itself gets a replacement, when, and the
//! restart history the replacement carries.
//!
//! Everything is a function of the ended task alone (its spec's policy, its end time and its
//! `restart_history`), so a decision made once is made the same way on every later call: a slot
//! that gave up stays given up, and a pending restart keeps its due time.

use std::time::Duration;

use shoal_types::{RestartCondition, Task, TaskSpec, TaskState, Timestamp};

/// Most restart times a task carries; only `max_attempts` of them are ever needed.
pub const MAX_HISTORY: usize = 1024;

/// What the restart policy says about a task that ended while it was wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Replace it once `at` has come.
    RestartAt(Timestamp),
    /// Never replace it.
    Never,
}

/// Decides for `t`, which ended by itself. `job`: completed job tasks are done, whatever the
/// condition. `skip_delay`: the task ended on a drained node, so the replacement need not wait
/// (as Swarm).
pub fn decide(t: &Task, job: bool, skip_delay: bool) -> Decision {
    if !should_restart(t, job) {
        return Decision::Never;
    }
    let delay = if skip_delay {
        Duration::ZERO
    } else {
        t.spec.restart.effective_delay()
    };
    Decision::RestartAt(t.status.timestamp.add(delay))
}

/// Swarm's `shouldRestart`: the condition, then `max_attempts` counted over the restarts in
/// `window` before the task's end (all of them when the window is zero).
pub fn should_restart(t: &Task, job: bool) -> bool {
    let policy = &t.spec.restart;
    let clean_exit = t.status.state == TaskState::Complete;
    let allowed = match policy.condition {
        RestartCondition::None => false,
        RestartCondition::OnFailure => !clean_exit,
        // Restarting a job task that completed would run the job again.
        RestartCondition::Any => !(job && clean_exit),
    };
    if !allowed {
        return false;
    }
    if policy.max_attempts == 0 {
        return true;
    }
    let end = t.status.timestamp;
    let window = policy.effective_window();
    let since = (!window.is_zero()).then(|| end.sub(window));
    let attempts = t
        .restart_history
        .iter()
        .filter(|&&r| r <= end && since.is_none_or(|s| r > s))
        .count();
    (attempts as u64) < policy.max_attempts
}

/// The history a task replacing `prev` starts with when it is not a restart (node loss, an
/// orchestrator shutdown, scale-up into an old slot): `prev`'s, if the spec is unchanged.
pub fn carried_history(prev: &Task, target: &TaskSpec) -> Vec<Timestamp> {
    if prev.spec == *target {
        prev.restart_history.clone()
    } else {
        Vec::new()
    }
}

/// The history of a task restarting `prev` at `now`: `prev`'s (if the spec is unchanged, as
/// Swarm resets the count for a new spec) plus `now`, trimmed to what can still count.
pub fn restarted_history(prev: &Task, target: &TaskSpec, now: Timestamp) -> Vec<Timestamp> {
    let mut h = carried_history(prev, target);
    h.push(now);
    let policy = &target.restart;
    let window = policy.effective_window();
    if !window.is_zero() {
        // A later end time is at least `now`, so restarts before `now - window` never count again.
        let since = now.sub(window);
        h.retain(|&r| r > since);
    }
    let cap = usize::try_from(policy.max_attempts)
        .unwrap_or(MAX_HISTORY)
        .clamp(1, MAX_HISTORY);
    if h.len() > cap {
        h.drain(..h.len() - cap);
    }
    h
}
