//! shoal's cluster PKI, after Swarm's: every cluster has its own root CA, every node holds a key
//! and a certificate that the CA issued for its node ID and role, and every link between nodes
//! is mutual TLS under that CA. This crate owns the crypto and nothing else: the CA and its
//! signing ([`RootCa`]), node identities read back from certificates ([`Identity`]), join tokens
//! ([`JoinToken`]), a node's credentials on disk ([`Credentials`]) and the rustls configurations
//! built from them ([`server_config`], [`client_config`], [`bootstrap_client_config`]); and the
//! certificates and TLS configurations of the daemon's Docker API ([`ApiCertKind`],
//! [`api_server_config`], [`api_client_config`]), kept apart from node certificates by their OU.
//!
//! It does no networking and never reads the clock: issuing and generating take a
//! [`Timestamp`](shoal_types::Timestamp) argument, and IDs come from an
//! [`IdGen`](shoal_types::IdGen). Key pairs and certificate serial numbers come from the
//! operating system's RNG (through ring), since they are cryptographic material, not logic.
//! Only the TLS handshake itself (inside rustls) compares certificates with the wall clock.
//!
//! Concurrency: every type here is a plain value (`Send + Sync`); the TLS configurations are
//! immutable `Arc`s, so a renewed certificate or a rotated root means building new ones.
//!
//! Certificate layout (Swarm's): CN = node ID, OU = `swarm-manager` | `swarm-worker`,
//! O = cluster ID, DNS SANs = the role name and the node ID. Clients check that a server names
//! `swarm-manager` in its SANs instead of checking a hostname, since managers are reached by IP.

mod api_cert;
mod api_tls;
mod ca;
mod creds;
mod identity;
mod tls;
mod token;

pub use api_cert::{API_CLIENT_OU, API_SERVER_OU, ApiCertKind, check_client_name};
pub use api_tls::{api_client_config, api_server_config, pem_certs, pem_key};
pub use ca::{RootCa, new_key_and_csr};
pub use creds::{CREDENTIALS_FILE, Credentials};
pub use identity::{Identity, identity_of_der, identity_of_pem};
pub use shoal_types::node::NodeRole;
pub use tls::{
    PeerChainRecorder, bootstrap_client_config, client_config, crypto_provider, server_config,
};
pub use token::JoinToken;

/// The common name of every cluster root, as in Swarm.
pub const CA_COMMON_NAME: &str = "swarm-ca";
/// The OU (and DNS SAN) of manager certificates; clients require it of the servers they reach.
pub const MANAGER_OU: &str = "swarm-manager";
/// The OU (and DNS SAN) of worker certificates.
pub const WORKER_OU: &str = "swarm-worker";

/// The OU a certificate carries for `role`.
pub fn role_ou(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Manager => MANAGER_OU,
        NodeRole::Worker => WORKER_OU,
    }
}

/// What went wrong, naming the input at fault. No variant ever carries a private key or a join
/// token's secret.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A certificate (named by `what`) could not be read or does not fit its use; `why` says
    /// which check failed, `source` is the parser's or verifier's own error where there is one.
    #[error("{what}: {why}")]
    Certificate {
        what: &'static str,
        why: String,
        #[source]
        source: Option<Cause>,
    },
    /// A private key (named by `what`) could not be read or does not match its certificate.
    #[error("{what}: {why}")]
    Key {
        what: &'static str,
        why: String,
        #[source]
        source: Option<Cause>,
    },
    /// A certificate signing request was malformed or its signature did not verify.
    #[error("certificate signing request")]
    Csr(#[source] rcgen::Error),
    /// An argument was out of range (`field` names it).
    #[error("{field}: {why}")]
    InvalidArgument { field: &'static str, why: String },
    /// This node trusts the root but does not hold its key, so it cannot sign.
    #[error("this root CA cannot sign here: its private key is not held by this node")]
    NoSigningKey,
    /// A join token did not parse; the message says which part is wrong, never the secret.
    #[error("invalid join token: {0}")]
    Token(String),
    /// Building or signing a certificate failed inside the crypto library.
    #[error("signing a certificate")]
    Sign(#[source] Cause),
    /// The TLS library refused the credentials or trust roots while `doing` something.
    #[error("TLS configuration: {doing}")]
    Tls {
        doing: &'static str,
        #[source]
        source: Option<Cause>,
    },
}

/// A crypto or parser library's error, kept as the cause.
type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;
