//! The wall between front ends and the state. A front end (the Docker Engine API today, a
//! Kubernetes API later) sees a node through [`NodeSurface`] and, when the node is a manager,
//! the cluster through [`ControlSurface`]: validated writes, and read views computed by the
//! manager. Nothing here names the store or Raft, so a front end built on this crate cannot
//! reach around the manager.
//!
//! Errors are split by what the caller can do ([`ControlError`], [`NodeError`]); each knows its
//! HTTP status ([`ControlError::status`]), the one mapping every HTTP surface (the Docker API,
//! the node-to-node RPC) uses.

pub mod certs;
pub mod engine;
pub mod error;
pub mod surface;
pub mod views;

pub use certs::{ApiCertRequest, ApiCertUse, ApiCertificate};
pub use engine::{Engine, EngineError};
pub use error::{ControlError, NodeError};
pub use surface::{
    ChangeFeed, ClusterView, ControlSurface, InitRequest, JoinRequest, Membership, NodeSurface,
};
pub use views::{Quorum, RaftMembership, ServiceStatus};
