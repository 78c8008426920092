//! A service's `deploy` section (docker's `DeployConfig`), and the checks of values that
//! docker only meets at conversion or in the daemon (modes, restart policies, CPU counts,
//! enumerations): shoal makes them while it still knows where the value is written, so the error
//! points at it. Conversion checks them again for projects built by hand.

use crate::error::Diag;
use crate::error::{Location, index, join};
use crate::load::Ctx;
use crate::model::*;
use crate::service::labels;
use crate::syntax;
use crate::yaml::Node;

/// Records an error when `value` is set and not one of `allowed`.
pub(crate) fn one_of(
    d: &mut Diag<'_>,
    v: &Node,
    k: &str,
    value: &Option<String>,
    allowed: &[&str],
) {
    if let Some(val) = value
        && !val.is_empty()
        && !allowed.contains(&val.as_str())
    {
        let list = match allowed {
            [a, b] => format!("{a} or {b}"),
            [rest @ .., last] => format!("{}, or {last}", rest.join(", ")),
            [] => String::new(),
        };
        d.err(v.pos, k, format!("expected {list}, got {val:?}"));
    }
}

/// docker's legacy `restart:` values.
pub(crate) fn check_restart(d: &mut Diag<'_>, v: &Node, k: &str, r: &str) {
    match syntax::parse_restart(r) {
        Err(e) => d.err(v.pos, k, e),
        Ok((_, n)) if n < 0 => d.err(
            v.pos,
            k,
            "invalid restart policy: maximum retry count cannot be negative",
        ),
        Ok((name, _)) => {
            if !matches!(
                name.as_str(),
                "" | "no" | "always" | "unless-stopped" | "on-failure"
            ) {
                d.err(v.pos, k, format!(
                    "invalid restart policy: unknown policy '{name}' (must be one of 'no', 'always', 'on-failure', or 'unless-stopped')"
                ));
            }
        }
    }
}

fn cpus(d: &mut Diag<'_>, v: &Node, k: &str) -> Option<String> {
    let c = d.text(v, k)?;
    if let Err(e) = syntax::parse_cpus(&c) {
        d.err(v.pos, k, e);
    }
    Some(c)
}

pub(crate) fn deploy(cx: &mut Ctx<'_>, v: &Node, k: &str, at: Location) -> Deploy {
    let mut d = Deploy {
        at: cx.diag.loc(v.pos),
        ..Default::default()
    };
    if v.is_null() {
        d.at = at;
    }
    for e in cx.diag.mapping_or_null(v, k).unwrap_or_default() {
        let ek = join(k, &e.key);
        let val = &e.value;
        match e.key.as_str() {
            "mode" => {
                d.mode = cx.diag.string(val, &ek);
                let modes = ["replicated", "global", "replicated-job", "global-job"];
                one_of(&mut cx.diag, val, &ek, &d.mode, &modes);
            }
            "endpoint_mode" => {
                d.endpoint_mode = cx.diag.string(val, &ek);
                // docker lower-cases it.
                let lower = d.endpoint_mode.as_ref().map(|m| m.to_lowercase());
                one_of(&mut cx.diag, val, &ek, &lower, &["vip", "dnsrr"]);
            }
            "replicas" => d.replicas = cx.diag.uint(val, &ek),
            "labels" => d.labels = labels(cx, val, &ek),
            "update_config" => d.update_config = update_config(cx, val, &ek),
            "rollback_config" => d.rollback_config = update_config(cx, val, &ek),
            "resources" => d.resources = resources(cx, val, &ek),
            "restart_policy" => d.restart_policy = restart_policy(cx, val, &ek),
            "placement" => d.placement = placement(cx, val, &ek),
            _ => cx.diag.unknown(e, k),
        }
    }
    d
}

fn update_config(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Option<UpdateConfig> {
    let mut u = UpdateConfig::default();
    for e in cx.diag.mapping(v, k)? {
        let ek = join(k, &e.key);
        let d = &mut cx.diag;
        let val = &e.value;
        match e.key.as_str() {
            "parallelism" => u.parallelism = d.uint(val, &ek),
            "delay" => u.delay = d.duration(val, &ek),
            "failure_action" => {
                u.failure_action = d.string(val, &ek);
                one_of(
                    d,
                    val,
                    &ek,
                    &u.failure_action,
                    &["pause", "continue", "rollback"],
                );
            }
            "monitor" => u.monitor = d.duration(val, &ek),
            "max_failure_ratio" => u.max_failure_ratio = d.float(val, &ek),
            "order" => {
                u.order = d.string(val, &ek);
                if let Some(o) = &u.order
                    && o != "start-first"
                    && o != "stop-first"
                {
                    let msg = format!("expected start-first or stop-first, got {o:?}");
                    d.err(val.pos, &ek, msg);
                }
            }
            _ => d.unknown(e, k),
        }
    }
    Some(u)
}

fn resources(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Resources {
    let mut r = Resources::default();
    for e in cx.diag.mapping(v, k).unwrap_or_default() {
        let ek = join(k, &e.key);
        match e.key.as_str() {
            "limits" => {
                let mut l = Limits::default();
                for f in cx.diag.mapping(&e.value, &ek).unwrap_or_default() {
                    let fk = join(&ek, &f.key);
                    let d = &mut cx.diag;
                    match f.key.as_str() {
                        "cpus" => l.cpus = cpus(d, &f.value, &fk),
                        "memory" => l.memory = d.bytes(&f.value, &fk),
                        "pids" => l.pids = d.int(&f.value, &fk),
                        _ => d.unknown(f, &ek),
                    }
                }
                r.limits = Some(l);
            }
            "reservations" => {
                let mut res = Reservations::default();
                for f in cx.diag.mapping(&e.value, &ek).unwrap_or_default() {
                    let fk = join(&ek, &f.key);
                    match f.key.as_str() {
                        "cpus" => res.cpus = cpus(&mut cx.diag, &f.value, &fk),
                        "memory" => res.memory = cx.diag.bytes(&f.value, &fk),
                        "generic_resources" => res.generic_resources = generic(cx, &f.value, &fk),
                        _ => cx.diag.unknown(f, &ek),
                    }
                }
                r.reservations = Some(res);
            }
            _ => cx.diag.unknown(e, k),
        }
    }
    r
}

fn generic(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for (i, item) in cx.diag.seq(v, k).unwrap_or_default().iter().enumerate() {
        let ik = index(k, i);
        for e in cx.diag.mapping(item, &ik).unwrap_or_default() {
            let ek = join(&ik, &e.key);
            if e.key != "discrete_resource_spec" {
                cx.diag.unknown(e, &ik);
                continue;
            }
            let (mut kind, mut value) = (String::new(), 0);
            for f in cx.diag.mapping(&e.value, &ek).unwrap_or_default() {
                let fk = join(&ek, &f.key);
                match f.key.as_str() {
                    "kind" => kind = cx.diag.string(&f.value, &fk).unwrap_or_default(),
                    "value" => value = cx.diag.int(&f.value, &fk).unwrap_or(0),
                    _ => cx.diag.unknown(f, &ek),
                }
            }
            out.push((kind, value));
        }
    }
    out
}

fn restart_policy(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Option<RestartPolicy> {
    let mut r = RestartPolicy::default();
    for e in cx.diag.mapping(v, k)? {
        let ek = join(k, &e.key);
        let d = &mut cx.diag;
        match e.key.as_str() {
            "condition" => {
                r.condition = d.string(&e.value, &ek);
                one_of(
                    d,
                    &e.value,
                    &ek,
                    &r.condition,
                    &["none", "on-failure", "any"],
                );
            }
            "delay" => r.delay = d.duration(&e.value, &ek),
            "max_attempts" => r.max_attempts = d.uint(&e.value, &ek),
            "window" => r.window = d.duration(&e.value, &ek),
            _ => d.unknown(e, k),
        }
    }
    Some(r)
}

fn placement(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Placement {
    let mut p = Placement::default();
    for e in cx.diag.mapping(v, k).unwrap_or_default() {
        let ek = join(k, &e.key);
        match e.key.as_str() {
            "constraints" => {
                // Not unique in docker's schema: a plain list.
                for (i, item) in cx
                    .diag
                    .seq(&e.value, &ek)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    if let Some(s) = cx.diag.string(item, &index(&ek, i)) {
                        p.constraints.push(s);
                    }
                }
            }
            "preferences" => {
                for (i, item) in cx
                    .diag
                    .seq(&e.value, &ek)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    let ik = index(&ek, i);
                    for f in cx.diag.mapping(item, &ik).unwrap_or_default() {
                        if f.key == "spread" {
                            if let Some(s) = cx.diag.string(&f.value, &join(&ik, "spread")) {
                                p.preferences.push(s);
                            }
                        } else {
                            cx.diag.unknown(f, &ik);
                        }
                    }
                }
            }
            "max_replicas_per_node" => p.max_replicas_per_node = cx.diag.uint(&e.value, &ek),
            _ => cx.diag.unknown(e, k),
        }
    }
    p
}
