//! What changed between two snapshots of the [`State`], for loops that want to wake only the
//! objects a write touched.
//!
//! The maps are persistent: a snapshot taken after a write shares every untouched subtree with
//! the one before it, and `imbl`'s ordered diff skips shared subtrees, so a diff costs about what
//! the writes between the two snapshots changed, not the size of the state. Two unrelated states
//! (one rebuilt from a Raft snapshot) share nothing and diff in full, which is still correct.
//!
//! Pure: takes two immutable snapshots, returns plain data.

use imbl::ordmap::DiffItem;
use shoal_types::Id;

use super::State;

/// A task that was added, changed or removed, with where it was before and where it is now, so
/// a watcher can wake the service and node it left as well as the ones it joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskTouch {
    pub id: Id,
    /// `(service, node)` in the older snapshot; `None` when the task is new.
    pub before: Option<(Id, Option<Id>)>,
    /// `(service, node)` in the newer snapshot; `None` when the task was removed.
    pub after: Option<(Id, Option<Id>)>,
}

impl TaskTouch {
    /// The services the task belonged to in either snapshot (one, or two if it moved).
    pub fn services(&self) -> impl Iterator<Item = &Id> {
        let a = self.before.as_ref().map(|(s, _)| s);
        let b = self
            .after
            .as_ref()
            .map(|(s, _)| s)
            .filter(|s| Some(*s) != a);
        a.into_iter().chain(b)
    }

    /// The nodes the task was on in either snapshot.
    pub fn nodes(&self) -> impl Iterator<Item = &Id> {
        let a = self.before.as_ref().and_then(|(_, n)| n.as_ref());
        let b = self
            .after
            .as_ref()
            .and_then(|(_, n)| n.as_ref())
            .filter(|n| Some(*n) != a);
        a.into_iter().chain(b)
    }
}

/// The objects that differ between an older and a newer snapshot, each list in ID order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Nodes added, changed or removed.
    pub nodes: Vec<Id>,
    /// Services added, changed or removed.
    pub services: Vec<Id>,
    pub tasks: Vec<TaskTouch>,
    /// The cluster object was added, changed or removed.
    pub cluster: bool,
    /// Secrets and configs added, changed or removed.
    pub payloads: Vec<Id>,
}

impl Delta {
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
            && self.services.is_empty()
            && self.tasks.is_empty()
            && !self.cluster
            && self.payloads.is_empty()
    }
}

fn place(t: &shoal_types::Task) -> (Id, Option<Id>) {
    (t.service_id.clone(), t.node_id.clone())
}

impl State {
    /// What differs between `older` and `self`. Cheap when `self` was derived from `older` by a
    /// few writes (see the module docs).
    pub fn delta_since(&self, older: &State) -> Delta {
        let mut d = Delta::default();
        for item in older.nodes.diff(&self.nodes) {
            d.nodes.push(match item {
                DiffItem::Add(k, _) | DiffItem::Remove(k, _) => k.clone(),
                DiffItem::Update { new: (k, _), .. } => k.clone(),
            });
        }
        for item in older.services.diff(&self.services) {
            d.services.push(match item {
                DiffItem::Add(k, _) | DiffItem::Remove(k, _) => k.clone(),
                DiffItem::Update { new: (k, _), .. } => k.clone(),
            });
        }
        for item in older.tasks.diff(&self.tasks) {
            d.tasks.push(match item {
                DiffItem::Add(k, t) => TaskTouch {
                    id: k.clone(),
                    before: None,
                    after: Some(place(t)),
                },
                DiffItem::Remove(k, t) => TaskTouch {
                    id: k.clone(),
                    before: Some(place(t)),
                    after: None,
                },
                DiffItem::Update {
                    old: (k, old),
                    new: (_, new),
                } => TaskTouch {
                    id: k.clone(),
                    before: Some(place(old)),
                    after: Some(place(new)),
                },
            });
        }
        for item in older.payloads.diff(&self.payloads) {
            d.payloads.push(match item {
                DiffItem::Add(k, _) | DiffItem::Remove(k, _) => k.clone(),
                DiffItem::Update { new: (k, _), .. } => k.clone(),
            });
        }
        d.cluster = match (&older.cluster, &self.cluster) {
            (None, None) => false,
            (Some(a), Some(b)) => !std::sync::Arc::ptr_eq(a, b) && a != b,
            _ => true,
        };
        d
    }
}

#[cfg(test)]
mod tests {
    use shoal_types::service::{Service, ServiceSpec};
    use shoal_types::task::{Task, TaskState, TaskStatus};
    use shoal_types::{Id, Timestamp};

    use crate::ops::{Op, Proposal};
    use crate::state::State;

    fn id(s: &str) -> Id {
        Id::from_raw(s)
    }

    fn service(i: &str) -> Service {
        Service {
            id: id(i),
            spec: ServiceSpec {
                name: i.into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn task(i: &str, svc: &str) -> Task {
        Task {
            id: id(i),
            service_id: id(svc),
            slot: 1,
            desired_state: TaskState::Running,
            status: TaskStatus {
                state: TaskState::Pending,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn apply(s: &mut State, version: u64, ops: Vec<Op>) {
        let (a, _) = s.apply(version, &Proposal::atomic(Timestamp(version as i64), ops));
        assert!(a.first_error().is_none(), "{a:?}");
    }

    #[test]
    fn a_write_shows_only_what_it_touched_in_a_large_state() {
        let mut s = State::default();
        let mut ops = Vec::new();
        for i in 0..5000 {
            ops.push(Op::CreateService(service(&format!("s{i:05}"))));
            ops.push(Op::CreateTask(task(
                &format!("t{i:05}"),
                &format!("s{i:05}"),
            )));
        }
        apply(&mut s, 1, ops);
        let before = s.clone();
        apply(
            &mut s,
            2,
            vec![
                Op::AssignTask {
                    id: id("t00042"),
                    node_id: id("n1"),
                    status: TaskStatus {
                        state: TaskState::Assigned,
                        ..Default::default()
                    },
                    generic_resources: Vec::new(),
                },
                Op::DeleteTask { id: id("t04000") },
                Op::CreateService(service("s99999")),
            ],
        );
        let d = s.delta_since(&before);
        assert_eq!(d.services, vec![id("s99999")]);
        assert!(d.nodes.is_empty() && !d.cluster);
        assert_eq!(d.tasks.len(), 2, "{:?}", d.tasks);
        let assigned = &d.tasks[0];
        assert_eq!(assigned.id, id("t00042"));
        assert_eq!(assigned.services().collect::<Vec<_>>(), vec![&id("s00042")]);
        assert_eq!(assigned.nodes().collect::<Vec<_>>(), vec![&id("n1")]);
        let deleted = &d.tasks[1];
        assert_eq!(
            (deleted.id.clone(), deleted.after.is_none()),
            (id("t04000"), true)
        );
        assert_eq!(deleted.services().collect::<Vec<_>>(), vec![&id("s04000")]);
        // Nothing between a snapshot and itself.
        assert!(s.delta_since(&s.clone()).is_empty());
    }

    #[test]
    fn unrelated_states_diff_in_full() {
        let mut a = State::default();
        apply(&mut a, 1, vec![Op::CreateService(service("s1"))]);
        let mut b = State::default();
        apply(&mut b, 1, vec![Op::CreateService(service("s2"))]);
        assert_eq!(b.delta_since(&a).services, vec![id("s1"), id("s2")]);
    }
}
