//! Overlay networks as cluster objects, driven by the real `docker` CLI: the `ingress` network
//! `swarm init` makes, the address pools and data path port it takes, create (with a subnet from
//! the pools or the one asked for), list, inspect, remove, prune, and bad input refused naming
//! what is wrong with nothing created.
//!
//! Only the objects so far: tasks do not join networks yet (issue 11 continues).

mod common;

use common::Daemon;
use shoal_testkit::{Need, need};

fn swarm() -> Option<Daemon> {
    if !need(&[Need::Root, Need::Tool("docker")]) {
        return None;
    }
    let d = Daemon::start();
    d.swarm_init();
    Some(d)
}

fn refused(d: &Daemon, args: &[&str]) -> String {
    let out = d.docker(args);
    assert!(
        !out.status.success(),
        "docker {args:?} should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The swarm's networks (the node's local ones are in `engine_standalone.rs`).
fn names(d: &Daemon) -> Vec<String> {
    d.docker_ok(&[
        "network",
        "ls",
        "--filter",
        "scope=swarm",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

#[test]
fn docker_cli_creates_inspects_lists_and_removes_overlay_networks() {
    let Some(d) = swarm() else { return };

    // `swarm init` made the routing mesh's network, from the first subnet of the pool.
    let ingress = d.docker_ok(&[
        "network",
        "inspect",
        "--format",
        "{{.Ingress}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
        "ingress",
    ]);
    assert_eq!(ingress.trim(), "true 10.0.0.0/24 10.0.0.1");

    // A subnet from Swarm's default pool, then the next one.
    let id = d
        .docker_ok(&[
            "network", "create", "-d", "overlay", "--label", "team=web", "front",
        ])
        .trim()
        .to_string();
    assert!(!id.is_empty());
    d.docker_ok(&["network", "create", "-d", "overlay", "--attachable", "back"]);
    let subnet = |n: &str| {
        d.docker_ok(&[
            "network",
            "inspect",
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{.Scope}} {{.Attachable}} {{.Labels}}",
            n,
        ])
        .trim()
        .to_string()
    };
    let front = subnet("front");
    let back = subnet("back");
    assert!(
        front.starts_with("10.0.") && front.contains("/24 10.0."),
        "{front}"
    );
    assert!(front.ends_with("swarm false map[team:web]"), "{front}");
    assert!(back.contains(" swarm true "), "{back}");
    assert_ne!(
        front.split(' ').next(),
        back.split(' ').next(),
        "two networks, one subnet"
    );

    // What was asked for, kept.
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.9.0.0/16",
        "--gateway",
        "10.9.255.254",
        "--ip-range",
        "10.9.4.0/22",
        "data",
    ]);
    let data = d.docker_ok(&[
        "network",
        "inspect",
        "--format",
        "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}} {{.IPRange}}{{end}}",
        "data",
    ]);
    assert_eq!(data.trim(), "10.9.0.0/16 10.9.255.254 10.9.4.0/22");

    // By ID prefix too, and listed with filters.
    let by_prefix = d.docker_ok(&["network", "inspect", "--format", "{{.Name}}", &id[..6]]);
    assert_eq!(by_prefix.trim(), "front");
    let mut ls = names(&d);
    ls.sort();
    assert_eq!(
        ls,
        [
            "back overlay swarm",
            "data overlay swarm",
            "front overlay swarm",
            "ingress overlay swarm"
        ]
    );
    let labelled = d.docker_ok(&["network", "ls", "-q", "--filter", "label=team=web"]);
    assert_eq!(labelled.trim(), &id[..12]);

    // Removed by name; prune takes what is left.
    d.docker_ok(&["network", "rm", "front"]);
    let err = refused(&d, &["network", "inspect", "front"]);
    assert!(err.contains("not found"), "{err}");
    let pruned = d.docker_ok(&["network", "prune", "-f"]);
    assert!(
        pruned.contains("back") && pruned.contains("data"),
        "{pruned}"
    );
    assert_eq!(names(&d), ["ingress overlay swarm"]);
}

#[test]
fn bad_networks_are_refused_naming_the_field_and_nothing_is_created() {
    let Some(d) = swarm() else { return };
    d.docker_ok(&[
        "network",
        "create",
        "-d",
        "overlay",
        "--subnet",
        "10.7.0.0/24",
        "taken",
    ]);
    for (args, says) in [
        (
            vec!["--subnet", "10.7.0.0/16", "over"],
            "subnet 10.7.0.0/16 overlaps taken's subnet 10.7.0.0/24",
        ),
        (
            vec!["--subnet", "10.8.0.1/24", "hostbits"],
            "host bits are set; it should be 10.8.0.0/24",
        ),
        (
            vec!["--opt", "encrypted=false", "secret"],
            "Options.encrypted: \"false\": expected no value",
        ),
        (vec!["taken"], "network with name taken already exists"),
    ] {
        let mut full = vec!["network", "create", "-d", "overlay"];
        full.extend(&args);
        let err = refused(&d, &full);
        assert!(err.contains(says), "docker {full:?}: {err}");
    }
    let err = refused(&d, &["network", "create", "-d", "macvlan", "local"]);
    assert!(err.contains("Driver"), "{err}");
    // What the docker CLI checks before sending, sent anyway: the daemon checks it too.
    for (body, says) in [
        (
            r#"{"Name":"gw","Driver":"overlay","IPAM":{"Config":[{"Subnet":"10.8.0.0/24","Gateway":"10.9.0.1"}]}}"#,
            r#"IPAM.Config.Gateway: \"10.9.0.1\": outside the subnet 10.8.0.0/24"#,
        ),
        (
            r#"{"Name":"r","Driver":"overlay","IPAM":{"Config":[{"Subnet":"10.8.0.0/24","IPRange":"10.8.1.0/28"}]}}"#,
            r#"IPAM.Config.IPRange: \"10.8.1.0/28\": outside the subnet 10.8.0.0/24"#,
        ),
        (
            r#"{"Name":"v6","Driver":"overlay","EnableIPv6":true}"#,
            "EnableIPv6: IPv6 overlay networks are not supported",
        ),
        (
            r#"{"Name":"-bad","Driver":"overlay"}"#,
            "is not a valid network name",
        ),
        (r#"{"Name":"x","Driver":"overlay","IPAM":"no"}"#, "IPAM"),
    ] {
        let (status, answer) = common::http(
            &d.socket(),
            "POST",
            "/v1.50/networks/create",
            Some(body.as_bytes()),
        )
        .expect("POST /networks/create");
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.contains(says), "{body}: {answer}");
    }
    let mut left = names(&d);
    left.sort();
    assert_eq!(left, ["ingress overlay swarm", "taken overlay swarm"]);
    // The daemon still serves.
    d.docker_ok(&["network", "rm", "taken"]);
}

/// `swarm init`'s address pools, subnet size and data path port: kept, shown by `docker
/// info`, and where networks get their subnets; bad ones refused before anything is made.
#[test]
fn swarm_init_takes_address_pools_and_a_data_path_port() {
    if !need(&[Need::Root, Need::Tool("docker")]) {
        return;
    }
    let d = Daemon::start();
    let mut base = vec!["swarm".to_string(), "init".into()];
    base.extend(d.init_flags());
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.iter().map(String::as_str).collect();
        a.extend(extra);
        d.docker(&a)
    };
    for (extra, says) in [
        (
            vec![
                "--default-addr-pool",
                "10.20.0.0/16",
                "--default-addr-pool",
                "10.20.128.0/17",
            ],
            "overlaps the pool 10.20.0.0/16",
        ),
        (
            vec![
                "--default-addr-pool",
                "10.20.0.0/24",
                "--default-addr-pool-mask-length",
                "16",
            ],
            "the pool 10.20.0.0/24 is smaller than a /16",
        ),
        (
            vec!["--data-path-port", "80"],
            "DataPathPort: 80 is outside 1024-49151",
        ),
    ] {
        let out = with(&extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "swarm init {extra:?} was taken");
        assert!(err.contains(says), "swarm init {extra:?}: {err}");
        let info = d.docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        assert_eq!(info.trim(), "inactive", "a refused init left a swarm");
    }
    // The docker CLI clears host bits before sending; the daemon refuses them when they come.
    let (status, answer) = common::http(
        &d.socket(),
        "POST",
        "/v1.50/swarm/init",
        Some(br#"{"ListenAddr":"127.0.0.1:0","DefaultAddrPool":["10.20.0.1/16"]}"#),
    )
    .expect("POST /swarm/init");
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("DefaultAddrPool: default address pool \\\"10.20.0.1/16\\\": host bits are set; it should be 10.20.0.0/16"),
        "{answer}"
    );
    let out = with(&[
        "--default-addr-pool",
        "10.20.0.0/16",
        "--default-addr-pool",
        "172.30.0.0/16",
        "--default-addr-pool-mask-length",
        "26",
        "--data-path-port",
        "7789",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = d.docker_ok(&[
        "info",
        "--format",
        "{{.Swarm.Cluster.DefaultAddrPool}} {{.Swarm.Cluster.SubnetSize}} {{.Swarm.Cluster.DataPathPort}}",
    ]);
    assert_eq!(shown.trim(), "[10.20.0.0/16 172.30.0.0/16] 26 7789");
    let subnet = |n: &str| {
        d.docker_ok(&[
            "network",
            "inspect",
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
            n,
        ])
        .trim()
        .to_string()
    };
    assert_eq!(subnet("ingress"), "10.20.0.0/26");
    d.docker_ok(&["network", "create", "-d", "overlay", "next"]);
    assert_eq!(subnet("next"), "10.20.0.64/26");
}

/// The Python SDK's network calls, unchanged: create with an IPAM pool, get, list, remove, and
/// a refusal raised as the SDK's APIError with the daemon's words.
#[test]
fn python_docker_sdk_creates_lists_and_removes_networks() {
    if !need(&[Need::Root, Need::Tool("docker"), Need::PythonDockerSdk]) {
        return;
    }
    let d = Daemon::start();
    d.swarm_init();
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url="{host}")
pool = docker.types.IPAMPool(subnet="10.42.0.0/24", gateway="10.42.0.254")
n = c.networks.create("py-net", driver="overlay", attachable=True, labels={{"from": "python"}},
                      ipam=docker.types.IPAMConfig(pool_configs=[pool]))
got = c.networks.get(n.id)
cfg = got.attrs["IPAM"]["Config"][0]
print(got.name, got.attrs["Driver"], got.attrs["Scope"], got.attrs["Attachable"], cfg["Subnet"], cfg["Gateway"], got.attrs["Labels"]["from"])
print(",".join(sorted(x.name for x in c.networks.list())))
try:
    c.networks.create("py-clash", driver="overlay",
                      ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.42.0.0/16")]))
    print("clash created")
except docker.errors.APIError as e:
    print("refused", e.status_code, e.explanation)
got.remove()
print(",".join(sorted(x.name for x in c.networks.list())))
"#,
        host = d.host()
    );
    let out = common::python(&script);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "py-net overlay swarm True 10.42.0.0/24 10.42.0.254 python",
            "bridge,ingress,py-net",
            "refused 409 subnet 10.42.0.0/16 overlaps py-net's subnet 10.42.0.0/24",
            "bridge,ingress",
        ],
        "{out}"
    );
}
