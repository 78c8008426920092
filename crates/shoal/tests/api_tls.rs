//! The TCP API lets no one in without a certificate: real daemons serving `--tlsverify` (with the
//! cluster's root, and with dockerd-style files), the real `docker` CLI (flags and
//! `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`), the Python SDK and the `shoal` CLI as clients, and the
//! refusals: no certificate, another CA's certificate, plain HTTP to the TLS port, plain TCP off
//! loopback, a client certificate on the cluster port, bad certificate files.
// The tests wait on real processes, in wall-clock time; no logic under test reads it.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{Daemon, SHOAL, free_port};
use shoal_testkit::{Need, need};

fn ready() -> bool {
    need(&[Need::Root, Need::Tool("docker"), Need::PythonDockerSdk])
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The real docker CLI with `args` and `env`, its own empty config dir, no inherited TLS env.
fn docker(cfg: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_CONFIG", cfg)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .envs(env.iter().copied())
        .output()
        .expect("run docker")
}

/// The shoal CLI with `args` and `env`, with no inherited docker TLS env.
fn shoal(cfg: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(SHOAL)
        .args(args)
        .env("DOCKER_CONFIG", cfg)
        .env_remove("SHOAL_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .envs(env.iter().copied())
        .output()
        .expect("run shoal")
}

fn tls_flags(dir: &Path) -> Vec<String> {
    vec![
        "--tlsverify".into(),
        "--tlscacert".into(),
        dir.join("ca.pem").display().to_string(),
        "--tlscert".into(),
        dir.join("cert.pem").display().to_string(),
        "--tlskey".into(),
        dir.join("key.pem").display().to_string(),
    ]
}

fn with<'a>(flags: &'a [String], rest: &[&'a str]) -> Vec<&'a str> {
    flags
        .iter()
        .map(String::as_str)
        .chain(rest.iter().copied())
        .collect()
}

/// Sends plain HTTP to `addr` and returns whatever comes back before the server closes.
fn plain_http(addr: &str) -> Vec<u8> {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let _ = s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

/// A CA of the test's own (rcgen), and a client certificate it signed, in `dir`.
fn foreign_client(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let key = KeyPair::generate().expect("key");
    let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("params");
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let issuer = Issuer::new(ca, ca_key);
    let cert = leaf.signed_by(&key, &issuer).expect("leaf");
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(dir.join("cert.pem"), cert.pem()).expect("cert");
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("key");
    std::fs::write(dir.join("other-ca.pem"), ca_cert.pem()).expect("ca");
}

/// Runs a daemon that must refuse to start; one that starts anyway is killed after 30 s.
fn refused_start(mut c: Command) -> Output {
    use std::process::Stdio;
    let mut child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run daemon");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "the daemon started when it should have refused: {}",
                text(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("wait")
}

#[test]
fn tlsverify_with_the_cluster_root_lets_in_only_shoal_issued_client_certificates() {
    if !ready() {
        return;
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let tcp = format!("tcp://{addr}");
    let d = Daemon::start_with_flags(vec![tcp.clone()], vec!["--tlsverify".into()]);
    let cfg = d.data_dir().join("docker-config");
    let certs = d.data_dir().join("alice");

    // Before the swarm exists there is no root to serve with: TCP closes, unix serves.
    let out = docker(&cfg, &[], &with(&tls_flags(&certs), &["-H", &tcp, "info"]));
    assert!(!out.status.success(), "{}", text(&out));
    // Issuing is a manager's job: 503 before the swarm exists, as every manager-only call.
    let body = br#"{"Name": "alice", "CSR": "junk"}"#;
    let (status, v) = d.api("POST", "/v1.50/shoal/certificates", Some(body));
    assert_eq!(status, 503, "{v}");
    d.swarm_init();
    // Bad input names the field.
    let (status, v) = d.api("POST", "/v1.50/shoal/certificates", Some(body));
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("CSR"), "{v}");
    let out = d.shoal(&["swarm", "client-cert", "a/b", "-o", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("name"),
        "{}",
        text(&out)
    );

    // A client certificate through the unix socket, written where DOCKER_CERT_PATH can use it.
    let out = d.shoal(&[
        "swarm",
        "client-cert",
        "alice",
        "--out",
        certs.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}\n{}", text(&out), d.log_tail());
    let mode = |f: &str| {
        std::fs::metadata(certs.join(f))
            .map(|m| m.permissions().mode() & 0o777)
            .expect("written")
    };
    assert_eq!(mode("key.pem"), 0o600);
    assert_eq!(mode("cert.pem"), 0o644);
    assert_eq!(mode("ca.pem"), 0o644);
    // Not twice into the same place without --force.
    let again = d.shoal(&[
        "swarm",
        "client-cert",
        "alice",
        "-o",
        certs.to_str().expect("utf8"),
    ]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));

    // docker with flags.
    let flags = tls_flags(&certs);
    let out = docker(
        &cfg,
        &[],
        &with(
            &flags,
            &["-H", &tcp, "info", "--format", "{{.Swarm.LocalNodeState}}"],
        ),
    );
    assert!(out.status.success(), "{}\n{}", text(&out), d.log_tail());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "active");
    let out = docker(&cfg, &[], &with(&flags, &["-H", &tcp, "service", "ls"]));
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("REPLICAS"));

    // docker from the environment.
    let certs_s = certs.to_str().expect("utf8");
    let env = [
        ("DOCKER_TLS_VERIFY", "1"),
        ("DOCKER_CERT_PATH", certs_s),
        ("DOCKER_HOST", tcp.as_str()),
    ];
    for args in [&["info"][..], &["service", "ls"][..]] {
        let out = docker(&cfg, &env, args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }

    // The Python SDK.
    let script = format!(
        "import docker\n\
         tls = docker.tls.TLSConfig(client_cert=('{c}/cert.pem', '{c}/key.pem'), \
         ca_cert='{c}/ca.pem', verify=True)\n\
         cl = docker.DockerClient(base_url='{tcp}', tls=tls)\n\
         print(cl.info()['Swarm']['LocalNodeState'], len(cl.services.list()))\n",
        c = certs_s
    );
    // requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE replace the SDK's ca_cert: unset them.
    let out = Command::new("python3")
        .args(["-c", &script])
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .output()
        .expect("python3");
    assert!(out.status.success(), "python SDK: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "active 0");

    // The shoal CLI, with flags and from the environment.
    let out = shoal(&cfg, &[], &with(&flags, &["-H", &tcp, "info"]));
    assert!(out.status.success(), "{}", text(&out));
    let env = [("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", certs_s)];
    let out = shoal(&cfg, &env, &["-H", &tcp, "service", "ls"]);
    assert!(out.status.success(), "{}", text(&out));

    // Refused: no client certificate (docker and shoal), another CA's, plain HTTP.
    let ca_only = [
        "--tlsverify".to_string(),
        "--tlscacert".into(),
        certs.join("ca.pem").display().to_string(),
    ];
    let out = docker(&cfg, &[], &with(&ca_only, &["-H", &tcp, "info"]));
    assert!(!out.status.success(), "no certificate: {}", text(&out));
    let out = shoal(&cfg, &[], &with(&ca_only, &["-H", &tcp, "info"]));
    assert!(!out.status.success(), "no certificate: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CertificateRequired"),
        "shoal says why: {}",
        text(&out)
    );
    let foreign = d.data_dir().join("foreign");
    foreign_client(&foreign);
    std::fs::copy(certs.join("ca.pem"), foreign.join("ca.pem")).expect("ca");
    let out = docker(
        &cfg,
        &[],
        &with(&tls_flags(&foreign), &["-H", &tcp, "info"]),
    );
    assert!(!out.status.success(), "another CA: {}", text(&out));
    let got = plain_http(&addr);
    assert!(
        !got.starts_with(b"HTTP/"),
        "plain HTTP got an answer: {:?}",
        String::from_utf8_lossy(&got)
    );
    // The daemon still serves, and says why it refused.
    let out = docker(&cfg, &[], &with(&flags, &["-H", &tcp, "version"]));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        std::fs::read_to_string(&d.log)
            .unwrap_or_default()
            .contains("TLS handshake refused"),
        "{}",
        d.log_tail()
    );

    // A client certificate is no node certificate on the cluster port.
    let read = |f: &str| std::fs::read_to_string(certs.join(f)).expect("pem");
    let creds = shoal_pki::Credentials {
        key_pem: read("key.pem"),
        cert_pem: read("cert.pem"),
        intermediate_pem: None,
        trust: vec![read("ca.pem")],
    };
    let rpc_cfg = shoal_pki::client_config(Some(&creds), &creds.trust).expect("rpc tls");
    let (_keep, rx) = tokio::sync::watch::channel(rpc_cfg);
    let rpc = shoal_rpc::RpcClient::new(rx, Duration::from_secs(5));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let r = rt.block_on(rpc.call::<serde_json::Value, serde_json::Value>(
        &d.cluster_addr,
        shoal_node::wire::HEARTBEAT,
        &serde_json::Value::Null,
    ));
    match r {
        Err(shoal_rpc::RpcError::Status { code: 403, .. }) => {}
        other => panic!("a client certificate on the cluster port: expected 403, got {other:?}"),
    }
}

#[test]
fn tlsverify_with_files_as_dockerd_and_bad_files_are_named() {
    if !ready() {
        return;
    }
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let dir = tempfile::tempdir().expect("dir");
    let p = |f: &str| dir.path().join(f);
    let ca_key = KeyPair::generate().expect("key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().expect("key");
    let mut server = CertificateParams::new(vec!["localhost".to_string()]).expect("server");
    server
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let server_cert = server.signed_by(&server_key, &issuer).expect("server");
    let client_key = KeyPair::generate().expect("key");
    let mut client = CertificateParams::new(Vec::<String>::new()).expect("client");
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).expect("client");
    for (f, pem) in [
        ("ca.pem", ca_cert.pem()),
        ("server-cert.pem", server_cert.pem()),
        ("server-key.pem", server_key.serialize_pem()),
        ("cert.pem", client_cert.pem()),
        ("key.pem", client_key.serialize_pem()),
    ] {
        std::fs::write(p(f), pem).expect("write");
    }
    let s = |f: &str| p(f).display().to_string();
    let server_flags = |ca: &str, cert: &str, key: &str| {
        vec![
            "--tlsverify".to_string(),
            "--tlscacert".into(),
            s(ca),
            "--tlscert".into(),
            s(cert),
            "--tlskey".into(),
            s(key),
        ]
    };

    // dockerd's flags with files: no swarm needed.
    let port = free_port();
    let tcp = format!("tcp://127.0.0.1:{port}");
    let d = Daemon::start_with_flags(
        vec![tcp.clone()],
        server_flags("ca.pem", "server-cert.pem", "server-key.pem"),
    );
    let cfg = d.data_dir().join("docker-config");
    let out = docker(
        &cfg,
        &[],
        &with(&tls_flags(dir.path()), &["-H", &tcp, "info"]),
    );
    assert!(out.status.success(), "{}\n{}", text(&out), d.log_tail());
    let out = docker(&cfg, &[], &["-H", &tcp, "info"]);
    assert!(!out.status.success(), "plain client: {}", text(&out));
    drop(d);

    // Bad files: the daemon refuses to start and names the flag and the path.
    let (data, _log, _cg) = common::daemon_dir("tlsbad");
    let sock = format!("unix://{}", data.path().join("shoal.sock").display());
    let start = |extra: &[String], host: &str| {
        let mut c = Command::new(SHOAL);
        c.args(["daemon", "--data-dir"])
            .arg(data.path())
            .args(["-H", &sock, "-H", host, "--runtime", "native"])
            .args(extra);
        refused_start(c)
    };
    let tcp = format!("tcp://127.0.0.1:{}", free_port());
    for (flags, says) in [
        (
            server_flags("missing.pem", "server-cert.pem", "server-key.pem"),
            format!("--tlscacert {}", s("missing.pem")),
        ),
        (
            server_flags("ca.pem", "server-cert.pem", "key.pem"),
            "does not belong".to_string(),
        ),
        (
            server_flags("ca.pem", "server-key.pem", "server-key.pem"),
            format!("--tlscert {}", s("server-key.pem")),
        ),
        (
            vec![
                "--tlsverify".into(),
                "--tlscert".into(),
                s("server-cert.pem"),
            ],
            "--tlskey".to_string(),
        ),
    ] {
        let out = start(&flags, &tcp);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&says), "{flags:?}: wanted {says:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
    }

    // Plain TCP off loopback: refused, naming the address and both ways out.
    let any = format!("tcp://0.0.0.0:{}", free_port());
    for extra in [
        vec![],
        vec![
            "--tls".to_string(),
            "--tlscert".into(),
            s("server-cert.pem"),
            "--tlskey".into(),
            s("server-key.pem"),
        ],
    ] {
        let out = start(&extra, &any);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        for says in [
            any.as_str(),
            "--tlsverify",
            "--insecure-plain-tcp-api-anyone-can-run-root",
        ] {
            assert!(err.contains(says), "wanted {says:?} in {err}");
        }
    }
    // With the loud flag it starts, and says so.
    let d = Daemon::start_with_flags(
        vec![any.clone()],
        vec!["--insecure-plain-tcp-api-anyone-can-run-root".into()],
    );
    assert!(
        d.log_tail()
            .contains("ANYONE WHO CAN REACH IT CAN RUN PROCESSES AS ROOT"),
        "{}",
        d.log_tail()
    );
}
