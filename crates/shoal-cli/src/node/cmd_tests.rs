//! `node promote|demote|rm|ps` against a scripted daemon: the requests the real `docker` 28.2 CLI
//! sent to a shoal manager for the same commands (captured through a logging proxy), and what it
//! printed.

use super::ps::PsArgs;
use super::*;
use crate::client::server_tests::scripted;

const WORKER: &str = r#"{"ID":"79ad4sx0776rv3e563is0uh0v","Version":{"Index":24},"Spec":{"Labels":{},"Role":"worker","Availability":"active"},"Description":{"Hostname":"node2"},"Status":{"State":"ready","Addr":"127.0.0.1"}}"#;
const MANAGER: &str = r#"{"ID":"5yusmixg32fgvd6dy7vebrqcv","Version":{"Index":26},"Spec":{"Labels":{},"Role":"manager","Availability":"active"},"Description":{"Hostname":"node3"},"Status":{"State":"ready","Addr":"127.0.0.1"},"ManagerStatus":{"Reachability":"reachable","Addr":"127.0.0.1:24773"}}"#;
const SELF: &str = r#"{"ID":"1gc9qqnaau0xnlq7xl7voccx8","Version":{"Index":25},"Spec":{"Labels":{},"Role":"manager","Availability":"active"},"Description":{"Hostname":"node1"},"Status":{"State":"ready"},"ManagerStatus":{"Leader":true,"Addr":"127.0.0.1:24771"}}"#;
const INFO: &str = r#"{"Swarm":{"NodeID":"1gc9qqnaau0xnlq7xl7voccx8","LocalNodeState":"active","ControlAvailable":true}}"#;

fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).expect("utf8")
}

fn refs(r: &[&str]) -> Vec<String> {
    r.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn promote_and_demote_say_what_docker_says() {
    let f = scripted(vec![
        ("GET /v1.50/nodes/node2", 200, WORKER.to_string()),
        ("GET /v1.50/nodes/node3", 200, MANAGER.to_string()),
        ("POST /v1.50/nodes/", 200, String::new()),
    ])
    .await;
    let client = Client::new(&f.host).expect("valid host");
    let mut out = Vec::new();
    update::promote(&client, &refs(&["node2", "node3"]), &mut out)
        .await
        .expect("promoted");
    update::demote(&client, &refs(&["node3", "node2"]), &mut out)
        .await
        .expect("demoted");
    assert_eq!(
        text(out),
        "Node node2 promoted to a manager in the swarm.\n\
         Node 5yusmixg32fgvd6dy7vebrqcv is already a manager.\n\
         Manager node3 demoted in the swarm.\n\
         Node 79ad4sx0776rv3e563is0uh0v is already a worker.\n"
    );
    let requests = f.requests();
    let posts: Vec<(&str, &str)> = requests
        .iter()
        .filter(|(l, _)| l.starts_with("POST"))
        .map(|(l, b)| (l.as_str(), b.as_str()))
        .collect();
    assert_eq!(
        posts,
        [
            (
                "POST /v1.50/nodes/79ad4sx0776rv3e563is0uh0v/update?version=24 HTTP/1.1",
                r#"{"Labels":{},"Role":"manager","Availability":"active"}"#
            ),
            (
                "POST /v1.50/nodes/5yusmixg32fgvd6dy7vebrqcv/update?version=26 HTTP/1.1",
                r#"{"Labels":{},"Role":"worker","Availability":"active"}"#
            ),
        ]
    );
}

#[tokio::test]
async fn promote_stops_at_the_first_failure() {
    let f = scripted(vec![
        (
            "GET /v1.50/nodes/nosuch",
            404,
            r#"{"message":"node nosuch not found"}"#.to_string(),
        ),
        ("GET /v1.50/nodes/node2", 200, WORKER.to_string()),
    ])
    .await;
    let client = Client::new(&f.host).expect("valid host");
    let err = update::promote(&client, &refs(&["nosuch", "node2"]), &mut Vec::new())
        .await
        .err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("Error response from daemon: node nosuch not found")
    );
    assert_eq!(f.lines().len(), 2);
}

#[tokio::test]
async fn rm_tries_every_node_and_reports_failures_together() {
    let f = scripted(vec![
        ("DELETE /v1.50/nodes/node4", 200, String::new()),
        (
            "DELETE /v1.50/nodes/nosuch",
            404,
            r#"{"message":"node nosuch not found"}"#.to_string(),
        ),
        (
            "DELETE /v1.50/nodes/busy",
            400,
            r#"{"message":"node busy is not down and can't be removed"}"#.to_string(),
        ),
    ])
    .await;
    let client = Client::new(&f.host).expect("valid host");
    let mut out = Vec::new();
    let err = rm(&client, &refs(&["busy", "node4", "nosuch"]), true, &mut out)
        .await
        .err();
    assert_eq!(text(out), "node4\n");
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some(
            "Error response from daemon: node busy is not down and can't be removed\nError response from daemon: node nosuch not found"
        )
    );
    assert_eq!(
        f.lines()[1..],
        [
            "DELETE /v1.50/nodes/busy?force=1 HTTP/1.1",
            "DELETE /v1.50/nodes/node4?force=1 HTTP/1.1",
            "DELETE /v1.50/nodes/nosuch?force=1 HTTP/1.1",
        ]
    );
    rm(&client, &refs(&["node4"]), false, &mut Vec::new())
        .await
        .expect("removed");
    assert_eq!(
        f.lines().last().map(String::as_str),
        Some("DELETE /v1.50/nodes/node4 HTTP/1.1")
    );
}

fn ps_args(nodes: &[&str]) -> PsArgs {
    PsArgs {
        no_trunc: false,
        no_resolve: false,
        filter: vec![],
        format: None,
        quiet: false,
        nodes: refs(nodes),
    }
}

/// Two running tasks of `web`, on node1 (IDs as shoal made them).
fn tasks_daemon() -> Vec<(&'static str, u16, String)> {
    let task = |id: &str, slot: u32| {
        format!(
            r#"{{"ID":"{id}","CreatedAt":"2026-11-24T14:23:38.12Z","ServiceID":"6nfid65ka1l364uo0ez6eloc0","Slot":{slot},"NodeID":"1gc9qqnaau0xnlq7xl7voccx8","Spec":{{"ContainerSpec":{{"Image":"host:latest"}}}},"Status":{{"Timestamp":"2020-01-01T00:00:00Z","State":"running"}},"DesiredState":"running"}}"#
        )
    };
    vec![
        ("GET /v1.50/info", 200, INFO.to_string()),
        (
            "GET /v1.50/nodes/1gc9qqnaau0xnlq7xl7voccx8",
            200,
            SELF.to_string(),
        ),
        ("GET /v1.50/nodes/node2", 200, WORKER.to_string()),
        (
            "GET /v1.50/nodes/nosuch",
            404,
            r#"{"message":"node nosuch not found"}"#.to_string(),
        ),
        (
            "GET /v1.50/tasks?filters=%7B%22node%22%3A%7B%221gc9",
            200,
            format!(
                "[{},{}]",
                task("1bm0xnsif3qiuz4l9p8156pcb", 4),
                task("30y79lm3ehkygmm4n32fy5gs6", 1)
            ),
        ),
        ("GET /v1.50/tasks", 200, "[]".to_string()),
        (
            "GET /v1.50/services/6nfid65ka1l364uo0ez6eloc0",
            200,
            r#"{"ID":"6nfid65ka1l364uo0ez6eloc0","Spec":{"Name":"web"}}"#.to_string(),
        ),
    ]
}

#[tokio::test]
async fn ps_defaults_to_self_like_docker() {
    let f = scripted(tasks_daemon()).await;
    let client = Client::new(&f.host).expect("valid host");
    let mut out = Vec::new();
    ps::ps(&client, ps_args(&[]), &mut out)
        .await
        .expect("listed");
    let table = text(out);
    let rows: Vec<&str> = table.lines().collect();
    assert!(
        rows[0].starts_with(
            "ID             NAME      IMAGE         NODE      DESIRED STATE   CURRENT STATE "
        ),
        "{table}"
    );
    assert!(
        rows[1].starts_with(
            "30y79lm3ehky   web.1     host:latest   node1     Running         Running "
        ),
        "{table}"
    );
    assert!(rows[2].starts_with("1bm0xnsif3qi   web.4     host:latest   node1 "));
    assert_eq!(
        f.lines(),
        [
            "HEAD /_ping HTTP/1.1",
            "GET /v1.50/info HTTP/1.1",
            "GET /v1.50/nodes/1gc9qqnaau0xnlq7xl7voccx8 HTTP/1.1",
            "GET /v1.50/tasks?filters=%7B%22node%22%3A%7B%221gc9qqnaau0xnlq7xl7voccx8%22%3Atrue%7D%7D HTTP/1.1",
            "GET /v1.50/services/6nfid65ka1l364uo0ez6eloc0?insertDefaults=false HTTP/1.1",
            "GET /v1.50/nodes/1gc9qqnaau0xnlq7xl7voccx8 HTTP/1.1",
        ]
    );
}

#[tokio::test]
async fn ps_prints_what_it_found_then_the_failures() {
    let f = scripted(tasks_daemon()).await;
    let client = Client::new(&f.host).expect("valid host");
    let mut args = ps_args(&["self", "nosuch", "node2"]);
    args.quiet = true;
    let mut out = Vec::new();
    let err = ps::ps(&client, args, &mut out).await.err();
    // docker's `node ps -q` truncates IDs.
    assert_eq!(text(out), "30y79lm3ehky\n1bm0xnsif3qi\n");
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("Error response from daemon: node nosuch not found")
    );
    // Each node has its own filter (docker 28 would ask for node1's tasks again with node2's).
    assert!(f.lines().contains(
        &"GET /v1.50/tasks?filters=%7B%22node%22%3A%7B%2279ad4sx0776rv3e563is0uh0v%22%3Atrue%7D%7D HTTP/1.1".to_string()
    ));

    let mut args = ps_args(&["nosuch"]);
    args.no_trunc = true;
    let mut out = Vec::new();
    let err = ps::ps(&client, args, &mut out).await.err();
    assert_eq!(text(out), "", "nothing found, nothing printed");
    assert!(err.is_some());
}
