//! Standalone containers on a swarm's attachable overlay (`docker run --network OVERLAY`):
//! two `shoal daemon`s in test hosts (`shoal_testkit::hosts`, underlay 192.0.2.0/24), a
//! manager and a worker formed with the real `docker` CLI. A container the worker runs gets its
//! address on the overlay from the manager (Swarm's network attachment), reaches a service's
//! tasks by name and virtual IP, and they reach it by its name; an overlay that is not
//! attachable, or unknown, is refused as Docker refuses it; the attachment is no task of
//! `node ps` and goes with the container.
// The tests wait on real processes and measure them in wall-clock time.
#![allow(clippy::disallowed_methods)]

mod common;
#[path = "common/cluster.rs"]
mod harness;
#[path = "common/overlay.rs"]
mod net;

use harness::{Cluster, Role};
use serde_json::Value;
use shoal_testkit::hosts::Hosts;
use shoal_testkit::{Need, need};

use net::{MINUTE, wait_running};

const IMAGE: &str = "shoal-test/busybox:latest";
const ARCHIVE: &str = "/var/tmp/shoal-images/busybox.tar";

fn ready() -> bool {
    need(&[
        Need::Root,
        Need::Tool("docker"),
        Need::Tool("nsenter"),
        Need::TestArchive,
    ])
}

/// node1 a manager, node2 a worker, each in its own test host, on the native runtime with
/// the test image loaded.
fn two_nodes(test: &str) -> (Hosts, Cluster) {
    let hosts = Hosts::new(test, 2).expect("test hosts");
    let c = Cluster::start_on(&hosts, 2, &["--runtime", "native"]);
    c.init(1, &[]);
    c.join(2, 1, Role::Worker);
    c.wait_formed(&[(1, Role::Manager), (2, Role::Worker)]);
    for i in 1..=2 {
        c.n(i).docker_ok(&["image", "load", "-i", ARCHIVE]);
    }
    (hosts, c)
}

/// The network attachment tasks the manager lists (`runtime=attachment`), as JSON.
fn attachments(m: &harness::Node) -> Vec<Value> {
    let filters = net_filter(r#"{"runtime":["attachment"]}"#);
    let (status, v) = m.api("GET", &format!("/tasks?filters={filters}"), None);
    assert_eq!(status, 200, "GET /tasks: {v}");
    v.as_array().cloned().unwrap_or_default()
}

fn net_filter(json: &str) -> String {
    common::urlencode(json)
}

/// The stdout of a `docker` command that must succeed, trimmed.
fn ok(n: &harness::Node, args: &[&str]) -> String {
    n.docker_ok(args).trim().to_string()
}

#[test]
fn a_standalone_container_on_an_attachable_overlay_reaches_a_service_and_is_reached() {
    if !ready() {
        return;
    }
    let (hosts, c) = two_nodes("att");
    let (m, w) = (c.n(1), c.n(2));
    m.docker_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        "appnet",
    ]);
    m.docker_ok(&["network", "create", "-d", "overlay", "private"]);
    m.docker_ok(&[
        "service", "create", "--no-resolve-image", "--detach", "--name", "web", "--network",
        "appnet", "--constraint", "node.hostname==node1", "--stop-grace-period", "1s", IMAGE,
        "sh", "-c",
        "mkdir -p /var/www && echo hello from shoal > /var/www/index.html && exec httpd -f -p 80 -h /var/www",
    ]);
    wait_running(&c, "web", 1);

    // On the worker, a container on the overlay reaches the service by name (its virtual IP,
    // from the embedded DNS). Polled: the service's name is served once its task is ready.
    let said = harness::poll(
        "a container on the worker fetching http://web/",
        MINUTE,
        || c.dump(),
        || {
            // No `wget -T`: the test image's busybox crashes on it.
            let out = w.docker(&[
                "run",
                "--rm",
                "--network",
                "appnet",
                IMAGE,
                "wget",
                "-qO-",
                "http://web/",
            ]);
            let text = harness::output_text(&out);
            if out.status.success() && text.contains("hello from shoal") {
                Ok(text)
            } else {
                Err(format!("{}: {text}", out.status))
            }
        },
    );
    assert_eq!(said.trim(), "hello from shoal");
    // On the manager, which attaches through its own control API rather than over RPC.
    let said = m.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        IMAGE,
        "wget",
        "-qO-",
        "http://web/",
    ]);
    assert_eq!(said.trim(), "hello from shoal");
    // The foreground containers are gone, and their attachments with them.
    harness::poll(
        "the removed container's attachment gone",
        MINUTE,
        || c.dump(),
        || match attachments(m).len() {
            0 => Ok(()),
            n => Err(format!("{n} attachments left")),
        },
    );

    // A long-lived one, with an alias: the service's task reaches it by its name and alias.
    let probe = ok(
        w,
        &[
            "run",
            "-d",
            "--name",
            "probe",
            "--network",
            "appnet",
            "--network-alias",
            "prober",
            IMAGE,
            "sh",
            "-c",
            "mkdir -p /w && echo probe here > /w/index.html && exec httpd -f -p 80 -h /w",
        ],
    );
    let web_container = harness::poll(
        "web's container on node1",
        MINUTE,
        || c.dump(),
        || {
            let id = ok(m, &["ps", "-q", "--filter", "name=web."]);
            if id.is_empty() {
                Err("none yet".to_string())
            } else {
                Ok(id.lines().next().unwrap_or_default().to_string())
            }
        },
    );
    for name in ["probe", "prober"] {
        let got = harness::poll(
            &format!("web's task fetching http://{name}/"),
            MINUTE,
            || c.dump(),
            || {
                let out = m.docker(&[
                    "exec",
                    &web_container,
                    "wget",
                    "-qO-",
                    &format!("http://{name}/"),
                ]);
                let text = harness::output_text(&out);
                if out.status.success() {
                    Ok(text)
                } else {
                    Err(format!("{}: {text}", out.status))
                }
            },
        );
        assert_eq!(got.trim(), "probe here", "{name}");
    }

    // The attachment: a task on the worker for that container, listed only when asked for
    // (Swarm's `runtime=attachment`), never as one of the node's tasks.
    let listed = attachments(m);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let a = &listed[0];
    assert_eq!(
        a["Spec"]["NetworkAttachmentSpec"]["ContainerID"], probe,
        "{a}"
    );
    assert_eq!(
        a["NetworksAttachments"][0]["Network"]["Spec"]["Name"],
        "appnet"
    );
    assert_eq!(a["NodeID"].as_str(), Some(w.node_id().as_str()));
    let node_ps = ok(m, &["node", "ps", "-q", "node2"]);
    assert!(
        node_ps.is_empty(),
        "node ps lists the attachment: {node_ps}"
    );

    // An overlay that is not attachable, and one that does not exist, as Docker refuses them.
    let out = w.docker(&["run", "--rm", "--network", "private", IMAGE, "true"]);
    let text = harness::output_text(&out);
    assert!(
        !out.status.success()
            && text.contains(
                "Could not attach to network private: rpc error: code = PermissionDenied desc = network private not manually attachable"
            ),
        "{text}"
    );
    // Through the API: the CLI takes any 404 from create for a missing image and pulls.
    let body = serde_json::json!({
        "Image": IMAGE,
        "Cmd": ["true"],
        "HostConfig": { "NetworkMode": "nope" },
    });
    let (status, v) = w.api(
        "POST",
        "/containers/create",
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(
        (status, v["message"].as_str()),
        (404, Some("network nope not found")),
        "{v}"
    );
    assert_eq!(attachments(m).len(), 1, "a refusal attaches nothing");

    // Without the service, the container still holds the network.
    m.docker_ok(&["service", "rm", "web"]);
    let refused = m.docker(&["network", "rm", "appnet"]);
    let text = harness::output_text(&refused);
    assert!(
        !refused.status.success() && text.contains("in use by container(s) [\"probe\"]"),
        "{text}"
    );

    // Removing the container gives its address back; then the network can go.
    w.docker_ok(&["rm", "-f", "probe"]);
    harness::poll(
        "probe's attachment gone",
        MINUTE,
        || c.dump(),
        || match attachments(m).len() {
            0 => Ok(()),
            n => Err(format!("{n} attachments left")),
        },
    );
    harness::poll(
        "appnet removed",
        MINUTE,
        || c.dump(),
        || {
            let out = m.docker(&["network", "rm", "appnet"]);
            if out.status.success() {
                Ok(())
            } else {
                Err(harness::output_text(&out))
            }
        },
    );
    drop(c);
    drop(hosts);
}

/// A worker's attachments go with it when it is removed from the swarm: its containers are no
/// longer the swarm's, and the addresses they held are free again.
#[test]
fn a_removed_node_s_attachments_go_with_it() {
    if !ready() {
        return;
    }
    let (hosts, c) = two_nodes("atr");
    let (m, w) = (c.n(1), c.n(2));
    m.docker_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--attachable",
        "appnet",
    ]);
    w.docker_ok(&[
        "run",
        "-d",
        "--name",
        "probe",
        "--network",
        "appnet",
        IMAGE,
        "sleep",
        "1000",
    ]);
    assert_eq!(attachments(m).len(), 1);
    m.docker_ok(&["node", "rm", "--force", "node2"]);
    harness::poll(
        "the removed node's attachment gone",
        MINUTE,
        || c.dump(),
        || match attachments(m).len() {
            0 => Ok(()),
            n => Err(format!("{n} attachments left")),
        },
    );
    m.docker_ok(&["network", "rm", "appnet"]);
    // The container is the worker's own business now.
    let _ = w.docker(&["rm", "-f", "probe"]);
    drop(c);
    drop(hosts);
}
