//! `service create`: the ServiceSpec docker builds from its flags (`ToService`), the image
//! resolution docker's client does before `POST /services/create`, and the converge wait.

use std::collections::HashMap;

use bollard_stubs::models::{
    EndpointSpec, EndpointSpecModeEnum, GenericResources, Limit, ResourceObject,
    ServiceCreateResponse, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecModeReplicatedJob, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement,
    TaskSpecResources,
};

use super::container;
use super::opts::{Parsed, ServiceFlags, expand_env, label_pair, parse, placement_pref};
use super::policy::{apply_restart, apply_rollback_config, apply_update_config};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::imageref::with_default_tag;

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Service name
    #[arg(long)]
    pub name: Option<String>,
    /// Service mode ("replicated", "global", "replicated-job", "global-job")
    #[arg(long, default_value = "replicated")]
    pub mode: String,
    /// Set environment variables
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Service labels
    #[arg(short, long = "label")]
    pub label: Vec<String>,
    /// Container labels
    #[arg(long)]
    pub container_label: Vec<String>,
    /// Placement constraints
    #[arg(long)]
    pub constraint: Vec<String>,
    /// Add a placement preference
    #[arg(long)]
    pub placement_pref: Vec<String>,
    /// Publish a port as a node port
    #[arg(short, long)]
    pub publish: Vec<String>,
    /// User defined resources (KIND=N: each task reserves N units of KIND)
    #[arg(long = "generic-resource", value_name = "KIND=N")]
    pub generic_resource: Vec<String>,
    /// Attach a filesystem mount to the service (type=volume|bind|tmpfs,source=...,target=...)
    #[arg(long)]
    pub mount: Vec<String>,
    /// Add Linux capabilities
    #[arg(long)]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// Sysctl options (KEY=VALUE)
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Ulimit options (NAME=SOFT[:HARD])
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set DNS options
    #[arg(long)]
    pub dns_option: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long)]
    pub dns_search: Vec<String>,
    /// Set one or more custom host-to-IP mappings (host:ip)
    #[arg(long)]
    pub host: Vec<String>,
    #[command(flatten)]
    pub refs: super::refs::CreateRefFlags,
    #[command(flatten)]
    pub flags: ServiceFlags,
    /// IMAGE [COMMAND] [ARG...]: everything after the image goes to the container unparsed.
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true, value_name = "IMAGE [COMMAND] [ARG...]")]
    pub command: Vec<String>,
}

/// docker's `ToService`, for the flags this CLI knows. The JSON it serialises to is what
/// `docker service create` sends for the same flags (checked against a capture in the tests).
pub fn build_spec(args: &CreateArgs) -> Result<ServiceSpec> {
    let p = parse(&args.flags)?;
    let f = &args.flags;
    let (image, cmd_args) = match args.command.split_first() {
        Some((image, rest)) => (image.clone(), rest.to_vec()),
        None => {
            return Err(CliError::Usage(
                "\"service create\" requires at least 1 argument".into(),
            ));
        }
    };
    let mode = service_mode(&args.mode, &p)?;
    let is_job = mode.replicated_job.is_some() || mode.global_job.is_some();
    if is_job && (p.update.any() || p.rollback.any()) {
        return Err(CliError::Usage(
            "update and rollback configuration is not supported for jobs".into(),
        ));
    }

    let mut env: Vec<String> = Vec::new();
    for raw in &args.env {
        let e = expand_env(raw)?;
        if env.contains(&e) {
            continue;
        }
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|cur| !cur.starts_with(&format!("{key}=")));
        env.push(e);
    }
    let labels = pairs("label", &args.label)?;
    let container_labels = pairs("container-label", &args.container_label)?;
    let prefs = args
        .placement_pref
        .iter()
        .map(|v| placement_pref("placement-pref", v))
        .collect::<Result<Vec<_>>>()?;
    let mut ports = Vec::new();
    for p in &args.publish {
        ports.extend(super::ports::parse_publish("publish", p)?);
    }
    let endpoint_mode = match f.endpoint_mode.as_deref().map(str::to_lowercase).as_deref() {
        None | Some("vip") => EndpointSpecModeEnum::VIP,
        Some("dnsrr") => EndpointSpecModeEnum::DNSRR,
        Some(_) => {
            return Err(CliError::invalid_flag(
                "endpoint-mode",
                f.endpoint_mode.as_deref().unwrap_or(""),
                "expected vip or dnsrr",
            ));
        }
    };

    let container = TaskSpecContainerSpec {
        image: Some(with_default_tag(&image)),
        labels: non_empty_map(container_labels),
        command: p.entrypoint.clone().filter(|c| !c.is_empty()),
        args: (!cmd_args.is_empty()).then_some(cmd_args),
        hostname: f.hostname.clone().filter(|s| !s.is_empty()),
        env: (!env.is_empty()).then_some(env),
        dir: f.workdir.clone().filter(|s| !s.is_empty()),
        user: f.user.clone().filter(|s| !s.is_empty()),
        // docker always sends Init, and a DNSConfig (empty without --dns*).
        init: Some(f.init.unwrap_or(false)),
        stop_signal: f.stop_signal.clone().filter(|s| !s.is_empty()),
        tty: f.tty.filter(|t| *t),
        read_only: f.read_only.filter(|r| *r),
        stop_grace_period: p.stop_grace_period,
        dns_config: Some(super::dns::create_dns_config(&super::dns::DnsFlags {
            nameservers: &args.dns,
            search: &args.dns_search,
            options: &args.dns_option,
        })?),
        hosts: super::dns::create_hosts(&args.host)?,
        mounts: non_empty(
            args.mount
                .iter()
                .map(|m| container::parse_mount("mount", m))
                .collect::<Result<Vec<_>>>()?,
        ),
        health_check: f.health.apply(None)?,
        capability_add: non_empty(
            args.cap_add
                .iter()
                .map(|c| container::cap_name(c))
                .collect(),
        ),
        capability_drop: non_empty(
            args.cap_drop
                .iter()
                .map(|c| container::cap_name(c))
                .collect(),
        ),
        sysctls: non_empty_map(
            args.sysctl
                .iter()
                .map(|v| container::parse_sysctl("sysctl", v))
                .collect::<Result<HashMap<_, _>>>()?,
        ),
        ulimits: non_empty(
            args.ulimit
                .iter()
                .map(|v| container::parse_ulimit("ulimit", v))
                .collect::<Result<Vec<_>>>()?,
        ),
        ..Default::default()
    };
    let task = TaskSpec {
        container_spec: Some(container),
        resources: Some(resources(
            &p,
            super::generic::parse("generic-resource", &args.generic_resource)?,
        )),
        restart_policy: p.restart_given().then(|| apply_restart(None, &p)),
        placement: Some(TaskSpecPlacement {
            constraints: (!args.constraint.is_empty()).then(|| args.constraint.clone()),
            preferences: (!prefs.is_empty()).then_some(prefs),
            max_replicas: p.max_replicas.filter(|m| *m > 0),
            ..Default::default()
        }),
        force_update: Some(0),
        ..Default::default()
    };
    Ok(ServiceSpec {
        name: args.name.clone().filter(|n| !n.is_empty()),
        labels: Some(labels),
        task_template: Some(task),
        mode: Some(mode),
        update_config: p.update.any().then(|| apply_update_config(None, &p.update)),
        rollback_config: p
            .rollback
            .any()
            .then(|| apply_rollback_config(None, &p.rollback)),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(endpoint_mode),
            ports: (!ports.is_empty()).then_some(ports),
        }),
        ..Default::default()
    })
}

fn pairs(flag: &str, values: &[String]) -> Result<HashMap<String, String>> {
    values.iter().map(|v| label_pair(flag, v)).collect()
}

fn non_empty_map(m: HashMap<String, String>) -> Option<HashMap<String, String>> {
    (!m.is_empty()).then_some(m)
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn resources(p: &Parsed, generic: Option<GenericResources>) -> TaskSpecResources {
    let nz = |v: Option<i64>| v.filter(|n| *n != 0);
    TaskSpecResources {
        limits: Some(Limit {
            nano_cpus: nz(p.limit_cpu),
            memory_bytes: nz(p.limit_memory),
            pids: nz(p.limit_pids),
        }),
        reservations: Some(ResourceObject {
            nano_cpus: nz(p.reserve_cpu),
            memory_bytes: nz(p.reserve_memory),
            generic_resources: generic,
        }),
        ..Default::default()
    }
}

/// docker's `ToServiceMode`.
pub fn service_mode(mode: &str, p: &Parsed) -> Result<ServiceSpecMode> {
    let usage = |m: &str| Err(CliError::Usage(m.to_string()));
    let mut out = ServiceSpecMode::default();
    match mode {
        "global" => {
            if p.replicas.is_some() {
                return usage("replicas can only be used with replicated or replicated-job mode");
            }
            if p.max_replicas.is_some_and(|m| m > 0) {
                return usage(
                    "replicas-max-per-node can only be used with replicated or replicated-job mode",
                );
            }
            if p.max_concurrent.is_some() {
                return usage("max-concurrent can only be used with replicated-job mode");
            }
            out.global = Some(HashMap::new());
        }
        "replicated" => {
            if p.max_concurrent.is_some() {
                return usage("max-concurrent can only be used with replicated-job mode");
            }
            out.replicated = Some(ServiceSpecModeReplicated {
                replicas: p.replicas,
            });
        }
        "replicated-job" => {
            out.replicated_job = Some(ServiceSpecModeReplicatedJob {
                max_concurrent: p.max_concurrent.or(p.replicas),
                total_completions: p.replicas,
            });
        }
        "global-job" => {
            if p.max_replicas.is_some_and(|m| m > 0) {
                return usage(
                    "replicas-max-per-node can only be used with replicated or replicated-job mode",
                );
            }
            if p.max_concurrent.is_some() {
                return usage("max-concurrent can only be used with replicated-job mode");
            }
            if p.replicas.is_some() {
                return usage("replicas can only be used with replicated or replicated-job mode");
            }
            out.global_job = Some(HashMap::new());
        }
        other => {
            return Err(CliError::invalid_flag(
                "mode",
                other,
                "expected one of \"replicated\", \"global\", \"replicated-job\", \"global-job\"",
            ));
        }
    }
    Ok(out)
}

pub async fn run(client: &Client, args: CreateArgs) -> Result<()> {
    let mut spec = build_spec(&args)?;
    // Secret and config names become IDs first, as docker's client resolves them.
    let mut refs = super::refs::Refs::default();
    args.refs.parse()?.apply(client, &mut refs).await?;
    let mut warnings = Vec::new();
    if !args.flags.no_resolve_image
        && let Some(w) = super::resolve_image(client, &mut spec).await
    {
        warnings.push(w);
    }
    let resp: ServiceCreateResponse = client
        .post("/services/create", &[], &refs.body(&spec)?)
        .await?;
    for w in resp
        .warnings
        .unwrap_or_default()
        .into_iter()
        .chain(warnings)
    {
        eprintln!("{w}");
    }
    let id = resp.id.unwrap_or_default();
    println!("{id}");
    if args.flags.detach {
        return Ok(());
    }
    super::wait::wait_on_service(client, &id, args.flags.quiet, false).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: CreateArgs,
    }

    fn spec_json(argv: &[&str]) -> serde_json::Value {
        let cli = Cli::try_parse_from(std::iter::once("create").chain(argv.iter().copied()))
            .expect("flags parse");
        serde_json::to_value(build_spec(&cli.args).expect("valid spec")).expect("serialisable")
    }

    /// Captured from `docker service create -d --name plain bb sleep 1000` (docker 28.2.2).
    #[test]
    fn plain_create_matches_docker() {
        let expected: serde_json::Value = serde_json::from_str(
            r#"{"Name":"plain","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"bb:latest","Args":["sleep","1000"],"Init":false,"DNSConfig":{}},"Resources":{"Limits":{},"Reservations":{}},"Placement":{},"ForceUpdate":0},"Mode":{"Replicated":{}},"EndpointSpec":{"Mode":"vip"}}"#,
        )
        .expect("valid json");
        assert_eq!(
            spec_json(&["--name", "plain", "bb", "sleep", "1000"]),
            expected
        );
    }

    /// Captured from `docker service create -d --name x --dns 192.0.2.53 --dns-search
    /// example.org --dns-option timeout:2 --host db.example:192.0.2.7 --host v6:2001:db8::1 bb
    /// sleep 1` (docker 28.2.2).
    #[test]
    fn dns_flags_and_hosts_match_docker() {
        let expected: serde_json::Value = serde_json::from_str(
            r#"{"Name":"x","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"bb:latest","Args":["sleep","1"],"Init":false,"Hosts":["192.0.2.7 db.example","2001:db8::1 v6"],"DNSConfig":{"Nameservers":["192.0.2.53"],"Search":["example.org"],"Options":["timeout:2"]}},"Resources":{"Limits":{},"Reservations":{}},"Placement":{},"ForceUpdate":0},"Mode":{"Replicated":{}},"EndpointSpec":{"Mode":"vip"}}"#,
        )
        .expect("valid json");
        assert_eq!(
            spec_json(&[
                "--name",
                "x",
                "--dns",
                "192.0.2.53",
                "--dns-search",
                "example.org",
                "--dns-option",
                "timeout:2",
                "--host",
                "db.example:192.0.2.7",
                "--host",
                "v6:2001:db8::1",
                "bb",
                "sleep",
                "1"
            ]),
            expected
        );
        let bad = Cli::try_parse_from(["create", "--host", "db:nowhere", "bb"]).expect("parse");
        assert_eq!(
            build_spec(&bad.args).err().map(|e| e.to_string()),
            Some(
                r#"invalid argument "db:nowhere" for "--host" flag: invalid IP address in add-host: "nowhere""#
                    .to_owned()
            )
        );
    }

    /// What docker's `ToResourceRequirements` makes of `--generic-resource gpu=1` (the body the
    /// real docker CLI sends is exercised by the `generic_resources` integration test).
    #[test]
    fn generic_resource_is_a_discrete_reservation() {
        let got = spec_json(&[
            "--name",
            "g",
            "--generic-resource",
            "gpu=1",
            "--generic-resource",
            "ssd=2",
            "bb",
        ]);
        let expected: serde_json::Value = serde_json::from_str(
            r#"{"Limits":{},"Reservations":{"GenericResources":[{"DiscreteResourceSpec":{"Kind":"gpu","Value":1}},{"DiscreteResourceSpec":{"Kind":"ssd","Value":2}}]}}"#,
        )
        .expect("valid json");
        assert_eq!(got["TaskTemplate"]["Resources"], expected);
        let named = Cli::try_parse_from(["create", "--generic-resource", "gpu=UUID1", "bb"])
            .expect("flags parse");
        assert_eq!(
            build_spec(&named.args).err().map(|e| e.to_string()),
            Some(
                "invalid argument \"gpu=UUID1\" for \"--generic-resource\" flag: gpu=UUID1: a \
                 service reserves a count of a kind (gpu=N); named resources are only advertised \
                 by nodes"
                    .to_owned()
            )
        );
    }

    /// Captured from `docker service create -d --name ep --entrypoint "/bin/busybox sleep" bb 1000`.
    #[test]
    fn entrypoint_goes_to_command() {
        let expected: serde_json::Value = serde_json::from_str(
            r#"{"Name":"ep","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"bb:latest","Command":["/bin/busybox","sleep"],"Args":["1000"],"Init":false,"DNSConfig":{}},"Resources":{"Limits":{},"Reservations":{}},"Placement":{},"ForceUpdate":0},"Mode":{"Replicated":{}},"EndpointSpec":{"Mode":"vip"}}"#,
        )
        .expect("valid json");
        assert_eq!(
            spec_json(&[
                "--name",
                "ep",
                "--entrypoint",
                "/bin/busybox sleep",
                "bb",
                "1000"
            ]),
            expected
        );
    }

    /// Captured from docker 28.2.2 with every flag this CLI shares with it.
    #[test]
    fn full_create_matches_docker() {
        let argv = [
            "-d",
            "--name",
            "web",
            "--replicas",
            "3",
            "-e",
            "A=1",
            "-e",
            "B=2",
            "-l",
            "tier=front",
            "--container-label",
            "c=1",
            "-w",
            "/tmp",
            "-u",
            "nobody",
            "--hostname",
            "h1",
            "--constraint",
            "node.role==manager",
            "--placement-pref",
            "spread=node.labels.zone",
            "--replicas-max-per-node",
            "2",
            "--limit-cpu",
            "0.5",
            "--limit-memory",
            "64m",
            "--reserve-cpu",
            "0.25",
            "--reserve-memory",
            "32m",
            "--restart-condition",
            "on-failure",
            "--restart-delay",
            "3s",
            "--restart-max-attempts",
            "4",
            "--restart-window",
            "1m",
            "--stop-grace-period",
            "20s",
            "--stop-signal",
            "SIGINT",
            "--update-parallelism",
            "2",
            "--update-delay",
            "5s",
            "--update-failure-action",
            "rollback",
            "--update-monitor",
            "4s",
            "--update-max-failure-ratio",
            "0.3",
            "--update-order",
            "start-first",
            "--rollback-parallelism",
            "1",
            "--rollback-delay",
            "1s",
            "--rollback-monitor",
            "2s",
            "--rollback-failure-action",
            "continue",
            "--rollback-max-failure-ratio",
            "0.1",
            "--rollback-order",
            "stop-first",
            "--init",
            "--tty",
            "--read-only",
            "bb",
            "sleep",
            "1000",
        ];
        let expected: serde_json::Value = serde_json::from_str(
            r#"{"Name":"web","Labels":{"tier":"front"},"TaskTemplate":{"ContainerSpec":{"Image":"bb:latest","Labels":{"c":"1"},"Args":["sleep","1000"],"Hostname":"h1","Env":["A=1","B=2"],"Dir":"/tmp","User":"nobody","Init":true,"StopSignal":"SIGINT","TTY":true,"ReadOnly":true,"StopGracePeriod":20000000000,"DNSConfig":{}},"Resources":{"Limits":{"NanoCPUs":500000000,"MemoryBytes":67108864},"Reservations":{"NanoCPUs":250000000,"MemoryBytes":33554432}},"RestartPolicy":{"Condition":"on-failure","Delay":3000000000,"MaxAttempts":4,"Window":60000000000},"Placement":{"Constraints":["node.role==manager"],"Preferences":[{"Spread":{"SpreadDescriptor":"node.labels.zone"}}],"MaxReplicas":2},"ForceUpdate":0},"Mode":{"Replicated":{"Replicas":3}},"UpdateConfig":{"Parallelism":2,"Delay":5000000000,"FailureAction":"rollback","Monitor":4000000000,"MaxFailureRatio":0.3,"Order":"start-first"},"RollbackConfig":{"Parallelism":1,"Delay":1000000000,"FailureAction":"continue","Monitor":2000000000,"MaxFailureRatio":0.1,"Order":"stop-first"},"EndpointSpec":{"Mode":"vip"}}"#,
        )
        .expect("valid json");
        assert_eq!(spec_json(&argv), expected);
    }

    #[test]
    fn published_ports_go_to_the_endpoint_spec() {
        let v = spec_json(&[
            "-p",
            "8080:80",
            "--publish",
            "published=53,target=53,protocol=udp",
            "bb",
        ]);
        assert_eq!(
            v["EndpointSpec"],
            serde_json::json!({"Mode": "vip", "Ports": [
                {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"},
                {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 53, "PublishMode": "ingress"}
            ]})
        );
    }

    #[test]
    fn flags_after_the_image_belong_to_the_command() {
        let v = spec_json(&["bb", "sh", "-c", "echo --name x", "--replicas", "2"]);
        assert_eq!(
            v["TaskTemplate"]["ContainerSpec"]["Args"],
            serde_json::json!(["sh", "-c", "echo --name x", "--replicas", "2"])
        );
        assert_eq!(v["Mode"], serde_json::json!({"Replicated": {}}));
    }

    #[test]
    fn modes_and_their_conflicts() {
        assert_eq!(
            spec_json(&["--mode", "global", "bb"])["Mode"],
            serde_json::json!({"Global": {}})
        );
        assert_eq!(
            spec_json(&["--mode", "replicated-job", "--replicas", "4", "bb"])["Mode"],
            serde_json::json!({"ReplicatedJob": {"MaxConcurrent": 4, "TotalCompletions": 4}})
        );
        let cli = Cli::try_parse_from(["create", "--mode", "global", "--replicas", "2", "bb"])
            .expect("parse");
        let err = build_spec(&cli.args).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("replicas can only be used with replicated or replicated-job mode")
        );
        let cli = Cli::try_parse_from([
            "create",
            "--mode",
            "global-job",
            "--update-delay",
            "1s",
            "bb",
        ])
        .expect("parse");
        let err = build_spec(&cli.args).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("update and rollback configuration is not supported for jobs")
        );
        let cli = Cli::try_parse_from(["create", "--mode", "daemonset", "bb"]).expect("parse");
        assert_eq!(build_spec(&cli.args).err().map(|e| e.exit_code()), Some(2));
    }

    #[test]
    fn env_duplicates_collapse_like_docker() {
        let v = spec_json(&["-e", "A=1", "-e", "B=2", "-e", "A=3", "-e", "B=2", "bb"]);
        assert_eq!(
            v["TaskTemplate"]["ContainerSpec"]["Env"],
            serde_json::json!(["B=2", "A=3"])
        );
    }

    #[test]
    fn bad_replicas_is_a_usage_error() {
        let cli = Cli::try_parse_from(["create", "--replicas", "-1", "bb"]).expect("parse");
        let err = build_spec(&cli.args).err();
        assert_eq!(err.as_ref().map(|e| e.exit_code()), Some(2));
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some(r#"invalid argument "-1" for "--replicas" flag: expected a number >= 0"#)
        );
    }
}
