//! The top-level `networks`, `volumes`, `secrets` and `configs` of one file, with docker's
//! loader rules: `external: {name: x}` is the deprecated spelling of `external: true` +
//! `name: x` (a conflict when both are given), an external object takes its key as its name,
//! an external volume takes no driver, options or labels, and a secret's or config's `file` is
//! made absolute against the working directory.

use std::collections::BTreeMap;

use crate::error::join;
use crate::load::Ctx;
use crate::model::{FileObject, Ipam, IpamPool, Network, Volume};
use crate::service::labels;
use crate::yaml::{Entry, Kind, Node};

/// `external: true|false` or `external: {name: x}`: (external, deprecated name).
fn external(cx: &mut Ctx<'_>, v: &Node, k: &str) -> (bool, Option<String>) {
    if let Kind::Map(entries) = &v.kind {
        let mut name = None;
        for e in entries {
            if e.key == "name" {
                name = cx.diag.string(&e.value, &join(k, "name"));
            } else {
                cx.diag.unknown(e, k);
            }
        }
        return (true, name);
    }
    (cx.diag.boolean(v, k).unwrap_or(false), None)
}

/// Applies `external.name`, warning from `since` on as docker does.
fn external_name(
    cx: &mut Ctx<'_>,
    kind: &str,
    key: &str,
    e: &Entry,
    ext_name: Option<String>,
    name: &mut Option<String>,
    since: &str,
) {
    match ext_name {
        Some(ext) => {
            if name.is_some() {
                cx.diag.err(
                    e.key_pos,
                    &join(&format!("{kind}s"), key),
                    format!("{kind}.external.name and {kind}.name conflict; only use {kind}.name"),
                );
            }
            if version_at_least(cx.version.as_deref().unwrap_or("3.13"), since) {
                cx.diag.warn(format!(
                    "{kind} {key}: {kind}.external.name is deprecated in favor of {kind}.name"
                ));
            }
            *name = Some(ext);
        }
        None => {
            if name.is_none() {
                *name = Some(key.to_string());
            }
        }
    }
}

/// docker's `versions.GreaterThanOrEqualTo` on dotted numbers.
pub(crate) fn version_at_least(v: &str, min: &str) -> bool {
    let parts = |s: &str| -> Vec<u64> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (a, b) = (parts(v), parts(min));
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x > y;
        }
    }
    true
}

pub(crate) fn networks(cx: &mut Ctx<'_>, v: &Node) -> BTreeMap<String, Network> {
    let mut out = BTreeMap::new();
    for e in cx.diag.mapping_or_null(v, "networks").unwrap_or_default() {
        let k = join("networks", &e.key);
        let mut n = Network {
            at: cx.diag.loc(e.key_pos),
            ..Default::default()
        };
        let mut ext_name = None;
        for f in cx.diag.mapping_or_null(&e.value, &k).unwrap_or_default() {
            let fk = join(&k, &f.key);
            let val = &f.value;
            match f.key.as_str() {
                "name" => n.name = cx.diag.string(val, &fk),
                "driver" => n.driver = cx.diag.string(val, &fk),
                "driver_opts" => n.driver_opts = cx.diag.string_map(val, &fk),
                "ipam" => n.ipam = ipam(cx, val, &fk),
                "external" => (n.external, ext_name) = external(cx, val, &fk),
                "internal" => n.internal = cx.diag.boolean(val, &fk).unwrap_or(false),
                "attachable" => n.attachable = cx.diag.boolean(val, &fk).unwrap_or(false),
                "labels" => n.labels = labels(cx, val, &fk),
                key if key.starts_with("x-") => {}
                _ => cx.diag.unknown(f, &k),
            }
        }
        if n.external {
            external_name(cx, "network", &e.key, e, ext_name, &mut n.name, "3.5");
        }
        out.insert(e.key.clone(), n);
    }
    out
}

fn ipam(cx: &mut Ctx<'_>, v: &Node, k: &str) -> Option<Ipam> {
    let mut ipam = Ipam::default();
    for e in cx.diag.mapping(v, k)? {
        let ek = join(k, &e.key);
        match e.key.as_str() {
            "driver" => ipam.driver = cx.diag.string(&e.value, &ek),
            "config" => {
                let items = cx.diag.seq(&e.value, &ek).unwrap_or_default();
                for (i, item) in items.iter().enumerate() {
                    let ik = crate::error::index(&ek, i);
                    let mut pool = IpamPool::default();
                    for f in cx.diag.mapping(item, &ik).unwrap_or_default() {
                        let fk = join(&ik, &f.key);
                        let d = &mut cx.diag;
                        match f.key.as_str() {
                            "subnet" => pool.subnet = d.string(&f.value, &fk),
                            "gateway" => pool.gateway = d.string(&f.value, &fk),
                            "ip_range" => pool.ip_range = d.string(&f.value, &fk),
                            "aux_addresses" => {
                                pool.aux_addresses = d.string_map(&f.value, &fk).unwrap_or_default()
                            }
                            _ => d.unknown(f, &ik),
                        }
                    }
                    ipam.config.push(pool);
                }
            }
            _ => cx.diag.unknown(e, k),
        }
    }
    Some(ipam)
}

pub(crate) fn volumes(cx: &mut Ctx<'_>, v: &Node) -> BTreeMap<String, Volume> {
    let mut out = BTreeMap::new();
    for e in cx.diag.mapping_or_null(v, "volumes").unwrap_or_default() {
        let k = join("volumes", &e.key);
        let mut vol = Volume {
            at: cx.diag.loc(e.key_pos),
            ..Default::default()
        };
        let mut ext_name = None;
        for f in cx.diag.mapping_or_null(&e.value, &k).unwrap_or_default() {
            let fk = join(&k, &f.key);
            let val = &f.value;
            match f.key.as_str() {
                "name" => vol.name = cx.diag.string(val, &fk),
                "driver" => vol.driver = cx.diag.string(val, &fk),
                "driver_opts" => vol.driver_opts = cx.diag.string_map(val, &fk),
                "external" => (vol.external, ext_name) = external(cx, val, &fk),
                "labels" => vol.labels = labels(cx, val, &fk),
                // docker's cluster (CSI) volume spec: Swarm-only, not supported by shoal.
                key if key.starts_with("x-") => {}
                _ => cx.diag.unknown(f, &k),
            }
        }
        if vol.external {
            let conflict = if vol.driver.is_some() {
                Some("driver")
            } else if vol.driver_opts.as_ref().is_some_and(|o| !o.is_empty()) {
                Some("driver_opts")
            } else if !vol.labels.is_empty() {
                Some("labels")
            } else {
                None
            };
            if let Some(what) = conflict {
                cx.diag.err(
                    e.key_pos,
                    &k,
                    format!(
                        "conflicting parameters \"external\" and {what:?} specified for volume {:?}",
                        e.key
                    ),
                );
            }
            external_name(cx, "volume", &e.key, e, ext_name, &mut vol.name, "3.4");
        }
        out.insert(e.key.clone(), vol);
    }
    out
}

/// `secrets` (`kind` = "secret") or `configs` ("config").
pub(crate) fn file_objects(cx: &mut Ctx<'_>, v: &Node, kind: &str) -> BTreeMap<String, FileObject> {
    let section = format!("{kind}s");
    let mut out = BTreeMap::new();
    for e in cx.diag.mapping_or_null(v, &section).unwrap_or_default() {
        let k = join(&section, &e.key);
        let mut o = FileObject {
            at: cx.diag.loc(e.key_pos),
            ..Default::default()
        };
        let mut ext_name = None;
        for f in cx.diag.mapping(&e.value, &k).unwrap_or_default() {
            let fk = join(&k, &f.key);
            let val = &f.value;
            match f.key.as_str() {
                "name" => o.name = cx.diag.string(val, &fk),
                "file" => o.file = cx.diag.string(val, &fk),
                "environment" => o.environment = cx.diag.string(val, &fk),
                "external" => (o.external, ext_name) = external(cx, val, &fk),
                "labels" => o.labels = labels(cx, val, &fk),
                "driver" if kind == "secret" => o.driver = cx.diag.string(val, &fk),
                "driver_opts" if kind == "secret" => o.driver_opts = cx.diag.string_map(val, &fk),
                "template_driver" => o.template_driver = cx.diag.string(val, &fk),
                key if key.starts_with("x-") => {}
                _ => cx.diag.unknown(f, &k),
            }
        }
        if o.external {
            external_name(cx, kind, &e.key, e, ext_name, &mut o.name, "3.5");
        } else if o.driver.is_some() {
            if o.file.is_some() {
                cx.diag.err(
                    e.key_pos,
                    &k,
                    format!("{kind}.driver and {kind}.file conflict; only use {kind}.driver"),
                );
            }
        } else {
            let sources = [o.file.is_some(), o.environment.is_some()];
            if sources.iter().filter(|s| **s).count() != 1 {
                cx.diag.err(
                    e.key_pos,
                    &k,
                    "exactly one of file, environment, external or driver must be set",
                );
            }
            o.file = o
                .file
                .take()
                .map(|f| crate::syntax::abs_path(&cx.working_dir, &f));
        }
        out.insert(e.key.clone(), o);
    }
    out
}
