use super::*;
use shoal_types::node::Resources;
use shoal_types::service::{
    ContainerSpec, Limits, Placement, RestartCondition, RestartPolicy, SpreadPreference, TaskSpec,
};
use std::time::Duration;

fn wire(json: &str) -> w::ServiceSpec {
    crate::body::parse_json(json.as_bytes()).expect("parses")
}

fn err_of(json: &str) -> String {
    match spec_in(wire(json)) {
        Err(e) => e.message,
        Ok(s) => panic!("accepted: {s:?}"),
    }
}

/// What `docker service create -d --name web --replicas 3 host sleep 1000` sends (docker 28.2).
const CLI_CREATE: &str = r#"{"Name":"web","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"host:latest","Args":["sleep","1000"],"Init":false,"DNSConfig":{}},"Resources":{"Limits":{},"Reservations":{}},"Placement":{},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":3}},"EndpointSpec":{"Mode":"vip"}}"#;

#[test]
fn docker_cli_create_body_maps_to_the_model() {
    let s = spec_in(wire(CLI_CREATE)).expect("accepted");
    assert_eq!(s.name, "web");
    assert_eq!(s.mode, ServiceMode::Replicated { replicas: 3 });
    assert_eq!(s.task.container.image, "host:latest");
    assert_eq!(s.task.container.args, vec!["sleep", "1000"]);
    assert!(s.task.container.command.is_empty());
    assert_eq!(s.task.restart, RestartPolicy::default());
    assert!(s.update.is_none());
}

fn full_spec() -> ServiceSpec {
    let mut s = ServiceSpec {
        name: "api".into(),
        ..Default::default()
    };
    s.labels.insert("team".into(), "a".into());
    s.mode = ServiceMode::Replicated { replicas: 7 };
    s.task.container = ContainerSpec {
        image: "host".into(),
        command: vec!["/bin/sh".into()],
        args: vec!["-c".into(), "sleep 1".into()],
        hostname: "h".into(),
        env: vec!["A=1".into()],
        dir: "/tmp".into(),
        user: "nobody".into(),
        groups: vec!["wheel".into()],
        tty: true,
        read_only: true,
        stop_signal: "SIGINT".into(),
        stop_grace_period: Some(Duration::from_secs(3)),
        dns_config: Some(shoal_types::dns::DnsConfig {
            nameservers: vec!["192.0.2.53".into()],
            search: vec![],
            options: vec!["rotate".into()],
        }),
        hosts: vec!["192.0.2.7 db alias".into()],
        ..Default::default()
    };
    s.task.container.labels.insert("l".into(), "v".into());
    s.task.resources.limits = Limits {
        nano_cpus: 500_000_000,
        memory_bytes: 64 << 20,
        pids: 20,
    };
    s.task.resources.reservations = Resources {
        nano_cpus: 100_000_000,
        memory_bytes: 0,
    };
    s.task.restart = RestartPolicy {
        condition: RestartCondition::OnFailure,
        delay: Some(Duration::from_secs(2)),
        max_attempts: 3,
        window: Some(Duration::from_secs(60)),
    };
    s.task.placement = Placement {
        constraints: vec!["node.role==manager".into()],
        preferences: vec![SpreadPreference {
            spread: "node.labels.zone".into(),
        }],
        max_replicas: 2,
        platforms: vec![shoal_types::node::Platform {
            os: "linux".into(),
            arch: "amd64".into(),
        }],
    };
    s.task.log_driver = Some(shoal_types::service::LogDriver {
        name: "syslog".into(),
        options: [("tag".to_owned(), "web".to_owned())].into(),
    });
    s.task.container.privileges = Some(shoal_types::container::Privileges {
        no_new_privileges: true,
        seccomp: Some(shoal_types::container::Seccomp {
            mode: "unconfined".into(),
            profile: String::new(),
        }),
        selinux_context: Some(shoal_types::container::SeLinuxContext {
            level: "s0".into(),
            ..Default::default()
        }),
        credential_spec: Some(shoal_types::container::CredentialSpec {
            registry: "r".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    s.task.container.init = Some(false);
    s.task.resources.generic_reservations = vec![
        shoal_types::GenericResource::discrete("gpu", 2),
        shoal_types::GenericResource::discrete("ssd", 1),
    ];
    s.task.force_update = 4;
    s.update = Some(UpdateConfig {
        parallelism: 2,
        delay: Duration::from_secs(1),
        failure_action: FailureAction::Rollback,
        monitor: Some(Duration::from_secs(9)),
        max_failure_ratio: 0.25,
        order: UpdateOrder::StartFirst,
    });
    s.rollback = Some(UpdateConfig {
        failure_action: FailureAction::Continue,
        ..Default::default()
    });
    s
}

#[test]
fn model_to_wire_and_back_is_the_identity() {
    for spec in [
        full_spec(),
        spec_in(wire(CLI_CREATE)).expect("accepted"),
        ServiceSpec {
            name: "g".into(),
            mode: ServiceMode::Global,
            task: TaskSpec {
                container: ContainerSpec {
                    image: "host".into(),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        },
    ] {
        let json = serde_json::to_vec(&spec_out(&spec)).expect("serialises");
        let back = spec_in(crate::body::parse_json(&json).expect("parses")).expect("accepted");
        assert_eq!(back, spec);
    }
}

#[test]
fn generic_resource_reservations_come_in_from_docker_and_the_sdk() {
    use shoal_types::GenericResource;
    // `docker service create --generic-resource gpu=1 ...`
    let cli = CLI_CREATE.replace(
        r#""Reservations":{}"#,
        r#""Reservations":{"GenericResources":[{"DiscreteResourceSpec":{"Kind":"gpu","Value":1}}]}"#,
    );
    let s = spec_in(wire(&cli)).expect("accepted");
    assert_eq!(
        s.task.resources.generic_reservations,
        vec![GenericResource::discrete("gpu", 1)]
    );
    // Keys in any case, as the Python SDK may send them; a named entry reaches the manager's
    // check (which refuses it there, by field).
    let sdk = CLI_CREATE.replace(
        r#""Reservations":{}"#,
        r#""reservations":{"genericresources":[{"namedresourcespec":{"kind":"gpu","value":"U1"}}]}"#,
    );
    let s = spec_in(wire(&sdk)).expect("accepted");
    assert_eq!(
        s.task.resources.generic_reservations,
        vec![GenericResource::named("gpu", "U1")]
    );
    let neither = CLI_CREATE.replace(
        r#""Reservations":{}"#,
        r#""Reservations":{"GenericResources":[{}]}"#,
    );
    assert_eq!(
        err_of(&neither),
        "TaskTemplate.Resources.Reservations.GenericResources[0]: give exactly one of \
         NamedResourceSpec and DiscreteResourceSpec"
    );
}

/// `docker service create --limit-pids 20` (and `docker stack deploy` for compose's
/// `deploy.resources.limits.pids`) sends `Limits.Pids`; it comes in, and goes out only when set,
/// as Docker shows it.
#[test]
fn pids_limit_comes_in_and_goes_out_like_docker() {
    let with = |limits: &str| CLI_CREATE.replace(r#""Limits":{}"#, limits);
    let s = spec_in(wire(&with(r#""Limits":{"Pids":20}"#))).expect("accepted");
    assert_eq!(
        s.task.resources.limits,
        Limits {
            pids: 20,
            ..Default::default()
        }
    );
    let limits = |s: &ServiceSpec| {
        serde_json::to_value(spec_out(s)).expect("serialises")["TaskTemplate"]["Resources"]
            ["Limits"]
            .clone()
    };
    assert_eq!(limits(&s), serde_json::json!({"Pids": 20}));
    // Unlimited (absent, or 0 as the CLI sends without the flag): no `Pids` out.
    for unlimited in [r#""Limits":{}"#, r#""Limits":{"Pids":0}"#] {
        let s = spec_in(wire(&with(unlimited))).expect("accepted");
        assert_eq!(s.task.resources.limits.pids, 0);
        assert_eq!(limits(&s), serde_json::json!({}));
    }
    // A negative count comes in as sent, for the manager's check to refuse by name.
    let s = spec_in(wire(&with(r#""Limits":{"Pids":-1}"#))).expect("accepted");
    assert_eq!(s.task.resources.limits.pids, -1);
}

#[test]
fn unsupported_fields_are_refused_by_name() {
    let with = |patch: &str| CLI_CREATE.replace(r#""Init":false"#, patch);
    assert!(
        err_of(&with(r#""Secrets":[{"SecretName":"s"}]"#))
            .starts_with("TaskTemplate.ContainerSpec.Secrets")
    );
    assert_eq!(
        err_of(&with(r#""Mounts":[{"Type":"npipe","Target":"/p"}]"#)),
        "TaskTemplate.ContainerSpec.Mounts[0].Type: NPIPE mounts are not supported; use volume, bind or tmpfs"
    );
    assert!(
        err_of(&with(
            r#""Mounts":[{"Type":"volume","Source":"v","Target":"/v","VolumeOptions":{"DriverConfig":{"Name":"nfs"}}}]"#
        ))
        .starts_with("TaskTemplate.ContainerSpec.Mounts[0].VolumeOptions.DriverConfig.Name")
    );
    assert!(
        err_of(&with(
            r#""Healthcheck":{"Test":["CMD","true"],"Retries":-1}"#
        ))
        .starts_with("TaskTemplate.ContainerSpec.Healthcheck.Retries")
    );
    let ports = CLI_CREATE.replace(
        r#"{"Mode":"vip"}"#,
        r#"{"Mode":"vip","Ports":[{"TargetPort":80,"PublishedPort":80800}]}"#,
    );
    assert_eq!(
        err_of(&ports),
        "EndpointSpec.Ports[0].PublishedPort: 80800 is not a port (0-65535)"
    );
    let sctp = CLI_CREATE.replace(
        r#"{"Mode":"vip"}"#,
        r#"{"Mode":"vip","Ports":[{"Protocol":"sctp","TargetPort":80}]}"#,
    );
    assert!(err_of(&sctp).starts_with("EndpointSpec.Ports[0].Protocol"));
    let no_target = CLI_CREATE.replace(
        r#""DNSConfig":{}},"#,
        r#""DNSConfig":{}},"Networks":[{"Aliases":["a"]}],"#,
    );
    assert_eq!(
        err_of(&no_target),
        "TaskTemplate.Networks[0].Target: a network name or ID is required"
    );
    // A credential spec must name one source, as Docker requires.
    assert_eq!(
        err_of(&with(r#""Privileges":{"CredentialSpec":{}}"#)),
        "TaskTemplate.ContainerSpec.Privileges.CredentialSpec: give one of File, Registry and Config"
    );
}

/// What `docker service create --network backend --publish 8080:80` sends comes in whole, and
/// goes out as Docker shows it.
#[test]
fn networks_and_ports_round_trip() {
    let body = CLI_CREATE
        .replace(
            r#"{"Mode":"vip"}"#,
            r#"{"Mode":"vip","Ports":[{"Protocol":"udp","TargetPort":53,"PublishedPort":5353,"PublishMode":"host"},{"TargetPort":80}]}"#,
        )
        .replace(
            r#""DNSConfig":{}},"#,
            r#""DNSConfig":{}},"Networks":[{"Target":"backend","Aliases":["www"]}],"#,
        );
    let spec = spec_in(wire(&body)).expect("accepted");
    assert_eq!(spec.task.networks[0].target, "backend");
    assert_eq!(spec.task.networks[0].aliases, ["www"]);
    let p = &spec.endpoint.ports;
    assert_eq!(
        (
            p[0].protocol,
            p[0].target_port,
            p[0].published_port,
            p[0].publish_mode
        ),
        (Protocol::Udp, 53, 5353, PublishMode::Host)
    );
    assert_eq!(
        (
            p[1].protocol,
            p[1].target_port,
            p[1].published_port,
            p[1].publish_mode
        ),
        (Protocol::Tcp, 80, 0, PublishMode::Ingress)
    );
    let out = serde_json::to_value(spec_out(&spec)).expect("json");
    assert_eq!(out["TaskTemplate"]["Networks"][0]["Target"], "backend");
    assert_eq!(out["EndpointSpec"]["Ports"][0]["Protocol"], "udp");
    assert_eq!(out["EndpointSpec"]["Ports"][0]["PublishMode"], "host");
    // A port to be allocated has no number in the spec, as in Docker (not a published port 0).
    assert_eq!(
        out["EndpointSpec"]["Ports"][1],
        serde_json::json!({"Protocol": "tcp", "TargetPort": 80, "PublishMode": "ingress"})
    );
    // The deprecated top-level field of old clients means the same.
    let old = CLI_CREATE.replace(
        r#""Name":"web","#,
        r#""Name":"web","Networks":[{"Target":"n1"}],"#,
    );
    let spec = spec_in(wire(&old)).expect("accepted");
    assert_eq!(spec.task.networks[0].target, "n1");
}

#[test]
fn bad_numbers_name_their_field() {
    let neg = CLI_CREATE.replace(r#""Replicas":3"#, r#""Replicas":-1"#);
    assert_eq!(
        err_of(&neg),
        "Mode.Replicated.Replicas: must be 0 or more, got -1"
    );
    let grace = CLI_CREATE.replace(r#""Init":false"#, r#""StopGracePeriod":-5"#);
    assert!(err_of(&grace).starts_with("TaskTemplate.ContainerSpec.StopGracePeriod"));
    let two = CLI_CREATE.replace(
        r#"{"Replicated":{"Replicas":3}}"#,
        r#"{"Replicated":{"Replicas":3},"Global":{}}"#,
    );
    assert!(err_of(&two).starts_with("Mode:"));
}

#[test]
fn malformed_json_names_the_path() {
    let bad = CLI_CREATE.replace(r#""Args":["sleep","1000"]"#, r#""Args":["sleep",1000]"#);
    let e = crate::body::parse_json::<w::ServiceSpec>(bad.as_bytes()).expect_err("refused");
    assert!(
        e.message.contains("TaskTemplate.ContainerSpec.Args[1]"),
        "{}",
        e.message
    );
    let e = crate::body::parse_json::<w::ServiceSpec>(b"{\"Name\": ").expect_err("refused");
    assert!(e.message.starts_with("invalid JSON"), "{}", e.message);
}

/// What `docker service create --mount type=volume,source=data,target=/data,volume-label=a=b
/// --mount type=bind,source=/srv,target=/srv,readonly --mount type=tmpfs,target=/t,tmpfs-size=1m
/// --health-cmd "test -f /ok" --health-interval 1s --health-retries 2 --cap-add NET_ADMIN
/// --cap-drop CHOWN --sysctl net.core.somaxconn=1024 --ulimit nofile=1024:2048 --init
/// --read-only` puts in the container spec.
const CONTAINER_EXTRAS: &str = r#""Init":true,"ReadOnly":true,"Mounts":[{"Type":"volume","Source":"data","Target":"/data","VolumeOptions":{"Labels":{"a":"b"}}},{"Type":"bind","Source":"/srv","Target":"/srv","ReadOnly":true},{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576}}],"Healthcheck":{"Test":["CMD-SHELL","test -f /ok"],"Interval":1000000000,"Retries":2},"CapabilityAdd":["CAP_NET_ADMIN"],"CapabilityDrop":["CAP_CHOWN"],"Sysctls":{"net.core.somaxconn":"1024"},"Ulimits":[{"Name":"nofile","Hard":2048,"Soft":1024}]"#;

#[test]
fn mounts_health_and_kernel_settings_go_in_and_come_back_out() {
    use shoal_types::container::MountKind;
    let json = CLI_CREATE.replace(r#""Init":false"#, CONTAINER_EXTRAS);
    let spec = spec_in(wire(&json)).expect("accepted");
    let c = &spec.task.container;
    assert_eq!(c.init, Some(true));
    assert!(c.read_only);
    let kinds: Vec<_> = c
        .mounts
        .iter()
        .map(|m| (m.kind, m.target.as_str(), m.read_only))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (MountKind::Volume, "/data", false),
            (MountKind::Bind, "/srv", true),
            (MountKind::Tmpfs, "/t", false)
        ]
    );
    assert_eq!(
        c.mounts[0].volume_labels.get("a").map(String::as_str),
        Some("b")
    );
    assert_eq!(c.mounts[2].tmpfs_size, 1 << 20);
    let h = c.healthcheck.as_ref().expect("health check");
    assert_eq!(
        h.argv(),
        Some(vec!["/bin/sh".into(), "-c".into(), "test -f /ok".into()])
    );
    assert_eq!(h.interval, Some(Duration::from_secs(1)));
    assert_eq!(h.retries, Some(2));
    assert_eq!(
        h.timeout, None,
        "0 or absent is unset: the image's or Docker's default"
    );
    assert_eq!(c.cap_add, vec!["CAP_NET_ADMIN".to_string()]);
    assert_eq!(
        c.sysctls.get("net.core.somaxconn").map(String::as_str),
        Some("1024")
    );
    assert_eq!((c.ulimits[0].soft, c.ulimits[0].hard), (1024, 2048));

    // Out and back in is the identity, so `docker service update` keeps every field.
    let again = spec_in(spec_out(&spec)).expect("accepted");
    assert_eq!(again, spec);
}

/// What `docker service create --dns 192.0.2.53 --dns-search example.org --dns-option timeout:2
/// --host db.example:192.0.2.7 --host v6:2001:db8::1` sends (docker 28.2, captured).
const CLI_DNS: &str = r#""Init":false,"Hosts":["192.0.2.7 db.example","2001:db8::1 v6"],"DNSConfig":{"Nameservers":["192.0.2.53"],"Search":["example.org"],"Options":["timeout:2"]}"#;

#[test]
fn dns_settings_and_hosts_go_in_and_come_back_out() {
    let json = CLI_CREATE.replace(r#""Init":false,"DNSConfig":{}"#, CLI_DNS);
    let spec = spec_in(wire(&json)).expect("accepted");
    let c = &spec.task.container;
    let d = c.dns_config.as_ref().expect("a DNS config");
    assert_eq!(d.nameservers, ["192.0.2.53"]);
    assert_eq!(d.search, ["example.org"]);
    assert_eq!(d.options, ["timeout:2"]);
    assert_eq!(c.hosts, ["192.0.2.7 db.example", "2001:db8::1 v6"]);

    // `docker service inspect` shows them as Docker does, and an update sends them back.
    let out = serde_json::to_value(spec_out(&spec)).expect("json");
    let cs = &out["TaskTemplate"]["ContainerSpec"];
    assert_eq!(
        cs["DNSConfig"],
        serde_json::json!({"Nameservers": ["192.0.2.53"], "Search": ["example.org"], "Options": ["timeout:2"]})
    );
    assert_eq!(
        cs["Hosts"],
        serde_json::json!(["192.0.2.7 db.example", "2001:db8::1 v6"])
    );
    assert_eq!(spec_in(spec_out(&spec)).expect("accepted"), spec);

    // The empty DNSConfig the CLI always sends, or one emptied by `--dns-rm`, asks for the
    // node's resolver; it is kept, and shown as Docker shows it, `{}`.
    let plain = spec_in(wire(CLI_CREATE)).expect("accepted");
    assert_eq!(plain.task.container.dns_config, Some(Default::default()));
    let emptied = CLI_CREATE.replace(
        r#""DNSConfig":{}"#,
        r#""DNSConfig":{"Nameservers":[],"Search":null}"#,
    );
    assert_eq!(
        spec_in(wire(&emptied))
            .expect("accepted")
            .task
            .container
            .dns_config,
        Some(Default::default())
    );
    let out = serde_json::to_value(spec_out(&plain)).expect("json");
    let cs = &out["TaskTemplate"]["ContainerSpec"];
    assert_eq!(cs["DNSConfig"], serde_json::json!({}));
    assert!(cs.get("Hosts").is_none(), "{cs}");
    // Without one, none is shown.
    let none = CLI_CREATE.replace(r#","DNSConfig":{}"#, "");
    let out =
        serde_json::to_value(spec_out(&spec_in(wire(&none)).expect("accepted"))).expect("json");
    assert!(
        out["TaskTemplate"]["ContainerSpec"]
            .get("DNSConfig")
            .is_none(),
        "{out}"
    );
}

/// The spec as `GET /services/{id}` shows it.
fn shown(json: &str) -> serde_json::Value {
    serde_json::to_value(spec_out(&spec_in(wire(json)).expect("accepted"))).expect("json")
}

/// Swarm keeps a spec as the client wrote it: what the docker CLI sends comes back as sent
/// (plus the runtime, which Docker always shows), with nothing filled in.
#[test]
fn inspect_shows_the_docker_cli_spec_as_sent() {
    let mut want: serde_json::Value = serde_json::from_str(CLI_CREATE).expect("json");
    want["TaskTemplate"]["Runtime"] = "container".into();
    assert_eq!(shown(CLI_CREATE), want);
}

/// What the Python SDK sends for `services.create("host", restart_policy=RestartPolicy(
/// condition="on-failure", max_attempts=3))`: no resources, placement, endpoint, update config
/// or window come back; Docker adds the labels map and the replicated mode, and so does shoal.
#[test]
fn inspect_leaves_out_what_the_client_left_out() {
    let sdk = r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"host"},"RestartPolicy":{"Condition":"on-failure","MaxAttempts":3}}}"#;
    assert_eq!(
        shown(sdk),
        serde_json::json!({
            "Name": "w",
            "Labels": {},
            "TaskTemplate": {
                "ContainerSpec": {"Image": "host"},
                "RestartPolicy": {"Condition": "on-failure", "MaxAttempts": 3},
                "ForceUpdate": 0,
                "Runtime": "container"
            },
            "Mode": {"Replicated": {"Replicas": 1}}
        })
    );
    let out = |task_template: &str| {
        shown(&format!(
            r#"{{"Name":"w","TaskTemplate":{{"ContainerSpec":{{"Image":"host"}},{task_template}}}}}"#
        ))["TaskTemplate"]
            .clone()
    };
    // A window given (even 0) comes back; none given, none comes back.
    assert_eq!(
        out(r#""RestartPolicy":{"Condition":"any","Window":0}"#)["RestartPolicy"],
        serde_json::json!({"Condition": "any", "MaxAttempts": 0, "Window": 0})
    );
    assert_eq!(
        out(r#""RestartPolicy":{"Delay":1000}"#)["RestartPolicy"],
        serde_json::json!({"Condition": "any", "Delay": 1000, "MaxAttempts": 0})
    );
    // Limits without reservations: no reservations come back, and the other way round.
    assert_eq!(
        out(r#""Resources":{"Limits":{"NanoCPUs":1000}}"#)["Resources"],
        serde_json::json!({"Limits": {"NanoCPUs": 1000}})
    );
    assert_eq!(
        out(r#""Resources":{"Reservations":{"MemoryBytes":4096}}"#)["Resources"],
        serde_json::json!({"Reservations": {"MemoryBytes": 4096}})
    );
    assert_eq!(out(r#""Resources":{}"#)["Resources"], serde_json::json!({}));
    // `false` and `{}` given are shown as given, as Swarm keeps them.
    let c = shown(
        r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"host","Init":false,"Healthcheck":{},"Labels":{}}}}"#,
    )["TaskTemplate"]["ContainerSpec"]
        .clone();
    assert_eq!(c["Init"], false);
    assert_eq!(c["HealthCheck"], serde_json::json!({}));
    assert!(c.get("Labels").is_none(), "an empty map is left out: {c}");
}

/// An update config is shown as Docker shows it: what the client left out is Go's zero value
/// (so a parallelism not given is 0, all at once, as in Swarm), the delay and monitor only when
/// set; 0 for the monitor is no monitor given (the 5 s default applies).
#[test]
fn update_configs_come_back_as_docker_shows_them() {
    let with = |u: &str| {
        let body = CLI_CREATE.replace(
            r#""EndpointSpec""#,
            &format!(r#""UpdateConfig":{u},"RollbackConfig":{u},"EndpointSpec""#),
        );
        let spec = spec_in(wire(&body)).expect("accepted");
        let out = serde_json::to_value(spec_out(&spec)).expect("json");
        assert_eq!(out["UpdateConfig"], out["RollbackConfig"], "{out}");
        (spec, out["UpdateConfig"].clone())
    };
    let (spec, out) = with(r#"{"Parallelism":2}"#);
    assert_eq!(
        out,
        serde_json::json!({"Parallelism": 2, "FailureAction": "pause", "MaxFailureRatio": 0.0, "Order": "stop-first"})
    );
    let u = spec.update.expect("kept");
    assert_eq!(u.effective_monitor(), Duration::from_secs(5));
    let (spec, out) = with(r#"{"Delay":0,"Monitor":0}"#);
    assert_eq!(
        out,
        serde_json::json!({"Parallelism": 0, "FailureAction": "pause", "MaxFailureRatio": 0.0, "Order": "stop-first"})
    );
    assert_eq!(spec.update.map(|u| u.parallelism), Some(0));
    let (_, out) = with(r#"{"Parallelism":1,"Delay":7,"Monitor":9,"Order":"start-first"}"#);
    assert_eq!(
        out,
        serde_json::json!({"Parallelism": 1, "Delay": 7, "FailureAction": "pause", "Monitor": 9, "MaxFailureRatio": 0.0, "Order": "start-first"})
    );
}

/// `?insertDefaults=true`: what swarmkit's `InterpolateService` fills, shown as Docker shows it.
#[test]
fn insert_defaults_shows_swarms_defaults() {
    let sdk = r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"host"}}}"#;
    let spec = spec_in(wire(sdk)).expect("accepted");
    let update = serde_json::json!({
        "Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000i64,
        "MaxFailureRatio": 0.0, "Order": "stop-first"
    });
    assert_eq!(
        serde_json::to_value(spec_out(&spec.with_defaults())).expect("json"),
        serde_json::json!({
            "Name": "w",
            "Labels": {},
            "TaskTemplate": {
                "ContainerSpec": {"Image": "host", "StopGracePeriod": 10_000_000_000i64, "DNSConfig": {}},
                "Resources": {},
                "RestartPolicy": {"Condition": "any", "Delay": 5_000_000_000i64, "MaxAttempts": 0},
                "Placement": {},
                "ForceUpdate": 0,
                "Runtime": "container"
            },
            "Mode": {"Replicated": {"Replicas": 1}},
            "UpdateConfig": update,
            "RollbackConfig": update
        })
    );
}

/// Placement platforms, the log driver and privileges are kept and shown as sent; what shoal
/// cannot apply is reported, as Docker reports what it could not do.
#[test]
fn platforms_log_driver_and_privileges_are_kept_and_warned_about() {
    use super::super::service_extras::warnings;
    let body = CLI_CREATE
        .replace(
            r#""Placement":{}"#,
            r#""Placement":{"Platforms":[{"Architecture":"amd64","OS":"linux"},{"OS":"windows"}]},"LogDriver":{"Name":"syslog","Options":{"tag":"web"}}"#,
        )
        .replace(
            r#""Init":false"#,
            r#""Init":false,"Privileges":{"NoNewPrivileges":true,"Seccomp":{"Mode":"unconfined"}}"#,
        );
    let spec = spec_in(wire(&body)).expect("accepted");
    let p = &spec.task.placement.platforms;
    assert_eq!(
        (
            p[0].os.as_str(),
            p[0].arch.as_str(),
            p[1].os.as_str(),
            p[1].arch.as_str()
        ),
        ("linux", "amd64", "windows", "")
    );
    let out = serde_json::to_value(spec_out(&spec)).expect("json");
    let t = &out["TaskTemplate"];
    assert_eq!(
        t["Placement"],
        serde_json::json!({"Platforms": [{"Architecture": "amd64", "OS": "linux"}, {"OS": "windows"}]})
    );
    assert_eq!(
        t["LogDriver"],
        serde_json::json!({"Name": "syslog", "Options": {"tag": "web"}})
    );
    assert_eq!(
        t["ContainerSpec"]["Privileges"],
        serde_json::json!({"NoNewPrivileges": true, "Seccomp": {"Mode": "unconfined"}})
    );
    // `docker stack deploy`'s object of nulls and shoal's own empty one read the same, and are
    // shown as Docker shows them.
    for sent in [
        r#"{"CredentialSpec":null,"SELinuxContext":null,"NoNewPrivileges":false}"#,
        "{}",
    ] {
        let body = CLI_CREATE.replace(
            r#""Init":false"#,
            &format!(r#""Init":false,"Privileges":{sent}"#),
        );
        let spec = spec_in(wire(&body)).expect("accepted");
        let service = Service {
            spec,
            ..Default::default()
        };
        let v = service_out(&service, None).to_json().expect("json");
        assert_eq!(
            v["Spec"]["TaskTemplate"]["ContainerSpec"]["Privileges"],
            serde_json::json!({"CredentialSpec": null, "SELinuxContext": null, "NoNewPrivileges": false}),
            "{sent}"
        );
    }
    assert_eq!(spec_in(spec_out(&spec)).expect("accepted"), spec);
    assert_eq!(
        warnings(&spec),
        [
            "TaskTemplate.LogDriver: the \"syslog\" log driver is kept in the spec but not used: \
             shoal captures each task's output itself (see docker service logs)",
            "TaskTemplate.ContainerSpec.Privileges: Seccomp, NoNewPrivileges kept in the spec but \
             not applied: no shoal runtime sets them yet"
        ]
    );
    // What `docker stack deploy` sends with every service asks for nothing: no warning.
    let stack = CLI_CREATE.replace(
        r#""Init":false"#,
        r#""Init":false,"Privileges":{"CredentialSpec":null,"SELinuxContext":null,"NoNewPrivileges":false}"#,
    );
    assert!(warnings(&spec_in(wire(&stack)).expect("accepted")).is_empty());
    assert!(warnings(&spec_in(wire(CLI_CREATE)).expect("accepted")).is_empty());
}

/// Docker writes the health check as `Healthcheck` and takes it in any case (Go's JSON), the
/// Engine API's swagger spelling `HealthCheck` included.
#[test]
fn the_health_check_is_read_in_any_spelling_and_written_as_docker_writes_it() {
    for key in ["Healthcheck", "HealthCheck", "healthcheck"] {
        let body = CLI_CREATE.replace(
            r#""Init":false"#,
            &format!(r#""{key}":{{"Test":["CMD","true"],"Retries":2}}"#),
        );
        let spec = spec_in(wire(&body)).expect("accepted");
        assert_eq!(
            spec.task
                .container
                .healthcheck
                .as_ref()
                .and_then(|h| h.retries),
            Some(2),
            "{key}"
        );
        let service = Service {
            spec: spec.clone(),
            previous_spec: Some(spec),
            ..Default::default()
        };
        let v = service_out(&service, None).to_json().expect("json");
        for which in ["Spec", "PreviousSpec"] {
            let c = &v[which]["TaskTemplate"]["ContainerSpec"];
            assert_eq!(c["Healthcheck"]["Retries"], 2, "{which}: {c}");
            assert!(c.get("HealthCheck").is_none(), "{which}: {c}");
        }
    }
}

/// The fuzz target's round trips on the specs the tests above send: what converts comes back
/// unchanged, and so does the spec with Swarm's defaults filled in.
#[test]
fn accepted_specs_and_their_defaults_convert_back_unchanged() {
    let bodies = [
        CLI_CREATE.to_owned(),
        CLI_CREATE.replace(r#""Init":false"#, CONTAINER_EXTRAS),
        CLI_CREATE.replace(r#""Init":false,"DNSConfig":{}"#, CLI_DNS),
        r#"{"Name":"w","TaskTemplate":{"ContainerSpec":{"Image":"host"}}}"#.to_owned(),
        r#"{"Name":"fid","TaskTemplate":{"ContainerSpec":{"Image":"host","Init":false,"DNSConfig":{},"Healthcheck":{"Test":["CMD","true"],"Retries":2},"Privileges":{"NoNewPrivileges":true,"Seccomp":{"Mode":"unconfined"},"CredentialSpec":{"File":"spec.json"}}},"Resources":{"Limits":{"NanoCPUs":1000}},"RestartPolicy":{"Condition":"on-failure","Window":0},"Placement":{"Platforms":[{"Architecture":"amd64","OS":"linux"}],"Preferences":[{"Spread":{"SpreadDescriptor":"node.platform.os"}}]},"LogDriver":{"Name":"syslog","Options":{"tag":"x"}}},"UpdateConfig":{"Parallelism":2},"RollbackConfig":{"Monitor":0}}"#.to_owned(),
    ];
    for body in bodies {
        let spec = spec_in(wire(&body)).expect("accepted");
        assert_eq!(spec_in(spec_out(&spec)).expect("back in"), spec, "{body}");
        let d = spec.with_defaults();
        assert_eq!(spec_in(spec_out(&d)).expect("back in"), d, "{body}");
    }
}
