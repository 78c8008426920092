//! Signing API certificates (a user's client certificate, a daemon's API server certificate)
//! with the cluster's root, on a manager, so the root's key never leaves it. Pure: the cluster
//! object and the time come in as arguments; nothing is written.
//!
//! During a root rotation the new root signs and the cross-signed intermediate goes along, as
//! for node certificates, so clients that trust either root accept the result.

use shoal_control::{ApiCertRequest, ApiCertUse, ApiCertificate};
use shoal_pki::{ApiCertKind, PkiError};
use shoal_types::Timestamp;
use shoal_types::cluster::Cluster;
use shoal_types::error::chain;

use crate::cluster::issuer;
use crate::error::ControlError;

/// Signs `req` with `c`'s root (the next one during a rotation).
pub fn issue(
    c: &Cluster,
    req: &ApiCertRequest,
    now: Timestamp,
) -> Result<ApiCertificate, ControlError> {
    let kind = match &req.usage {
        ApiCertUse::Client { name } => ApiCertKind::Client { name: name.clone() },
        ApiCertUse::Server { dns_names, ips } => ApiCertKind::Server {
            dns_names: dns_names.clone(),
            ips: ips.clone(),
        },
    };
    let expiry = req.expiry.unwrap_or(c.spec.node_cert_expiry);
    let (ca, intermediate, _) = issuer(c)?;
    let leaf = ca
        .issue_api(&req.csr_pem, &kind, c.id.as_str(), expiry, now)
        .map_err(|e| match &e {
            PkiError::InvalidArgument { field, .. } => ControlError::invalid(*field, chain(&e)),
            PkiError::Csr(_) => ControlError::invalid("CSR", chain(&e)),
            _ => ControlError::Internal(format!("signing an API certificate: {}", chain(&e))),
        })?;
    let cert_pem = match intermediate {
        Some(i) => format!("{leaf}{i}"),
        None => leaf,
    };
    Ok(ApiCertificate {
        cert_pem,
        trust: c.trust(),
        not_after: now.add(expiry),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::IdGen;
    use shoal_types::cluster::ClusterSpec;

    #[test]
    fn issues_client_certificates_and_names_bad_input() {
        let now = Timestamp(1_700_000_000_000_000_000);
        let mut ids = IdGen::seeded(7);
        let c = crate::cluster::new_cluster(ClusterSpec::default(), now, &mut ids).expect("c");
        let (_, csr) = shoal_pki::new_key_and_csr().expect("csr");
        let mut req = ApiCertRequest {
            usage: ApiCertUse::Client {
                name: "alice".into(),
            },
            csr_pem: csr,
            expiry: None,
        };
        let cert = issue(&c, &req, now).expect("issued");
        assert_eq!(cert.trust, c.trust());
        assert_eq!(cert.not_after, now.add(c.spec.node_cert_expiry));
        assert!(cert.cert_pem.contains("BEGIN CERTIFICATE"));
        req.usage = ApiCertUse::Client { name: "a/b".into() };
        let e = issue(&c, &req, now).expect_err("bad name");
        assert!(e.to_string().contains("name"), "{e}");
        req.usage = ApiCertUse::Client { name: "ok".into() };
        req.csr_pem = "junk".into();
        let e = issue(&c, &req, now).expect_err("bad csr");
        assert!(e.to_string().contains("CSR"), "{e}");
    }
}
