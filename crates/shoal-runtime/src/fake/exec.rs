//! The fake's exec, signals, processes and usage. An exec runs its argv in the task's shell
//! (see `proc`) on the task's files, with the task's environment plus its own; with stdin it
//! reads the input to its end before running (what `cat` without arguments prints). Usage is
//! what the fake can count: processes, and memory as the task's limit allows.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use shoal_types::Id;
use tokio::sync::watch;

use super::{FakeDriver, Node, proc};
use crate::exec::{ExecHandle, ExecProcess, ExecSpec, TaskStats};
use crate::{RuntimeError, RuntimeTaskState};

impl FakeDriver {
    /// The running task's pid, or `NotFound` / `NotRunning`.
    fn running_pid(&self, task_id: &Id) -> Result<i64, RuntimeError> {
        match self.state(task_id) {
            None => Err(RuntimeError::NotFound(task_id.clone())),
            Some(RuntimeTaskState::Running { pid }) => Ok(pid),
            Some(_) => Err(RuntimeError::NotRunning(task_id.clone())),
        }
    }

    pub(super) fn exec_in(
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
        let pid = self.running_pid(task_id)?;
        let mut env = self
            .run(task_id)
            .map(|r| r.container.env)
            .unwrap_or_default();
        env.extend(spec.env.iter().cloned());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (input, reader) = if spec.stdin {
            let (w, r) = tokio::io::duplex(64 * 1024);
            (Some(Box::pin(w) as crate::exec::ExecInput), Some(r))
        } else {
            (None, None)
        };
        let (done_tx, done_rx) = watch::channel(None);
        let node: Arc<Node> = self.node.clone();
        let (task, argv, tty) = (task_id.clone(), spec.cmd.clone(), spec.tty);
        tokio::spawn(async move {
            let code = proc::run_exec(&node, &task, argv, env, tty, reader, tx).await;
            done_tx.send_replace(Some(code));
        });
        let output = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (Ok(chunk), rx))
        })
        .boxed();
        Ok(ExecProcess {
            input,
            output,
            handle: Arc::new(FakeExec {
                pid,
                tty: spec.tty,
                done: done_rx,
            }),
        })
    }

    pub(super) fn signal_task(&self, task_id: &Id, signal: i32) -> Result<(), RuntimeError> {
        self.running_pid(task_id)?;
        self.node.kill(task_id, signal);
        Ok(())
    }

    pub(super) fn task_processes(&self, task_id: &Id) -> Result<Vec<i64>, RuntimeError> {
        let pid = self.running_pid(task_id)?;
        let procs = self.lock().tasks.get(task_id).map_or(1, |t| t.procs.max(1));
        Ok((0..procs).map(|i| pid + i * 1000).collect())
    }

    pub(super) fn task_stats(&self, task_id: &Id) -> Result<TaskStats, RuntimeError> {
        self.running_pid(task_id)?;
        let g = self.lock();
        let t = g.tasks.get(task_id);
        let limit = t
            .and_then(|t| t.run.as_ref())
            .map(|r| r.resources.limits.memory_bytes)
            .and_then(|m| u64::try_from(m).ok())
            .filter(|m| *m > 0)
            .unwrap_or(256 << 20);
        let procs = t.map_or(1, |t| t.procs.max(1));
        drop(g);
        Ok(TaskStats {
            read: self.node.now(),
            memory_limit: limit,
            pids: u64::try_from(procs).unwrap_or(1),
            ..Default::default()
        })
    }
}

struct FakeExec {
    pid: i64,
    tty: bool,
    done: watch::Receiver<Option<i64>>,
}

#[async_trait]
impl ExecHandle for FakeExec {
    fn pid(&self) -> i64 {
        self.pid
    }

    async fn resize(&self, _rows: u16, _cols: u16) -> Result<(), RuntimeError> {
        if self.tty {
            Ok(())
        } else {
            Err(RuntimeError::InvalidSpec {
                field: "tty",
                why: "the exec has no TTY to resize (it was started without one)".into(),
            })
        }
    }

    async fn wait(&self) -> Result<i64, RuntimeError> {
        let mut rx = self.done.clone();
        let r = rx.wait_for(|c| c.is_some()).await;
        match r {
            Ok(c) => Ok((*c).unwrap_or(-1)),
            Err(_) => Ok(137),
        }
    }
}
