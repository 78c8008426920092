//! Docker's hijacked streams (`/exec/{id}/start`, later attach): a request carrying
//! `Connection: Upgrade` and `Upgrade: tcp` is answered `101 UPGRADED`, and the connection then
//! carries raw bytes both ways. Output is raw on a TTY and otherwise multiplexed: each chunk
//! behind an 8-byte header (stream 1 stdout / 2 stderr, three zeros, big-endian length).
//! Input is raw, unframed, and its end is the client's half-close; a client that sends no
//! input half-closes at once, which must not end the output.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderValue, StatusCode};
use shoal_runtime::LogStreamKind;

/// Whether the request asks to take over the connection.
pub fn wants_upgrade(headers: &http::HeaderMap) -> bool {
    let has = |name: http::header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    has(http::header::CONNECTION, "upgrade") && has(http::header::UPGRADE, "tcp")
}

/// The `101` that hands the connection over, as Docker sends it.
pub fn switching(tty: bool) -> axum::response::Response {
    let mut r = axum::response::Response::new(axum::body::Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    h.insert(http::header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(http::header::CONTENT_TYPE, content_type(tty));
    r
}

pub fn content_type(tty: bool) -> HeaderValue {
    HeaderValue::from_static(if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    })
}

/// One chunk of output as it goes on the wire.
pub fn frame(kind: LogStreamKind, data: &[u8], tty: bool) -> Bytes {
    if tty {
        return Bytes::copy_from_slice(data);
    }
    let mut out = BytesMut::with_capacity(data.len() + 8);
    out.put_u8(match kind {
        LogStreamKind::Stdout => 1,
        LogStreamKind::Stderr => 2,
    });
    out.put_slice(&[0, 0, 0]);
    out.put_u32(u32::try_from(data.len()).unwrap_or(u32::MAX));
    out.put_slice(data);
    out.freeze()
}

/// Whether a chunk of `kind` goes to a client that asked for `(stdout, stderr)`.
pub fn wanted(kind: LogStreamKind, (out, err): (bool, bool)) -> bool {
    match kind {
        LogStreamKind::Stdout => out,
        LogStreamKind::Stderr => err,
    }
}

/// Serves a hijacked connection: copies its input to `streams.input` (the client's half-close
/// ends the input, not the output) and `streams.output` to it; when the output has ended,
/// awaits `finish` (an exec's exit code, so it is final before the client is told), then
/// closes the connection's write side.
pub async fn pump(
    on: hyper::upgrade::OnUpgrade,
    streams: shoal_control::engine::ExecStreams,
    attach: (bool, bool),
    finish: impl std::future::Future<Output = ()>,
) {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let upgraded = match on.await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(error = %e, "hijack: the connection was not handed over");
            return;
        }
    };
    let io = hyper_util::rt::TokioIo::new(upgraded);
    let (mut rd, mut wr) = tokio::io::split(io);
    let input = streams.input.map(|mut input| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut rd, &mut input).await;
            let _ = input.shutdown().await;
        })
    });
    let mut output = streams.output;
    let tty = streams.tty;
    let mut client_gone = false;
    while let Some(chunk) = output.next().await {
        let Ok((kind, data)) = chunk else {
            break;
        };
        if client_gone || !wanted(kind, attach) {
            continue;
        }
        if wr.write_all(&frame(kind, &data, tty)).await.is_err() {
            // Keep draining so the process is never blocked on a full pipe.
            client_gone = true;
        }
    }
    finish.await;
    let _ = wr.flush().await;
    let _ = wr.shutdown().await;
    if let Some(h) = input {
        h.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_as_docker_multiplexes() {
        assert_eq!(
            &frame(LogStreamKind::Stdout, b"hi\n", false)[..],
            &[1, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']
        );
        assert_eq!(
            &frame(LogStreamKind::Stderr, b"err\n", false)[..4],
            &[2, 0, 0, 0]
        );
        assert_eq!(&frame(LogStreamKind::Stderr, b"raw", true)[..], b"raw");
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        );
        assert!(!wants_upgrade(&h));
        h.insert(http::header::UPGRADE, HeaderValue::from_static("tcp"));
        assert!(wants_upgrade(&h));
    }
}
