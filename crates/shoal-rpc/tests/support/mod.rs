//! Test support: a cluster CA that issues real credentials, a server on a loopback port with a
//! router that reports what it saw, and a TCP proxy that counts the connections made through it.
//! Certificates are issued at the real time because the TLS handshake checks them against the
//! wall clock.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, Version};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{Value, json};
use shoal_pki::{Credentials, NodeRole, RootCa, new_key_and_csr};
use shoal_rpc::{Peer, RequirePeer, RpcClient, error_response, ndjson};
use shoal_types::clock::{Clock, SystemClock};
use shoal_types::{Id, IdGen, Timestamp};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;

pub const DAY: Duration = Duration::from_secs(86_400);

pub fn now() -> Timestamp {
    SystemClock.now()
}

/// A cluster: its root and an ID generator for its nodes.
pub struct Cluster {
    pub id: String,
    pub ca: RootCa,
    ids: IdGen,
}

impl Cluster {
    pub fn new(id: &str, seed: u64) -> Cluster {
        Cluster {
            id: id.to_owned(),
            ca: RootCa::generate(id, Duration::from_secs(20 * 365 * 86_400), now()).expect("ca"),
            ids: IdGen::seeded(seed),
        }
    }

    pub fn node(&mut self, role: NodeRole) -> (Id, Credentials) {
        self.node_at(role, now(), 90 * DAY)
    }

    /// A node whose certificate was issued at `issued` for `expiry`.
    pub fn node_at(
        &mut self,
        role: NodeRole,
        issued: Timestamp,
        expiry: Duration,
    ) -> (Id, Credentials) {
        let id = self.ids.next_id();
        let (key, csr) = new_key_and_csr().expect("csr");
        let cert = self
            .ca
            .issue(&csr, &id, role, &self.id, expiry, issued)
            .expect("issue");
        let creds = Credentials {
            key_pem: key,
            cert_pem: cert,
            intermediate_pem: None,
            trust: vec![self.ca.cert_pem.clone()],
        };
        (id, creds)
    }
}

/// What the test router shares with the test.
#[derive(Clone, Default)]
pub struct Seen {
    /// Requests that reached a handler.
    pub handled: Arc<AtomicUsize>,
    /// The producer side of the next `/items` stream.
    pub items: Arc<Mutex<Option<mpsc::UnboundedReceiver<u32>>>>,
    /// The root PEM `/ca` serves.
    pub root_pem: String,
}

pub fn router(seen: Seen) -> Router {
    Router::new()
        .route("/echo", post(echo))
        .route("/secure", post(secure))
        .route("/ca", post(ca))
        .route("/items", post(items))
        .route("/fail", post(fail))
        // Axum refuses bodies over 2 MiB unless told otherwise; snapshot-sized routes must say so.
        .route(
            "/bytes",
            post(bytes_echo).layer(axum::extract::DefaultBodyLimit::max(64 << 20)),
        )
        .route("/hang", post(hang))
        .with_state(seen)
}

async fn echo(
    State(seen): State<Seen>,
    peer: Peer,
    version: Version,
    Json(got): Json<Value>,
) -> Json<Value> {
    seen.handled.fetch_add(1, Ordering::SeqCst);
    Json(json!({
        "node": peer.identity.as_ref().map(|i| i.node_id.to_string()),
        "role": peer.identity.as_ref().map(|i| i.role.as_str()),
        "cluster": peer.identity.as_ref().map(|i| i.cluster_id.clone()),
        "version": format!("{version:?}"),
        "got": got,
    }))
}

async fn secure(State(seen): State<Seen>, RequirePeer(id): RequirePeer) -> Json<Value> {
    seen.handled.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "node": id.node_id.to_string() }))
}

async fn ca(State(seen): State<Seen>) -> Json<String> {
    Json(seen.root_pem.clone())
}

async fn items(State(seen): State<Seen>) -> axum::response::Response {
    match seen.items.lock().await.take() {
        Some(rx) => ndjson(UnboundedReceiverStream::new(rx)),
        None => error_response(StatusCode::CONFLICT, "no producer armed"),
    }
}

async fn fail() -> axum::response::Response {
    error_response(StatusCode::CONFLICT, "version conflict on node x")
}

async fn bytes_echo(body: Bytes) -> Bytes {
    body
}

async fn hang() -> Json<Value> {
    futures::future::pending::<()>().await;
    Json(Value::Null)
}

/// A running server: its address, the watch that feeds it TLS configurations, and its switch.
pub struct Server {
    pub addr: SocketAddr,
    pub tls: watch::Sender<Arc<rustls::ServerConfig>>,
    pub shutdown: watch::Sender<bool>,
    pub task: JoinHandle<std::io::Result<()>>,
}

pub async fn start(creds: &Credentials, seen: Seen) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tls, tls_rx) = watch::channel(shoal_pki::server_config(creds).expect("server config"));
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(shoal_rpc::serve(
        listener,
        tls_rx,
        router(seen),
        shutdown_rx,
    ));
    Server {
        addr,
        tls,
        shutdown,
        task,
    }
}

pub fn client(creds: Option<&Credentials>, trust: &[String]) -> RpcClient {
    let cfg = shoal_pki::client_config(creds, trust).expect("client config");
    RpcClient::new(watch::channel(cfg).1, Duration::from_secs(5))
}

/// A TCP relay to `target` that counts the connections it accepts.
pub async fn counting_proxy(target: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy addr");
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, count)
}
