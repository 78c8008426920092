//! Secrets reach only the nodes that need them: three `shoal daemon`s in their own test hosts
//! (one manager, two workers), a service that uses a secret placed on one worker. The other
//! worker never receives it: not in its data dir, not on a mount, not anywhere in its daemon's
//! memory. When the task moves, the first worker's copy goes with it.
// The tests wait on real processes in wall-clock time.
#![allow(clippy::disallowed_methods)]

mod common;
#[path = "common/cluster.rs"]
mod harness;
#[path = "common/overlay.rs"]
mod net;

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};

use harness::Cluster;
use net::{MINUTE, running_tasks, three_nodes_on, wait_running};
use shoal_testkit::{Need, need};

const IMAGE: &str = "shoal-test/busybox:latest";
const ARCHIVE: &str = "/var/tmp/shoal-images/busybox.tar";

fn ready() -> bool {
    need(&[
        Need::Root,
        Need::Tool("docker"),
        Need::Tool("ip"),
        Need::TestArchive,
        Need::AnyTool(&["crun", "runc"]),
    ])
}

/// Whether any readable mapping of process `pid` holds `needle`.
fn in_memory_of(pid: u32, needle: &[u8]) -> bool {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let Ok(mut mem) = std::fs::File::open(format!("/proc/{pid}/mem")) else {
        return false;
    };
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.contains("[vvar]") || line.contains("[vsyscall]") {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        let mut buf = vec![0u8; (b - a) as usize];
        if mem.seek(SeekFrom::Start(a)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        if buf.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
    false
}

fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let out = Command::new("grep")
        .args(["-rlF", "--", needle])
        .arg(dir)
        .output()
        .expect("grep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// The secret tmpfs mounts of the daemon on `data_dir` (named after it, see
/// `shoal_runtime::files::dir_for`).
fn secret_mounts_of(data_dir: &Path) -> Vec<String> {
    let flat = data_dir
        .to_string_lossy()
        .trim_start_matches('/')
        .replace('/', "_");
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
        .filter(|p| p.starts_with(&format!("/run/shoal/files/{flat}")))
        .collect()
}

fn node_of(c: &Cluster, task: &serde_json::Value) -> usize {
    let node = task["NodeID"].as_str().expect("placed");
    c.ids()
        .into_iter()
        .find(|(id, _)| id == node)
        .map(|(_, i)| i)
        .expect("a node of the cluster")
}

#[test]
fn a_secret_reaches_only_the_nodes_that_run_its_tasks() {
    if !ready() {
        return;
    }
    let (hosts, c) = three_nodes_on("secrets", "native", 0);
    for i in 1..=3 {
        c.n(i).docker_ok(&["image", "load", "-i", ARCHIVE]);
    }
    let m = c.n(1);
    let secret = format!(
        "only-where-needed-{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let mut create = Command::new("docker")
        .args(["-H", &m.host(), "secret", "create", "pw", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker");
    create
        .stdin
        .take()
        .expect("stdin")
        .write_all(secret.as_bytes())
        .expect("write");
    let out = create.wait_with_output().expect("docker");
    assert!(out.status.success(), "{out:?}");

    m.docker_ok(&[
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        "db",
        "--secret",
        "pw",
        "--constraint",
        "node.hostname==node2",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "sleep",
        "1000",
    ]);
    let t = wait_running(&c, "db", 1);
    assert_eq!(node_of(&c, &t[0]), 2, "placed on node2");
    let n2 = secret_mounts_of(c.n(2).data_dir());
    assert_eq!(
        n2.len(),
        1,
        "node2 holds the task's files on a tmpfs: {n2:?}"
    );
    let n3 = secret_mounts_of(c.n(3).data_dir());
    assert!(n3.is_empty(), "node3 runs no task of it: {n3:?}");
    for i in 1..=3 {
        let found = files_holding(c.n(i).data_dir(), &secret);
        assert!(found.is_empty(), "node{i}'s data dir holds it: {found:?}");
    }
    // The scan itself is checked on the manager, which holds every secret it replicates: a
    // scan that could not read a process would otherwise pass for node3.
    let pid1 = c.n(1).pid().expect("node1 runs");
    assert!(
        in_memory_of(pid1, secret.as_bytes()),
        "the memory scan does not find the secret in the manager, which holds it"
    );
    let pid3 = c.n(3).pid().expect("node3 runs");
    assert!(
        !in_memory_of(pid3, secret.as_bytes()),
        "node3's daemon holds the secret in memory"
    );

    // The task moves to node3: node3 receives it now, node2's copy goes.
    m.docker_ok(&[
        "service",
        "update",
        "--detach",
        "--constraint-rm",
        "node.hostname==node2",
        "--constraint-add",
        "node.hostname==node3",
        "db",
    ]);
    harness::poll(
        "the task to move to node3 and node2's files to go",
        2 * MINUTE,
        || c.dump(),
        || {
            let t = running_tasks(&c, "db");
            let on3 = t.len() == 1 && node_of(&c, &t[0]) == 3;
            let (m2, m3) = (
                secret_mounts_of(c.n(2).data_dir()),
                secret_mounts_of(c.n(3).data_dir()),
            );
            if on3 && m2.is_empty() && m3.len() == 1 {
                Ok(())
            } else {
                Err(format!("on node3: {on3}; node2 {m2:?}; node3 {m3:?}"))
            }
        },
    );
    m.docker_ok(&["service", "rm", "db"]);
    harness::poll(
        "node3's files to go",
        MINUTE,
        || c.dump(),
        || match secret_mounts_of(c.n(3).data_dir()) {
            m if m.is_empty() => Ok(()),
            m => Err(format!("{m:?}")),
        },
    );
    for i in 1..=3 {
        let found = files_holding(c.n(i).data_dir(), &secret);
        assert!(found.is_empty(), "node{i}'s data dir holds it: {found:?}");
    }
    drop(c);
    drop(hosts);
}
