//! The client side: [`RpcClient`] and its connection pool.
//!
//! Concurrency: an `RpcClient` is a cheap `Arc` handle; clones share one pool. The pool holds at
//! most one HTTP/2 connection per address and every call multiplexes a stream over it, so the
//! hot path (Raft heartbeats, many concurrent writers) costs a mutex lock and a clone, never a
//! TCP or TLS handshake. Connecting is serialized per address: concurrent callers that find no
//! usable connection wait for one attempt and share its result, success or failure, so a dead
//! peer costs one connect timeout, not one per caller. A connection is replaced when it closes
//! or when the TLS configuration in the watch changes (renewed certificate, rotated root);
//! requests in flight on the old one finish there.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use http::Response;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shoal_types::error::Chain;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::debug;

use crate::io::Watched;
use crate::server::{KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT};
use crate::transport::post;
use crate::transport::{Lines, MAX_ERROR_BODY, Transport, TransportExt, split_lines, status_error};
use crate::{Cause, Remote, RpcError};

/// Default bound on establishing a connection (TCP connect, TLS and HTTP/2 handshakes).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest response body `call` and `call_bytes` accept (a Raft snapshot fits).
pub const MAX_BODY: usize = 256 << 20;

type Sender = SendRequest<Full<Bytes>>;

/// A handle on a pooled connection: the request sender and the TLS failure, if any, that its
/// byte stream reported (see [`crate::io`]).
#[derive(Clone)]
struct Link {
    sender: Sender,
    tls_error: Arc<OnceLock<rustls::Error>>,
}

/// A client for shoal's RPCs, pooling one HTTP/2 connection per address.
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<Inner>,
}

struct Inner {
    tls: watch::Receiver<Arc<ClientConfig>>,
    timeout: Duration,
    connect_timeout: Duration,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    /// Held while connecting, so concurrent callers wait for one attempt.
    connecting: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct SlotState {
    conn: Option<Conn>,
    /// Completed connect attempts, so a waiter can tell that an attempt ran while it waited.
    attempts: u64,
    last_err: Option<RpcError>,
}

struct Conn {
    link: Link,
    /// The configuration the connection was made with; a different one in the watch retires it.
    cfg: Arc<ClientConfig>,
}

impl SlotState {
    /// A clone of the pooled sender if the connection is open and current; retires it if not.
    fn usable(&mut self, cfg: &Arc<ClientConfig>) -> Option<Link> {
        match &self.conn {
            Some(c) if !c.link.sender.is_closed() && Arc::ptr_eq(&c.cfg, cfg) => {
                Some(c.link.clone())
            }
            Some(_) => {
                self.conn = None;
                None
            }
            None => None,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RpcClient {
    /// A client whose calls (after a connection exists) must complete within `timeout`, with
    /// the default [`CONNECT_TIMEOUT`] for establishing connections.
    pub fn new(tls: watch::Receiver<Arc<ClientConfig>>, timeout: Duration) -> RpcClient {
        RpcClient::with_timeouts(tls, timeout, CONNECT_TIMEOUT)
    }

    /// As [`new`](Self::new), with an explicit connect timeout. A call takes at most
    /// `connect_timeout + timeout`.
    pub fn with_timeouts(
        tls: watch::Receiver<Arc<ClientConfig>>,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> RpcClient {
        RpcClient {
            inner: Arc::new(Inner {
                tls,
                timeout,
                connect_timeout,
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// POSTs `req` as JSON to `path` on `addr` ("ip:port") and decodes the JSON answer.
    /// A non-2xx answer is [`RpcError::Status`] with the server's message.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        req: &Req,
    ) -> Result<Resp, RpcError> {
        TransportExt::call(self, addr, path, req).await
    }

    /// POSTs raw bytes and returns the raw answer (Raft snapshots).
    pub async fn call_bytes(&self, addr: &str, path: &str, body: Bytes) -> Result<Bytes, RpcError> {
        self.exchange(addr, path, body, "application/octet-stream")
            .await
    }

    /// POSTs `req` as JSON and returns the NDJSON answer as a stream of items. The timeout
    /// covers only the response's head: the stream itself runs until the server ends it or the
    /// connection dies (a silent peer is noticed within half a minute through HTTP/2 pings),
    /// which ends it with an error item. Dropping the stream cancels the request.
    pub async fn stream<Req: Serialize, Item: DeserializeOwned + Send + 'static>(
        &self,
        addr: &str,
        path: &str,
        req: &Req,
    ) -> Result<BoxStream<'static, Result<Item, RpcError>>, RpcError> {
        TransportExt::stream(self, addr, path, req).await
    }

    /// The NDJSON lines of a streamed answer (see [`stream`](Self::stream)).
    async fn lines(&self, addr: &str, path: &str, body: Bytes) -> Result<Lines, RpcError> {
        let link = self.link(addr).await?;
        let (resp, link) = tokio::time::timeout(self.inner.timeout, async {
            let (resp, link) = self
                .send(link, addr, path, body, "application/json")
                .await?;
            Ok::<_, RpcError>((check_status(addr, resp, &link).await?, link))
        })
        .await
        .map_err(|_| timeout(addr))??;
        Ok(split_lines(
            addr.to_owned(),
            body_chunks(addr.to_owned(), resp.into_body(), link),
        ))
    }

    async fn exchange(
        &self,
        addr: &str,
        path: &str,
        body: Bytes,
        content_type: &'static str,
    ) -> Result<Bytes, RpcError> {
        let link = self.link(addr).await?;
        tokio::time::timeout(self.inner.timeout, async {
            let (resp, link) = self.send(link, addr, path, body, content_type).await?;
            let resp = check_status(addr, resp, &link).await?;
            read_body(addr, resp.into_body(), MAX_BODY, &link).await
        })
        .await
        .map_err(|_| timeout(addr))?
    }

    /// Sends one request. A request the connection gave back unsent (it closed between our
    /// check and the send) is retried once on a fresh connection; nothing else is retried,
    /// since calls need not be idempotent.
    async fn send(
        &self,
        mut link: Link,
        addr: &str,
        path: &str,
        body: Bytes,
        content_type: &'static str,
    ) -> Result<(Response<Incoming>, Link), RpcError> {
        let req = post(
            addr,
            path,
            format!("https://{addr}{path}"),
            content_type,
            Full::new(body),
        )?;
        match link.sender.try_send_request(req).await {
            Ok(resp) => Ok((resp, link)),
            Err(mut e) => match e.take_message() {
                Some(req) => {
                    let mut link = self.link(addr).await?;
                    match link.sender.send_request(req).await {
                        Ok(resp) => Ok((resp, link)),
                        Err(e) => Err(classify_on(addr, Cause::new(e), &link)),
                    }
                }
                None => Err(classify_on(addr, Cause::new(e.into_error()), &link)),
            },
        }
    }

    /// The pooled connection to `addr`, connecting if there is none usable.
    async fn link(&self, addr: &str) -> Result<Link, RpcError> {
        let slot = lock(&self.inner.slots)
            .entry(addr.to_owned())
            .or_default()
            .clone();
        let cfg = self.inner.tls.borrow().clone();
        let seen = {
            let mut st = lock(&slot.state);
            if let Some(s) = st.usable(&cfg) {
                return Ok(s);
            }
            st.attempts
        };
        let _connecting = slot.connecting.lock().await;
        let cfg = self.inner.tls.borrow().clone();
        {
            let mut st = lock(&slot.state);
            if let Some(s) = st.usable(&cfg) {
                return Ok(s);
            }
            if st.attempts != seen
                && let Some(e) = &st.last_err
            {
                return Err(e.clone());
            }
        }
        let result = self.connect(addr, cfg.clone()).await;
        let mut st = lock(&slot.state);
        st.attempts += 1;
        match result {
            Ok(link) => {
                st.conn = Some(Conn {
                    link: link.clone(),
                    cfg,
                });
                st.last_err = None;
                Ok(link)
            }
            Err(e) => {
                st.last_err = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn connect(&self, addr: &str, cfg: Arc<ClientConfig>) -> Result<Link, RpcError> {
        let attempt = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| RpcError::Connect {
                    addr: addr.to_owned(),
                    source: Cause::new(e),
                })?;
            let _ = tcp.set_nodelay(true);
            // Servers are verified by role, not by the address dialled (see shoal_pki).
            let name = ServerName::try_from(shoal_pki::MANAGER_OU).map_err(|e| RpcError::Tls {
                addr: addr.to_owned(),
                source: Cause::new(e),
            })?;
            let tls = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .map_err(|e| classify(addr, Cause::new(e)))?;
            if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                return Err(RpcError::Tls {
                    addr: addr.to_owned(),
                    source: Remote::cause("the server did not agree to HTTP/2 (ALPN h2)"),
                });
            }
            let tls_error = Arc::new(OnceLock::new());
            let io = Watched::new(tls, tls_error.clone());
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(KEEPALIVE_INTERVAL)
                .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                .keep_alive_while_idle(true)
                .adaptive_window(true)
                .handshake(TokioIo::new(io))
                .await
                .map_err(|e| classify(addr, Cause::new(e)))?;
            let peer = addr.to_owned();
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    debug!(peer.addr = %peer, error = %Chain(&e), "connection ended with an error");
                }
            });
            Ok(Link { sender, tls_error })
        };
        tokio::time::timeout(self.inner.connect_timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(RpcError::Connect {
                    addr: addr.to_owned(),
                    source: Remote::cause(format!(
                        "no connection within {:?}",
                        self.inner.connect_timeout
                    )),
                })
            })
    }
}

fn timeout(addr: &str) -> RpcError {
    RpcError::Timeout {
        addr: addr.to_owned(),
    }
}

/// Sorts a transport error into `Tls` (a rustls error anywhere in its chain: the peer refused
/// our certificate, or we refused its) or `Connect` (anything else), keeping it whole as the
/// cause.
fn classify(addr: &str, err: Cause) -> RpcError {
    let mut tls = false;
    let mut cur: Option<&(dyn StdError + 'static)> = Some(&*err);
    while let Some(e) = cur {
        tls |= e.is::<rustls::Error>();
        // io::Error's `source()` skips the error it wraps: step into that one instead.
        let wrapped = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|w| w as &(dyn StdError + 'static));
        cur = wrapped.or_else(|| e.source());
    }
    let addr = addr.to_owned();
    if tls {
        RpcError::Tls { addr, source: err }
    } else {
        RpcError::Connect { addr, source: err }
    }
}

/// As [`classify`], for errors on an established connection: a TLS failure its byte stream
/// recorded (the server refusing our certificate) wins over the generic transport error,
/// which h2 has reduced to text.
fn classify_on(addr: &str, err: Cause, link: &Link) -> RpcError {
    match link.tls_error.get() {
        Some(tls) => RpcError::Tls {
            addr: addr.to_owned(),
            source: Cause::new(tls.clone()),
        },
        None => classify(addr, err),
    }
}

async fn check_status(
    addr: &str,
    resp: Response<Incoming>,
    link: &Link,
) -> Result<Response<Incoming>, RpcError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = read_body(addr, resp.into_body(), MAX_ERROR_BODY, link)
        .await
        .unwrap_or_default();
    Err(status_error(status, &body))
}

async fn read_body(
    addr: &str,
    body: Incoming,
    limit: usize,
    link: &Link,
) -> Result<Bytes, RpcError> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(RpcError::Decode {
            what: format!("the response from {addr} is larger than {limit} bytes"),
            source: None,
        }),
        Err(e) => Err(classify_on(addr, Cause::from(e), link)),
    }
}

/// Splits an NDJSON body into decoded items as its bytes arrive.
/// A response body's data chunks; a broken connection ends them with its error (a TLS failure
/// the connection recorded wins).
fn body_chunks(
    addr: String,
    body: Incoming,
    link: Link,
) -> impl futures::Stream<Item = Result<Bytes, RpcError>> + Send + 'static {
    futures::stream::unfold(Some((body, link)), move |st| {
        let addr = addr.clone();
        async move {
            let (mut body, link) = st?;
            loop {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Some((Ok(data), Some((body, link))));
                        }
                    }
                    Some(Err(e)) => {
                        return Some((Err(classify_on(&addr, Cause::new(e), &link)), None));
                    }
                    None => return None,
                }
            }
        }
    })
}

#[async_trait::async_trait]
impl Transport for RpcClient {
    async fn call_raw(&self, addr: &str, path: &str, body: Bytes) -> Result<Bytes, RpcError> {
        self.exchange(addr, path, body, "application/json").await
    }

    async fn stream_raw(&self, addr: &str, path: &str, body: Bytes) -> Result<Lines, RpcError> {
        self.lines(addr, path, body).await
    }
}
