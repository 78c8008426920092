//! The node-to-node RPC routes every node serves over mutual TLS. Managers serve the cluster
//! (join, Raft, dispatcher sessions, certificate renewal); every node serves its agent's task
//! logs to managers. Who may call what is decided here from the peer's certificate: its role,
//! and, on managers, whether its node has been removed.
//!
//! Handlers clone what they need out of [`Shared`] and hold no lock across their work.

// A refusal is the response itself, built once per refused call: no point boxing it.
#![allow(clippy::result_large_err)]

use std::sync::{Arc, RwLock};

use shoal_types::error::chain;

use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use futures::StreamExt;
use http::StatusCode;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use shoal_agent::Agent;
use shoal_manager::{ControlError, Manager};
use shoal_pki::Identity;
use shoal_rpc::Peer;
use shoal_runtime::LogOptions;
use shoal_store::{Proposal, TypeConfig};
use shoal_types::dispatch::{
    AttachRequest, DetachRequest, JoinRequest, RenewRequest, TaskStatusReport,
};
use shoal_types::node::NodeRole;
use tokio::sync::watch;

use crate::remote::LEADER_HINT;
use crate::wire;

/// What the routes reach into: set and cleared by the node's lifecycle.
pub struct Shared {
    /// This node's manager, when it is one.
    pub manager: RwLock<Option<Manager>>,
    pub agent: RwLock<Option<Arc<Agent>>>,
    pub trust: watch::Receiver<Vec<String>>,
}

impl Shared {
    pub(crate) fn manager(&self) -> Option<Manager> {
        self.manager
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn agent(&self) -> Option<Arc<Agent>> {
        self.agent.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

type S = Arc<Shared>;

fn err(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(serde_json::json!({ "message": message.into() }))).into_response()
}

/// A control error with the status every HTTP surface gives it ([`ControlError::status`]).
fn control_err(e: ControlError) -> Response {
    err(e.status(), chain(&e))
}

fn not_manager() -> Response {
    err(
        StatusCode::SERVICE_UNAVAILABLE,
        "this node is not a manager",
    )
}

/// The peer, required: a verified certificate, not of a removed node, and a manager's when
/// `manager_only`.
fn peer(shared: &Shared, p: &Peer, manager_only: bool) -> Result<Identity, Response> {
    let Some(id) = p.identity.clone() else {
        return Err(err(
            StatusCode::FORBIDDEN,
            "a client certificate from this swarm is required",
        ));
    };
    if manager_only && id.role != NodeRole::Manager {
        return Err(err(
            StatusCode::FORBIDDEN,
            format!("node {} is not a manager", id.node_id),
        ));
    }
    if let Some(m) = shared.manager()
        && m.store
            .view()
            .cluster()
            .is_some_and(|c| c.removed_nodes.contains(&id.node_id))
    {
        return Err(err(
            StatusCode::FORBIDDEN,
            format!("node {} was removed from the swarm", id.node_id),
        ));
    }
    Ok(id)
}

/// The leader's RPC endpoint, as this manager knows it.
fn leader_endpoint(m: &Manager) -> Option<String> {
    let leader = m.store.leader()?;
    m.store
        .view()
        .nodes()
        .find(|n| n.manager.as_ref().is_some_and(|s| s.raft_id == leader))
        .map(|n| n.status.endpoint.clone())
        .filter(|e| !e.is_empty())
}

fn misdirected(m: &Manager) -> Response {
    match leader_endpoint(m) {
        Some(l) => err(StatusCode::MISDIRECTED_REQUEST, format!("{LEADER_HINT}{l}")),
        None => err(
            StatusCode::SERVICE_UNAVAILABLE,
            "the swarm does not have a leader",
        ),
    }
}

/// A handler's answer: its refusal is the error (axum sends either).
type Reply = Result<Response, Response>;

/// The calling peer (see [`peer`]) and this node's manager, or the refusal.
fn at_manager(
    shared: &Shared,
    p: &Peer,
    manager_only: bool,
) -> Result<(Identity, Manager), Response> {
    let id = peer(shared, p, manager_only)?;
    let m = shared.manager().ok_or_else(not_manager)?;
    Ok((id, m))
}

/// [`at_manager`], for calls only the leader serves: others point at it ([`misdirected`]).
fn at_leader(
    shared: &Shared,
    p: &Peer,
    manager_only: bool,
) -> Result<(Identity, Manager), Response> {
    let (id, m) = at_manager(shared, p, manager_only)?;
    if !m.store.is_leader() {
        return Err(misdirected(&m));
    }
    Ok((id, m))
}

/// The value as JSON, or the error's message, causes and all, with `code`.
fn json_or<T: serde::Serialize, E: std::error::Error + 'static>(
    r: Result<T, E>,
    code: StatusCode,
) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => err(code, chain(&e)),
    }
}

/// The value as JSON, or the control error's response.
fn json_or_control<T: serde::Serialize>(r: Result<T, ControlError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => control_err(e),
    }
}

/// The empty JSON object acknowledging a call with nothing to answer.
fn empty() -> serde_json::Value {
    serde_json::json!({})
}

pub fn router(shared: S) -> Router {
    Router::new()
        .route(wire::CA, get(ca).post(ca))
        .route(wire::JOIN, post(join))
        .route(wire::RAFT_APPEND, post(raft_append))
        .route(wire::RAFT_VOTE, post(raft_vote))
        .route(wire::RAFT_SNAPSHOT, post(raft_snapshot))
        .route(wire::RAFT_PROPOSE, post(raft_propose))
        .route(wire::RAFT_JOIN, post(raft_join))
        .route(wire::SESSION, post(session))
        .route(wire::REPORT, post(report))
        .route(wire::HEARTBEAT, post(heartbeat))
        .route(wire::ATTACH, post(attach))
        .route(wire::DETACH, post(detach))
        .route(wire::RENEW, post(renew))
        .route(wire::LOGS, post(logs))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(shared)
}

async fn ca(State(s): State<S>) -> Response {
    Json(wire::CaReply {
        trust: s.trust.borrow().clone(),
    })
    .into_response()
}

async fn join(State(s): State<S>, Json(req): Json<JoinRequest>) -> Reply {
    let m = s.manager().ok_or_else(not_manager)?;
    Ok(json_or_control(m.control.join(&req).await))
}

async fn raft_append(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(req): Json<AppendEntriesRequest<TypeConfig>>,
) -> Reply {
    let (_, m) = at_manager(&s, &p, true)?;
    let r = m.store.raft().append_entries(req).await;
    Ok(json_or(r, StatusCode::INTERNAL_SERVER_ERROR))
}

async fn raft_vote(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(req): Json<VoteRequest<u64>>,
) -> Reply {
    let (_, m) = at_manager(&s, &p, true)?;
    let r = m.store.raft().vote(req).await;
    Ok(json_or(r, StatusCode::INTERNAL_SERVER_ERROR))
}

async fn raft_snapshot(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(c): Json<wire::SnapshotChunk>,
) -> Reply {
    let (_, m) = at_manager(&s, &p, true)?;
    let Ok(data) = base64::engine::general_purpose::STANDARD.decode(c.data.as_bytes()) else {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "snapshot chunk: data is not base64",
        ));
    };
    let done = c.done.then_some(c.meta.last_log_id);
    let req = InstallSnapshotRequest::<TypeConfig> {
        vote: c.vote,
        meta: c.meta,
        offset: c.offset,
        data,
        done: c.done,
    };
    let r = m.store.raft().install_snapshot(req).await;
    // Worth a line: this member was too far behind to catch up from the leader's log.
    if let (Ok(_), Some(last)) = (&r, done) {
        tracing::info!(snapshot.last_log_id = ?last, "received a complete raft snapshot from the leader");
    }
    Ok(json_or(r, StatusCode::INTERNAL_SERVER_ERROR))
}

async fn raft_propose(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(prop): Json<Proposal>,
) -> Reply {
    let (_, m) = at_manager(&s, &p, true)?;
    Ok(Json(wire::ProposeReply::from(m.store.propose_local(prop).await)).into_response())
}

async fn raft_join(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(j): Json<wire::RaftJoin>,
) -> Reply {
    let (id, m) = at_leader(&s, &p, true)?;
    // Only a node the store says is a manager, under that member ID, gets a seat.
    let expected = m
        .store
        .view()
        .node(&id.node_id)
        .and_then(|n| n.manager.as_ref().map(|s| s.raft_id));
    if expected != Some(j.raft_id) {
        return Err(err(
            StatusCode::FORBIDDEN,
            format!(
                "node {} is not a manager with raft member id {}",
                id.node_id, j.raft_id
            ),
        ));
    }
    let r = m.store.add_voter(j.raft_id, &j.addr).await;
    Ok(json_or(
        r.map(|()| empty()),
        StatusCode::SERVICE_UNAVAILABLE,
    ))
}

async fn session(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(open): Json<wire::SessionOpen>,
) -> Reply {
    let (id, m) = at_leader(&s, &p, false)?;
    let addr = open
        .endpoint
        .rsplit_once(':')
        .map_or(p.addr.ip().to_string(), |(h, _)| h.to_string());
    let stream = m
        .dispatcher
        .open_session(&id.node_id, open.description, addr, open.endpoint)
        .await
        .map_err(control_err)?;
    Ok(shoal_rpc::ndjson(stream))
}

async fn report(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(reports): Json<Vec<TaskStatusReport>>,
) -> Reply {
    let (id, m) = at_manager(&s, &p, false)?;
    let r = m.dispatcher.report(&id.node_id, reports).await;
    Ok(json_or_control(r.map(|()| empty())))
}

async fn heartbeat(State(s): State<S>, Extension(p): Extension<Peer>) -> Reply {
    let (id, m) = at_manager(&s, &p, false)?;
    let r = m.dispatcher.heartbeat(&id.node_id);
    Ok(json_or_control(
        r.map(|period| wire::HeartbeatReply { period }),
    ))
}

/// A node attaching one of its containers to an overlay: any manager serves it (a follower
/// forwards the write), for the calling node only.
async fn attach(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(req): Json<AttachRequest>,
) -> Reply {
    let (id, m) = at_manager(&s, &p, false)?;
    let r = if req.check_only {
        m.control.check_attach(&id.node_id, &req).map(|()| None)
    } else {
        m.control.attach_network(&id.node_id, &req).await.map(Some)
    };
    Ok(json_or_control(r))
}

async fn detach(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(req): Json<DetachRequest>,
) -> Reply {
    let (id, m) = at_manager(&s, &p, false)?;
    let r = m
        .control
        .detach_network(&id.node_id, &req.container_id, req.network.as_deref())
        .await;
    Ok(json_or_control(r.map(|()| empty())))
}

async fn renew(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(req): Json<RenewRequest>,
) -> Reply {
    let (id, m) = at_manager(&s, &p, false)?;
    Ok(json_or_control(m.control.renew(&id.node_id, &req).await))
}

async fn logs(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(req): Json<wire::LogsRequest>,
) -> Response {
    if let Err(r) = peer(&s, &p, true) {
        return r;
    }
    let Some(agent) = s.agent() else {
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node's agent is not running",
        );
    };
    let opts = LogOptions {
        follow: req.follow,
        tail: req.tail,
        since: req.since,
        stdout: req.stdout,
        stderr: req.stderr,
    };
    match agent.logs(&req.task_id, opts).await {
        Ok(lines) => {
            let wire_lines = lines.filter_map(|l| async move {
                l.ok().map(|l| wire::WireLogLine {
                    time: l.time,
                    stderr: l.stream == shoal_runtime::LogStreamKind::Stderr,
                    line: base64::engine::general_purpose::STANDARD.encode(&l.line),
                })
            });
            shoal_rpc::ndjson(wire_lines)
        }
        Err(e) => err(StatusCode::NOT_FOUND, chain(&e)),
    }
}
