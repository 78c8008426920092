//! Conversion: the create bodies `docker stack deploy` sends, checked as wire JSON.
#![allow(clippy::unwrap_used)] // a panic in a test is a failure, which is what we want

mod common;

use common::*;
use serde_json::json;

/// The deploy-a-stack tutorial's shape: a front end with published ports on two networks, and a
/// database with a volume, a healthcheck and a placement constraint.
const TWO_TIER: &str = r#"
version: "3.8"
services:
  web:
    image: dockersamples/examplevotingapp_vote:before
    ports:
      - "5000:80"
    environment:
      OPTION_B: Dogs
      OPTION_A: Cats
    networks:
      frontend:
        aliases: [vote]
      backend:
    depends_on:
      db:
        condition: service_healthy
    deploy:
      replicas: 2
      update_config:
        parallelism: 2
        delay: 10s
        failure_action: rollback
        order: start-first
      restart_policy:
        condition: on-failure
        delay: 10s
        max_attempts: 3
        window: 2m
  db:
    image: postgres:15-alpine
    environment:
      - POSTGRES_USER=postgres
      - POSTGRES_PASSWORD=postgres
    volumes:
      - db-data:/var/lib/postgresql/data
    networks: [backend]
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U postgres"]
      interval: 5s
      timeout: 3s
      retries: 5
    deploy:
      placement:
        constraints: [node.role == manager]
networks:
  frontend:
  backend:
volumes:
  db-data:
"#;

#[test]
fn two_tier_web_spec_is_exactly_dockers() {
    let got = spec_json(TWO_TIER, "web");
    let want = json!({
        "Name": "app_web",
        "Labels": {
            "com.docker.stack.namespace": "app",
            "com.docker.stack.image": "dockersamples/examplevotingapp_vote:before",
            "com.shoal.stack.depends-on": "app_db:service_healthy"
        },
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "dockersamples/examplevotingapp_vote:before",
                "Labels": {"com.docker.stack.namespace": "app"},
                "Env": ["OPTION_A=Cats", "OPTION_B=Dogs"],
                "Privileges": {}
            },
            "Resources": {},
            "RestartPolicy": {
                "Condition": "on-failure",
                "Delay": 10_000_000_000i64,
                "MaxAttempts": 3,
                "Window": 120_000_000_000i64
            },
            "Placement": {},
            "Networks": [
                {"Target": "app_backend", "Aliases": ["web"]},
                {"Target": "app_frontend", "Aliases": ["vote", "web"]}
            ],
            "ForceUpdate": 0
        },
        "Mode": {"Replicated": {"Replicas": 2}},
        "UpdateConfig": {
            "Parallelism": 2,
            "Delay": 10_000_000_000i64,
            "FailureAction": "rollback",
            "MaxFailureRatio": 0.0,
            "Order": "start-first"
        },
        "EndpointSpec": {
            "Ports": [{
                "Protocol": "tcp",
                "TargetPort": 80,
                "PublishedPort": 5000,
                "PublishMode": "ingress"
            }]
        }
    });
    assert_eq!(
        got,
        want,
        "got:\n{}",
        serde_json::to_string_pretty(&got).unwrap()
    );
}

#[test]
fn two_tier_db_networks_and_volumes() {
    let s = stack(TWO_TIER);
    let names: Vec<&str> = s.networks.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["app_backend", "app_frontend"]);
    let net = serde_json::to_value(&s.networks[0].create).unwrap();
    assert_eq!(
        net,
        json!({
            "Name": "app_backend",
            "Driver": "overlay",
            "Scope": "",
            "Internal": false,
            "Attachable": false,
            "Ingress": false,
            "ConfigOnly": false,
            "Labels": {"com.docker.stack.namespace": "app"}
        })
    );
    let db = serde_json::to_value(&service(&s, "app_db").spec).unwrap();
    let c = &db["TaskTemplate"]["ContainerSpec"];
    assert_eq!(
        c["Env"],
        json!(["POSTGRES_PASSWORD=postgres", "POSTGRES_USER=postgres"])
    );
    assert_eq!(
        c["Mounts"],
        json!([{
            "Type": "volume",
            "Source": "app_db-data",
            "Target": "/var/lib/postgresql/data",
            "VolumeOptions": {"Labels": {"com.docker.stack.namespace": "app"}}
        }])
    );
    assert_eq!(
        c["HealthCheck"],
        json!({
            "Test": ["CMD-SHELL", "pg_isready -U postgres"],
            "Interval": 5_000_000_000i64,
            "Timeout": 3_000_000_000i64,
            "Retries": 5
        })
    );
    assert_eq!(
        db["TaskTemplate"]["Placement"],
        json!({"Constraints": ["node.role == manager"]})
    );
    assert_eq!(db["Mode"], json!({"Replicated": {}}));
    assert_eq!(db["EndpointSpec"], json!({}));
    let web = service(&s, "app_web");
    assert_eq!(web.depends_on.len(), 1);
    assert_eq!(web.depends_on[0].service, "app_db");
}

#[test]
fn ports_short_and_long_syntax() {
    let spec = spec_json(
        r#"
services:
  web:
    image: nginx
    ports:
      - 3000
      - "8000-8002:80-82"
      - "127.0.0.1:9000:90/udp"
      - target: 443
        published: 8443
        protocol: tcp
        mode: host
      - target: 53
"#,
        "web",
    );
    assert_eq!(
        spec["EndpointSpec"]["Ports"],
        json!([
            {"TargetPort": 53},
            {"Protocol": "tcp", "TargetPort": 3000, "PublishMode": "ingress"},
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8000, "PublishMode": "ingress"},
            {"Protocol": "tcp", "TargetPort": 81, "PublishedPort": 8001, "PublishMode": "ingress"},
            {"Protocol": "tcp", "TargetPort": 82, "PublishedPort": 8002, "PublishMode": "ingress"},
            {"Protocol": "tcp", "TargetPort": 443, "PublishedPort": 8443, "PublishMode": "host"},
            {"Protocol": "udp", "TargetPort": 90, "PublishedPort": 9000, "PublishMode": "ingress"}
        ])
    );
    let l = load_ok("services:\n  web:\n    image: x\n    ports: [\"127.0.0.1:9000:90/udp\"]\n");
    assert_eq!(
        l.warnings,
        ["ignoring IP-address (127.0.0.1:9000:90/udp) service will listen on '0.0.0.0'"]
    );
}

#[test]
fn endpoint_modes() {
    let spec = spec_json(
        "services:\n  web:\n    image: x\n    deploy: {endpoint_mode: DNSRR}\n",
        "web",
    );
    assert_eq!(spec["EndpointSpec"], json!({"Mode": "dnsrr"}));
    let e = load_err("services:\n  web:\n    image: x\n    deploy: {endpoint_mode: lb}\n");
    assert_eq!(
        e,
        "docker-compose.yml:4:29: services.web.deploy.endpoint_mode: expected vip or dnsrr, got \"lb\""
    );
}

#[test]
fn modes() {
    let mode = |m: &str| {
        spec_json(
            &format!("services:\n  s:\n    image: x\n    deploy: {m}\n"),
            "s",
        )["Mode"]
            .clone()
    };
    assert_eq!(
        mode("{replicas: 3}"),
        json!({"Replicated": {"Replicas": 3}})
    );
    assert_eq!(mode("{mode: global}"), json!({"Global": {}}));
    assert_eq!(
        mode("{mode: replicated-job, replicas: 4}"),
        json!({"ReplicatedJob": {"MaxConcurrent": 4, "TotalCompletions": 4}})
    );
    assert_eq!(mode("{mode: replicated-job}"), json!({"ReplicatedJob": {}}));
    assert_eq!(mode("{mode: global-job}"), json!({"GlobalJob": {}}));
    assert_eq!(
        convert_err("services:\n  s:\n    image: x\n    deploy: {mode: global, replicas: 2}\n"),
        "docker-compose.yml:4:13: services.s.deploy.mode: replicas can only be used with replicated or replicated-job mode"
    );
    assert_eq!(
        load_err("services:\n  s:\n    image: x\n    deploy: {mode: daemon}\n"),
        "docker-compose.yml:4:20: services.s.deploy.mode: expected replicated, global, replicated-job, or global-job, got \"daemon\""
    );
}

#[test]
fn resources_sizes_and_cpus() {
    let spec = spec_json(
        r#"
services:
  s:
    image: x
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 512M, pids: 100}
        reservations:
          cpus: '0.25'
          memory: 1.5g
          generic_resources:
            - discrete_resource_spec: {kind: gpu, value: 2}
"#,
        "s",
    );
    assert_eq!(
        spec["TaskTemplate"]["Resources"],
        json!({
            "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 536_870_912, "Pids": 100},
            "Reservations": {
                "NanoCPUs": 250_000_000,
                "MemoryBytes": 1_610_612_736i64,
                "GenericResources": [{"DiscreteResourceSpec": {"Kind": "gpu", "Value": 2}}]
            }
        })
    );
    assert_eq!(
        load_err(
            "services:\n  s:\n    image: x\n    deploy:\n      resources: {limits: {cpus: \"0.0000000001\"}}\n"
        ),
        "docker-compose.yml:5:34: services.s.deploy.resources.limits.cpus: value is too precise"
    );
    assert_eq!(
        load_err(
            "services:\n  s:\n    image: x\n    deploy:\n      resources: {limits: {memory: 12q}}\n"
        ),
        "docker-compose.yml:5:36: services.s.deploy.resources.limits.memory: expected a size like 512M: invalid suffix: \"q\""
    );
}

#[test]
fn restart_falls_back_to_the_legacy_key() {
    let rp = |extra: &str| {
        spec_json(&format!("services:\n  s:\n    image: x\n{extra}"), "s")["TaskTemplate"]["RestartPolicy"].clone()
    };
    assert_eq!(rp("    restart: always\n"), json!({"Condition": "any"}));
    assert_eq!(
        rp("    restart: unless-stopped\n"),
        json!({"Condition": "any"})
    );
    assert_eq!(
        rp("    restart: on-failure:5\n"),
        json!({"Condition": "on-failure", "MaxAttempts": 5})
    );
    assert_eq!(rp("    restart: \"no\"\n"), json!(null));
    assert_eq!(
        rp("    restart: always\n    deploy: {restart_policy: {condition: none}}\n"),
        json!({"Condition": "none"})
    );
    assert_eq!(
        load_err("services:\n  s:\n    image: x\n    restart: sometimes\n"),
        "docker-compose.yml:4:14: services.s.restart: invalid restart policy: unknown policy 'sometimes' (must be one of 'no', 'always', 'on-failure', or 'unless-stopped')"
    );
}

#[test]
fn update_and_rollback_configs_default_parallelism_to_one() {
    let spec = spec_json(
        "services:\n  s:\n    image: x\n    deploy:\n      update_config: {monitor: 30s, max_failure_ratio: 0.1}\n      rollback_config: {parallelism: 0, order: stop-first, failure_action: pause}\n",
        "s",
    );
    assert_eq!(
        spec["UpdateConfig"],
        json!({"Parallelism": 1, "Monitor": 30_000_000_000i64, "MaxFailureRatio": 0.1, "Order": ""})
    );
    assert_eq!(
        spec["RollbackConfig"],
        json!({"Parallelism": 0, "FailureAction": "pause", "MaxFailureRatio": 0.0, "Order": "stop-first"})
    );
}

#[test]
fn healthcheck_forms() {
    let hc = |h: &str| {
        container(
            &format!("services:\n  s:\n    image: x\n    healthcheck: {h}\n"),
            "s",
        )["HealthCheck"]
            .clone()
    };
    assert_eq!(
        hc("{test: curl -f http://localhost, start_period: 1m, start_interval: 2s}"),
        json!({
            "Test": ["CMD-SHELL", "curl -f http://localhost"],
            "StartPeriod": 60_000_000_000i64,
            "StartInterval": 2_000_000_000i64
        })
    );
    assert_eq!(
        hc("{test: [CMD, /bin/check, -v]}"),
        json!({"Test": ["CMD", "/bin/check", "-v"]})
    );
    assert_eq!(hc("{test: [NONE]}"), json!({"Test": ["NONE"]}));
    assert_eq!(hc("{disable: true}"), json!({"Test": ["NONE"]}));
    assert_eq!(
        hc("{interval: 1m30s}"),
        json!({"Interval": 90_000_000_000i64})
    );
    assert_eq!(
        load_err(
            "services:\n  s:\n    image: x\n    healthcheck: {test: [CMD, x], disable: true}\n"
        ),
        "docker-compose.yml:4:18: services.s.healthcheck: test and disable can't be set at the same time"
    );
}

#[test]
fn container_fields() {
    let c = container(
        r#"
services:
  s:
    image: alpine:3.20
    command: sh -c "echo hi && sleep 1"
    entrypoint: /init
    labels: {b: "2", a: "1"}
    user: "1000:1000"
    working_dir: /app
    hostname: "{{.Service.Name}}-{{.Task.Slot}}"
    init: false
    read_only: true
    tty: true
    stdin_open: true
    cap_add: [net_admin, CAP_SYS_TIME, NET_ADMIN]
    cap_drop: [ALL, sys_time]
    sysctls: [net.core.somaxconn=1024]
    ulimits: {nproc: 65535, nofile: {soft: 1024, hard: 2048}}
    stop_signal: SIGINT
    stop_grace_period: 1m30s
    dns: [8.8.8.8, bogus, "::1"]
    dns_search: example.com
    extra_hosts: {somehost: 162.242.195.82, other: "::1"}
    logging: {driver: syslog, options: {syslog-address: "tcp://192.168.0.42:123"}}
    oom_score_adj: -500
"#,
        "s",
    );
    assert_eq!(
        c,
        json!({
            "Image": "alpine:3.20",
            "Labels": {"a": "1", "b": "2", "com.docker.stack.namespace": "app"},
            "Command": ["/init"],
            "Args": ["sh", "-c", "echo hi && sleep 1"],
            "Hostname": "{{.Service.Name}}-{{.Task.Slot}}",
            "Dir": "/app",
            "User": "1000:1000",
            "Privileges": {},
            "Init": false,
            "TTY": true,
            "OpenStdin": true,
            "ReadOnly": true,
            "StopSignal": "SIGINT",
            "StopGracePeriod": 90_000_000_000i64,
            "Hosts": ["::1 other", "162.242.195.82 somehost"],
            "DNSConfig": {"Nameservers": ["8.8.8.8", "::1"], "Search": ["example.com"]},
            "OomScoreAdj": -500,
            "Sysctls": {"net.core.somaxconn": "1024"},
            "CapabilityAdd": ["CAP_NET_ADMIN", "CAP_SYS_TIME"],
            "CapabilityDrop": ["ALL"],
            "Ulimits": [
                {"Name": "nofile", "Soft": 1024, "Hard": 2048},
                {"Name": "nproc", "Soft": 65535, "Hard": 65535}
            ]
        })
    );
    let spec = spec_json(
        "services:\n  s:\n    image: x\n    logging: {driver: syslog, options: {tag: web}}\n    deploy:\n      labels: [com.example=1]\n      placement:\n        preferences: [{spread: node.labels.zone}]\n        max_replicas_per_node: 2\n",
        "s",
    );
    assert_eq!(
        spec["TaskTemplate"]["LogDriver"],
        json!({"Name": "syslog", "Options": {"tag": "web"}})
    );
    assert_eq!(
        spec["TaskTemplate"]["Placement"],
        json!({"Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}], "MaxReplicas": 2})
    );
    assert_eq!(spec["Labels"]["com.example"], "1");
}

#[test]
fn image_references_are_checked() {
    assert_eq!(
        convert_err("services:\n  s:\n    command: [x]\n"),
        "docker-compose.yml:2:3: services.s: invalid image reference for service s: no image specified"
    );
    let e = convert_err("services:\n  s:\n    image: \"UPPER/Case\"\n");
    assert!(
        e.starts_with(
            "docker-compose.yml:2:3: services.s.image: invalid image reference for service s: "
        ),
        "{e}"
    );
}
