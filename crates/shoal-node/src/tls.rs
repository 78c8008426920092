//! This node's credentials and the TLS configurations built from them. A renewed certificate or
//! a new trust bundle is saved first, then published to the RPC server and client through
//! watches, so new connections use it at once and nothing restarts.

use std::sync::{Arc, RwLock};

use shoal_pki::Credentials;
use tokio::sync::watch;

use crate::vault::{Vault, VaultError};

pub struct Tls {
    /// Where the credentials are saved, sealing the key while the swarm is autolocked.
    vault: Arc<Vault>,
    creds: RwLock<Credentials>,
    server: watch::Sender<Arc<rustls::ServerConfig>>,
    client: watch::Sender<Arc<rustls::ClientConfig>>,
    trust: watch::Sender<Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("node credentials")]
    Pki(#[from] shoal_pki::PkiError),
    #[error("saving node credentials")]
    Save(#[source] VaultError),
}

impl Tls {
    pub(crate) fn new(vault: Arc<Vault>, creds: Credentials) -> Result<Tls, TlsError> {
        let server = shoal_pki::server_config(&creds)?;
        let client = shoal_pki::client_config(Some(&creds), &creds.trust)?;
        let (server, _) = watch::channel(server);
        let (client, _) = watch::channel(client);
        let (trust, _) = watch::channel(creds.trust.clone());
        Ok(Tls {
            vault,
            creds: RwLock::new(creds),
            server,
            client,
            trust,
        })
    }

    pub fn creds(&self) -> Credentials {
        self.creds.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Saves `creds` and switches to them.
    pub fn update(&self, creds: Credentials) -> Result<(), TlsError> {
        let server = shoal_pki::server_config(&creds)?;
        let client = shoal_pki::client_config(Some(&creds), &creds.trust)?;
        self.vault.save_creds(&creds).map_err(TlsError::Save)?;
        self.trust.send_replace(creds.trust.clone());
        *self.creds.write().unwrap_or_else(|p| p.into_inner()) = creds;
        self.server.send_replace(server);
        self.client.send_replace(client);
        Ok(())
    }

    pub fn server(&self) -> watch::Receiver<Arc<rustls::ServerConfig>> {
        self.server.subscribe()
    }

    pub fn client(&self) -> watch::Receiver<Arc<rustls::ClientConfig>> {
        self.client.subscribe()
    }

    pub fn trust(&self) -> watch::Receiver<Vec<String>> {
        self.trust.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Credentials whose key is not a key: the TLS error's cause is the PKI error, whose cause
    /// is the PEM reader's; the chain reads from the node's credentials down to the parser.
    #[test]
    fn unusable_credentials_show_the_pki_error_as_the_source() {
        let now = shoal_types::Timestamp::from_unix_nanos(1_700_000_000_000_000_000);
        let ca =
            shoal_pki::RootCa::generate("cluster-a", std::time::Duration::from_secs(3600), now)
                .expect("ca");
        let creds = Credentials {
            key_pem: "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n".into(),
            cert_pem: ca.cert_pem.clone(),
            intermediate_pem: None,
            trust: vec![ca.cert_pem.clone()],
        };
        let dir = tempfile::tempdir().expect("tmp");
        let vault = Arc::new(crate::vault::Vault::create(dir.path()).expect("vault"));
        let Err(err) = Tls::new(vault, creds) else {
            panic!("a key that is not a key was accepted");
        };
        let pki = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<shoal_pki::PkiError>())
            .expect("the PKI error is the source");
        let parser = std::error::Error::source(pki).expect("the PEM reader's error");
        assert_eq!(
            shoal_types::error::chain(&err),
            format!("node credentials: node key: not a valid PEM private key: {parser}")
        );
    }
}
