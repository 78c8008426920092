//! Dialing the daemon: parsing `-H` addresses, opening unix or TCP connections (TCP optionally
//! over TLS, see [`crate::tls`]), HTTP/1.1 handshakes with hyper, and a small pool of idle
//! connections.
//!
//! Concurrency: [`Transport`] is shared by reference; the idle pool is a mutex held only to push or
//! pop a sender, never across an await. A connection goes back to the pool only after its response
//! body was read to the end, so a pooled sender is always free for the next request; streaming
//! responses (logs) keep their connection to themselves.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use crate::error::{CliError, Result};

/// Where the daemon listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `host:port`, as given (names are resolved when dialing).
    Tcp(String),
}

/// Docker's default port for plain-text TCP.
const DEFAULT_TCP_PORT: u16 = 2375;
/// Docker's default port for TCP with TLS.
const DEFAULT_TLS_PORT: u16 = 2376;

impl Endpoint {
    /// Parses docker's `-H` forms: `unix:///path`, a bare absolute path, `tcp://host[:port]`
    /// (also `http://`), with docker's plain-text default port.
    pub fn parse(host: &str) -> Result<Endpoint> {
        Endpoint::parse_for(host, false)
    }

    /// [`Endpoint::parse`], with docker's TLS default port (2376) when `tls`.
    pub fn parse_for(host: &str, tls: bool) -> Result<Endpoint> {
        let bad = || CliError::BadHost(host.to_string());
        if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(bad());
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if host.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(host)));
        }
        let rest = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
            .ok_or_else(bad)?;
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(bad());
        }
        // A port is present when the text after the last ':' is numeric and that ':' is not inside
        // an IPv6 literal's brackets.
        let has_port = match rest.rfind(':') {
            Some(i) => {
                let tail = &rest[i + 1..];
                !rest[i..].contains(']')
                    && !tail.is_empty()
                    && tail.bytes().all(|b| b.is_ascii_digit())
            }
            None => false,
        };
        if has_port {
            Ok(Endpoint::Tcp(rest.to_string()))
        } else {
            let port = if tls {
                DEFAULT_TLS_PORT
            } else {
                DEFAULT_TCP_PORT
            };
            Ok(Endpoint::Tcp(format!("{rest}:{port}")))
        }
    }

    /// The `Host` header: docker uses a fixed name over unix sockets.
    pub fn host_header(&self) -> String {
        match self {
            Endpoint::Unix(_) => "api.moby.localhost".to_string(),
            Endpoint::Tcp(addr) => addr.clone(),
        }
    }
}

pub type Sender = SendRequest<Full<Bytes>>;

/// Opens connections to one endpoint and keeps idle ones for reuse.
pub struct Transport {
    endpoint: Endpoint,
    /// The address as the user wrote it, for error messages.
    display: String,
    idle: Mutex<Vec<Sender>>,
    /// TLS for a TCP endpoint: the configuration and the name the server must prove.
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls_pki_types::ServerName<'static>,
    )>,
}

impl Transport {
    pub fn new(host: &str) -> Result<Transport> {
        Transport::with_tls(host, None)
    }

    /// A transport that speaks TLS to a `tcp://` host when `tls` is given (unix sockets ignore
    /// it, as docker's); the certificate files are read now, so a bad one fails before any
    /// request.
    pub fn with_tls(host: &str, tls: Option<&crate::tls::TlsSettings>) -> Result<Transport> {
        let endpoint = Endpoint::parse_for(host, tls.is_some())?;
        let tls = match (&endpoint, tls) {
            (Endpoint::Tcp(addr), Some(t)) => {
                Some((t.client_config()?, crate::tls::server_name(addr)?))
            }
            _ => None,
        };
        Ok(Transport {
            endpoint,
            display: host.to_string(),
            idle: Mutex::new(Vec::new()),
            tls,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// An idle connection when one is still open, else a new one; `true` when it came from the
    /// pool (the server may have closed it meanwhile, so a failed request on it may be retried).
    pub async fn checkout(&self) -> Result<(Sender, bool)> {
        loop {
            let candidate = match self.idle.lock() {
                Ok(mut idle) => idle.pop(),
                Err(_) => None,
            };
            match candidate {
                Some(mut sender) => {
                    if !sender.is_closed() && sender.ready().await.is_ok() {
                        return Ok((sender, true));
                    }
                }
                None => return Ok((self.connect().await?, false)),
            }
        }
    }

    /// A new connection, bypassing the pool.
    pub async fn fresh(&self) -> Result<Sender> {
        self.connect().await
    }

    /// Returns a connection whose last response was read to the end.
    pub fn checkin(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            // A handful is plenty: the CLI issues at most a few requests at once.
            if idle.len() < 4 {
                idle.push(sender);
            }
        }
    }

    async fn connect(&self) -> Result<Sender> {
        let connect_err = |source: std::io::Error| CliError::Connect {
            host: self.display.clone(),
            source,
        };
        match &self.endpoint {
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(connect_err)?;
                handshake(TokioIo::new(stream)).await
            }
            Endpoint::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr.as_str())
                    .await
                    .map_err(connect_err)?;
                // Small request/response exchanges: don't let Nagle add latency to polling.
                let _ = stream.set_nodelay(true);
                let Some((cfg, name)) = &self.tls else {
                    return handshake(TokioIo::new(stream)).await;
                };
                let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|e| {
                        CliError::Tls(format!("TLS handshake with {} failed: {e}", self.display))
                    })?;
                handshake(TokioIo::new(tls)).await
            }
        }
    }
}

async fn handshake<T>(io: T) -> Result<Sender>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(io)
        .await
        .map_err(|e| CliError::Http(shoal_types::error::chain(&e)))?;
    // The connection task ends when the server closes or every sender and body is dropped.
    // With upgrades, so exec and attach can take the connection over after a 101.
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_host_forms() {
        assert_eq!(
            Endpoint::parse("unix:///var/run/docker.sock").ok(),
            Some(Endpoint::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("/run/shoal.sock").ok(),
            Some(Endpoint::Unix("/run/shoal.sock".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:2376").ok(),
            Some(Endpoint::Tcp("127.0.0.1:2376".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp://localhost").ok(),
            Some(Endpoint::Tcp("localhost:2375".into()))
        );
        assert_eq!(
            Endpoint::parse("http://[::1]:8080/").ok(),
            Some(Endpoint::Tcp("[::1]:8080".into()))
        );
        assert_eq!(
            Endpoint::parse("tcp://[::1]").ok(),
            Some(Endpoint::Tcp("[::1]:2375".into()))
        );
    }

    #[test]
    fn rejects_unknown_schemes() {
        for bad in [
            "ssh://host",
            "https://h:1",
            "unix://",
            "tcp://",
            "tcp://h:1/path",
            "localhost",
        ] {
            assert!(
                matches!(Endpoint::parse(bad), Err(CliError::BadHost(_))),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn host_header_is_fixed_for_unix() {
        assert_eq!(
            Endpoint::Unix("/x".into()).host_header(),
            "api.moby.localhost"
        );
        assert_eq!(Endpoint::Tcp("h:1".into()).host_header(), "h:1");
    }
}
