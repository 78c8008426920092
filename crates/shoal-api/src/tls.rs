//! The API over TLS: a listener that completes each TLS handshake on its own task and hands
//! axum only the connections that finished one, so a client that never handshakes (or sends
//! plain HTTP) holds up no one and reaches no handler.
//!
//! The configuration is asked for per connection ([`TlsSource`]): a daemon that serves with the
//! cluster's root builds it once the node is a manager and rebuilds it when the root changes;
//! until then connections are closed after a logged refusal.
//!
//! Concurrency: one accept task per listener (aborted when the listener is dropped) and one
//! short-lived task per handshake; finished connections pass through a bounded channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for axum to take them.
const BACKLOG: usize = 64;

/// Where each connection's TLS configuration comes from.
pub trait TlsSource: Send + Sync + 'static {
    /// The configuration for the next connection, or why none can be served now.
    fn config(&self) -> BoxFuture<'_, Result<Arc<rustls::ServerConfig>, String>>;
}

/// A fixed configuration (certificate files given on the command line).
impl TlsSource for Arc<rustls::ServerConfig> {
    fn config(&self) -> BoxFuture<'_, Result<Arc<rustls::ServerConfig>, String>> {
        Box::pin(async move { Ok(self.clone()) })
    }
}

/// A TCP listener whose connections are TLS streams that completed a handshake.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accept: tokio::task::AbortHandle,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, source: Arc<dyn TlsSource>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(BACKLOG);
        let accept = tokio::spawn(accept_loop(tcp, source, tx)).abort_handle();
        Ok(TlsListener { rx, local, accept })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    source: Arc<dyn TlsSource>,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match tcp.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors or a connection reset before accept: wait, try again.
                tracing::warn!(error = %e, "API: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let source = source.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let cfg = match source.config().await {
                Ok(cfg) => cfg,
                Err(why) => {
                    tracing::warn!(peer.addr = %peer, %why, "API: cannot serve TLS yet; connection closed");
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            let handshake = TlsAcceptor::from(cfg).accept(stream);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => {
                    tracing::info!(peer.addr = %peer, error = %e, "API: TLS handshake refused");
                }
                Err(_) => tracing::info!(peer.addr = %peer, "API: TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task is gone (only when aborted): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
