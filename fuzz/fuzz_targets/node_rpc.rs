//! The node-to-node RPC messages (`shoal_node::wire`, `shoal_types::dispatch`, openraft's
//! requests and replies), decoded from JSON as `shoal-rpc` and the node's routes decode them,
//! then handled where the handling is pure: a join or renewal through the manager's real
//! admission (`shoal_manager::cluster::join`/`renew`, token check, CSR parse and signing) on a
//! real cluster object; a proposal or an append's entries applied to the store's state machine
//! (`State::apply`); a snapshot chunk's base64; a CA answer's PEMs as a joining node reads them;
//! a container's network attachment request, planned on the cluster state.
//!
//! The first byte picks the message (its high bit swaps in the cluster's real worker token, so a
//! join's CSR is reached without guessing a secret); the rest is the body.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use openraft::EntryPayload;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use shoal_fuzz::select;
use shoal_manager::cluster;
use shoal_node::wire;
use shoal_pki::RootCa;
use shoal_rpc::ErrorBody;
use shoal_store::{Op, Proposal, State, TypeConfig};
use shoal_types::dispatch::{
    JoinRequest, JoinResponse, RenewRequest, RenewResponse, SessionMessage, TaskStatusReport,
};
use shoal_types::{Id, IdGen, Timestamp};

/// A fixed moment: admission and signing take the time as an argument.
fn now() -> Timestamp {
    Timestamp::from_unix_nanos(1_780_000_000_000_000_000)
}

/// A swarm with one admitted worker, built once: its state, worker token and the worker's ID.
struct Swarm {
    state: State,
    worker_token: String,
    worker: Id,
}

fn swarm() -> &'static Swarm {
    static SWARM: OnceLock<Swarm> = OnceLock::new();
    SWARM.get_or_init(|| {
        let mut ids = IdGen::seeded(7);
        let c = cluster::new_cluster(Default::default(), now(), &mut ids).expect("a cluster");
        let worker_token = c.join_tokens.worker.clone();
        let mut state = State::default();
        state.apply(
            1,
            &Proposal::atomic(
                now(),
                vec![Op::PutCluster {
                    cluster: c,
                    expect_version: None,
                }],
            ),
        );
        let (_key, csr_pem) = shoal_pki::new_key_and_csr().expect("a CSR");
        let req = JoinRequest {
            token: worker_token.clone(),
            csr_pem,
            advertise_addr: "10.0.0.2:2377".into(),
            ..Default::default()
        };
        let (ops, resp) = cluster::join(&state, &req, now(), &mut ids).expect("the worker joins");
        state.apply(2, &Proposal::atomic(now(), ops));
        Swarm {
            state,
            worker_token,
            worker: resp.node_id,
        }
    })
}

/// The body as `T`, as the RPC layer decodes it. With `SHOAL_FUZZ_TRACE` set, says why a body
/// does not decode (for checking that seeds reach past the decoder).
fn decode<T: DeserializeOwned>(body: &[u8]) -> Option<T> {
    match serde_json::from_slice(body) {
        Ok(v) => Some(v),
        Err(e) => {
            if std::env::var_os("SHOAL_FUZZ_TRACE").is_some() {
                eprintln!("{}: {e}", std::any::type_name::<T>());
            }
            None
        }
    }
}

fn apply(p: &Proposal) {
    let mut state = swarm().state.clone();
    let (applied, _) = state.apply(3, p);
    assert_eq!(applied.results.len(), p.ops.len(), "one result per op");
    // A second application sees the first's objects: updates, conflicts, deletes.
    state.apply(4, p);
}

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = select(data) else {
        return;
    };
    let s = swarm();
    match which & 0x7f {
        // Server side: what the node's routes accept.
        0 => {
            if let Some(mut req) = decode::<JoinRequest>(body) {
                if which & 0x80 != 0 {
                    req.token = s.worker_token.clone();
                }
                let mut ids = IdGen::seeded(u64::from(which));
                if let Ok((ops, resp)) = cluster::join(&s.state, &req, now(), &mut ids) {
                    shoal_pki::identity_of_pem(&resp.cert_pem).expect("an issued cert parses");
                    let mut state = s.state.clone();
                    state.apply(3, &Proposal::atomic(now(), ops));
                }
            }
        }
        1 => {
            if let Some(req) = decode::<RenewRequest>(body)
                && let Ok((ops, resp)) = cluster::renew(&s.state, &s.worker, &req, now())
            {
                shoal_pki::identity_of_pem(&resp.cert_pem).expect("a renewed cert parses");
                let mut state = s.state.clone();
                state.apply(3, &Proposal::atomic(now(), ops));
            }
        }
        2 => {
            if let Some(req) = decode::<AppendEntriesRequest<TypeConfig>>(body) {
                for e in &req.entries {
                    if let EntryPayload::Normal(p) = &e.payload {
                        apply(p);
                    }
                }
            }
        }
        3 => {
            let _ = decode::<VoteRequest<u64>>(body);
        }
        4 => {
            if let Some(c) = decode::<wire::SnapshotChunk>(body) {
                let _ = base64::engine::general_purpose::STANDARD.decode(c.data.as_bytes());
            }
        }
        5 => {
            if let Some(p) = decode::<Proposal>(body) {
                apply(&p);
            }
        }
        6 => {
            let _ = decode::<wire::RaftJoin>(body);
        }
        7 => {
            let _ = decode::<wire::SessionOpen>(body);
        }
        8 => {
            if let Some(reports) = decode::<Vec<TaskStatusReport>>(body) {
                let ops = reports
                    .into_iter()
                    .map(|r| Op::SetTaskStatus {
                        id: r.task_id,
                        status: r.status,
                    })
                    .collect();
                apply(&Proposal {
                    now: now(),
                    ops,
                    atomic: false,
                });
            }
        }
        9 => {
            let _ = decode::<wire::LogsRequest>(body);
        }
        // Client side: what callers decode from a peer's answer.
        10 => {
            if let Some(ca) = decode::<wire::CaReply>(body) {
                for pem in &ca.trust {
                    if let Ok(root) = RootCa::from_pem(pem, None) {
                        assert_eq!(root.digest().len(), 50);
                    }
                }
                let _ = shoal_pki::client_config(None, &ca.trust);
            }
        }
        11 => {
            if let Some(r) = decode::<wire::ProposeReply>(body) {
                let _: Result<shoal_store::Applied, shoal_store::ProposeError> = r.into();
            }
        }
        12 => {
            if let Some(r) = decode::<JoinResponse>(body) {
                let _ = shoal_pki::identity_of_pem(&r.cert_pem);
            }
        }
        13 => {
            if let Some(r) = decode::<RenewResponse>(body) {
                let _ = shoal_pki::identity_of_pem(&r.cert_pem);
            }
        }
        14 => {
            let _ = decode::<wire::HeartbeatReply>(body);
        }
        15 => {
            let _ = decode::<SessionMessage>(body);
        }
        16 => {
            if let Some(l) = decode::<wire::WireLogLine>(body) {
                let _ = base64::engine::general_purpose::STANDARD.decode(l.line.as_bytes());
            }
        }
        17 => {
            let _ = decode::<ErrorBody>(body);
            let _ = decode::<wire::NotLeader>(body);
        }
        18 => {
            let _ = decode::<AppendEntriesResponse<u64>>(body);
            let _ = decode::<VoteResponse<u64>>(body);
            let _ = decode::<InstallSnapshotResponse<u64>>(body);
        }
        // A standalone container's network attachment, planned on the real cluster state.
        19 => {
            if let Some(req) = decode::<shoal_types::dispatch::AttachRequest>(body) {
                let node = s
                    .state
                    .nodes()
                    .next()
                    .map(|n| n.id.clone())
                    .unwrap_or_default();
                if let Ok(shoal_manager::attachments::Attach::New(t)) =
                    shoal_manager::attachments::plan_attach(
                        &s.state,
                        &node,
                        &req,
                        Id::from_raw("a"),
                        now(),
                    )
                {
                    assert!(t.is_attachment(), "an attachment plan made a plain task");
                }
            }
            let _ = decode::<shoal_types::dispatch::DetachRequest>(body);
        }
        _ => {}
    }
});
