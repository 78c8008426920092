//! The behaviour of tasks with networks: the namespace a task runs in, made by the driver
//! (`network_sandbox`) or by the node ([`Harness::netns`]), and what goes with it.

use std::path::Path;

use shoal_types::Id;
use shoal_types::task::NetworkAttachment;

use super::{Harness, is_not_found, output, poll, start, task, wait};
use crate::{RuntimeDriver, RuntimeError};

/// The interface the suite adds to a task's namespace, which the task must see.
const NETNS_MARK: &str = "shconf0";

/// A task of the harness's image on one overlay network, at 10.0.9.5/24.
fn networked<H: Harness>(h: &H, name: &str, script: &str) -> crate::TaskRun {
    let mut r = task(h, name, script);
    r.networks = vec![NetworkAttachment {
        network: Id::from_raw("conformance-net"),
        addr: "10.0.9.5/24".parse().expect("a valid address"),
        aliases: Vec::new(),
    }];
    r
}

/// Polls until what the driver made at `path` (its namespace) is gone.
async fn gone<H: Harness>(h: &H, what: &str, path: &Path) {
    poll(h, what, || async {
        if path.exists() {
            Err(format!("{} still exists", path.display()))
        } else {
            Ok(())
        }
    })
    .await;
}

/// A task with networks runs in the network namespace made for it: the driver's own (the same
/// one when asked again) or, when the driver makes none, the node's. It sees the interfaces put
/// there, its hostname, its hostname mapped to its overlay address, and only the node's DNS
/// server inside the namespace (127.0.0.11, with `ndots:0`). What the driver made goes with
/// `remove`, with a `prepare` that fails, and with `remove` of a task never prepared.
pub async fn a_task_with_networks_runs_in_its_namespace<H: Harness>(h: &H) {
    let (name, d) = (h.name(), h.driver().await);
    let mut r = networked(
        h,
        "netns",
        "ls /sys/class/net; hostname; cat /etc/hosts /etc/resolv.conf",
    );
    let sandbox = |r: crate::TaskRun| {
        let d = &d;
        async move {
            match d.network_sandbox(&r).await {
                Ok(made) => made,
                Err(e) => panic!("{name}: the network sandbox of {}: {e}", r.task_id),
            }
        }
    };
    let made = sandbox(r.clone()).await;
    assert_eq!(
        sandbox(r.clone()).await,
        made,
        "{name}: asked again, the same namespace"
    );
    let netns = match &made {
        Some(p) => {
            assert!(p.exists(), "{name}: the namespace {} exists", p.display());
            p.clone()
        }
        None => match h.netns(r.task_id.as_str()).await {
            Some(p) => p,
            None => {
                eprintln!("{name}: no network namespace to give a task: networks not checked");
                return;
            }
        },
    };
    let marked = h.add_link(&netns, NETNS_MARK).await;
    if !marked {
        eprintln!("{name}: cannot add an interface to a namespace: not checked that tasks see it");
    }
    r.netns = Some(netns);
    start(h, &d, &r).await;
    let exit = wait(h, &d, &r.task_id).await;
    let (out, err) = output(h, &d, &r.task_id).await;
    assert_eq!(exit.code, 0, "{name}: stdout {out:?}, stderr {err:?}");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    if marked {
        assert!(
            lines.contains(&NETNS_MARK),
            "{name}: the task does not see {NETNS_MARK}, added to its namespace: {out:?}"
        );
    }
    assert!(
        lines.contains(&"conformance"),
        "{name}: its hostname: {out:?}"
    );
    let addr = r.networks[0].addr.addr().to_string();
    assert!(
        lines.iter().any(|l| {
            let mut fields = l.split_whitespace();
            fields.next() == Some(addr.as_str()) && fields.any(|f| f == "conformance")
        }),
        "{name}: /etc/hosts maps its hostname to {addr}: {out:?}"
    );
    let servers: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("nameserver"))
        .collect();
    assert_eq!(
        servers,
        vec!["nameserver 127.0.0.11"],
        "{name}: the node's DNS server in its namespace: {out:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("options") && l.split_whitespace().any(|o| o == "ndots:0")),
        "{name}: ndots:0 in /etc/resolv.conf: {out:?}"
    );
    d.remove(&r.task_id)
        .await
        .unwrap_or_else(|e| panic!("{name}: remove: {e}"));
    if let Some(p) = &made {
        gone(h, "the removed task's namespace to go", p).await;
    }
    assert!(
        is_not_found(&d.remove(&r.task_id).await),
        "{name}: remove twice"
    );
    let left = h.leftovers(&d, &r.task_id).await;
    assert!(left.is_empty(), "{name}: left behind: {left:?}");

    // What the driver made for a task never prepared goes with its remove.
    let lone = networked(h, "netnslone", "exit 0");
    if let Some(p) = sandbox(lone.clone()).await {
        d.remove(&lone.task_id)
            .await
            .unwrap_or_else(|e| panic!("{name}: removing a task never prepared: {e}"));
        gone(h, "the namespace of a task never prepared to go", &p).await;
        let left = h.leftovers(&d, &lone.task_id).await;
        assert!(left.is_empty(), "{name}: left behind: {left:?}");
    }

    // ... and with a prepare that fails.
    let mut rejected = networked(h, "netnsbad", "exit 0");
    rejected.container.image = "shoal-test/missing:latest".into();
    if let Some(p) = sandbox(rejected.clone()).await {
        rejected.netns = Some(p.clone());
        match d.prepare(&rejected).await {
            Err(RuntimeError::ImageNotFound(_)) => {}
            other => panic!("{name}: expected ImageNotFound, got {other:?}"),
        }
        gone(h, "the namespace of a rejected task to go", &p).await;
        let left = h.leftovers(&d, &rejected.task_id).await;
        assert!(left.is_empty(), "{name}: left behind: {left:?}");
    }
}
