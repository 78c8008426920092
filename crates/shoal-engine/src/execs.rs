//! Exec instances: made by `POST /containers/{id}/exec`, started once by `POST /exec/{id}/start`,
//! inspected by `GET /exec/{id}/json` (its exit code once it ended), resized while it runs. An
//! instance is forgotten with its container, or a while after it ended ([`KEEP_ENDED`]), as
//! Docker forgets them.
//!
//! Concurrency: one mutex around the table, never held across an await; each instance's
//! handle is shared, so a wait and a resize can run beside the copy of its streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use shoal_control::engine::{EngineError, ExecConfig, ExecInfo, ExecStreams};
use shoal_runtime::RuntimeDriver;
use shoal_runtime::exec::{ExecHandle, ExecSpec};
use shoal_types::{Id, Timestamp};

use crate::from_runtime;

/// How long an ended instance stays inspectable.
pub const KEEP_ENDED: Duration = Duration::from_secs(600);

enum Phase {
    Created,
    Running(Arc<dyn ExecHandle>),
    Ended { code: i64, pid: i64, at: Timestamp },
}

struct Instance {
    container_id: String,
    task: Id,
    config: ExecConfig,
    phase: Phase,
}

#[derive(Default)]
pub struct Execs {
    table: Mutex<HashMap<String, Instance>>,
}

impl Execs {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Instance>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new instance `id` in the running container `container_id` (task `task`).
    pub fn create(
        &self,
        id: String,
        container_id: String,
        task: Id,
        config: ExecConfig,
        now: Timestamp,
    ) -> String {
        let mut t = self.lock();
        t.retain(|_, i| match i.phase {
            Phase::Ended { at, .. } => now.since(at) < KEEP_ENDED,
            _ => true,
        });
        t.insert(
            id.clone(),
            Instance {
                container_id,
                task,
                config,
                phase: Phase::Created,
            },
        );
        id
    }

    pub fn forget_container(&self, container_id: &str) {
        self.lock().retain(|_, i| i.container_id != container_id);
    }

    fn find(&self, id: &str) -> Result<(String, ExecConfig, Id, String), EngineError> {
        let t = self.lock();
        let i = t
            .get(id)
            .ok_or_else(|| EngineError::NoSuchExec(id.to_string()))?;
        Ok((
            id.to_string(),
            i.config.clone(),
            i.task.clone(),
            i.container_id.clone(),
        ))
    }

    pub async fn start(
        &self,
        id: &str,
        driver: &dyn RuntimeDriver,
    ) -> Result<ExecStreams, EngineError> {
        let (id, config, task, container) = self.find(id)?;
        {
            let mut t = self.lock();
            let i = t
                .get_mut(&id)
                .ok_or_else(|| EngineError::NoSuchExec(id.clone()))?;
            if !matches!(i.phase, Phase::Created) {
                return Err(EngineError::Conflict(format!(
                    "Error: Exec command {id} has already run"
                )));
            }
            // Claimed before the await, so a second start is refused, not run twice.
            i.phase = Phase::Ended {
                code: -1,
                pid: 0,
                at: Timestamp::ZERO,
            };
        }
        let spec = ExecSpec {
            cmd: config.cmd.clone(),
            env: config.env.clone(),
            user: config.user.clone(),
            workdir: config.workdir.clone(),
            tty: config.tty,
            stdin: config.attach_stdin,
            size: config.console_size,
        };
        let started = driver.exec(&task, spec).await;
        let mut t = self.lock();
        let Some(i) = t.get_mut(&id) else {
            return Err(EngineError::NoSuchExec(id));
        };
        match started {
            Ok(p) => {
                i.phase = Phase::Running(p.handle.clone());
                Ok(ExecStreams {
                    input: p.input,
                    output: p.output,
                    tty: config.tty,
                })
            }
            Err(e) => {
                i.phase = Phase::Ended {
                    code: 126,
                    pid: 0,
                    at: Timestamp::ZERO,
                };
                Err(from_runtime(&container, e))
            }
        }
    }

    fn handle(&self, id: &str) -> Result<Option<Arc<dyn ExecHandle>>, EngineError> {
        let t = self.lock();
        let i = t
            .get(id)
            .ok_or_else(|| EngineError::NoSuchExec(id.to_string()))?;
        Ok(match &i.phase {
            Phase::Running(h) => Some(h.clone()),
            _ => None,
        })
    }

    /// Waits for a running instance's end and records it; an ended one's code at once. True
    /// with the code when this call recorded the end (so it is told once).
    pub async fn wait(&self, id: &str) -> Result<(i64, bool), EngineError> {
        let Some(h) = self.handle(id)? else {
            return match self.lock().get(id).map(|i| &i.phase) {
                Some(Phase::Ended { code, .. }) => Ok((*code, false)),
                Some(_) => Err(EngineError::Conflict(format!(
                    "exec {id} has not been started"
                ))),
                None => Err(EngineError::NoSuchExec(id.to_string())),
            };
        };
        let code = h
            .wait()
            .await
            .map_err(|e| EngineError::Internal(shoal_types::error::chain(&e)))?;
        let pid = h.pid();
        let mut first = false;
        if let Some(i) = self.lock().get_mut(id)
            && matches!(i.phase, Phase::Running(_))
        {
            first = true;
            i.phase = Phase::Ended {
                code,
                pid,
                at: shoal_types::Clock::now(&shoal_types::clock::SystemClock),
            };
        }
        Ok((code, first))
    }

    pub async fn resize(&self, id: &str, rows: u16, cols: u16) -> Result<(), EngineError> {
        let config = self.find(id)?.1;
        if !config.tty {
            return Err(EngineError::Conflict(format!(
                "exec {id} was started without a TTY: there is no terminal to resize"
            )));
        }
        match self.handle(id)? {
            Some(h) => h.resize(rows, cols).await.map_err(|e| from_runtime(id, e)),
            None => Err(EngineError::Conflict(format!("exec {id} is not running"))),
        }
    }

    pub fn inspect(&self, id: &str) -> Result<ExecInfo, EngineError> {
        let t = self.lock();
        let i = t
            .get(id)
            .ok_or_else(|| EngineError::NoSuchExec(id.to_string()))?;
        let (running, exit_code, pid) = match &i.phase {
            Phase::Created => (false, None, 0),
            Phase::Running(h) => (true, None, h.pid()),
            Phase::Ended { code, pid, .. } => (false, Some(*code), *pid),
        };
        Ok(ExecInfo {
            id: id.to_string(),
            container_id: i.container_id.clone(),
            config: i.config.clone(),
            running,
            exit_code,
            pid,
        })
    }
}
