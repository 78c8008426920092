//! The primitives on a fake node's state that the driver, the processes and the archives share:
//! its clock, a task's state and exit, signals from outside, and files as a task's processes
//! see them (its own, its volumes', its binds').

use std::sync::MutexGuard;

use bytes::Bytes;
use shoal_types::{Id, Timestamp};

use super::proc::Place;
use super::{EPOCH_NANOS, Inner, Node, archive};
use crate::{ExitInfo, RuntimeTaskState};

impl Node {
    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    pub(super) fn now(&self) -> Timestamp {
        let since = self.epoch.elapsed().as_nanos();
        Timestamp(EPOCH_NANOS.saturating_add(i64::try_from(since).unwrap_or(i64::MAX)))
    }

    pub(super) fn state(&self, task_id: &Id) -> Option<RuntimeTaskState> {
        self.lock().tasks.get(task_id).map(|t| t.state.clone())
    }

    /// Ends a running task's process.
    pub(super) fn exited(&self, task_id: &Id, code: i64, signal: Option<i32>, oom_killed: bool) {
        self.exited_run(task_id, None, code, signal, oom_killed);
    }

    /// Ends the task's process when `run` (given: a run of the task's) is still its current run.
    pub(super) fn exited_run(
        &self,
        task_id: &Id,
        run: Option<u64>,
        code: i64,
        signal: Option<i32>,
        oom_killed: bool,
    ) {
        let finished_at = self.now();
        let mut g = self.lock();
        if let Some(t) = g.tasks.get_mut(task_id)
            && let RuntimeTaskState::Running { .. } = t.state
            && run.is_none_or(|r| r == t.run_gen)
        {
            // The run's streams end with it.
            t.attachers.clear();
            t.stdin_tx = None;
            t.state = RuntimeTaskState::Exited(ExitInfo {
                code,
                signal,
                oom_killed,
                finished_at,
            });
        }
        drop(g);
        self.bump();
    }

    /// Delivers a signal from outside the task, as `kill` on the node does.
    pub(super) fn kill(&self, task_id: &Id, signal: i32) {
        let mut g = self.lock();
        let Some(t) = g.tasks.get_mut(task_id) else {
            return;
        };
        if !matches!(t.state, RuntimeTaskState::Running { .. }) {
            return;
        }
        let scripted = t.scripted;
        if scripted && signal != 9 {
            t.signals.push(signal);
            drop(g);
            self.bump();
            return;
        }
        drop(g);
        // SIGKILL, or an opaque process, which dies of any signal.
        self.exited(task_id, 128 + i64::from(signal), Some(signal), false);
    }

    pub(super) fn read_file(&self, task_id: &Id, path: &str) -> Option<Bytes> {
        let g = self.lock();
        let t = g.tasks.get(task_id)?;
        match t.place(path).0 {
            Place::Task(p) => t.files.get(&p).cloned(),
            Place::Volume(v, p) => g.volumes.get(&v)?.files.get(&p).cloned(),
            Place::Host(p) => g.host_files.get(&p).cloned(),
        }
    }

    pub(super) fn write_file(
        &self,
        task_id: &Id,
        path: &str,
        data: &[u8],
        append: bool,
    ) -> Result<(), String> {
        let now = self.now();
        let mut g = self.lock();
        let g = &mut *g;
        let t = g.tasks.get_mut(task_id).ok_or("no such task")?;
        let (place, writable) = t.place(path);
        if !writable {
            return Err(format!("can't create {path}: Read-only file system"));
        }
        let files = match place {
            Place::Task(p) => Some((&mut t.files, p)),
            Place::Volume(v, p) => g.volumes.get_mut(&v).map(|v| (&mut v.files, p)),
            Place::Host(p) => Some((&mut g.host_files, p)),
        };
        let (files, p) = files.ok_or_else(|| format!("can't create {path}: No such volume"))?;
        let mut content = if append {
            files.get(&p).map(|b| b.to_vec()).unwrap_or_default()
        } else {
            Vec::new()
        };
        content.extend_from_slice(data);
        files.insert(p, Bytes::from(content));
        let m = t
            .meta
            .entry(path.to_string())
            .or_insert_with(|| archive::Meta::file(0o644, now));
        m.mtime = now;
        Ok(())
    }

    pub(super) fn remove_file(&self, task_id: &Id, path: &str) -> bool {
        let mut g = self.lock();
        let g = &mut *g;
        let Some(t) = g.tasks.get_mut(task_id) else {
            return false;
        };
        t.meta.remove(path);
        match t.place(path) {
            (_, false) => false,
            (Place::Task(p), _) => t.files.remove(&p).is_some(),
            (Place::Volume(v, p), _) => g
                .volumes
                .get_mut(&v)
                .is_some_and(|v| v.files.remove(&p).is_some()),
            (Place::Host(p), _) => g.host_files.remove(&p).is_some(),
        }
    }

    /// Waits until the task is no longer running (or is gone).
    pub(super) async fn until_not_running(&self, task_id: &Id) {
        let mut rx = self.changed.subscribe();
        while matches!(self.state(task_id), Some(RuntimeTaskState::Running { .. })) {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}
