//! The task controller's decision: a pure function from (observed status, desired state,
//! runtime facts, now) to the next single step, as swarmkit's `exec.Do` but with the runtime
//! calls turned into values. The task runner performs the step and feeds what it learned back in
//! as new [`Facts`]; nothing here does IO or reads a clock, so every transition is unit-tested.
//!
//! Life cycle: `assigned → accepted → preparing → ready → starting → running → complete|failed`,
//! with `rejected` for errors before `starting` and `shutdown` when the managers ask the task to
//! stop. A step never moves the state backwards, and a terminal state is final.

use std::time::Duration;

use shoal_types::task::RuntimeStatus;
use shoal_types::{TaskState, TaskStatus, Timestamp};

use shoal_runtime::{ExitInfo, Health};

/// What the agent knows the runtime holds for the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Facts {
    /// Nothing: never prepared here (or lost).
    Absent,
    /// Prepared, not started.
    Created,
    Running {
        pid: i64,
        /// As the runtime last reported it; `None` for a task without a health check.
        health: Health,
    },
    /// Ended on its own.
    Exited(ExitInfo),
    /// Ended because the agent stopped it (exit details when the runtime had them).
    Stopped(Option<ExitInfo>),
    /// The last runtime call failed with this error.
    Error(String),
}

impl Facts {
    /// Running, with no health check (or none known yet).
    pub fn running(pid: i64) -> Facts {
        Facts::Running {
            pid,
            health: Health::None,
        }
    }
}

/// A runtime call the runner must make next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Prepare,
    Start,
    /// Await the process's exit or a change of its health (the runner cancels it when the
    /// desired state changes).
    Wait,
    Stop {
        grace: Duration,
    },
    /// Stop the task because it is unhealthy; it then failed with `err`.
    Kill {
        grace: Duration,
        err: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Move to this status (report it).
    Report(TaskStatus),
    /// Make this runtime call, then step again with what it returned.
    Run(Op),
    /// Nothing to do until the desired state or the facts change.
    Idle,
}

/// The error a task replaced for failing its health check shows (Swarm's says
/// "dockerexec: unhealthy container"), with the check's last output.
pub fn unhealthy_error(output: &str) -> String {
    let output = output.trim();
    if output.is_empty() {
        "task: unhealthy container".to_string()
    } else {
        format!("task: unhealthy container: {output}")
    }
}

/// The error text Swarm shows for a task whose process exited with a non-zero code.
pub fn exit_error(exit: &ExitInfo) -> String {
    let mut s = format!("task: non-zero exit ({})", exit.code);
    if exit.oom_killed {
        s.push_str(": OOM killed");
    }
    s
}

fn runtime_status(
    container_id: &str,
    facts: &Facts,
    prev: Option<&RuntimeStatus>,
) -> Option<RuntimeStatus> {
    if prev.is_none() && matches!(facts, Facts::Absent | Facts::Error(_)) {
        return None;
    }
    let pid = match facts {
        Facts::Running { pid, .. } => *pid,
        _ => prev.map_or(0, |r| r.pid),
    };
    let exit_code = match facts {
        Facts::Exited(e) | Facts::Stopped(Some(e)) => Some(e.code),
        _ => prev.and_then(|r| r.exit_code),
    };
    Some(RuntimeStatus {
        container_id: container_id.to_string(),
        pid,
        exit_code,
    })
}

/// The next step for one task. `stop_grace` is the spec's effective grace period.
pub fn step(
    status: &TaskStatus,
    desired: TaskState,
    facts: &Facts,
    stop_grace: Duration,
    container_id: &str,
    now: Timestamp,
) -> Step {
    if status.state.is_terminal() {
        // A terminal state is final and never reported again. But if the managers already
        // consider the task ended (orphaned while the node was away, say) and its process still
        // runs, it must stop: a replacement may be running elsewhere.
        return match facts {
            Facts::Running { .. } => Step::Run(Op::Stop { grace: stop_grace }),
            _ => Step::Idle,
        };
    }
    let to = |state: TaskState, message: &str, err: String| {
        // A state never moves backwards; a step that would is no step at all.
        if state <= status.state {
            return Step::Idle;
        }
        Step::Report(TaskStatus {
            state,
            timestamp: now,
            message: message.to_string(),
            err,
            runtime: runtime_status(container_id, facts, status.runtime.as_ref()),
        })
    };
    let ended = |exit: &ExitInfo| {
        if exit.code == 0 {
            to(TaskState::Complete, "finished", String::new())
        } else {
            to(TaskState::Failed, "failed", exit_error(exit))
        }
    };
    let fatal = |err: &str| {
        let state = if status.state < TaskState::Starting {
            TaskState::Rejected
        } else {
            TaskState::Failed
        };
        to(state, state.as_str(), err.to_string())
    };

    if desired >= TaskState::Shutdown {
        return match facts {
            Facts::Error(err) => fatal(err),
            Facts::Running { .. } => Step::Run(Op::Stop { grace: stop_grace }),
            Facts::Stopped(_) => to(TaskState::Shutdown, "shutdown", String::new()),
            // It had already ended on its own: that is how it ended.
            Facts::Exited(exit) => ended(exit),
            Facts::Absent | Facts::Created => to(TaskState::Shutdown, "shutdown", String::new()),
        };
    }

    if let Facts::Error(err) = facts {
        return fatal(err);
    }
    match status.state {
        TaskState::New | TaskState::Pending | TaskState::Assigned => {
            to(TaskState::Accepted, "accepted", String::new())
        }
        TaskState::Accepted => to(TaskState::Preparing, "preparing", String::new()),
        TaskState::Preparing => match facts {
            Facts::Absent => Step::Run(Op::Prepare),
            // Prepared (or, when adopted, already further along).
            _ => to(TaskState::Ready, "prepared", String::new()),
        },
        // Tasks created with desired state `ready` are prepared but wait to be started.
        TaskState::Ready if desired < TaskState::Running => Step::Idle,
        TaskState::Ready => to(TaskState::Starting, "starting", String::new()),
        TaskState::Starting => match facts {
            // The runtime lost what was prepared (or never had it): prepare again, idempotently.
            Facts::Absent => Step::Run(Op::Prepare),
            Facts::Created => Step::Run(Op::Start),
            // A task with a health check is `starting` until the check passes (as Swarm).
            Facts::Running {
                health: Health::Starting,
                ..
            } => Step::Run(Op::Wait),
            Facts::Running {
                health: Health::Unhealthy(out),
                ..
            } => Step::Run(Op::Kill {
                grace: stop_grace,
                err: unhealthy_error(out),
            }),
            _ => to(TaskState::Running, "started", String::new()),
        },
        TaskState::Running => match facts {
            Facts::Running {
                health: Health::Unhealthy(out),
                ..
            } => Step::Run(Op::Kill {
                grace: stop_grace,
                err: unhealthy_error(out),
            }),
            Facts::Running { .. } => Step::Run(Op::Wait),
            Facts::Exited(exit) => ended(exit),
            Facts::Stopped(_) => to(TaskState::Shutdown, "shutdown", String::new()),
            Facts::Absent | Facts::Created => {
                fatal("task: the runtime no longer has this task's process")
            }
            Facts::Error(err) => fatal(err),
        },
        _ => Step::Idle,
    }
}

#[cfg(test)]
#[path = "controller_tests.rs"]
mod tests;
