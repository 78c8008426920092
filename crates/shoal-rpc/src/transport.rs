//! The seam under node-to-node calls. [`Transport`] carries one encoded request to an address
//! and brings back its answer, whole or (for streams) one NDJSON line at a time; [`TransportExt`]
//! puts the typed JSON calls every client uses on top, so the encoding is the same whatever
//! carries the bytes. [`RpcClient`](crate::RpcClient) is the real transport (mutual TLS,
//! HTTP/2). The simulation implements the trait on its in-memory network and answers with the
//! node's real router, run in process by [`call_in_process`] and [`stream_in_process`]; clients
//! written against the trait (the agent's dispatcher client, Raft between managers) thereby run
//! unchanged, failover and leader hints included, in a simulated cluster.
//!
//! Concurrency: implementations are shared handles (`Send + Sync`); every call is independent.

use std::future::Future;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http::{Request, header};
use http_body_util::{BodyExt, Limited};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::{Cause, ErrorBody, MAX_BODY, Peer, RpcError};

/// The longest NDJSON line a stream accepts.
pub(crate) const MAX_LINE: usize = 16 << 20;
/// How much of an error body is read for its message.
pub(crate) const MAX_ERROR_BODY: usize = 64 << 10;

/// A stream of NDJSON lines (without their newlines), ended by an error item when the
/// connection breaks.
pub type Lines = BoxStream<'static, Result<Bytes, RpcError>>;

/// One request to `path` on the node at `addr`, its body already encoded as JSON.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// A call: the whole answer body, or [`RpcError::Status`] for a non-2xx answer.
    async fn call_raw(&self, addr: &str, path: &str, body: Bytes) -> Result<Bytes, RpcError>;

    /// A stream: the answer's NDJSON lines as they come. Dropping the stream cancels the request.
    async fn stream_raw(&self, addr: &str, path: &str, body: Bytes) -> Result<Lines, RpcError>;
}

fn encode<Req: Serialize>(path: &str, req: &Req) -> Result<Bytes, RpcError> {
    serde_json::to_vec(req)
        .map(Bytes::from)
        .map_err(|e| RpcError::Decode {
            what: format!("encoding the request for {path}"),
            source: Some(Cause::new(e)),
        })
}

/// Typed JSON calls over any [`Transport`].
pub trait TransportExt: Transport {
    /// POSTs `req` as JSON and decodes the JSON answer.
    fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        req: &Req,
    ) -> impl Future<Output = Result<Resp, RpcError>> + Send {
        let body = encode(path, req);
        async move {
            let bytes = self.call_raw(addr, path, body?).await?;
            serde_json::from_slice(&bytes).map_err(|e| RpcError::Decode {
                what: format!("{path} from {addr}"),
                source: Some(Cause::new(e)),
            })
        }
    }

    /// POSTs `req` as JSON and decodes the NDJSON answer item by item.
    fn stream<Req: Serialize, Item: DeserializeOwned + Send + 'static>(
        &self,
        addr: &str,
        path: &str,
        req: &Req,
    ) -> impl Future<Output = Result<BoxStream<'static, Result<Item, RpcError>>, RpcError>> + Send
    {
        let body = encode(path, req);
        let what = format!("an item of {path} from {addr}");
        async move {
            let lines = self.stream_raw(addr, path, body?).await?;
            Ok(lines
                .map(move |l| {
                    l.and_then(|line| {
                        serde_json::from_slice::<Item>(&line).map_err(|e| RpcError::Decode {
                            what: what.clone(),
                            source: Some(Cause::new(e)),
                        })
                    })
                })
                .boxed())
        }
    }
}

impl<T: Transport + ?Sized> TransportExt for T {}

/// Cuts a body's chunks into NDJSON lines. A chunk error ends the stream with that error; a
/// line over [`MAX_LINE`] ends it with a decode error naming `addr`.
pub(crate) fn split_lines<S>(addr: String, chunks: S) -> Lines
where
    S: Stream<Item = Result<Bytes, RpcError>> + Send + 'static,
{
    struct State<S> {
        addr: String,
        chunks: std::pin::Pin<Box<S>>,
        buf: BytesMut,
        /// How much of `buf` is known to hold no newline.
        scanned: usize,
        done: bool,
    }
    let start = State {
        addr,
        chunks: Box::pin(chunks),
        buf: BytesMut::new(),
        scanned: 0,
        done: false,
    };
    futures::stream::unfold(start, |mut st| async move {
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
                return Some((Ok(Bytes::copy_from_slice(line)), st));
            }
            st.scanned = st.buf.len();
            match st.chunks.next().await {
                Some(Ok(data)) => {
                    if st.buf.len() + data.len() > MAX_LINE {
                        st.done = true;
                        let e = RpcError::Decode {
                            what: format!(
                                "a line from {} is longer than {MAX_LINE} bytes",
                                st.addr
                            ),
                            source: None,
                        };
                        return Some((Err(e), st));
                    }
                    st.buf.extend_from_slice(&data);
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(e), st));
                }
                None => {
                    st.done = true;
                    let rest = st.buf.split();
                    let rest = rest.trim_ascii();
                    if rest.is_empty() {
                        return None;
                    }
                    return Some((Ok(Bytes::copy_from_slice(rest)), st));
                }
            }
        }
    })
    .boxed()
}

/// A request that could not be built: the path (or address) is not a valid URI.
#[derive(Debug, thiserror::Error)]
#[error("invalid address or path {path:?}")]
pub(crate) struct BadPath {
    pub(crate) path: String,
    #[source]
    pub(crate) source: http::Error,
}

/// A JSON-or-stream POST of `body` to `uri` (`path` on `addr`), or the error that says the two
/// do not make a URI: the one way both transports build their requests.
pub(crate) fn post<B>(
    addr: &str,
    path: &str,
    uri: String,
    content_type: &'static str,
    body: B,
) -> Result<Request<B>, RpcError> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .map_err(|e| RpcError::Connect {
            addr: addr.to_owned(),
            source: Cause::new(BadPath {
                path: path.to_owned(),
                source: e,
            }),
        })
}

/// The message of a non-2xx answer, as both sides write it (`{"message": ...}`).
pub(crate) fn status_error(status: http::StatusCode, body: &[u8]) -> RpcError {
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => b.message,
        Err(_) if !body.is_empty() => String::from_utf8_lossy(body).trim().to_owned(),
        Err(_) => status.canonical_reason().unwrap_or("no message").to_owned(),
    };
    RpcError::Status {
        code: status.as_u16(),
        message,
    }
}

/// Runs one request through `router` in this process, as [`serve`](crate::serve) would for a
/// connection from `peer`; a non-2xx answer comes back as [`RpcError::Status`].
async fn in_process(
    router: Router,
    peer: Peer,
    addr: &str,
    path: &str,
    body: Bytes,
) -> Result<Body, RpcError> {
    let mut req = post(
        addr,
        path,
        path.to_owned(),
        "application/json",
        Body::from(body),
    )?;
    req.extensions_mut().insert(peer);
    let resp = match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(resp.into_body());
    }
    let body = Limited::new(resp.into_body(), MAX_ERROR_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Err(status_error(status, &body))
}

/// A call answered by `router` in this process (see the module docs); `addr` names the node in
/// errors.
pub async fn call_in_process(
    router: Router,
    peer: Peer,
    addr: &str,
    path: &str,
    body: Bytes,
) -> Result<Bytes, RpcError> {
    let body = in_process(router, peer, addr, path, body).await?;
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| RpcError::Connect {
            addr: addr.to_owned(),
            source: Cause::from(e),
        })
}

/// A stream answered by `router` in this process: its NDJSON lines as the handler makes them.
pub async fn stream_in_process(
    router: Router,
    peer: Peer,
    addr: &str,
    path: &str,
    body: Bytes,
) -> Result<Lines, RpcError> {
    let body = in_process(router, peer, addr, path, body).await?;
    let who = addr.to_owned();
    let chunks = body.into_data_stream().map(move |c| {
        c.map_err(|e| RpcError::Connect {
            addr: who.clone(),
            source: Cause::new(e),
        })
    });
    Ok(split_lines(addr.to_owned(), chunks))
}
