//! Pulling from a real registry: Debian's `docker-registry` on a free loopback port (plain
//! HTTP, which loopback registries get without configuration), fed by the real docker CLI.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use shoal_image::LocalImageStore;
use shoal_runtime::RuntimeError;
use shoal_runtime::image::ImageStore;
use shoal_testkit::{Need, need};

const IMAGE: &str = "shoal-test/busybox:latest";

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn docker(args: &[&str]) -> Result<String, String> {
    match Command::new("docker").args(args).output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => Err(format!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("docker {}: {e}", args.join(" "))),
    }
}

fn free_port() -> u16 {
    match TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
        Ok(a) => a.port(),
        Err(e) => panic!("no free port: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_from_a_real_registry_over_plain_http_on_loopback() {
    // The real docker CLI and engine push the test image (or its archive) to the registry.
    if !need(&[
        Need::Tool("docker-registry"),
        Need::Tool("docker"),
        Need::DockerEngine,
        Need::TestArchive,
    ]) {
        return;
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let port = free_port();
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
        dir.path().join("registry").display()
    );
    let config_path = write(dir.path(), "registry.yml", config.as_bytes());
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let _registry = match child {
        Ok(c) => Killed(c),
        Err(e) => panic!("starting docker-registry: {e}"),
    };
    let base = format!("http://127.0.0.1:{port}/v2/");
    let mut last = String::new();
    let up = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match reqwest::get(&base).await {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => last = r.status().to_string(),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(up.is_ok(), "the registry did not come up in 30s: {last}");

    // Push the test image with the real docker CLI (loading it from the archive if needed).
    if docker(&["image", "inspect", IMAGE]).is_err()
        && let Err(e) = docker(&["load", "-i", BUSYBOX_TAR])
    {
        panic!("{e}; run tests/images/build.sh");
    }
    let remote = format!("127.0.0.1:{port}/busybox:t");
    let pushed = docker(&["tag", IMAGE, &remote]).and_then(|_| docker(&["push", &remote]));
    let _ = docker(&["rmi", &remote]);
    if let Err(e) = pushed {
        panic!("{e}");
    }

    let store = match LocalImageStore::open(&dir.path().join("store"), Vec::new()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let info = match store.pull(&remote).await {
        Ok(i) => i,
        Err(e) => panic!("pull {remote}: {e}"),
    };
    assert_eq!(info.repo_tags, vec![remote.clone()]);
    assert_eq!(info.repo_digests.len(), 1, "{info:?}");
    assert!(info.size > 1_000_000, "{info:?}");
    let local_id = docker(&["image", "inspect", "--format", "{{.Id}}", IMAGE]).unwrap_or_default();
    assert_eq!(
        info.id,
        local_id.trim(),
        "the pulled image is the pushed one"
    );

    let img = match store.resolve(&remote, false).await {
        Ok(i) => i,
        Err(e) => panic!("{e}"),
    };
    assert!(
        img.layers.iter().any(|l| l.join("bin/busybox").is_file()),
        "{img:?}"
    );
    assert_eq!(img.config.cmd, vec!["/bin/sh".to_string()]);

    // By digest, and on demand: a fresh store pulls what resolve needs.
    let by_digest = info.repo_digests[0].clone();
    let fresh = match LocalImageStore::open(&dir.path().join("store2"), Vec::new()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    match fresh.resolve(&by_digest, false).await {
        Err(RuntimeError::ImageNotFound(_)) => {}
        other => panic!("resolve without pull: {other:?}"),
    }
    match fresh.resolve(&by_digest, true).await {
        Ok(i) => assert_eq!(i.id, info.id),
        Err(e) => panic!("resolve {by_digest} with pull: {e}"),
    }

    // A tag the registry does not have is ImageNotFound.
    match store.pull(&format!("127.0.0.1:{port}/busybox:nope")).await {
        Err(RuntimeError::ImageNotFound(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_registry_not_listening_is_a_pull_error() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let store = match LocalImageStore::open(dir.path(), Vec::new()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    let port = free_port();
    match store.pull(&format!("127.0.0.1:{port}/nothing:here")).await {
        Err(RuntimeError::Pull { why, .. }) => assert!(why.contains("127.0.0.1"), "{why}"),
        other => panic!("{other:?}"),
    }
}
