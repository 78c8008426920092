//! `POST /containers/create`'s body (Docker's container `Config` with its `HostConfig` and
//! `NetworkingConfig`) to the engine's [`ContainerCreate`]; every refusal names its field.
//! Keys have been normalised to the API's spellings (see `crate::body`), so `Tty` is `TTY`
//! and `Healthcheck` is `HealthCheck` here.

use std::collections::{BTreeMap, HashMap};

use bollard_stubs::models as w;
use serde::Deserialize;
use shoal_control::engine::{ContainerCreate, EndpointRequest, RestartPolicy};
use shoal_types::container::{Mount, MountKind};
use shoal_types::dns::DnsConfig;
use shoal_types::endpoint::{PortBinding, Protocol};

use super::container::{health_in, mounts_in, ulimits_in};
use crate::error::ApiError;

/// A string or a list of strings: Docker takes both for `Cmd` and `Entrypoint`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StrOrList {
    One(String),
    Many(Vec<String>),
}

impl StrOrList {
    fn into_vec(self) -> Vec<String> {
        match self {
            // As Docker: a string is split on white space.
            StrOrList::One(s) => s.split_whitespace().map(str::to_string).collect(),
            StrOrList::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub user: Option<String>,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub exposed_ports: Option<HashMap<String, serde_json::Value>>,
    #[serde(rename = "TTY")]
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    pub cmd: Option<StrOrList>,
    pub health_check: Option<w::HealthConfig>,
    pub image: Option<String>,
    pub volumes: Option<HashMap<String, serde_json::Value>>,
    pub working_dir: Option<String>,
    pub entrypoint: Option<StrOrList>,
    pub network_disabled: bool,
    pub labels: Option<HashMap<String, String>>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
    pub host_config: Option<HostConfigBody>,
    pub networking_config: Option<NetworkingBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfigBody {
    pub binds: Option<Vec<String>>,
    pub mounts: Option<Vec<w::Mount>>,
    pub port_bindings: Option<HashMap<String, Option<Vec<PortBindingBody>>>>,
    pub publish_all_ports: bool,
    pub restart_policy: Option<RestartPolicyBody>,
    pub auto_remove: bool,
    pub network_mode: Option<String>,
    pub init: Option<bool>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub readonly_rootfs: bool,
    pub sysctls: Option<HashMap<String, String>>,
    pub ulimits: Option<Vec<w::ResourcesUlimits>>,
    pub extra_hosts: Option<Vec<String>>,
    pub dns: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    pub memory: Option<i64>,
    #[serde(rename = "NanoCPUs")]
    pub nano_cpus: Option<i64>,
    pub pids_limit: Option<i64>,
    pub privileged: bool,
    pub tmpfs: Option<HashMap<String, String>>,
    pub group_add: Option<Vec<String>>,
    pub volumes_from: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBindingBody {
    #[serde(rename = "HostIp")]
    pub host_ip: Option<String>,
    pub host_port: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicyBody {
    pub name: Option<String>,
    pub maximum_retry_count: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingBody {
    pub endpoints_config: Option<BTreeMap<String, Option<EndpointBody>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointBody {
    pub aliases: Option<Vec<String>>,
}

/// `80`, `80/tcp`, `53/udp`.
fn port_key(field: &str, key: &str) -> Result<(u16, Protocol), ApiError> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let proto = Protocol::parse(proto).ok_or_else(|| {
        ApiError::invalid(
            field,
            format!("invalid protocol {proto:?} in {key:?}: expected tcp or udp"),
        )
    })?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::invalid(field, format!("invalid port {key:?}")))?;
    Ok((port, proto))
}

/// A bind as `docker run -v` writes it: `name-or-path:target[:opts]`.
fn bind_in(field: &str, s: &str) -> Result<Mount, ApiError> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [t] => ("", *t, ""),
        [s, t] => (*s, *t, ""),
        [s, t, o] => (*s, *t, *o),
        _ => {
            return Err(ApiError::invalid(
                field,
                format!("invalid volume specification: {s:?}"),
            ));
        }
    };
    if !target.starts_with('/') {
        return Err(ApiError::invalid(
            field,
            format!("invalid volume specification: {s:?}: the target must be an absolute path"),
        ));
    }
    let mut read_only = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => read_only = true,
            "rw" | "z" | "Z" | "rprivate" | "private" | "rshared" | "shared" | "rslave"
            | "slave" | "nocopy" | "copy" => {}
            other => {
                return Err(ApiError::invalid(
                    field,
                    format!("invalid mode {other:?} in {s:?}"),
                ));
            }
        }
    }
    Ok(Mount {
        kind: if source.starts_with('/') {
            MountKind::Bind
        } else {
            MountKind::Volume
        },
        source: source.to_string(),
        target: target.to_string(),
        read_only,
        volume_nocopy: opts.split(',').any(|o| o == "nocopy"),
        ..Mount::default()
    })
}

/// The engine's request from the body; `as_sent` keeps the body to show it back.
pub fn create_in(b: CreateBody, as_sent: String) -> Result<ContainerCreate, ApiError> {
    let h = b.host_config.unwrap_or_default();
    if h.privileged {
        return Err(ApiError::invalid(
            "HostConfig.Privileged",
            "privileged containers are not supported by shoal",
        ));
    }
    if h.volumes_from.as_ref().is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::invalid(
            "HostConfig.VolumesFrom",
            "is not supported by shoal; use named volumes",
        ));
    }
    let image = b.image.unwrap_or_default();
    if image.is_empty() {
        return Err(ApiError::invalid(
            "Image",
            "no image given: an image is required",
        ));
    }
    let mut mounts = Vec::new();
    for (i, s) in h.binds.unwrap_or_default().iter().enumerate() {
        mounts.push(bind_in(&format!("HostConfig.Binds[{i}]"), s)?);
    }
    mounts.extend(mounts_in("HostConfig.Mounts", h.mounts)?);
    for (path, opts) in h.tmpfs.unwrap_or_default() {
        let _ = opts;
        mounts.push(Mount {
            kind: MountKind::Tmpfs,
            target: path,
            ..Mount::default()
        });
    }
    // `Volumes` not otherwise mounted are anonymous volumes, as Docker makes them.
    let mut anonymous: Vec<String> = b.volumes.unwrap_or_default().into_keys().collect();
    anonymous.sort();
    for target in anonymous {
        if !mounts.iter().any(|m| m.target == target) {
            mounts.push(Mount {
                kind: MountKind::Volume,
                target,
                ..Mount::default()
            });
        }
    }
    let mut exposed: Vec<String> = Vec::new();
    for k in b.exposed_ports.unwrap_or_default().into_keys() {
        let (p, proto) = port_key("ExposedPorts", &k)?;
        exposed.push(format!("{p}/{}", proto.as_str()));
    }
    let mut publish = Vec::new();
    let mut bindings: Vec<_> = h.port_bindings.unwrap_or_default().into_iter().collect();
    bindings.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, list) in bindings {
        let field = format!("HostConfig.PortBindings[{k:?}]");
        let (container_port, protocol) = port_key(&field, &k)?;
        let key = format!("{container_port}/{}", protocol.as_str());
        if !exposed.contains(&key) {
            exposed.push(key);
        }
        for pb in list.unwrap_or_default() {
            let host_ip = match pb.host_ip.as_deref() {
                None | Some("") | Some("0.0.0.0") => None,
                Some(ip) => Some(ip.parse().map_err(|_| {
                    ApiError::invalid(
                        &format!("{field}.HostIp"),
                        format!("invalid IPv4 address {ip:?}"),
                    )
                })?),
            };
            let host_port = match pb.host_port.as_deref() {
                None | Some("") => 0,
                Some(p) => p.parse::<u16>().map_err(|_| {
                    ApiError::invalid(
                        &format!("{field}.HostPort"),
                        format!("invalid port {p:?} (port ranges are not supported)"),
                    )
                })?,
            };
            publish.push(PortBinding {
                host_ip,
                host_port,
                container_port,
                protocol,
            });
        }
    }
    exposed.sort();
    let restart = match h.restart_policy {
        None => RestartPolicy::No,
        Some(r) => {
            let max = r.maximum_retry_count.unwrap_or(0);
            let max = u64::try_from(max).map_err(|_| {
                ApiError::invalid(
                    "HostConfig.RestartPolicy.MaximumRetryCount",
                    format!("must be 0 or more, got {max}"),
                )
            })?;
            RestartPolicy::from_docker(r.name.as_deref().unwrap_or(""), max)
                .map_err(crate::routes::exec::engine_err)?
        }
    };
    if h.auto_remove && restart != RestartPolicy::No {
        return Err(ApiError::invalid(
            "HostConfig.AutoRemove",
            "can't create 'AutoRemove' container with restart policy",
        ));
    }
    let mut network_mode = h.network_mode.unwrap_or_default();
    if b.network_disabled {
        network_mode = "none".into();
    }
    let mut endpoints = Vec::new();
    let configs = b
        .networking_config
        .and_then(|n| n.endpoints_config)
        .unwrap_or_default();
    let mut order: Vec<&String> = configs.keys().collect();
    // The network `NetworkMode` names first, as Docker connects it first.
    order.sort_by_key(|n| **n != network_mode);
    for n in order {
        endpoints.push(EndpointRequest {
            network: n.clone(),
            aliases: configs[n]
                .as_ref()
                .and_then(|e| e.aliases.clone())
                .unwrap_or_default(),
        });
    }
    let predefined = ["", "default", "bridge", "host", "none"];
    if !predefined.contains(&network_mode.as_str())
        && !endpoints.iter().any(|e| e.network == network_mode)
    {
        if network_mode.starts_with("container:") {
            return Err(ApiError::invalid(
                "HostConfig.NetworkMode",
                "joining another container's network (container:NAME) is not supported by shoal",
            ));
        }
        endpoints.insert(
            0,
            EndpointRequest {
                network: network_mode.clone(),
                aliases: Vec::new(),
            },
        );
    }
    let dns = DnsConfig {
        nameservers: h.dns.unwrap_or_default(),
        search: h.dns_search.unwrap_or_default(),
        options: h.dns_options.unwrap_or_default(),
    };
    let mut spec = shoal_types::service::ContainerSpec {
        image,
        labels: b.labels.unwrap_or_default().into_iter().collect(),
        command: b.entrypoint.map(StrOrList::into_vec).unwrap_or_default(),
        args: b.cmd.map(StrOrList::into_vec).unwrap_or_default(),
        hostname: b.hostname.unwrap_or_default(),
        env: b.env.unwrap_or_default(),
        dir: b.working_dir.unwrap_or_default(),
        user: b.user.unwrap_or_default(),
        groups: h.group_add.unwrap_or_default(),
        tty: b.tty,
        open_stdin: b.open_stdin,
        read_only: h.readonly_rootfs,
        stop_signal: b.stop_signal.unwrap_or_default(),
        stop_grace_period: match b.stop_timeout {
            None => None,
            Some(n) if n < 0 => None,
            Some(n) => Some(std::time::Duration::from_secs(n.unsigned_abs())),
        },
        init: h.init,
        mounts,
        healthcheck: health_in("Healthcheck", b.health_check)?,
        cap_add: h.cap_add.unwrap_or_default(),
        cap_drop: h.cap_drop.unwrap_or_default(),
        sysctls: h.sysctls.unwrap_or_default().into_iter().collect(),
        ulimits: ulimits_in("HostConfig.Ulimits", h.ulimits)?,
        dns_config: (dns != DnsConfig::default()).then_some(dns),
        ..Default::default()
    };
    if let Some(domain) = b.domainname.filter(|d| !d.is_empty())
        && !spec.hostname.is_empty()
    {
        spec.hostname = format!("{}.{domain}", spec.hostname);
    }
    // Docker's `name:ip` to the spec's `ip name`.
    for (i, e) in h.extra_hosts.unwrap_or_default().iter().enumerate() {
        let (name, ip) = e.rsplit_once(':').ok_or_else(|| {
            ApiError::invalid(
                &format!("HostConfig.ExtraHosts[{i}]"),
                format!("invalid extra host {e:?}: expected NAME:IP"),
            )
        })?;
        spec.hosts.push(format!("{ip} {name}"));
    }
    let mut resources = shoal_types::service::ResourceRequirements::default();
    resources.limits.memory_bytes = h.memory.unwrap_or(0).max(0);
    resources.limits.nano_cpus = h.nano_cpus.unwrap_or(0).max(0);
    resources.limits.pids = h.pids_limit.unwrap_or(0).max(0);
    Ok(ContainerCreate {
        spec,
        resources,
        stdin_once: b.stdin_once,
        restart,
        auto_remove: h.auto_remove,
        network_mode,
        endpoints,
        publish,
        publish_all: h.publish_all_ports,
        exposed_ports: exposed,
        as_sent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::parse_json;

    fn create(json: &str) -> Result<ContainerCreate, ApiError> {
        let b: CreateBody = parse_json(json.as_bytes())?;
        create_in(b, json.to_string())
    }

    #[test]
    fn compose_web_body_maps_to_the_model() {
        let c = create(
            r#"{"ExposedPorts":{"80/tcp":{}},"Tty":false,"OpenStdin":false,"StdinOnce":false,"AttachStdin":false,
            "AttachStdout":false,"AttachStderr":false,"Cmd":["httpd","-f","-p","80","-h","/www"],"Image":"probe/box",
            "Volumes":{"/www":{}},"NetworkDisabled":false,
            "HostConfig":{"NetworkMode":"probeproj_backend","VolumesFrom":[],"Binds":["probeproj_webdata:/www:rw"],
              "PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"18099"}]},"Links":[],"LogConfig":{"Type":"","Config":{}}},
            "NetworkingConfig":{"EndpointsConfig":{"probeproj_backend":{"Aliases":["web"],"IPAMConfig":{}}}},
            "Labels":{"com.docker.compose.project":"probeproj","com.docker.compose.oneoff":"False"}}"#,
        )
        .expect("compose body");
        assert_eq!(c.spec.image, "probe/box");
        assert_eq!(c.spec.args, vec!["httpd", "-f", "-p", "80", "-h", "/www"]);
        assert!(c.spec.command.is_empty());
        assert_eq!(
            c.spec.mounts.len(),
            1,
            "the bind covers the declared volume"
        );
        assert_eq!(c.spec.mounts[0].source, "probeproj_webdata");
        assert_eq!(c.spec.mounts[0].kind, MountKind::Volume);
        assert_eq!(
            c.publish,
            vec![PortBinding {
                host_ip: None,
                host_port: 18099,
                container_port: 80,
                protocol: Protocol::Tcp
            }]
        );
        assert_eq!(c.exposed_ports, vec!["80/tcp"]);
        assert_eq!(c.network_mode, "probeproj_backend");
        assert_eq!(
            c.endpoints,
            vec![EndpointRequest {
                network: "probeproj_backend".into(),
                aliases: vec!["web".into()]
            }]
        );
        assert_eq!(c.spec.labels["com.docker.compose.oneoff"], "False");
    }

    #[test]
    fn docker_run_body_maps_to_the_model() {
        let c = create(
            r#"{"AttachStdout":true,"AttachStderr":true,"Tty":true,"OpenStdin":true,"Cmd":["echo","hi"],"Image":"busybox",
            "Env":null,"Entrypoint":null,"Labels":{},"StopTimeout":3,
            "HostConfig":{"AutoRemove":true,"NetworkMode":"default","PortBindings":{},
              "RestartPolicy":{"Name":"no","MaximumRetryCount":0},"ConsoleSize":[0,0],"Memory":0,
              "Tmpfs":{"/scratch":""},"ExtraHosts":["db:10.0.0.2"]},
            "NetworkingConfig":{"EndpointsConfig":{"default":{}}}}"#,
        )
        .expect("CLI body");
        assert!(c.auto_remove && c.spec.tty && c.spec.open_stdin);
        assert_eq!(c.restart, RestartPolicy::No);
        assert_eq!(
            c.spec.stop_grace_period,
            Some(std::time::Duration::from_secs(3))
        );
        assert_eq!(c.spec.mounts[0].kind, MountKind::Tmpfs);
        assert_eq!(c.spec.hosts, vec!["10.0.0.2 db"]);
        assert_eq!(c.network_mode, "default");
    }

    #[test]
    fn bad_bodies_name_their_field() {
        let cases = [
            (r#"{"Cmd":["x"]}"#, "Image"),
            (
                r#"{"Image":"x","HostConfig":{"Privileged":true}}"#,
                "HostConfig.Privileged",
            ),
            (
                r#"{"Image":"x","HostConfig":{"RestartPolicy":{"Name":"sometimes"}}}"#,
                "HostConfig.RestartPolicy.Name",
            ),
            (
                r#"{"Image":"x","HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}"#,
                "HostConfig.AutoRemove",
            ),
            (
                r#"{"Image":"x","HostConfig":{"PortBindings":{"80/sctp":[]}}}"#,
                "PortBindings",
            ),
            (
                r#"{"Image":"x","HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"8000-8010"}]}}}"#,
                "HostPort",
            ),
            (
                r#"{"Image":"x","HostConfig":{"Binds":["a:b"]}}"#,
                "HostConfig.Binds[0]",
            ),
            (
                r#"{"Image":"x","HostConfig":{"NetworkMode":"container:web"}}"#,
                "NetworkMode",
            ),
            (r#"{"Image":"x","Cmd":5}"#, "Cmd"),
        ];
        for (body, field) in cases {
            let e = create(body).expect_err(body);
            assert!(e.message.contains(field), "{body}: {}", e.message);
        }
    }
}
