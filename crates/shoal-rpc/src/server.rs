//! The server side: accepting TLS connections, serving an axum router over HTTP/2 (or
//! HTTP/1.1), telling handlers who the peer is, and streaming NDJSON.
//!
//! Concurrency: [`serve`] runs one task per connection in a `JoinSet` it owns. Each connection
//! takes the TLS configuration current when it is accepted, so a certificate renewed or a root
//! rotated through the watch applies to new connections at once while existing ones finish on
//! the old one. When `shutdown` flips, `serve` stops accepting, asks every connection to finish
//! gracefully (HTTP/2 GOAWAY: in-flight requests complete), and after [`DRAIN`] aborts what is
//! left (long-lived streams), so it always returns.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use shoal_pki::Identity;
use shoal_types::error::Chain;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::error_response;

/// How long a client has to finish the TLS handshake before its connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connections get to finish after shutdown before they are aborted.
pub const DRAIN: Duration = Duration::from_secs(5);
/// HTTP/2 pings on idle connections, so dead peers are noticed and their streams end.
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub(crate) const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Who is on the other end of a request, attached to every request as an extension (and an
/// extractor). `identity` is `None` when the client presented no certificate; a certificate that
/// did not verify never gets this far (the handshake fails).
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub identity: Option<Identity>,
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Peer>().cloned().ok_or_else(|| {
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no peer information: this router is not served by shoal_rpc::serve",
            )
        })
    }
}

/// An extractor for endpoints only cluster members may call: the verified identity of the
/// client certificate, or 403 with a JSON message when the client presented none.
#[derive(Clone, Debug)]
pub struct RequirePeer(pub Identity);

impl<S: Send + Sync> FromRequestParts<S> for RequirePeer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let peer = Peer::from_request_parts(parts, state).await?;
        peer.identity.map(RequirePeer).ok_or_else(|| {
            error_response(
                StatusCode::FORBIDDEN,
                "this endpoint requires a client certificate issued by the cluster's CA",
            )
        })
    }
}

/// Serves `router` on `listener` over TLS until `shutdown` flips to true (or its sender is
/// dropped). See the module docs for how configuration changes and shutdown apply.
pub async fn serve(
    listener: TcpListener,
    tls: watch::Receiver<Arc<rustls::ServerConfig>>,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1().timer(TokioTimer::new());
    http.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .adaptive_window(true);
    let mut conns = JoinSet::new();
    loop {
        if *shutdown.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, addr)) => {
                    let cfg = tls.borrow().clone();
                    conns.spawn(serve_conn(tcp, addr, cfg, router.clone(), http.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // Per-connection failures (reset before accept) and descriptor exhaustion
                    // pass; back off a little so the latter does not spin.
                    warn!(error = %Chain(&e), "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let drained =
        tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        debug!(
            connections = conns.len(),
            "aborting connections still open after the drain period"
        );
        conns.shutdown().await;
    }
    Ok(())
}

async fn serve_conn(
    tcp: TcpStream,
    addr: SocketAddr,
    cfg: Arc<rustls::ServerConfig>,
    router: Router,
    http: auto::Builder<TokioExecutor>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Heartbeats are tiny and latency-bound: never wait for Nagle.
    let _ = tcp.set_nodelay(true);
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            debug!(peer.addr = %addr, error = %Chain(&e), "TLS handshake refused");
            return;
        }
        Err(_) => {
            debug!(peer.addr = %addr, "TLS handshake timed out");
            return;
        }
    };
    let identity = match stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
    {
        None => None,
        Some(leaf) => match shoal_pki::identity_of_der(leaf) {
            Ok(id) => Some(id),
            Err(e) => {
                // Verified against our roots yet not a node certificate: treat as anonymous.
                warn!(peer.addr = %addr, error = %Chain(&e), "client certificate names no node");
                None
            }
        },
    };
    let peer = Peer { addr, identity };
    let svc = router.map_request(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(peer.clone());
        req
    });
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    debug!(peer.addr = %addr, error = %Chain(&*e), "connection ended with an error");
                }
                return;
            }
            changed = shutdown.changed(), if !draining => {
                if changed.is_err() || *shutdown.borrow() {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// The server side of [`RpcClient::stream`](crate::RpcClient::stream): a response whose body is
/// one JSON document per line, each written as soon as `s` yields it. The response ends when `s`
/// does; if the client goes away, `s` is dropped.
pub fn ndjson<S, T>(s: S) -> Response
where
    S: Stream<Item = T> + Send + 'static,
    T: Serialize,
{
    let lines = s.map(|item| {
        let mut line = serde_json::to_vec(&item)?;
        line.push(b'\n');
        Ok::<Bytes, serde_json::Error>(Bytes::from(line))
    });
    let mut resp = Body::from_stream(lines).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}
