//! Certificates for the API, signed by the cluster's root on a manager: what a front end asks
//! for and what it gets back. The CA key stays on the manager; callers send a CSR for a key they
//! made themselves.
//!
//! Concurrency: plain values.

use std::net::IpAddr;
use std::time::Duration;

use shoal_types::Timestamp;

/// What the certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiCertUse {
    /// A user's client certificate, issued to `name` (its common name).
    Client { name: String },
    /// A daemon's own API server certificate for these names and addresses.
    Server {
        dns_names: Vec<String>,
        ips: Vec<IpAddr>,
    },
}

#[derive(Debug, Clone)]
pub struct ApiCertRequest {
    pub usage: ApiCertUse,
    /// A PEM certificate signing request for the caller's own key.
    pub csr_pem: String,
    /// How long the certificate is valid; the swarm's node certificate expiry when `None`.
    pub expiry: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct ApiCertificate {
    /// The certificate, followed by the intermediate while the root is being rotated.
    pub cert_pem: String,
    /// The roots to trust (one, or two during a rotation), each a PEM certificate.
    pub trust: Vec<String>,
    pub not_after: Timestamp,
}
