//! The node-to-node protocol's messages and paths, shared by the routes and their clients.

use shoal_store::{Applied, ProposeError};
use shoal_types::error::{Remote, chain};
use shoal_types::node::NodeDescription;
use shoal_types::{Id, Timestamp};

pub const CA: &str = "/ca";
pub const JOIN: &str = "/join";
pub const RAFT_APPEND: &str = "/raft/append";
pub const RAFT_VOTE: &str = "/raft/vote";
pub const RAFT_SNAPSHOT: &str = "/raft/snapshot";
pub const RAFT_PROPOSE: &str = "/raft/propose";
pub const RAFT_JOIN: &str = "/raft/join";
pub const SESSION: &str = "/dispatcher/session";
pub const REPORT: &str = "/dispatcher/report";
pub const HEARTBEAT: &str = "/dispatcher/heartbeat";
/// A standalone container's place on an attachable overlay: `AttachRequest` in,
/// `Option<NetworkAttachment>` out (`None` for a check only).
pub const ATTACH: &str = "/dispatcher/attach";
/// `DetachRequest` in, `{}` out.
pub const DETACH: &str = "/dispatcher/detach";
pub const RENEW: &str = "/certs/renew";
pub const LOGS: &str = "/agent/logs";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CaReply {
    pub trust: Vec<String>,
}

/// A forwarded proposal's outcome. Each of the leader's errors comes back as itself, so the
/// follower's caller gets the status and message the leader's caller would have.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposeReply {
    Applied(Applied),
    NotLeader { leader: u64 },
    NoLeader,
    NoQuorum(String),
    ShuttingDown,
    Failed(String),
}

impl From<Result<Applied, ProposeError>> for ProposeReply {
    fn from(r: Result<Applied, ProposeError>) -> Self {
        match r {
            Ok(a) => ProposeReply::Applied(a),
            Err(ProposeError::NotLeader { leader }) => ProposeReply::NotLeader { leader },
            Err(ProposeError::NoLeader) => ProposeReply::NoLeader,
            Err(ProposeError::NoQuorum(why)) => ProposeReply::NoQuorum(why),
            Err(ProposeError::ShuttingDown) => ProposeReply::ShuttingDown,
            // The cause's chain, flattened once here at the wire; the follower wraps it back
            // in `Raft`, so both sides print the same chain.
            Err(ProposeError::Raft(cause)) => ProposeReply::Failed(chain(&*cause)),
        }
    }
}

impl From<ProposeReply> for Result<Applied, ProposeError> {
    fn from(r: ProposeReply) -> Self {
        match r {
            ProposeReply::Applied(a) => Ok(a),
            ProposeReply::NotLeader { leader } => Err(ProposeError::NotLeader { leader }),
            ProposeReply::NoLeader => Err(ProposeError::NoLeader),
            ProposeReply::NoQuorum(why) => Err(ProposeError::NoQuorum(why)),
            ProposeReply::ShuttingDown => Err(ProposeError::ShuttingDown),
            ProposeReply::Failed(m) => Err(ProposeError::Raft(Remote::cause(m))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A follower forwards a write to the leader; whatever the leader's store answers must reach
    /// the follower's caller unchanged (and so map to the same HTTP status).
    #[test]
    fn a_forwarded_proposal_error_comes_back_as_itself() {
        let errors = [
            ProposeError::NotLeader { leader: 3 },
            ProposeError::NoLeader,
            ProposeError::NoQuorum("this manager leads but has not heard from a majority".into()),
            ProposeError::ShuttingDown,
            ProposeError::Raft(shoal_types::error::Cause::new(
                std::io::Error::from_raw_os_error(28),
            )),
        ];
        for e in errors {
            let json = serde_json::to_string(&ProposeReply::from(Err(e.clone())))
                .unwrap_or_else(|err| panic!("{e:?} does not encode: {err}"));
            let reply: ProposeReply = serde_json::from_str(&json)
                .unwrap_or_else(|err| panic!("{json} does not decode: {err}"));
            match Result::<Applied, ProposeError>::from(reply) {
                Err(back) => {
                    assert_eq!(chain(&back), chain(&e));
                    let (a, b) = (
                        shoal_manager::error::from_propose(back),
                        shoal_manager::error::from_propose(e),
                    );
                    assert_eq!(a.status(), b.status());
                    assert_eq!(a.to_string(), b.to_string());
                }
                Ok(_) => panic!("{e:?} came back applied"),
            }
        }
    }
}

/// A snapshot chunk: openraft's request with the data as base64 instead of a JSON number list.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SnapshotChunk {
    pub vote: openraft::Vote<u64>,
    pub meta: openraft::SnapshotMeta<u64, openraft::BasicNode>,
    pub offset: u64,
    pub data: String,
    pub done: bool,
}

/// A manager asking the leader for a seat among the voters.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RaftJoin {
    pub raft_id: u64,
    pub addr: String,
}

/// Errors a manager answers when it cannot serve something only the leader serves.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NotLeader {
    pub message: String,
    /// The leader's RPC endpoint, when known.
    pub leader: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionOpen {
    pub description: NodeDescription,
    /// The endpoint the node serves RPC on (`ip:port`).
    pub endpoint: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HeartbeatReply {
    pub period: std::time::Duration,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LogsRequest {
    pub task_id: Id,
    pub follow: bool,
    pub tail: Option<usize>,
    pub since: Timestamp,
    pub stdout: bool,
    pub stderr: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct WireLogLine {
    pub time: Timestamp,
    pub stderr: bool,
    /// The line's bytes as base64: logs need not be UTF-8.
    pub line: String,
}
