//! What a control call can fail with. The error type itself lives with the control surface
//! (`shoal-control`), so front ends can name it without the store; this module owns how the
//! store's errors become control errors.

use shoal_store::{OpError, ProposeError};

pub use shoal_control::ControlError;

/// A failed proposal: anything about leadership or quorum is "try again later" (503).
pub fn from_propose(e: ProposeError) -> ControlError {
    match e {
        ProposeError::NoLeader
        | ProposeError::NoQuorum(_)
        | ProposeError::NotLeader { .. }
        | ProposeError::ShuttingDown => ControlError::Unavailable(e.to_string()),
        // The wire carries text: the whole chain, built once here.
        ProposeError::Raft(_) => ControlError::Internal(shoal_types::error::chain(&e)),
    }
}

/// An operation the state machine refused.
pub fn from_op(e: &OpError) -> ControlError {
    match e {
        OpError::NotFound { kind, id } => ControlError::NotFound {
            kind: kind.as_str(),
            name: id.to_string(),
        },
        OpError::VersionConflict { .. }
        | OpError::NameInUse { .. }
        | OpError::Exists { .. }
        | OpError::NotPending { .. }
        | OpError::SubnetInUse { .. }
        | OpError::AddressInUse { .. }
        | OpError::Aborted => ControlError::Conflict(e.to_string()),
        OpError::PortInUse { .. } => ControlError::invalid("EndpointSpec.Ports", e.to_string()),
        OpError::AddressesExhausted { .. }
        | OpError::PortsExhausted { .. }
        | OpError::NetworkInUse { .. }
        | OpError::NetworkInUseByContainers { .. }
        | OpError::InUse { .. }
        | OpError::NoSuchVersion { .. }
        | OpError::Renamed { .. } => ControlError::FailedPrecondition(e.to_string()),
    }
}
