//! An in-memory [`RuntimeDriver`] for tests and simulation: no processes, every call recorded.
//! Tasks run until told to exit ([`FakeDriver::exit`]) or stopped. A few spec values provoke
//! failures: image `missing` (any tag) is not found, command `fail-start` fails to start. A task
//! whose spec has a health check starts `starting`; tests move it with [`FakeDriver::set_health`].
//!
//! Concurrency: one mutex around the task table, never held across an await; waiters are woken
//! through a watch channel bumped on every change.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use shoal_types::{Id, Timestamp};
use tokio::sync::watch;

use crate::runtime::{
    ExitInfo, Health, LogLine, LogOptions, LogStream, RuntimeDriver, RuntimeError, RuntimeTask,
    RuntimeTaskState, TaskRun,
};

/// One recorded driver call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeCall {
    Prepare(Id),
    Start(Id),
    Stop(Id, Duration),
    Remove(Id),
}

#[derive(Default)]
struct Inner {
    tasks: BTreeMap<Id, (Option<TaskRun>, RuntimeTaskState)>,
    calls: Vec<FakeCall>,
    next_pid: i64,
    health: BTreeMap<Id, Health>,
}

pub struct FakeDriver {
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
}

impl Default for FakeDriver {
    fn default() -> Self {
        FakeDriver {
            inner: Mutex::new(Inner {
                next_pid: 100,
                ..Default::default()
            }),
            changed: watch::channel(0).0,
        }
    }
}

impl FakeDriver {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Puts a task in the runtime as if a previous agent had left it there.
    pub fn preload(&self, task_id: &Id, state: RuntimeTaskState) {
        self.lock().tasks.insert(task_id.clone(), (None, state));
        self.bump();
    }

    /// Makes a running task exit with `code`.
    pub fn exit(&self, task_id: &Id, code: i64) {
        let mut g = self.lock();
        if let Some((_, st @ RuntimeTaskState::Running { .. })) = g.tasks.get_mut(task_id) {
            *st = RuntimeTaskState::Exited(ExitInfo {
                code,
                signal: None,
                oom_killed: false,
                finished_at: Timestamp(1),
            });
        }
        drop(g);
        self.bump();
    }

    pub fn calls(&self) -> Vec<FakeCall> {
        self.lock().calls.clone()
    }

    pub fn state(&self, task_id: &Id) -> Option<RuntimeTaskState> {
        self.lock().tasks.get(task_id).map(|(_, s)| s.clone())
    }

    /// What the agent last asked to prepare for the task (templates already expanded).
    pub fn run(&self, task_id: &Id) -> Option<TaskRun> {
        self.lock().tasks.get(task_id).and_then(|(r, _)| r.clone())
    }

    /// What the task's health check now says.
    pub fn set_health(&self, task_id: &Id, health: Health) {
        self.lock().health.insert(task_id.clone(), health);
        self.bump();
    }

    /// How many times `start` was called for the task.
    pub fn starts(&self, task_id: &Id) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| **c == FakeCall::Start(task_id.clone()))
            .count()
    }
}

#[async_trait]
impl RuntimeDriver for FakeDriver {
    fn name(&self) -> &'static str {
        "native"
    }

    async fn prepare(&self, run: &TaskRun) -> Result<(), RuntimeError> {
        let mut g = self.lock();
        g.calls.push(FakeCall::Prepare(run.task_id.clone()));
        let image = &run.container.image;
        if image == "missing" || image.starts_with("missing:") {
            return Err(RuntimeError::ImageNotFound(image.clone()));
        }
        g.tasks
            .entry(run.task_id.clone())
            .or_insert_with(|| (Some(run.clone()), RuntimeTaskState::Created));
        drop(g);
        self.bump();
        Ok(())
    }

    async fn start(&self, task_id: &Id) -> Result<i64, RuntimeError> {
        let mut g = self.lock();
        g.calls.push(FakeCall::Start(task_id.clone()));
        let pid = g.next_pid;
        let Some((run, st)) = g.tasks.get_mut(task_id) else {
            return Err(RuntimeError::NotFound(task_id.clone()));
        };
        if let RuntimeTaskState::Running { pid } = st {
            return Ok(*pid);
        }
        if run
            .as_ref()
            .and_then(|r| r.container.command.first())
            .is_some_and(|c| c == "fail-start")
        {
            return Err(RuntimeError::StartFailed(
                "exec: \"fail-start\": executable file not found in $PATH".into(),
            ));
        }
        *st = RuntimeTaskState::Running { pid };
        let checked = run
            .as_ref()
            .and_then(|r| r.container.healthcheck.as_ref())
            .is_some_and(|h| h.argv().is_some());
        g.next_pid += 1;
        if checked {
            g.health.insert(task_id.clone(), Health::Starting);
        }
        drop(g);
        self.bump();
        Ok(pid)
    }

    async fn wait(&self, task_id: &Id) -> Result<ExitInfo, RuntimeError> {
        let mut rx = self.changed.subscribe();
        loop {
            match self.state(task_id) {
                None => return Err(RuntimeError::NotFound(task_id.clone())),
                Some(RuntimeTaskState::Exited(e)) => return Ok(e),
                Some(RuntimeTaskState::Created) => {
                    return Err(RuntimeError::StartFailed(format!(
                        "task {task_id} was never started"
                    )));
                }
                Some(RuntimeTaskState::Running { .. }) => {}
            }
            if rx.changed().await.is_err() {
                return Err(RuntimeError::NotFound(task_id.clone()));
            }
        }
    }

    async fn stop(&self, task_id: &Id, grace: Duration) -> Result<(), RuntimeError> {
        let mut g = self.lock();
        g.calls.push(FakeCall::Stop(task_id.clone(), grace));
        let Some((_, st)) = g.tasks.get_mut(task_id) else {
            return Err(RuntimeError::NotFound(task_id.clone()));
        };
        if let RuntimeTaskState::Running { .. } = st {
            *st = RuntimeTaskState::Exited(ExitInfo {
                code: 143,
                signal: Some(15),
                oom_killed: false,
                finished_at: Timestamp(2),
            });
        }
        drop(g);
        self.bump();
        Ok(())
    }

    async fn remove(&self, task_id: &Id) -> Result<(), RuntimeError> {
        let mut g = self.lock();
        g.calls.push(FakeCall::Remove(task_id.clone()));
        if g.tasks.remove(task_id).is_none() {
            return Err(RuntimeError::NotFound(task_id.clone()));
        }
        drop(g);
        self.bump();
        Ok(())
    }

    async fn list(&self) -> Result<Vec<RuntimeTask>, RuntimeError> {
        Ok(self
            .lock()
            .tasks
            .iter()
            .map(|(id, (_, st))| RuntimeTask {
                task_id: id.clone(),
                state: st.clone(),
            })
            .collect())
    }

    async fn health(&self, task_id: &Id) -> Result<Health, RuntimeError> {
        Ok(self.lock().health.get(task_id).cloned().unwrap_or_default())
    }

    async fn logs(&self, task_id: &Id, _opts: LogOptions) -> Result<LogStream, RuntimeError> {
        if self.state(task_id).is_none() {
            return Err(RuntimeError::NotFound(task_id.clone()));
        }
        use futures::StreamExt;
        Ok(futures::stream::empty::<Result<LogLine, RuntimeError>>().boxed())
    }
}
