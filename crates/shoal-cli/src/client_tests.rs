//! The client against a tiny scripted HTTP server on a unix socket: negotiation, versioned paths,
//! error decoding and connection reuse, without a daemon.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use super::*;

/// What the fake server answers to a request line; records every request line it saw and how
/// many connections were opened.
pub(crate) struct Fake {
    pub(crate) seen: Arc<Mutex<Vec<String>>>,
    /// Each request line with its body (empty when none), in order.
    pub(crate) requests: Arc<Mutex<Vec<(String, String)>>>,
    pub(crate) connections: Arc<Mutex<usize>>,
    _dir: tempfile::TempDir,
    pub(crate) host: String,
}

fn respond(head: &str, ping_version: Option<&str>, head_ping_status: u16) -> String {
    let json = |status: u16, body: &str| {
        format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    if head.starts_with("HEAD /_ping") {
        let version = ping_version
            .map(|v| format!("Api-Version: {v}\r\n"))
            .unwrap_or_default();
        return format!("HTTP/1.1 {head_ping_status} X\r\n{version}Content-Length: 0\r\n\r\n");
    }
    if head.starts_with("GET /_ping") {
        let version = ping_version
            .map(|v| format!("Api-Version: {v}\r\n"))
            .unwrap_or_default();
        return format!("HTTP/1.1 200 OK\r\n{version}Content-Length: 2\r\n\r\nOK");
    }
    if head.contains("/services/missing") {
        return json(404, r#"{"message":"service missing not found"}"#);
    }
    if head.contains("/services/web") {
        return json(200, r#"{"ID":"abc","Spec":{"Name":"web"}}"#);
    }
    if head.starts_with("POST /v") {
        return json(201, r#"{"ID":"new","Warnings":["careful"]}"#);
    }
    json(500, "not json at all")
}

async fn fake(ping_version: Option<&'static str>, head_ping_status: u16) -> Fake {
    fake_with(Arc::new(move |head: &str| {
        respond(head, ping_version, head_ping_status)
    }))
    .await
}

/// A scripted server answering each request line with the responder's raw HTTP response.
pub(crate) async fn fake_with(responder: Arc<dyn Fn(&str) -> String + Send + Sync>) -> Fake {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("d.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(Mutex::new(0));
    let (seen2, conns2, requests2) = (seen.clone(), connections.clone(), requests.clone());
    let responder2 = responder.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if let Ok(mut c) = conns2.lock() {
                *c += 1;
            }
            let seen = seen2.clone();
            let requests = requests2.clone();
            let responder = responder2.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut reader = BufReader::new(read);
                loop {
                    let mut head = String::new();
                    let mut content_length = 0usize;
                    loop {
                        let mut line = String::new();
                        match reader.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            content_length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    let mut body = vec![0u8; content_length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let first = head.lines().next().unwrap_or("").to_string();
                    if let Ok(mut s) = seen.lock() {
                        s.push(first.clone());
                    }
                    if let Ok(mut r) = requests.lock() {
                        r.push((first.clone(), String::from_utf8_lossy(&body).into_owned()));
                    }
                    let answer = responder(&first);
                    if write.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Fake {
        seen,
        requests,
        connections,
        host: format!("unix://{}", path.display()),
        _dir: dir,
    }
}

impl Fake {
    /// Request lines with their bodies, in order.
    pub(crate) fn requests(&self) -> Vec<(String, String)> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Request lines only.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.requests().into_iter().map(|(l, _)| l).collect()
    }
}

/// A raw HTTP/1.1 response with a JSON body.
pub(crate) fn http_json(status: u16, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A daemon scripted by routes: the first `(prefix, status, body)` whose prefix starts the
/// request line answers (`HEAD /_ping` says API 1.50); anything else is a 404.
pub(crate) async fn scripted(routes: Vec<(&'static str, u16, String)>) -> Fake {
    fake_with(Arc::new(move |head: &str| {
        if head.starts_with("HEAD /_ping") {
            return "HTTP/1.1 200 OK\r\nApi-Version: 1.50\r\nContent-Length: 0\r\n\r\n".into();
        }
        routes
            .iter()
            .find(|(prefix, _, _)| head.starts_with(prefix))
            .map(|(_, status, body)| http_json(*status, body))
            .unwrap_or_else(|| http_json(404, r#"{"message":"no route"}"#))
    }))
    .await
}

fn seen(f: &Fake) -> Vec<String> {
    f.seen.lock().map(|s| s.clone()).unwrap_or_default()
}

#[tokio::test]
async fn negotiates_down_to_the_server_version_and_prefixes_paths() {
    let f = fake(Some("1.41"), 200).await;
    let client = Client::new(&f.host).expect("valid host");
    let svc: bollard_stubs::models::Service =
        client.get("/services/web", &[]).await.expect("found");
    assert_eq!(svc.id.as_deref(), Some("abc"));
    let _: bollard_stubs::models::Service = client.get("/services/web", &[]).await.expect("found");
    assert_eq!(
        seen(&f),
        vec![
            "HEAD /_ping HTTP/1.1",
            "GET /v1.41/services/web HTTP/1.1",
            "GET /v1.41/services/web HTTP/1.1"
        ]
    );
    // Every request went over one pooled connection.
    assert_eq!(f.connections.lock().map(|c| *c).unwrap_or(0), 1);
}

#[tokio::test]
async fn caps_newer_servers_and_falls_back_to_get_ping() {
    let f = fake(Some("1.99"), 404).await;
    let client = Client::new(&f.host).expect("valid host");
    assert_eq!(
        client.version().await.expect("negotiated").to_string(),
        "1.50"
    );
    assert_eq!(
        seen(&f),
        vec!["HEAD /_ping HTTP/1.1", "GET /_ping HTTP/1.1"]
    );

    let f = fake(None, 200).await;
    let client = Client::new(&f.host).expect("valid host");
    assert_eq!(
        client.version().await.expect("negotiated").to_string(),
        "1.24"
    );
}

#[tokio::test]
async fn daemon_errors_and_posts() {
    let f = fake(Some("1.45"), 200).await;
    let client = Client::new(&f.host).expect("valid host");
    let err = client
        .get::<bollard_stubs::models::Service>("/services/missing", &[])
        .await
        .expect_err("404");
    assert!(err.is_not_found());
    assert_eq!(
        err.to_string(),
        "Error response from daemon: service missing not found"
    );
    let err = client
        .get_raw("/other", &[])
        .await
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("Error response from daemon: not json at all")
    );
    let created: bollard_stubs::models::ServiceCreateResponse = client
        .post(
            "/services/create",
            &[("x", "a b".to_string())],
            &serde_json::json!({"Name": "web"}),
        )
        .await
        .expect("created");
    assert_eq!(created.warnings, Some(vec!["careful".to_string()]));
    assert!(seen(&f).contains(&"POST /v1.45/services/create?x=a+b HTTP/1.1".to_string()));
}

#[tokio::test]
async fn connection_refused_is_a_connect_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = format!("unix://{}", dir.path().join("nobody.sock").display());
    let client = Client::new(&host).expect("valid host");
    let err = client.version().await.expect_err("no daemon");
    assert!(matches!(err, CliError::Connect { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("Cannot connect to the daemon at {host}:"))
    );
}
