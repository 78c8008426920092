//! What a control or node call can fail with, split by what the caller can do about it, and the
//! HTTP status each kind answers with. Every HTTP surface maps errors through [`ControlError::status`]
//! and [`NodeError::status`]; an error that came from another manager over HTTP is rebuilt with
//! [`ControlError::from_status`], so it keeps the status and message the leader gave it.

use http::StatusCode;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ControlError {
    #[error("{kind} {name} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {prefix} is ambiguous ({matches} matches found)")]
    Ambiguous {
        kind: &'static str,
        prefix: String,
        matches: usize,
    },
    #[error("{field}: {why}")]
    InvalidArgument { field: String, why: String },
    /// The object changed since the caller read it, or a name is taken.
    #[error("{0}")]
    Conflict(String),
    /// The request is valid but the cluster's current state forbids it (e.g. removing the last
    /// manager).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The caller may not do this to this object (Swarm's `PermissionDenied`: attaching a
    /// container to a network that is not attachable).
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// Another manager refused the call over HTTP: its status and message, unchanged.
    #[error("{message}")]
    Remote { status: u16, message: String },
}

impl ControlError {
    pub fn invalid(field: impl Into<String>, why: impl Into<String>) -> Self {
        ControlError::InvalidArgument {
            field: field.into(),
            why: why.into(),
        }
    }

    /// The HTTP status this error answers with, on every HTTP surface: Docker clients branch on
    /// 404 (unknown object), 409 (conflict) and 503 (this node cannot serve it now).
    pub fn status(&self) -> StatusCode {
        match self {
            ControlError::NotFound { .. } => StatusCode::NOT_FOUND,
            ControlError::Ambiguous { .. }
            | ControlError::InvalidArgument { .. }
            | ControlError::FailedPrecondition(_) => StatusCode::BAD_REQUEST,
            ControlError::Conflict(_) => StatusCode::CONFLICT,
            ControlError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            ControlError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ControlError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ControlError::Remote { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
        }
    }

    /// An error another manager answered with over HTTP (`status`, `message`), kept as it was
    /// so the caller of this manager sees what the caller of that one would have.
    pub fn from_status(status: u16, message: impl Into<String>) -> Self {
        ControlError::Remote {
            status,
            message: message.into(),
        }
    }
}

/// What a node-level call (init, join, leave) can fail with.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(
        "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one."
    )]
    AlreadyInSwarm,
    #[error("This node is not part of a swarm")]
    NotInSwarm,
    /// An autolocked manager that restarted: everything but unlock waits for the key.
    #[error(
        "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"docker swarm unlock\" to unlock it."
    )]
    Locked,
    #[error("swarm could not be unlocked: invalid key provided")]
    InvalidUnlockKey,
    #[error("swarm is not locked")]
    NotLocked,
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{field}: {why}")]
    InvalidArgument { field: String, why: String },
    /// The cluster could not be reached or refused (join, renewal).
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    /// A manager refused the call; its status and message are kept.
    #[error(transparent)]
    Control(#[from] ControlError),
}

impl NodeError {
    pub fn invalid(field: &str, why: impl Into<String>) -> Self {
        NodeError::InvalidArgument {
            field: field.into(),
            why: why.into(),
        }
    }

    /// The HTTP status this error answers with (see [`ControlError::status`]).
    pub fn status(&self) -> StatusCode {
        match self {
            NodeError::AlreadyInSwarm
            | NodeError::NotInSwarm
            | NodeError::Locked
            | NodeError::FailedPrecondition(_)
            | NodeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            NodeError::InvalidArgument { .. } => StatusCode::BAD_REQUEST,
            // Docker's statuses for these two.
            NodeError::InvalidUnlockKey => StatusCode::UNAUTHORIZED,
            NodeError::NotLocked => StatusCode::CONFLICT,
            NodeError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            NodeError::Control(e) => e.status(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_the_status_docker_clients_branch_on() {
        let cases = [
            (
                ControlError::NotFound {
                    kind: "service",
                    name: "web".into(),
                },
                404,
                "service web not found",
            ),
            (
                ControlError::Ambiguous {
                    kind: "node",
                    prefix: "a".into(),
                    matches: 2,
                },
                400,
                "node a is ambiguous (2 matches found)",
            ),
            (ControlError::invalid("Name", "empty"), 400, "Name: empty"),
            (ControlError::Conflict("taken".into()), 409, "taken"),
            (ControlError::FailedPrecondition("no".into()), 400, "no"),
            (
                ControlError::PermissionDenied("network x not manually attachable".into()),
                403,
                "network x not manually attachable",
            ),
            (ControlError::Unavailable("later".into()), 503, "later"),
            (
                ControlError::Internal("bug".into()),
                500,
                "internal error: bug",
            ),
        ];
        for (e, status, message) in cases {
            assert_eq!(e.status().as_u16(), status, "{e:?}");
            assert_eq!(e.to_string(), message);
        }
    }

    #[test]
    fn a_remote_error_keeps_its_status_and_message() {
        for original in [
            ControlError::NotFound {
                kind: "node",
                name: "n1".into(),
            },
            ControlError::Conflict("update out of sequence".into()),
            ControlError::Unavailable("no leader".into()),
            ControlError::invalid("JoinToken", "invalid join token"),
        ] {
            let forwarded =
                ControlError::from_status(original.status().as_u16(), original.to_string());
            assert_eq!(forwarded.status(), original.status());
            assert_eq!(forwarded.to_string(), original.to_string());
            let node = NodeError::from(forwarded);
            assert_eq!(node.status(), original.status());
            assert_eq!(node.to_string(), original.to_string());
        }
        // A status outside HTTP's range still answers, as a bad gateway.
        assert_eq!(
            ControlError::from_status(1000, "odd").status(),
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    fn node_errors_map_as_docker_answers_them() {
        assert_eq!(NodeError::AlreadyInSwarm.status(), 503);
        assert_eq!(NodeError::NotInSwarm.status(), 503);
        assert_eq!(NodeError::invalid("ListenAddr", "bad").status(), 400);
        assert_eq!(NodeError::Internal("x".into()).status(), 500);
    }
}
