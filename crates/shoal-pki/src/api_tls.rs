//! The rustls configurations of the daemon's Docker-compatible API, as dockerd and the docker CLI
//! use TLS (`--tls`, `--tlsverify`, `--tlscacert`, `--tlscert`, `--tlskey`).
//!
//! - Server ([`api_server_config`]): presents its chain; with client roots (`--tlsverify`) every
//!   client must present a certificate that chains to them, or the handshake fails. A node
//!   certificate (OU `swarm-manager`/`swarm-worker`) is refused even when it chains: a node's key
//!   lives on that node, and letting it drive the API would turn a compromised worker into the
//!   whole cluster.
//! - Client ([`api_client_config`]): with roots, checks the server's chain and that it names the
//!   dialled host (docker's `--tlsverify`); without, accepts any server key that signs the
//!   handshake (docker's `--tls` alone). Presents a client certificate when given one.
//!
//! PEM reading ([`pem_certs`], [`pem_key`]) names the file at fault; a key that does not belong to
//! its certificate is caught here, before rustls, with a message that says so.
//!
//! Concurrency: immutable `Arc`ed configurations, as in [`crate::tls`].

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::ca::{cert_err, cert_err_from, certs_of, parse_cert};
use crate::{MANAGER_OU, PkiError, WORKER_OU, crypto_provider};

/// HTTP/1.1 only: the docker CLI and SDKs speak it over TLS, and the API server is HTTP/1.1.
const ALPN: &[&[u8]] = &[b"http/1.1"];

/// A certificate and what follows it in a PEM text, refusing texts without one.
pub fn pem_certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = certs_of(pem, what)?;
    if certs.is_empty() {
        return Err(cert_err(what, "no CERTIFICATE block in the PEM text"));
    }
    Ok(certs)
}

/// The private key in a PEM text (PKCS#8, PKCS#1 RSA or SEC1 EC, as openssl writes them).
pub fn pem_key(pem: &str, what: &'static str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::Key {
        what,
        why: "no valid PEM private key in it".into(),
        source: Some(e.into()),
    })
}

/// Refuses a key that is not the certificate's: rustls would only say the handshake failed.
fn check_pair(
    provider: &CryptoProvider,
    leaf: &CertificateDer<'_>,
    key: &PrivateKeyDer<'static>,
    what: &'static str,
) -> Result<(), PkiError> {
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| PkiError::Key {
            what,
            why: "unsupported private key".into(),
            source: Some(Box::new(e)),
        })?;
    let cert = parse_cert(leaf, what)?;
    match signing.public_key() {
        Some(spki) if spki.as_ref() != cert.public_key().raw => Err(PkiError::Key {
            what,
            why: "does not belong to the certificate".into(),
            source: None,
        }),
        _ => Ok(()),
    }
}

/// Every certificate of every PEM text, as trust roots.
fn roots(pems: &[String], what: &'static str) -> Result<Arc<RootCertStore>, PkiError> {
    let mut store = RootCertStore::empty();
    for pem in pems {
        for der in pem_certs(pem, what)? {
            store
                .add(der)
                .map_err(|e| cert_err_from(what, "refused as a trust root", e))?;
        }
    }
    if store.is_empty() {
        return Err(cert_err(what, "no certificate to trust"));
    }
    Ok(Arc::new(store))
}

fn tls_err(doing: &'static str) -> impl FnOnce(rustls::Error) -> PkiError {
    move |e| PkiError::Tls {
        doing,
        source: Some(Box::new(e)),
    }
}

/// The API server's configuration: presents `chain` with `key`; with `client_roots`, requires
/// a client certificate chaining to them that is not a node certificate.
pub fn api_server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_roots: Option<&[String]>,
) -> Result<Arc<ServerConfig>, PkiError> {
    let provider = crypto_provider();
    let leaf = chain
        .first()
        .ok_or_else(|| cert_err("server certificate", "the chain is empty"))?;
    check_pair(&provider, leaf, &key, "server key")?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("choosing the protocol versions"))?;
    let builder = match client_roots {
        Some(pems) => {
            let inner = WebPkiClientVerifier::builder_with_provider(
                roots(pems, "client CA certificate")?,
                provider,
            )
            .build()
            .map_err(|e| PkiError::Tls {
                doing: "building the client certificate verifier",
                source: Some(Box::new(e)),
            })?;
            builder.with_client_cert_verifier(Arc::new(NotANode { inner }))
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(tls_err("server certificate and key refused"))?;
    cfg.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// A client's configuration: with `server_roots`, verifies the server by them and the name
/// dialled; without, accepts any server (docker's `--tls` without `--tlsverify`). Presents
/// `identity` (chain and key) when given.
pub fn api_client_config(
    server_roots: Option<&[String]>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, PkiError> {
    let provider = crypto_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("choosing the protocol versions"))?;
    let verifier: Arc<dyn ServerCertVerifier> = match server_roots {
        Some(pems) => WebPkiServerVerifier::builder_with_provider(
            roots(pems, "CA certificate")?,
            provider.clone(),
        )
        .build()
        .map_err(|e| PkiError::Tls {
            doing: "building the server certificate verifier",
            source: Some(Box::new(e)),
        })?,
        None => Arc::new(AnyServer {
            provider: provider.clone(),
        }),
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match identity {
        Some((chain, key)) => {
            let leaf = chain
                .first()
                .ok_or_else(|| cert_err("client certificate", "the chain is empty"))?;
            check_pair(&provider, leaf, &key, "client key")?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(tls_err("client certificate and key refused"))?
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// Whether a certificate's subject names a node role: such certificates never open the API.
fn is_node_certificate(der: &CertificateDer<'_>) -> bool {
    let Ok(cert) = parse_cert(der, "client certificate") else {
        return false;
    };
    cert.subject()
        .iter_organizational_unit()
        .filter_map(|ou| ou.as_str().ok())
        .any(|ou| ou == MANAGER_OU || ou == WORKER_OU)
}

/// WebPKI client verification (mandatory), then: not a node certificate.
#[derive(Debug)]
struct NotANode {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for NotANode {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if is_node_certificate(end_entity) {
            return Err(rustls::Error::General(
                "a node certificate cannot be used as an API client certificate".into(),
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any server certificate but still checks the handshake signatures: docker's
/// `--tls` without `--tlsverify` (encrypted, not authenticated).
#[derive(Debug)]
struct AnyServer {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{ApiCertKind, NodeRole, RootCa, new_key_and_csr};
    use shoal_types::{Id, Timestamp};

    const DAY: Duration = Duration::from_secs(86_400);

    fn now() -> Timestamp {
        Timestamp(1_700_000_000_000_000_000)
    }

    #[test]
    fn a_key_for_another_certificate_is_named() {
        let ca = RootCa::generate("c1", 10 * DAY, now()).expect("ca");
        let (_, csr) = new_key_and_csr().expect("csr");
        let (other_key, _) = new_key_and_csr().expect("other");
        let kind = ApiCertKind::Server {
            dns_names: vec!["localhost".into()],
            ips: vec![],
        };
        let cert = ca.issue_api(&csr, &kind, "c1", DAY, now()).expect("cert");
        let chain = pem_certs(&cert, "server certificate").expect("chain");
        let key = pem_key(&other_key, "server key").expect("key");
        let e = api_server_config(chain, key, None).expect_err("mismatch");
        assert!(e.to_string().contains("does not belong"), "{e}");
        assert!(pem_key("junk", "server key").is_err());
        assert!(pem_certs("junk", "server certificate").is_err());
    }

    /// Runs a TLS handshake between the two configurations in memory.
    fn handshake(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> Result<(), String> {
        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let mut c = rustls::ClientConnection::new(client, name).map_err(|e| e.to_string())?;
        let mut s = rustls::ServerConnection::new(server).map_err(|e| e.to_string())?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).map_err(|e| e.to_string())?;
            }
            s.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
            s.process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).map_err(|e| e.to_string())?;
            }
            c.read_tls(&mut buf.as_slice()).map_err(|e| e.to_string())?;
            c.process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
            if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() {
                return Ok(());
            }
        }
        Err("the handshake did not finish".into())
    }

    #[test]
    fn the_api_lets_in_only_client_certificates_of_its_roots() {
        let ca = RootCa::generate("c1", 10 * DAY, now_real()).expect("ca");
        let issue = |kind: &ApiCertKind| {
            let (key, csr) = new_key_and_csr().expect("csr");
            let cert = ca
                .issue_api(&csr, kind, "c1", DAY, now_real())
                .expect("cert");
            (
                pem_certs(&cert, "c").expect("pem"),
                pem_key(&key, "k").expect("key"),
            )
        };
        let (chain, key) = issue(&ApiCertKind::Server {
            dns_names: vec!["localhost".into()],
            ips: vec![],
        });
        let trust = [ca.cert_pem.clone()];
        let server = api_server_config(chain, key, Some(&trust)).expect("server");
        let client = |id| api_client_config(Some(&trust), id).expect("client");

        let alice = issue(&ApiCertKind::Client {
            name: "alice".into(),
        });
        assert_eq!(handshake(server.clone(), client(Some(alice))), Ok(()));
        let e = handshake(server.clone(), client(None)).expect_err("no certificate");
        assert!(e.contains("server"), "{e}");

        let (node_key, csr) = new_key_and_csr().expect("csr");
        let node = ca
            .issue(
                &csr,
                &Id::from_raw("a".repeat(25)),
                NodeRole::Manager,
                "c1",
                DAY,
                now_real(),
            )
            .expect("node");
        let node = (
            pem_certs(&node, "n").expect("pem"),
            pem_key(&node_key, "k").expect("key"),
        );
        let e = handshake(server.clone(), client(Some(node))).expect_err("node certificate");
        assert!(e.contains("node certificate"), "{e}");

        let other = RootCa::generate("c2", 10 * DAY, now_real()).expect("other");
        let (k, csr) = new_key_and_csr().expect("csr");
        let foreign = other
            .issue_api(
                &csr,
                &ApiCertKind::Client { name: "eve".into() },
                "c2",
                DAY,
                now_real(),
            )
            .expect("foreign");
        let foreign = (
            pem_certs(&foreign, "f").expect("pem"),
            pem_key(&k, "k").expect("key"),
        );
        assert!(handshake(server.clone(), client(Some(foreign))).is_err());

        // A client that trusts another root refuses the server; `--tls` alone accepts it.
        let wary =
            api_client_config(Some(std::slice::from_ref(&other.cert_pem)), None).expect("client");
        let e = handshake(server.clone(), wary).expect_err("unknown server");
        assert!(e.contains("client"), "{e}");
        let open = api_server_config(
            issue(&ApiCertKind::Server {
                dns_names: vec!["localhost".into()],
                ips: vec![],
            })
            .0,
            issue(&ApiCertKind::Client { name: "x".into() }).1,
            None,
        );
        assert!(open.is_err(), "a key for another certificate");
    }

    /// Handshakes check validity against the wall clock, so these certificates start now.
    fn now_real() -> Timestamp {
        use shoal_types::Clock;
        shoal_types::clock::SystemClock.now()
    }

    #[test]
    fn node_certificates_are_recognised() {
        let ca = RootCa::generate("c1", 10 * DAY, now()).expect("ca");
        let (_, csr) = new_key_and_csr().expect("csr");
        let id = Id::from_raw("a".repeat(25));
        let node = ca
            .issue(&csr, &id, NodeRole::Worker, "c1", DAY, now())
            .expect("node");
        let client = ca
            .issue_api(
                &csr,
                &ApiCertKind::Client { name: "u".into() },
                "c1",
                DAY,
                now(),
            )
            .expect("client");
        let der = |pem: &str| pem_certs(pem, "c").expect("pem").remove(0);
        assert!(is_node_certificate(&der(&node)));
        assert!(!is_node_certificate(&der(&client)));
    }
}
