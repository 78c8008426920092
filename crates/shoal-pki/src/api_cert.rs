//! Certificates for the daemon's Docker-compatible API, signed by the cluster root: a user's
//! client certificate (OU [`API_CLIENT_OU`], client auth only) and a manager's own API server
//! certificate (OU [`API_SERVER_OU`], server auth only, SANs for the names and addresses clients
//! dial).
//!
//! Neither can stand in for a node certificate: [`identity_of_der`](crate::identity_of_der)
//! accepts only the two node OUs, so a node-to-node server treats an API certificate as
//! anonymous (it may only join, with a token, like any stranger), and neither names
//! `swarm-manager` in its SANs, which nodes require of the managers they dial.
//!
//! Concurrency: pure functions over values, like the rest of [`RootCa`].

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType,
};
use shoal_types::Timestamp;

use crate::ca::{BACKDATE, check_cluster_id, random_serial, sign_err, to_datetime};
use crate::{PkiError, RootCa};

/// The OU of a user's API client certificate.
pub const API_CLIENT_OU: &str = "shoal-api-client";
/// The OU of a manager's own API server certificate.
pub const API_SERVER_OU: &str = "shoal-api-server";
/// The common name of API server certificates (clients check the SANs, not this).
const API_SERVER_CN: &str = "shoal-api";
/// Longest client name: X.509's upper bound for a common name.
const MAX_NAME: usize = 64;

/// What an API certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiCertKind {
    /// A user's client certificate; `name` becomes its common name (who it was issued to).
    Client { name: String },
    /// A daemon's API server certificate for these DNS names and IP addresses.
    Server {
        dns_names: Vec<String>,
        ips: Vec<IpAddr>,
    },
}

/// Checks a client certificate's name: 1 to 64 letters, digits, `.`, `_`, `-` or `@`, so it
/// reads the same in a log line, a file name and a certificate subject.
pub fn check_client_name(name: &str) -> Result<(), PkiError> {
    let why = if name.is_empty() {
        "must not be empty".to_string()
    } else if name.len() > MAX_NAME {
        format!("{} characters is more than {MAX_NAME}", name.len())
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
    {
        format!("{name:?} holds {c:?}; use letters, digits, '.', '_', '-' or '@'")
    } else {
        return Ok(());
    };
    Err(PkiError::InvalidArgument { field: "name", why })
}

impl RootCa {
    /// Signs `csr_pem` as an API certificate of `kind`, O = `cluster_id`, valid from an hour
    /// before `now` until `now + expiry`. As with nodes, only the CSR's public key is used: the
    /// subject, SANs and usages come from `kind`. Returns the certificate in PEM.
    pub fn issue_api(
        &self,
        csr_pem: &str,
        kind: &ApiCertKind,
        cluster_id: &str,
        expiry: Duration,
        now: Timestamp,
    ) -> Result<String, PkiError> {
        check_cluster_id(cluster_id)?;
        if expiry.is_zero() {
            return Err(PkiError::InvalidArgument {
                field: "certificate expiry",
                why: "must be longer than zero".into(),
            });
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(PkiError::Csr)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        match kind {
            ApiCertKind::Client { name } => {
                check_client_name(name)?;
                dn.push(DnType::CommonName, name.as_str());
                dn.push(DnType::OrganizationalUnitName, API_CLIENT_OU);
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
            ApiCertKind::Server { dns_names, ips } => {
                if dns_names.is_empty() && ips.is_empty() {
                    return Err(PkiError::InvalidArgument {
                        field: "subject alternative names",
                        why: "a server certificate needs at least one name or address".into(),
                    });
                }
                dn.push(DnType::CommonName, API_SERVER_CN);
                dn.push(DnType::OrganizationalUnitName, API_SERVER_OU);
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                for n in dns_names {
                    let san = n
                        .as_str()
                        .try_into()
                        .map_err(|_| PkiError::InvalidArgument {
                            field: "subject alternative names",
                            why: format!("{n:?} is not a DNS name"),
                        })?;
                    params.subject_alt_names.push(SanType::DnsName(san));
                }
                params
                    .subject_alt_names
                    .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
            }
        }
        dn.push(DnType::OrganizationName, cluster_id);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_before = to_datetime(now.sub(BACKDATE), "not before")?;
        params.not_after = to_datetime(now.add(expiry), "certificate expiry")?;
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        let issuer = self.issuer(self.signing_key()?)?;
        let cert = params
            .signed_by(&csr.public_key, &issuer)
            .map_err(sign_err)?;
        Ok(cert.pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{identity_of_pem, new_key_and_csr};

    const DAY: Duration = Duration::from_secs(86_400);

    fn now() -> Timestamp {
        Timestamp(1_700_000_000_000_000_000)
    }

    #[test]
    fn client_names_are_checked() {
        assert!(check_client_name("alice@ops-1.example").is_ok());
        for bad in ["", "a b", "x/y", &"n".repeat(65)] {
            assert!(check_client_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn api_certificates_are_not_node_identities() {
        let ca = RootCa::generate("cluster1", 10 * DAY, now()).expect("ca");
        let (_, csr) = new_key_and_csr().expect("csr");
        for kind in [
            ApiCertKind::Client {
                name: "alice".into(),
            },
            ApiCertKind::Server {
                dns_names: vec!["localhost".into()],
                ips: vec![IpAddr::from([127, 0, 0, 1])],
            },
            ApiCertKind::Client {
                name: "a".repeat(25),
            },
        ] {
            let pem = ca
                .issue_api(&csr, &kind, "cluster1", DAY, now())
                .expect("issue");
            // Refused whatever its CN: the server certificate's CN is no node ID, and even a
            // client named like one carries an OU that is not a node role.
            assert!(identity_of_pem(&pem).is_err(), "{kind:?} read as a node");
        }
    }

    #[test]
    fn bad_requests_are_refused() {
        let ca = RootCa::generate("cluster1", 10 * DAY, now()).expect("ca");
        let (_, csr) = new_key_and_csr().expect("csr");
        let client = ApiCertKind::Client { name: "a".into() };
        assert!(ca.issue_api("junk", &client, "c", DAY, now()).is_err());
        assert!(
            ca.issue_api(&csr, &client, "c", Duration::ZERO, now())
                .is_err()
        );
        let empty = ApiCertKind::Server {
            dns_names: vec![],
            ips: vec![],
        };
        assert!(ca.issue_api(&csr, &empty, "c", DAY, now()).is_err());
        let cert_only = RootCa::from_pem(&ca.cert_pem, None).expect("cert only");
        assert!(matches!(
            cert_only.issue_api(&csr, &client, "c", DAY, now()),
            Err(PkiError::NoSigningKey)
        ));
    }
}
