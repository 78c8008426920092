//! Waiting for a service to converge (docker's `ServiceProgress`): poll the service, its
//! up-to-date tasks and the nodes every 200 ms, feed the updater, honour the update status
//! (paused, rolling back), wait `UpdateConfig.Monitor` once converged, stop on Ctrl-C.
//!
//! Beyond docker: a finished automatic rollback and tasks that keep failing end the wait with an
//! error (docker exits 0 on the first and waits forever on the second).

use std::collections::HashSet;
use std::io::IsTerminal;
use std::time::Duration;

use bollard_stubs::models::{
    Service, ServiceUpdateStatusStateEnum, Task, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use tokio::time::Instant;

use super::progress::{Quiet, Renderer, Sink, Updater};
use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};
use crate::filters::Filters;

const POLL: Duration = Duration::from_millis(200);
const DEFAULT_MONITOR: Duration = Duration::from_secs(5);
/// Failed tasks per expected task after which we stop waiting.
const FAILURES_PER_TASK: usize = 3;

/// Waits with docker's progress on stdout (nothing when `quiet`). `expect_rollback` is true for a
/// requested rollback, whose completion is success.
pub async fn wait_on_service(
    client: &Client,
    service: &str,
    quiet: bool,
    expect_rollback: bool,
) -> Result<()> {
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let width = terminal_size::terminal_size_of(&stdout)
        .map(|(w, _)| w.0)
        .unwrap_or(0);
    if quiet {
        return progress(client, service, &mut Quiet, expect_rollback).await;
    }
    let mut renderer = Renderer::new(stdout.lock(), tty, width);
    progress(client, service, &mut renderer, expect_rollback).await
}

/// What one poll saw of failures: distinct failed task IDs and the latest error.
#[derive(Default)]
pub struct FailureWatch {
    seen: HashSet<String>,
    last_error: String,
}

impl FailureWatch {
    /// Records failed up-to-date tasks; returns an error once they exceed the budget for
    /// `expected` tasks.
    pub fn observe(
        &mut self,
        service: &str,
        tasks: &[Task],
        expected: usize,
        per_task: usize,
    ) -> Result<()> {
        for t in tasks {
            let state = t.status.as_ref().and_then(|s| s.state);
            if matches!(state, Some(TaskState::FAILED) | Some(TaskState::REJECTED))
                && let Some(id) = &t.id
                && self.seen.insert(id.clone())
            {
                let err = t
                    .status
                    .as_ref()
                    .and_then(|s| s.err.clone())
                    .unwrap_or_default();
                if !err.is_empty() {
                    self.last_error = err;
                }
            }
        }
        let budget = per_task.max(1) * expected.max(1);
        if self.seen.len() >= budget {
            let last = if self.last_error.is_empty() {
                String::new()
            } else {
                format!("; last error: {}", self.last_error)
            };
            return Err(CliError::Failed(format!(
                "service \"{service}\": tasks keep failing ({} failed){last}",
                self.seen.len()
            )));
        }
        Ok(())
    }
}

/// How many failures per task to tolerate: three, fewer when the restart policy gives up sooner
/// (condition `none`: the first failure is final; `MaxAttempts` n: n restarts).
fn failures_per_task(s: &Service) -> usize {
    let policy = s
        .spec
        .as_ref()
        .and_then(|sp| sp.task_template.as_ref())
        .and_then(|t| t.restart_policy.as_ref());
    match policy {
        Some(p) if p.condition == Some(TaskSpecRestartPolicyConditionEnum::NONE) => 1,
        Some(p) => match p
            .max_attempts
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
        {
            Some(n) => (n + 1).min(FAILURES_PER_TASK),
            None => FAILURES_PER_TASK,
        },
        None => FAILURES_PER_TASK,
    }
}

fn expected_tasks(s: &Service, tasks: &[Task]) -> usize {
    let mode = s.spec.as_ref().and_then(|sp| sp.mode.as_ref());
    if let Some(r) = mode
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
    {
        return usize::try_from(r).unwrap_or(1);
    }
    if let Some(j) = mode
        .and_then(|m| m.replicated_job.as_ref())
        .and_then(|j| j.total_completions)
    {
        return usize::try_from(j).unwrap_or(1);
    }
    tasks
        .iter()
        .filter_map(|t| t.node_id.clone())
        .collect::<HashSet<_>>()
        .len()
}

/// The polling loop, writing to any [`Sink`].
pub async fn progress(
    client: &Client,
    service_ref: &str,
    out: &mut dyn Sink,
    expect_rollback: bool,
) -> Result<()> {
    let path = format!("/services/{}", path_escape(service_ref, false));
    let mut updater: Option<Updater> = None;
    let mut converged = false;
    let mut converged_at: Option<Instant> = None;
    let mut rollback = false;
    let mut rollback_message = String::new();
    let mut final_message: Option<String> = None;
    let mut failures = FailureWatch::default();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);

    loop {
        let service: Service = client
            .get(&path, &[("insertDefaults", "false".to_string())])
            .await?;
        let monitor = service
            .spec
            .as_ref()
            .and_then(|s| s.update_config.as_ref())
            .and_then(|u| u.monitor)
            .filter(|m| *m > 0)
            .map(|m| Duration::from_nanos(m.unsigned_abs()))
            .unwrap_or(DEFAULT_MONITOR);
        if updater.is_none() {
            updater = Some(Updater::for_service(&service)?);
        }
        if let Some(status) = &service.update_status {
            let message = status.message.clone().unwrap_or_default();
            match status.state {
                Some(ServiceUpdateStatusStateEnum::UPDATING) => rollback = false,
                Some(ServiceUpdateStatusStateEnum::COMPLETED) if !converged => return Ok(()),
                Some(ServiceUpdateStatusStateEnum::PAUSED) => {
                    return Err(CliError::Failed(format!(
                        "service update paused: {message}"
                    )));
                }
                Some(ServiceUpdateStatusStateEnum::ROLLBACK_STARTED) => {
                    if !rollback && !message.is_empty() {
                        out.line("rollback", &message, None);
                    }
                    rollback = true;
                    rollback_message = message;
                }
                Some(ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED) => {
                    return Err(CliError::Failed(format!(
                        "service rollback paused: {message}"
                    )));
                }
                Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED) => {
                    if !converged {
                        final_message = Some(message.clone());
                    }
                    rollback = true;
                    if rollback_message.is_empty() {
                        rollback_message = message;
                    }
                }
                _ => {}
            }
        }
        if converged && converged_at.is_some_and(|t| t.elapsed() >= monitor) {
            out.line("verify", &format!("Service {service_ref} converged"), None);
            if let Some(m) = &final_message {
                out.message(Some("rollback"), m);
            }
            if rollback && !expect_rollback {
                return Err(CliError::Failed(format!(
                    "service update rolled back: {rollback_message}"
                )));
            }
            return Ok(());
        }

        let id = service.id.clone().unwrap_or_default();
        let mut filters = Filters::new();
        filters.add("service", &id).add("_up-to-date", "true");
        let tasks: Vec<Task> = client.get("/tasks", &filters.query()).await?;
        let active = crate::node::not_down(client).await?;

        let Some(up) = updater.as_mut() else {
            return Err(CliError::Failed("unrecognized service mode".into()));
        };
        converged = up.update(&service, &tasks, &active, rollback, out)?;
        if converged {
            if service.job_status.is_some() {
                out.message(None, "job complete");
                return Ok(());
            }
            let since = *converged_at.get_or_insert_with(Instant::now);
            if let Some(wait) = monitor.checked_sub(since.elapsed()) {
                out.line(
                    "verify",
                    &format!(
                        "Waiting {} seconds to verify that tasks are stable...",
                        wait.as_secs() + 1
                    ),
                    None,
                );
            }
        } else {
            if converged_at.is_some() {
                out.line("verify", "Detected task failure", None);
            }
            converged_at = None;
            let name = service
                .spec
                .as_ref()
                .and_then(|sp| sp.name.as_deref())
                .unwrap_or(service_ref);
            failures.observe(
                name,
                &tasks,
                expected_tasks(&service, &tasks),
                failures_per_task(&service),
            )?;
        }

        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = &mut ctrl_c => {
                if !converged {
                    out.message(None, "Operation continuing in background.");
                    out.message(None, &format!("Use `shoal service ps {service_ref}` to check progress."));
                }
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
#[path = "wait_tests.rs"]
mod tests;
