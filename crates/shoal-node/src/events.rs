//! The cluster's events for `docker events` on a manager: every change its store applies to a
//! service, task, node, network, secret or config becomes a `swarm`-scoped event (`create`,
//! `update`, `remove`, with the object's name) in the node's engine. Workers have no store and
//! show their own containers' events only, as a Swarm worker does.

use std::collections::BTreeMap;
use std::sync::Arc;

use shoal_control::engine::EngineEvent;
use shoal_store::{Changes, Kind, State};
use shoal_types::Meta;
use shoal_types::payload::PayloadKind;
use tokio::sync::{broadcast, watch};

/// An object's times and the attributes its event carries.
type Found = Option<(Meta, BTreeMap<String, String>)>;

/// The events of one applied change, read against the state after it.
pub(crate) fn events_of(
    changes: &Changes,
    view: &State,
    now: shoal_types::Timestamp,
) -> Vec<EngineEvent> {
    let mut out = Vec::new();
    for e in &changes.events {
        let (typ, found): (&str, Found) = match e.kind {
            Kind::Service => (
                "service",
                view.service(&e.id).map(|s| {
                    (
                        s.meta.clone(),
                        [("name".to_string(), s.spec.name.clone())].into(),
                    )
                }),
            ),
            Kind::Task => (
                "task",
                view.task(&e.id).map(|t| {
                    let mut a: BTreeMap<String, String> = [
                        ("name".to_string(), t.name()),
                        ("service".to_string(), t.service_name.clone()),
                        ("state".to_string(), t.status.state.as_str().to_string()),
                    ]
                    .into();
                    if let Some(n) = &t.node_id {
                        a.insert("node.id".into(), n.to_string());
                    }
                    (t.meta.clone(), a)
                }),
            ),
            Kind::Node => (
                "node",
                view.node(&e.id).map(|n| {
                    let name = if n.spec.name.is_empty() {
                        n.description.hostname.clone()
                    } else {
                        n.spec.name.clone()
                    };
                    (n.meta.clone(), [("name".to_string(), name)].into())
                }),
            ),
            Kind::Network => (
                "network",
                view.network(&e.id).map(|n| {
                    (
                        n.meta.clone(),
                        [("name".to_string(), n.spec.name.clone())].into(),
                    )
                }),
            ),
            Kind::Secret | Kind::Config => {
                let kind = if e.kind == Kind::Secret {
                    PayloadKind::Secret
                } else {
                    PayloadKind::Config
                };
                (
                    if e.kind == Kind::Secret {
                        "secret"
                    } else {
                        "config"
                    },
                    view.payload(kind, &e.id).map(|p| {
                        (
                            p.meta.clone(),
                            [("name".to_string(), p.spec.name.clone())].into(),
                        )
                    }),
                )
            }
            Kind::Cluster => continue,
        };
        let (action, attributes) = match (e.deleted, found) {
            (true, _) | (false, None) => ("remove", BTreeMap::new()),
            (false, Some((meta, attrs))) => (
                if meta.created_at == meta.updated_at {
                    "create"
                } else {
                    "update"
                },
                attrs,
            ),
        };
        out.push(EngineEvent {
            typ: typ.into(),
            action: action.into(),
            id: e.id.to_string(),
            attributes,
            scope: "swarm".into(),
            time: now,
        });
    }
    out
}

/// Publishes the events of a manager's store from now on, until the store closes (the
/// manager stopped) or `stop` flips. Subscribes before it returns, so nothing the manager
/// writes after the call is missed.
pub(crate) fn spawn(
    store: &shoal_store::Store,
    engine: Arc<shoal_engine::NodeEngine>,
    clock: Arc<dyn shoal_types::Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let mut rx = store.changes();
    let store = store.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(ch) => {
                        let view = store.view();
                        for e in events_of(&ch, &view, clock.now()) {
                            shoal_control::Engine::publish(engine.as_ref(), e);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "events: the store's changes outran the event feed");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    });
}
