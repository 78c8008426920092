//! `service update`, `scale` and `rollback`: read the service, change its spec as docker's
//! `updateService` does, and post it back with the version read (`?version=N`), then wait.

use std::collections::HashMap;

use bollard_stubs::models::{
    EndpointSpec, EndpointSpecModeEnum, Limit, ResourceObject, Service, ServiceSpec,
    ServiceUpdateResponse, TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecResources,
};

use super::container;
use super::opts::{
    Parsed, ServiceFlags, expand_env, label_pair, parse, placement_pref, shell_words,
};
use super::policy::{apply_restart, apply_rollback_config, apply_update_config};
use super::refs::Refs;
use crate::client::{Client, decode, path_escape};
use crate::error::{CliError, Result};
use crate::imageref::with_default_tag;

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// Service image tag
    #[arg(long)]
    pub image: Option<String>,
    /// Service command args
    #[arg(long, value_name = "command")]
    pub args: Option<String>,
    /// Rollback to previous specification
    #[arg(long)]
    pub rollback: bool,
    /// Force update even if no changes require it
    #[arg(long)]
    pub force: bool,
    /// Add or update an environment variable
    #[arg(long)]
    pub env_add: Vec<String>,
    /// Remove an environment variable
    #[arg(long)]
    pub env_rm: Vec<String>,
    /// Add or update a service label
    #[arg(long)]
    pub label_add: Vec<String>,
    /// Remove a label by its key
    #[arg(long)]
    pub label_rm: Vec<String>,
    /// Add or update a container label
    #[arg(long)]
    pub container_label_add: Vec<String>,
    /// Remove a container label by its key
    #[arg(long)]
    pub container_label_rm: Vec<String>,
    /// Add or update a placement constraint
    #[arg(long)]
    pub constraint_add: Vec<String>,
    /// Remove a constraint
    #[arg(long)]
    pub constraint_rm: Vec<String>,
    /// Add a placement preference
    #[arg(long)]
    pub placement_pref_add: Vec<String>,
    /// Remove a placement preference
    #[arg(long)]
    pub placement_pref_rm: Vec<String>,
    /// Add or update a published port
    #[arg(long)]
    pub publish_add: Vec<String>,
    /// Remove a published port by its target port
    #[arg(long)]
    pub publish_rm: Vec<String>,
    /// Add a Generic resource (KIND=N)
    #[arg(long, value_name = "KIND=N")]
    pub generic_resource_add: Vec<String>,
    /// Remove a Generic resource (KIND)
    #[arg(long, value_name = "KIND")]
    pub generic_resource_rm: Vec<String>,
    /// Add or update a mount on a service
    #[arg(long)]
    pub mount_add: Vec<String>,
    /// Remove a mount by its target path
    #[arg(long)]
    pub mount_rm: Vec<String>,
    /// Add Linux capabilities
    #[arg(long)]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// Add or update a Sysctl option
    #[arg(long)]
    pub sysctl_add: Vec<String>,
    /// Remove a Sysctl option
    #[arg(long)]
    pub sysctl_rm: Vec<String>,
    /// Add or update a ulimit option
    #[arg(long)]
    pub ulimit_add: Vec<String>,
    /// Remove a ulimit option
    #[arg(long)]
    pub ulimit_rm: Vec<String>,
    /// Add or update a custom DNS server
    #[arg(long)]
    pub dns_add: Vec<String>,
    /// Remove a custom DNS server
    #[arg(long)]
    pub dns_rm: Vec<String>,
    /// Add or update a DNS option
    #[arg(long)]
    pub dns_option_add: Vec<String>,
    /// Remove a DNS option
    #[arg(long)]
    pub dns_option_rm: Vec<String>,
    /// Add or update a custom DNS search domain
    #[arg(long)]
    pub dns_search_add: Vec<String>,
    /// Remove a DNS search domain
    #[arg(long)]
    pub dns_search_rm: Vec<String>,
    /// Add a custom host-to-IP mapping ("host:ip")
    #[arg(long)]
    pub host_add: Vec<String>,
    /// Remove a custom host-to-IP mapping ("host:ip")
    #[arg(long)]
    pub host_rm: Vec<String>,
    #[command(flatten)]
    pub refs: super::refs::UpdateRefFlags,
    #[command(flatten)]
    pub flags: ServiceFlags,
    pub service: String,
}

impl UpdateArgs {
    /// True when a flag other than `--rollback`, `-d` and `-q` was given.
    fn changes_anything(&self) -> bool {
        let f = &self.flags;
        let lists = [
            &self.env_add,
            &self.env_rm,
            &self.label_add,
            &self.label_rm,
            &self.container_label_add,
            &self.container_label_rm,
            &self.constraint_add,
            &self.constraint_rm,
            &self.placement_pref_add,
            &self.placement_pref_rm,
            &self.publish_add,
            &self.publish_rm,
            &self.generic_resource_add,
            &self.generic_resource_rm,
            &self.mount_add,
            &self.mount_rm,
            &self.cap_add,
            &self.cap_drop,
            &self.sysctl_add,
            &self.sysctl_rm,
            &self.ulimit_add,
            &self.ulimit_rm,
            &self.dns_add,
            &self.dns_rm,
            &self.dns_option_add,
            &self.dns_option_rm,
            &self.dns_search_add,
            &self.dns_search_rm,
            &self.host_add,
            &self.host_rm,
        ];
        let options = [
            &self.image,
            &self.args,
            &f.workdir,
            &f.user,
            &f.hostname,
            &f.entrypoint,
            &f.replicas,
            &f.max_concurrent,
            &f.replicas_max_per_node,
            &f.limit_cpu,
            &f.limit_memory,
            &f.limit_pids,
            &f.reserve_cpu,
            &f.reserve_memory,
            &f.restart_condition,
            &f.restart_delay,
            &f.restart_max_attempts,
            &f.restart_window,
            &f.stop_grace_period,
            &f.stop_signal,
            &f.update_parallelism,
            &f.update_delay,
            &f.update_monitor,
            &f.update_failure_action,
            &f.update_max_failure_ratio,
            &f.update_order,
            &f.rollback_parallelism,
            &f.rollback_delay,
            &f.rollback_monitor,
            &f.rollback_failure_action,
            &f.rollback_max_failure_ratio,
            &f.rollback_order,
            &f.endpoint_mode,
        ];
        self.force
            || f.no_resolve_image
            || f.health.any()
            || f.init.is_some()
            || f.tty.is_some()
            || f.read_only.is_some()
            || self.refs.any()
            || lists.iter().any(|l| !l.is_empty())
            || options.iter().any(|o| o.is_some())
    }
}

/// docker's `updateService` for the flags this CLI knows.
pub fn apply(spec: &mut ServiceSpec, a: &UpdateArgs, p: &Parsed) -> Result<()> {
    let f = &a.flags;
    remove_then_add(&mut spec.labels, &a.label_rm, &a.label_add, "label-add")?;
    let task = spec.task_template.get_or_insert_with(Default::default);
    let cs = task
        .container_spec
        .get_or_insert_with(TaskSpecContainerSpec::default);
    remove_then_add(
        &mut cs.labels,
        &a.container_label_rm,
        &a.container_label_add,
        "container-label-add",
    )?;
    if let Some(image) = &a.image {
        cs.image = Some(image.clone());
    }
    if let Some(raw) = &a.args {
        cs.args = Some(shell_words(raw).map_err(|why| CliError::invalid_flag("args", raw, why))?);
    }
    if let Some(entry) = &p.entrypoint {
        cs.command = Some(entry.clone());
    }
    update_env(&mut cs.env, &a.env_rm, &a.env_add)?;
    if let Some(v) = &f.workdir {
        cs.dir = Some(v.clone());
    }
    if let Some(v) = &f.user {
        cs.user = Some(v.clone());
    }
    if let Some(v) = &f.hostname {
        cs.hostname = Some(v.clone());
    }
    if let Some(v) = f.init {
        cs.init = Some(v);
    }
    if let Some(v) = p.stop_grace_period {
        cs.stop_grace_period = Some(v);
    }
    if let Some(v) = f.tty {
        cs.tty = Some(v);
    }
    if let Some(v) = f.read_only {
        cs.read_only = Some(v);
    }
    if let Some(v) = &f.stop_signal {
        cs.stop_signal = Some(v.clone());
    }
    container::update_extras(cs, a)?;
    super::dns::update(
        cs,
        &super::dns::DnsFlags {
            nameservers: &a.dns_add,
            search: &a.dns_search_add,
            options: &a.dns_option_add,
        },
        &super::dns::DnsFlags {
            nameservers: &a.dns_rm,
            search: &a.dns_search_rm,
            options: &a.dns_option_rm,
        },
        &a.host_add,
        &a.host_rm,
    )?;

    if p.limit_cpu.is_some() || p.limit_memory.is_some() || p.limit_pids.is_some() {
        let res = task
            .resources
            .get_or_insert_with(TaskSpecResources::default);
        res.reservations.get_or_insert_with(ResourceObject::default);
        let limits = res.limits.get_or_insert_with(Limit::default);
        if let Some(v) = p.limit_cpu {
            limits.nano_cpus = Some(v);
        }
        if let Some(v) = p.limit_memory {
            limits.memory_bytes = Some(v);
        }
        if let Some(v) = p.limit_pids {
            limits.pids = Some(v);
        }
    }
    if p.reserve_cpu.is_some() || p.reserve_memory.is_some() {
        let res = task
            .resources
            .get_or_insert_with(TaskSpecResources::default);
        res.limits.get_or_insert_with(Limit::default);
        let reservations = res.reservations.get_or_insert_with(ResourceObject::default);
        if let Some(v) = p.reserve_cpu {
            reservations.nano_cpus = Some(v);
        }
        if let Some(v) = p.reserve_memory {
            reservations.memory_bytes = Some(v);
        }
    }
    if !a.generic_resource_add.is_empty() || !a.generic_resource_rm.is_empty() {
        let res = task
            .resources
            .get_or_insert_with(TaskSpecResources::default);
        res.limits.get_or_insert_with(Limit::default);
        let reservations = res.reservations.get_or_insert_with(ResourceObject::default);
        reservations.generic_resources = super::generic::update(
            reservations.generic_resources.take(),
            &a.generic_resource_add,
            &a.generic_resource_rm,
        )?;
    }
    if p.restart_given() {
        task.restart_policy = Some(apply_restart(task.restart_policy.take(), p));
    }
    if !a.constraint_add.is_empty() || !a.constraint_rm.is_empty() {
        let placement = task
            .placement
            .get_or_insert_with(TaskSpecPlacement::default);
        let mut constraints = placement.constraints.take().unwrap_or_default();
        constraints.extend(a.constraint_add.iter().cloned());
        constraints.retain(|c| !a.constraint_rm.contains(c));
        // docker sorts so the result is predictable.
        constraints.sort();
        placement.constraints = Some(constraints);
    }
    if !a.placement_pref_add.is_empty() || !a.placement_pref_rm.is_empty() {
        let placement = task
            .placement
            .get_or_insert_with(TaskSpecPlacement::default);
        let remove = a
            .placement_pref_rm
            .iter()
            .map(|v| placement_pref("placement-pref-rm", v))
            .collect::<Result<Vec<_>>>()?;
        let mut prefs = placement.preferences.take().unwrap_or_default();
        prefs.retain(|existing| {
            !remove
                .iter()
                .any(|r| r.spread.is_some() && r.spread == existing.spread)
        });
        for v in &a.placement_pref_add {
            prefs.push(placement_pref("placement-pref-add", v)?);
        }
        placement.preferences = Some(prefs);
    }
    if let Some(n) = p.max_replicas {
        task.placement
            .get_or_insert_with(TaskSpecPlacement::default)
            .max_replicas = Some(n);
    }
    if a.force {
        task.force_update = Some(task.force_update.unwrap_or(0) + 1);
    }
    if let Some(n) = p.replicas {
        match spec.mode.as_mut().and_then(|m| m.replicated.as_mut()) {
            Some(r) => r.replicas = Some(n),
            None => {
                return Err(CliError::Usage(
                    "replicas can only be used with replicated mode".into(),
                ));
            }
        }
    }
    if p.update.any() {
        spec.update_config = Some(apply_update_config(spec.update_config.take(), &p.update));
    }
    if p.rollback.any() {
        spec.rollback_config = Some(apply_rollback_config(
            spec.rollback_config.take(),
            &p.rollback,
        ));
    }
    if !a.publish_add.is_empty() || !a.publish_rm.is_empty() {
        let parse = |flag: &str, values: &[String]| -> Result<Vec<_>> {
            let mut out = Vec::new();
            for v in values {
                out.extend(super::ports::parse_publish(flag, v)?);
            }
            Ok(out)
        };
        let add = parse("publish-add", &a.publish_add)?;
        let rm = parse("publish-rm", &a.publish_rm)?;
        let endpoint = spec.endpoint_spec.get_or_insert_with(EndpointSpec::default);
        endpoint.ports = Some(super::ports::update_ports(
            endpoint.ports.take().unwrap_or_default(),
            &add,
            &rm,
        ));
    }
    if let Some(m) = &f.endpoint_mode {
        let mode = match m.to_lowercase().as_str() {
            "vip" => EndpointSpecModeEnum::VIP,
            "dnsrr" => EndpointSpecModeEnum::DNSRR,
            _ => {
                return Err(CliError::invalid_flag(
                    "endpoint-mode",
                    m,
                    "expected vip or dnsrr",
                ));
            }
        };
        spec.endpoint_spec
            .get_or_insert_with(EndpointSpec::default)
            .mode = Some(mode);
    }
    Ok(())
}

fn remove_then_add(
    field: &mut Option<HashMap<String, String>>,
    remove: &[String],
    add: &[String],
    add_flag: &str,
) -> Result<()> {
    if let Some(map) = field.as_mut() {
        for k in remove {
            map.remove(k);
        }
    }
    if !add.is_empty() {
        let map = field.get_or_insert_with(HashMap::new);
        for kv in add {
            let (k, v) = label_pair(add_flag, kv)?;
            map.insert(k, v);
        }
    }
    Ok(())
}

/// `--env-rm` by key, then `--env-add` replacing a variable in place or appending it. (docker
/// rebuilds the list from a map, in random order; keeping the order makes updates stable.)
fn update_env(env: &mut Option<Vec<String>>, remove: &[String], add: &[String]) -> Result<()> {
    let key = |e: &str| e.split('=').next().unwrap_or("").to_string();
    if let Some(list) = env.as_mut() {
        list.retain(|e| !remove.contains(&key(e)));
    }
    for raw in add {
        let e = expand_env(raw)?;
        let list = env.get_or_insert_with(Vec::new);
        let k = key(&e);
        match list.iter_mut().find(|cur| key(cur) == k) {
            Some(cur) => *cur = e,
            None => list.push(e),
        }
    }
    Ok(())
}

/// Fetches a service by name, ID or ID prefix, with its secret and config references as sent
/// (they carry fields the model drops; `post_update` puts them back).
pub async fn inspect_service(client: &Client, name: &str) -> Result<(Service, Refs)> {
    let path = format!("/services/{}", path_escape(name, false));
    let raw = client
        .get_raw(&path, &[("insertDefaults", "false".to_string())])
        .await?;
    Ok((decode(&path, &raw)?, Refs::from_service(&raw)))
}

/// `POST /services/{id}/update?version=N`, tagging the image like docker's client does.
pub async fn post_update(
    client: &Client,
    service: &Service,
    mut spec: ServiceSpec,
    refs: &Refs,
    extra: &[(&str, String)],
) -> Result<Vec<String>> {
    if let Some(cs) = spec
        .task_template
        .as_mut()
        .and_then(|t| t.container_spec.as_mut())
        && let Some(image) = cs.image.as_mut()
    {
        *image = with_default_tag(image);
    }
    let id = service.id.clone().unwrap_or_default();
    let version = service.version.as_ref().and_then(|v| v.index).unwrap_or(0);
    let mut query: Vec<(&str, String)> = extra.to_vec();
    query.push(("version", version.to_string()));
    let resp: ServiceUpdateResponse = client
        .post(
            &format!("/services/{}/update", path_escape(&id, false)),
            &query,
            &refs.body(&spec)?,
        )
        .await?;
    Ok(resp.warnings.unwrap_or_default())
}

pub async fn run(client: &Client, a: UpdateArgs) -> Result<()> {
    let p = parse(&a.flags)?;
    if a.rollback && a.changes_anything() {
        return Err(CliError::Usage(
            "other flags may not be combined with --rollback".into(),
        ));
    }
    let wanted = a.refs.parse()?;
    let (service, mut refs) = inspect_service(client, &a.service).await?;
    let mut spec = service.spec.clone().unwrap_or_default();
    apply(&mut spec, &a, &p)?;
    wanted.apply(client, &mut refs).await?;
    let mut warnings = Vec::new();
    if a.image.is_some()
        && !a.flags.no_resolve_image
        && let Some(w) = super::resolve_image(client, &mut spec).await
    {
        warnings.push(w);
    }
    let mut extra = vec![("registryAuthFrom", "spec".to_string())];
    if a.rollback {
        extra.push(("rollback", "previous".to_string()));
    }
    for w in post_update(client, &service, spec, &refs, &extra)
        .await?
        .into_iter()
        .chain(warnings)
    {
        eprintln!("{w}");
    }
    println!("{}", a.service);
    if a.flags.detach {
        return Ok(());
    }
    super::wait::wait_on_service(client, &a.service, a.flags.quiet, a.rollback).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: UpdateArgs,
    }

    /// The spec `docker service create` made for `web` (see create.rs), as the daemon returns it.
    const WEB: &str = r#"{"Name":"web","Labels":{"tier":"front"},"TaskTemplate":{"ContainerSpec":{"Image":"bb:latest","Labels":{"c":"1"},"Args":["sleep","1000"],"Hostname":"h1","Env":["A=1","B=2"],"Dir":"/tmp","User":"nobody","Init":true,"StopSignal":"SIGINT","TTY":true,"ReadOnly":true,"StopGracePeriod":20000000000,"DNSConfig":{},"Isolation":"default"},"Resources":{"Limits":{"NanoCPUs":500000000,"MemoryBytes":67108864},"Reservations":{"NanoCPUs":250000000,"MemoryBytes":33554432}},"RestartPolicy":{"Condition":"on-failure","Delay":3000000000,"MaxAttempts":4,"Window":60000000000},"Placement":{"Constraints":["node.role==manager"],"Preferences":[{"Spread":{"SpreadDescriptor":"node.labels.zone"}}],"MaxReplicas":2},"ForceUpdate":0,"Runtime":"container"},"Mode":{"Replicated":{"Replicas":3}},"UpdateConfig":{"Parallelism":2,"Delay":5000000000,"FailureAction":"rollback","Monitor":4000000000,"MaxFailureRatio":0.3,"Order":"start-first"},"RollbackConfig":{"Parallelism":1,"Delay":1000000000,"FailureAction":"continue","Monitor":2000000000,"MaxFailureRatio":0.1,"Order":"stop-first"},"EndpointSpec":{"Mode":"vip"}}"#;

    fn updated(argv: &[&str], spec: &str) -> Result<serde_json::Value> {
        let cli = Cli::try_parse_from(std::iter::once("update").chain(argv.iter().copied()))
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let mut spec: ServiceSpec =
            serde_json::from_str(spec).map_err(|e| CliError::Failed(e.to_string()))?;
        let p = parse(&cli.args.flags)?;
        apply(&mut spec, &cli.args, &p)?;
        serde_json::to_value(spec).map_err(|e| CliError::Failed(e.to_string()))
    }

    /// docker 28.2.2 sent this for `service update --env-add C=3 --env-rm A --label-add x=y
    /// --constraint-add node.role!=worker --force --limit-memory 128m --restart-max-attempts 7
    /// --image bb:v2 --args "sleep 2000" web` (image tagging happens in `post_update`).
    #[test]
    fn update_matches_docker() {
        let v = updated(
            &[
                "--env-add",
                "C=3",
                "--env-rm",
                "A",
                "--label-add",
                "x=y",
                "--constraint-add",
                "node.role!=worker",
                "--force",
                "--limit-memory",
                "128m",
                "--restart-max-attempts",
                "7",
                "--image",
                "bb:v2",
                "--args",
                "sleep 2000",
                "web",
            ],
            WEB,
        )
        .expect("valid update");
        let expected: serde_json::Value = serde_json::from_str(
            r#"{"Name":"web","Labels":{"tier":"front","x":"y"},"TaskTemplate":{"ContainerSpec":{"Image":"bb:v2","Labels":{"c":"1"},"Args":["sleep","2000"],"Hostname":"h1","Env":["B=2","C=3"],"Dir":"/tmp","User":"nobody","Init":true,"StopSignal":"SIGINT","TTY":true,"ReadOnly":true,"StopGracePeriod":20000000000,"DNSConfig":{},"Isolation":"default"},"Resources":{"Limits":{"NanoCPUs":500000000,"MemoryBytes":134217728},"Reservations":{"NanoCPUs":250000000,"MemoryBytes":33554432}},"RestartPolicy":{"Condition":"on-failure","Delay":3000000000,"MaxAttempts":7,"Window":60000000000},"Placement":{"Constraints":["node.role!=worker","node.role==manager"],"Preferences":[{"Spread":{"SpreadDescriptor":"node.labels.zone"}}],"MaxReplicas":2},"ForceUpdate":1,"Runtime":"container"},"Mode":{"Replicated":{"Replicas":3}},"UpdateConfig":{"Parallelism":2,"Delay":5000000000,"FailureAction":"rollback","Monitor":4000000000,"MaxFailureRatio":0.3,"Order":"start-first"},"RollbackConfig":{"Parallelism":1,"Delay":1000000000,"FailureAction":"continue","Monitor":2000000000,"MaxFailureRatio":0.1,"Order":"stop-first"},"EndpointSpec":{"Mode":"vip"}}"#,
        )
        .expect("valid json");
        assert_eq!(v, expected);
    }

    #[test]
    fn replicas_force_and_defaults() {
        let plain = r#"{"Name":"plain","Labels":{},"TaskTemplate":{"ContainerSpec":{"Image":"bb:latest","Env":["A=1"]},"ForceUpdate":2},"Mode":{"Replicated":{"Replicas":1}}}"#;
        let v = updated(
            &[
                "--replicas",
                "5",
                "--force",
                "--env-add",
                "A=2",
                "--update-delay",
                "10s",
                "--restart-condition",
                "none",
                "plain",
            ],
            plain,
        )
        .expect("valid update");
        assert_eq!(v["Mode"]["Replicated"]["Replicas"], 5);
        assert_eq!(v["TaskTemplate"]["ForceUpdate"], 3);
        assert_eq!(
            v["TaskTemplate"]["ContainerSpec"]["Env"],
            serde_json::json!(["A=2"])
        );
        assert_eq!(
            v["UpdateConfig"],
            serde_json::json!({"Parallelism":1,"Delay":10000000000i64,"FailureAction":"pause","Monitor":5000000000i64,"MaxFailureRatio":0.0,"Order":"stop-first"})
        );
        assert_eq!(
            v["TaskTemplate"]["RestartPolicy"],
            serde_json::json!({"Condition":"none","Delay":5000000000i64,"MaxAttempts":0})
        );
        let global =
            r#"{"Name":"g","TaskTemplate":{"ContainerSpec":{"Image":"bb"}},"Mode":{"Global":{}}}"#;
        let err = updated(&["--replicas", "2", "g"], global)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("replicas can only be used with replicated mode")
        );
    }

    #[test]
    fn constraints_and_prefs_add_remove() {
        let v = updated(
            &[
                "--constraint-rm",
                "node.role==manager",
                "--constraint-add",
                "node.labels.a==b",
                "--placement-pref-rm",
                "spread=node.labels.zone",
                "--placement-pref-add",
                "spread=node.id",
                "--label-rm",
                "tier",
                "--container-label-rm",
                "c",
                "web",
            ],
            WEB,
        )
        .expect("valid update");
        assert_eq!(
            v["TaskTemplate"]["Placement"]["Constraints"],
            serde_json::json!(["node.labels.a==b"])
        );
        assert_eq!(
            v["TaskTemplate"]["Placement"]["Preferences"],
            serde_json::json!([{"Spread": {"SpreadDescriptor": "node.id"}}])
        );
        assert_eq!(v["Labels"], serde_json::json!({}));
        assert_eq!(
            v["TaskTemplate"]["ContainerSpec"]["Labels"],
            serde_json::json!({})
        );
    }

    #[test]
    fn rollback_refuses_other_flags() {
        let cli = Cli::try_parse_from(["update", "--rollback", "-d", "web"]).expect("parse");
        assert!(!cli.args.changes_anything());
        let cli =
            Cli::try_parse_from(["update", "--rollback", "--image", "x", "web"]).expect("parse");
        assert!(cli.args.changes_anything());
        let cli = Cli::try_parse_from(["update", "--rollback", "--secret-rm", "x", "web"])
            .expect("parse");
        assert!(cli.args.changes_anything());
    }
}
