//! Health checks of native tasks, run by the task's shim (which outlives the agent and already
//! supervises the process), in a child process of its own: every `interval` it runs the check's
//! argv inside the task (`crun exec --process` for an image task; for a `host` task, a process
//! that joins the task's namespaces and cgroups), kills it after `timeout`, and records the
//! outcome in `health.json` atomically; the driver's `health()` only reads that file.
//!
//! [`HealthState`] is the pure part: Docker's rules for turning check results into a status.
//! The checker is single-threaded blocking code (it is forked from the single-threaded shim) and
//! dies with the shim (parent-death signal); it is its own subreaper so a timed-out check's
//! orphans are reaped by it and not left to the shim.

use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use shoal_types::Clock;
use shoal_types::clock::SystemClock;

use super::layout::{self, HealthRecord, HealthSpec, HealthStatus, ShimConfig, TaskDir};
use super::proc;

/// Docker keeps this much of a check's output.
pub(crate) const MAX_OUTPUT: usize = 4096;

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckResult {
    /// The exit code; -1 when the check could not be run or timed out.
    pub exit: i64,
    pub output: String,
}

impl CheckResult {
    pub fn ok(&self) -> bool {
        self.exit == 0
    }
}

/// The health of one task, as Docker computes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthState {
    pub record: HealthRecord,
}

impl HealthState {
    pub fn new() -> Self {
        HealthState {
            record: HealthRecord {
                status: HealthStatus::Starting,
                failing_streak: 0,
                last_exit: 0,
                last_output: String::new(),
                checks: 0,
            },
        }
    }

    /// Folds in a result of a check that began `since_start` after the task started. A success
    /// makes the task healthy (and so ends the start period); a failure counts towards
    /// `retries` unless the task has never been healthy and is still in its start period.
    pub fn record(&mut self, result: CheckResult, since_start: Duration, spec: &HealthSpec) {
        let r = &mut self.record;
        r.checks += 1;
        r.last_exit = result.exit;
        let ok = result.ok();
        r.last_output = truncate(result.output);
        if ok {
            r.failing_streak = 0;
            r.status = HealthStatus::Healthy;
            return;
        }
        let in_start_period = r.status == HealthStatus::Starting && since_start < spec.start_period;
        if !in_start_period {
            r.failing_streak += 1;
            if r.failing_streak >= spec.retries.max(1) {
                r.status = HealthStatus::Unhealthy;
            }
        }
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_OUTPUT {
        let mut cut = MAX_OUTPUT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// How the checker gets into the task.
pub(crate) enum Target {
    /// `<runtime> --root <state> exec --process <file> <id>`.
    Oci {
        runtime: std::path::PathBuf,
        state_root: std::path::PathBuf,
        process: std::path::PathBuf,
        id: String,
    },
    /// A `host` task: join the namespaces of `pid` and the task's cgroups.
    Host {
        pid: i32,
        start_time: u64,
        cfg: Box<ShimConfig>,
    },
}

/// The checker's loop; returns only when the task's process is gone.
pub(crate) fn run_checker(
    task: &TaskDir,
    spec: &HealthSpec,
    target: &Target,
    task_pid: i32,
    task_start: u64,
) {
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let started = SystemClock.now();
    let mut state = HealthState::new();
    let _ = layout::write_json_atomic(&task.file(layout::HEALTH), &state.record);
    loop {
        std::thread::sleep(spec.interval);
        if !proc::is_same_and_alive(task_pid, task_start) {
            return;
        }
        let began = SystemClock.now();
        let result = run_once(task, spec, target);
        reap_orphans();
        if !proc::is_same_and_alive(task_pid, task_start) {
            return;
        }
        state.record(result, began.since(started), spec);
        if let Err(e) = layout::write_json_atomic(&task.file(layout::HEALTH), &state.record) {
            eprintln!("shoal shim: recording health: {e}");
        }
    }
}

fn reap_orphans() {
    while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

fn failed(why: impl Into<String>) -> CheckResult {
    CheckResult {
        exit: -1,
        output: why.into(),
    }
}

/// Runs the check once with its timeout; output (stdout and stderr together) goes through a
/// file so a chatty check can never block on a full pipe.
fn run_once(task: &TaskDir, spec: &HealthSpec, target: &Target) -> CheckResult {
    let out_path = task.file("health.out");
    let out = match std::fs::File::create(&out_path) {
        Ok(f) => f,
        Err(e) => return failed(format!("health check output: {e}")),
    };
    let err = match out.try_clone() {
        Ok(f) => f,
        Err(e) => return failed(format!("health check output: {e}")),
    };
    let mut cmd = match target {
        Target::Oci {
            runtime,
            state_root,
            process,
            id,
        } => {
            let mut c = Command::new(runtime);
            c.arg("--root")
                .arg(state_root)
                .arg("exec")
                .arg("--process")
                .arg(process)
                .arg(id);
            c
        }
        Target::Host {
            pid,
            start_time,
            cfg,
        } => match host_command(*pid, *start_time, cfg, &spec.argv) {
            Ok(c) => c,
            Err(e) => return failed(e),
        },
    };
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("running the health check: {e}")),
    };
    drop(cmd);
    let pid = child.id() as i32;
    let exited = proc::stat(pid)
        .and_then(|st| {
            proc::PidFd::open_verified(pid, st.start_time)
                .ok()
                .flatten()
        })
        .map(|fd| {
            let raw = fd.raw();
            let mut fds = [PollFd::new(raw.as_fd(), PollFlags::POLLIN)];
            let ms = u16::try_from(spec.timeout.as_millis()).unwrap_or(u16::MAX);
            // Timeouts beyond u16 ms (65 s) are polled again until the deadline.
            let deadline = SystemClock.now().add(spec.timeout);
            loop {
                match poll(&mut fds, PollTimeout::from(ms)) {
                    Ok(n) if n > 0 => return true,
                    Ok(_) | Err(nix::Error::EINTR) => {}
                    Err(_) => return false,
                }
                if SystemClock.now() >= deadline {
                    return false;
                }
            }
        })
        .unwrap_or(false);
    if !exited && matches!(child.try_wait(), Ok(None)) {
        // Kill the whole process group so a `sh -c` check's children go too.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.kill();
        let _ = child.wait();
        return failed(format!(
            "Health check exceeded timeout ({:?})",
            spec.timeout
        ));
    }
    let code = match child.wait() {
        Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
            (Some(c), _) => i64::from(c),
            (None, Some(sig)) => 128 + i64::from(sig),
            (None, None) => -1,
        },
        Err(e) => return failed(format!("waiting for the health check: {e}")),
    };
    let bytes = std::fs::read(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let take = bytes.len().min(MAX_OUTPUT);
    CheckResult {
        exit: code,
        output: String::from_utf8_lossy(&bytes[..take]).into_owned(),
    }
}

/// A command that runs `argv` inside a `host` task, as the task's user in its directory.
fn host_command(
    pid: i32,
    start: u64,
    cfg: &ShimConfig,
    argv: &[String],
) -> Result<Command, String> {
    super::exec::enter_task(
        pid,
        start,
        cfg,
        argv,
        &cfg.env,
        &cfg.dir,
        cfg.creds.as_ref(),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(retries: u64, start_period: u64) -> HealthSpec {
        HealthSpec {
            argv: vec!["true".into()],
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            start_period: Duration::from_secs(start_period),
            retries,
        }
    }

    fn ok() -> CheckResult {
        CheckResult {
            exit: 0,
            output: "fine".into(),
        }
    }

    fn bad() -> CheckResult {
        CheckResult {
            exit: 1,
            output: "broken".into(),
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn starting_until_the_first_success_then_healthy() {
        let sp = spec(3, 0);
        let mut h = HealthState::new();
        assert_eq!(h.record.status, HealthStatus::Starting);
        h.record(bad(), S(1), &sp);
        assert_eq!(h.record.status, HealthStatus::Starting);
        assert_eq!(h.record.failing_streak, 1);
        h.record(ok(), S(2), &sp);
        assert_eq!(h.record.status, HealthStatus::Healthy);
        assert_eq!(h.record.failing_streak, 0);
        assert_eq!(h.record.last_output, "fine");
    }

    #[test]
    fn retries_consecutive_failures_make_it_unhealthy_and_a_success_heals() {
        let sp = spec(3, 0);
        let mut h = HealthState::new();
        h.record(ok(), S(1), &sp);
        h.record(bad(), S(2), &sp);
        h.record(bad(), S(3), &sp);
        assert_eq!(h.record.status, HealthStatus::Healthy);
        h.record(bad(), S(4), &sp);
        assert_eq!(h.record.status, HealthStatus::Unhealthy);
        assert_eq!(h.record.failing_streak, 3);
        assert_eq!(h.record.last_output, "broken");
        assert_eq!(h.record.last_exit, 1);
        h.record(ok(), S(5), &sp);
        assert_eq!(h.record.status, HealthStatus::Healthy);
    }

    #[test]
    fn failures_in_the_start_period_do_not_count_until_a_success() {
        let sp = spec(1, 10);
        let mut h = HealthState::new();
        for t in 1..10 {
            h.record(bad(), S(t), &sp);
        }
        assert_eq!(h.record.status, HealthStatus::Starting);
        assert_eq!(h.record.failing_streak, 0);
        // After the start period a failure counts.
        h.record(bad(), S(10), &sp);
        assert_eq!(h.record.status, HealthStatus::Unhealthy);

        // A success ends the start period early: the next failure counts at once.
        let mut h = HealthState::new();
        h.record(ok(), S(1), &sp);
        h.record(bad(), S(2), &sp);
        assert_eq!(h.record.status, HealthStatus::Unhealthy);
    }

    #[test]
    fn output_is_truncated_on_a_char_boundary() {
        let mut h = HealthState::new();
        let long = "é".repeat(MAX_OUTPUT);
        h.record(
            CheckResult {
                exit: 1,
                output: long,
            },
            S(1),
            &spec(3, 0),
        );
        assert!(h.record.last_output.len() <= MAX_OUTPUT);
        assert!(h.record.last_output.len() >= MAX_OUTPUT - 1);
    }
}
