//! The rustls configurations every link uses (ring provider, TLS 1.2 and 1.3, ALPN `h2`).
//!
//! - Server: presents the node's chain. Client certificates are optional at the TLS layer (the
//!   join endpoint serves nodes that have none yet), but one that is presented must chain to the
//!   trusted roots and be within its validity, or the handshake fails. Handlers decide per
//!   endpoint from the peer's identity.
//! - Client: presents the node's chain when it has one, and accepts a server only if its chain
//!   reaches a trusted root and its SANs name `swarm-manager`, whatever address was dialled:
//!   managers are reached by IP, so the role stands in for a hostname, as in Swarm.
//! - Bootstrap client: for a node that has a join token but no root yet. It accepts any server
//!   certificate (still checking that the server holds its key) and records the chain, so the
//!   caller can fetch the root, compare its digest with the token's, and reconnect verified.
//!
//! Concurrency: configurations are immutable and shared through `Arc`; a renewed certificate or
//! a rotated root means building new ones. [`PeerChainRecorder`] is a mutex-guarded slot.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::ca::one_cert;
use crate::{Credentials, MANAGER_OU, PkiError};

/// The protocols servers offer: HTTP/2 first; HTTP/1.1 for tools such as curl.
const SERVER_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The one crypto provider shoal uses (ring; aws-lc is never linked).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_err<E: std::error::Error + Send + Sync + 'static>(
    doing: &'static str,
) -> impl FnOnce(E) -> PkiError {
    move |e| PkiError::Tls {
        doing,
        source: Some(Box::new(e)),
    }
}

fn root_store(trust: &[String]) -> Result<Arc<RootCertStore>, PkiError> {
    if trust.is_empty() {
        return Err(PkiError::Tls {
            doing: "no trusted root CA given",
            source: None,
        });
    }
    let mut store = RootCertStore::empty();
    for pem in trust {
        let der = one_cert(pem, "trusted root CA")?;
        store.add(der).map_err(tls_err("trusted root CA refused"))?;
    }
    Ok(Arc::new(store))
}

/// The server side of every link: presents `creds`, verifies client certificates against
/// `creds.trust` when they are presented.
pub fn server_config(creds: &Credentials) -> Result<Arc<ServerConfig>, PkiError> {
    let provider = crypto_provider();
    let roots = root_store(&creds.trust)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(tls_err("building the certificate verifier"))?;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err("choosing the protocol versions"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(creds.chain()?, creds.private_key()?)
        .map_err(tls_err("node certificate and key refused"))?;
    cfg.alpn_protocols = SERVER_ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// The client side of every link: presents `creds` when given, and accepts only servers whose
/// chain reaches one of `trust` and whose SANs name `swarm-manager`.
pub fn client_config(
    creds: Option<&Credentials>,
    trust: &[String],
) -> Result<Arc<ClientConfig>, PkiError> {
    let provider = crypto_provider();
    let inner = WebPkiServerVerifier::builder_with_provider(root_store(trust)?, provider.clone())
        .build()
        .map_err(tls_err("building the certificate verifier"))?;
    let verifier = Arc::new(ManagerVerifier { inner });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err("choosing the protocol versions"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match creds {
        Some(c) => builder
            .with_client_auth_cert(c.chain()?, c.private_key()?)
            .map_err(tls_err("node certificate and key refused"))?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// A client configuration for the one connection a joining node makes before it trusts
/// anything, and the recorder of the chain the server presented on it.
pub fn bootstrap_client_config() -> (Arc<ClientConfig>, PeerChainRecorder) {
    let provider = crypto_provider();
    let recorder = PeerChainRecorder::default();
    let verifier = Arc::new(RecordingVerifier {
        provider: provider.clone(),
        recorder: recorder.clone(),
    });
    // Infallible in practice: the ring provider supports both default TLS versions in every
    // rustls 0.23 release, and nothing here depends on input.
    #[allow(clippy::expect_used)]
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default TLS versions");
    let mut cfg = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    // Never resume: every bootstrap connection must run the verifier so the chain is recorded.
    cfg.resumption = rustls::client::Resumption::disabled();
    (Arc::new(cfg), recorder)
}

/// The chain the server presented on the last bootstrap handshake (leaf first).
#[derive(Clone, Default, Debug)]
pub struct PeerChainRecorder(Arc<Mutex<Vec<CertificateDer<'static>>>>);

impl PeerChainRecorder {
    /// The recorded chain, empty before any handshake.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn record(&self, chain: Vec<CertificateDer<'static>>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = chain;
    }
}

/// Verifies the chain as if the server had been dialled by the name `swarm-manager`.
#[derive(Debug)]
struct ManagerVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ManagerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let role = ServerName::try_from(MANAGER_OU)
            .map_err(|e| rustls::Error::General(format!("manager role as a name: {e}")))?;
        self.inner
            .verify_server_cert(end_entity, intermediates, &role, ocsp_response, now)
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

/// Trusts any chain, records it, and still checks the handshake signatures, so the recorded
/// leaf is one whose key the server holds.
#[derive(Debug)]
struct RecordingVerifier {
    provider: Arc<CryptoProvider>,
    recorder: PeerChainRecorder,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        self.recorder.record(chain);
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
