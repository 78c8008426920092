//! The node's events: the last [`KEEP`] kept for `docker events --since`, and a broadcast of
//! every new one. Container events come from watching the node's containers change
//! ([`diff`], pure); exec events from the exec table; cluster objects' events are published
//! by the node from its manager's store.
//!
//! Concurrency: one mutex around the kept events and the sender, so a reader's backlog and
//! its subscription meet without a gap or a repeat.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use shoal_control::engine::{ContainerInfo, ContainerStatus, EngineEvent};
use shoal_types::Timestamp;
use tokio::sync::broadcast;

/// How many events are kept for readers that ask for past ones.
pub const KEEP: usize = 1024;

pub struct EventHub {
    inner: Mutex<(VecDeque<EngineEvent>, broadcast::Sender<EngineEvent>)>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub {
            inner: Mutex::new((VecDeque::with_capacity(KEEP), broadcast::channel(KEEP).0)),
        }
    }
}

impl EventHub {
    pub fn publish(&self, e: EngineEvent) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.0.len() == KEEP {
            g.0.pop_front();
        }
        g.0.push_back(e.clone());
        let _ = g.1.send(e);
    }

    pub fn subscribe(&self) -> (Vec<EngineEvent>, broadcast::Receiver<EngineEvent>) {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (g.0.iter().cloned().collect(), g.1.subscribe())
    }
}

/// A container's event, with the attributes Docker gives: its image, name and labels.
pub fn container_event(c: &ContainerInfo, action: &str, time: Timestamp) -> EngineEvent {
    let mut attributes: BTreeMap<String, String> = c.labels.clone();
    attributes.insert("image".into(), c.spec.image.clone());
    attributes.insert("name".into(), c.name.clone());
    EngineEvent {
        typ: "container".into(),
        action: action.into(),
        id: c.id.clone(),
        attributes,
        scope: "local".into(),
        time,
    }
}

/// The events that take the node's containers from `before` to `after`: `create` for a new
/// one (and `start` when it already runs), `start` and `die` (with its exit code) as it
/// starts and ends, `destroy` when it is gone.
pub fn diff(before: &[ContainerInfo], after: &[ContainerInfo], now: Timestamp) -> Vec<EngineEvent> {
    let old: BTreeMap<&str, &ContainerInfo> = before.iter().map(|c| (c.id.as_str(), c)).collect();
    let new: BTreeMap<&str, &ContainerInfo> = after.iter().map(|c| (c.id.as_str(), c)).collect();
    let mut out = Vec::new();
    for c in after {
        let running = c.state.status == ContainerStatus::Running;
        // Restarting is exited, waiting for its restart policy's next start.
        let ended =
            |s: ContainerStatus| matches!(s, ContainerStatus::Exited | ContainerStatus::Restarting);
        let exited = ended(c.state.status);
        match old.get(c.id.as_str()) {
            None => {
                out.push(container_event(c, "create", now));
                if running || exited {
                    out.push(container_event(c, "start", now));
                }
                if exited {
                    out.push(die(c, now));
                }
            }
            Some(was) => {
                let was_running = was.state.status == ContainerStatus::Running;
                let restarted = was.state.started_at != c.state.started_at;
                if running && (!was_running || restarted) {
                    if was_running {
                        out.push(die(was, now));
                    }
                    out.push(container_event(c, "start", now));
                }
                // A whole run between two looks shows only as a new start time.
                if exited && (!ended(was.state.status) || restarted) {
                    if !was_running {
                        out.push(container_event(c, "start", now));
                    }
                    out.push(die(c, now));
                }
            }
        }
    }
    for c in before {
        if !new.contains_key(c.id.as_str()) {
            if c.state.status == ContainerStatus::Running {
                out.push(die(c, now));
            }
            out.push(container_event(c, "destroy", now));
        }
    }
    out
}

fn die(c: &ContainerInfo, now: Timestamp) -> EngineEvent {
    let mut e = container_event(c, "die", now);
    e.attributes
        .insert("exitCode".into(), c.state.exit_code.to_string());
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_control::engine::ContainerState;

    fn c(id: &str, status: ContainerStatus, started: i64, code: i64) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            name: format!("web.1.{id}"),
            task_id: None,
            created: Timestamp(1),
            labels: BTreeMap::new(),
            spec: Default::default(),
            hostname: String::new(),
            state: ContainerState {
                status,
                pid: 0,
                exit_code: code,
                oom_killed: false,
                started_at: Timestamp(started),
                finished_at: Timestamp::ZERO,
                error: String::new(),
                health: None,
            },
            networks: Vec::new(),
            runtime: "native".into(),
            standalone: None,
        }
    }

    fn actions(v: &[EngineEvent]) -> Vec<String> {
        v.iter().map(|e| format!("{} {}", e.action, e.id)).collect()
    }

    #[test]
    fn a_containers_life_as_events() {
        let now = Timestamp(9);
        let created = c("a", ContainerStatus::Created, 0, 0);
        let running = c("a", ContainerStatus::Running, 5, 0);
        let exited = c("a", ContainerStatus::Exited, 5, 137);
        assert_eq!(
            actions(&diff(&[], std::slice::from_ref(&created), now)),
            vec!["create a"]
        );
        assert_eq!(
            actions(&diff(&[created], std::slice::from_ref(&running), now)),
            vec!["start a"]
        );
        let died = diff(
            std::slice::from_ref(&running),
            std::slice::from_ref(&exited),
            now,
        );
        assert_eq!(actions(&died), vec!["die a"]);
        assert_eq!(died[0].attributes["exitCode"], "137");
        assert_eq!(actions(&diff(&[exited], &[], now)), vec!["destroy a"]);
        assert_eq!(
            actions(&diff(&[], std::slice::from_ref(&running), now)),
            vec!["create a", "start a"]
        );
        assert_eq!(
            actions(&diff(&[running], &[], now)),
            vec!["die a", "destroy a"]
        );
        assert!(
            diff(
                &[c("b", ContainerStatus::Running, 5, 0)],
                &[c("b", ContainerStatus::Running, 5, 0)],
                now
            )
            .is_empty()
        );
    }

    #[test]
    fn the_hub_keeps_the_last_events_and_streams_the_rest() {
        let hub = EventHub::default();
        let e = |n: i64| EngineEvent {
            typ: "container".into(),
            action: "start".into(),
            id: n.to_string(),
            attributes: BTreeMap::new(),
            scope: "local".into(),
            time: Timestamp(n),
        };
        for n in 0..(KEEP as i64 + 5) {
            hub.publish(e(n));
        }
        let (kept, mut rx) = hub.subscribe();
        assert_eq!(kept.len(), KEEP);
        assert_eq!(kept[0].id, "5");
        hub.publish(e(-1));
        assert_eq!(rx.try_recv().map(|x| x.id).ok().as_deref(), Some("-1"));
    }
}
