//! What each node must know to wire its tasks' networks, computed from the state: a pure
//! function, so the dispatcher sends it whenever it changes and the tests pin it down.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use shoal_store::State;
use shoal_types::Id;
use shoal_types::cluster::DEFAULT_DATA_PATH_PORT;
use shoal_types::dispatch::{Endpoint, NetworkMap, NetworkPlan, ServiceOnNetwork};
use shoal_types::task::{Task, TaskState};

/// A task that holds its address and has a node: its interface exists or is being made.
fn placed(t: &Task) -> bool {
    !t.status.state.is_terminal() && t.node_id.is_some()
}

/// A task that serves its service's name and virtual IP: running (a task with a health check
/// only gets there once healthy) and still wanted. A task that stops or fails its check leaves
/// with the write that says so.
fn ready(t: &Task) -> bool {
    t.status.state == TaskState::Running && t.desired_state <= TaskState::Running
}

/// The map for `node`: every overlay one of its live tasks is on.
pub fn network_map(view: &State, node: &Id) -> NetworkMap {
    let node_addr =
        |id: &Id| -> Option<Ipv4Addr> { view.node(id).and_then(|n| n.status.addr.parse().ok()) };
    let mut map = NetworkMap {
        local_addr: node_addr(node),
        data_path_port: view
            .cluster()
            .map_or(DEFAULT_DATA_PATH_PORT, |c| c.network.data_path_port),
        networks: Vec::new(),
    };
    if view.networks().next().is_none() {
        return map;
    }
    let wanted: BTreeSet<&Id> = view
        .tasks_on_node(node)
        .filter(|t| placed(t))
        .flat_map(|t| t.networks.iter().map(|a| &a.network))
        .collect();
    if wanted.is_empty() {
        return map;
    }
    let mut endpoints: BTreeMap<&Id, Vec<Endpoint>> = BTreeMap::new();
    // Ready task addresses per (network, service).
    let mut ready_on: BTreeMap<(&Id, &Id), Vec<Ipv4Addr>> = BTreeMap::new();
    for t in view.tasks().filter(|t| placed(t)) {
        for a in t.networks.iter().filter(|a| wanted.contains(&a.network)) {
            let on = t.node_id.clone().unwrap_or_default();
            endpoints.entry(&a.network).or_default().push(Endpoint {
                task: t.id.clone(),
                addr: a.addr.addr(),
                node_addr: node_addr(&on),
                node: on,
            });
            if ready(t) {
                ready_on
                    .entry((&a.network, &t.service_id))
                    .or_default()
                    .push(a.addr.addr());
            }
        }
    }
    for id in wanted {
        let Some(network) = view.network(id) else {
            continue;
        };
        let services = view
            .services()
            .filter_map(|s| {
                let vip = s
                    .endpoint
                    .virtual_ips
                    .iter()
                    .find(|v| v.network == *id)
                    .map(|v| v.addr.addr());
                let named = s
                    .spec
                    .task
                    .networks
                    .iter()
                    .find(|c| c.target == id.as_str());
                let ready = ready_on.remove(&(id, &s.id)).unwrap_or_default();
                (vip.is_some() || named.is_some() || !ready.is_empty()).then(|| ServiceOnNetwork {
                    id: s.id.clone(),
                    name: s.spec.name.clone(),
                    vip,
                    aliases: named.map(|c| c.aliases.clone()).unwrap_or_default(),
                    ready,
                })
            })
            .collect();
        map.networks.push(NetworkPlan {
            network: (**network).clone(),
            endpoints: endpoints.remove(id).unwrap_or_default(),
            services,
        });
    }
    map
}
