//! The transport end to end: real TLS handshakes on real loopback sockets, certificates from a
//! real cluster CA. Who may talk to whom, what the handlers see, streaming, hot-swapped
//! certificates, and connection reuse counted at the TCP level.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use shoal_pki::{JoinToken, NodeRole, RootCa, identity_of_der};
use shoal_rpc::{RpcClient, RpcError};
use shoal_types::IdGen;
use shoal_types::error::chain;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

/// Long enough for a loaded CI machine; only reached when something is wrong.
const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn worker_calls_manager_over_http2_and_is_identified() {
    let mut c = Cluster::new("cluster-a", 1);
    let (_mid, manager) = c.node(NodeRole::Manager);
    let (wid, worker) = c.node(NodeRole::Worker);
    let server = start(&manager, Seen::default()).await;
    let client = client(Some(&worker), &worker.trust);
    let addr = server.addr.to_string();

    let got: Value = client
        .call(&addr, "/echo", &json!({"n": 1}))
        .await
        .expect("call");
    assert_eq!(got["node"], json!(wid.to_string()));
    assert_eq!(got["role"], json!("worker"));
    assert_eq!(got["cluster"], json!("cluster-a"));
    assert_eq!(
        got["version"],
        json!("HTTP/2.0"),
        "HTTP/2 negotiated through ALPN"
    );
    assert_eq!(got["got"], json!({"n": 1}));

    let got: Value = client
        .call(&addr, "/secure", &json!({}))
        .await
        .expect("secure");
    assert_eq!(got["node"], json!(wid.to_string()));

    let err = client
        .call::<_, Value>(&addr, "/fail", &json!({}))
        .await
        .expect_err("409");
    assert!(
        matches!(&err, RpcError::Status { code: 409, message } if message == "version conflict on node x"),
        "{err:?}"
    );
    let err = client
        .call::<_, Value>(&addr, "/nowhere", &json!({}))
        .await
        .expect_err("404");
    assert!(matches!(err, RpcError::Status { code: 404, .. }), "{err:?}");

    let blob = bytes::Bytes::from(vec![7u8; 3 << 20]);
    let back = client
        .call_bytes(&addr, "/bytes", blob.clone())
        .await
        .expect("bytes");
    assert_eq!(back, blob);
}

#[tokio::test]
async fn client_without_certificate_is_anonymous_and_refused_where_required() {
    let mut c = Cluster::new("cluster-a", 2);
    let (_mid, manager) = c.node(NodeRole::Manager);
    let seen = Seen::default();
    let server = start(&manager, seen.clone()).await;
    let client = client(None, &manager.trust);
    let addr = server.addr.to_string();

    let got: Value = client
        .call(&addr, "/echo", &json!({}))
        .await
        .expect("open route");
    assert_eq!(got["node"], Value::Null);

    let err = client
        .call::<_, Value>(&addr, "/secure", &json!({}))
        .await
        .expect_err("403");
    match err {
        RpcError::Status { code: 403, message } => {
            assert!(message.contains("client certificate"), "{message}")
        }
        other => panic!("expected 403, got {other:?}"),
    }
    assert_eq!(
        seen.handled.load(Ordering::SeqCst),
        1,
        "the secure handler never ran"
    );
}

#[tokio::test]
async fn client_certificate_from_another_cluster_is_refused() {
    let mut a = Cluster::new("cluster-a", 3);
    let mut b = Cluster::new("cluster-b", 4);
    let (_mid, manager) = a.node(NodeRole::Manager);
    let (_wid, stranger) = b.node(NodeRole::Worker);
    let seen = Seen::default();
    let server = start(&manager, seen.clone()).await;
    // The stranger trusts cluster A's root, so only the server's check can stop it.
    let client = client(Some(&stranger), &manager.trust);

    let err = client
        .call::<_, Value>(&server.addr.to_string(), "/echo", &json!({}))
        .await
        .expect_err("refused");
    // TLS 1.3 reports the refusal as the server's alert after the client's handshake.
    match &err {
        RpcError::Tls { .. } => assert!(chain(&err).contains("UnknownCA"), "{}", chain(&err)),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert_eq!(seen.handled.load(Ordering::SeqCst), 0, "no handler ran");
}

#[tokio::test]
async fn expired_client_certificate_is_refused() {
    let mut c = Cluster::new("cluster-a", 5);
    let (_mid, manager) = c.node(NodeRole::Manager);
    let long_ago = now().sub(400 * DAY);
    let (_wid, expired) = c.node_at(NodeRole::Worker, long_ago, DAY);
    let seen = Seen::default();
    let server = start(&manager, seen.clone()).await;
    let client = client(Some(&expired), &manager.trust);

    let err = client
        .call::<_, Value>(&server.addr.to_string(), "/echo", &json!({}))
        .await
        .expect_err("refused");
    match &err {
        RpcError::Tls { .. } => assert!(
            chain(&err).contains("CertificateExpired"),
            "{}",
            chain(&err)
        ),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert_eq!(seen.handled.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn client_refuses_servers_it_should_not_trust() {
    let mut a = Cluster::new("cluster-a", 6);
    let mut b = Cluster::new("cluster-b", 7);
    let (_wid, worker) = a.node(NodeRole::Worker);

    // A manager of another cluster.
    let (_bid, foreign) = b.node(NodeRole::Manager);
    let server = start(&foreign, Seen::default()).await;
    let err = client(Some(&worker), &worker.trust)
        .call::<_, Value>(&server.addr.to_string(), "/echo", &json!({}))
        .await
        .expect_err("foreign server");
    match &err {
        RpcError::Tls { .. } => assert!(chain(&err).contains("UnknownIssuer"), "{}", chain(&err)),
        other => panic!("expected a TLS error, got {other:?}"),
    }

    // A worker of our own cluster posing as a server: its SANs do not name swarm-manager.
    let (_oid, other_worker) = a.node(NodeRole::Worker);
    let server = start(&other_worker, Seen::default()).await;
    let err = client(Some(&worker), &worker.trust)
        .call::<_, Value>(&server.addr.to_string(), "/echo", &json!({}))
        .await
        .expect_err("worker as server");
    match &err {
        RpcError::Tls { .. } => assert!(
            chain(&err).contains("not valid for name \"swarm-manager\""),
            "{}",
            chain(&err)
        ),
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test]
async fn joining_node_bootstraps_trust_from_the_token() {
    let mut c = Cluster::new("cluster-a", 8);
    let (mid, manager) = c.node(NodeRole::Manager);
    let seen = Seen {
        root_pem: c.ca.cert_pem.clone(),
        ..Seen::default()
    };
    let server = start(&manager, seen).await;
    let addr = server.addr.to_string();
    let token = JoinToken::generate(&c.ca, &mut IdGen::seeded(80)).to_string();

    // 1. No trust yet: connect accepting any server, fetch the root from an open route.
    let (cfg, recorder) = shoal_pki::bootstrap_client_config();
    let bootstrap = RpcClient::new(watch::channel(cfg).1, PATIENCE);
    let root_pem: String = bootstrap
        .call(&addr, "/ca", &json!({}))
        .await
        .expect("fetch root");
    let chain = recorder.chain();
    let leaf = identity_of_der(chain.first().expect("server presented a chain")).expect("id");
    assert_eq!((leaf.node_id, leaf.role), (mid, NodeRole::Manager));

    // 2. The root is the one the token names.
    let token = JoinToken::parse(&token).expect("token");
    let root = RootCa::from_pem(&root_pem, None).expect("root");
    assert_eq!(root.digest(), token.ca_digest);
    let impostor = RootCa::generate("cluster-a", DAY, now()).expect("impostor");
    assert_ne!(
        impostor.digest(),
        token.ca_digest,
        "a substituted root would be caught"
    );

    // 3. Reconnect verified, trusting that root only.
    let verified = client(None, std::slice::from_ref(&root.cert_pem));
    let got: Value = verified
        .call(&addr, "/echo", &json!({}))
        .await
        .expect("verified");
    assert_eq!(got["version"], json!("HTTP/2.0"));
}

#[tokio::test]
async fn streams_deliver_items_as_produced_and_end_with_the_server() {
    let mut c = Cluster::new("cluster-a", 9);
    let (_mid, manager) = c.node(NodeRole::Manager);
    let (_wid, worker) = c.node(NodeRole::Worker);
    let seen = Seen::default();
    let (tx, rx) = mpsc::unbounded_channel();
    *seen.items.lock().await = Some(rx);
    let server = start(&manager, seen).await;
    let client = client(Some(&worker), &worker.trust);

    let mut items = client
        .stream::<_, u32>(&server.addr.to_string(), "/items", &json!({}))
        .await
        .expect("stream");
    for n in [1u32, 2, 3] {
        tx.send(n).expect("producer");
        // The next item arrives while the producer still holds the stream open: no buffering.
        let got = tokio::time::timeout(PATIENCE, items.next())
            .await
            .expect("item arrives before the stream ends")
            .expect("stream still open")
            .expect("decoded");
        assert_eq!(got, n);
    }
    drop(tx);
    let end = tokio::time::timeout(PATIENCE, items.next())
        .await
        .expect("stream ends");
    assert!(end.is_none(), "{end:?}");
}

#[tokio::test]
async fn renewed_server_certificate_applies_to_new_connections() {
    let mut c = Cluster::new("cluster-a", 10);
    let (first_id, first) = c.node(NodeRole::Manager);
    let (second_id, second) = c.node(NodeRole::Manager);
    let server = start(&first, Seen::default()).await;
    let addr = server.addr.to_string();

    let presented = || async {
        let (cfg, recorder) = shoal_pki::bootstrap_client_config();
        let client = RpcClient::new(watch::channel(cfg).1, PATIENCE);
        let _: Value = client.call(&addr, "/echo", &json!({})).await.expect("call");
        identity_of_der(&recorder.chain()[0]).expect("leaf").node_id
    };
    assert_eq!(presented().await, first_id);

    let kept = client(None, &first.trust);
    let _: Value = kept
        .call(&addr, "/echo", &json!({}))
        .await
        .expect("before swap");

    server
        .tls
        .send(shoal_pki::server_config(&second).expect("config"))
        .expect("server listening");
    assert_eq!(
        presented().await,
        second_id,
        "new connections present the new cert"
    );
    let _: Value = kept
        .call(&addr, "/echo", &json!({}))
        .await
        .expect("old connection lives on");
}

// Two worker threads, so the 64 callers really race for the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reuse_one_connection() {
    let mut c = Cluster::new("cluster-a", 11);
    let (_mid, manager) = c.node(NodeRole::Manager);
    let (_wid, worker) = c.node(NodeRole::Worker);
    let server = start(&manager, Seen::default()).await;
    let (proxy, accepted) = counting_proxy(server.addr).await;
    let addr = proxy.to_string();

    let sequential = client(Some(&worker), &worker.trust);
    for n in 0..1000u32 {
        let got: Value = sequential
            .call(&addr, "/echo", &json!(n))
            .await
            .expect("call");
        assert_eq!(got["got"], json!(n));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "1000 sequential calls, one connection"
    );

    // 64 callers at once on a fresh client: they wait for one connect and share it.
    let concurrent = client(Some(&worker), &worker.trust);
    let callers = (0..64u32).map(|n| {
        let client = concurrent.clone();
        let addr = addr.clone();
        tokio::spawn(async move {
            for i in 0..10u32 {
                let got: Value = client
                    .call(&addr, "/echo", &json!([n, i]))
                    .await
                    .expect("call");
                assert_eq!(got["got"], json!([n, i]));
            }
        })
    });
    for caller in futures::future::join_all(callers).await {
        caller.expect("caller");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "64 concurrent callers, one more connection"
    );
}

#[tokio::test]
async fn new_client_credentials_replace_the_pooled_connection() {
    let mut c = Cluster::new("cluster-a", 12);
    let (_mid, manager) = c.node(NodeRole::Manager);
    let (old_id, old) = c.node(NodeRole::Worker);
    let (new_id, new) = c.node(NodeRole::Manager);
    let server = start(&manager, Seen::default()).await;
    let (proxy, accepted) = counting_proxy(server.addr).await;
    let addr = proxy.to_string();

    let (tls, tls_rx) =
        watch::channel(shoal_pki::client_config(Some(&old), &old.trust).expect("cfg"));
    let client = RpcClient::new(tls_rx, PATIENCE);
    let got: Value = client
        .call(&addr, "/echo", &json!({}))
        .await
        .expect("old identity");
    assert_eq!(got["node"], json!(old_id.to_string()));

    tls.send(shoal_pki::client_config(Some(&new), &new.trust).expect("cfg"))
        .expect("client holds the watch");
    let got: Value = client
        .call(&addr, "/echo", &json!({}))
        .await
        .expect("new identity");
    assert_eq!(
        (got["node"].clone(), got["role"].clone()),
        (json!(new_id.to_string()), json!("manager"))
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unreachable_and_silent_peers_fail_in_bounded_time() {
    let mut c = Cluster::new("cluster-a", 13);
    let (_mid, manager) = c.node(NodeRole::Manager);
    let server = start(&manager, Seen::default()).await;

    // Nothing listens on a port we just released.
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        l.local_addr().expect("addr")
    };
    let client = client(None, &manager.trust);
    let err = client
        .call::<_, Value>(&closed.to_string(), "/echo", &json!({}))
        .await
        .expect_err("nothing there");
    assert!(matches!(err, RpcError::Connect { .. }), "{err:?}");
    // The refusal is the cause, down to the socket's own error, not text in the message.
    let cause = std::error::Error::source(&err).expect("the connect error is the source");
    let io = cause
        .downcast_ref::<std::io::Error>()
        .expect("the source is the socket's io::Error");
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
    assert_eq!(
        chain(&err),
        format!("cannot reach {closed}: {io}"),
        "the chain names the peer, then the refusal"
    );

    let cfg = shoal_pki::client_config(None, &manager.trust).expect("cfg");
    let impatient = RpcClient::new(watch::channel(cfg).1, Duration::from_millis(300));
    let err = impatient
        .call::<_, Value>(&server.addr.to_string(), "/hang", &json!({}))
        .await
        .expect_err("handler never answers");
    assert!(
        matches!(&err, RpcError::Timeout { addr } if *addr == server.addr.to_string()),
        "{err:?}"
    );
    // The connection survives a timed-out request.
    let _: Value = impatient
        .call(&server.addr.to_string(), "/echo", &json!({}))
        .await
        .expect("after timeout");
}

#[tokio::test]
async fn http1_clients_are_served_too() {
    let mut c = Cluster::new("cluster-a", 14);
    let (_mid, manager) = c.node(NodeRole::Manager);
    let server = start(&manager, Seen::default()).await;
    let mut cfg = (*shoal_pki::client_config(None, &manager.trust).expect("cfg")).clone();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("swarm-manager").expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .expect("handshake");
    let body = "{}";
    let req = format!(
        "POST /echo HTTP/1.1\r\nHost: m\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await.expect("write");
    let mut resp = String::new();
    tokio::time::timeout(PATIENCE, tls.read_to_string(&mut resp))
        .await
        .expect("answer in time")
        .ok();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"version\":\"HTTP/1.1\""), "{resp}");
}

#[tokio::test]
async fn shutdown_ends_serve_even_with_open_streams() {
    let mut c = Cluster::new("cluster-a", 15);
    let (_mid, manager) = c.node(NodeRole::Manager);
    let seen = Seen::default();
    let (tx, rx) = mpsc::unbounded_channel::<u32>();
    *seen.items.lock().await = Some(rx);
    let server = start(&manager, seen).await;
    let client = client(None, &manager.trust);
    let mut items = client
        .stream::<_, u32>(&server.addr.to_string(), "/items", &json!({}))
        .await
        .expect("stream");

    server.shutdown.send(true).expect("serve is running");
    let served = tokio::time::timeout(shoal_rpc::DRAIN + PATIENCE, server.task)
        .await
        .expect("serve returns after the drain period");
    served.expect("task").expect("serve ok");
    // The aborted stream ends (with an error or cleanly), never hangs.
    let end = tokio::time::timeout(PATIENCE, async {
        while let Some(item) = items.next().await {
            if item.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the client's stream ended");
    drop(tx);
}
