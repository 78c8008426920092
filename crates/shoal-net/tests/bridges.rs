//! `shoal_net::nat::program_bridges` against `nft`: the table it builds is one nft takes, is
//! replaced whole, and goes. What the rules do to traffic is shown end to end by
//! `shoal-netagent`'s local network tests, which program it through the node's agent.
//!
//! The namespace is made for the test and goes on Drop, passed or failed.

#[path = "nat/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::net::Ipv4Addr;

use harness::*;
use shoal_net::nat::{
    BRIDGES_TABLE, BridgeNet, BridgePort, Proto, program_bridges, remove_bridges,
};

#[test]
fn the_bridges_table_is_taken_by_nft_replaced_and_removed() {
    if !needs(&[]) {
        return;
    }
    let ns = Namespaces::new(&["node"]);
    let node = ns.path("node");
    let nets = vec![
        BridgeNet {
            bridge: "shltest0".into(),
            subnet: "172.30.0.0/16".parse().expect("subnet"),
            internal: false,
        },
        BridgeNet {
            bridge: "shltest1".into(),
            subnet: "192.168.16.0/20".parse().expect("subnet"),
            internal: true,
        },
    ];
    let ports = vec![
        BridgePort {
            proto: Proto::Tcp,
            host_ip: None,
            port: 18080,
            to: (Ipv4Addr::new(172, 30, 0, 2), 80),
        },
        BridgePort {
            proto: Proto::Udp,
            host_ip: Some(Ipv4Addr::LOCALHOST),
            port: 18053,
            to: (Ipv4Addr::new(172, 30, 0, 3), 53),
        },
    ];
    program_bridges(&node, &nets, &["shgw0".into()], &ports).expect("programmed");
    let listed = output(&node, &["nft", "list", "table", "ip", BRIDGES_TABLE]);
    for want in [
        "hostport-0",
        "hostport-1",
        "masquerade",
        "127.0.0.1 . udp . 18053",
    ] {
        assert!(listed.contains(want), "{want} missing from:\n{listed}");
    }
    assert_eq!(net_sysctl(&node, "ipv4/conf/all/route_localnet"), "1");

    // Replaced whole: the ports are gone with the next call that has none.
    program_bridges(&node, &nets[..1], &[], &[]).expect("reprogrammed");
    let listed = output(&node, &["nft", "list", "table", "ip", BRIDGES_TABLE]);
    assert!(!listed.contains("hostport"), "{listed}");
    assert!(!listed.contains("shltest1"), "{listed}");

    remove_bridges(&node).expect("removed");
    assert!(!tables(&node).contains(BRIDGES_TABLE), "{}", tables(&node));
    remove_bridges(&node).expect("removing twice is fine");
}
