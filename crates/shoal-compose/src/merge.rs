//! Merging the files of one deploy, in order, the way docker's loader does (`merge.go`: `mergo`
//! with override and appended slices, plus its special cases):
//!
//! - a service in both files is merged field by field: a value the later file sets wins, but an
//!   empty or false one does not override (`tty: false` cannot undo `tty: true`, as in docker);
//! - maps (environment, labels, sysctls, deploy labels, ulimits) are merged key by key;
//! - plain lists (cap_add, dns, extra_hosts, env_file, constraints, and even a healthcheck
//!   `test`, which docker appends too) are concatenated;
//! - `command`/`entrypoint` are replaced; `logging` options merge when the driver is the same;
//! - ports are keyed by published port, volumes by target, secrets and configs by source: the
//!   later entry wins and the result is sorted by that key. As in docker this applies to the
//!   earlier file's list whenever the service is in both files, so two ports published on 0
//!   collapse into one there;
//! - top-level networks, volumes, secrets and configs are replaced whole.

use std::collections::BTreeMap;

use crate::model::*;

pub(crate) fn merge(base: &mut Project, over: Project) {
    for (name, svc) in over.services {
        match base.services.get_mut(&name) {
            Some(b) => merge_service(b, svc),
            None => {
                base.services.insert(name, svc);
            }
        }
    }
    base.networks.extend(over.networks);
    base.volumes.extend(over.volumes);
    base.secrets.extend(over.secrets);
    base.configs.extend(over.configs);
}

fn string(dst: &mut Option<String>, src: Option<String>) {
    if let Some(s) = src
        && !s.is_empty()
    {
        *dst = Some(s);
    }
}

fn set<T>(dst: &mut Option<T>, src: Option<T>) {
    if src.is_some() {
        *dst = src;
    }
}

fn nonzero(dst: &mut Option<i64>, src: Option<i64>) {
    if let Some(v) = src
        && (v != 0 || dst.is_none())
    {
        *dst = Some(v);
    }
}

fn keyed<T, K: Ord>(dst: &mut Vec<T>, src: Vec<T>, key: impl Fn(&T) -> K) {
    if dst.is_empty() {
        *dst = src;
        return;
    }
    let mut m: BTreeMap<K, T> = BTreeMap::new();
    for item in std::mem::take(dst).into_iter().chain(src) {
        m.insert(key(&item), item);
    }
    *dst = m.into_values().collect();
}

fn merge_service(b: &mut Service, o: Service) {
    string(&mut b.image, o.image);
    if o.command.as_ref().is_some_and(|c| !c.is_empty()) {
        b.command = o.command;
    }
    if o.entrypoint.as_ref().is_some_and(|c| !c.is_empty()) {
        b.entrypoint = o.entrypoint;
    }
    b.environment.extend(o.environment);
    b.env_file.extend(o.env_file);
    keyed(&mut b.ports, o.ports, |p| p.published);
    keyed(&mut b.volumes, o.volumes, |v| v.target.clone());
    keyed(&mut b.secrets, o.secrets, |s| s.source.clone());
    keyed(&mut b.configs, o.configs, |s| s.source.clone());
    match (&mut b.networks, o.networks) {
        (_, None) => {}
        (None, Some(n)) => b.networks = Some(n),
        (Some(bn), Some(on)) => {
            for (name, net) in on {
                match bn.get_mut(&name) {
                    Some(cur)
                        if net
                            != ServiceNetwork {
                                at: net.at.clone(),
                                ..Default::default()
                            } =>
                    {
                        cur.aliases = net.aliases;
                        string(&mut cur.ipv4_address, net.ipv4_address);
                        string(&mut cur.ipv6_address, net.ipv6_address);
                        if cur.driver_opts.is_none() {
                            cur.driver_opts = net.driver_opts;
                        }
                    }
                    Some(_) => {}
                    None => {
                        bn.insert(name, net);
                    }
                }
            }
        }
    }
    match (&mut b.healthcheck, o.healthcheck) {
        (_, None) => {}
        (None, Some(h)) => b.healthcheck = Some(h),
        (Some(bh), Some(oh)) => {
            if let Some(t) = oh.test {
                bh.test.get_or_insert_with(Vec::new).extend(t);
            }
            set(&mut bh.interval, oh.interval);
            set(&mut bh.timeout, oh.timeout);
            set(&mut bh.start_period, oh.start_period);
            set(&mut bh.start_interval, oh.start_interval);
            set(&mut bh.retries, oh.retries);
            bh.disable |= oh.disable;
        }
    }
    b.labels.extend(o.labels);
    string(&mut b.user, o.user);
    string(&mut b.working_dir, o.working_dir);
    string(&mut b.hostname, o.hostname);
    if o.init == Some(true) || b.init.is_none() {
        set(&mut b.init, o.init);
    }
    b.read_only |= o.read_only;
    b.tty |= o.tty;
    b.stdin_open |= o.stdin_open;
    b.cap_add.extend(o.cap_add);
    b.cap_drop.extend(o.cap_drop);
    match (&mut b.sysctls, o.sysctls) {
        (Some(bs), Some(os)) => bs.extend(os),
        (bs, os) => set(bs, os),
    }
    b.ulimits.extend(o.ulimits);
    string(&mut b.stop_signal, o.stop_signal);
    set(&mut b.stop_grace_period, o.stop_grace_period);
    b.dns.extend(o.dns);
    b.dns_search.extend(o.dns_search);
    b.extra_hosts.extend(o.extra_hosts);
    match (&mut b.logging, o.logging) {
        (_, None) => {}
        (None, Some(l)) => b.logging = Some(l),
        (Some(bl), Some(ol)) => {
            let same = bl.driver.is_none() || ol.driver.is_none() || bl.driver == ol.driver;
            if same {
                string(&mut bl.driver, ol.driver);
                match (&mut bl.options, ol.options) {
                    (Some(bo), Some(oo)) => bo.extend(oo),
                    (bo, oo) => set(bo, oo),
                }
            } else {
                *bl = ol;
            }
        }
    }
    string(&mut b.isolation, o.isolation);
    nonzero(&mut b.oom_score_adj, o.oom_score_adj);
    match (&mut b.credential_spec, o.credential_spec) {
        (Some(bc), Some(oc)) => {
            string(&mut bc.config, oc.config);
            string(&mut bc.file, oc.file);
            string(&mut bc.registry, oc.registry);
        }
        (bc, oc) => set(bc, oc),
    }
    string(&mut b.restart, o.restart);
    merge_deploy(&mut b.deploy, o.deploy);
    for dep in o.depends_on {
        b.depends_on.retain(|d| d.service != dep.service);
        b.depends_on.push(dep);
    }
}

fn merge_deploy(b: &mut Deploy, o: Deploy) {
    string(&mut b.mode, o.mode);
    set(&mut b.replicas, o.replicas);
    b.labels.extend(o.labels);
    merge_update(&mut b.update_config, o.update_config);
    merge_update(&mut b.rollback_config, o.rollback_config);
    match (&mut b.resources.limits, o.resources.limits) {
        (Some(bl), Some(ol)) => {
            string(&mut bl.cpus, ol.cpus);
            nonzero(&mut bl.memory, ol.memory);
            nonzero(&mut bl.pids, ol.pids);
        }
        (bl, ol) => set(bl, ol),
    }
    match (&mut b.resources.reservations, o.resources.reservations) {
        (Some(br), Some(or)) => {
            string(&mut br.cpus, or.cpus);
            nonzero(&mut br.memory, or.memory);
            br.generic_resources.extend(or.generic_resources);
        }
        (br, or) => set(br, or),
    }
    match (&mut b.restart_policy, o.restart_policy) {
        (Some(br), Some(or)) => {
            string(&mut br.condition, or.condition);
            set(&mut br.delay, or.delay);
            set(&mut br.max_attempts, or.max_attempts);
            set(&mut br.window, or.window);
        }
        (br, or) => set(br, or),
    }
    b.placement.constraints.extend(o.placement.constraints);
    b.placement.preferences.extend(o.placement.preferences);
    if o.placement.max_replicas_per_node.is_some_and(|m| m != 0) {
        b.placement.max_replicas_per_node = o.placement.max_replicas_per_node;
    }
    string(&mut b.endpoint_mode, o.endpoint_mode);
}

fn merge_update(b: &mut Option<UpdateConfig>, o: Option<UpdateConfig>) {
    match (b.as_mut(), o) {
        (_, None) => {}
        (None, o) => *b = o,
        (Some(bu), Some(ou)) => {
            set(&mut bu.parallelism, ou.parallelism);
            nonzero(&mut bu.delay, ou.delay);
            string(&mut bu.failure_action, ou.failure_action);
            nonzero(&mut bu.monitor, ou.monitor);
            if ou.max_failure_ratio.is_some_and(|r| r != 0.0) {
                bu.max_failure_ratio = ou.max_failure_ratio;
            }
            string(&mut bu.order, ou.order);
        }
    }
}
