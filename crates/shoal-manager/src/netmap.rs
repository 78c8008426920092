//! What each node must know to wire its tasks' networks, computed from the state: a pure
//! function, so the dispatcher sends it whenever it changes and the tests pin it down.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use shoal_store::State;
use shoal_types::Id;
use shoal_types::cluster::DEFAULT_DATA_PATH_PORT;
use shoal_types::dispatch::{
    Endpoint, HostPort, NetworkMap, NetworkPlan, NodeKey, PublishedPort, ServiceOnNetwork,
};
use shoal_types::service::PublishMode;
use shoal_types::task::{Task, TaskState};

/// A task that holds its address and has a node: its interface exists or is being made.
fn placed(t: &Task) -> bool {
    !t.status.state.is_terminal() && t.node_id.is_some()
}

/// A task that serves its service's name and virtual IP: running (a task with a health check
/// only gets there once healthy) and still wanted. A task that stops or fails its check leaves
/// with the write that says so. A network attachment serves no service.
fn ready(t: &Task) -> bool {
    t.status.state == TaskState::Running
        && t.desired_state <= TaskState::Running
        && !t.is_attachment()
}

/// Whose namespace a task's address is wired into on its node: the task's own, or for a
/// network attachment the container's (its runtime task is named after the container's ID).
fn holder(t: &Task) -> Id {
    match &t.attachment {
        Some(a) => Id::from_raw(&a.container_id),
        None => t.id.clone(),
    }
}

/// The map for `node`: every overlay one of its live tasks (or attached containers) is on,
/// and, while a service publishes a port through the routing mesh, the ingress network with
/// every node as a gateway. Containers attached to an overlay are among its endpoints, and
/// their names among its services (see [`ServiceOnNetwork`]).
pub fn network_map(view: &State, node: &Id) -> NetworkMap {
    let node_addr =
        |id: &Id| -> Option<Ipv4Addr> { view.node(id).and_then(|n| n.status.addr.parse().ok()) };
    let mut map = NetworkMap {
        local_addr: node_addr(node),
        data_path_port: view
            .cluster()
            .map_or(DEFAULT_DATA_PATH_PORT, |c| c.network.data_path_port),
        ..NetworkMap::default()
    };
    map.host_ports = host_ports(view, node);
    if view.networks().next().is_none() {
        return map;
    }
    let mut wanted: BTreeSet<&Id> = view
        .tasks_on_node(node)
        .filter(|t| placed(t))
        .flat_map(|t| t.networks.iter().map(|a| &a.network))
        .collect();
    let ingress = view.networks().find(|n| n.spec.ingress);
    let meshed: Vec<&Id> = view
        .services()
        .filter(|s| {
            s.endpoint
                .ports
                .iter()
                .any(|p| p.publish_mode == PublishMode::Ingress && p.published_port != 0)
        })
        .map(|s| &s.id)
        .collect();
    if let Some(n) = ingress
        && !meshed.is_empty()
    {
        wanted.insert(&n.id);
    }
    if wanted.is_empty() {
        return map;
    }
    let mut endpoints: BTreeMap<&Id, Vec<Endpoint>> = BTreeMap::new();
    // Ready task addresses per (network, service).
    let mut ready_on: BTreeMap<(&Id, &Id), Vec<Ipv4Addr>> = BTreeMap::new();
    // Attached containers per network, by name.
    let mut attached: BTreeMap<&Id, Vec<ServiceOnNetwork>> = BTreeMap::new();
    for t in view.tasks().filter(|t| placed(t)) {
        for a in t.networks.iter().filter(|a| wanted.contains(&a.network)) {
            let on = t.node_id.clone().unwrap_or_default();
            endpoints.entry(&a.network).or_default().push(Endpoint {
                task: holder(t),
                addr: a.addr.addr(),
                node_addr: node_addr(&on),
                node: on,
            });
            if let Some(c) = &t.attachment {
                attached
                    .entry(&a.network)
                    .or_default()
                    .push(ServiceOnNetwork {
                        id: t.id.clone(),
                        name: c.container_name.clone(),
                        vip: None,
                        aliases: a.aliases.clone(),
                        ready: vec![a.addr.addr()],
                    });
            }
            if ready(t) {
                ready_on
                    .entry((&a.network, &t.service_id))
                    .or_default()
                    .push(a.addr.addr());
            }
        }
    }
    if let Some(n) = ingress
        && wanted.contains(&n.id)
    {
        for id in &meshed {
            let Some(s) = view.service(id) else {
                continue;
            };
            let backends = ready_on.get(&(&n.id, *id)).cloned().unwrap_or_default();
            for p in s
                .endpoint
                .ports
                .iter()
                .filter(|p| p.publish_mode == PublishMode::Ingress && p.published_port != 0)
            {
                map.published.push(PublishedPort {
                    service: s.id.clone(),
                    protocol: p.protocol,
                    published: p.published_port,
                    target: p.target_port,
                    backends: backends.clone(),
                });
            }
        }
    }
    if wanted
        .iter()
        .any(|id| view.network(id).is_some_and(|n| n.spec.encrypted()))
    {
        map.peers = view
            .nodes()
            .filter(|n| n.id != *node)
            .filter_map(|n| {
                Some(NodeKey {
                    addr: node_addr(&n.id)?,
                    key: n.description.network_key.clone()?,
                })
            })
            .collect();
        map.peers.sort_by_key(|k| k.addr);
        map.tunnel_key = view
            .cluster()
            .and_then(|c| c.tunnel_key.as_ref())
            .map(|k| k.key.clone());
    }
    for id in wanted {
        let Some(network) = view.network(id) else {
            continue;
        };
        let mut services: Vec<ServiceOnNetwork> = view
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
        services.extend(attached.remove(id).unwrap_or_default());
        let gateways = if network.spec.ingress {
            let mut g: Vec<Ipv4Addr> = view.nodes().filter_map(|n| node_addr(&n.id)).collect();
            g.sort();
            g.dedup();
            g
        } else {
            Vec::new()
        };
        map.networks.push(NetworkPlan {
            network: (**network).clone(),
            endpoints: endpoints.remove(id).unwrap_or_default(),
            services,
            gateways,
        });
    }
    map
}

/// The host-mode ports of the node's live tasks, from their services' endpoints.
fn host_ports(view: &State, node: &Id) -> Vec<HostPort> {
    let mut out = Vec::new();
    for t in view.tasks_on_node(node).filter(|t| placed(t)) {
        let Some(s) = view.service(&t.service_id) else {
            continue;
        };
        for p in s
            .endpoint
            .ports
            .iter()
            .filter(|p| p.publish_mode == PublishMode::Host && p.published_port != 0)
        {
            out.push(HostPort {
                task: t.id.clone(),
                protocol: p.protocol,
                published: p.published_port,
                target: p.target_port,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use shoal_store::{Op, Proposal};
    use shoal_types::node::{NodeState, NodeStatus};
    use shoal_types::service::{EndpointSpec, PortConfig, Protocol, Service, ServiceSpec};
    use shoal_types::{Network, Node, Timestamp};

    use super::*;

    fn id(s: &str) -> Id {
        Id::from_raw(s)
    }

    fn apply(s: &mut State, ops: Vec<Op>) {
        let v = s.version + 1;
        let (a, _) = s.apply(v, &Proposal::atomic(Timestamp(v as i64), ops));
        assert!(a.first_error().is_none(), "{a:?}");
    }

    fn node(i: &str, addr: &str) -> Op {
        Op::CreateNode(Node {
            id: id(i),
            status: NodeStatus {
                state: NodeState::Ready,
                addr: addr.into(),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    fn ingress() -> Op {
        let subnet: shoal_ipam::Ipv4Net = "10.0.0.0/24".parse().expect("subnet");
        Op::CreateNetwork(Network {
            id: id("ingress"),
            meta: Default::default(),
            spec: shoal_types::NetworkSpec {
                name: "ingress".into(),
                driver: "overlay".into(),
                ingress: true,
                ..Default::default()
            },
            addrs: shoal_types::network::NetworkAddrs {
                subnet,
                gateway: Ipv4Addr::new(10, 0, 0, 1),
                range: subnet,
            },
            vni: 0,
        })
    }

    fn port(published: u16, target: u16, mode: PublishMode) -> PortConfig {
        PortConfig {
            name: String::new(),
            protocol: Protocol::Tcp,
            target_port: target,
            published_port: published,
            publish_mode: mode,
        }
    }

    fn web(ports: Vec<PortConfig>) -> Service {
        Service {
            id: id("web"),
            spec: ServiceSpec {
                name: "web".into(),
                endpoint: EndpointSpec {
                    ports,
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Four nodes, `web` publishing 8080 through the mesh and 9090 in host mode, its tasks
    /// running on n1 and n2 and starting on n3; n4 runs none.
    fn meshed() -> State {
        let mut s = State::default();
        apply(
            &mut s,
            vec![
                node("n1", "192.0.2.11"),
                node("n2", "192.0.2.12"),
                node("n3", "192.0.2.13"),
                node("n4", "192.0.2.14"),
                ingress(),
                Op::CreateService(web(vec![
                    port(8080, 80, PublishMode::Ingress),
                    port(9090, 80, PublishMode::Host),
                ])),
            ],
        );
        let t = |i: &str, n: &str, state| {
            Op::CreateTask(crate::testing::task(i, "web", Some(n), state))
        };
        apply(
            &mut s,
            vec![
                t("t1", "n1", TaskState::Running),
                t("t2", "n2", TaskState::Running),
                t("t3", "n3", TaskState::Starting),
            ],
        );
        s
    }

    fn ingress_addr(s: &State, task: &str) -> Ipv4Addr {
        s.task(&id(task)).expect("task").networks[0].addr.addr()
    }

    #[test]
    fn every_node_answers_a_mesh_port_with_the_ready_tasks_behind_it() {
        let s = meshed();
        let (a1, a2) = (ingress_addr(&s, "t1"), ingress_addr(&s, "t2"));
        for n in ["n1", "n2", "n3", "n4"] {
            let map = network_map(&s, &id(n));
            assert_eq!(map.published.len(), 1, "{n}: {map:?}");
            let p = &map.published[0];
            assert_eq!((p.published, p.target), (8080, 80));
            let mut backends = p.backends.clone();
            backends.sort();
            assert_eq!(
                backends,
                vec![a1.min(a2), a1.max(a2)],
                "{n}: t3 is not ready yet"
            );
            // The ingress network reaches even a node without tasks, with every node as a
            // way back.
            let plan = map
                .networks
                .iter()
                .find(|p| p.network.spec.ingress)
                .unwrap_or_else(|| panic!("{n} has no ingress plan"));
            assert_eq!(plan.endpoints.len(), 3);
            assert_eq!(
                plan.gateways,
                ["192.0.2.11", "192.0.2.12", "192.0.2.13", "192.0.2.14"]
                    .map(|a| a.parse::<Ipv4Addr>().expect("addr"))
            );
        }
    }

    #[test]
    fn host_mode_ports_go_to_the_node_of_their_task_only() {
        let s = meshed();
        let on = |n: &str| network_map(&s, &id(n)).host_ports;
        assert_eq!(
            on("n1"),
            vec![HostPort {
                task: id("t1"),
                protocol: Protocol::Tcp,
                published: 9090,
                target: 80,
            }]
        );
        assert!(network_map(&s, &id("n1")).publishes(&id("t1")));
        assert_eq!(
            on("n3").len(),
            1,
            "a starting task's port is set up before it runs"
        );
        assert!(on("n4").is_empty());
    }

    #[test]
    fn without_published_ports_the_ingress_network_stays_away() {
        let mut s = State::default();
        apply(
            &mut s,
            vec![
                node("n1", "192.0.2.11"),
                ingress(),
                Op::CreateService(web(Vec::new())),
            ],
        );
        let map = network_map(&s, &id("n1"));
        assert!(map.networks.is_empty(), "{map:?}");
        assert!(map.published.is_empty() && map.host_ports.is_empty());
    }

    /// `web` on the attachable overlay `appnet` runs on n1; a standalone container on n2 is
    /// attached to it; n3 has neither.
    fn attached() -> (State, Ipv4Addr, Ipv4Addr) {
        let mut s = State::default();
        let mut appnet = ingress();
        if let Op::CreateNetwork(n) = &mut appnet {
            n.id = id("appnet");
            n.spec.name = "appnet".into();
            n.spec.ingress = false;
            n.spec.attachable = true;
        }
        let mut service = web(Vec::new());
        service.spec.task.networks = vec![shoal_types::service::NetworkAttachmentConfig {
            target: "appnet".into(),
            ..Default::default()
        }];
        apply(
            &mut s,
            vec![
                node("n1", "192.0.2.11"),
                node("n2", "192.0.2.12"),
                node("n3", "192.0.2.13"),
                appnet,
                Op::CreateService(service.clone()),
            ],
        );
        let mut t = crate::testing::task("t1", "web", Some("n1"), TaskState::Running);
        t.spec = service.spec.task.clone();
        let request = shoal_types::dispatch::AttachRequest {
            network: "appnet".into(),
            container_id: "c".repeat(64),
            container_name: "probe".into(),
            aliases: vec!["client".into()],
            check_only: false,
        };
        let crate::attachments::Attach::New(a) =
            crate::attachments::plan_attach(&s, &id("n2"), &request, id("a1"), Timestamp(1))
                .expect("attachable")
        else {
            panic!("expected a new attachment");
        };
        apply(&mut s, vec![Op::CreateTask(t), Op::CreateTask(*a)]);
        let addr = |t: &str| s.task(&id(t)).expect("task").networks[0].addr.addr();
        let (web_addr, probe_addr) = (addr("t1"), addr("a1"));
        (s, web_addr, probe_addr)
    }

    #[test]
    fn an_attached_container_is_on_its_overlay_with_its_names_for_every_node_there() {
        let (s, web_addr, probe_addr) = attached();
        let container = id(&"c".repeat(64));
        for n in ["n1", "n2"] {
            let map = network_map(&s, &id(n));
            let plan = map
                .networks
                .iter()
                .find(|p| p.network.id == id("appnet"))
                .unwrap_or_else(|| panic!("{n} is not on appnet: {map:?}"));
            let mut eps: Vec<(&str, Ipv4Addr, &str)> = plan
                .endpoints
                .iter()
                .map(|e| (e.task.as_str(), e.addr, e.node.as_str()))
                .collect();
            eps.sort();
            let mut want = vec![
                ("t1", web_addr, "n1"),
                (container.as_str(), probe_addr, "n2"),
            ];
            want.sort();
            assert_eq!(eps, want, "{n}: the container is wired under its own ID");
            let web = plan
                .services
                .iter()
                .find(|v| v.name == "web")
                .expect("web is on appnet");
            assert!(web.vip.is_some());
            assert_eq!(
                web.ready,
                vec![web_addr],
                "{n}: a container serves no service"
            );
            let probe = plan
                .services
                .iter()
                .find(|v| v.name == "probe")
                .expect("the container's name is served");
            assert_eq!(
                (probe.vip, probe.aliases.as_slice(), probe.ready.as_slice()),
                (
                    None,
                    ["client".to_string()].as_slice(),
                    [probe_addr].as_slice()
                )
            );
        }
        assert!(
            network_map(&s, &id("n3")).networks.is_empty(),
            "a node with nothing on appnet stays off it"
        );
    }

    #[test]
    fn a_detached_container_leaves_the_map() {
        let (mut s, _, _) = attached();
        apply(&mut s, vec![Op::DeleteTask { id: id("a1") }]);
        assert!(network_map(&s, &id("n2")).networks.is_empty());
        let map = network_map(&s, &id("n1"));
        assert_eq!(map.networks[0].endpoints.len(), 1);
        assert!(map.networks[0].services.iter().all(|v| v.name == "web"));
    }

    #[test]
    fn a_node_on_an_encrypted_overlay_gets_the_other_nodes_keys_and_the_cluster_key() {
        let mut s = State::default();
        let keyed = |i: &str, addr: &str, key: &str| {
            let Op::CreateNode(mut n) = node(i, addr) else {
                unreachable!()
            };
            n.description.network_key = Some(key.into());
            Op::CreateNode(n)
        };
        let mut secure = ingress();
        if let Op::CreateNetwork(n) = &mut secure {
            n.id = id("secure");
            n.spec.name = "secure".into();
            n.spec.ingress = false;
            n.spec
                .driver_opts
                .insert(shoal_types::network::OPT_ENCRYPTED.into(), String::new());
        }
        apply(
            &mut s,
            vec![
                Op::PutCluster {
                    cluster: shoal_types::cluster::Cluster {
                        id: id("c"),
                        tunnel_key: Some(shoal_types::cluster::TunnelKey {
                            key: "ab".repeat(32),
                            since: Timestamp(1),
                        }),
                        ..Default::default()
                    },
                    expect_version: None,
                },
                keyed("n1", "192.0.2.11", "key-one"),
                keyed("n2", "192.0.2.12", "key-two"),
                node("n3", "192.0.2.13"),
                secure,
                Op::CreateService(web(Vec::new())),
            ],
        );
        let mut t = crate::testing::task("t1", "web", Some("n1"), TaskState::Running);
        t.spec.networks = vec![shoal_types::service::NetworkAttachmentConfig {
            target: "secure".into(),
            ..Default::default()
        }];
        apply(&mut s, vec![Op::CreateTask(t)]);
        let map = network_map(&s, &id("n1"));
        assert_eq!(
            map.peers,
            vec![NodeKey {
                addr: Ipv4Addr::new(192, 0, 2, 12),
                key: "key-two".into(),
            }],
            "the other nodes with a key, never this one"
        );
        assert_eq!(map.tunnel_key, Some("ab".repeat(32)));
        // A node on no encrypted overlay learns neither.
        let map = network_map(&s, &id("n2"));
        assert!(map.peers.is_empty() && map.tunnel_key.is_none(), "{map:?}");
    }
}
