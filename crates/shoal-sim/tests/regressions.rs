//! Seeds that once failed, each with what it found. They run with the default config, so a
//! change to the plan generator changes what they exercise: when it does, re-find the failure
//! (run the seed range) and update the seeds here.

fn check(seed: u64) {
    if let Err(v) = shoal_sim::run(seed, &shoal_sim::Config::default()) {
        panic!("{v}");
    }
}

/// A leader marked a silent node Down while its agent reconnected; the session's Ready write
/// was skipped because the leader's view still said Ready, and the node stayed Down while
/// heartbeating (fixed: the dispatcher revives nodes with live sessions). Also: a manager
/// restarted with its old leader vote served a session on its old state (fixed: dispatchers
/// serve agents only while leading with a current state).
#[test]
fn seed_0_node_stays_down_behind_a_live_session() {
    check(0);
}

/// An agent's status reports went to a manager whose state lagged; the dispatcher dropped
/// them as reports for unknown tasks and acknowledged them, so a stopped task stayed running /
/// wanted shutdown in the store for good (fixed: only the leader with a current state takes
/// reports).
#[test]
fn seed_8_report_acknowledged_by_a_lagging_manager() {
    check(8);
}

/// Convergence was declared while an agent was still in its reconnect backoff after a leader
/// change; the new leader then marked its node Down and replaced its tasks (the check now
/// requires every agent's session to be with the leader).
#[test]
fn seed_102_agent_in_backoff_after_failover() {
    check(102);
}

/// A global service's task on a paused node is not updated; convergence must accept it.
#[test]
fn seed_95_paused_node_keeps_its_global_task() {
    check(95);
}

/// A global service's task created for a node that was then paused stayed `pending` (wanted
/// running) forever: the scheduler will not place it on a paused node and pause kept it (fixed:
/// a paused node's never-assigned tasks are shut down, and made again once it is active).
#[test]
fn seed_305_pending_global_task_on_a_paused_node() {
    check(305);
}

/// A scale written during a failing update made the failed spec the rollback target, so the
/// automatic rollback "completed" on the very image that failed (as Swarm would; fixed: a
/// scale or relabel is not a new revision and keeps the rollback target).
#[test]
fn seed_308_rollback_to_the_spec_that_failed() {
    check(308);
}
