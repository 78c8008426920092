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

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::debug;

use crate::io::Watched;
use crate::server::{KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT};
use crate::{ErrorBody, RpcError};

/// Default bound on establishing a connection (TCP connect, TLS and HTTP/2 handshakes).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest response body `call` and `call_bytes` accept (a Raft snapshot fits).
pub const MAX_BODY: usize = 256 << 20;
/// The longest NDJSON line `stream` accepts.
const MAX_LINE: usize = 16 << 20;
/// How much of an error body is read for its message.
const MAX_ERROR_BODY: usize = 64 << 10;

type Sender = SendRequest<Full<Bytes>>;

/// A handle on a pooled connection: the request sender and the TLS failure, if any, that its
/// byte stream reported (see [`crate::io`]).
#[derive(Clone)]
struct Link {
    sender: Sender,
    tls_error: Arc<OnceLock<String>>,
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
        let body = serde_json::to_vec(req)
            .map_err(|e| RpcError::Decode(format!("encoding the request for {path}: {e}")))?;
        let bytes = self
            .exchange(addr, path, body.into(), "application/json")
            .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| RpcError::Decode(format!("{path} from {addr}: {e}")))
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
        let body = serde_json::to_vec(req)
            .map_err(|e| RpcError::Decode(format!("encoding the request for {path}: {e}")))?;
        let link = self.link(addr).await?;
        let (resp, link) = tokio::time::timeout(self.inner.timeout, async {
            let (resp, link) = self
                .send(link, addr, path, body.into(), "application/json")
                .await?;
            Ok::<_, RpcError>((check_status(addr, resp, &link).await?, link))
        })
        .await
        .map_err(|_| timeout(addr))??;
        Ok(ndjson_items(addr.to_owned(), resp.into_body(), link))
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
        let req = Request::post(format!("https://{addr}{path}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(body))
            .map_err(|e| RpcError::Connect {
                addr: addr.to_owned(),
                why: format!("invalid address or path {path:?}: {e}"),
            })?;
        match link.sender.try_send_request(req).await {
            Ok(resp) => Ok((resp, link)),
            Err(mut e) => match e.take_message() {
                Some(req) => {
                    let mut link = self.link(addr).await?;
                    match link.sender.send_request(req).await {
                        Ok(resp) => Ok((resp, link)),
                        Err(e) => Err(classify_on(addr, &e, &link)),
                    }
                }
                None => Err(classify_on(addr, e.error(), &link)),
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
                    why: e.to_string(),
                })?;
            let _ = tcp.set_nodelay(true);
            // Servers are verified by role, not by the address dialled (see shoal_pki).
            let name = ServerName::try_from(shoal_pki::MANAGER_OU).map_err(|e| RpcError::Tls {
                addr: addr.to_owned(),
                why: e.to_string(),
            })?;
            let tls = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .map_err(|e| classify(addr, &e))?;
            if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
                return Err(RpcError::Tls {
                    addr: addr.to_owned(),
                    why: "the server did not agree to HTTP/2 (ALPN h2)".into(),
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
                .map_err(|e| classify(addr, &e))?;
            let peer = addr.to_owned();
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    debug!(peer.addr = %peer, error = %e, "connection ended with an error");
                }
            });
            Ok(Link { sender, tls_error })
        };
        tokio::time::timeout(self.inner.connect_timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(RpcError::Connect {
                    addr: addr.to_owned(),
                    why: format!("no connection within {:?}", self.inner.connect_timeout),
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
/// our certificate, or we refused its) or `Connect` (anything else), with the whole chain as the
/// reason.
fn classify(addr: &str, err: &(dyn StdError + 'static)) -> RpcError {
    let mut why = String::new();
    let mut tls = None;
    let mut cur = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !why.contains(&s) {
            if !why.is_empty() {
                why.push_str(": ");
            }
            why.push_str(&s);
        }
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            tls.get_or_insert_with(|| t.to_string());
        }
        // io::Error's `source()` skips the error it wraps: step into that one instead.
        let wrapped = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|w| w as &(dyn StdError + 'static));
        cur = wrapped.or_else(|| e.source());
    }
    match tls {
        Some(t) => RpcError::Tls {
            addr: addr.to_owned(),
            why: t,
        },
        None => RpcError::Connect {
            addr: addr.to_owned(),
            why,
        },
    }
}

/// As [`classify`], for errors on an established connection: a TLS failure its byte stream
/// recorded (the server refusing our certificate) wins over the generic transport error.
fn classify_on(addr: &str, err: &(dyn StdError + 'static), link: &Link) -> RpcError {
    match link.tls_error.get() {
        Some(why) => RpcError::Tls {
            addr: addr.to_owned(),
            why: why.clone(),
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
    let message = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(b) => b.message,
        Err(_) if !body.is_empty() => String::from_utf8_lossy(&body).trim().to_owned(),
        Err(_) => status.canonical_reason().unwrap_or("no message").to_owned(),
    };
    Err(RpcError::Status {
        code: status.as_u16(),
        message,
    })
}

async fn read_body(
    addr: &str,
    body: Incoming,
    limit: usize,
    link: &Link,
) -> Result<Bytes, RpcError> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(RpcError::Decode(format!(
            "the response from {addr} is larger than {limit} bytes"
        ))),
        Err(e) => Err(classify_on(addr, e.as_ref(), link)),
    }
}

/// Splits an NDJSON body into decoded items as its bytes arrive.
fn ndjson_items<Item: DeserializeOwned + Send + 'static>(
    addr: String,
    body: Incoming,
    link: Link,
) -> BoxStream<'static, Result<Item, RpcError>> {
    struct State {
        addr: String,
        body: Incoming,
        /// Keeps the connection's TLS failure at hand for a stream cut mid-way.
        link: Link,
        buf: BytesMut,
        /// How much of `buf` is known to hold no newline.
        scanned: usize,
        done: bool,
    }
    let parse = |line: &[u8]| {
        serde_json::from_slice::<Item>(line).map_err(|e| RpcError::Decode(e.to_string()))
    };
    let start = State {
        addr,
        body,
        link,
        buf: BytesMut::new(),
        scanned: 0,
        done: false,
    };
    futures::stream::unfold(start, move |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            if let Some(pos) = st.buf[st.scanned..].iter().position(|b| *b == b'\n') {
                let line = st.buf.split_to(st.scanned + pos + 1);
                st.scanned = 0;
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                return Some((parse(line), st));
            }
            st.scanned = st.buf.len();
            match st.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if st.buf.len() + data.len() > MAX_LINE {
                            st.done = true;
                            let e = RpcError::Decode(format!(
                                "a line from {} is longer than {MAX_LINE} bytes",
                                st.addr
                            ));
                            return Some((Err(e), st));
                        }
                        st.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => {
                    st.done = true;
                    let e = classify_on(&st.addr, &e, &st.link);
                    return Some((Err(e), st));
                }
                None => {
                    st.done = true;
                    let rest = st.buf.split();
                    let rest = rest.trim_ascii();
                    if rest.is_empty() {
                        return None;
                    }
                    return Some((parse(rest), st));
                }
            }
        }
    })
    .boxed()
}
