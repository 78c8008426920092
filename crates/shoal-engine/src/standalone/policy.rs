//! Whether and when a standalone container that exited starts again: Docker's restart
//! policies (`no`, `always`, `unless-stopped`, `on-failure[:N]`) with its back-off (100 ms,
//! doubled at each restart, at most a minute, and back to 100 ms once a run lasted 10 s).
//! Pure: the supervisor feeds it what happened and sleeps what it says.

use std::time::Duration;

use shoal_control::engine::RestartPolicy;

/// The first delay, and the one after a run that lasted [`RESET_AFTER`].
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run this long is a success as far as the back-off goes.
pub const RESET_AFTER: Duration = Duration::from_secs(10);

/// What the supervisor knows when the container's process has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: i64,
    /// How long the run lasted.
    pub ran_for: Duration,
    /// The user stopped it (`docker stop`, or `docker kill` with SIGKILL or its stop signal).
    pub manually_stopped: bool,
    /// How many times the policy has restarted it since the user last started it.
    pub restart_count: u64,
    /// The delay before the previous restart; `None` before the first.
    pub previous_delay: Option<Duration>,
}

/// `Some(delay)`: start it again after `delay`; `None`: it stays exited.
pub fn after_exit(policy: RestartPolicy, e: Exit) -> Option<Duration> {
    if e.manually_stopped {
        return None;
    }
    let restart = match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        RestartPolicy::OnFailure { max_retries } => {
            e.code != 0 && (max_retries == 0 || e.restart_count < max_retries)
        }
    };
    if !restart {
        return None;
    }
    Some(match e.previous_delay {
        None => FIRST_DELAY,
        Some(_) if e.ran_for >= RESET_AFTER => FIRST_DELAY,
        Some(d) => (d * 2).min(MAX_DELAY),
    })
}

/// Whether a container found exited when the daemon starts is started again: `always`
/// always (as Docker restarts those at its own start even after a `docker stop`),
/// `unless-stopped` unless the user stopped it, `on-failure` when its last run failed and
/// retries remain.
pub fn at_daemon_start(policy: RestartPolicy, e: Exit) -> bool {
    match policy {
        RestartPolicy::No => false,
        RestartPolicy::Always => true,
        RestartPolicy::UnlessStopped => !e.manually_stopped,
        RestartPolicy::OnFailure { .. } => after_exit(policy, e).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i64, ran_for: u64, count: u64, prev: Option<u64>) -> Exit {
        Exit {
            code,
            ran_for: Duration::from_secs(ran_for),
            manually_stopped: false,
            restart_count: count,
            previous_delay: prev.map(Duration::from_millis),
        }
    }

    #[test]
    fn no_never_restarts() {
        assert_eq!(after_exit(RestartPolicy::No, exit(1, 0, 0, None)), None);
        assert_eq!(after_exit(RestartPolicy::No, exit(0, 0, 0, None)), None);
    }

    #[test]
    fn always_and_unless_stopped_restart_on_any_exit_but_a_manual_stop() {
        for p in [RestartPolicy::Always, RestartPolicy::UnlessStopped] {
            assert_eq!(after_exit(p, exit(0, 0, 0, None)), Some(FIRST_DELAY));
            assert_eq!(
                after_exit(p, exit(137, 0, 5, Some(100))),
                Some(FIRST_DELAY * 2)
            );
            let mut e = exit(1, 0, 0, None);
            e.manually_stopped = true;
            assert_eq!(after_exit(p, e), None, "{p:?}");
        }
    }

    #[test]
    fn on_failure_counts_its_retries_and_ignores_success() {
        let p = RestartPolicy::OnFailure { max_retries: 3 };
        assert_eq!(after_exit(p, exit(0, 0, 0, None)), None);
        assert_eq!(after_exit(p, exit(2, 0, 0, None)), Some(FIRST_DELAY));
        assert!(after_exit(p, exit(2, 0, 2, Some(200))).is_some());
        assert_eq!(after_exit(p, exit(2, 0, 3, Some(400))), None);
        let unlimited = RestartPolicy::OnFailure { max_retries: 0 };
        assert!(after_exit(unlimited, exit(1, 0, 1000, Some(60_000))).is_some());
    }

    #[test]
    fn back_off_doubles_up_to_a_minute_and_resets_after_a_long_run() {
        let p = RestartPolicy::Always;
        let mut prev = None;
        let mut seen = Vec::new();
        for n in 0..12 {
            let d = after_exit(p, exit(1, 0, n, prev)).expect("restarts");
            seen.push(d.as_millis());
            prev = Some(d.as_millis() as u64);
        }
        assert_eq!(
            seen,
            vec![
                100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000
            ]
        );
        assert_eq!(
            after_exit(p, exit(1, 10, 12, Some(60_000))),
            Some(FIRST_DELAY),
            "a run of 10 s resets the back-off"
        );
    }

    #[test]
    fn daemon_start_restarts_by_policy() {
        let mut stopped = exit(0, 5, 0, None);
        stopped.manually_stopped = true;
        assert!(at_daemon_start(RestartPolicy::Always, stopped));
        assert!(!at_daemon_start(RestartPolicy::UnlessStopped, stopped));
        assert!(at_daemon_start(
            RestartPolicy::UnlessStopped,
            exit(0, 5, 0, None)
        ));
        assert!(!at_daemon_start(RestartPolicy::No, exit(1, 5, 0, None)));
        let p = RestartPolicy::OnFailure { max_retries: 1 };
        assert!(at_daemon_start(p, exit(1, 5, 0, None)));
        assert!(!at_daemon_start(p, exit(1, 5, 1, None)));
        assert!(!at_daemon_start(p, exit(0, 5, 0, None)));
    }
}
