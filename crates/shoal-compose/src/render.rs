//! [`render`]: a project as YAML, what `docker stack config` prints — the merged, interpolated
//! configuration, with docker's normalizations visible (commands split, ports and volumes in
//! their long form, env files already merged into `environment`, durations in Go's notation,
//! sizes in bytes). The top level comes in docker's order (version, services, networks, volumes, secrets, configs), keys below are sorted, so the output is stable. The emitter is
//! a small one of our own: block style, and strings quoted whenever a YAML reader could take
//! them for something else, so the output loads back to the same project.

use std::collections::BTreeMap;

use crate::model::*;
use crate::syntax::format_duration;
use crate::yaml::{Resolved, resolve_plain};

enum V {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Seq(Vec<V>),
    Map(BTreeMap<String, V>),
}

#[derive(Default)]
struct M(BTreeMap<String, V>);

impl M {
    fn put(&mut self, k: &str, v: V) {
        self.0.insert(k.to_string(), v);
    }
    fn str(&mut self, k: &str, v: &Option<String>) {
        if let Some(v) = v {
            self.put(k, V::Str(v.clone()));
        }
    }
    fn strs(&mut self, k: &str, v: &[String]) {
        if !v.is_empty() {
            self.put(k, V::Seq(v.iter().map(|s| V::Str(s.clone())).collect()));
        }
    }
    fn map(&mut self, k: &str, v: &BTreeMap<String, String>) {
        if !v.is_empty() {
            self.put(k, smap(v));
        }
    }
    fn dur(&mut self, k: &str, v: Option<i64>) {
        if let Some(d) = v {
            self.put(k, V::Str(format_duration(d)));
        }
    }
    fn int(&mut self, k: &str, v: Option<i64>) {
        if let Some(i) = v {
            self.put(k, V::Int(i));
        }
    }
    fn uint(&mut self, k: &str, v: Option<u64>) {
        if let Some(i) = v {
            self.put(k, V::Int(i64::try_from(i).unwrap_or(i64::MAX)));
        }
    }
    fn flag(&mut self, k: &str, v: bool) {
        if v {
            self.put(k, V::Bool(true));
        }
    }
    fn sub(&mut self, k: &str, m: M) {
        self.put(k, V::Map(m.0));
    }
}

fn smap(v: &BTreeMap<String, String>) -> V {
    V::Map(
        v.iter()
            .map(|(k, v)| (k.clone(), V::Str(v.clone())))
            .collect(),
    )
}

/// The project as YAML (`stack config`).
pub fn render(project: &Project) -> String {
    let mut top = M::default();
    top.put(
        "version",
        V::Str(project.version.clone().unwrap_or_else(|| "3.13".into())),
    );
    let services = project
        .services
        .iter()
        .map(|(n, s)| (n.clone(), V::Map(service(s).0)));
    top.put("services", V::Map(services.collect()));
    if !project.networks.is_empty() {
        let nets = project
            .networks
            .iter()
            .map(|(n, x)| (n.clone(), V::Map(network(x).0)));
        top.put("networks", V::Map(nets.collect()));
    }
    if !project.volumes.is_empty() {
        let vols = project.volumes.iter().map(|(n, v)| {
            let mut m = M::default();
            m.str("name", &v.name);
            m.str("driver", &v.driver);
            if let Some(o) = &v.driver_opts {
                m.put("driver_opts", smap(o));
            }
            m.flag("external", v.external);
            m.map("labels", &v.labels);
            (n.clone(), V::Map(m.0))
        });
        top.put("volumes", V::Map(vols.collect()));
    }
    for (key, objs) in [("secrets", &project.secrets), ("configs", &project.configs)] {
        if objs.is_empty() {
            continue;
        }
        let items = objs.iter().map(|(n, o)| {
            let mut m = M::default();
            m.str("name", &o.name);
            m.str("file", &o.file);
            m.str("environment", &o.environment);
            m.flag("external", o.external);
            m.map("labels", &o.labels);
            m.str("driver", &o.driver);
            if let Some(d) = &o.driver_opts {
                m.put("driver_opts", smap(d));
            }
            m.str("template_driver", &o.template_driver);
            (n.clone(), V::Map(m.0))
        });
        top.put(key, V::Map(items.collect()));
    }
    // docker's order at the top (its struct's field order); sorted keys below.
    let mut out = String::new();
    for key in [
        "version", "services", "networks", "volumes", "secrets", "configs",
    ] {
        if let Some(v) = top.0.remove(key) {
            emit(&V::Map(BTreeMap::from([(key.to_string(), v)])), 0, &mut out);
        }
    }
    out
}

fn network(n: &Network) -> M {
    let mut m = M::default();
    m.str("name", &n.name);
    m.str("driver", &n.driver);
    if let Some(o) = &n.driver_opts {
        m.put("driver_opts", smap(o));
    }
    if let Some(ipam) = &n.ipam {
        let mut i = M::default();
        i.str("driver", &ipam.driver);
        if !ipam.config.is_empty() {
            let pools = ipam.config.iter().map(|p| {
                let mut pm = M::default();
                pm.str("subnet", &p.subnet);
                pm.str("gateway", &p.gateway);
                pm.str("ip_range", &p.ip_range);
                pm.map("aux_addresses", &p.aux_addresses);
                V::Map(pm.0)
            });
            i.put("config", V::Seq(pools.collect()));
        }
        m.sub("ipam", i);
    }
    m.flag("external", n.external);
    m.flag("internal", n.internal);
    m.flag("attachable", n.attachable);
    m.map("labels", &n.labels);
    m
}

fn service(s: &Service) -> M {
    let mut m = M::default();
    m.str("image", &s.image);
    if let Some(c) = &s.command {
        m.put(
            "command",
            V::Seq(c.iter().map(|w| V::Str(w.clone())).collect()),
        );
    }
    if let Some(c) = &s.entrypoint {
        m.put(
            "entrypoint",
            V::Seq(c.iter().map(|w| V::Str(w.clone())).collect()),
        );
    }
    if !s.environment.is_empty() {
        let env = s
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map_or(V::Null, |v| V::Str(v.clone()))));
        m.put("environment", V::Map(env.collect()));
    }
    m.strs("env_file", &s.env_file);
    if !s.ports.is_empty() {
        let ports = s.ports.iter().map(|p| {
            let mut pm = M::default();
            pm.str("mode", &p.mode);
            pm.put("target", V::Int(i64::from(p.target)));
            if p.published != 0 {
                pm.put("published", V::Int(i64::from(p.published)));
            }
            pm.str("protocol", &p.protocol);
            V::Map(pm.0)
        });
        m.put("ports", V::Seq(ports.collect()));
    }
    if !s.volumes.is_empty() {
        m.put("volumes", V::Seq(s.volumes.iter().map(volume).collect()));
    }
    if let Some(nets) = &s.networks {
        let nets = nets.iter().map(|(k, n)| {
            let mut nm = M::default();
            nm.strs("aliases", &n.aliases);
            if let Some(o) = &n.driver_opts {
                nm.put("driver_opts", smap(o));
            }
            nm.str("ipv4_address", &n.ipv4_address);
            nm.str("ipv6_address", &n.ipv6_address);
            (k.clone(), V::Map(nm.0))
        });
        m.put("networks", V::Map(nets.collect()));
    }
    for (key, refs) in [("secrets", &s.secrets), ("configs", &s.configs)] {
        if refs.is_empty() {
            continue;
        }
        let items = refs.iter().map(|r| {
            let mut rm = M::default();
            rm.put("source", V::Str(r.source.clone()));
            rm.str("target", &r.target);
            rm.str("uid", &r.uid);
            rm.str("gid", &r.gid);
            if let Some(mode) = r.mode {
                rm.put("mode", V::Int(i64::from(mode)));
            }
            V::Map(rm.0)
        });
        m.put(key, V::Seq(items.collect()));
    }
    if let Some(h) = &s.healthcheck {
        let mut hm = M::default();
        if let Some(t) = &h.test {
            hm.strs("test", t);
        }
        hm.dur("interval", h.interval);
        hm.dur("timeout", h.timeout);
        hm.dur("start_period", h.start_period);
        hm.dur("start_interval", h.start_interval);
        hm.uint("retries", h.retries);
        hm.flag("disable", h.disable);
        m.sub("healthcheck", hm);
    }
    m.map("labels", &s.labels);
    m.str("user", &s.user);
    m.str("working_dir", &s.working_dir);
    m.str("hostname", &s.hostname);
    if let Some(i) = s.init {
        m.put("init", V::Bool(i));
    }
    m.flag("read_only", s.read_only);
    m.flag("tty", s.tty);
    m.flag("stdin_open", s.stdin_open);
    m.strs("cap_add", &s.cap_add);
    m.strs("cap_drop", &s.cap_drop);
    if let Some(sysctls) = &s.sysctls {
        m.map("sysctls", sysctls);
    }
    if !s.ulimits.is_empty() {
        let u = s.ulimits.iter().map(|(k, u)| {
            let v = match *u {
                Ulimit::Single(n) => V::Int(n),
                Ulimit::SoftHard { soft, hard } => V::Map(BTreeMap::from([
                    ("soft".into(), V::Int(soft)),
                    ("hard".into(), V::Int(hard)),
                ])),
            };
            (k.clone(), v)
        });
        m.put("ulimits", V::Map(u.collect()));
    }
    m.str("stop_signal", &s.stop_signal);
    m.dur("stop_grace_period", s.stop_grace_period);
    m.strs("dns", &s.dns);
    m.strs("dns_search", &s.dns_search);
    m.strs("extra_hosts", &s.extra_hosts);
    if let Some(l) = &s.logging {
        let mut lm = M::default();
        lm.str("driver", &l.driver);
        if let Some(o) = &l.options {
            lm.put("options", smap(o));
        }
        m.sub("logging", lm);
    }
    m.str("isolation", &s.isolation);
    m.int("oom_score_adj", s.oom_score_adj);
    if let Some(c) = &s.credential_spec {
        let mut cm = M::default();
        cm.str("config", &c.config);
        cm.str("file", &c.file);
        cm.str("registry", &c.registry);
        m.sub("credential_spec", cm);
    }
    m.str("restart", &s.restart);
    let d = deploy(&s.deploy);
    if !d.0.is_empty() {
        m.sub("deploy", d);
    }
    if !s.depends_on.is_empty() {
        let deps = s.depends_on.iter().map(|d| {
            let mut dm = M::default();
            dm.put("condition", V::Str(d.condition.as_str().into()));
            dm.flag("restart", d.restart);
            if !d.required {
                dm.put("required", V::Bool(false));
            }
            (d.service.clone(), V::Map(dm.0))
        });
        m.put("depends_on", V::Map(deps.collect()));
    }
    m
}

fn volume(v: &ServiceVolume) -> V {
    let mut m = M::default();
    m.put("type", V::Str(v.kind.clone()));
    if !v.source.is_empty() {
        m.put("source", V::Str(v.source.clone()));
    }
    m.put("target", V::Str(v.target.clone()));
    m.flag("read_only", v.read_only);
    m.str("consistency", &v.consistency);
    if v.bind_options || v.propagation.is_some() {
        let mut b = M::default();
        b.str("propagation", &v.propagation);
        m.sub("bind", b);
    }
    if v.volume_options || v.nocopy || v.subpath.is_some() {
        let mut b = M::default();
        b.flag("nocopy", v.nocopy);
        b.str("subpath", &v.subpath);
        m.sub("volume", b);
    }
    if v.tmpfs_size.is_some() || v.tmpfs_mode.is_some() {
        let mut t = M::default();
        t.int("size", v.tmpfs_size.filter(|s| *s != 0));
        t.uint("mode", v.tmpfs_mode.map(u64::from));
        m.sub("tmpfs", t);
    }
    V::Map(m.0)
}

fn deploy(d: &Deploy) -> M {
    let mut m = M::default();
    m.str("mode", &d.mode);
    m.uint("replicas", d.replicas);
    m.map("labels", &d.labels);
    for (key, u) in [
        ("update_config", &d.update_config),
        ("rollback_config", &d.rollback_config),
    ] {
        if let Some(u) = u {
            let mut um = M::default();
            um.uint("parallelism", u.parallelism);
            um.dur("delay", u.delay);
            um.str("failure_action", &u.failure_action);
            um.dur("monitor", u.monitor);
            if let Some(r) = u.max_failure_ratio {
                um.put("max_failure_ratio", V::Float(r));
            }
            um.str("order", &u.order);
            m.sub(key, um);
        }
    }
    let mut res = M::default();
    if let Some(l) = &d.resources.limits {
        let mut lm = M::default();
        lm.str("cpus", &l.cpus);
        lm.int("memory", l.memory);
        lm.int("pids", l.pids);
        res.sub("limits", lm);
    }
    if let Some(r) = &d.resources.reservations {
        let mut rm = M::default();
        rm.str("cpus", &r.cpus);
        rm.int("memory", r.memory);
        if !r.generic_resources.is_empty() {
            let g = r.generic_resources.iter().map(|(kind, value)| {
                let spec = BTreeMap::from([
                    ("kind".to_string(), V::Str(kind.clone())),
                    ("value".to_string(), V::Int(*value)),
                ]);
                V::Map(BTreeMap::from([(
                    "discrete_resource_spec".to_string(),
                    V::Map(spec),
                )]))
            });
            rm.put("generic_resources", V::Seq(g.collect()));
        }
        res.sub("reservations", rm);
    }
    if !res.0.is_empty() {
        m.sub("resources", res);
    }
    if let Some(r) = &d.restart_policy {
        let mut rm = M::default();
        rm.str("condition", &r.condition);
        rm.dur("delay", r.delay);
        rm.uint("max_attempts", r.max_attempts);
        rm.dur("window", r.window);
        m.sub("restart_policy", rm);
    }
    let p = &d.placement;
    let mut pm = M::default();
    pm.strs("constraints", &p.constraints);
    if !p.preferences.is_empty() {
        let prefs = p
            .preferences
            .iter()
            .map(|s| V::Map(BTreeMap::from([("spread".to_string(), V::Str(s.clone()))])));
        pm.put("preferences", V::Seq(prefs.collect()));
    }
    pm.uint("max_replicas_per_node", p.max_replicas_per_node);
    if !pm.0.is_empty() {
        m.sub("placement", pm);
    }
    m.str("endpoint_mode", &d.endpoint_mode);
    m
}

fn emit(v: &V, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        V::Map(m) => {
            for (k, v) in m {
                out.push_str(&pad);
                out.push_str(&quote(k));
                out.push(':');
                inline_or_block(v, indent + 2, out);
            }
        }
        V::Seq(items) => {
            for item in items {
                out.push_str(&pad);
                out.push('-');
                match item {
                    // A mapping in a list: its first key on the dash's line.
                    V::Map(m) if !m.is_empty() => {
                        let mut nested = String::new();
                        emit(item, indent + 2, &mut nested);
                        out.push(' ');
                        out.push_str(nested.trim_start());
                    }
                    _ => inline_or_block(item, indent + 2, out),
                }
            }
        }
        scalar => {
            out.push_str(&pad);
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

fn inline_or_block(v: &V, indent: usize, out: &mut String) {
    match v {
        V::Map(m) if m.is_empty() => out.push_str(" {}\n"),
        V::Seq(s) if s.is_empty() => out.push_str(" []\n"),
        V::Map(_) | V::Seq(_) => {
            out.push('\n');
            emit(v, indent, out);
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

fn scalar_text(v: &V) -> String {
    match v {
        V::Str(s) => quote(s),
        V::Int(i) => i.to_string(),
        V::Float(f) => {
            let s = crate::yaml::go_float(*f);
            if s.contains(['.', 'e', 'I', 'N']) {
                s
            } else {
                format!("{s}.0")
            }
        }
        V::Bool(b) => b.to_string(),
        V::Null => "null".into(),
        V::Seq(_) | V::Map(_) => String::new(),
    }
}

/// `s` plain when a reader takes it back as the same string, double-quoted otherwise.
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && matches!(resolve_plain(s), Resolved::Str(_))
        && !s.starts_with([
            '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%',
            '@', '`', ' ', '\t',
        ])
        && !s.ends_with([' ', '\t', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.chars().any(|c| c.is_control() || c == '\u{feff}')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "<<"
        );
    if plain {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || c == '\u{feff}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
