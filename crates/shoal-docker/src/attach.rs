//! Attaching to a task's container (`/containers/{id}/attach`, hijacked): the engine streams its
//! process's output from the attachment on (from its start when attached before it, which the
//! engine allows for a created or exited container), takes its stdin when the container was
//! made with `OpenStdin` (and, made with `StdinOnce` as `docker run -i` makes it, closes it when
//! the client's input ends), and resizes its terminal (`/containers/{id}/resize`).
//!
//! The exit code is the engine's once the run attached to has ended: the container's state is
//! read until it is no longer running and its run is not the one that had ended before the
//! attachment (its `FinishedAt` moved on).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::query_parameters::{
    AttachContainerOptions, ResizeContainerTTYOptions, WaitContainerOptions,
};
use futures::StreamExt;
use shoal_runtime::exec::{ExecHandle, ExecOutput, ExecProcess};
use shoal_runtime::{LogStreamKind, RuntimeError};
use shoal_types::Id;

use crate::{DockerDriver, api_err, status_of};

/// How often `wait` looks at a container that has not started the run attached to yet.
const START_POLL: Duration = Duration::from_millis(100);

impl DockerDriver {
    pub(crate) async fn attach_to(&self, task_id: &Id) -> Result<ExecProcess, RuntimeError> {
        let c = self.inspect(task_id).await?;
        let id =
            c.id.clone()
                .ok_or_else(|| RuntimeError::NotFound(task_id.clone()))?;
        let config = c.config.clone().unwrap_or_default();
        let (tty, open_stdin) = (
            config.tty.unwrap_or(false),
            config.open_stdin.unwrap_or(false),
        );
        let state = c.state.clone().unwrap_or_default();
        let ended_before = state.finished_at.clone().unwrap_or_default();
        // The hijacked stream lives as long as the process; bollard bounds only the upgrade.
        let attached = self
            .docker
            .attach_container(
                &id,
                Some(AttachContainerOptions {
                    stream: true,
                    logs: false,
                    stdin: open_stdin,
                    stdout: true,
                    stderr: true,
                    detach_keys: None,
                }),
            )
            .await
            .map_err(|e| match status_of(&e) {
                Some(404) => RuntimeError::NotFound(task_id.clone()),
                _ => api_err(format!("attaching to task {task_id}"), e),
            })?;
        let doing = format!("the output of task {task_id}");
        let output: ExecOutput = attached
            .output
            .filter_map(move |item| {
                let doing = doing.clone();
                async move {
                    match item {
                        Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                            Some(Ok((LogStreamKind::Stdout, message)))
                        }
                        Ok(LogOutput::StdErr { message }) => {
                            Some(Ok((LogStreamKind::Stderr, message)))
                        }
                        Ok(LogOutput::StdIn { .. }) => None,
                        Err(e) => Some(Err(api_err(doing, e))),
                    }
                }
            })
            .boxed();
        Ok(ExecProcess {
            input: open_stdin.then_some(attached.input),
            output,
            handle: Arc::new(DockerAttach {
                docker: self.docker.clone(),
                id,
                task: task_id.clone(),
                tty,
                ended_before,
            }),
        })
    }
}

struct DockerAttach {
    docker: bollard::Docker,
    id: String,
    task: Id,
    tty: bool,
    /// The container's `FinishedAt` when attached: a run that ended then is not the one
    /// attached to.
    ended_before: String,
}

#[async_trait]
impl ExecHandle for DockerAttach {
    fn pid(&self) -> i64 {
        0
    }

    async fn resize(&self, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        if !self.tty {
            return Err(RuntimeError::InvalidSpec {
                field: "tty",
                why: "the task has no TTY to resize (its spec does not ask for one)".into(),
            });
        }
        self.docker
            .resize_container_tty(
                &self.id,
                ResizeContainerTTYOptions {
                    h: i32::from(rows),
                    w: i32::from(cols),
                },
            )
            .await
            .map_err(|e| api_err(format!("resizing the terminal of task {}", self.task), e))
    }

    async fn wait(&self) -> Result<i64, RuntimeError> {
        // The wait call has no deadline of its own: a task may run for months.
        let patient = self
            .docker
            .clone()
            .with_timeout(Duration::from_secs(u64::from(u32::MAX)));
        loop {
            let c = match self.docker.inspect_container(&self.id, None).await {
                Ok(c) => c,
                Err(e) if status_of(&e) == Some(404) => {
                    return Err(RuntimeError::NotFound(self.task.clone()));
                }
                Err(e) => return Err(api_err(format!("inspecting task {}", self.task), e)),
            };
            let st = c.state.unwrap_or_default();
            let finished = st.finished_at.unwrap_or_default();
            if st.running == Some(true) {
                let mut w = patient.wait_container(
                    &self.id,
                    Some(WaitContainerOptions {
                        condition: "not-running".into(),
                    }),
                );
                // A non-zero exit comes back as an error; the state read next has the code.
                let _ = w.next().await;
                continue;
            }
            if finished != self.ended_before && !finished.starts_with("0001-") {
                return Ok(st.exit_code.unwrap_or(-1));
            }
            tokio::time::sleep(START_POLL).await;
        }
    }
}
