//! What a control call can fail with, split by what the caller can do about it.

use shoal_store::{OpError, ProposeError};

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
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ControlError {
    pub fn invalid(field: impl Into<String>, why: impl Into<String>) -> Self {
        ControlError::InvalidArgument {
            field: field.into(),
            why: why.into(),
        }
    }
}

impl From<ProposeError> for ControlError {
    fn from(e: ProposeError) -> Self {
        match e {
            ProposeError::NoLeader
            | ProposeError::NoQuorum(_)
            | ProposeError::NotLeader { .. }
            | ProposeError::ShuttingDown => ControlError::Unavailable(e.to_string()),
            ProposeError::Raft(m) => ControlError::Internal(m),
        }
    }
}

impl From<OpError> for ControlError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::NotFound { kind, id } => ControlError::NotFound {
                kind: kind.as_str(),
                name: id.to_string(),
            },
            OpError::VersionConflict { .. }
            | OpError::NameInUse { .. }
            | OpError::Exists { .. } => ControlError::Conflict(e.to_string()),
            OpError::NotPending { .. } | OpError::Aborted => ControlError::Conflict(e.to_string()),
        }
    }
}
