//! `kubectl exec`: a command in a pod's container, over kubectl's WebSocket protocol
//! (`v5.channel.k8s.io`), run by the node's engine as `docker exec` runs it.
//!
//! Frames are binary; the first byte is the channel: 0 stdin, 1 stdout, 2 stderr, 3 the
//! final status (a `Status` object), 4 terminal resizes (`{"Width":..,"Height":..}`), 255
//! closes a channel (`[255, 0]`: stdin ended).
//!
//! Concurrency: one task per session pumps the process's output to the socket; the socket's
//! reader feeds stdin and resizes. The session ends when the process's output ends.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use shoal_control::engine::{Engine, ExecConfig};
use shoal_runtime::LogStreamKind;
use tokio::io::AsyncWriteExt;

use crate::status::{KubeError, KubeResult};

pub const PROTOCOL: &str = "v5.channel.k8s.io";

/// What kubectl asks for in the query.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExecQuery {
    pub command: Vec<String>,
    pub container: Option<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

pub fn exec_query(q: Option<&str>) -> KubeResult<ExecQuery> {
    let mut out = ExecQuery::default();
    for (k, v) in crate::server::form_pairs(q.unwrap_or("")) {
        let flag = v == "true" || v == "1";
        match k.as_str() {
            "command" => out.command.push(v),
            "container" => out.container = Some(v),
            "stdin" => out.stdin = flag,
            "stdout" => out.stdout = flag,
            "stderr" => out.stderr = flag,
            "tty" => out.tty = flag,
            _ => {}
        }
    }
    if out.command.is_empty() {
        return Err(KubeError::bad_request(
            "you must specify at least 1 command",
        ));
    }
    Ok(out)
}

/// The final status frame's JSON for an exit code.
pub fn status_of(code: i64) -> Value {
    if code == 0 {
        json!({ "metadata": {}, "status": "Success" })
    } else {
        json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": { "causes": [{ "reason": "ExitCode", "message": code.to_string() }] },
        })
    }
}

/// kubectl reads a close without a status code as an error.
fn normal_close() -> Message {
    Message::Close(Some(axum::extract::ws::CloseFrame {
        code: 1000,
        reason: "".into(),
    }))
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(Bytes::from(v))
}

/// Starts the exec in `container` (the engine's name for the pod's task) and answers the
/// upgrade; the session runs once the client switched protocols.
pub async fn exec(
    engine: Arc<dyn Engine>,
    container: &str,
    q: ExecQuery,
    ws: WebSocketUpgrade,
) -> KubeResult<Response> {
    let config = ExecConfig {
        cmd: q.command.clone(),
        tty: q.tty,
        attach_stdin: q.stdin,
        attach_stdout: q.stdout,
        attach_stderr: q.stderr,
        // kubectl sends the terminal's size after the start; the terminal has one from the
        // first moment, as docker's does.
        console_size: q.tty.then_some((24, 80)),
        ..ExecConfig::default()
    };
    let id = engine
        .exec_create(container, config)
        .await
        .map_err(|e| KubeError::bad_request(format!("unable to start the command: {e}")))?;
    Ok(ws
        .protocols([PROTOCOL])
        .on_upgrade(move |socket| session(engine, id, socket)))
}

async fn session(engine: Arc<dyn Engine>, id: String, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let streams = match engine.exec_start(&id).await {
        Ok(s) => s,
        Err(e) => {
            let status = json!({"metadata": {}, "status": "Failure", "message": e.to_string()});
            let _ = tx.send(frame(3, status.to_string().as_bytes())).await;
            let _ = tx.send(normal_close()).await;
            return;
        }
    };
    let mut input = streams.input;
    let mut output = streams.output;
    let reader_engine = engine.clone();
    let reader_id = id.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = rx.next().await {
            let data = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&channel, rest)) = data.split_first() else {
                continue;
            };
            match channel {
                0 => {
                    if let Some(w) = input.as_mut()
                        && (w.write_all(rest).await.is_err() || w.flush().await.is_err())
                    {
                        input = None;
                    }
                }
                4 => {
                    let size: Value = serde_json::from_slice(rest).unwrap_or_default();
                    let (w, h) = (size["Width"].as_u64(), size["Height"].as_u64());
                    if let (Some(w), Some(h)) = (w, h) {
                        let _ = reader_engine
                            .exec_resize(
                                &reader_id,
                                u16::try_from(h).unwrap_or(u16::MAX),
                                u16::try_from(w).unwrap_or(u16::MAX),
                            )
                            .await;
                    }
                }
                255 if rest.first() == Some(&0) => {
                    if let Some(mut w) = input.take() {
                        let _ = w.shutdown().await;
                    }
                }
                _ => {}
            }
        }
    });
    while let Some(chunk) = output.next().await {
        let Ok((kind, bytes)) = chunk else {
            break;
        };
        let channel = match kind {
            LogStreamKind::Stdout => 1,
            LogStreamKind::Stderr => 2,
        };
        if tx.send(frame(channel, &bytes)).await.is_err() {
            break;
        }
    }
    let code = engine.exec_wait(&id).await.unwrap_or(-1);
    let _ = tx
        .send(frame(3, status_of(code).to_string().as_bytes()))
        .await;
    let _ = tx.send(normal_close()).await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectls_exec_query_is_read() {
        let q = exec_query(Some(
            "command=sh&command=-c&command=echo+hi&container=web&stdin=true&stdout=true&tty=true",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.command, ["sh", "-c", "echo hi"]);
        assert!(q.stdin && q.stdout && q.tty && !q.stderr);
        assert!(exec_query(Some("container=web")).is_err());
        assert_eq!(status_of(0)["status"], "Success");
        assert_eq!(status_of(3)["details"]["causes"][0]["message"], "3");
    }
}
