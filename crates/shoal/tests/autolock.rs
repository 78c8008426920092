//! Encryption at rest and autolock with real daemons, driven by the real `docker` CLI and the
//! Python SDK: `swarm init --autolock`, `swarm unlock-key [-q] [--rotate]`, `swarm unlock`,
//! `swarm update --autolock=false`; a restarted manager that stays locked and refuses everything
//! but unlock; wrong and malformed keys; every manager sealing under the swarm's key; and
//! `--force-new-cluster` from a backup of a locked manager. No object's bytes are found in
//! plaintext in a data dir.
// The tests wait on real processes in wall-clock time.
#![allow(clippy::disallowed_methods)]

mod common;
#[path = "common/cluster.rs"]
mod harness;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use harness::{Cluster, DockerClient, Role, output_text, poll};
use shoal_testkit::{Need, need};

const MINUTE: Duration = Duration::from_secs(60);
/// In a service label; must never be found in plaintext in a data dir.
const MARKER: &str = "shoal-autolock-marker-4b9e21d07c";
const LOCKED: &str = "Swarm is encrypted and needs to be unlocked before it can be used";

fn ready() -> bool {
    need(&[Need::Root, Need::Tool("docker")])
}

/// `docker ARGS` with `input` on stdin (how `docker swarm unlock` takes a key without a
/// terminal), killed after a minute.
fn docker_stdin(c: &DockerClient, args: &[&str], input: &str) -> Output {
    let mut child = c
        .command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn docker");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if rx.recv_timeout(MINUTE).is_err() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    });
    let out = child.wait_with_output().expect("docker output");
    let _ = tx.send(());
    out
}

/// The key `docker swarm unlock-key -q` prints.
fn unlock_key(c: &Cluster, i: usize) -> String {
    let key = c.n(i).docker_ok(&["swarm", "unlock-key", "-q"]);
    let key = key.trim().to_string();
    assert!(key.starts_with("SWMKEY-1-"), "{key}");
    key
}

fn local_state(c: &Cluster, i: usize) -> String {
    c.n(i)
        .docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .trim()
        .to_string()
}

/// `docker swarm unlock` with `key`; the time from asking to a manager that serves.
fn unlock(c: &Cluster, i: usize, key: &str) -> Duration {
    let start = Instant::now();
    let out = docker_stdin(&c.n(i).client(), &["swarm", "unlock"], key);
    assert!(out.status.success(), "unlock: {}", output_text(&out));
    poll(
        &format!("node{i} to serve after unlock"),
        MINUTE,
        || c.dump(),
        || match c.n(i).api("GET", "/v1.50/swarm", None) {
            (200, _) => Ok(()),
            (s, v) => Err(format!("{s} {v}")),
        },
    );
    start.elapsed()
}

/// Every file under `dir` whose raw bytes hold `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file()
                && let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

/// A manager's keys file, as the node wrote it.
fn keys_file(c: &Cluster, i: usize) -> serde_json::Value {
    let p = c.n(i).data_dir().join("swarm/certs/at-rest-keys.json");
    serde_json::from_slice(&std::fs::read(&p).expect("keys file")).expect("keys json")
}

fn create_service(c: &Cluster, via: usize, name: &str) {
    c.n(via).docker_ok(&[
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        name,
        "--replicas",
        "0",
        "--label",
        &format!("secretish={MARKER}"),
        "host",
        "true",
    ]);
}

#[test]
fn a_restarted_autolocked_manager_serves_nothing_until_unlocked() {
    if !ready() {
        return;
    }
    let mut c = Cluster::start(1);
    let n1 = c.n(1);
    let init = n1.docker_ok(&[
        "swarm",
        "init",
        "--autolock",
        "--listen-addr",
        &n1.addr,
        "--advertise-addr",
        &n1.addr,
    ]);
    assert!(
        init.contains("To unlock a swarm manager after it restarts"),
        "{init}"
    );
    let key = unlock_key(&c, 1);
    assert!(init.contains(&key), "init showed another key:\n{init}");
    let shown = c.n(1).docker_ok(&["swarm", "unlock-key"]);
    assert!(shown.contains(&key), "{shown}");
    let swarm = c.n(1).get("/swarm").expect("swarm");
    assert_eq!(swarm["Spec"]["EncryptionConfig"]["AutoLockManagers"], true);
    assert!(
        !swarm.to_string().contains("SWMKEY"),
        "the key is in GET /swarm"
    );
    create_service(&c, 1, "a");
    // The manager's keys are sealed under the unlock key already: no KEK on disk.
    assert!(
        keys_file(&c, 1).get("kek").is_none(),
        "{}",
        keys_file(&c, 1)
    );

    c.n_mut(1).stop();
    let dir = c.n(1).data_dir().to_path_buf();
    // Every file of the data dir, the daemon's log included.
    assert_eq!(
        files_holding(&dir, MARKER.as_bytes()),
        Vec::<String>::new(),
        "an object's bytes are on disk in plaintext"
    );
    assert_eq!(
        files_holding(&dir.join("swarm"), b"BEGIN PRIVATE KEY"),
        Vec::<String>::new(),
        "the TLS key is on disk in plaintext while autolocked"
    );
    c.n_mut(1).restart();

    // Locked: _ping and info answer, everything else says why it does not.
    assert_eq!(local_state(&c, 1), "locked");
    let (status, _) = c.n(1).api("GET", "/_ping", None);
    assert_eq!(status, 200);
    for args in [
        &["service", "ls"][..],
        &["node", "ls"],
        &["swarm", "unlock-key"],
    ] {
        let out = c.n(1).docker(args);
        assert!(
            !out.status.success() && output_text(&out).contains(LOCKED),
            "docker {args:?} on a locked manager: {}",
            output_text(&out)
        );
    }
    let (status, body) = c.n(1).api("GET", "/v1.50/swarm", None);
    assert_eq!(status, 503, "{body}");
    if need(&[Need::PythonDockerSdk]) {
        let said = common::python(&format!(
            r#"
import docker
c = docker.DockerClient(base_url="{host}")
try:
    c.services.list()
    print("listed")
except docker.errors.APIError as e:
    print(e.status_code, e.explanation)
print(c.info()["Swarm"]["LocalNodeState"])
"#,
            host = c.n(1).host()
        ));
        assert!(said.contains("503") && said.contains(LOCKED), "{said}");
        assert!(said.trim_end().ends_with("locked"), "{said}");
    }

    // A malformed key and a wrong key: clear errors, still locked, still serving.
    let out = docker_stdin(&c.n(1).client(), &["swarm", "unlock"], "not-a-key");
    assert!(
        !out.status.success() && output_text(&out).contains("invalid key string"),
        "{}",
        output_text(&out)
    );
    let wrong = "SWMKEY-1-7c37Cc8654o6p38HnroywCi19pllOnGtbdZEgtKxZu8";
    let out = docker_stdin(&c.n(1).client(), &["swarm", "unlock"], wrong);
    assert!(
        !out.status.success()
            && output_text(&out).contains("swarm could not be unlocked: invalid key provided"),
        "{}",
        output_text(&out)
    );
    let (status, body) = c.n(1).api("POST", "/v1.50/swarm/unlock", Some(b"{}"));
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("UnlockKey"), "{body}");
    assert_eq!(local_state(&c, 1), "locked");

    let took = unlock(&c, 1, &key);
    eprintln!(
        "figure: swarm unlock to serving: {:.3} s",
        took.as_secs_f64()
    );
    assert_eq!(local_state(&c, 1), "active");
    let a = c.n(1).service("a").expect("service a after unlock");
    assert_eq!(a["Spec"]["Labels"]["secretish"], MARKER);
    let out = docker_stdin(&c.n(1).client(), &["swarm", "unlock"], &key);
    assert!(
        output_text(&out).contains("swarm is not locked"),
        "{}",
        output_text(&out)
    );

    // Rotation: only the new key unlocks.
    let rotated = c.n(1).docker_ok(&["swarm", "unlock-key", "--rotate"]);
    assert!(
        rotated.contains("Successfully rotated manager unlock key"),
        "{rotated}"
    );
    let new_key = unlock_key(&c, 1);
    assert_ne!(new_key, key);
    assert!(rotated.contains(&new_key), "{rotated}");
    c.n_mut(1).stop();
    c.n_mut(1).restart();
    assert_eq!(local_state(&c, 1), "locked");
    let out = docker_stdin(&c.n(1).client(), &["swarm", "unlock"], &key);
    assert!(
        output_text(&out).contains("invalid key provided"),
        "{}",
        output_text(&out)
    );
    unlock(&c, 1, &new_key);

    // Autolock off: the keys go back under a KEK on disk; a restart is not locked.
    c.n(1).docker_ok(&["swarm", "update", "--autolock=false"]);
    poll(
        "the KEK back on disk",
        MINUTE,
        || c.dump(),
        || match keys_file(&c, 1).get("kek") {
            Some(_) => Ok(()),
            None => Err("still locked".into()),
        },
    );
    let out = c.n(1).docker(&["swarm", "unlock-key"]);
    assert!(
        output_text(&out).contains("no unlock key is set"),
        "{}",
        output_text(&out)
    );
    // Rotating without autolock is refused before anything is written.
    let before = c.n(1).get("/swarm").expect("swarm");
    let version = before["Version"]["Index"].as_u64().unwrap_or(0);
    let spec = before["Spec"].to_string();
    let (status, body) = c.n(1).api(
        "POST",
        &format!("/v1.50/swarm/update?version={version}&rotateManagerUnlockKey=true"),
        Some(spec.as_bytes()),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string().contains("autolock is not turned on"),
        "{body}"
    );
    let after = c.n(1).get("/swarm").expect("swarm");
    assert_eq!(after["Version"], before["Version"], "something was written");
    c.n_mut(1).stop();
    c.n_mut(1).restart();
    poll(
        "node1 to serve after a restart without autolock",
        MINUTE,
        || c.dump(),
        || c.n(1).get("/swarm").map(|_| ()),
    );
    assert_eq!(local_state(&c, 1), "active");
    assert!(c.n(1).service("a").is_ok());
    c.n_mut(1).stop();
    assert_eq!(files_holding(&dir, MARKER.as_bytes()), Vec::<String>::new());
}

#[test]
fn every_manager_locks_and_a_locked_backup_recovers_with_force_new_cluster() {
    if !ready() {
        return;
    }
    let mut c = Cluster::form(3, 0, &["--autolock"]);
    let key = unlock_key(&c, 1);
    create_service(&c, 1, "a");
    create_service(&c, 2, "b");
    // A secret and a config (whose data the API shows, so the restore can be checked byte for
    // byte): both must come back, and neither may be readable in the backup.
    for kind in ["secret", "config"] {
        let out = docker_stdin(
            &c.n(1).client(),
            &[kind, "create", &format!("{kind}-1"), "-"],
            &format!("{kind}={MARKER}"),
        );
        assert!(out.status.success(), "{}", output_text(&out));
    }
    // Every manager learns the key and seals under it.
    for i in 1..=3 {
        poll(
            &format!("node{i} to seal its keys under the unlock key"),
            MINUTE,
            || c.dump(),
            || match keys_file(&c, i).get("kek") {
                None => Ok(()),
                Some(_) => Err("its KEK is still on disk".into()),
            },
        );
    }
    // A restarted follower is locked too, and rejoins once unlocked.
    c.n_mut(2).stop();
    c.n_mut(2).restart();
    assert_eq!(local_state(&c, 2), "locked");
    unlock(&c, 2, &key);
    c.wait_formed(&[(1, Role::Manager), (2, Role::Manager), (3, Role::Manager)]);

    // Back up node1 (stopped, as the README says), then lose the whole swarm.
    let backup = tempfile::tempdir().expect("backup dir");
    c.n_mut(1).stop();
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(c.n(1).data_dir().join("swarm"))
        .arg(backup.path())
        .status()
        .expect("cp");
    assert!(copy.success());
    assert_eq!(
        files_holding(backup.path(), MARKER.as_bytes()),
        Vec::<String>::new()
    );
    c.n_mut(2).kill9_machine();
    c.n_mut(3).kill9_machine();

    // Restore it and start: locked; force-new-cluster waits for the key.
    let swarm_dir = c.n(1).data_dir().join("swarm");
    std::fs::remove_dir_all(&swarm_dir).expect("wipe");
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(backup.path().join("swarm"))
        .arg(c.n(1).data_dir())
        .status()
        .expect("cp");
    assert!(copy.success());
    c.n_mut(1).restart();
    assert_eq!(local_state(&c, 1), "locked");
    let n1 = c.n(1);
    let fnc = [
        "swarm",
        "init",
        "--force-new-cluster",
        "--listen-addr",
        n1.addr.as_str(),
        "--advertise-addr",
        n1.addr.as_str(),
    ];
    let out = n1.docker(&fnc);
    assert!(
        !out.status.success() && output_text(&out).contains(LOCKED),
        "{}",
        output_text(&out)
    );
    unlock(&c, 1, &key);
    let out = c.n(1).docker_ok(&fnc);
    assert!(out.contains("Swarm initialized"), "{out}");
    for s in ["a", "b"] {
        let v = c.n(1).service(s).expect("a service from before the backup");
        assert_eq!(v["Spec"]["Labels"]["secretish"], MARKER);
    }
    let secret = c.n(1).get("/secrets/secret-1").expect("the secret, kept");
    assert_eq!(secret["Spec"]["Name"], "secret-1");
    assert!(
        !secret.to_string().contains(MARKER),
        "a secret's data shown: {secret}"
    );
    let config = c
        .n(1)
        .docker_ok(&["config", "inspect", "--pretty", "config-1"]);
    assert!(
        config.contains(&format!("config={MARKER}")),
        "the config's data, kept: {config}"
    );
    // Still autolocked, with the same key, and writable.
    assert_eq!(unlock_key(&c, 1), key);
    poll(
        "a write after force-new-cluster",
        MINUTE,
        || c.dump(),
        || {
            let out = c.n(1).docker(&[
                "service",
                "create",
                "--detach",
                "--no-resolve-image",
                "--name",
                "after",
                "--replicas",
                "0",
                "host",
                "true",
            ]);
            if out.status.success() || output_text(&out).contains("already exists") {
                Ok(())
            } else {
                Err(output_text(&out))
            }
        },
    );
}
