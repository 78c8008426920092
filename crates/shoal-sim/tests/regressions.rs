//! Seeds that once failed, each with what it found. Each case replays its stored plan
//! (`tests/regressions/seed-N.json`: the seed, the config and every planned request and fault),
//! not what the plan generator makes of the seed today, so a change to the generator cannot
//! silently stop a case covering its bug.
//!
//! Adding a case, or rewriting the stored plans from today's generator (only when a case's
//! plan must change on purpose, e.g. the plan's format did; then check each case still reaches
//! what it is about):
//! `SHOAL_SIM_WRITE_CASES=1 cargo nextest run -p shoal-sim -E 'test(regressions)'`
//! writes the file of every case below that runs, from `Case::generate(seed, &Config::default())`.

use std::path::PathBuf;

fn case_path(seed: u64) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/regressions")
        .join(format!("seed-{seed}.json"))
}

fn check(seed: u64) {
    let path = case_path(seed);
    if std::env::var_os("SHOAL_SIM_WRITE_CASES").is_some() {
        let case = shoal_sim::Case::generate(seed, &shoal_sim::Config::default());
        if let Err(e) = std::fs::write(&path, case.to_json() + "\n") {
            panic!("writing {}: {e}", path.display());
        }
    }
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (write it with SHOAL_SIM_WRITE_CASES=1, see the module docs)",
            path.display()
        )
    });
    let case = shoal_sim::Case::from_json(&path.display().to_string(), &json)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(case.seed, seed, "{} holds another seed", path.display());
    if let Err(v) = case.run() {
        panic!("{v}");
    }
}

/// The stored plans replay as they are: a case whose file differs from what the generator
/// makes of its seed today still runs the stored one (this is what keeps a case's coverage).
#[test]
fn a_stored_plan_is_replayed_not_regenerated() {
    let cfg = shoal_sim::Config::default();
    let json = std::fs::read_to_string(case_path(0)).unwrap_or_else(|e| panic!("seed-0: {e}"));
    let mut case = shoal_sim::Case::from_json("seed-0", &json).unwrap_or_else(|e| panic!("{e}"));
    // Round trip: what is stored is exactly what is read back.
    assert_eq!(
        shoal_sim::Case::from_json("seed-0", &case.to_json())
            .ok()
            .as_ref(),
        Some(&case)
    );
    // Emptying the stored plan makes a different run from the seed's own plan: the seed is not
    // what drives the replay.
    for s in &mut case.plan.steps {
        s.clear();
    }
    let stored = case.run().unwrap_or_else(|v| panic!("{v}"));
    assert_eq!(stored.writes_ok + stored.writes_failed, 0, "{stored:?}");
    assert_eq!(stored.plan_digest, case.plan.digest());
    assert_ne!(
        stored.plan_digest,
        shoal_sim::generate_plan(0, &cfg).digest()
    );
}

/// A stored plan that does not fit its config is refused with what is wrong, not run.
#[test]
fn a_stored_plan_that_does_not_fit_is_refused() {
    let mut case = shoal_sim::Case::generate(0, &shoal_sim::Config::default());
    case.config.workers = 0;
    let err = shoal_sim::Case::from_json("edited", &case.to_json())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("edited") && err.contains("availability"),
        "{err}"
    );
    let err = shoal_sim::Case::from_json("garbage", "{\"seed\": 1}")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("garbage"), "{err}");
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
