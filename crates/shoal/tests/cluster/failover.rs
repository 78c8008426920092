//! Crashes and recovery: a leader killed mid-stream of writes, a manager catching up by
//! snapshot, the quorum table, force-new-cluster, and workers lost or hung.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::harness::{self, Cluster, Role, poll};
use super::{M, MINUTE, W, create_service, label_update, ready, service_labels};

/// Creates a service with no tasks through the Engine API, as a program would.
fn api_create_empty(n: &harness::Node, name: &str) -> Result<(), String> {
    let body = serde_json::json!({
        "Name": name,
        "TaskTemplate": {"ContainerSpec": {"Image": "host", "Args": ["true"]}},
        "Mode": {"Replicated": {"Replicas": 0}}
    });
    match n.api(
        "POST",
        "/v1.50/services/create",
        Some(body.to_string().as_bytes()),
    ) {
        (201, _) => Ok(()),
        (s, v) => Err(format!("{s} {v}")),
    }
}

/// Waits until manager `m` has every label in `want` on `service`.
fn wait_labels(c: &Cluster, m: usize, service: &str, want: &BTreeMap<String, String>) {
    poll(
        &format!("node{m} to hold every acknowledged update of {service}"),
        MINUTE,
        || c.dump(),
        || {
            let have = service_labels(&c.n(m).service(service)?);
            let missing: Vec<_> = want
                .iter()
                .filter(|(k, v)| have.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("missing {missing:?}"))
            }
        },
    );
}

#[test]
fn leader_killed_while_a_client_streams_updates_loses_no_acknowledged_write() {
    if !ready() {
        return;
    }
    let mut c = Cluster::form(3, 0, &[]);
    c.n(1)
        .docker_ok(&["swarm", "update", "--snapshot-interval", "20"]);
    create_service(&c, 1, "s", 1);
    let leader = c.wait_leader(MINUTE);
    let via = (1..=3).find(|m| *m != leader).unwrap_or(1);
    let cli = c.n(via).client();

    // A client streams sequential updates through a follower and records which were
    // acknowledged; the leader is killed while it does.
    let stop = AtomicBool::new(false);
    let acked = Mutex::new(Vec::<(usize, Instant)>::new());
    let failed = Mutex::new(Vec::<(usize, String)>::new());
    let (killed_at, victim) = std::thread::scope(|scope| {
        scope.spawn(|| {
            for i in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match label_update(&cli, "s", &format!("u{i}"), &i.to_string()) {
                    Ok(()) => acked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((i, Instant::now())),
                    Err(e) => failed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((i, e)),
                }
            }
        });
        let count_acked = || acked.lock().unwrap_or_else(|p| p.into_inner()).len();
        poll("10 acknowledged updates", MINUTE, String::new, || {
            if count_acked() >= 10 {
                Ok(())
            } else {
                Err(format!(
                    "{:?}",
                    failed.lock().unwrap_or_else(|p| p.into_inner())
                ))
            }
        });
        let killed_at = Instant::now();
        c.n_mut(leader).kill9();
        let before = count_acked();
        poll(
            "updates to be acknowledged again after the leader's death",
            MINUTE,
            || {
                format!(
                    "failures: {:?}\n{}",
                    failed.lock().unwrap_or_else(|p| p.into_inner()),
                    c.dump()
                )
            },
            || {
                if count_acked() >= before + 20 {
                    Ok(())
                } else {
                    Err(format!("{} acknowledged", count_acked()))
                }
            },
        );
        stop.store(true, Ordering::SeqCst);
        (killed_at, leader)
    });
    let acked = acked.into_inner().unwrap_or_else(|p| p.into_inner());
    let failed = failed.into_inner().unwrap_or_else(|p| p.into_inner());
    let first_after = acked
        .iter()
        .find(|(_, t)| *t > killed_at)
        .map(|(_, t)| t.duration_since(killed_at));
    eprintln!(
        "{} updates acknowledged, {} refused; first acknowledged {first_after:?} after the kill",
        acked.len(),
        failed.len()
    );
    for (i, e) in &failed {
        assert!(
            e.contains("does not have a leader") || e.contains("out of sequence"),
            "update {i} failed with an unexpected error: {e}"
        );
    }

    // A new leader among the survivors, and every acknowledged update on every survivor.
    let new_leader = c.wait_leader(MINUTE);
    assert_ne!(new_leader, victim, "{}", c.dump());
    let want: BTreeMap<String, String> = acked
        .iter()
        .map(|(i, _)| (format!("u{i}"), i.to_string()))
        .collect();
    for m in (1..=3).filter(|m| *m != victim) {
        wait_labels(&c, m, "s", &want);
    }

    // The killed manager comes back on its data dir, rejoins and catches up.
    c.n_mut(victim).restart();
    c.wait_formed(&[(1, M), (2, M), (3, M)]);
    wait_labels(&c, victim, "s", &want);
}

#[test]
fn manager_far_behind_catches_up_by_snapshot() {
    if !ready() {
        return;
    }
    let mut c = Cluster::form(3, 0, &[]);
    c.n(1)
        .docker_ok(&["swarm", "update", "--snapshot-interval", "20"]);
    // The docker CLI has no flag for the log kept for slow followers (Swarm's default: 500
    // entries); the Engine API does.
    let swarm = c.n(1).get("/swarm").expect("swarm");
    let mut spec = swarm["Spec"].clone();
    spec["Raft"]["LogEntriesForSlowFollowers"] = serde_json::json!(10);
    let (status, v) = c.n(1).api(
        "POST",
        &format!("/v1.50/swarm/update?version={}", swarm["Version"]["Index"]),
        Some(spec.to_string().as_bytes()),
    );
    assert_eq!(status, 200, "{v}");
    create_service(&c, 1, "s", 0);
    let leader = c.wait_leader(MINUTE);
    let behind = (1..=3).find(|m| *m != leader).unwrap_or(2);
    c.n_mut(behind).kill9();
    // A busy cluster while it is away: programs write through the API as fast as it takes them
    // (far more than 20 entries a second), until the leader has snapshotted and dropped the log
    // the absent member would need. The log must be compacted while writes go on.
    let stop = AtomicBool::new(false);
    let acked = Mutex::new(Vec::<String>::new());
    let purged = std::thread::scope(|scope| {
        for k in 0..8 {
            let (stop, acked, n) = (&stop, &acked, c.n(leader));
            scope.spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let name = format!("busy-{k}-{i}");
                    if api_create_empty(n, &name).is_ok() {
                        acked.lock().unwrap_or_else(|p| p.into_inner()).push(name);
                    }
                }
            });
        }
        let start = Instant::now();
        let r = loop {
            // Every member that stays up, not only the leader: whichever of them leads when
            // the absent one returns must have dropped the log it would need.
            let purged = (1..=3)
                .filter(|m| *m != behind)
                .map(|m| purged_upto(&c.n(m).log_text()))
                .min()
                .unwrap_or(0);
            let writes = acked.lock().unwrap_or_else(|p| p.into_inner()).len();
            if purged >= 100 {
                break Ok(purged);
            }
            if start.elapsed() > Duration::from_secs(20) {
                break Err(format!(
                    "after {writes} writes in 20 s the leader has purged its raft log only up to \
                     index {purged}: with a snapshot interval of 20 and 10 entries kept for slow \
                     followers, the log must be compacted while writes go on"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        stop.store(true, Ordering::SeqCst);
        r
    });
    if let Err(e) = purged {
        panic!("{e}\n{}", c.dump());
    }
    let acked = acked.into_inner().unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "{} services created while node{behind} was away",
        acked.len()
    );
    c.n_mut(behind).restart();
    c.wait_formed(&[(1, M), (2, M), (3, M)]);
    poll(
        &format!(
            "node{behind} to hold all {} services written while it was away",
            acked.len()
        ),
        MINUTE,
        || c.dump(),
        || {
            let have: BTreeSet<String> = c
                .n(behind)
                .services()?
                .iter()
                .filter_map(|s| s["Spec"]["Name"].as_str().map(str::to_string))
                .collect();
            let missing = acked.iter().filter(|a| !have.contains(*a)).count();
            if missing == 0 {
                Ok(())
            } else {
                Err(format!("{missing} missing"))
            }
        },
    );
    let log = c.n(behind).log_text();
    assert!(
        log.contains("received a complete raft snapshot from the leader"),
        "node{behind} caught up without a snapshot: the snapshot interval (20) or the log kept \
         for slow followers (10) does not apply to the running raft group\n{}",
        c.dump()
    );
}

/// How far a manager has purged its raft log, from its log (`purged the raft log upto=N`, which
/// the store writes once the entries are gone; openraft's `trigger_purge_log` only asks, and a
/// leader postpones the purge while a replication stream, such as the one retrying the absent
/// member, still reads them).
fn purged_upto(log: &str) -> u64 {
    log.match_indices("purged the raft log upto=")
        .filter_map(|(at, m)| {
            log[at + m.len()..]
                .split(|ch: char| !ch.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .max()
        .unwrap_or(0)
}

/// Kills managers one by one, the leader first: writes keep working while a majority lives;
/// once it does not, writes fail within seconds with Docker's message and reads still work.
fn quorum_table(managers: usize) {
    let mut c = Cluster::form(managers, 0, &[]);
    create_service(&c, 1, "q", 0);
    let tolerated = (managers - 1) / 2;
    let mut dead = Vec::new();
    for k in 0..=tolerated {
        let victim = if k == 0 {
            c.wait_leader(MINUTE)
        } else {
            *c.running().last().expect("a live manager")
        };
        c.n_mut(victim).kill9();
        dead.push(victim);
        let alive = c.running();
        let via = alive[0];
        if k < tolerated {
            // Within an election or so, writes work again through any survivor.
            let start = Instant::now();
            poll(
                &format!("a write with {} of {managers} managers", alive.len()),
                Duration::from_secs(20),
                || c.dump(),
                || label_update(&c.n(via).client(), "q", &format!("k{k}"), "1"),
            );
            eprintln!(
                "{managers} managers, {} lost: writes accepted {:?} after the kill",
                k + 1,
                start.elapsed()
            );
            c.wait_leader(MINUTE);
        } else {
            for m in &alive {
                let start = Instant::now();
                let r = label_update(&c.n(*m).client(), "q", "lost", "1");
                let took = start.elapsed();
                let e = r.err().unwrap_or_else(|| {
                    panic!(
                        "node{m} accepted a write with {} of {managers} managers\n{}",
                        alive.len(),
                        c.dump()
                    )
                });
                assert!(
                    e.contains("The swarm does not have a leader"),
                    "node{m}: {e}"
                );
                assert!(
                    took <= Duration::from_secs(10),
                    "node{m} took {took:?} to refuse a write without quorum"
                );
                // Reads still work.
                let ls = c
                    .n(*m)
                    .docker_ok(&["service", "ls", "--format", "{{.Name}}"]);
                assert_eq!(ls.trim(), "q", "node{m}");
                let nodes = c
                    .n(*m)
                    .docker_ok(&["node", "ls", "--format", "{{.Hostname}}"]);
                assert_eq!(nodes.lines().count(), managers, "node{m}: {nodes}");
                let svc = c.n(*m).service("q").unwrap_or_default();
                for j in 0..tolerated {
                    assert_eq!(
                        service_labels(&svc)
                            .get(&format!("k{j}"))
                            .map(String::as_str),
                        Some("1"),
                        "node{m} lost write k{j}"
                    );
                }
            }
        }
    }
}

#[test]
fn quorum_three_managers_survive_one_loss_not_two() {
    if !ready() {
        return;
    }
    quorum_table(3);
}

#[test]
fn quorum_five_managers_survive_two_losses_not_three() {
    if !ready() {
        return;
    }
    quorum_table(5);
}

#[test]
fn force_new_cluster_on_the_last_manager_keeps_everything() {
    if !ready() {
        return;
    }
    let mut c = Cluster::form(3, 0, &[]);
    create_service(&c, 1, "a", 3);
    create_service(&c, 2, "b", 2);
    c.wait_running(1, "a", 3, MINUTE);
    c.wait_running(1, "b", 2, MINUTE);
    label_update(&c.n(1).client(), "a", "before", "1").expect("write with 3 managers");
    let before = c.n(1).service("a").expect("service a");

    c.n_mut(2).kill9_machine();
    c.n_mut(3).kill9_machine();
    let e = label_update(&c.n(1).client(), "a", "lost", "1").expect_err("no quorum");
    assert!(e.contains("does not have a leader"), "{e}");

    let n1 = c.n(1);
    let out = n1.docker_ok(&[
        "swarm",
        "init",
        "--force-new-cluster",
        "--listen-addr",
        &n1.addr,
        "--advertise-addr",
        &n1.addr,
    ]);
    assert!(out.contains("Swarm initialized"), "{out}");
    // Same swarm, same objects: services keep their IDs and every acknowledged change. The
    // refused label may be there too: it reached this manager's log, and recovery keeps the
    // whole local log so that no acknowledged write can be lost.
    let after = n1.service("a").expect("service a after force-new-cluster");
    assert_eq!(after["ID"], before["ID"]);
    let mut spec = after["Spec"].clone();
    if let Some(labels) = spec["Labels"].as_object_mut() {
        labels.remove("lost");
    }
    assert_eq!(spec, before["Spec"]);
    assert!(n1.service("b").is_ok());
    poll(
        "writes after force-new-cluster",
        Duration::from_secs(20),
        || c.dump(),
        || label_update(&n1.client(), "a", "after", "1"),
    );
    create_service(&c, 1, "c", 1);
    // The lost nodes' tasks come back on the survivor.
    c.wait_running(1, "a", 3, MINUTE);
    c.wait_running(1, "b", 2, MINUTE);
    c.wait_running(1, "c", 1, MINUTE);

    // New managers join, a worker is promoted, and the dead managers are demoted and removed.
    c.add_nodes(2);
    c.join(4, 1, Role::Manager);
    c.join(5, 1, Role::Worker);
    // Promote once node5 is settled (Ready): its first status writes would otherwise race the
    // CLI's read-modify-write and make it "out of sequence", as with Docker.
    c.wait_nodes(&[(1, M), (2, M), (3, M), (4, M), (5, W)], &[2, 3], MINUTE);
    c.n(1).docker_ok(&["node", "promote", "node5"]);
    c.wait_nodes(&[(1, M), (2, M), (3, M), (4, M), (5, M)], &[2, 3], MINUTE);
    c.n(4).docker_ok(&["node", "demote", "node2", "node3"]);
    c.n(5).docker_ok(&["node", "rm", "node2", "node3"]);
    c.wait_formed(&[(1, M), (4, M), (5, M)]);
    // And the new group keeps a quorum without node1.
    c.n_mut(1).kill9();
    c.wait_leader(MINUTE);
    poll(
        "a write with 2 of 3 new managers",
        Duration::from_secs(20),
        || c.dump(),
        || label_update(&c.n(4).client(), "a", "without-node1", "1"),
    );
}

#[test]
fn killed_worker_is_marked_down_and_its_tasks_run_elsewhere() {
    if !ready() {
        return;
    }
    let mut c = Cluster::form(1, 2, &[]);
    create_service(&c, 1, "w", 3);
    c.wait_running(1, "w", 3, MINUTE);
    let node3 = c.n(3).node_id();
    let on3: Vec<String> = c
        .n(1)
        .running_tasks("w")
        .unwrap_or_default()
        .into_iter()
        .filter(|t| t.1 == node3)
        .map(|t| t.0)
        .collect();
    assert_eq!(on3.len(), 1, "one replica per node");

    let start = Instant::now();
    c.n_mut(3).kill9_machine();
    let moved = poll(
        "node3's task to run elsewhere",
        MINUTE,
        || c.dump(),
        || {
            let r = c.n(1).running_tasks("w")?;
            if r.len() == 3 && r.iter().all(|t| t.1 != node3) {
                Ok(start.elapsed())
            } else {
                Err(format!("{r:?}"))
            }
        },
    );
    eprintln!("worker loss: its task ran elsewhere {moved:?} after kill -9");
    c.wait_nodes(&[(1, M), (2, W), (3, W)], &[3], Duration::from_secs(10));
    let ps = c.n(1).docker_ok(&["service", "ps", "w"]);
    assert!(ps.contains("node3"), "the lost task is still listed: {ps}");
}

#[test]
fn hung_worker_is_marked_down_by_a_new_leader_after_missed_heartbeats() {
    if !ready() {
        return;
    }
    let mut c = Cluster::form(3, 1, &[]);
    create_service(&c, 1, "h", 4);
    c.wait_running(1, "h", 4, MINUTE);
    // The first leader goes; a manager that joined the swarm later leads now.
    let first = c.wait_leader(MINUTE);
    c.n_mut(first).kill9();
    let leader = c.wait_leader(MINUTE);
    let sessions = |log: &str| log.matches("agent: session open").count();
    poll(
        "the worker's agent to open a session with the new leader",
        MINUTE,
        || c.dump(),
        || {
            let n = sessions(&c.n(4).log_text());
            if n >= 2 {
                Ok(())
            } else {
                Err(format!("{n} sessions opened"))
            }
        },
    );
    let managers: Vec<(usize, Role)> = (1..=3).map(|m| (m, M)).collect();
    let mut want = managers.clone();
    want.push((4, W));
    c.wait_nodes(&want, &[first], MINUTE);

    // The worker hangs: its connections stay open, its heartbeats stop. With the swarm's 1 s
    // heartbeat it is Down after three missed ones, whichever manager leads.
    let node4 = c.n(4).node_id();
    c.n(4).freeze();
    let start = Instant::now();
    let took = poll(
        "the hung worker to be marked Down",
        Duration::from_secs(8),
        || c.dump(),
        || {
            let down = c
                .n(leader)
                .nodes()?
                .iter()
                .any(|n| n["ID"] == node4.as_str() && n["Status"]["State"] == "down");
            if down {
                Ok(start.elapsed())
            } else {
                Err("not down yet".into())
            }
        },
    );
    eprintln!("hung worker marked Down {took:?} after it froze");
    poll(
        "its task to run elsewhere",
        MINUTE,
        || c.dump(),
        || {
            let r = c.n(leader).running_tasks("h")?;
            if r.len() == 4 && r.iter().all(|t| t.1 != node4) {
                Ok(())
            } else {
                Err(format!("{r:?}"))
            }
        },
    );
    // Thawed, it comes back Ready and stops the task that now runs elsewhere.
    c.n(4).thaw();
    c.wait_nodes(&want, &[first], MINUTE);
    poll(
        "the thawed worker to stop its replaced task",
        MINUTE,
        || c.dump(),
        || {
            let filters = format!("{{\"node\":{{\"{node4}\":true}}}}");
            let tasks = c.n(leader).get(&format!(
                "/tasks?filters={}",
                super::common::urlencode(&filters)
            ))?;
            let running: Vec<_> = tasks
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .filter(|t| t["Status"]["State"] == "running")
                .map(|t| t["ID"].clone())
                .collect();
            if running.is_empty() {
                Ok(())
            } else {
                Err(format!("still running on node4: {running:?}"))
            }
        },
    );
    c.wait_running(leader, "h", 4, MINUTE);
}
