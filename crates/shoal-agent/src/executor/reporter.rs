//! Batching task status reports to the dispatcher. Task runners push statuses; one flusher task
//! sends what accumulated every `report_interval`, retrying failed batches with backoff.
//!
//! Only the newest status of a task is kept while it waits (as swarmkit's reporter does), and a
//! status is dropped if its state is not after the last one sent or already known to the store,
//! so a state is never reported twice or backwards, even across retries.
//!
//! Concurrency: `push` may be called from any task; one flusher calls `take`/`ack`/`requeue`.
//! The lock is a plain mutex held only for map updates, never across an await.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use shoal_types::dispatch::TaskStatusReport;
use shoal_types::{Id, TaskState, TaskStatus};
use tokio::sync::{Notify, watch};

use crate::DispatcherClient;

const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long a stopping agent keeps trying to deliver its last reports.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

#[derive(Default)]
struct State {
    pending: BTreeMap<Id, TaskStatus>,
    /// The newest state the store has for each task (sent by us, or seen in assignments).
    sent: HashMap<Id, TaskState>,
}

#[derive(Default)]
pub(crate) struct Reporter {
    state: Mutex<State>,
    wake: Notify,
}

impl Reporter {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only maps behind, still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a status; dropped if the store has this state or a later one already.
    pub fn push(&self, task_id: &Id, status: TaskStatus) {
        let mut s = self.lock();
        if s.sent
            .get(task_id)
            .is_some_and(|&sent| status.state <= sent)
        {
            return;
        }
        if s.pending
            .get(task_id)
            .is_some_and(|p| status.state <= p.state)
        {
            return;
        }
        s.pending.insert(task_id.clone(), status);
        drop(s);
        self.wake.notify_one();
    }

    /// Records that the store already has `state` for the task (from an assignment).
    pub fn known(&self, task_id: &Id, state: TaskState) {
        let mut s = self.lock();
        let e = s.sent.entry(task_id.clone()).or_insert(state);
        *e = (*e).max(state);
        let sent = *e;
        if s.pending.get(task_id).is_some_and(|p| p.state <= sent) {
            s.pending.remove(task_id);
        }
    }

    /// Forgets a task that left this node's assignments.
    pub fn forget(&self, task_id: &Id) {
        let mut s = self.lock();
        s.pending.remove(task_id);
        s.sent.remove(task_id);
    }

    fn take(&self) -> Vec<TaskStatusReport> {
        std::mem::take(&mut self.lock().pending)
            .into_iter()
            .map(|(task_id, status)| TaskStatusReport { task_id, status })
            .collect()
    }

    fn ack(&self, batch: &[TaskStatusReport]) {
        let mut s = self.lock();
        for r in batch {
            let e = s.sent.entry(r.task_id.clone()).or_insert(r.status.state);
            *e = (*e).max(r.status.state);
        }
    }

    /// Puts a failed batch back, unless a newer status arrived meanwhile.
    fn requeue(&self, batch: Vec<TaskStatusReport>) {
        let mut s = self.lock();
        for r in batch {
            if s.pending
                .get(&r.task_id)
                .is_some_and(|p| p.state >= r.status.state)
            {
                continue;
            }
            s.pending.insert(r.task_id, r.status);
        }
    }

    pub fn is_idle(&self) -> bool {
        self.lock().pending.is_empty()
    }

    async fn send_once(&self, dispatcher: &dyn DispatcherClient, node_id: &Id) -> bool {
        let batch = self.take();
        if batch.is_empty() {
            return true;
        }
        match dispatcher.report(node_id, batch.clone()).await {
            Ok(()) => {
                self.ack(&batch);
                true
            }
            Err(e) => {
                tracing::warn!(node.id = %node_id, error = %shoal_types::error::Chain(&e), reports = batch.len(), "agent: status report failed; will retry");
                self.requeue(batch);
                false
            }
        }
    }

    /// The flusher: runs until `stop` flips, then delivers what is left (for a few seconds).
    pub async fn run(
        self: Arc<Self>,
        dispatcher: Arc<dyn DispatcherClient>,
        mut node_id: watch::Receiver<Option<Id>>,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut backoff = interval.max(Duration::from_millis(10));
        loop {
            if *stop.borrow() {
                break;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = stop.changed() => continue,
            }
            // Let a burst of transitions collect into one batch.
            tokio::time::sleep(interval).await;
            let node = node_id.borrow().clone();
            let Some(node) = node else {
                // No session yet: wait for one, keeping the reports.
                let _ = node_id.changed().await;
                self.wake.notify_one();
                continue;
            };
            if self.send_once(dispatcher.as_ref(), &node).await {
                backoff = interval.max(Duration::from_millis(10));
            } else {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                self.wake.notify_one();
            }
        }
        let node = node_id.borrow().clone();
        if let Some(node) = node {
            let drain = async {
                while !self.is_idle() {
                    if !self.send_once(dispatcher.as_ref(), &node).await {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            };
            if tokio::time::timeout(FINAL_FLUSH, drain).await.is_err() {
                tracing::warn!(node.id = %node, "agent: gave up delivering the last status reports");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::Timestamp;

    fn status(state: TaskState) -> TaskStatus {
        TaskStatus {
            state,
            timestamp: Timestamp(1),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_newest_and_never_reports_backwards_or_twice() {
        let r = Reporter::default();
        let a = Id::from_raw("a");
        r.push(&a, status(TaskState::Accepted));
        r.push(&a, status(TaskState::Preparing));
        r.push(&a, status(TaskState::Accepted));
        let batch = r.take();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].status.state, TaskState::Preparing);
        r.ack(&batch);
        r.push(&a, status(TaskState::Preparing));
        r.push(&a, status(TaskState::Accepted));
        assert!(r.is_idle(), "already sent or older: dropped");
        r.push(&a, status(TaskState::Ready));
        let batch = r.take();
        // A failed batch goes back, unless something newer is waiting.
        r.push(&a, status(TaskState::Starting));
        r.requeue(batch);
        let batch = r.take();
        assert_eq!(batch[0].status.state, TaskState::Starting);
        r.requeue(batch);
        assert_eq!(r.take()[0].status.state, TaskState::Starting);
    }

    #[test]
    fn store_knowledge_suppresses_reports() {
        let r = Reporter::default();
        let a = Id::from_raw("a");
        r.push(&a, status(TaskState::Starting));
        r.known(&a, TaskState::Running);
        assert!(r.is_idle());
        r.push(&a, status(TaskState::Running));
        assert!(r.is_idle());
        r.push(&a, status(TaskState::Complete));
        assert!(!r.is_idle());
        r.forget(&a);
        assert!(r.is_idle());
    }
}
