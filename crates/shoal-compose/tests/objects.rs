//! Conversion of what services use: networks, volumes and mounts, secrets and configs, and
//! references to objects the file does not define.
#![allow(clippy::unwrap_used)] // a panic in a test is a failure, which is what we want

mod common;

use common::*;
use serde_json::json;
use shoal_compose::MemFiles;

#[test]
fn a_service_without_networks_joins_the_default_overlay() {
    let s = stack("services:\n  web:\n    image: nginx\n");
    assert_eq!(s.networks.len(), 1);
    assert_eq!(s.networks[0].name, "app_default");
    assert_eq!(s.networks[0].create.driver.as_deref(), Some("overlay"));
    let spec = serde_json::to_value(&s.services[0].spec).unwrap();
    assert_eq!(
        spec["TaskTemplate"]["Networks"],
        json!([{"Target": "app_default", "Aliases": ["web"]}])
    );
}

#[test]
fn networks_with_names_drivers_ipam_and_external_ones() {
    let s = stack(
        r#"
services:
  web:
    image: nginx
    networks:
      front: {driver_opts: {com.example: "1"}}
      ext: {}
      named: {}
networks:
  front:
    driver: weave
    driver_opts: {encrypted: ""}
    attachable: true
    internal: true
    labels: {team: web}
    ipam:
      config:
        - {subnet: 10.10.0.0/16, gateway: 10.10.0.1, ip_range: 10.10.1.0/24}
        - {subnet: not-a-subnet}
  ext: {external: true, name: host}
  named: {name: custom-net}
  unused: {}
"#,
    );
    let names: Vec<(&str, bool)> = s
        .networks
        .iter()
        .map(|n| (n.name.as_str(), n.external))
        .collect();
    assert_eq!(
        names,
        [("host", true), ("app_front", false), ("custom-net", false)]
    );
    let front = serde_json::to_value(&s.networks[1].create).unwrap();
    assert_eq!(
        front,
        json!({
            "Name": "app_front",
            "Driver": "weave",
            "Scope": "",
            "Internal": true,
            "Attachable": true,
            "Ingress": false,
            "ConfigOnly": false,
            "IPAM": {
                "Driver": "",
                "Config": [
                    {"Subnet": "10.10.0.0/16", "Gateway": "10.10.0.1", "IPRange": "10.10.1.0/24"},
                    {}
                ]
            },
            "Options": {"encrypted": ""},
            "Labels": {"com.docker.stack.namespace": "app", "team": "web"}
        })
    );
    let spec = serde_json::to_value(&s.services[0].spec).unwrap();
    // The host network takes no aliases; targets are sorted.
    assert_eq!(
        spec["TaskTemplate"]["Networks"],
        json!([
            {"Target": "app_front", "Aliases": ["web"], "DriverOpts": {"com.example": "1"}},
            {"Target": "custom-net", "Aliases": ["web"]},
            {"Target": "host"}
        ])
    );
}

#[test]
fn volumes_named_bind_tmpfs_and_long_syntax() {
    let c = container(
        r#"
services:
  s:
    image: x
    volumes:
      - data:/data:ro,nocopy
      - ./conf:/etc/conf:rshared
      - ./cache:/cache
      - /anonymous
      - ext:/ext
      - type: tmpfs
        target: /tmp
        tmpfs: {size: 64M}
      - type: bind
        source: ../shared
        target: /shared
        bind: {}
      - type: volume
        source: data
        target: /sub
        volume: {subpath: a/b}
volumes:
  data:
    driver: local
    driver_opts: {type: nfs, o: "addr=10.0.0.1"}
    labels: {backup: "yes"}
  ext: {external: true, name: shared}
"#,
        "s",
    );
    let stack_label = json!({"com.docker.stack.namespace": "app", "backup": "yes"});
    let driver = json!({"Name": "local", "Options": {"type": "nfs", "o": "addr=10.0.0.1"}});
    assert_eq!(
        c["Mounts"],
        json!([
            {"Type": "volume", "Source": "app_data", "Target": "/data", "ReadOnly": true,
             "VolumeOptions": {"NoCopy": true, "Labels": stack_label, "DriverConfig": driver}},
            {"Type": "bind", "Source": "/srv/app/conf", "Target": "/etc/conf",
             "BindOptions": {"Propagation": "rshared"}},
            {"Type": "bind", "Source": "/srv/app/cache", "Target": "/cache"},
            {"Type": "volume", "Target": "/anonymous"},
            {"Type": "volume", "Source": "shared", "Target": "/ext", "VolumeOptions": {}},
            {"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": {"SizeBytes": 67_108_864}},
            {"Type": "bind", "Source": "/srv/shared", "Target": "/shared", "BindOptions": {}},
            {"Type": "volume", "Source": "app_data", "Target": "/sub",
             "VolumeOptions": {"Subpath": "a/b", "Labels": stack_label, "DriverConfig": driver}}
        ])
    );
}

#[test]
fn secrets_and_configs() {
    let fs = MemFiles::new()
        .with("/srv/app/pw.txt", "hunter2")
        .with("/srv/app/nginx.conf", "server {}");
    let text = r#"
services:
  s:
    image: x
    secrets:
      - pw
      - source: token
        target: /run/token
        uid: "100"
        gid: "101"
        mode: 0400
      - shared
    configs:
      - nginx
      - source: nginx
        target: /etc/nginx/nginx.conf
        mode: 0440
secrets:
  pw: {file: ./pw.txt, labels: {k: v}}
  token: {environment: TOKEN}
  shared: {external: true, name: team-shared}
configs:
  nginx: {file: nginx.conf, template_driver: golang}
"#;
    let s = stack_with(text, &[("TOKEN", "t0k3n")], &fs);
    let secrets: Vec<serde_json::Value> = s
        .secrets
        .iter()
        .map(|p| serde_json::to_value(&p.spec).unwrap())
        .collect();
    assert_eq!(
        secrets,
        [
            json!({"Name": "app_pw", "Labels": {"com.docker.stack.namespace": "app", "k": "v"}, "Data": "aHVudGVyMg=="}),
            json!({"Name": "team-shared"}),
            json!({"Name": "app_token", "Labels": {"com.docker.stack.namespace": "app"}, "Data": "dDBrM24="}),
        ]
    );
    assert!(s.secrets[1].external && !s.secrets[0].external);
    assert_eq!(
        serde_json::to_value(&s.configs[0].spec).unwrap(),
        json!({"Name": "app_nginx", "Labels": {"com.docker.stack.namespace": "app"},
               "Data": "c2VydmVyIHt9", "Templating": {"Name": "golang"}})
    );
    let c =
        serde_json::to_value(&s.services[0].spec).unwrap()["TaskTemplate"]["ContainerSpec"].clone();
    assert_eq!(
        c["Secrets"],
        json!([
            {"File": {"Name": "pw", "UID": "0", "GID": "0", "Mode": 292}, "SecretName": "app_pw"},
            {"File": {"Name": "/run/token", "UID": "100", "GID": "101", "Mode": 256}, "SecretName": "app_token"},
            {"File": {"Name": "shared", "UID": "0", "GID": "0", "Mode": 292}, "SecretName": "team-shared"}
        ])
    );
    assert_eq!(
        c["Configs"],
        json!([
            {"File": {"Name": "nginx", "UID": "0", "GID": "0", "Mode": 292}, "ConfigName": "app_nginx"},
            {"File": {"Name": "/etc/nginx/nginx.conf", "UID": "0", "GID": "0", "Mode": 288}, "ConfigName": "app_nginx"}
        ])
    );
}

#[test]
fn references_to_undefined_objects_are_errors() {
    let e = convert_err(
        "services:\n  s:\n    image: x\n    networks: [nope]\n    volumes: [\"gone:/x\"]\n    secrets: [missing]\n    configs: [{source: absent}]\n",
    );
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(
        lines,
        [
            "docker-compose.yml:6:15: services.s.secrets: undefined secret \"missing\"",
            "docker-compose.yml:7:15: services.s.configs: undefined config \"absent\"",
            "docker-compose.yml:4:16: services.s.networks: undefined network \"nope\"",
            "docker-compose.yml:5:15: services.s.volumes: undefined volume \"gone\"",
        ]
    );
    let e = convert_err(
        "services:\n  s:\n    image: x\n    secrets: [a, {source: b, target: a}]\nsecrets:\n  a: {external: true}\n  b: {external: true}\n",
    );
    assert_eq!(
        e,
        "docker-compose.yml:4:18: services.s.secrets: duplicate secret target for b not allowed"
    );
    let loaded = load_ok("secrets:\n  s: {file: ./nope}\nservices: {}\n");
    let e = shoal_compose::convert(&loaded.project, "app", &MemFiles::new(), &opts(&[]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "docker-compose.yml:2:3: secrets.s: file /srv/app/nope: open /srv/app/nope: no such file or directory"
    );
}

#[test]
fn bind_paths_resolve_against_the_working_dir_and_home() {
    let l = load_with(
        "services:\n  s:\n    image: x\n    volumes: [\"~/a:/a\", \"./b/../c:/c\", \"/abs/:/d\"]\n",
        &[("HOME", "/home/u")],
        &MemFiles::new(),
    )
    .unwrap();
    let sources: Vec<&str> = l.project.services["s"]
        .volumes
        .iter()
        .map(|v| v.source.as_str())
        .collect();
    assert_eq!(sources, ["/home/u/a", "/srv/app/c", "/abs/"]);
}
