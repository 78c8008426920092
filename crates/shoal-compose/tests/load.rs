//! Loading: every key of a service and of the top level read into the project, docker's
//! normalizations, and errors that name the file, line, column and key.
#![allow(clippy::unwrap_used)] // a panic in a test is a failure, which is what we want

mod common;

use std::collections::BTreeMap;

use common::*;
use shoal_compose::{IgnoredKind, MemFiles, Options, Ulimit, load};

#[test]
fn duplicate_keys_are_refused_with_their_position() {
    let e = load_err("services:\n  web:\n    image: a\n    image: b\n");
    assert_eq!(
        e,
        "docker-compose.yml:4:5: yaml: mapping key \"image\" already defined at line 3"
    );
}

#[test]
fn service_fields_are_normalized() {
    let l = load_ok(
        r#"
version: "3.8"
services:
  web:
    image: nginx:1.27
    command: nginx -g 'daemon off;'
    entrypoint: ["/docker-entrypoint.sh"]
    environment:
      B: "2"
      A: 1.0
      C:
    labels: [tier=front, bare]
    user: "101"
    working_dir: /usr/share/nginx
    hostname: web-host
    init: true
    read_only: true
    stdin_open: true
    cap_add: [NET_ADMIN]
    cap_drop: [ALL]
    sysctls: {net.core.somaxconn: 1024}
    ulimits:
      nproc: 65535
      nofile: {soft: 20000, hard: 40000}
    stop_signal: SIGQUIT
    stop_grace_period: 1m30s
    dns: 8.8.8.8
    dns_search: [example.com]
    extra_hosts: ["somehost:162.242.195.82", "v6host=[::1]"]
    logging: {driver: json-file, options: {max-size: 10m, max-file: 3}}
"#,
    );
    let s = &l.project.services["web"];
    assert_eq!(s.image.as_deref(), Some("nginx:1.27"));
    assert_eq!(
        s.command.as_deref(),
        Some(&["nginx".to_string(), "-g".into(), "daemon off;".into()][..])
    );
    assert_eq!(
        s.entrypoint.as_deref(),
        Some(&["/docker-entrypoint.sh".to_string()][..])
    );
    // Go prints the float 1.0 as "1"; a null value stays a bare KEY.
    let env: Vec<(&str, Option<&str>)> = s
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect();
    assert_eq!(env, [("A", Some("1")), ("B", Some("2")), ("C", None)]);
    assert_eq!(s.labels["tier"], "front");
    assert_eq!(s.labels["bare"], "");
    assert_eq!(s.user.as_deref(), Some("101"));
    assert_eq!(s.init, Some(true));
    assert!(s.read_only && s.stdin_open && !s.tty);
    assert_eq!(s.sysctls.as_ref().unwrap()["net.core.somaxconn"], "1024");
    assert_eq!(s.ulimits["nproc"], Ulimit::Single(65535));
    assert_eq!(
        s.ulimits["nofile"],
        Ulimit::SoftHard {
            soft: 20000,
            hard: 40000
        }
    );
    assert_eq!(s.stop_grace_period, Some(90_000_000_000));
    assert_eq!(s.dns, ["8.8.8.8"]);
    assert_eq!(s.extra_hosts, ["somehost:162.242.195.82", "v6host:::1"]);
    let logging = s.logging.as_ref().unwrap();
    assert_eq!(logging.options.as_ref().unwrap()["max-file"], "3");
}

#[test]
fn unknown_keys_are_errors_at_the_key() {
    let e = load_err("services:\n  web:\n    imagee: nginx\n");
    assert_eq!(
        e,
        "docker-compose.yml:3:5: services.web: unknown key \"imagee\""
    );
    let e = load_err("services:\n  web:\n    image: nginx\n    deploy:\n      replica: 2\n");
    assert_eq!(
        e,
        "docker-compose.yml:5:7: services.web.deploy: unknown key \"replica\""
    );
    let e = load_err("servics: {}\n");
    assert_eq!(e, "docker-compose.yml:1:1: unknown key \"servics\"");
}

#[test]
fn wrong_types_say_what_was_expected_and_found() {
    let e = load_err("services:\n  web:\n    image: nginx\n    deploy:\n      replicas: three\n");
    assert_eq!(
        e,
        "docker-compose.yml:5:17: services.web.deploy.replicas: expected a number, got \"three\""
    );
    let e = load_err("services:\n  web:\n    image: 1.5\n");
    assert_eq!(
        e,
        "docker-compose.yml:3:12: services.web.image: expected a string, got 1.5"
    );
    let e = load_err("services:\n  web:\n    image: x\n    tty: yes\n");
    assert_eq!(
        e,
        "docker-compose.yml:4:10: services.web.tty: expected a boolean, got \"yes\""
    );
    let e = load_err("services:\n  web:\n    image: x\n    ports: 80\n");
    assert_eq!(
        e,
        "docker-compose.yml:4:12: services.web.ports: expected a list, got 80"
    );
    let e = load_err("services:\n  web:\n    image: x\n    stop_grace_period: 10\n");
    assert_eq!(
        e,
        "docker-compose.yml:4:24: services.web.stop_grace_period: expected a string, got 10"
    );
    let e = load_err("services:\n  web:\n    image: x\n    stop_grace_period: 10x\n");
    assert_eq!(
        e,
        "docker-compose.yml:4:24: services.web.stop_grace_period: expected a duration like 1m30s: unknown unit \"x\" in duration \"10x\""
    );
}

#[test]
fn every_error_is_reported() {
    let e = load_err(
        "services:\n  web:\n    imagee: x\n    tty: maybe\n  db:\n    ports: [\"x:80\"]\n",
    );
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(
        lines,
        [
            "docker-compose.yml:3:5: services.web: unknown key \"imagee\"",
            "docker-compose.yml:4:10: services.web.tty: expected a boolean, got \"maybe\"",
            "docker-compose.yml:6:13: services.db.ports[0]: invalid hostPort: x",
        ]
    );
}

#[test]
fn yaml_syntax_errors_have_positions() {
    let e = load_err("services:\n  web:\n    image: [x\n");
    assert!(e.starts_with("docker-compose.yml:"), "{e}");
    assert!(e.contains("yaml: "), "{e}");
    assert_eq!(
        load_err("- a\n- b\n"),
        "docker-compose.yml:1:1: top-level object must be a mapping, got a list"
    );
    assert_eq!(
        load_err(""),
        "docker-compose.yml:1:1: top-level object must be a mapping, got an empty file"
    );
}

#[test]
fn versions_other_than_3_are_refused() {
    for (v, shown) in [("\"2.4\"", "2.4"), ("\"1\"", "1"), ("\"3.14\"", "3.14")] {
        let e = load_err(&format!("version: {v}\nservices: {{}}\n"));
        assert_eq!(
            e,
            format!(
                "docker-compose.yml:1:10: version: unsupported Compose file version: {shown} (stack deploy reads version 3.x files, or Compose Specification files without a version)"
            )
        );
    }
    assert_eq!(
        load_err("version: 3.8\nservices: {}\n"),
        "docker-compose.yml:1:10: version: expected a string, got 3.8"
    );
    for v in ["\"3\"", "\"3.0\"", "\"3.13\"", "'3.9'"] {
        load_ok(&format!("version: {v}\nservices: {{}}\n"));
    }
    assert_eq!(load_ok("services: {}\n").project.version, None);
}

#[test]
fn forbidden_options_are_errors_and_unsupported_ones_notices() {
    let e = load_err("services:\n  web:\n    image: x\n    cpu_shares: 2\n");
    assert_eq!(
        e,
        "docker-compose.yml:4:5: services.web.cpu_shares: unsupported option: Set resource limits using deploy.resources"
    );
    let l = load_ok(
        "services:\n  web:\n    image: x\n    build: .\n    restart: always\n    container_name: w\n    links: [db]\n  db:\n    image: y\n    build: .\n",
    );
    assert_eq!(l.unsupported(), ["build", "links", "restart"]);
    assert_eq!(
        l.notices(),
        "Ignoring unsupported options: build, links, restart\n\n\
         Ignoring deprecated options:\n\ncontainer_name: Setting the container name is not supported.\n\n"
    );
    let build = l
        .ignored
        .iter()
        .find(|i| i.key == "services.web.build")
        .unwrap();
    assert_eq!((build.at.line, build.at.column), (4, 5));
    assert!(matches!(
        l.ignored
            .iter()
            .find(|i| i.key == "services.web.container_name")
            .unwrap()
            .kind,
        IgnoredKind::Deprecated(_)
    ));
    // restart is ignored in name only: it is the fallback restart policy.
    assert_eq!(l.project.services["web"].restart.as_deref(), Some("always"));
    assert_eq!(load_ok("services: {web: {image: x}}\n").notices(), "");
}

#[test]
fn interpolation_happens_before_typing() {
    let text = "services:\n  web:\n    image: \"${IMAGE:-nginx}:${TAG}\"\n    deploy:\n      replicas: ${N}\n    read_only: $RO\n    labels: {cost: $$5}\n";
    let l = load_with(
        text,
        &[("N", "3"), ("TAG", "1.27"), ("RO", "yes")],
        &MemFiles::new(),
    )
    .unwrap();
    let s = &l.project.services["web"];
    assert_eq!(s.image.as_deref(), Some("nginx:1.27"));
    assert_eq!(s.deploy.replicas, Some(3));
    assert!(s.read_only);
    assert_eq!(s.labels["cost"], "$5");
    // An interpolated value stays a string where a string is wanted.
    let l = load_with(
        "services:\n  web:\n    image: x\n    environment: {V: $V}\n",
        &[("V", "1.0")],
        &MemFiles::new(),
    )
    .unwrap();
    assert_eq!(
        l.project.services["web"].environment["V"].as_deref(),
        Some("1.0")
    );
}

#[test]
fn interpolation_errors_point_at_the_value() {
    let e = load_err("services:\n  web:\n    image: x\n    deploy:\n      replicas: ${N:?set N}\n");
    assert_eq!(
        e,
        "docker-compose.yml:5:17: services.web.deploy.replicas: required variable N is missing a value: set N"
    );
    let e = load_err("services:\n  web:\n    image: \"a$\"\n");
    assert_eq!(
        e,
        "docker-compose.yml:3:12: services.web.image: invalid interpolation format \"a$\": you may need to escape any $ with another $"
    );
    let e = load_err_env(
        "services:\n  web:\n    image: x\n    deploy:\n      replicas: ${N}\n",
        &[("N", "many")],
    );
    assert_eq!(
        e,
        "docker-compose.yml:5:17: services.web.deploy.replicas: expected a number, got \"many\""
    );
    let e = load_err("services:\n  web:\n    image: x\n    command: [a, \"${X:?}\"]\n");
    assert_eq!(
        e,
        "docker-compose.yml:4:18: services.web.command[1]: required variable X is missing a value"
    );
}

#[test]
fn extensions_anchors_and_merge_keys() {
    let l = load_ok(
        r#"
x-common: &common
  image: busybox
  environment: &env
    A: "1"
  deploy:
    replicas: 2
x-more: &more
  labels: {from: more}
  image: ignored
services:
  a:
    <<: [*common, *more]
    x-note: dropped
    command: [echo, a]
  b:
    <<: *common
    image: alpine
    environment:
      <<: *env
      B: "2"
networks:
  net: {x-anything: 1}
"#,
    );
    let a = &l.project.services["a"];
    assert_eq!(a.image.as_deref(), Some("busybox"));
    assert_eq!(a.deploy.replicas, Some(2));
    assert_eq!(a.labels["from"], "more");
    let b = &l.project.services["b"];
    assert_eq!(b.image.as_deref(), Some("alpine"));
    assert_eq!(b.environment.len(), 2);
}

#[test]
fn environment_forms_env_files_and_the_process_environment() {
    let fs = MemFiles::new()
        .with(
            "/srv/app/common.env",
            "# shared\nFROM_FILE=file\nOVERRIDDEN=file\nEMPTY=\nHOME\n",
        )
        .with("/srv/app/conf/extra.env", "EXTRA=1\n");
    let text = "services:\n  web:\n    image: x\n    env_file: [common.env, ./conf/extra.env]\n    environment:\n      - OVERRIDDEN=env\n      - FROM_SHELL\n      - UNSET_VAR\n      - EMPTY_KEPT=\n";
    let l = load_with(
        text,
        &[
            ("FROM_SHELL", "shell"),
            ("EMPTY", "from-shell"),
            ("HOME", "/root"),
        ],
        &fs,
    )
    .unwrap();
    let env: BTreeMap<&str, Option<&str>> = l.project.services["web"]
        .environment
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_deref()))
        .collect();
    assert_eq!(
        env,
        BTreeMap::from([
            ("EMPTY", Some("from-shell")),
            ("EMPTY_KEPT", Some("")),
            ("EXTRA", Some("1")),
            ("FROM_FILE", Some("file")),
            ("FROM_SHELL", Some("shell")),
            ("HOME", Some("/root")),
            ("OVERRIDDEN", Some("env")),
            ("UNSET_VAR", None),
        ])
    );
    let e = load_with(
        "services:\n  web:\n    image: x\n    env_file: missing.env\n",
        &[],
        &fs,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "docker-compose.yml:4:15: env_file /srv/app/missing.env: open /srv/app/missing.env: no such file or directory"
    );
}

#[test]
fn dotenv_is_read_when_asked_and_the_process_environment_wins() {
    let fs = MemFiles::new().with("/srv/app/.env", "TAG=from-dotenv\nN=2\n");
    let files = [file(
        "docker-compose.yml",
        "services:\n  web:\n    image: \"nginx:${TAG}\"\n    deploy: {replicas: $N}\n",
    )];
    let mut o = opts(&[("N", "5")]);
    o.dotenv = true;
    let l = load(&files, &o, &fs).unwrap();
    let web = &l.project.services["web"];
    assert_eq!(web.image.as_deref(), Some("nginx:from-dotenv"));
    assert_eq!(web.deploy.replicas, Some(5));
    let o = Options { dotenv: false, ..o };
    let l = load(&files, &o, &fs).unwrap();
    assert_eq!(l.project.services["web"].image.as_deref(), Some("nginx:"));
}

#[test]
fn top_level_objects_load_with_dockers_rules() {
    let l = load_ok(
        r#"
version: "3.4"
services: {}
networks:
  front:
    driver: overlay
    driver_opts: {encrypted: ""}
    attachable: true
    internal: true
    labels: [a=b]
    ipam:
      driver: default
      config: [{subnet: 10.10.0.0/16, gateway: 10.10.0.1, ip_range: 10.10.1.0/24}]
  outside: {external: true}
  legacy: {external: {name: real-net}}
  named: {name: custom}
volumes:
  data: {driver: local, driver_opts: {type: nfs}, labels: {k: v}}
  ext: {external: true, name: shared-data}
  empty:
secrets:
  pw: {file: ./secrets/pw.txt, labels: {k: v}}
  ext: {external: true}
  env: {environment: DB_PASSWORD}
configs:
  conf: {file: /etc/app.conf, template_driver: golang}
"#,
    );
    let p = &l.project;
    let front = &p.networks["front"];
    assert_eq!(front.driver.as_deref(), Some("overlay"));
    assert!(front.attachable && front.internal);
    assert_eq!(
        front.ipam.as_ref().unwrap().config[0].gateway.as_deref(),
        Some("10.10.0.1")
    );
    assert_eq!(p.networks["outside"].name.as_deref(), Some("outside"));
    assert_eq!(p.networks["legacy"].name.as_deref(), Some("real-net"));
    assert_eq!(p.volumes["ext"].name.as_deref(), Some("shared-data"));
    assert!(p.volumes.contains_key("empty"));
    assert_eq!(
        p.secrets["pw"].file.as_deref(),
        Some("/srv/app/secrets/pw.txt")
    );
    assert_eq!(p.secrets["ext"].name.as_deref(), Some("ext"));
    assert_eq!(p.secrets["env"].environment.as_deref(), Some("DB_PASSWORD"));
    assert_eq!(p.configs["conf"].template_driver.as_deref(), Some("golang"));
    // Before 3.5 the deprecated external.name is not warned about.
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);

    let e = load_err("volumes:\n  v: {external: true, driver: local}\n");
    assert_eq!(
        e,
        "docker-compose.yml:2:3: volumes.v: conflicting parameters \"external\" and \"driver\" specified for volume \"v\""
    );
    let e = load_err("networks:\n  n: {external: {name: a}, name: b}\n");
    assert_eq!(
        e,
        "docker-compose.yml:2:3: networks.n: network.external.name and network.name conflict; only use network.name"
    );
    let e = load_err("secrets:\n  s: {labels: {a: b}}\n");
    assert_eq!(
        e,
        "docker-compose.yml:2:3: secrets.s: exactly one of file, environment, external or driver must be set"
    );
    let l = load_ok("version: \"3.8\"\nnetworks:\n  n: {external: {name: a}}\n");
    assert_eq!(
        l.warnings,
        ["network n: network.external.name is deprecated in favor of network.name"]
    );
}

#[test]
fn service_names_follow_dockers_pattern() {
    assert_eq!(
        load_err("services:\n  \"web app\": {image: x}\n"),
        "docker-compose.yml:2:3: services: invalid service name \"web app\": use letters, digits, '.', '_' and '-'"
    );
}
