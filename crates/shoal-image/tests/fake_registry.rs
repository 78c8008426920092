//! Pulls against a small registry served from this test: what a real local registry does not
//! exercise (the bearer-token flow, an index with several platforms) and what no honest
//! registry does (blobs and manifests that do not match their digests).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use shoal_image::LocalImageStore;
use shoal_runtime::RuntimeError;
use shoal_runtime::image::ImageStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TOKEN: &str = "tok-123";

struct Fake {
    /// Path → (content type, body).
    routes: BTreeMap<String, (String, Vec<u8>)>,
    tokens: AtomicUsize,
}

async fn serve(listener: TcpListener, fake: Arc<Fake>) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let fake = fake.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let req = String::from_utf8_lossy(&buf).into_owned();
            let target = req.split_whitespace().nth(1).unwrap_or("/").to_string();
            let authed = req
                .lines()
                .any(|l| l.to_ascii_lowercase() == format!("authorization: bearer {TOKEN}"));
            let (path, query) = target.split_once('?').unwrap_or((&target, ""));
            let (status, extra, ctype, body) = if path == "/token" {
                fake.tokens.fetch_add(1, Ordering::SeqCst);
                if query.contains("scope=repository%3Aapp%3Apull") && query.contains("service=fake")
                {
                    let b = format!(r#"{{"token":"{TOKEN}"}}"#).into_bytes();
                    ("200 OK", String::new(), "application/json".to_string(), b)
                } else {
                    (
                        "400 Bad Request",
                        String::new(),
                        "text/plain".into(),
                        query.as_bytes().to_vec(),
                    )
                }
            } else if !authed {
                let challenge = format!(
                    "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\",scope=\"repository:app:pull\"\r\n"
                );
                (
                    "401 Unauthorized",
                    challenge,
                    "text/plain".into(),
                    b"auth".to_vec(),
                )
            } else if let Some((ct, b)) = fake.routes.get(path) {
                ("200 OK", String::new(), ct.clone(), b.clone())
            } else {
                (
                    "404 Not Found",
                    String::new(),
                    "text/plain".into(),
                    b"unknown".to_vec(),
                )
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(&body).await;
            let _ = sock.shutdown().await;
        });
    }
}

fn host_arch() -> &'static str {
    shoal_image::config::host_arch()
}

struct Built {
    routes: BTreeMap<String, (String, Vec<u8>)>,
    config_id: String,
    index_digest: String,
}

/// `app:v1` is an index (a decoy platform and ours); `app:bad` a manifest whose layer blob
/// is served with other bytes; `app:badcfg` one whose config is.
fn build() -> Built {
    let mut routes = BTreeMap::new();
    let blob = |routes: &mut BTreeMap<_, _>, b: &[u8]| {
        routes.insert(
            format!("/v2/app/blobs/{}", sha256(b)),
            ("application/octet-stream".to_string(), b.to_vec()),
        );
    };
    let tar = layer(&[("bin/hello", Kind::File, b"#!/bin/sh\necho hi\n", "")]);
    let gz = gzip(&tar);
    let config = config_json(&[sha256(&tar)]);
    blob(&mut routes, &gz);
    blob(&mut routes, &config);
    let manifest = |config: &[u8], layer: &[u8]| {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256(config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": sha256(layer), "size": layer.len()}],
        })
        .to_string()
        .into_bytes()
    };
    let m = manifest(&config, &gz);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": sha256(b"not ours"), "size": 8,
             "platform": {"os": "windows", "architecture": host_arch()}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": sha256(&m), "size": m.len(),
             "platform": {"os": "linux", "architecture": host_arch()}},
        ],
    })
    .to_string()
    .into_bytes();
    let mt = |t: &str| t.to_string();
    routes.insert(
        format!("/v2/app/manifests/{}", sha256(&m)),
        (mt("application/vnd.oci.image.manifest.v1+json"), m.clone()),
    );
    // Asked for by digest, answered with other bytes.
    routes.insert(
        format!("/v2/app/manifests/{}", sha256(b"not ours")),
        (mt("application/vnd.oci.image.manifest.v1+json"), m.clone()),
    );
    routes.insert(
        "/v2/app/manifests/v1".into(),
        (mt("application/vnd.oci.image.index.v1+json"), index.clone()),
    );

    // A layer served with bytes that are not its digest's.
    let tar2 = layer(&[("evil", Kind::File, b"x", "")]);
    let gz2 = gzip(&tar2);
    let config2 = config_json(&[sha256(&tar2)]);
    blob(&mut routes, &config2);
    let m2 = manifest(&config2, &gz2);
    routes.insert(
        format!("/v2/app/blobs/{}", sha256(&gz2)),
        (
            mt("application/octet-stream"),
            gzip(&layer(&[("other", Kind::File, b"y", "")])),
        ),
    );
    routes.insert(
        "/v2/app/manifests/bad".into(),
        (mt("application/vnd.oci.image.manifest.v1+json"), m2),
    );
    // A config served with other bytes.
    let mut config3 = config_json(&[sha256(b"another layer")]);
    let m3 = manifest(&config3, &gz);
    config3.extend_from_slice(b" ");
    routes.insert(
        format!("/v2/app/blobs/{}", sha256(&config3[..config3.len() - 1])),
        (mt("application/octet-stream"), config3),
    );
    routes.insert(
        "/v2/app/manifests/badcfg".into(),
        (mt("application/vnd.oci.image.manifest.v1+json"), m3),
    );
    Built {
        routes,
        config_id: sha256(&config),
        index_digest: sha256(&index),
    }
}

#[tokio::test]
async fn pulls_through_a_token_and_an_index_and_refuses_forged_blobs() {
    let built = build();
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    };
    let port = match listener.local_addr() {
        Ok(a) => a.port(),
        Err(e) => panic!("{e}"),
    };
    let fake = Arc::new(Fake {
        routes: built.routes,
        tokens: AtomicUsize::new(0),
    });
    let server = tokio::spawn(serve(listener, fake.clone()));
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let store = match LocalImageStore::open(dir.path(), Vec::new()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };

    let r = format!("127.0.0.1:{port}/app:v1");
    let info = match store.pull(&r).await {
        Ok(i) => i,
        Err(e) => panic!("pull {r}: {e}"),
    };
    assert!(
        fake.tokens.load(Ordering::SeqCst) >= 1,
        "no token was asked for"
    );
    assert_eq!(info.id, built.config_id);
    assert_eq!(info.repo_tags, vec![r.clone()]);
    assert_eq!(
        info.repo_digests,
        vec![format!("127.0.0.1:{port}/app@{}", built.index_digest)]
    );
    let img = match store.resolve(&r, false).await {
        Ok(i) => i,
        Err(e) => panic!("{e}"),
    };
    assert!(img.layers[0].join("bin/hello").is_file());
    assert_eq!(img.config.cmd, vec!["/bin/sh".to_string()]);
    let hc = img.config.healthcheck.clone().unwrap_or_default();
    assert_eq!(hc.test, vec!["CMD".to_string(), "true".to_string()]);
    assert_eq!(hc.interval, Some(std::time::Duration::from_secs(5)));
    assert_eq!(hc.retries, Some(3));

    for (tag, needle) in [("bad", "digest mismatch"), ("badcfg", "digest mismatch")] {
        let r = format!("127.0.0.1:{port}/app:{tag}");
        match store.pull(&r).await {
            Err(RuntimeError::Pull { why, .. }) => assert!(why.contains(needle), "{why}"),
            other => panic!("pull {r}: {other:?}"),
        }
    }
    // Only the good image is there, and no layer of the forged ones.
    let list = store.list().await.unwrap_or_default();
    assert_eq!(list.len(), 1, "{list:?}");
    let layers = std::fs::read_dir(dir.path().join("layers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(layers, 1);

    // A digest the registry answers with other bytes.
    let forged = format!("127.0.0.1:{port}/app@{}", sha256(b"not ours"));
    match store.pull(&forged).await {
        Err(RuntimeError::Pull { why, .. }) => assert!(why.contains("digest mismatch"), "{why}"),
        other => panic!("pull {forged}: {other:?}"),
    }

    // Removing the tag takes the digest reference of the same repository with it.
    let out = match store.remove(&r, false, &[]).await {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        out,
        vec![
            format!("Untagged: {r}"),
            format!("Untagged: 127.0.0.1:{port}/app@{}", built.index_digest),
            format!("Deleted: {}", built.config_id),
            format!(
                "Deleted: {}",
                sha256(&layer(&[(
                    "bin/hello",
                    Kind::File,
                    b"#!/bin/sh\necho hi\n",
                    ""
                )]))
            ),
        ]
    );
    assert!(store.list().await.is_ok_and(|l| l.is_empty()));
    server.abort();
}
