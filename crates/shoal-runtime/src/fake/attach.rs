//! Attaching to a fake task's own process: the client's output is what the task's log gets
//! (its attachers are fed where the log is written, `Node::log`), from the run it attached to:
//! the current one, or the next one when the task is not running. With `open_stdin` what the
//! client writes is the process's stdin (kept for its start when written before it, and
//! closed when the client shuts its input down); with `tty` it is echoed as a terminal does, and
//! a resize is what `stty size` prints.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use shoal_types::Id;

use super::{FakeDriver, Node, stdio};
use crate::exec::{ExecHandle, ExecInput, ExecProcess};
use crate::{LogStreamKind, RuntimeError, RuntimeTaskState};

impl Node {
    pub(super) fn tty_size(&self, task: &Id) -> (u16, u16) {
        self.lock().tasks.get(task).map_or((0, 0), |t| t.tty_size)
    }

    /// Input from an attached client: to the running process, or kept for its start.
    fn stdin_write(&self, task: &Id, data: &[u8], tty: bool) {
        let mut g = self.lock();
        let Some(t) = g.tasks.get_mut(task) else {
            return;
        };
        match &t.stdin_tx {
            Some(tx) if matches!(t.state, RuntimeTaskState::Running { .. }) => {
                let _ = tx.send(Bytes::copy_from_slice(data));
            }
            _ if !matches!(t.state, RuntimeTaskState::Running { .. }) => {
                t.stdin_early.extend_from_slice(data);
            }
            // Its input was closed: written into nothing.
            _ => return,
        }
        let running = matches!(t.state, RuntimeTaskState::Running { .. });
        drop(g);
        if tty && running {
            // The terminal echoes what is typed.
            self.log(task, LogStreamKind::Stdout, &stdio::on_terminal(data));
        }
        self.bump();
    }

    fn stdin_close(&self, task: &Id) {
        let mut g = self.lock();
        if let Some(t) = g.tasks.get_mut(task) {
            if matches!(t.state, RuntimeTaskState::Running { .. }) {
                t.stdin_tx = None;
            } else {
                t.stdin_closed = true;
            }
        }
        drop(g);
        self.bump();
    }
}

impl FakeDriver {
    pub(super) fn attach_to(&self, task_id: &Id) -> Result<ExecProcess, RuntimeError> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut g = self.lock();
        let t = g
            .tasks
            .get_mut(task_id)
            .ok_or_else(|| RuntimeError::NotFound(task_id.clone()))?;
        let (tty, open_stdin) = t.run.as_ref().map_or((false, false), |r| {
            (r.container.tty, r.container.open_stdin)
        });
        let run = match t.state {
            RuntimeTaskState::Running { .. } => t.run_gen,
            _ => t.run_gen + 1,
        };
        t.attachers.push(tx);
        drop(g);
        let output = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (Ok(chunk), rx))
        })
        .boxed();
        let input = open_stdin.then(|| {
            Box::pin(FakeStdin {
                node: self.node.clone(),
                task: task_id.clone(),
                tty,
            }) as ExecInput
        });
        Ok(ExecProcess {
            input,
            output,
            handle: Arc::new(FakeAttach {
                node: self.node.clone(),
                task: task_id.clone(),
                tty,
                run,
            }),
        })
    }
}

/// What an attached client writes, as the task's stdin.
struct FakeStdin {
    node: Arc<Node>,
    task: Id,
    tty: bool,
}

impl tokio::io::AsyncWrite for FakeStdin {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.node.stdin_write(&self.task, buf, self.tty);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.node.stdin_close(&self.task);
        Poll::Ready(Ok(()))
    }
}

struct FakeAttach {
    node: Arc<Node>,
    task: Id,
    tty: bool,
    /// The run attached to.
    run: u64,
}

#[async_trait]
impl ExecHandle for FakeAttach {
    fn pid(&self) -> i64 {
        match self.node.state(&self.task) {
            Some(RuntimeTaskState::Running { pid }) => pid,
            _ => 0,
        }
    }

    async fn resize(&self, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        if !self.tty {
            return Err(RuntimeError::InvalidSpec {
                field: "tty",
                why: "the task has no TTY to resize (its spec does not ask for one)".into(),
            });
        }
        if let Some(t) = self.node.lock().tasks.get_mut(&self.task) {
            t.tty_size = (rows, cols);
        }
        Ok(())
    }

    async fn wait(&self) -> Result<i64, RuntimeError> {
        let mut rx = self.node.changed.subscribe();
        loop {
            {
                let g = self.node.lock();
                let Some(t) = g.tasks.get(&self.task) else {
                    return Err(RuntimeError::NotFound(self.task.clone()));
                };
                if let RuntimeTaskState::Exited(e) = &t.state
                    && t.run_gen >= self.run
                {
                    return Ok(e.code);
                }
            }
            if rx.changed().await.is_err() {
                return Err(RuntimeError::NotFound(self.task.clone()));
            }
        }
    }
}
