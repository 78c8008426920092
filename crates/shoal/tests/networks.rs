//! Overlay networks as cluster objects, driven by the real `docker` CLI: create (with a subnet
//! from the pools or the one asked for), list, inspect, remove, prune, and bad input refused
//! naming what is wrong with nothing created.
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

fn names(d: &Daemon) -> Vec<String> {
    d.docker_ok(&[
        "network",
        "ls",
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
            "front overlay swarm"
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
    assert_eq!(names(&d), Vec::<String>::new());
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
            vec!["--opt", "encrypted", "secret"],
            "Options.encrypted: this cluster cannot encrypt overlay traffic yet",
        ),
        (vec!["taken"], "network with name taken already exists"),
    ] {
        let mut full = vec!["network", "create", "-d", "overlay"];
        full.extend(&args);
        let err = refused(&d, &full);
        assert!(err.contains(says), "docker {full:?}: {err}");
    }
    let err = refused(&d, &["network", "create", "-d", "bridge", "local"]);
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
    assert_eq!(names(&d), ["taken overlay swarm"]);
    // The daemon still serves.
    d.docker_ok(&["network", "rm", "taken"]);
}
