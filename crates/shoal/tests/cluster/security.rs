//! Who may talk to the cluster: node-to-node RPC over mutual TLS refusing the anonymous, the
//! foreign, the expired and the removed; join tokens; certificate renewal and root CA rotation.

use std::time::Duration;

use serde_json::Value;

use super::harness::{Cluster, Role, output_text, poll};
use super::{
    M, MINUTE, W, assert_same_tasks, create_service, credentials, label_update, now_nanos, ready,
};

/// Calls `path` on the node-to-node RPC at `addr`, presenting `creds` (or no certificate) and
/// trusting `trust`.
fn rpc_call(
    rt: &tokio::runtime::Runtime,
    creds: Option<&shoal_pki::Credentials>,
    trust: &[String],
    addr: &str,
    path: &str,
    body: &Value,
) -> Result<Value, shoal_rpc::RpcError> {
    let cfg = shoal_pki::client_config(creds, trust).expect("client TLS config");
    let (_keep, rx) = tokio::sync::watch::channel(cfg);
    let client = shoal_rpc::RpcClient::new(rx, Duration::from_secs(5));
    rt.block_on(client.call::<Value, Value>(addr, path, body))
}

/// A Raft vote request that would be well-formed from a real member.
fn vote_body() -> Value {
    serde_json::json!({
        "vote": {"leader_id": {"term": 1000, "node_id": 1}, "committed": false},
        "last_log_id": null
    })
}

/// An empty (no-op) proposal.
fn propose_body() -> Value {
    serde_json::json!({"now": 0, "ops": [], "atomic": true})
}

fn assert_forbidden(r: Result<Value, shoal_rpc::RpcError>, what: &str, says: &str) {
    match r {
        Err(shoal_rpc::RpcError::Status { code: 403, message }) if message.contains(says) => {}
        other => panic!("{what}: expected 403 saying {says:?}, got {other:?}"),
    }
}

fn assert_handshake_refused(r: Result<Value, shoal_rpc::RpcError>, what: &str) {
    match r {
        Err(shoal_rpc::RpcError::Tls { .. } | shoal_rpc::RpcError::Connect { .. }) => {}
        other => panic!("{what}: expected the TLS handshake to be refused, got {other:?}"),
    }
}

#[test]
fn node_rpc_refuses_anonymous_foreign_removed_and_worker_callers() {
    if !ready() {
        return;
    }
    let mut c = Cluster::form(1, 2, &[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let manager = c.n(1).addr.clone();
    let mine = credentials(&c, 1);
    let trust = mine.trust.clone();
    let calls = [
        (shoal_node::wire::HEARTBEAT, Value::Null),
        (shoal_node::wire::RAFT_VOTE, vote_body()),
        (shoal_node::wire::RAFT_PROPOSE, propose_body()),
    ];

    // The manager's own certificate works: the probes are well-formed.
    let r = rpc_call(
        &rt,
        Some(&mine),
        &trust,
        &manager,
        shoal_node::wire::RAFT_PROPOSE,
        &propose_body(),
    );
    assert!(r.is_ok(), "a manager's own certificate: {r:?}");

    // No client certificate.
    for (path, body) in &calls {
        let r = rpc_call(&rt, None, &trust, &manager, path, body);
        assert_forbidden(
            r,
            &format!("{path} without a certificate"),
            "client certificate",
        );
    }

    // A certificate from another cluster's CA, for a node ID and role of its choosing.
    let other = shoal_pki::RootCa::generate(
        "0000000000000000000000000",
        Duration::from_secs(3600),
        shoal_types::Timestamp::from_unix_nanos(now_nanos()),
    )
    .expect("another root CA");
    let (key_pem, csr) = shoal_pki::new_key_and_csr().expect("key");
    let forged = shoal_pki::Credentials {
        key_pem,
        cert_pem: other
            .issue(
                &csr,
                &shoal_types::Id::from_raw(c.n(1).node_id()),
                shoal_pki::NodeRole::Manager,
                "0000000000000000000000000",
                Duration::from_secs(3600),
                shoal_types::Timestamp::from_unix_nanos(now_nanos()),
            )
            .expect("forged certificate"),
        intermediate_pem: None,
        trust: trust.clone(),
    };
    for (path, body) in &calls {
        let r = rpc_call(&rt, Some(&forged), &trust, &manager, path, body);
        assert_handshake_refused(r, &format!("{path} with another cluster's certificate"));
    }

    // A worker's certificate: a member, but not a manager.
    let worker = credentials(&c, 2);
    for (path, body) in &calls[1..] {
        let r = rpc_call(&rt, Some(&worker), &trust, &manager, path, body);
        assert_forbidden(
            r,
            &format!("{path} with a worker's certificate"),
            "is not a manager",
        );
    }

    // A removed node's certificate: refused everywhere, even where workers may call.
    let removed = credentials(&c, 3);
    c.n_mut(3).stop();
    c.wait_nodes(&[(1, M), (2, W), (3, W)], &[3], MINUTE);
    c.n(1).docker_ok(&["node", "rm", "node3"]);
    for (path, body) in &calls {
        let r = rpc_call(&rt, Some(&removed), &trust, &manager, path, body);
        // A worker's heartbeat would be served: the refusal is for the removal. (Raft routes
        // refuse it for being a worker first.)
        let says = if *path == shoal_node::wire::HEARTBEAT {
            "removed"
        } else {
            ""
        };
        assert_forbidden(
            r,
            &format!("{path} with a removed node's certificate"),
            says,
        );
    }
    // The cluster is none the worse for it.
    c.wait_formed(&[(1, M), (2, W)]);
}

#[test]
fn join_refuses_wrong_rotated_and_foreign_tokens_and_a_worker_token_makes_a_worker() {
    if !ready() {
        return;
    }
    let c = Cluster::start(3);
    c.init(1, &[]);
    let worker = c.token(1, Role::Worker);
    let manager = c.token(1, Role::Manager);
    assert_ne!(worker, manager);

    let refused = |i: usize, token: &str, why: &str, says: &str| {
        let out = c.join_with(i, 1, token);
        let t = output_text(&out);
        eprintln!("joining with {why}: {}", t.trim());
        assert!(!out.status.success(), "joined with {why}: {t}");
        assert!(
            !t.contains("JoinToken: JoinToken"),
            "the field is named twice: {t}"
        );
        assert!(
            t.to_lowercase().contains("token") && t.contains(says),
            "joining with {why}: the error should name the token and say {says:?}: {t}"
        );
        let s = c.n(i).swarm_info().expect("info");
        assert_eq!(
            s["LocalNodeState"], "inactive",
            "after joining with {why}: {s}"
        );
    };
    // The right CA digest, the wrong secret.
    let (prefix, _secret) = worker.rsplit_once('-').expect("token shape");
    refused(
        2,
        &format!("{prefix}-0123456789abcdefghijklmno"),
        "a wrong secret",
        "valid join token",
    );
    // Not a token at all.
    refused(2, "SWMTKN-1-nonsense", "a malformed token", "JoinToken");
    // Another swarm's token.
    let other = shoal_pki::RootCa::generate(
        "0000000000000000000000000",
        Duration::from_secs(3600),
        shoal_types::Timestamp::from_unix_nanos(now_nanos()),
    )
    .expect("another root CA");
    let mut ids = shoal_types::IdGen::from_os();
    let foreign = shoal_pki::JoinToken::generate(&other, &mut ids).to_string();
    refused(2, &foreign, "another swarm's token", "another root CA");
    // A rotated token stops working; the new one works.
    let out = c
        .n(1)
        .docker_ok(&["swarm", "join-token", "--rotate", "-q", "worker"]);
    let rotated = out.trim().to_string();
    assert_ne!(rotated, worker);
    assert_eq!(
        c.token(1, Role::Manager),
        manager,
        "rotating the worker token keeps the manager's"
    );
    refused(2, &worker, "a rotated-out token", "valid join token");

    // A worker token makes a worker, whatever the node would like.
    let out = c.join_with(2, 1, &rotated);
    assert!(
        out.status.success() && output_text(&out).contains("joined a swarm as a worker"),
        "{}",
        output_text(&out)
    );
    let s = c.n(2).swarm_info().expect("info");
    assert_eq!(s["ControlAvailable"], false, "{s}");
    let creds = credentials(&c, 2);
    let id = creds.identity().expect("identity");
    assert_eq!(id.role, shoal_pki::NodeRole::Worker);
    // ...and the manager token a manager.
    c.join(3, 1, Role::Manager);
    c.wait_formed(&[(1, M), (2, W), (3, M)]);
}

#[test]
fn certificates_renew_before_expiry_and_expired_ones_are_refused() {
    if !ready() {
        return;
    }
    let c = Cluster::form(2, 1, &["--cert-expiry", "30s"]);
    create_service(&c, 1, "r", 3);
    let tasks = c.wait_running(1, "r", 3, MINUTE);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let first: Vec<_> = (1..=3).map(|i| credentials(&c, i)).collect();
    let expiry = |cr: &shoal_pki::Credentials| cr.identity().expect("identity").not_after;

    // Every node renews before its certificate's 30 s are up.
    poll(
        "every node to renew its certificate",
        Duration::from_secs(40),
        || c.dump(),
        || {
            for i in 1..=3 {
                let now = credentials(&c, i);
                if expiry(&now) <= expiry(&first[i - 1]) {
                    return Err(format!("node{i} still holds its first certificate"));
                }
            }
            Ok(())
        },
    );
    // The old certificates expire; a node that presents one is refused. The nodes themselves
    // carry on with their new ones.
    let last_expiry = first.iter().map(expiry).max().expect("three");
    poll(
        "the first certificates to expire",
        Duration::from_secs(40),
        String::new,
        || {
            if now_nanos() > last_expiry.unix_nanos() + 1_000_000_000 {
                Ok(())
            } else {
                Err(format!(
                    "now {} < {}",
                    now_nanos(),
                    last_expiry.unix_nanos()
                ))
            }
        },
    );
    let trust = credentials(&c, 1).trust;
    for (i, old) in first.iter().enumerate() {
        let r = rpc_call(
            &rt,
            Some(old),
            &trust,
            &c.n(1).addr,
            shoal_node::wire::HEARTBEAT,
            &Value::Null,
        );
        assert_handshake_refused(r, &format!("node{}'s expired certificate", i + 1));
    }
    c.wait_formed(&[(1, M), (2, M), (3, W)]);
    assert_same_tasks(&c, 1, "r", &tasks);
    label_update(&c.n(2).client(), "r", "after-renewal", "1").expect("a write after renewals");
}

/// The certificate in a command's output (after any progress lines).
fn pem_in(out: &str) -> String {
    let start = out.find("-----BEGIN CERTIFICATE-----");
    let end = out
        .find("-----END CERTIFICATE-----")
        .map(|e| e + "-----END CERTIFICATE-----".len());
    match (start, end) {
        (Some(s), Some(e)) if s < e => out[s..e].to_string(),
        _ => panic!("no certificate in:\n{out}"),
    }
}

#[test]
fn root_ca_rotation_completes_with_services_running() {
    if !ready() {
        return;
    }
    let mut c = Cluster::form(3, 2, &[]);
    create_service(&c, 1, "x", 5);
    let tasks = c.wait_running(1, "x", 5, MINUTE);
    let old_root = pem_in(&c.n(1).docker_ok(&["swarm", "ca"]));
    let old_token = c.token(1, Role::Worker);

    // The docker CLI waits until every node holds a certificate from the new root, then prints it.
    let out = c.n(2).client().run(&["swarm", "ca", "--rotate"]);
    let said = output_text(&out);
    assert!(
        out.status.success(),
        "swarm ca --rotate: {said}\n{}",
        c.dump()
    );
    let new_root = pem_in(&said);
    assert_ne!(new_root, old_root, "the root did not change");
    assert_eq!(pem_in(&c.n(3).docker_ok(&["swarm", "ca"])), new_root);

    // Every node trusts only the new root and holds a certificate it issued.
    poll(
        "every node to trust only the new root",
        MINUTE,
        || c.dump(),
        || {
            for i in 1..=5 {
                let cr = credentials(&c, i);
                if cr.trust.len() != 1 || pem_in(&cr.trust[0]) != new_root {
                    return Err(format!("node{i} trusts {} roots", cr.trust.len()));
                }
                // Issued by the new root itself, not through the rotation's cross-signed one.
                if cr.intermediate_pem.is_some() {
                    return Err(format!(
                        "node{i} still presents the cross-signed intermediate"
                    ));
                }
            }
            Ok(())
        },
    );
    c.wait_formed(&[(1, M), (2, M), (3, M), (4, W), (5, W)]);
    assert_same_tasks(&c, 1, "x", &tasks);
    // Tokens now name the new root; the old one is refused, the new one admits.
    assert_ne!(c.token(1, Role::Worker), old_token);
    c.add_nodes(1);
    let out = c.join_with(6, 1, &old_token);
    assert!(
        !out.status.success(),
        "joined with a token from before the rotation: {}",
        output_text(&out)
    );
    c.join(6, 1, Role::Worker);
    label_update(&c.n(3).client(), "x", "after-rotation", "1").expect("a write after the rotation");
}
