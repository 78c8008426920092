//! Network attachments in the state machine: their addresses, their uniqueness per container
//! and network, and the network they keep.

use shoal_ipam::Ipv4Net;
use shoal_types::network::NetworkAddrs;
use shoal_types::service::NetworkAttachmentConfig;
use shoal_types::task::{ContainerAttachment, TaskStatus};
use shoal_types::{NetworkSpec, Node, TaskState, Timestamp};

use super::*;
use crate::ops::{Op, Proposal};

fn id(s: &str) -> Id {
    Id::from_raw(s)
}

fn network(i: &str, name: &str, subnet: &str) -> Network {
    let subnet: Ipv4Net = subnet.parse().expect("subnet");
    Network {
        id: id(i),
        meta: Default::default(),
        spec: NetworkSpec {
            name: name.into(),
            driver: "overlay".into(),
            attachable: true,
            ..Default::default()
        },
        addrs: NetworkAddrs {
            subnet,
            gateway: subnet.hosts().next().expect("a host"),
            range: subnet,
        },
        vni: 0,
    }
}

fn attachment(i: &str, node: &str, container: char, net: &str) -> Task {
    Task {
        id: id(i),
        node_id: Some(id(node)),
        spec: shoal_types::TaskSpec {
            networks: vec![NetworkAttachmentConfig {
                target: net.into(),
                aliases: vec!["probe".into()],
                ..Default::default()
            }],
            ..Default::default()
        },
        desired_state: TaskState::Running,
        status: TaskStatus {
            state: TaskState::Running,
            ..Default::default()
        },
        attachment: Some(ContainerAttachment {
            container_id: container.to_string().repeat(64),
            container_name: "probe".into(),
        }),
        ..Default::default()
    }
}

fn apply_one(s: &mut State, v: u64, op: Op) -> Result<(), OpError> {
    s.apply(v, &Proposal::atomic(Timestamp(v as i64), vec![op]))
        .0
        .results
        .remove(0)
}

fn state() -> State {
    let mut s = State::default();
    for (v, op) in [
        Op::CreateNode(Node {
            id: id("n1"),
            ..Default::default()
        }),
        Op::CreateNetwork(network("net1", "appnet", "10.7.0.0/24")),
        Op::CreateNetwork(network("net2", "other", "10.8.0.0/24")),
    ]
    .into_iter()
    .enumerate()
    {
        apply_one(&mut s, v as u64 + 1, op).expect("setup");
    }
    s
}

#[test]
fn an_attachment_gets_an_address_once_per_container_and_network() {
    let mut s = state();
    apply_one(
        &mut s,
        10,
        Op::CreateTask(attachment("a1", "n1", 'c', "net1")),
    )
    .expect("a1");
    let a = &s.task(&id("a1")).expect("made").networks;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].addr.to_string(), "10.7.0.2/24");
    assert_eq!(a[0].aliases, ["probe"]);

    // The same container on the same network again: refused, naming the one that holds it.
    let again = apply_one(
        &mut s,
        11,
        Op::CreateTask(attachment("a2", "n1", 'c', "net1")),
    );
    assert_eq!(
        again,
        Err(OpError::Exists {
            kind: Kind::Task,
            id: id("a1")
        })
    );
    // Another network, or another container: fine.
    apply_one(
        &mut s,
        12,
        Op::CreateTask(attachment("a3", "n1", 'c', "net2")),
    )
    .expect("a3");
    apply_one(
        &mut s,
        13,
        Op::CreateTask(attachment("a4", "n1", 'd', "net1")),
    )
    .expect("a4");
    assert_eq!(
        s.task(&id("a4")).expect("a4").networks[0].addr.to_string(),
        "10.7.0.3/24"
    );
    // On a node that is gone: refused, nothing made.
    let lost = apply_one(
        &mut s,
        14,
        Op::CreateTask(attachment("a5", "n9", 'e', "net1")),
    );
    assert!(
        matches!(
            lost,
            Err(OpError::NotFound {
                kind: Kind::Node,
                ..
            })
        ),
        "{lost:?}"
    );
    assert!(s.task(&id("a5")).is_none());
}

#[test]
fn an_attached_container_keeps_its_network_until_it_is_detached() {
    let mut s = state();
    apply_one(
        &mut s,
        10,
        Op::CreateTask(attachment("a1", "n1", 'c', "net1")),
    )
    .expect("a1");
    let in_use = apply_one(&mut s, 11, Op::DeleteNetwork { id: id("net1") });
    assert_eq!(
        in_use.as_ref().map_err(ToString::to_string),
        Err("network \"appnet\" is in use by container(s) [\"probe\"]".to_string())
    );
    apply_one(&mut s, 12, Op::DeleteTask { id: id("a1") }).expect("detach");
    // Its address is free again, for the next container.
    apply_one(
        &mut s,
        13,
        Op::CreateTask(attachment("a2", "n1", 'd', "net1")),
    )
    .expect("a2");
    assert_eq!(
        s.task(&id("a2")).expect("a2").networks[0].addr.to_string(),
        "10.7.0.2/24"
    );
    apply_one(&mut s, 14, Op::DeleteTask { id: id("a2") }).expect("detach");
    apply_one(&mut s, 15, Op::DeleteNetwork { id: id("net1") }).expect("unused now");
}
