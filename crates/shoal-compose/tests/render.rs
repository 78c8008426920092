//! `stack config`: the merged, interpolated project as YAML, which loads back to itself.
#![allow(clippy::unwrap_used)] // a panic in a test is a failure, which is what we want

mod common;

use common::*;
use shoal_compose::{MemFiles, load, render};

const FILE: &str = r##"
version: "3.8"
x-tag: &tag "1.27"
services:
  web:
    image: "nginx:${TAG:-latest}"
    command: nginx -g 'daemon off;'
    environment: {A: "true", B: "0x10", C: "with: colon", D: "", E: "multi\nline", F: null}
    ports: ["8080:80", {target: 443, published: 8443, mode: host}]
    volumes: ["data:/data:ro", "./conf:/conf", {type: tmpfs, target: /tmp, tmpfs: {size: 1m}}]
    networks: {front: {aliases: [www]}}
    secrets: [{source: pw, mode: 0400}]
    healthcheck: {test: curl -f localhost, interval: 1m30s, retries: 3}
    labels: {"yes": "no", "#hash": "- dash"}
    stop_grace_period: 500ms
    ulimits: {nofile: {soft: 1, hard: 2}, nproc: 3}
    depends_on: {db: {condition: service_healthy}}
    deploy:
      mode: replicated
      replicas: 2
      update_config: {parallelism: 1, max_failure_ratio: 0.5, order: start-first}
      resources: {limits: {cpus: "0.5", memory: 512M}}
      restart_policy: {condition: on-failure, delay: 5s}
      placement: {constraints: [node.role == worker], preferences: [{spread: node.id}]}
  db:
    image: postgres
    healthcheck: {test: [CMD, pg_isready]}
networks:
  front: {driver: overlay, attachable: true, ipam: {config: [{subnet: 10.1.0.0/16}]}}
volumes:
  data: {driver_opts: {type: tmpfs}}
secrets:
  pw: {file: ./pw.txt}
"##;

#[test]
fn render_loads_back_to_the_same_project() {
    let loaded = load_with(FILE, &[("TAG", "1.27")], &MemFiles::new()).unwrap();
    let text = render(&loaded.project);
    assert!(text.starts_with("version: \"3.8\"\n"), "{text}");
    assert!(text.contains("image: nginx:1.27\n"), "{text}");
    assert!(text.contains("stop_grace_period: 500ms\n"), "{text}");
    assert!(text.contains("\"yes\": \"no\"\n"), "{text}");
    let again = load(&[file("rendered.yml", &text)], &opts(&[]), &MemFiles::new())
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let strip = |mut p: shoal_compose::Project| {
        // Positions differ between the files; everything else must not.
        for s in p.services.values_mut() {
            s.at = Default::default();
            s.deploy.at = Default::default();
            s.volumes.iter_mut().for_each(|v| v.at = Default::default());
            s.secrets.iter_mut().for_each(|v| v.at = Default::default());
            s.depends_on
                .iter_mut()
                .for_each(|v| v.at = Default::default());
            s.networks
                .iter_mut()
                .flatten()
                .for_each(|(_, n)| n.at = Default::default());
        }
        p.networks
            .values_mut()
            .for_each(|n| n.at = Default::default());
        p.volumes
            .values_mut()
            .for_each(|n| n.at = Default::default());
        p.secrets
            .values_mut()
            .for_each(|n| n.at = Default::default());
        p
    };
    assert_eq!(strip(again.project), strip(loaded.project), "{text}");
}

#[test]
fn render_is_stable() {
    let a = render(&load_ok(FILE).project);
    let b = render(&load_ok(FILE).project);
    assert_eq!(a, b);
    let empty = render(&load_ok("services: {}\n").project);
    assert_eq!(empty, "version: \"3.13\"\nservices: {}\n");
}
