//! Several files merged in order with docker's rules, and `depends_on`.
#![allow(clippy::unwrap_used)] // a panic in a test is a failure, which is what we want

mod common;

use common::*;
use shoal_compose::{MemFiles, load};
use shoal_types::stack::{Condition, DEPENDS_ON_LABEL};

fn merged(base: &str, over: &str) -> shoal_compose::Project {
    let files = [file("base.yml", base), file("override.yml", over)];
    match load(&files, &opts(&[]), &MemFiles::new()) {
        Ok(l) => l.project,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn later_files_win_field_by_field() {
    let p = merged(
        r#"
services:
  web:
    image: nginx:1
    command: [nginx, -g, "daemon off;"]
    environment: {A: "1", B: "1"}
    labels: [keep=1, change=1]
    cap_add: [NET_ADMIN]
    tty: true
    deploy:
      replicas: 2
      labels: {x: "1"}
      placement: {constraints: [node.role == worker]}
      update_config: {parallelism: 2, delay: 5s}
    logging: {driver: json-file, options: {max-size: 1m}}
  db:
    image: postgres
"#,
        r#"
services:
  web:
    image: nginx:2
    command: nginx-debug
    environment: {B: "2", C: "2"}
    labels: {change: "2"}
    cap_add: [SYS_ADMIN]
    tty: false
    deploy:
      replicas: 0
      placement: {constraints: [node.labels.ssd == true]}
      update_config: {order: start-first}
    logging: {options: {max-file: "3"}}
  cache:
    image: redis
"#,
    );
    let names: Vec<&String> = p.services.keys().collect();
    assert_eq!(names, ["cache", "db", "web"]);
    let web = &p.services["web"];
    assert_eq!(web.image.as_deref(), Some("nginx:2"));
    assert_eq!(
        web.command.as_deref(),
        Some(&["nginx-debug".to_string()][..])
    );
    let env: Vec<(&str, &str)> = web
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(env, [("A", "1"), ("B", "2"), ("C", "2")]);
    assert_eq!(web.labels["keep"], "1");
    assert_eq!(web.labels["change"], "2");
    assert_eq!(web.cap_add, ["NET_ADMIN", "SYS_ADMIN"]);
    // As in docker, false does not override true.
    assert!(web.tty);
    // A replica count is replaced even by 0 (docker's mergeUint64).
    assert_eq!(web.deploy.replicas, Some(0));
    assert_eq!(web.deploy.labels["x"], "1");
    assert_eq!(
        web.deploy.placement.constraints,
        ["node.role == worker", "node.labels.ssd == true"]
    );
    let u = web.deploy.update_config.as_ref().unwrap();
    assert_eq!(
        (u.parallelism, u.delay, u.order.as_deref()),
        (Some(2), Some(5_000_000_000), Some("start-first"))
    );
    let l = web.logging.as_ref().unwrap();
    assert_eq!(l.driver.as_deref(), Some("json-file"));
    assert_eq!(l.options.as_ref().unwrap().len(), 2);
}

#[test]
fn lists_keyed_like_docker() {
    let p = merged(
        r#"
services:
  web:
    image: x
    ports: ["8080:80", "9090:90"]
    volumes: ["data:/data", "./a:/a"]
    secrets: [b, a]
secrets:
  a: {external: true}
  b: {external: true}
volumes:
  data:
"#,
        r#"
services:
  web:
    ports: [{target: 81, published: 8080}]
    volumes: ["./other:/data"]
    secrets: [{source: a, target: /run/a}]
"#,
    );
    let web = &p.services["web"];
    let ports: Vec<(u32, u32)> = web.ports.iter().map(|p| (p.published, p.target)).collect();
    assert_eq!(ports, [(8080, 81), (9090, 90)]);
    let vols: Vec<(&str, &str)> = web
        .volumes
        .iter()
        .map(|v| (v.target.as_str(), v.source.as_str()))
        .collect();
    assert_eq!(vols, [("/a", "/srv/app/a"), ("/data", "/srv/app/other")]);
    let secrets: Vec<(&str, Option<&str>)> = web
        .secrets
        .iter()
        .map(|s| (s.source.as_str(), s.target.as_deref()))
        .collect();
    assert_eq!(secrets, [("a", Some("/run/a")), ("b", None)]);
}

#[test]
fn docker_collapses_unpublished_ports_of_a_merged_service() {
    let p = merged(
        "services:\n  web:\n    image: x\n    ports: [\"80\", \"81\"]\n",
        "services:\n  web:\n    image: y\n",
    );
    let ports: Vec<u32> = p.services["web"].ports.iter().map(|p| p.target).collect();
    assert_eq!(ports, [81]);
}

#[test]
fn top_level_objects_are_replaced_whole() {
    let p = merged(
        "networks:\n  hostnet:\n    driver: overlay\n    ipam: {config: [{subnet: 10.0.0.0/20}]}\n",
        "networks:\n  hostnet:\n    external: {name: host}\n",
    );
    let n = &p.networks["hostnet"];
    assert!(n.external && n.driver.is_none() && n.ipam.is_none());
    assert_eq!(n.name.as_deref(), Some("host"));
}

#[test]
fn versions_must_agree_and_errors_name_their_file() {
    let files = [
        file("base.yml", "version: \"3.8\"\nservices: {}\n"),
        file("override.yml", "services:\n  web: {imagee: x}\n"),
    ];
    let e = load(&files, &opts(&[]), &MemFiles::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "override.yml:1:1: version: version mismatched between two composefiles : 3.8 and 3.13"
    );
    let files = [
        file("base.yml", "services:\n  web: {image: x}\n"),
        file("override.yml", "services:\n  web: {imagee: x}\n"),
    ];
    let e = load(&files, &opts(&[]), &MemFiles::new())
        .unwrap_err()
        .to_string();
    assert_eq!(e, "override.yml:2:9: services.web: unknown key \"imagee\"");
}

#[test]
fn depends_on_converts_to_full_names_and_a_label() {
    let text = r#"
services:
  web:
    image: x
    depends_on: [api, cache]
  api:
    image: x
    depends_on:
      db: {condition: service_healthy, restart: true}
      migrate: {condition: service_completed_successfully}
      optional: {condition: service_started, required: false}
  db:
    image: x
    healthcheck: {test: [CMD, pg_isready]}
  migrate:
    image: x
    deploy: {mode: replicated-job}
  cache:
    image: x
"#;
    let l = load_ok(text);
    assert_eq!(
        l.warnings,
        [
            "docker-compose.yml:11:7: services.api.depends_on: optional dependency \"optional\" is not in the stack; ignored"
        ]
    );
    let s = stack(text);
    let api = service(&s, "app_api");
    let deps: Vec<(&str, Condition)> = api
        .depends_on
        .iter()
        .map(|d| (d.service.as_str(), d.condition))
        .collect();
    assert_eq!(
        deps,
        [
            ("app_db", Condition::Healthy),
            ("app_migrate", Condition::CompletedSuccessfully)
        ]
    );
    let labels = api.spec.labels.as_ref().unwrap();
    assert_eq!(
        labels[DEPENDS_ON_LABEL],
        "app_db:service_healthy,app_migrate:service_completed_successfully"
    );
    let web = service(&s, "app_web");
    assert_eq!(
        web.spec.labels.as_ref().unwrap()[DEPENDS_ON_LABEL],
        "app_api:service_started,app_cache:service_started"
    );
    assert!(
        !service(&s, "app_db")
            .spec
            .labels
            .as_ref()
            .unwrap()
            .contains_key(DEPENDS_ON_LABEL)
    );
}

#[test]
fn depends_on_errors() {
    assert_eq!(
        load_err("services:\n  web:\n    image: x\n    depends_on: [db]\n"),
        "docker-compose.yml:4:18: services.web.depends_on: depends on undefined service \"db\""
    );
    assert_eq!(
        load_err(
            "services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [a]\n"
        ),
        "docker-compose.yml:4:18: services.a.depends_on: dependency cycle a -> b -> a"
    );
    assert_eq!(
        load_err("services:\n  a:\n    image: x\n    depends_on: [a]\n"),
        "docker-compose.yml:4:18: services.a.depends_on: dependency cycle a -> a"
    );
    assert_eq!(
        load_err(
            "services:\n  web:\n    image: x\n    depends_on: {db: {condition: service_healthy}}\n  db:\n    image: x\n    healthcheck: {disable: true}\n"
        ),
        "docker-compose.yml:4:18: services.web.depends_on: condition service_healthy on \"db\", whose healthcheck is disabled"
    );
    assert_eq!(
        load_err(
            "services:\n  web:\n    image: x\n    depends_on: {db: {condition: healthy}}\n  db: {image: x}\n"
        ),
        "docker-compose.yml:4:34: services.web.depends_on.db.condition: unknown condition \"healthy\" (expected service_started, service_healthy or service_completed_successfully)"
    );
    let l = load_ok(
        "services:\n  web:\n    image: x\n    depends_on: {db: {condition: service_healthy}}\n  db: {image: x}\n",
    );
    assert_eq!(
        l.warnings,
        [
            "docker-compose.yml:4:18: services.web.depends_on: condition service_healthy on \"db\", which has no healthcheck in the file: its image must define one"
        ]
    );
}
