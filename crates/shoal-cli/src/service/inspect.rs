//! `service inspect`: the daemon's JSON (with defaults inserted, keys in the daemon's order) or
//! docker's `--pretty` text, rendered exactly as docker's template lays it out.

use std::collections::{BTreeMap, HashMap};

use bollard_stubs::models::Service;
use chrono::{DateTime, Utc};

use crate::client::{Client, decode, path_escape};
use crate::error::{CliError, Result};
use crate::format::{inspect_array, since_nanos};
use crate::units::{bytes_size, format_go_duration, human_duration};

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Print the information in a human friendly format
    #[arg(long)]
    pub pretty: bool,
    #[arg(required = true, value_name = "SERVICE")]
    pub services: Vec<String>,
}

async fn fetch(client: &Client, reference: &str) -> Result<bytes::Bytes> {
    let path = format!("/services/{}", path_escape(reference, false));
    match client
        .get_raw(&path, &[("insertDefaults", "true".to_string())])
        .await
    {
        Err(e) if e.is_not_found() => Err(CliError::Failed(format!(
            "Error: no such service: {reference}"
        ))),
        other => other,
    }
}

pub async fn run(client: &Client, args: InspectArgs) -> Result<()> {
    if args.pretty {
        // docker renders nothing unless every service was found.
        let mut text = String::new();
        for reference in &args.services {
            let raw = fetch(client, reference).await?;
            let service: Service = decode("/services", &raw)?;
            let networks = network_names(client, &service).await;
            text += &render_pretty(&service, &networks, Utc::now());
        }
        print!("{text}");
        return Ok(());
    }
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for reference in &args.services {
        match fetch(client, reference).await {
            Ok(raw) => docs.push(raw),
            Err(e) => errors.push(e),
        }
    }
    println!("{}", inspect_array(&docs));
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CliError::Many(errors)),
    }
}

/// Network IDs to names, best effort (docker shows the ID when the lookup fails).
async fn network_names(client: &Client, service: &Service) -> HashMap<String, String> {
    #[derive(serde::Deserialize)]
    struct Net {
        #[serde(rename = "Name", default)]
        name: String,
    }
    let mut names = HashMap::new();
    let targets = service
        .spec
        .as_ref()
        .and_then(|s| s.task_template.as_ref())
        .and_then(|t| t.networks.clone())
        .unwrap_or_default();
    for n in targets {
        let Some(target) = n.target else { continue };
        let path = format!("/networks/{}", path_escape(&target, false));
        if let Ok(net) = client
            .get::<Net>(&path, &[("scope", "swarm".to_string())])
            .await
        {
            names.insert(target, net.name);
        }
    }
    names
}

fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// A map's entries in key order, each on a new line after `indent`: the key alone when its value
/// is empty, else the key, `sep` and the value (the template's `range $k, $v` blocks).
fn entries<'a>(
    map: impl IntoIterator<Item = (&'a String, &'a String)>,
    indent: &str,
    sep: &str,
) -> String {
    let mut o = String::new();
    for (k, v) in map.into_iter().collect::<BTreeMap<_, _>>() {
        o += &if v.is_empty() {
            format!("\n{indent}{k}")
        } else {
            format!("\n{indent}{k}{sep}{v}")
        };
    }
    o
}

/// docker's `serviceInspectPrettyTemplate`, rendered. `now` dates the update status.
pub fn render_pretty(
    s: &Service,
    networks: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> String {
    let spec = s.spec.clone().unwrap_or_default();
    let task = spec.task_template.clone().unwrap_or_default();
    let cs = task.container_spec.clone().unwrap_or_default();
    let mut o = String::from("\n");
    o += &format!("ID:\t\t{}\n", s.id.clone().unwrap_or_default());
    o += &format!("Name:\t\t{}", spec.name.clone().unwrap_or_default());
    if let Some(labels) = spec.labels.as_ref().filter(|l| !l.is_empty()) {
        o += "\nLabels:";
        o += &entries(labels, " ", "=");
    }
    o += "\nService Mode:";
    let mode = spec.mode.clone().unwrap_or_default();
    if mode.global.is_some() {
        o += "\tGlobal";
    } else if let Some(r) = &mode.replicated {
        o += "\tReplicated";
        if let Some(n) = r.replicas {
            o += &format!("\n Replicas:\t{n}");
        }
    }
    if let Some(us) = s
        .update_status
        .as_ref()
        .filter(|u| u.state.is_some_and(|st| !st.to_string().is_empty()))
    {
        let state = us.state.map(|st| st.to_string()).unwrap_or_default();
        o += &format!("\nUpdateStatus:\n State:\t\t{state}");
        if let Some(started) = &us.started_at {
            o += &format!(
                "\n Started:\t{} ago",
                human_duration(since_nanos(Some(started), now))
            );
        }
        if state == "completed"
            && let Some(done) = &us.completed_at
        {
            o += &format!(
                "\n Completed:\t{} ago",
                human_duration(since_nanos(Some(done), now))
            );
        }
        o += &format!("\n Message:\t{}", us.message.clone().unwrap_or_default());
    }
    o += "\nPlacement:";
    let placement = task.placement.clone().unwrap_or_default();
    if let Some(c) = placement.constraints.as_ref().filter(|c| !c.is_empty()) {
        o += &format!("\n Constraints:\t{}", go_list(c));
    }
    let prefs: Vec<String> = placement
        .preferences
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.spread)
        .map(|sp| format!("spread={}", sp.spread_descriptor.unwrap_or_default()))
        .collect();
    if !prefs.is_empty() {
        o += &format!("\n Preferences:   {}", go_list(&prefs));
    }
    if let Some(m) = placement.max_replicas.filter(|m| *m > 0) {
        o += &format!("\n Max Replicas Per Node:   {m}");
    }
    if let Some(u) = &spec.update_config {
        let fa = u.failure_action.map(|a| a.to_string()).unwrap_or_default();
        let order = u.order.map(|a| a.to_string()).unwrap_or_default();
        o += &policy(
            "UpdateConfig",
            "Update order:      ",
            u.parallelism,
            u.delay,
            &fa,
            u.monitor,
            u.max_failure_ratio,
            &order,
        );
    }
    if let Some(r) = &spec.rollback_config {
        let fa = r.failure_action.map(|a| a.to_string()).unwrap_or_default();
        let order = r.order.map(|a| a.to_string()).unwrap_or_default();
        o += &policy(
            "RollbackConfig",
            "Rollback order:    ",
            r.parallelism,
            r.delay,
            &fa,
            r.monitor,
            r.max_failure_ratio,
            &order,
        );
    }
    o += &format!(
        "\nContainerSpec:\n Image:\t\t{}",
        cs.image.clone().unwrap_or_default()
    );
    if let Some(args) = cs.args.as_ref().filter(|a| !a.is_empty()) {
        o += "\n Args:\t\t";
        o += &args.iter().map(|a| format!("{a} ")).collect::<String>();
    }
    if let Some(env) = cs.env.as_ref().filter(|e| !e.is_empty()) {
        o += "\n Env:\t\t";
        o += &env.iter().map(|e| format!("{e} ")).collect::<String>();
    }
    if let Some(dir) = cs.dir.as_ref().filter(|d| !d.is_empty()) {
        o += &format!("\n Dir:\t\t{dir}");
    }
    if let Some(init) = cs.init {
        o += &format!("\n Init:\t\t{init}");
    }
    if let Some(user) = cs.user.as_ref().filter(|u| !u.is_empty()) {
        o += &format!("\n User: {user}");
    }
    let caps_add = cs.capability_add.clone().unwrap_or_default();
    let caps_drop = cs.capability_drop.clone().unwrap_or_default();
    if !caps_add.is_empty() || !caps_drop.is_empty() {
        o += "\nCapabilities:";
        if !caps_add.is_empty() {
            o += &format!("\n Add: {}", caps_add.join(", "));
        }
        if !caps_drop.is_empty() {
            o += &format!("\n Drop: {}", caps_drop.join(", "));
        }
    }
    if let Some(sysctls) = cs.sysctls.as_ref().filter(|m| !m.is_empty()) {
        o += "\nSysCtls:";
        o += &entries(sysctls, " ", ": ");
    }
    if let Some(ulimits) = cs.ulimits.as_ref().filter(|u| !u.is_empty()) {
        o += "\nUlimits:";
        let sorted: BTreeMap<String, String> = ulimits
            .iter()
            .map(|u| {
                (
                    u.name.clone().unwrap_or_default(),
                    format!("{}:{}", u.soft.unwrap_or(0), u.hard.unwrap_or(0)),
                )
            })
            .collect();
        for (k, v) in sorted {
            o += &format!("\n {k}: {v}");
        }
    }
    if let Some(mounts) = cs.mounts.as_ref().filter(|m| !m.is_empty()) {
        o += "\nMounts:";
        for m in mounts {
            o += &format!(
                "\n Target:\t{}\n  Source:\t{}\n  ReadOnly:\t{}\n  Type:\t\t{}",
                m.target.clone().unwrap_or_default(),
                m.source.clone().unwrap_or_default(),
                m.read_only.unwrap_or(false),
                m.typ.map(|t| t.to_string()).unwrap_or_default()
            );
        }
    }
    if let Some(configs) = cs.configs.as_ref().filter(|c| !c.is_empty()) {
        o += "\nConfigs:";
        for c in configs {
            let file = c
                .file
                .as_ref()
                .and_then(|f| f.name.clone())
                .unwrap_or_default();
            o += &format!(
                "\n Target:\t{file}\n  Source:\t{}",
                c.config_name.clone().unwrap_or_default()
            );
        }
    }
    if let Some(secrets) = cs.secrets.as_ref().filter(|c| !c.is_empty()) {
        o += "\nSecrets:";
        for c in secrets {
            let file = c
                .file
                .as_ref()
                .and_then(|f| f.name.clone())
                .unwrap_or_default();
            o += &format!(
                "\n Target:\t{file}\n  Source:\t{}",
                c.secret_name.clone().unwrap_or_default()
            );
        }
    }
    if let Some(ld) = &task.log_driver {
        o += "\nLog Driver:";
        if let Some(name) = ld.name.as_ref().filter(|n| !n.is_empty()) {
            o += &format!("\n Name:\t\t{name}");
        }
        if let Some(opts) = ld.options.as_ref().filter(|m| !m.is_empty()) {
            o += "\n LogOpts:";
            o += &entries(opts, "  ", ":       ");
        }
        o += "\n";
    }
    if let Some(res) = &task.resources {
        o += "\nResources:";
        let r = res.reservations.clone().unwrap_or_default();
        let (rc, rm) = (r.nano_cpus.unwrap_or(0), r.memory_bytes.unwrap_or(0));
        if rc > 0 || rm > 0 {
            o += "\n Reservations:";
            if rc > 0 {
                o += &format!("\n  CPU:\t\t{}", rc as f64 / 1e9);
            }
            if rm != 0 {
                o += &format!("\n  Memory:\t{}", bytes_size(rm as f64));
            }
        }
        let l = res.limits.clone().unwrap_or_default();
        let (lc, lm, lp) = (
            l.nano_cpus.unwrap_or(0),
            l.memory_bytes.unwrap_or(0),
            l.pids.unwrap_or(0),
        );
        if lc > 0 || lm > 0 || lp > 0 {
            o += "\n Limits:";
            if lc > 0 {
                o += &format!("\n  CPU:\t\t{}", lc as f64 / 1e9);
            }
            if lm != 0 {
                o += &format!("\n  Memory:\t{}", bytes_size(lm as f64));
            }
        }
    }
    if let Some(pids) = task
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.pids)
        .filter(|p| *p > 0)
    {
        o += &format!("\n  PIDs:\t\t{pids}");
    }
    let nets = task.networks.clone().unwrap_or_default();
    if !nets.is_empty() {
        o += "\nNetworks:";
        for n in nets {
            let target = n.target.unwrap_or_default();
            o += &format!(" {}", networks.get(&target).cloned().unwrap_or(target));
        }
        o += " ";
    }
    let endpoint_mode = spec
        .endpoint_spec
        .as_ref()
        .and_then(|e| e.mode)
        .map(|m| m.to_string())
        .unwrap_or_default();
    o += &format!("\nEndpoint Mode:\t{endpoint_mode}");
    let ports = s
        .endpoint
        .as_ref()
        .and_then(|e| e.ports.clone())
        .unwrap_or_default();
    if !ports.is_empty() {
        o += "\nPorts:";
        for p in &ports {
            o += &format!(
                "\n PublishedPort = {}\n  Protocol = {}\n  TargetPort = {}\n  PublishMode = {}",
                p.published_port.unwrap_or(0),
                p.protocol.map(|x| x.to_string()).unwrap_or_default(),
                p.target_port.unwrap_or(0),
                p.publish_mode.map(|x| x.to_string()).unwrap_or_default()
            );
        }
        o += " ";
    }
    if let Some(h) = &cs.health_check {
        o += &format!(
            "\n Healthcheck:\n  Interval = {}\n  Retries = {}\n  StartPeriod =\t{}\n  Timeout =\t{}",
            format_go_duration(h.interval.unwrap_or(0)),
            h.retries.unwrap_or(0),
            format_go_duration(h.start_period.unwrap_or(0)),
            format_go_duration(h.timeout.unwrap_or(0))
        );
        if let Some(tests) = h.test.as_ref().filter(|t| !t.is_empty()) {
            o += "\n  Tests:";
            for t in tests {
                o += &format!("\n\t Test = {t}");
            }
            o += " ";
        }
    }
    o += "\n\n";
    o
}

#[allow(clippy::too_many_arguments)]
fn policy(
    title: &str,
    order_label: &str,
    parallelism: Option<i64>,
    delay: Option<i64>,
    failure_action: &str,
    monitor: Option<i64>,
    ratio: Option<f64>,
    order: &str,
) -> String {
    let mut o = format!("\n{title}:\n Parallelism:\t{}", parallelism.unwrap_or(0));
    if let Some(d) = delay.filter(|d| *d > 0) {
        o += &format!("\n Delay:\t\t{}", format_go_duration(d));
    }
    o += &format!("\n On failure:\t{failure_action}");
    if let Some(m) = monitor.filter(|m| *m > 0) {
        o += &format!("\n Monitoring Period: {}", format_go_duration(m));
    }
    o += &format!("\n Max failure ratio: {}", ratio.unwrap_or(0.0));
    o += &format!("\n {order_label}{order}");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::parse_time;

    /// `GET /services/pretty?insertDefaults=true` from Docker 20.10, for the service created with
    /// `--replicas 2 -l a=b -l c= --constraint node.role==manager --placement-pref
    /// spread=node.labels.zone --replicas-max-per-node 3 --limit-cpu 0.5 --limit-memory 64m
    /// --reserve-memory 1g --update-delay 5s --update-monitor 10s --rollback-parallelism 3 -e X=1
    /// -w /tmp --init -u root --restart-condition any bb sleep 100`.
    const PRETTY: &str = r#"{"ID":"vpl8h2gp8lzga9gbfz948iqtc","Version":{"Index":200},"Spec":{"Name":"pretty","Labels":{"a":"b","c":""},"TaskTemplate":{"ContainerSpec":{"Image":"bb:latest","Args":["sleep","100"],"Env":["X=1"],"Dir":"/tmp","User":"root","Init":true,"StopGracePeriod":10000000000,"DNSConfig":{},"Isolation":"default"},"Resources":{"Limits":{"NanoCPUs":500000000,"MemoryBytes":67108864},"Reservations":{"MemoryBytes":1073741824}},"RestartPolicy":{"Condition":"any","Delay":5000000000,"MaxAttempts":0},"Placement":{"Constraints":["node.role==manager"],"Preferences":[{"Spread":{"SpreadDescriptor":"node.labels.zone"}}],"MaxReplicas":3},"ForceUpdate":0,"Runtime":"container"},"Mode":{"Replicated":{"Replicas":2}},"UpdateConfig":{"Parallelism":1,"Delay":5000000000,"FailureAction":"pause","Monitor":10000000000,"MaxFailureRatio":0,"Order":"stop-first"},"RollbackConfig":{"Parallelism":3,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"},"EndpointSpec":{"Mode":"vip"}},"Endpoint":{"Spec":{}}}"#;

    #[test]
    fn pretty_matches_docker_output() {
        let s: Service = serde_json::from_str(PRETTY).expect("valid service");
        let now = parse_time("2026-11-24T13:00:00Z").expect("valid");
        let expected = "
ID:\t\tvpl8h2gp8lzga9gbfz948iqtc
Name:\t\tpretty
Labels:
 a=b
 c
Service Mode:\tReplicated
 Replicas:\t2
Placement:
 Constraints:\t[node.role==manager]
 Preferences:   [spread=node.labels.zone]
 Max Replicas Per Node:   3
UpdateConfig:
 Parallelism:\t1
 Delay:\t\t5s
 On failure:\tpause
 Monitoring Period: 10s
 Max failure ratio: 0
 Update order:      stop-first
RollbackConfig:
 Parallelism:\t3
 On failure:\tpause
 Monitoring Period: 5s
 Max failure ratio: 0
 Rollback order:    stop-first
ContainerSpec:
 Image:\t\tbb:latest
 Args:\t\tsleep 100 
 Env:\t\tX=1 
 Dir:\t\t/tmp
 Init:\t\ttrue
 User: root
Resources:
 Reservations:
  Memory:\t1GiB
 Limits:
  CPU:\t\t0.5
  Memory:\t64MiB
Endpoint Mode:\tvip

";
        assert_eq!(render_pretty(&s, &HashMap::new(), now), expected);
    }

    /// docker's golden file `service-inspect-pretty.golden` (ports, log driver, healthcheck,
    /// configs and secrets) rendered from the same service.
    #[test]
    fn pretty_matches_docker_golden() {
        let s: Service = serde_json::from_value(serde_json::json!({
            "ID": "de179gar9d0o7ltdybungplod",
            "Spec": {
                "Name": "my_service", "Labels": {"com.label": "foo"},
                "TaskTemplate": {
                    "ContainerSpec": {
                        "Image": "foo/bar@sha256:this_is_a_test",
                        "Configs": [{"File": {"Name": "/configtest.conf"}, "ConfigName": "configtest.conf"}],
                        "Secrets": [{"File": {"Name": "/secrettest.conf"}, "SecretName": "secrettest.conf"}],
                        "HealthCheck": {"Test": ["CMD-SHELL", "curl"], "Interval": 4, "Retries": 3, "StartPeriod": 2, "Timeout": 1}
                    },
                    "Resources": {"Limits": {"NanoCPUs": 100000000000i64, "MemoryBytes": 10485760, "Pids": 20}},
                    "Networks": [{"Target": "5vpyomhb6ievnk0i0o60gcnei"}],
                    "LogDriver": {"Name": "driver", "Options": {"max-file": "5"}}
                },
                "Mode": {"Replicated": {"Replicas": 2}},
                "EndpointSpec": {"Mode": "vip"}
            },
            "Endpoint": {"Ports": [{"Protocol": "tcp", "TargetPort": 5000, "PublishedPort": 30000}]}
        }))
        .expect("valid service");
        let nets = HashMap::from([(
            "5vpyomhb6ievnk0i0o60gcnei".to_string(),
            "mynetwork".to_string(),
        )]);
        let now = parse_time("2026-11-24T13:00:00Z").expect("valid");
        let expected = "
ID:\t\tde179gar9d0o7ltdybungplod
Name:\t\tmy_service
Labels:
 com.label=foo
Service Mode:\tReplicated
 Replicas:\t2
Placement:
ContainerSpec:
 Image:\t\tfoo/bar@sha256:this_is_a_test
Configs:
 Target:\t/configtest.conf
  Source:\tconfigtest.conf
Secrets:
 Target:\t/secrettest.conf
  Source:\tsecrettest.conf
Log Driver:
 Name:\t\tdriver
 LogOpts:
  max-file:       5

Resources:
 Limits:
  CPU:\t\t100
  Memory:\t10MiB
  PIDs:\t\t20
Networks: mynetwork 
Endpoint Mode:\tvip
Ports:
 PublishedPort = 30000
  Protocol = tcp
  TargetPort = 5000
  PublishMode =  
 Healthcheck:
  Interval = 4ns
  Retries = 3
  StartPeriod =\t2ns
  Timeout =\t1ns
  Tests:
\t Test = CMD-SHELL
\t Test = curl 

";
        assert_eq!(render_pretty(&s, &nets, now), expected);
    }

    #[test]
    fn update_status_section() {
        let s: Service = serde_json::from_value(serde_json::json!({
            "ID": "x", "Spec": {"Name": "web", "Mode": {"Global": {}}},
            "UpdateStatus": {"State": "completed", "StartedAt": "2026-11-24T12:58:00Z",
                             "CompletedAt": "2026-11-24T12:59:55Z", "Message": "update completed"}
        }))
        .expect("valid service");
        let now = parse_time("2026-11-24T13:00:00Z").expect("valid");
        let out = render_pretty(&s, &HashMap::new(), now);
        assert!(
            out.contains("Service Mode:\tGlobal\nUpdateStatus:\n State:\t\tcompleted\n Started:\t2 minutes ago\n Completed:\t5 seconds ago\n Message:\tupdate completed\nPlacement:"),
            "{out}"
        );
    }
}
