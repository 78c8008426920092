//! One service of one file, from its tree to [`Service`]: every key of docker's v3.13 schema (and
//! the Compose Specification's `depends_on` map), unknown keys refused, the keys Swarm does not
//! use recorded as ignored. Normalization is docker's loader's: `command` strings shell-split,
//! env files read and merged under `environment`, short syntaxes expanded, bind sources made
//! absolute against the working directory.

use std::collections::BTreeMap;

use shoal_types::stack::Condition;

use crate::decode::ListOrDict;
use crate::error::{Location, index, join};
use crate::load::{Ctx, IgnoredKind};
use crate::model::*;
use crate::syntax;
use crate::yaml::{Kind, Node};

/// docker's `UnsupportedProperties`: loaded, warned about, not used (but `restart`, which is).
pub(crate) const UNSUPPORTED: [&str; 16] = [
    "build",
    "cgroupns_mode",
    "cgroup_parent",
    "devices",
    "domainname",
    "external_links",
    "ipc",
    "links",
    "mac_address",
    "network_mode",
    "pid",
    "privileged",
    "restart",
    "security_opt",
    "shm_size",
    "userns_mode",
];

/// docker's `DeprecatedProperties`, with its explanations.
pub(crate) const DEPRECATED: [(&str, &str); 2] = [
    (
        "container_name",
        "Setting the container name is not supported.",
    ),
    (
        "expose",
        "Exposing ports is unnecessary - services on the same network can access each other's containers on any port.",
    ),
];

/// docker's `ForbiddenProperties`: a file using them is refused.
const FORBIDDEN: [(&str, &str); 8] = [
    ("extends", "Support for `extends` is not implemented yet."),
    (
        "volume_driver",
        "Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option and specify the driver there.",
    ),
    (
        "volumes_from",
        "To share a volume between services, define it using the top-level `volumes` option and reference it from each service that shares it using the service-level `volumes` option.",
    ),
    ("cpu_quota", "Set resource limits using deploy.resources"),
    ("cpu_shares", "Set resource limits using deploy.resources"),
    ("cpuset", "Set resource limits using deploy.resources"),
    ("mem_limit", "Set resource limits using deploy.resources"),
    (
        "memswap_limit",
        "Set resource limits using deploy.resources",
    ),
];

pub(crate) fn service(cx: &mut Ctx<'_>, name: &str, node: &Node, key_pos_loc: Location) -> Service {
    let path = join("services", name);
    let mut s = Service {
        name: name.to_string(),
        at: key_pos_loc.clone(),
        ..Default::default()
    };
    s.deploy.at = key_pos_loc;
    let Some(entries) = cx.diag.mapping(node, &path) else {
        return s;
    };
    let mut env_files: Vec<(String, Node)> = Vec::new();
    let mut environment: Vec<(String, Option<String>)> = Vec::new();
    for e in entries {
        let k = join(&path, &e.key);
        let v = &e.value;
        let d = &mut cx.diag;
        match e.key.as_str() {
            "image" => s.image = d.string(v, &k),
            "command" => s.command = command(cx, v, &k),
            "entrypoint" => s.entrypoint = command(cx, v, &k),
            "environment" => {
                if let Some(m) = d.mapping_of(v, &k, true) {
                    environment = m;
                }
            }
            "env_file" => {
                if let Some(files) = d.string_or_list(v, &k) {
                    s.env_file = files.clone();
                    env_files = files.into_iter().map(|f| (f, v.clone())).collect();
                }
            }
            "ports" => s.ports = crate::mounts::ports(cx, v, &k),
            "volumes" => s.volumes = crate::mounts::volumes(cx, v, &k),
            "networks" => s.networks = networks(cx, v, &k),
            "secrets" => s.secrets = file_refs(cx, v, &k),
            "configs" => s.configs = file_refs(cx, v, &k),
            "healthcheck" => s.healthcheck = healthcheck(cx, v, &k),
            "labels" => s.labels = labels(cx, v, &k),
            "user" => s.user = d.string(v, &k),
            "working_dir" => s.working_dir = d.string(v, &k),
            "hostname" => s.hostname = d.string(v, &k),
            "stop_signal" => s.stop_signal = d.string(v, &k),
            "isolation" => {
                s.isolation = d.string(v, &k);
                crate::deploy::one_of(d, v, &k, &s.isolation, &["default", "process", "hyperv"]);
            }
            "init" => s.init = d.boolean(v, &k),
            "read_only" => s.read_only = d.boolean(v, &k).unwrap_or(false),
            "tty" => s.tty = d.boolean(v, &k).unwrap_or(false),
            "stdin_open" => s.stdin_open = d.boolean(v, &k).unwrap_or(false),
            "cap_add" => s.cap_add = d.strings(v, &k).unwrap_or_default(),
            "cap_drop" => s.cap_drop = d.strings(v, &k).unwrap_or_default(),
            "sysctls" => s.sysctls = Some(labels(cx, v, &k)),
            "ulimits" => s.ulimits = ulimits(cx, v, &k),
            "stop_grace_period" => s.stop_grace_period = d.duration(v, &k),
            "dns" => s.dns = d.string_or_list(v, &k).unwrap_or_default(),
            "dns_search" => s.dns_search = d.string_or_list(v, &k).unwrap_or_default(),
            "extra_hosts" => s.extra_hosts = extra_hosts(cx, v, &k),
            "logging" => s.logging = logging(cx, v, &k),
            "oom_score_adj" => s.oom_score_adj = d.int(v, &k),
            "credential_spec" => s.credential_spec = credential_spec(cx, v, &k),
            "deploy" => s.deploy = crate::deploy::deploy(cx, v, &k, s.deploy.at.clone()),
            "depends_on" => s.depends_on = depends_on(cx, v, &k),
            "restart" => {
                s.restart = d.string(v, &k);
                if let Some(r) = &s.restart {
                    crate::deploy::check_restart(&mut cx.diag, v, &k, r);
                }
                cx.ignore(&k, e.key_pos, IgnoredKind::Unsupported);
            }
            "tmpfs" => {
                d.string_or_list(v, &k);
                let at = d.loc(e.key_pos);
                d.warn(format!(
                    "{at}: {k}: ignored (docker stack deploy does not use it; mount a volume of type tmpfs instead)"
                ));
            }
            key if UNSUPPORTED.contains(&key) => cx.ignore(&k, e.key_pos, IgnoredKind::Unsupported),
            key if DEPRECATED.iter().any(|(p, _)| *p == key) => {
                let why = DEPRECATED
                    .iter()
                    .find(|(p, _)| *p == key)
                    .map_or("", |(_, w)| w);
                cx.ignore(&k, e.key_pos, IgnoredKind::Deprecated(why.to_string()));
            }
            key if FORBIDDEN.iter().any(|(p, _)| *p == key) => {
                let why = FORBIDDEN
                    .iter()
                    .find(|(p, _)| *p == key)
                    .map_or("", |(_, w)| w);
                d.err(e.key_pos, &k, format!("unsupported option: {why}"));
            }
            key if key.starts_with("x-") => {}
            _ => d.unknown(e, &path),
        }
    }
    s.environment = resolve_environment(cx, env_files, environment);
    s
}

/// docker's `resolveEnvironment`: env files in order, then `environment`; an empty or missing
/// value is replaced by the variable's value in the environment when it is set there.
fn resolve_environment(
    cx: &mut Ctx<'_>,
    env_files: Vec<(String, Node)>,
    environment: Vec<(String, Option<String>)>,
) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    let mut from_files = Vec::new();
    for (file, node) in env_files {
        let path = syntax::abs_path(&cx.working_dir, &file);
        match cx.fs.read(std::path::Path::new(&path)) {
            Err(e) => cx.diag.err(node.pos, "", format!("env_file {path}: {e}")),
            Ok(bytes) => {
                let process = |k: &str| cx.process_env.get(k).cloned();
                match syntax::parse_env_file(&bytes, &process) {
                    Ok(lines) => {
                        from_files.extend(lines.into_iter().map(|l| match l.split_once('=') {
                            Some((k, v)) => (k.to_string(), Some(v.to_string())),
                            None => (l, None),
                        }))
                    }
                    Err(e) => cx
                        .diag
                        .err(node.pos, "", format!("invalid env file ({path}): {e}")),
                }
            }
        }
    }
    for (k, v) in from_files.into_iter().chain(environment) {
        let value = match v {
            Some(v) if !v.is_empty() => Some(v),
            v => (cx.lookup)(&k).or(v),
        };
        out.insert(k, value);
    }
    out
}

fn command(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Option<Vec<String>> {
    if let Kind::Scalar(_) = v.kind {
        let s = cx.diag.string(v, k)?;
        return match syntax::shell_split(&s) {
            Ok(words) => Some(words),
            Err(e) => {
                cx.diag.err(v.pos, k, e);
                None
            }
        };
    }
    let items = cx.diag.seq(v, k)?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        out.push(cx.diag.string(item, &index(k, i))?);
    }
    Some(out)
}

pub(crate) fn labels(cx: &mut Ctx<'_>, v: &Node, k: &str) -> BTreeMap<String, String> {
    cx.diag
        .mapping_of(v, k, false)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect()
}

/// docker's `HostsList`: `host:ip` or `host=ip` items (others dropped), or a mapping (sorted,
/// null values dropped); brackets around IPv6 addresses removed.
fn extra_hosts(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Vec<String> {
    let pairs: Vec<(String, String)> = match cx.diag.list_or_dict(v, k) {
        None => return Vec::new(),
        Some(ListOrDict::Map(m)) => {
            let mut items: Vec<String> = m
                .into_iter()
                .filter_map(|(h, ip)| ip.map(|ip| format!("{h}:{ip}")))
                .collect();
            items.sort();
            items
                .into_iter()
                .filter_map(|s| s.split_once(':').map(|(a, b)| (a.into(), b.into())))
                .collect()
        }
        Some(ListOrDict::List(items)) => items
            .into_iter()
            .filter_map(|s| {
                s.split_once('=')
                    .or_else(|| s.split_once(':'))
                    .map(|(a, b)| (a.to_string(), b.to_string()))
            })
            .collect(),
    };
    pairs
        .into_iter()
        .map(|(host, ip)| {
            let ip = match ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
                Some(inner) if ip.len() > 2 => inner.to_string(),
                _ => ip,
            };
            format!("{host}:{ip}")
        })
        .collect()
}

fn networks(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Option<BTreeMap<String, ServiceNetwork>> {
    let mut out = BTreeMap::new();
    match &v.kind {
        Kind::Seq(items) => {
            cx.diag.strings(v, k)?;
            for item in items {
                if let Some(s) = item.scalar() {
                    let at = cx.diag.loc(item.pos);
                    out.insert(
                        s.text.clone(),
                        ServiceNetwork {
                            at,
                            ..Default::default()
                        },
                    );
                }
            }
        }
        _ => {
            for e in cx.diag.mapping(v, k)? {
                let ek = join(k, &e.key);
                let mut n = ServiceNetwork {
                    at: cx.diag.loc(e.key_pos),
                    ..Default::default()
                };
                for f in cx.diag.mapping_or_null(&e.value, &ek).unwrap_or_default() {
                    let fk = join(&ek, &f.key);
                    let d = &mut cx.diag;
                    match f.key.as_str() {
                        "aliases" => n.aliases = d.strings(&f.value, &fk).unwrap_or_default(),
                        "driver_opts" => n.driver_opts = d.string_map(&f.value, &fk),
                        "ipv4_address" => n.ipv4_address = d.string(&f.value, &fk),
                        "ipv6_address" => n.ipv6_address = d.string(&f.value, &fk),
                        _ => d.unknown(f, &ek),
                    }
                }
                out.insert(e.key.clone(), n);
            }
        }
    }
    Some(out)
}

fn file_refs(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Vec<FileRef> {
    let Some(items) = cx.diag.seq(v, k) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ik = index(k, i);
        let mut r = FileRef {
            at: cx.diag.loc(item.pos),
            ..Default::default()
        };
        if let Kind::Map(entries) = &item.kind {
            for e in entries {
                let ek = join(&ik, &e.key);
                let d = &mut cx.diag;
                match e.key.as_str() {
                    "source" => r.source = d.string(&e.value, &ek).unwrap_or_default(),
                    "target" => r.target = d.string(&e.value, &ek),
                    "uid" => r.uid = d.string(&e.value, &ek),
                    "gid" => r.gid = d.string(&e.value, &ek),
                    "mode" => r.mode = d.uint(&e.value, &ek).and_then(|m| u32::try_from(m).ok()),
                    _ => d.unknown(e, &ik),
                }
            }
            if r.source.is_empty() {
                cx.diag.err(item.pos, &ik, "source is required");
                continue;
            }
        } else {
            let Some(s) = cx.diag.string(item, &ik) else {
                continue;
            };
            r.source = s;
        }
        out.push(r);
    }
    out
}

fn healthcheck(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Option<Healthcheck> {
    let mut h = Healthcheck::default();
    for e in cx.diag.mapping(v, k)? {
        let ek = join(k, &e.key);
        let val = &e.value;
        let d = &mut cx.diag;
        match e.key.as_str() {
            "test" => {
                h.test = if let Kind::Scalar(_) = val.kind {
                    d.string(val, &ek).map(|s| vec!["CMD-SHELL".to_string(), s])
                } else {
                    let items = d.seq(val, &ek).unwrap_or_default();
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, n)| d.string(n, &index(&ek, i)))
                        .collect()
                }
            }
            "interval" => h.interval = d.duration(val, &ek),
            "timeout" => h.timeout = d.duration(val, &ek),
            "start_period" => h.start_period = d.duration(val, &ek),
            "start_interval" => h.start_interval = d.duration(val, &ek),
            "retries" => h.retries = d.uint(val, &ek),
            "disable" => h.disable = d.boolean(val, &ek).unwrap_or(false),
            _ => d.unknown(e, k),
        }
    }
    if h.disable && h.test.as_ref().is_some_and(|t| !t.is_empty()) {
        cx.diag
            .err(v.pos, k, "test and disable can't be set at the same time");
    }
    Some(h)
}

fn ulimits(cx: &mut Ctx<'_>, v: &Node, k: &str) -> BTreeMap<String, Ulimit> {
    let mut out = BTreeMap::new();
    for e in cx.diag.mapping(v, k).unwrap_or_default() {
        let ek = join(k, &e.key);
        if let Kind::Map(fields) = &e.value.kind {
            let (mut soft, mut hard) = (None, None);
            for f in fields {
                let fk = join(&ek, &f.key);
                match f.key.as_str() {
                    "soft" => soft = cx.diag.int(&f.value, &fk),
                    "hard" => hard = cx.diag.int(&f.value, &fk),
                    _ => cx.diag.unknown(f, &ek),
                }
            }
            match (soft, hard) {
                (Some(soft), Some(hard)) => {
                    out.insert(e.key.clone(), Ulimit::SoftHard { soft, hard });
                }
                _ => cx
                    .diag
                    .err(e.value.pos, &ek, "both soft and hard are required"),
            }
        } else if let Some(n) = cx.diag.int(&e.value, &ek) {
            out.insert(e.key.clone(), Ulimit::Single(n));
        }
    }
    out
}

fn logging(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Option<Logging> {
    let mut l = Logging::default();
    for e in cx.diag.mapping(v, k)? {
        let ek = join(k, &e.key);
        match e.key.as_str() {
            "driver" => l.driver = cx.diag.string(&e.value, &ek),
            "options" => l.options = cx.diag.string_map(&e.value, &ek),
            _ => cx.diag.unknown(e, k),
        }
    }
    Some(l)
}

fn credential_spec(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Option<CredentialSpec> {
    let mut c = CredentialSpec::default();
    for e in cx.diag.mapping(v, k)? {
        let ek = join(k, &e.key);
        let d = &mut cx.diag;
        match e.key.as_str() {
            "config" => c.config = d.string(&e.value, &ek),
            "file" => c.file = d.string(&e.value, &ek),
            "registry" => c.registry = d.string(&e.value, &ek),
            _ => d.unknown(e, k),
        }
    }
    Some(c)
}

/// `depends_on`: a list of services (started), or the Compose Specification's mapping of
/// service to `{condition, restart, required}`.
fn depends_on(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Vec<DependsOn> {
    let mut out = Vec::new();
    if let Kind::Seq(items) = &v.kind {
        if cx.diag.strings(v, k).is_some() {
            for item in items {
                if let Some(s) = item.scalar() {
                    out.push(DependsOn {
                        service: s.text.clone(),
                        condition: Condition::Started,
                        restart: false,
                        required: true,
                        at: cx.diag.loc(item.pos),
                    });
                }
            }
        }
        return out;
    }
    for e in cx.diag.mapping(v, k).unwrap_or_default() {
        let ek = join(k, &e.key);
        let mut dep = DependsOn {
            service: e.key.clone(),
            condition: Condition::Started,
            restart: false,
            required: true,
            at: cx.diag.loc(e.key_pos),
        };
        for f in cx.diag.mapping_or_null(&e.value, &ek).unwrap_or_default() {
            let fk = join(&ek, &f.key);
            match f.key.as_str() {
                "condition" => {
                    if let Some(c) = cx.diag.string(&f.value, &fk) {
                        match Condition::parse(&c) {
                            Some(c) => dep.condition = c,
                            None => cx.diag.err(
                                f.value.pos,
                                &fk,
                                format!(
                                    "unknown condition {c:?} (expected service_started, service_healthy or service_completed_successfully)"
                                ),
                            ),
                        }
                    }
                }
                "restart" => dep.restart = cx.diag.boolean(&f.value, &fk).unwrap_or(false),
                "required" => dep.required = cx.diag.boolean(&f.value, &fk).unwrap_or(true),
                _ => cx.diag.unknown(f, &ek),
            }
        }
        out.push(dep);
    }
    out
}
