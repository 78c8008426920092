//! What "converged" means once the faults stop: one leader that every manager follows, every
//! manager caught up, every node ready, and every service exactly as its spec says, in the store
//! and in the runtimes:
//! - replicated: each slot `1..=replicas` has one task, up to date, running on a ready node that
//!   is not drained, and nothing else of the service is unfinished;
//! - global: each ready, active node has one up-to-date running task (a paused node may keep
//!   one), and no other node has any;
//! - jobs: the wanted number of completions, nothing running;
//! - no rolling update in progress;
//! - every process a runtime runs is one of those tasks.

use std::collections::{BTreeMap, BTreeSet};

use shoal_types::node::{Availability, NodeState};
use shoal_types::service::ServiceMode;
use shoal_types::{Id, TaskState};

use crate::invariants::Observation;

/// `Ok` when converged, else the first gap found.
pub fn check(obs: &Observation, managers: usize) -> Result<(), String> {
    let Some(leader) = obs.leader() else {
        return Err("no leader".into());
    };
    if obs.managers.len() < managers {
        return Err(format!("{} of {managers} managers up", obs.managers.len()));
    }
    if let Some(m) = obs
        .managers
        .iter()
        .find(|m| m.leader && m.idx != leader.idx)
    {
        return Err(format!("m{} and m{} both lead", m.idx, leader.idx));
    }
    if let Some(m) = obs.managers.iter().find(|m| m.applied != leader.applied) {
        return Err(format!(
            "m{} applied {} but the leader m{} applied {}",
            m.idx, m.applied, leader.idx, leader.applied
        ));
    }
    let view = &leader.state;
    if let Some(n) = view.nodes().find(|n| n.status.state != NodeState::Ready) {
        return Err(format!(
            "node {} ({}) is {}: {}",
            n.id,
            n.description.hostname,
            n.status.state.as_str(),
            n.status.message
        ));
    }
    let mut expected: BTreeSet<Id> = BTreeSet::new();
    for s in view.services() {
        if let Some(u) = &s.update_status
            && u.state.in_progress()
        {
            return Err(format!(
                "service {}: update {}",
                s.spec.name,
                u.state.as_str()
            ));
        }
        let tasks: Vec<_> = view.tasks_of_service(&s.id).collect();
        let current = |t: &std::sync::Arc<shoal_types::Task>| {
            t.spec == s.spec.task
                && t.desired_state == TaskState::Running
                && t.status.state == TaskState::Running
        };
        let unfinished = tasks.iter().filter(|t| !t.status.state.is_terminal());
        match s.spec.mode {
            ServiceMode::Replicated { replicas } => {
                let mut by_slot: BTreeMap<u64, Vec<&Id>> = BTreeMap::new();
                for t in tasks.iter().filter(|t| current(t)) {
                    let on_ok = t
                        .node_id
                        .as_ref()
                        .and_then(|n| view.node(n))
                        .is_some_and(|n| n.spec.availability != Availability::Drain);
                    if on_ok {
                        by_slot.entry(t.slot).or_default().push(&t.id);
                    }
                }
                for slot in 1..=replicas {
                    match by_slot.get(&slot).map(Vec::len) {
                        Some(1) => {}
                        n => {
                            let newest = tasks
                                .iter()
                                .filter(|t| t.slot == slot)
                                .max_by_key(|t| t.meta.created_at);
                            return Err(format!(
                                "service {} ({}, update {}) slot {slot}: {} running up-to-date tasks; newest {:?}",
                                s.spec.name,
                                s.spec.task.container.image,
                                s.update_status
                                    .as_ref()
                                    .map_or("none", |u| u.state.as_str()),
                                n.unwrap_or(0),
                                newest.map(|t| (
                                    &t.id,
                                    t.status.state,
                                    t.desired_state,
                                    &t.status.message,
                                    &t.spec.container.image
                                ))
                            ));
                        }
                    }
                }
                for t in unfinished {
                    let drained = t
                        .node_id
                        .as_ref()
                        .and_then(|n| view.node(n))
                        .is_none_or(|n| n.spec.availability == Availability::Drain);
                    if drained || !(t.slot >= 1 && t.slot <= replicas && current(t)) {
                        return Err(format!(
                            "service {}: task {} (slot {}) is {} / wanted {}",
                            s.spec.name,
                            t.id,
                            t.slot,
                            t.status.state.as_str(),
                            t.desired_state.as_str()
                        ));
                    }
                    expected.insert(t.id.clone());
                }
            }
            ServiceMode::Global => {
                // A paused node keeps its task through updates (it is not updated).
                let kept = |t: &std::sync::Arc<shoal_types::Task>| {
                    current(t)
                        || (t.desired_state == TaskState::Running
                            && t.status.state == TaskState::Running
                            && t.node_id
                                .as_ref()
                                .and_then(|n| view.node(n))
                                .is_some_and(|n| n.spec.availability == Availability::Pause))
                };
                for n in view.nodes() {
                    let mine: Vec<_> = tasks
                        .iter()
                        .filter(|t| t.node_id.as_ref() == Some(&n.id) && kept(t))
                        .collect();
                    let want = match n.spec.availability {
                        Availability::Active => 1..=1,
                        Availability::Pause => 0..=1,
                        Availability::Drain => 0..=0,
                    };
                    if !want.contains(&mine.len()) {
                        return Err(format!(
                            "global service {} has {} running up-to-date tasks on {} node {}",
                            s.spec.name,
                            mine.len(),
                            n.spec.availability.as_str(),
                            n.id
                        ));
                    }
                }
                for t in unfinished {
                    if !kept(t) {
                        return Err(format!(
                            "global service {}: task {} is {} / wanted {}",
                            s.spec.name,
                            t.id,
                            t.status.state.as_str(),
                            t.desired_state.as_str()
                        ));
                    }
                    expected.insert(t.id.clone());
                }
            }
            ServiceMode::ReplicatedJob {
                total_completions, ..
            } => {
                let done: BTreeSet<u64> = tasks
                    .iter()
                    .filter(|t| t.spec == s.spec.task && t.status.state == TaskState::Complete)
                    .map(|t| t.slot)
                    .collect();
                if (done.len() as u64) < total_completions {
                    return Err(format!(
                        "job {}: {} of {total_completions} completions",
                        s.spec.name,
                        done.len()
                    ));
                }
                if let Some(t) = unfinished.into_iter().next() {
                    return Err(format!(
                        "job {}: task {} still {}",
                        s.spec.name,
                        t.id,
                        t.status.state.as_str()
                    ));
                }
            }
            ServiceMode::GlobalJob => {}
        }
    }
    let running: BTreeSet<&Id> = obs.nodes.iter().flat_map(|n| &n.running).collect();
    if let Some(t) = expected.iter().find(|t| !running.contains(t)) {
        return Err(format!(
            "task {t} is running in the store but in no runtime"
        ));
    }
    for n in &obs.nodes {
        if !n.up {
            return Err(format!("node index {} is down", n.idx));
        }
        // Ready in the store is not enough: an agent still in its reconnect backoff would be
        // marked Down by the leader a moment later.
        if n.session != Some(leader.idx) {
            return Err(format!(
                "node index {}: agent session with {:?}, not with the leader m{}",
                n.idx, n.session, leader.idx
            ));
        }
        if let Some(t) = n.running.iter().find(|t| !expected.contains(*t)) {
            return Err(format!(
                "node {} (index {}) runs task {t}, which the leader does not want running",
                n.id, n.idx
            ));
        }
    }
    Ok(())
}
