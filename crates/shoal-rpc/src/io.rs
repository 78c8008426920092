//! The byte stream under a pooled connection, wrapped to remember the first TLS failure it
//! reported.
//!
//! Why: with TLS 1.3 a server that refuses our certificate says so after the client has finished
//! its handshake, as an alert on the first read. That read error reaches us only through h2,
//! which keeps the text of IO errors and drops their type, so a refused certificate would look
//! like any dropped connection. Recording it here lets the client report `RpcError::Tls`.
//!
//! Concurrency: the cell is set at most once (by the connection's task) and read by callers.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(crate) struct Watched<T> {
    io: T,
    tls_error: Arc<OnceLock<rustls::Error>>,
}

impl<T> Watched<T> {
    pub(crate) fn new(io: T, tls_error: Arc<OnceLock<rustls::Error>>) -> Self {
        Watched { io, tls_error }
    }

    fn note<R>(&self, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if let Poll::Ready(Err(e)) = &r
            && let Some(t) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            let _ = self.tls_error.set(t.clone());
        }
        r
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        self.note(r)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.note(r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.note(r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.note(r)
    }
}
