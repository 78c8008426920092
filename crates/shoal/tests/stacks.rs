//! Stacks from compose files, end to end: `shoal stack deploy` and the real `docker stack
//! deploy` against real daemons.
//!
//! - A two-tier app (web + db, shaped like the Docker docs' deploy-a-stack tutorial) on three
//!   `ip netns` hosts: placement from the file, a global service, a secret and a config read by
//!   the web tier, the published port answering on every node, web reaching db by its service
//!   name; then scale, an image update, `--prune`, and `stack rm` removing what it made and
//!   nothing else.
//! - The same file deployed by `docker stack deploy` and by `shoal stack deploy` gives the same
//!   services, and each client's `stack ls|services|ps|rm` sees the other's stack.
//! - `depends_on: condition: service_healthy` holds a service back until its dependency is
//!   healthy.
//! - Bad files are refused with file, line, column and key.
// The tests wait on real processes in wall-clock time.
#![allow(clippy::disallowed_methods)]

mod common;
#[path = "common/cluster.rs"]
mod harness;
#[path = "common/overlay.rs"]
mod net;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use net::{MINUTE, get_in, three_nodes_on};
use serde_json::Value;
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

/// The two-tier app. `web` answers `/cgi-bin/hello` with the secret, the config and what `db`
/// serves (fetched by the service name); `db` runs on the manager; `agent` everywhere.
const TWO_TIER: &str = r#"version: "3.8"

x-common: &common
  stop_grace_period: 1s
  restart: on-failure

services:
  web:
    <<: *common
    image: ${WEB_IMAGE:-shoal-test/busybox:latest}
    command:
      - sh
      - -c
      - |
        mkdir -p /tmp/www/cgi-bin
        cat > /tmp/www/cgi-bin/hello <<'EOF'
        #!/bin/sh
        echo Content-Type: text/plain
        echo
        echo "$$(cat /run/secrets/greeting) $$(cat /etc/page.txt) $$(wget -qO- http://db:8081/)"
        EOF
        chmod +x /tmp/www/cgi-bin/hello
        exec httpd -f -p 8080 -h /tmp/www
    ports:
      - "8080:8080"
    networks:
      - front
      - back
    secrets:
      - greeting
    configs:
      - source: page
        target: /etc/page.txt
        mode: 0444
    environment:
      TIER: web
    deploy:
      replicas: 2
      placement:
        constraints:
          - node.labels.tier == front
  db:
    <<: *common
    image: shoal-test/busybox:latest
    command: ["sh", "-c", "mkdir -p /tmp/db && echo db-$$(hostname) > /tmp/db/index.html && exec httpd -f -p 8081 -h /tmp/db"]
    networks:
      back:
        aliases: [database]
    deploy:
      placement:
        constraints: [node.role == manager]
AGENT
networks:
  front:
  back:
    driver: overlay

secrets:
  greeting:
    file: ./greeting.txt

configs:
  page:
    file: ./page.txt
"#;

const AGENT: &str = r#"  agent:
    <<: *common
    image: shoal-test/busybox:latest
    command: ["sleep", "100000"]
    deploy:
      mode: global
"#;

/// Writes the app's files into `dir`, with or without the `agent` service.
fn write_app(dir: &Path, with_agent: bool) -> String {
    let file = dir.join("docker-compose.yml");
    let text = TWO_TIER.replace("AGENT\n", if with_agent { AGENT } else { "" });
    std::fs::write(&file, text).expect("compose file");
    std::fs::write(dir.join("greeting.txt"), "hello-from-secret\n").expect("secret file");
    std::fs::write(dir.join("page.txt"), "page-from-config\n").expect("config file");
    file.to_string_lossy().into_owned()
}

fn names(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| {
                    o["Spec"]["Name"]
                        .as_str()
                        .or(o["Name"].as_str())
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn a_two_tier_stack_runs_across_three_hosts() {
    if !ready() {
        return;
    }
    let (hosts, c) = three_nodes_on("stack", "native", 1);
    for i in 1..=3 {
        c.n(i).docker_ok(&["image", "load", "-i", ARCHIVE]);
    }
    let m = c.n(1);
    for (id, i) in c.ids() {
        if i != 1 {
            m.docker_ok(&["node", "update", "--label-add", "tier=front", &id]);
        }
    }
    // What the stack must leave alone.
    let mut keep = Command::new("docker");
    keep.args(["-H", &m.host(), "secret", "create", "unrelated", "-"]);
    let mut child = keep
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("docker secret create");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), b"x").expect("write");
    drop(child.stdin.take());
    assert!(child.wait().expect("wait").success());
    m.docker_ok(&["network", "create", "-d", "overlay", "keepnet"]);
    m.docker_ok(&[
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        "keep",
        "--stop-grace-period",
        "1s",
        IMAGE,
        "sleep",
        "100000",
    ]);

    let dir = tempfile::tempdir().expect("app dir");
    let file = write_app(dir.path(), true);
    let out = m.shoal_ok(dir.path(), &["stack", "deploy", "-c", &file, "app"]);
    for line in [
        "Creating network app_front",
        "Creating network app_back",
        "Creating secret app_greeting",
        "Creating config app_page",
        "Creating service app_web",
        "Creating service app_db",
        "Creating service app_agent",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    let webs = net::wait_running(&c, "app_web", 2);
    let dbs = net::wait_running(&c, "app_db", 1);
    net::wait_running(&c, "app_agent", 3);
    // Placement from the file.
    let node_of = |t: &Value| -> usize {
        c.ids()
            .into_iter()
            .find(|(id, _)| t["NodeID"] == id.as_str())
            .map(|(_, i)| i)
            .expect("a node of the cluster")
    };
    assert!(webs.iter().all(|t| node_of(t) != 1), "web on a front node");
    assert_eq!(node_of(&dbs[0]), 1, "db on the manager");
    let db_host: String = dbs[0]["ID"]
        .as_str()
        .expect("id")
        .chars()
        .take(12)
        .collect();

    // The published port answers on every node; web read its secret and config and reached
    // db by name.
    let client_ns = hosts.host(4).netns_path();
    let want = format!("hello-from-secret page-from-config db-{db_host}");
    for (_, i) in c.ids() {
        let url = format!("{}:8080", hosts.host(i).addr);
        let got = harness::poll(
            &format!("{url} answering"),
            MINUTE,
            || c.dump(),
            || get_in(&client_ns, &url, "/cgi-bin/hello"),
        );
        assert_eq!(got, want, "through node{i}");
    }

    // Both CLIs see the stack.
    let ls = m.shoal_ok(dir.path(), &["stack", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["app", "3"]),
        "{ls}"
    );
    let ls = m.docker_ok(&["stack", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["app", "3"]),
        "{ls}"
    );
    let services = m.docker_ok(&["stack", "services", "app"]);
    for s in ["app_web", "app_db", "app_agent"] {
        assert!(services.contains(s), "{services}");
    }
    let ps = m.shoal_ok(dir.path(), &["stack", "ps", "app"]);
    assert!(ps.contains("app_web.1") && ps.contains("app_db.1"), "{ps}");
    let ps = m.docker_ok(&["stack", "ps", "app"]);
    assert!(
        ps.contains("app_web.2") && ps.contains("app_agent."),
        "{ps}"
    );

    // Scale one service.
    m.shoal_ok(dir.path(), &["service", "scale", "--detach", "app_web=3"]);
    net::wait_running(&c, "app_web", 3);

    // Update the image through the file (a second tag of the test image): the deploy sets
    // the replicas back to the file's 2 and rolls every web task onto the new image.
    let v2 = "shoal-test/busybox:v2";
    let tar = dir.path().join("v2.tar");
    docker_host(&["tag", IMAGE, v2]);
    docker_host(&["save", "-o", &tar.to_string_lossy(), v2]);
    docker_host(&["rmi", v2]);
    for i in 1..=3 {
        c.n(i)
            .docker_ok(&["image", "load", "-i", &tar.to_string_lossy()]);
    }
    let mut deploy = Command::new(common::SHOAL);
    deploy
        .args(["-H", &m.host(), "stack", "deploy", "-c", &file, "app"])
        .env("WEB_IMAGE", v2)
        .current_dir(dir.path());
    let out = deploy.output().expect("shoal stack deploy");
    let text = harness::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Updating service app_web (id: "), "{text}");
    harness::poll(
        "web on v2",
        MINUTE,
        || c.dump(),
        || {
            let t = net::running_tasks(&c, "app_web");
            let images: Vec<&str> = t
                .iter()
                .filter_map(|t| t["Spec"]["ContainerSpec"]["Image"].as_str())
                .collect();
            if images.len() == 2 && images.iter().all(|i| *i == v2) {
                Ok(())
            } else {
                Err(format!("{images:?}"))
            }
        },
    );
    let url = format!("{}:8080", hosts.host(1).addr);
    let got = harness::poll(
        "the updated web answering",
        MINUTE,
        || c.dump(),
        || get_in(&client_ns, &url, "/cgi-bin/hello"),
    );
    assert!(
        got.starts_with("hello-from-secret page-from-config db-"),
        "{got}"
    );

    // --prune after removing a service from the file.
    write_app(dir.path(), false);
    let out = m.shoal_ok(
        dir.path(),
        &["stack", "deploy", "--prune", "-c", &file, "app"],
    );
    assert!(out.contains("Removing service app_agent"), "{out}");
    let services = names(&m.get("/services").expect("services"));
    assert_eq!(services, ["app_db", "app_web", "keep"]);

    // stack rm removes what the stack made, and nothing else.
    let out = m.shoal_ok(dir.path(), &["stack", "rm", "app"]);
    for line in [
        "Removing service app_db",
        "Removing service app_web",
        "Removing secret app_greeting",
        "Removing config app_page",
        "Removing network app_front",
        "Removing network app_back",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    assert_eq!(names(&m.get("/services").expect("services")), ["keep"]);
    assert_eq!(names(&m.get("/secrets").expect("secrets")), ["unrelated"]);
    assert!(names(&m.get("/configs").expect("configs")).is_empty());
    let nets = names(&m.get("/networks").expect("networks"));
    assert!(
        nets.contains(&"keepnet".to_string()) && !nets.iter().any(|n| n.starts_with("app_")),
        "{nets:?}"
    );
    let out = m.shoal_in(dir.path(), &["stack", "rm", "app"]);
    assert!(
        harness::output_text(&out).contains("Nothing found in stack: app"),
        "{}",
        harness::output_text(&out)
    );
    drop(c);
    drop(hosts);
}

/// The machine's own Docker Engine (to make a second tag of the test image).
fn docker_host(args: &[&str]) {
    let out = Command::new("docker")
        .args(args)
        .env_remove("DOCKER_HOST")
        .output()
        .expect("docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        harness::output_text(&out)
    );
}

/// Every service's spec with what differs by deployment taken out: object IDs become names,
/// the stack's name becomes `STACK`.
fn comparable(m: &harness::Node, stack: &str) -> BTreeMap<String, Value> {
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for kind in ["networks", "secrets", "configs"] {
        for o in m
            .get(&format!("/{kind}"))
            .expect("list")
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let name = o["Spec"]["Name"]
                .as_str()
                .or(o["Name"].as_str())
                .unwrap_or_default();
            if let Some(id) = o["ID"].as_str().or(o["Id"].as_str()) {
                ids.insert(id.to_string(), name.to_string());
            }
        }
    }
    fn scrub(v: &mut Value, ids: &BTreeMap<String, String>, stack: &str) {
        match v {
            Value::String(s) => {
                if let Some(name) = ids.get(s.as_str()) {
                    *s = name.clone();
                }
                if *s == stack {
                    *s = "STACK".into();
                } else if let Some(rest) = s.strip_prefix(&format!("{stack}_")) {
                    *s = format!("STACK_{rest}");
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|x| scrub(x, ids, stack)),
            Value::Object(o) => o.values_mut().for_each(|x| scrub(x, ids, stack)),
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for s in m
        .get(&format!(
            "/services?filters={}",
            common::urlencode(&format!(
                r#"{{"label":["com.docker.stack.namespace={stack}"]}}"#
            ))
        ))
        .expect("services")
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let mut spec = s["Spec"].clone();
        scrub(&mut spec, &ids, stack);
        // Two stacks cannot publish one port: each got its own.
        for p in spec["EndpointSpec"]["Ports"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if p["PublishMode"] == "ingress" {
                p["PublishedPort"] = Value::from(0);
            }
        }
        let name = spec["Name"].as_str().unwrap_or_default().to_string();
        out.insert(name, spec);
    }
    out
}

/// A file that uses most of what converts to a service spec. No node has the label
/// `run=yes`: the specs are compared, nothing runs. Each stack publishes its own port, both
/// below 9081 so that docker's sort by published port orders them alike.
const WIDE: &str = r#"services:
  web:
    image: shoal-test/busybox
    entrypoint: ["sh", "-c"]
    command: ["exec httpd -f -p 80"]
    hostname: "{{.Service.Name}}-{{.Task.Slot}}"
    environment:
      - B=2
      - A=1
    labels:
      tier: front
    ports:
      - "${WEB_PORT}:80"
      - target: 81
        published: 9081
        protocol: udp
        mode: host
    user: "0"
    working_dir: /tmp
    init: true
    read_only: false
    stop_signal: SIGTERM
    stop_grace_period: 2s
    dns: [10.0.0.53]
    extra_hosts:
      - "db.local:10.0.0.9"
    cap_add: [NET_ADMIN]
    cap_drop: [MKNOD]
    sysctls:
      net.core.somaxconn: 1024
    ulimits:
      nofile:
        soft: 1024
        hard: 2048
    healthcheck:
      test: ["CMD", "true"]
      interval: 5s
      timeout: 2s
      retries: 3
      start_period: 1s
    volumes:
      - data:/data
      - type: tmpfs
        target: /scratch
        tmpfs:
          size: 1048576
    secrets:
      - source: token
        target: app-token
        uid: "0"
        gid: "0"
        mode: 0400
    configs:
      - settings
    networks:
      app:
        aliases: [www]
    deploy:
      mode: replicated
      replicas: 2
      endpoint_mode: vip
      labels:
        owner: team-a
      placement:
        constraints: [node.role == manager, node.labels.run == yes]
        preferences:
          - spread: node.labels.zone
        max_replicas_per_node: 2
      resources:
        limits:
          cpus: "0.5"
          memory: 64M
          pids: 100
        reservations:
          cpus: "0.1"
          memory: 16M
      restart_policy:
        condition: on-failure
        delay: 1s
        max_attempts: 3
        window: 30s
      update_config:
        parallelism: 2
        delay: 1s
        failure_action: rollback
        monitor: 2s
        max_failure_ratio: 0.5
        order: start-first
      rollback_config:
        parallelism: 1
        order: stop-first
  job:
    image: shoal-test/busybox:latest
    command: ["true"]
    deploy:
      mode: replicated-job
      replicas: 2
      placement:
        constraints: [node.labels.run == yes]
  everywhere:
    image: shoal-test/busybox:latest
    command: ["sleep", "1000"]
    deploy:
      mode: global
      endpoint_mode: dnsrr
      placement:
        constraints: [node.labels.run == yes]
networks:
  app:
    driver: overlay
    attachable: true
    labels:
      purpose: test
volumes:
  data:
secrets:
  token:
    file: ./token.txt
configs:
  settings:
    file: ./settings.txt
"#;

#[test]
fn docker_stack_deploy_and_shoal_stack_deploy_make_the_same_services() {
    if !need(&[Need::Root, Need::Tool("docker")]) {
        return;
    }
    let mut c = harness::Cluster::start(1);
    c.init(1, &[]);
    let m = c.n(1);
    let dir = tempfile::tempdir().expect("app dir");
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(&file, WIDE).expect("file");
    std::fs::write(dir.path().join("token.txt"), "t0k3n").expect("secret");
    std::fs::write(dir.path().join("settings.txt"), "a=1").expect("config");
    let file = file.to_string_lossy().into_owned();

    let deploy = |with: &str, port: &str, stack: &str| {
        let mut cmd = match with {
            "docker" => {
                m.client()
                    .command(&["stack", "deploy", "--detach=true", "-c", &file, stack])
            }
            _ => {
                let mut c = Command::new(common::SHOAL);
                c.args(["-H", &m.host(), "stack", "deploy", "-c", &file, stack]);
                c
            }
        };
        cmd.env("WEB_PORT", port).current_dir(dir.path());
        let out = harness::run_with_timeout(cmd, MINUTE);
        let text = harness::output_text(&out);
        assert!(out.status.success(), "{with} stack deploy {stack}: {text}");
        text
    };
    deploy("docker", "9060", "d");
    let out = deploy("shoal", "9070", "s");
    assert!(out.contains("Creating service s_web"), "{out}");

    let by_docker = comparable(m, "d");
    let by_shoal = comparable(m, "s");
    assert_eq!(
        by_docker.keys().collect::<Vec<_>>(),
        ["STACK_everywhere", "STACK_job", "STACK_web"]
    );
    for (name, spec) in &by_docker {
        assert_eq!(
            Some(spec),
            by_shoal.get(name),
            "{name}: docker's (left) and shoal's (right) specs differ"
        );
    }

    // Each client lists and removes the other's stack.
    let ls = m.docker_ok(&["stack", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["s", "3"]),
        "{ls}"
    );
    let ls = m.shoal_ok(dir.path(), &["stack", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["d", "3"]),
        "{ls}"
    );
    let services = m.shoal_ok(dir.path(), &["stack", "services", "d"]);
    assert!(
        services.contains("d_web") && services.contains("replicated"),
        "{services}"
    );
    let ps = m.docker_ok(&["stack", "ps", "s"]);
    assert!(ps.contains("s_web.1"), "{ps}");

    // docker updates the stack shoal made (nothing changed: no spec change, no restart).
    let before = m.get("/services/s_web").expect("s_web");
    let out = deploy("docker", "9070", "s");
    assert!(out.contains("Updating service s_web"), "{out}");
    let after = m.get("/services/s_web").expect("s_web");
    assert_eq!(
        before["Spec"], after["Spec"],
        "docker's redeploy changed the spec"
    );

    // docker's --prune on the stack it made.
    let job = WIDE
        .find("  job:\n")
        .zip(WIDE.find("  everywhere:\n"))
        .expect("the job service in the file");
    let pruned = format!("{}{}", &WIDE[..job.0], &WIDE[job.1..]);
    let pruned_file = dir.path().join("pruned.yml");
    std::fs::write(&pruned_file, pruned).expect("file");
    let mut cmd = m.client().command(&[
        "stack",
        "deploy",
        "--detach=true",
        "--prune",
        "-c",
        &pruned_file.to_string_lossy(),
        "d",
    ]);
    cmd.env("WEB_PORT", "9060");
    let out = harness::run_with_timeout(cmd, MINUTE);
    let text = harness::output_text(&out);
    assert!(
        out.status.success() && text.contains("Removing service d_job"),
        "{text}"
    );
    assert!(m.get("/services/d_job").is_err(), "d_job was pruned");
    assert!(m.get("/services/d_web").is_ok(), "d_web stays");

    let out = m.docker_ok(&["stack", "rm", "s"]);
    assert!(out.contains("Removing service s_web"), "{out}");
    let out = m.shoal_ok(dir.path(), &["stack", "rm", "d"]);
    assert!(out.contains("Removing network d_app"), "{out}");
    assert!(names(&m.get("/services").expect("services")).is_empty());
    assert!(names(&m.get("/secrets").expect("secrets")).is_empty());
    assert!(names(&m.get("/configs").expect("configs")).is_empty());
    c.n_mut(1).stop();
}

#[test]
fn depends_on_service_healthy_holds_a_service_back() {
    if !ready() {
        return;
    }
    // The native runtime, which runs the test image from its own store, in a test host.
    let hosts = shoal_testkit::hosts::Hosts::new("stackdep", 1).expect("test host");
    let c = harness::Cluster::start_on(&hosts, 1, &["--runtime", "native"]);
    c.init(1, &[]);
    let m = c.n(1);
    m.docker_ok(&["image", "load", "-i", ARCHIVE]);
    let dir = tempfile::tempdir().expect("app dir");
    let flag = dir.path().join("flag");
    std::fs::create_dir(&flag).expect("flag dir");
    // db is healthy only once the test makes /flag/ok; web waits for that, migrate for web
    // to have started, and report for migrate to have completed.
    let file = dir.path().join("docker-compose.yml");
    std::fs::write(
        &file,
        format!(
            r#"services:
  web:
    image: {IMAGE}
    command: ["sleep", "100000"]
    stop_grace_period: 1s
    depends_on:
      db:
        condition: service_healthy
  db:
    image: {IMAGE}
    command: ["sleep", "100000"]
    stop_grace_period: 1s
    volumes:
      - {flag}:/flag
    healthcheck:
      test: ["CMD", "test", "-f", "/flag/ok"]
      interval: 1s
      retries: 1000
  migrate:
    image: {IMAGE}
    command: ["true"]
    deploy:
      mode: replicated-job
    depends_on: [web]
  report:
    image: {IMAGE}
    command: ["sleep", "100000"]
    stop_grace_period: 1s
    depends_on:
      migrate:
        condition: service_completed_successfully
"#,
            flag = flag.display()
        ),
    )
    .expect("file");
    let file = file.to_string_lossy().into_owned();
    let out = m.shoal_ok(dir.path(), &["stack", "deploy", "-c", &file, "dep"]);
    assert!(out.contains("Creating service dep_web"), "{out}");
    // db starts and stays unhealthy ("starting"), so nothing that waits on it gets a task.
    harness::poll(
        "db starting",
        MINUTE,
        || c.dump(),
        || {
            let t = m.get("/tasks").map_err(|e| e.to_string())?;
            let states: Vec<String> = t
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| t["Status"]["State"].as_str().unwrap_or("").to_string())
                .collect();
            if states == ["starting"] {
                Ok(())
            } else {
                Err(format!("{states:?}"))
            }
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    let tasks = m.get("/tasks").expect("tasks");
    assert_eq!(
        tasks.as_array().map(Vec::len),
        Some(1),
        "only db has a task while it is not healthy: {tasks}"
    );
    // Healthy: the chain runs in order.
    std::fs::write(flag.join("ok"), "").expect("flag");
    c.wait_running(1, "dep_db", 1, MINUTE);
    c.wait_running(1, "dep_web", 1, MINUTE);
    c.wait_running(1, "dep_report", 1, MINUTE);
    let created = |service: &str| {
        let t = m
            .get(&format!(
                "/tasks?filters={}",
                common::urlencode(&format!(r#"{{"service":["{service}"]}}"#))
            ))
            .expect("tasks");
        let at = t[0]["CreatedAt"].as_str().unwrap_or_default();
        chrono::DateTime::parse_from_rfc3339(at)
            .unwrap_or_else(|e| panic!("{service}'s task CreatedAt {at:?}: {e}"))
    };
    assert!(created("dep_web") < created("dep_migrate"));
    assert!(created("dep_migrate") < created("dep_report"));
    // A cycle is refused by the file's loader, naming where.
    std::fs::write(
        dir.path().join("cycle.yml"),
        format!(
            "services:\n  a:\n    image: {IMAGE}\n    depends_on: [b]\n  b:\n    image: {IMAGE}\n    depends_on: [a]\n"
        ),
    )
    .expect("file");
    let out = m.shoal_in(dir.path(), &["stack", "deploy", "-c", "cycle.yml", "cyc"]);
    let text = harness::output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("cycle.yml:") && text.contains("cycle"),
        "{text}"
    );
    drop(c);
    drop(hosts);
}

#[test]
fn bad_compose_files_are_refused_with_file_line_column_and_key() {
    if !need(&[Need::Root]) {
        return;
    }
    let d = common::Daemon::start();
    d.swarm_init();
    let dir = tempfile::tempdir().expect("dir");
    let cases = [
        (
            "services:\n  web:\n    image: x\n    deploy:\n      replicas: three\n",
            "docker-compose.yml:5:17: services.web.deploy.replicas:",
        ),
        (
            "services:\n  web:\n    imagee: x\n",
            "docker-compose.yml:3:5: services.web: unknown key \"imagee\"",
        ),
        (
            "services:\n  web:\n    image: ${NOPE?the image is required}\n",
            "the image is required",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(dir.path().join("docker-compose.yml"), text).expect("file");
        let out = Command::new(common::SHOAL)
            .args([
                "-H",
                &d.host(),
                "stack",
                "deploy",
                "-c",
                "docker-compose.yml",
                "bad",
            ])
            .current_dir(dir.path())
            .env_remove("NOPE")
            .output()
            .expect("shoal");
        let said = harness::output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains(want), "{want:?} not in {said:?}");
    }
    // Nothing was made.
    let (_, services) = d.api("GET", "/v1.50/services", None);
    assert_eq!(services, serde_json::json!([]));
}
