//! The swarm commands against docker: request lines and bodies as the real `docker` 28.2 CLI
//! sent them to a shoal daemon (captured through a logging proxy), and the text it printed.

use bollard_stubs::models::Node;

use super::ca::{self, CaArgs, observe, rotate_spec, sha256_digest};
use super::init::InitArgs;
use super::join::{self, JoinArgs, JoinTokenArgs, build_join};
use super::*;
use crate::client::server_tests::scripted;
use crate::service::progress::{Renderer, count_progress};

/// `GET /swarm` from a shoal manager.
const SWARM: &str = r#"{"ID":"098rtez5jh7zvrh36dt3fo8ml","Version":{"Index":2},"CreatedAt":"2026-11-24T14:22:47.380297114Z","UpdatedAt":"2026-11-24T14:22:47.380297114Z","Spec":{"Name":"default","Labels":{},"Orchestration":{"TaskHistoryRetentionLimit":5},"Raft":{"SnapshotInterval":10000,"KeepOldSnapshots":0,"LogEntriesForSlowFollowers":500,"ElectionTick":10,"HeartbeatTick":1},"Dispatcher":{"HeartbeatPeriod":1000000000},"CAConfig":{"NodeCertExpiry":7776000000000000,"ForceRotate":0},"EncryptionConfig":{"AutoLockManagers":false},"TaskDefaults":{}},"RootRotationInProgress":false,"JoinTokens":{"Worker":"SWMTKN-1-wt","Manager":"SWMTKN-1-mt"}}"#;
/// The spec docker sent back with that swarm (its own field order).
const SPEC_SENT: &str = r#"{"Name":"default","Labels":{},"Orchestration":{"TaskHistoryRetentionLimit":5},"Raft":{"SnapshotInterval":10000,"KeepOldSnapshots":0,"LogEntriesForSlowFollowers":500,"ElectionTick":10,"HeartbeatTick":1},"Dispatcher":{"HeartbeatPeriod":1000000000},"CAConfig":{"NodeCertExpiry":7776000000000000},"TaskDefaults":{},"EncryptionConfig":{"AutoLockManagers":false}}"#;
const MANAGER_NODE: &str = r#"{"ID":"1gc9qqnaau0xnlq7xl7voccx8","Version":{"Index":25},"Spec":{"Labels":{},"Role":"manager","Availability":"active"},"Description":{"Hostname":"node1"},"Status":{"State":"ready","Addr":"127.0.0.1"},"ManagerStatus":{"Leader":true,"Reachability":"reachable","Addr":"127.0.0.1:24771"}}"#;
const MANAGER_INFO: &str = r#"{"Swarm":{"NodeID":"1gc9qqnaau0xnlq7xl7voccx8","LocalNodeState":"active","ControlAvailable":true}}"#;
const WORKER_INFO: &str = r#"{"Swarm":{"NodeID":"79ad4sx0776rv3e563is0uh0v","LocalNodeState":"active","ControlAvailable":false,"RemoteManagers":[{"Addr":"127.0.0.1:24771"}]}}"#;
const NOT_MANAGER: &str = r#"{"message":"This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager."}"#;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("valid JSON")
}

fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).expect("utf8")
}

fn init_args(listen: &str) -> InitArgs {
    InitArgs {
        advertise_addr: None,
        listen_addr: listen.to_string(),
        availability: None,
        force_new_cluster: false,
        spec: SwarmSpecFlags::default(),
    }
}

#[test]
fn listen_addr_defaults_like_docker() {
    let n = |s: &str| normalize_listen_addr(s).ok();
    assert_eq!(n("0.0.0.0:2377").as_deref(), Some("0.0.0.0:2377"));
    assert_eq!(n("10.0.0.1").as_deref(), Some("10.0.0.1:2377"));
    assert_eq!(n(":4000").as_deref(), Some("0.0.0.0:4000"));
    assert_eq!(n("tcp://eth0:2378").as_deref(), Some("eth0:2378"));
    assert_eq!(n("[::1]").as_deref(), Some("[::1]:2377"));
    assert!(n("udp://x").is_none());
    assert!(n("h:port").is_none());
}

#[test]
fn init_body_matches_docker_fields() {
    let mut args = init_args("0.0.0.0:2377");
    args.availability = Some("Drain".into());
    args.force_new_cluster = true;
    args.spec.task_history_limit = Some("3".into());
    args.spec.dispatcher_heartbeat = Some("10s".into());
    args.spec.autolock = Some(true);
    let body = build_init(&args).expect("valid flags");
    let v = serde_json::to_value(&body).expect("serialisable");
    assert_eq!(v["ListenAddr"], "0.0.0.0:2377");
    assert_eq!(v["AdvertiseAddr"], "");
    assert_eq!(v["ForceNewCluster"], true);
    assert_eq!(v["AutoLockManagers"], true);
    assert_eq!(v["Availability"], "drain");
    assert_eq!(v["SubnetSize"], 24);
    assert_eq!(v["Spec"]["Orchestration"]["TaskHistoryRetentionLimit"], 3);
    assert_eq!(
        v["Spec"]["Dispatcher"]["HeartbeatPeriod"],
        10_000_000_000i64
    );
    assert_eq!(v["Spec"]["EncryptionConfig"]["AutoLockManagers"], true);
}

#[test]
fn init_refuses_bad_values() {
    let mut args = init_args("0.0.0.0:2377");
    args.availability = Some("sideways".into());
    let err = build_init(&args).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("invalid availability \"sideways\", only active, pause and drain are supported")
    );
    let mut args = init_args("0.0.0.0:2377");
    args.spec.dispatcher_heartbeat = Some("5".into());
    let err = build_init(&args).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            r#"invalid argument "5" for "--dispatcher-heartbeat" flag: time: missing unit in duration "5""#
        )
    );
}

#[test]
fn update_merges_only_given_flags() {
    let mut spec: SwarmSpec = serde_json::from_str(
        r#"{"Name":"default","Orchestration":{"TaskHistoryRetentionLimit":5},"Raft":{"SnapshotInterval":10000,"ElectionTick":10,"HeartbeatTick":1},"Dispatcher":{"HeartbeatPeriod":5000000000},"CAConfig":{"NodeCertExpiry":7776000000000000},"EncryptionConfig":{"AutoLockManagers":false}}"#,
    )
    .expect("valid spec");
    let flags = SwarmSpecFlags {
        task_history_limit: Some("10".into()),
        cert_expiry: Some("720h".into()),
        snapshot_interval: Some("500".into()),
        dispatcher_heartbeat: Some("2s".into()),
        ..Default::default()
    };
    merge_spec(&mut spec, &flags).expect("valid flags");
    let v = serde_json::to_value(&spec).expect("serialisable");
    assert_eq!(v["Orchestration"]["TaskHistoryRetentionLimit"], 10);
    assert_eq!(v["CAConfig"]["NodeCertExpiry"], 720i64 * 3_600_000_000_000);
    assert_eq!(v["Dispatcher"]["HeartbeatPeriod"], 2_000_000_000i64);
    assert_eq!(v["Raft"]["SnapshotInterval"], 500);
    assert_eq!(v["Raft"]["ElectionTick"], 10);
}

#[test]
fn update_query_spells_out_every_rotation_like_docker() {
    let q = crate::client::encode_query(&update_query(2, true, false));
    assert_eq!(
        q,
        "?rotateManagerToken=false&rotateManagerUnlockKey=false&rotateWorkerToken=true&version=2"
    );
}

#[test]
fn join_body_is_docker_s() {
    let args = JoinArgs {
        token: Some(
            "SWMTKN-1-35irohozdpkugox41ckk93d5bibc0qqhfq4aj9nf2a9tsc9q3p-5rp4kzszmzmv3th58oe87o17m"
                .into(),
        ),
        listen_addr: "127.0.0.1:24774".into(),
        advertise_addr: Some("127.0.0.1:24774".into()),
        availability: None,
        remote: "127.0.0.1:24771".into(),
    };
    let body = serde_json::to_string(&build_join(&args).expect("valid")).expect("serialisable");
    assert_eq!(
        body,
        r#"{"ListenAddr":"127.0.0.1:24774","AdvertiseAddr":"127.0.0.1:24774","DataPathAddr":"","RemoteAddrs":["127.0.0.1:24771"],"JoinToken":"SWMTKN-1-35irohozdpkugox41ckk93d5bibc0qqhfq4aj9nf2a9tsc9q3p-5rp4kzszmzmv3th58oe87o17m","Availability":""}"#
    );
    let args = JoinArgs {
        token: None,
        listen_addr: "10.0.0.2".into(),
        advertise_addr: None,
        availability: Some("DRAIN".into()),
        remote: "10.0.0.1:2377".into(),
    };
    let v = serde_json::to_value(build_join(&args).expect("valid")).expect("serialisable");
    assert_eq!(v["ListenAddr"], "10.0.0.2:2377");
    assert_eq!(v["Availability"], "drain");
    assert_eq!(v["JoinToken"], "");
}

#[tokio::test]
async fn join_asks_info_for_the_role() {
    for (info, says) in [
        (WORKER_INFO, "This node joined a swarm as a worker.\n"),
        (MANAGER_INFO, "This node joined a swarm as a manager.\n"),
    ] {
        let f = scripted(vec![
            ("POST /v1.50/swarm/join", 200, String::new()),
            ("GET /v1.50/info", 200, info.to_string()),
        ])
        .await;
        let client = Client::new(&f.host).expect("valid host");
        let args = JoinArgs {
            token: Some("SWMTKN-1-x".into()),
            listen_addr: "0.0.0.0:2377".into(),
            advertise_addr: None,
            availability: None,
            remote: "127.0.0.1:24771".into(),
        };
        let mut out = Vec::new();
        join::join(&client, args, &mut out).await.expect("joined");
        assert_eq!(text(out), says);
        assert_eq!(
            f.lines(),
            [
                "HEAD /_ping HTTP/1.1",
                "POST /v1.50/swarm/join HTTP/1.1",
                "GET /v1.50/info HTTP/1.1"
            ]
        );
    }
}

#[tokio::test]
async fn join_token_rotate_sends_what_docker_sends() {
    let f = scripted(vec![
        ("GET /v1.50/swarm", 200, SWARM.to_string()),
        ("POST /v1.50/swarm/update", 200, String::new()),
        ("GET /v1.50/info", 200, MANAGER_INFO.to_string()),
        ("GET /v1.50/nodes/", 200, MANAGER_NODE.to_string()),
    ])
    .await;
    let client = Client::new(&f.host).expect("valid host");
    let args = JoinTokenArgs {
        quiet: false,
        rotate: true,
        role: "worker".into(),
    };
    let mut out = Vec::new();
    join::join_token(&client, args, &mut out)
        .await
        .expect("rotated");
    assert_eq!(
        text(out),
        "Successfully rotated worker join token.\n\nTo add a worker to this swarm, run the following command:\n\n    shoal swarm join --token SWMTKN-1-wt 127.0.0.1:24771\n\n"
    );
    let requests = f.requests();
    let lines: Vec<&str> = requests.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        lines,
        [
            "HEAD /_ping HTTP/1.1",
            "GET /v1.50/swarm HTTP/1.1",
            "POST /v1.50/swarm/update?rotateManagerToken=false&rotateManagerUnlockKey=false&rotateWorkerToken=true&version=2 HTTP/1.1",
            "GET /v1.50/swarm HTTP/1.1",
            "GET /v1.50/info HTTP/1.1",
            "GET /v1.50/nodes/1gc9qqnaau0xnlq7xl7voccx8 HTTP/1.1",
            "GET /v1.50/swarm HTTP/1.1",
        ]
    );
    // Same fields and values as docker's body (docker omits ForceRotate when it is 0).
    let mut sent = json(&requests[2].1);
    sent["CAConfig"]
        .as_object_mut()
        .map(|c| c.remove("ForceRotate"));
    assert_eq!(sent, json(SPEC_SENT));

    let mut out = Vec::new();
    let quiet = JoinTokenArgs {
        quiet: true,
        rotate: false,
        role: "manager".into(),
    };
    join::join_token(&client, quiet, &mut out)
        .await
        .expect("token");
    assert_eq!(text(out), "SWMTKN-1-mt\n");
    let bad = JoinTokenArgs {
        quiet: true,
        rotate: false,
        role: "boss".into(),
    };
    let err = join::join_token(&client, bad, &mut Vec::new()).await.err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("unknown role boss")
    );
}

#[tokio::test]
async fn manager_commands_on_a_worker_print_the_daemon_s_503() {
    let f = scripted(vec![("GET /v1.50/swarm", 503, NOT_MANAGER.to_string())]).await;
    let client = Client::new(&f.host).expect("valid host");
    let args = JoinTokenArgs {
        quiet: false,
        rotate: false,
        role: "worker".into(),
    };
    let err = join::join_token(&client, args, &mut Vec::new()).await.err();
    let expected = "Error response from daemon: This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
    assert_eq!(err.map(|e| e.to_string()).as_deref(), Some(expected));
    let err = ca::run_with(&client, ca_args(true), &mut Vec::new(), false, 0)
        .await
        .err();
    assert_eq!(err.map(|e| e.to_string()).as_deref(), Some(expected));
}

#[tokio::test]
async fn leave_sends_force_only_when_asked() {
    let f = scripted(vec![("POST /v1.50/swarm/leave", 200, String::new())]).await;
    let client = Client::new(&f.host).expect("valid host");
    let mut out = Vec::new();
    leave(&client, false, &mut out).await.expect("left");
    leave(&client, true, &mut out).await.expect("left");
    assert_eq!(text(out), "Node left the swarm.\nNode left the swarm.\n");
    assert_eq!(
        f.lines()[1..],
        [
            "POST /v1.50/swarm/leave HTTP/1.1",
            "POST /v1.50/swarm/leave?force=1 HTTP/1.1"
        ]
    );
}

fn ca_args(rotate: bool) -> CaArgs {
    CaArgs {
        rotate,
        ca_cert: None,
        ca_key: None,
        cert_expiry: None,
        detach: false,
        quiet: false,
    }
}

#[test]
fn ca_rotation_bumps_force_rotate_like_docker() {
    let swarm: Swarm = serde_json::from_str(SWARM).expect("valid swarm");
    let mut spec = swarm.spec.clone().unwrap_or_default();
    assert_eq!(rotate_spec(&mut spec, None, None, None), Some(1));
    // docker's body for `swarm ca --rotate` against this swarm.
    let mut expected = json(SPEC_SENT);
    expected["CAConfig"]["ForceRotate"] = 1.into();
    assert_eq!(serde_json::to_value(&spec).expect("serialisable"), expected);

    let mut spec = swarm.spec.unwrap_or_default();
    let forced = rotate_spec(
        &mut spec,
        Some("-----BEGIN CERTIFICATE-----".into()),
        Some("-----BEGIN EC PRIVATE KEY-----".into()),
        Some(3_600_000_000_000),
    );
    assert_eq!(forced, None);
    let v = serde_json::to_value(&spec).expect("serialisable");
    assert_eq!(v["CAConfig"]["ForceRotate"], 0);
    assert_eq!(
        v["CAConfig"]["SigningCACert"],
        "-----BEGIN CERTIFICATE-----"
    );
    assert_eq!(v["CAConfig"]["NodeCertExpiry"], 3_600_000_000_000i64);
}

#[tokio::test]
async fn ca_flags_are_checked_like_docker() {
    let client = Client::new("unix:///nonexistent/shoal.sock").expect("valid host");
    let mut args = ca_args(false);
    args.cert_expiry = Some("48h".into());
    let err = ca::run_with(&client, args, &mut Vec::new(), false, 0)
        .await
        .err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("`--cert-expiry` flag requires the `--rotate` flag to update the CA")
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let pem = dir.path().join("ca.pem");
    std::fs::write(
        &pem,
        "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n",
    )
    .expect("written");
    let mut args = ca_args(true);
    args.ca_cert = Some(pem.display().to_string());
    let err = ca::run_with(&client, args, &mut Vec::new(), false, 0)
        .await
        .err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some(
            "the --ca-cert flag requires that a --ca-key flag and/or --external-ca flag be provided as well"
        )
    );
    let not_pem = dir.path().join("key.txt");
    std::fs::write(&not_pem, "hello").expect("written");
    let mut args = ca_args(true);
    args.ca_key = Some(not_pem.display().to_string());
    let err = ca::run_with(&client, args, &mut Vec::new(), false, 0)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.ends_with("flag: file contents must be in PEM format"),
        "{err}"
    );
}

#[tokio::test]
async fn ca_shows_the_trust_root_or_docker_s_error() {
    let with_root = r#"{"ID":"c","TLSInfo":{"TrustRoot":"-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n"}}"#;
    let f = scripted(vec![("GET /v1.50/swarm", 200, with_root.to_string())]).await;
    let client = Client::new(&f.host).expect("valid host");
    let mut out = Vec::new();
    ca::run_with(&client, ca_args(false), &mut out, false, 0)
        .await
        .expect("shown");
    assert_eq!(
        text(out),
        "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n"
    );
    let f = scripted(vec![("GET /v1.50/swarm", 200, SWARM.to_string())]).await;
    let client = Client::new(&f.host).expect("valid host");
    let err = ca::run_with(&client, ca_args(false), &mut Vec::new(), false, 0)
        .await
        .err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("No CA information available")
    );
}

fn node_tls(id: &str, root: &str, subject: &str) -> Node {
    serde_json::from_value(serde_json::json!({
        "ID": id,
        "Description": {"TLSInfo": {"TrustRoot": root, "CertIssuerSubject": subject, "CertIssuerPublicKey": "pk"}}
    }))
    .expect("valid node")
}

fn swarm_state(in_progress: bool, force_rotate: u64, root: &str) -> Swarm {
    serde_json::from_value(serde_json::json!({
        "Spec": {"CAConfig": {"ForceRotate": force_rotate}},
        "RootRotationInProgress": in_progress,
        "TLSInfo": {"TrustRoot": root, "CertIssuerSubject": if root.is_empty() { "" } else { "new" }, "CertIssuerPublicKey": if root.is_empty() { "" } else { "pk" }}
    }))
    .expect("valid swarm")
}

#[test]
fn rotation_counts_nodes_by_what_the_daemon_reports() {
    let bare: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|id| serde_json::from_value(serde_json::json!({ "ID": id })).expect("valid node"))
        .collect();
    // No TLS information anywhere: the swarm's state decides for every node.
    let o = observe(&swarm_state(true, 1, ""), &bare, Some(1));
    assert_eq!((o.certs, o.roots, o.total, o.done), (0, 0, 3, false));
    assert_eq!(o.digest, "");
    let o = observe(&swarm_state(false, 1, ""), &bare, Some(1));
    assert_eq!((o.certs, o.roots, o.total, o.done), (3, 3, 3, true));
    // A manager that has not seen our ForceRotate yet cannot end the wait.
    let o = observe(&swarm_state(false, 0, ""), &bare, Some(1));
    assert_eq!((o.certs, o.done), (0, false));

    // Full TLS information: compared as docker does; roots show 0 until every cert is new.
    let nodes = vec![
        node_tls("a", "NEW", "new"),
        node_tls("b", "OLD", "new"),
        node_tls("c", "OLD", "old"),
    ];
    let o = observe(&swarm_state(true, 1, "NEW"), &nodes, Some(1));
    assert_eq!((o.certs, o.roots, o.done), (2, 0, false));
    assert_eq!(o.digest, sha256_digest(b"NEW"));
    let all_new = vec![
        node_tls("a", "NEW", "new"),
        node_tls("b", "NEW", "new"),
        node_tls("c", "OLD", "new"),
    ];
    let o = observe(&swarm_state(false, 1, "NEW"), &all_new, Some(1));
    assert_eq!((o.certs, o.roots, o.done), (3, 2, false));
}

#[test]
fn digest_is_go_digest_s() {
    assert_eq!(
        sha256_digest(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn counted_progress_is_docker_s() {
    let bar = |n: usize| format!("[{}>{}] ", "=".repeat(n), " ".repeat(50 - n));
    assert_eq!(
        count_progress(3, 3, "nodes", 150),
        format!("{}3/3 nodes", bar(50))
    );
    assert_eq!(
        count_progress(0, 3, "nodes", 150),
        format!("{}0/3 nodes", bar(0))
    );
    assert_eq!(
        count_progress(1, 3, "nodes", 150),
        format!("{}1/3 nodes", bar(16))
    );
    assert_eq!(count_progress(1, 3, "nodes", 80), "1/3 nodes");
    assert_eq!(count_progress(0, 0, "nodes", 150), "");
}

/// A daemon whose swarm is, look after look: as before the update, rotating, then rotated.
/// `skip` starts later in that story.
async fn rotating_daemon(skip: usize) -> crate::client::server_tests::Fake {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let swarms = Arc::new(AtomicUsize::new(0));
    let nodes = r#"[{"ID":"a"},{"ID":"b"},{"ID":"c"}]"#;
    crate::client::server_tests::fake_with(Arc::new(move |head: &str| {
        use crate::client::server_tests::http_json;
        if head.starts_with("HEAD /_ping") {
            return "HTTP/1.1 200 OK\r\nApi-Version: 1.50\r\nContent-Length: 0\r\n\r\n".into();
        }
        if head.starts_with("GET /v1.50/swarm") {
            let n = swarms.fetch_add(1, Ordering::SeqCst) + skip;
            // 0: before the update; 1: rotating; after: done.
            let body = match n {
                0 => SWARM.to_string(),
                1 => SWARM
                    .replace("\"ForceRotate\":0", "\"ForceRotate\":1")
                    .replace(
                        "\"RootRotationInProgress\":false",
                        "\"RootRotationInProgress\":true",
                    ),
                _ => SWARM.replace("\"ForceRotate\":0", "\"ForceRotate\":1"),
            };
            return http_json(200, &body);
        }
        if head.starts_with("GET /v1.50/nodes") {
            return http_json(200, nodes);
        }
        http_json(200, "")
    }))
    .await
}

#[tokio::test]
async fn ca_rotate_follows_the_rotation_off_a_terminal() {
    let f = rotating_daemon(0).await;
    let client = Client::new(&f.host).expect("valid host");
    let mut out = Vec::new();
    let err = ca::run_with(&client, ca_args(true), &mut out, false, 0)
        .await
        .err();
    // shoal reports no trust root yet: docker's error once the rotation is done.
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("No CA information available")
    );
    assert_eq!(
        text(out),
        "desired root digest:\n  rotated TLS certificates:\n  rotated CA certificates:\n  rotated TLS certificates: 0/3 nodes\n  rotated CA certificates:  0/3 nodes\n  rotated TLS certificates: 3/3 nodes\n  rotated CA certificates:  3/3 nodes\n"
    );
    let lines = f.lines();
    assert_eq!(
        lines[..3],
        [
            "HEAD /_ping HTTP/1.1",
            "GET /v1.50/swarm HTTP/1.1",
            "POST /v1.50/swarm/update?rotateManagerToken=false&rotateManagerUnlockKey=false&rotateWorkerToken=false&version=2 HTTP/1.1",
        ]
    );
    assert_eq!(
        lines[3..],
        [
            "GET /v1.50/swarm HTTP/1.1",
            "GET /v1.50/nodes HTTP/1.1",
            "GET /v1.50/swarm HTTP/1.1",
            "GET /v1.50/nodes HTTP/1.1",
            "GET /v1.50/swarm HTTP/1.1",
            "GET /v1.50/swarm HTTP/1.1",
        ]
    );
}

#[tokio::test]
async fn ca_rotate_draws_docker_s_bars_on_a_terminal() {
    let f = rotating_daemon(0).await;
    let client = Client::new(&f.host).expect("valid host");
    let mut args = ca_args(true);
    args.quiet = true;
    let mut out = Vec::new();
    ca::run_with(&client, args, &mut out, true, 150)
        .await
        .expect("-q waits without printing");
    assert_eq!(text(out), "");

    let f = rotating_daemon(1).await;
    let client = Client::new(&f.host).expect("valid host");
    let mut out = Vec::new();
    let mut renderer = Renderer::new(&mut out, true, 150);
    ca::watch(&client, &mut renderer, Some(1))
        .await
        .expect("watched");
    let line =
        |up: usize, id: &str, text: &str| format!("\x1b[{up}A\x1b[2K\r{id}: {text}\r\x1b[{up}B");
    let full = format!(" [{}>] 3/3 nodes", "=".repeat(50));
    let none = format!(" [>{}] 0/3 nodes", " ".repeat(50));
    let mut expected = String::new();
    for (id, action) in [
        ("desired root digest", " "),
        ("  rotated TLS certificates", " "),
        ("  rotated CA certificates", "  "),
    ] {
        expected += &format!("\n{}", line(1, id, action));
    }
    for bars in [&none, &full] {
        expected += &line(3, "desired root digest", " ");
        expected += &line(2, "  rotated TLS certificates", bars);
        expected += &line(1, "  rotated CA certificates", &format!(" {bars}"));
    }
    assert_eq!(text(out), expected);
    assert_eq!(f.lines().len(), 1 + 5);
}

#[test]
fn rebalance_flag_sets_and_clears_the_label_and_keeps_the_others() {
    let mut spec: SwarmSpec =
        serde_json::from_str(r#"{"Name":"default","Labels":{"team":"a"}}"#).expect("valid spec");
    let off = SwarmSpecFlags {
        rebalance: Some(false),
        ..Default::default()
    };
    merge_spec(&mut spec, &off).expect("valid flags");
    let v = serde_json::to_value(&spec).expect("serialisable");
    assert_eq!(v["Labels"]["shoal.orchestration.rebalance"], "false");
    assert_eq!(v["Labels"]["team"], "a");
    let on = SwarmSpecFlags {
        rebalance: Some(true),
        ..Default::default()
    };
    merge_spec(&mut spec, &on).expect("valid flags");
    let v = serde_json::to_value(&spec).expect("serialisable");
    assert!(
        v["Labels"].get("shoal.orchestration.rebalance").is_none(),
        "{v}"
    );
    assert_eq!(v["Labels"]["team"], "a");
}
