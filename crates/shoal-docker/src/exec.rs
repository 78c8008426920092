//! Exec, signals, processes and usage of a task's container, through the engine's own endpoints:
//! the engine runs the process in the container (`/containers/{id}/exec`, `/exec/{id}/start`
//! hijacked), resizes its terminal and keeps its exit code, which `wait` reads from
//! `/exec/{id}/json` once the engine says it stopped running.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::LogOutput;
use bollard::exec::{ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{ContainerStatsResponse, ExecConfig};
use bollard::query_parameters::{KillContainerOptions, StatsOptions, TopOptions};
use futures::StreamExt;
use shoal_runtime::exec::{ExecHandle, ExecOutput, ExecProcess, ExecSpec, NetworkStats, TaskStats};
use shoal_runtime::{LogStreamKind, RuntimeError};
use shoal_types::Id;

use crate::{DockerDriver, api_err, message_of, status_of};

/// How often `wait` asks the engine whether an exec has finished.
const EXEC_POLL: Duration = Duration::from_millis(20);

impl DockerDriver {
    /// The container of a task whose process runs, or `NotFound` / `NotRunning`.
    async fn running_container(&self, task_id: &Id) -> Result<String, RuntimeError> {
        let id = self.container_of(task_id).await?;
        let c = self.inspect(task_id).await?;
        if c.state.and_then(|s| s.running) != Some(true) {
            return Err(RuntimeError::NotRunning(task_id.clone()));
        }
        Ok(id)
    }

    pub(crate) async fn exec_in(
        &self,
        task_id: &Id,
        spec: ExecSpec,
    ) -> Result<ExecProcess, RuntimeError> {
        if spec.cmd.is_empty() {
            return Err(RuntimeError::InvalidSpec {
                field: "Cmd",
                why: "no command to run".into(),
            });
        }
        let container = self.running_container(task_id).await?;
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let config = ExecConfig {
            attach_stdin: Some(spec.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(spec.tty),
            env: (!spec.env.is_empty()).then(|| spec.env.clone()),
            cmd: Some(spec.cmd.clone()),
            user: nonempty(&spec.user),
            working_dir: nonempty(&spec.workdir),
            console_size: spec
                .size
                .filter(|_| spec.tty)
                .map(|(r, c)| vec![usize::from(r), usize::from(c)]),
            ..Default::default()
        };
        let created =
            self.docker
                .create_exec(&container, config)
                .await
                .map_err(|e| match status_of(&e) {
                    Some(409) => RuntimeError::NotRunning(task_id.clone()),
                    Some(400) => RuntimeError::InvalidSpec {
                        field: "exec",
                        why: message_of(&e),
                    },
                    _ => api_err(format!("creating an exec in task {task_id}"), e),
                })?;
        let started = self
            .docker
            .start_exec(
                &created.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: spec.tty,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(|e| api_err(format!("starting an exec in task {task_id}"), e))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(RuntimeError::StartFailed(
                "the engine started the exec detached".into(),
            ));
        };
        // Engines before API 1.42 ignore ConsoleSize: size the terminal right after the start,
        // as the docker CLI does.
        if let (true, Some((rows, cols))) = (spec.tty, spec.size) {
            let _ = self
                .docker
                .resize_exec(
                    &created.id,
                    ResizeExecOptions {
                        height: rows,
                        width: cols,
                    },
                )
                .await;
        }
        let doing = format!("the output of an exec in task {task_id}");
        let output: ExecOutput = output
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
            input: spec.stdin.then_some(input),
            output,
            handle: Arc::new(DockerExec {
                docker: self.docker.clone(),
                id: created.id,
                tty: spec.tty,
            }),
        })
    }

    pub(crate) async fn signal_task(&self, task_id: &Id, signal: i32) -> Result<(), RuntimeError> {
        let container = self.running_container(task_id).await?;
        self.docker
            .kill_container(
                &container,
                Some(KillContainerOptions {
                    signal: signal.to_string(),
                }),
            )
            .await
            .map_err(|e| match status_of(&e) {
                Some(409) => RuntimeError::NotRunning(task_id.clone()),
                _ => api_err(format!("signalling task {task_id}"), e),
            })
    }

    pub(crate) async fn task_processes(&self, task_id: &Id) -> Result<Vec<i64>, RuntimeError> {
        let container = self.running_container(task_id).await?;
        let top = self
            .docker
            .top_processes(
                &container,
                Some(TopOptions {
                    ps_args: "-o pid".into(),
                }),
            )
            .await
            .map_err(|e| match status_of(&e) {
                Some(409) => RuntimeError::NotRunning(task_id.clone()),
                _ => api_err(format!("listing the processes of task {task_id}"), e),
            })?;
        let mut pids: Vec<i64> = top
            .processes
            .unwrap_or_default()
            .iter()
            .filter_map(|row| row.first()?.trim().parse().ok())
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    pub(crate) async fn task_stats(&self, task_id: &Id) -> Result<TaskStats, RuntimeError> {
        let container = self.running_container(task_id).await?;
        let mut s = self.docker.stats(
            &container,
            Some(StatsOptions {
                stream: false,
                one_shot: true,
            }),
        );
        let first = s
            .next()
            .await
            .ok_or_else(|| RuntimeError::NotRunning(task_id.clone()))?
            .map_err(|e| api_err(format!("reading the usage of task {task_id}"), e))?;
        Ok(to_stats(
            first,
            shoal_types::Clock::now(&shoal_types::clock::SystemClock),
        ))
    }
}

fn to_stats(r: ContainerStatsResponse, now: shoal_types::Timestamp) -> TaskStats {
    let cpu = r.cpu_stats.and_then(|c| c.cpu_usage).unwrap_or_default();
    let mem = r.memory_stats.unwrap_or_default();
    let (mut block_read, mut block_write) = (0, 0);
    for e in r
        .blkio_stats
        .and_then(|b| b.io_service_bytes_recursive)
        .unwrap_or_default()
    {
        match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => block_read += e.value.unwrap_or(0),
            Some("write") => block_write += e.value.unwrap_or(0),
            _ => {}
        }
    }
    let mut networks: Vec<NetworkStats> = r
        .networks
        .unwrap_or_default()
        .into_iter()
        .map(|(name, n)| NetworkStats {
            interface: name,
            rx_bytes: n.rx_bytes.unwrap_or(0),
            rx_packets: n.rx_packets.unwrap_or(0),
            rx_errors: n.rx_errors.unwrap_or(0),
            rx_dropped: n.rx_dropped.unwrap_or(0),
            tx_bytes: n.tx_bytes.unwrap_or(0),
            tx_packets: n.tx_packets.unwrap_or(0),
            tx_errors: n.tx_errors.unwrap_or(0),
            tx_dropped: n.tx_dropped.unwrap_or(0),
        })
        .collect();
    networks.sort_by(|a, b| a.interface.cmp(&b.interface));
    TaskStats {
        read: now,
        cpu_total_ns: cpu.total_usage.unwrap_or(0),
        cpu_user_ns: cpu.usage_in_usermode.unwrap_or(0),
        cpu_system_ns: cpu.usage_in_kernelmode.unwrap_or(0),
        memory_usage: mem.usage.unwrap_or(0),
        memory_limit: mem.limit.unwrap_or(0),
        memory_stat: mem.stats.unwrap_or_default().into_iter().collect(),
        pids: r.pids_stats.and_then(|p| p.current).unwrap_or(0),
        networks,
        block_read,
        block_write,
    }
}

struct DockerExec {
    docker: bollard::Docker,
    id: String,
    tty: bool,
}

#[async_trait]
impl ExecHandle for DockerExec {
    fn pid(&self) -> i64 {
        0
    }

    async fn resize(&self, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        if !self.tty {
            return Err(RuntimeError::InvalidSpec {
                field: "tty",
                why: "the exec has no TTY to resize (it was started without one)".into(),
            });
        }
        self.docker
            .resize_exec(
                &self.id,
                ResizeExecOptions {
                    height: rows,
                    width: cols,
                },
            )
            .await
            .map_err(|e| api_err("resizing the exec's terminal", e))
    }

    async fn wait(&self) -> Result<i64, RuntimeError> {
        loop {
            let i = self
                .docker
                .inspect_exec(&self.id)
                .await
                .map_err(|e| api_err("inspecting the exec", e))?;
            if i.running != Some(true) {
                return Ok(i.exit_code.unwrap_or(-1));
            }
            tokio::time::sleep(EXEC_POLL).await;
        }
    }
}
