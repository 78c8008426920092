//! Network addressing as `network create` and `swarm init` carry it (`shoal_ipam`): the input's
//! lines are the address pools, the mask length, the subnet, gateway and ip-range asked for, and
//! subnets already taken. Whatever comes back must hold together: a network overlaps nothing
//! taken, its gateway and range lie in its subnet, and a task address given on it is assignable
//! and never one already used.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use shoal_ipam::{AddrPools, Request, allocate_address, allocate_network};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let mut next = || lines.next().filter(|l| !l.is_empty());
    let pools: Vec<&str> = next().map(|l| l.split(',').collect()).unwrap_or_default();
    let mask_len = next().and_then(|l| l.parse::<u8>().ok()).unwrap_or(24);
    let req = Request {
        subnet: next(),
        gateway: next(),
        ip_range: next(),
    };
    let taken: Vec<(&str, ipnet::Ipv4Net)> = next()
        .map(|l| {
            l.split(',')
                .filter_map(|s| s.parse::<ipnet::Ipv4Net>().ok())
                .map(|n| ("taken", n.trunc()))
                .collect()
        })
        .unwrap_or_default();
    let Ok(pools) = AddrPools::new(&pools, mask_len) else {
        return;
    };
    let Ok(net) = allocate_network(&req, &pools, &taken) else {
        return;
    };
    for (_, t) in &taken {
        assert!(
            !t.contains(&net.subnet.network()) && !net.subnet.contains(&t.network()),
            "{net:?} overlaps {t}"
        );
    }
    assert!(net.subnet.contains(&net.gateway), "{net:?}");
    assert!(
        net.subnet.contains(&net.range.network()) && net.subnet.contains(&net.range.broadcast()),
        "{net:?}"
    );
    // A few tasks: each gets an assignable address that none before it holds.
    let mut used = BTreeSet::new();
    for _ in 0..4 {
        let Ok(a) = allocate_address(&net, &used) else {
            break;
        };
        assert!(net.assignable(a) && used.insert(a), "{a} on {net:?}");
    }
});
