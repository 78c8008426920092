//! Who a certificate names: node ID (CN), role (OU), cluster (O) and expiry. Reading an
//! identity does not verify anything: callers read identities only from chains the TLS layer
//! has already verified, or from their own credentials.
//!
//! Concurrency: pure functions over bytes.

use serde::{Deserialize, Serialize};
use shoal_types::{Id, Timestamp};
use x509_parser::x509::AttributeTypeAndValue;

use crate::ca::{cert_err, cert_err_from, certs_of, parse_cert};
use crate::{MANAGER_OU, NodeRole, PkiError, WORKER_OU};

const WHAT: &str = "node certificate";

/// The node a certificate was issued to, as the CA wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub node_id: Id,
    pub role: NodeRole,
    pub cluster_id: String,
    pub not_after: Timestamp,
}

/// The identity in a DER certificate.
pub fn identity_of_der(cert_der: &[u8]) -> Result<Identity, PkiError> {
    let cert = parse_cert(cert_der, WHAT)?;
    let subject = cert.subject();
    let cn = single(subject.iter_common_name(), "common name (node ID)")?;
    if !Id::is_well_formed(&cn) {
        return Err(cert_err(
            WHAT,
            format!("common name {cn:?} is not a node ID"),
        ));
    }
    let ou = single(
        subject.iter_organizational_unit(),
        "organizational unit (role)",
    )?;
    let role = match ou.as_str() {
        MANAGER_OU => NodeRole::Manager,
        WORKER_OU => NodeRole::Worker,
        other => {
            return Err(cert_err(
                WHAT,
                format!("organizational unit {other:?} is not {MANAGER_OU:?} or {WORKER_OU:?}"),
            ));
        }
    };
    let cluster_id = single(subject.iter_organization(), "organization (cluster ID)")?;
    let secs = cert.validity().not_after.timestamp();
    let not_after = Timestamp(secs.saturating_mul(1_000_000_000));
    Ok(Identity {
        node_id: Id::from_raw(cn),
        role,
        cluster_id,
        not_after,
    })
}

/// The identity in the first certificate of a PEM text (a leaf, possibly followed by its chain).
pub fn identity_of_pem(cert_pem: &str) -> Result<Identity, PkiError> {
    let certs = certs_of(cert_pem, WHAT)?;
    let der = certs
        .first()
        .ok_or_else(|| cert_err(WHAT, "no CERTIFICATE block in the PEM text"))?;
    identity_of_der(der)
}

fn single<'b, 'a: 'b>(
    mut values: impl Iterator<Item = &'b AttributeTypeAndValue<'a>>,
    field: &str,
) -> Result<String, PkiError> {
    let first = values
        .next()
        .ok_or_else(|| cert_err(WHAT, format!("has no {field}")))?;
    if values.next().is_some() {
        return Err(cert_err(WHAT, format!("has more than one {field}")));
    }
    first
        .as_str()
        .map(str::to_owned)
        .map_err(|e| cert_err_from(WHAT, format!("{field} is not a string"), e))
}
