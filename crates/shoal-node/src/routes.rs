//! The node-to-node RPC routes every node serves over mutual TLS. Managers serve the cluster
//! (join, Raft, dispatcher sessions, certificate renewal); every node serves its agent's task
//! logs to managers. Who may call what is decided here from the peer's certificate: its role,
//! and, on managers, whether its node has been removed.
//!
//! Handlers clone what they need out of [`Shared`] and hold no lock across their work.

use std::sync::{Arc, RwLock};

use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use futures::StreamExt;
use http::StatusCode;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use shoal_agent::{Agent, LogOptions};
use shoal_manager::{Control, ControlError, Dispatcher};
use shoal_pki::Identity;
use shoal_rpc::Peer;
use shoal_store::{Proposal, Store, TypeConfig};
use shoal_types::dispatch::{JoinRequest, RenewRequest, TaskStatusReport};
use shoal_types::node::NodeRole;
use tokio::sync::watch;

use crate::remote::LEADER_HINT;
use crate::wire;

/// A manager's parts, as the routes need them.
#[derive(Clone)]
pub struct ManagerParts {
    pub store: Store,
    pub control: Control,
    pub dispatcher: Arc<Dispatcher>,
}

/// What the routes reach into: set and cleared by the node's lifecycle.
pub struct Shared {
    pub manager: RwLock<Option<ManagerParts>>,
    pub agent: RwLock<Option<Arc<Agent>>>,
    pub trust: watch::Receiver<Vec<String>>,
}

impl Shared {
    fn manager(&self) -> Option<ManagerParts> {
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

fn control_err(e: ControlError) -> Response {
    let code = match &e {
        ControlError::NotFound { .. } => StatusCode::NOT_FOUND,
        ControlError::InvalidArgument { .. }
        | ControlError::Ambiguous { .. }
        | ControlError::FailedPrecondition(_) => StatusCode::BAD_REQUEST,
        ControlError::Conflict(_) => StatusCode::CONFLICT,
        ControlError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ControlError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    err(code, e.to_string())
}

fn not_manager() -> Response {
    err(
        StatusCode::SERVICE_UNAVAILABLE,
        "this node is not a manager",
    )
}

/// The peer, required: a verified certificate, not of a removed node, and a manager's when
/// `manager_only`.
#[allow(clippy::result_large_err)] // the refusal is the response itself, built once per refused call
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
fn leader_endpoint(m: &ManagerParts) -> Option<String> {
    let leader = m.store.leader()?;
    m.store
        .view()
        .nodes()
        .find(|n| n.manager.as_ref().is_some_and(|s| s.raft_id == leader))
        .map(|n| n.status.endpoint.clone())
        .filter(|e| !e.is_empty())
}

fn misdirected(m: &ManagerParts) -> Response {
    match leader_endpoint(m) {
        Some(l) => err(StatusCode::MISDIRECTED_REQUEST, format!("{LEADER_HINT}{l}")),
        None => err(
            StatusCode::SERVICE_UNAVAILABLE,
            "the swarm does not have a leader",
        ),
    }
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

async fn join(State(s): State<S>, Json(req): Json<JoinRequest>) -> Response {
    let Some(m) = s.manager() else {
        return not_manager();
    };
    match m.control.join(&req).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => control_err(e),
    }
}

async fn raft_append(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(req): Json<AppendEntriesRequest<TypeConfig>>,
) -> Response {
    if let Err(r) = peer(&s, &p, true) {
        return r;
    }
    let Some(m) = s.manager() else {
        return not_manager();
    };
    match m.store.raft().append_entries(req).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn raft_vote(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(req): Json<VoteRequest<u64>>,
) -> Response {
    if let Err(r) = peer(&s, &p, true) {
        return r;
    }
    let Some(m) = s.manager() else {
        return not_manager();
    };
    match m.store.raft().vote(req).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn raft_snapshot(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(c): Json<wire::SnapshotChunk>,
) -> Response {
    if let Err(r) = peer(&s, &p, true) {
        return r;
    }
    let Some(m) = s.manager() else {
        return not_manager();
    };
    let Ok(data) = base64::engine::general_purpose::STANDARD.decode(c.data.as_bytes()) else {
        return err(
            StatusCode::BAD_REQUEST,
            "snapshot chunk: data is not base64",
        );
    };
    let done = c.done.then_some(c.meta.last_log_id);
    let req = InstallSnapshotRequest::<TypeConfig> {
        vote: c.vote,
        meta: c.meta,
        offset: c.offset,
        data,
        done: c.done,
    };
    match m.store.raft().install_snapshot(req).await {
        Ok(r) => {
            // Worth a line: this member was too far behind to catch up from the leader's log.
            if let Some(last) = done {
                tracing::info!(snapshot.last_log_id = ?last, "received a complete raft snapshot from the leader");
            }
            Json(r).into_response()
        }
        Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn raft_propose(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(prop): Json<Proposal>,
) -> Response {
    if let Err(r) = peer(&s, &p, true) {
        return r;
    }
    let Some(m) = s.manager() else {
        return not_manager();
    };
    Json(wire::ProposeReply::from(m.store.propose_local(prop).await)).into_response()
}

async fn raft_join(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(j): Json<wire::RaftJoin>,
) -> Response {
    let id = match peer(&s, &p, true) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Some(m) = s.manager() else {
        return not_manager();
    };
    if !m.store.is_leader() {
        return misdirected(&m);
    }
    // Only a node the store says is a manager, under that member ID, gets a seat.
    let expected = m
        .store
        .view()
        .node(&id.node_id)
        .and_then(|n| n.manager.as_ref().map(|s| s.raft_id));
    if expected != Some(j.raft_id) {
        return err(
            StatusCode::FORBIDDEN,
            format!(
                "node {} is not a manager with raft member id {}",
                id.node_id, j.raft_id
            ),
        );
    }
    match m.store.add_voter(j.raft_id, &j.addr).await {
        Ok(()) => Json(serde_json::json!({})).into_response(),
        Err(e) => err(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn session(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(open): Json<wire::SessionOpen>,
) -> Response {
    let id = match peer(&s, &p, false) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Some(m) = s.manager() else {
        return not_manager();
    };
    if !m.store.is_leader() {
        return misdirected(&m);
    }
    let addr = open
        .endpoint
        .rsplit_once(':')
        .map_or(p.addr.ip().to_string(), |(h, _)| h.to_string());
    match m
        .dispatcher
        .open_session(&id.node_id, open.description, addr, open.endpoint)
        .await
    {
        Ok(stream) => shoal_rpc::ndjson(stream),
        Err(e) => control_err(e),
    }
}

async fn report(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(reports): Json<Vec<TaskStatusReport>>,
) -> Response {
    let id = match peer(&s, &p, false) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Some(m) = s.manager() else {
        return not_manager();
    };
    match m.dispatcher.report(&id.node_id, reports).await {
        Ok(()) => Json(serde_json::json!({})).into_response(),
        Err(e) => control_err(e),
    }
}

async fn heartbeat(State(s): State<S>, Extension(p): Extension<Peer>) -> Response {
    let id = match peer(&s, &p, false) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Some(m) = s.manager() else {
        return not_manager();
    };
    match m.dispatcher.heartbeat(&id.node_id) {
        Ok(period) => Json(wire::HeartbeatReply { period }).into_response(),
        Err(e) => control_err(e),
    }
}

async fn renew(
    State(s): State<S>,
    Extension(p): Extension<Peer>,
    Json(req): Json<RenewRequest>,
) -> Response {
    let id = match peer(&s, &p, false) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let Some(m) = s.manager() else {
        return not_manager();
    };
    match m.control.renew(&id.node_id, &req).await {
        Ok(r) => Json(r).into_response(),
        Err(e) => control_err(e),
    }
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
                    stderr: l.stream == shoal_agent::runtime::LogStreamKind::Stderr,
                    line: base64::engine::general_purpose::STANDARD.encode(&l.line),
                })
            });
            shoal_rpc::ndjson(wire_lines)
        }
        Err(e) => err(StatusCode::NOT_FOUND, e.to_string()),
    }
}
