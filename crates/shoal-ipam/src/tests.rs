use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use super::*;

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("test CIDR")
}

fn req<'a>(
    subnet: Option<&'a str>,
    gateway: Option<&'a str>,
    ip_range: Option<&'a str>,
) -> Request<'a> {
    Request {
        subnet,
        gateway,
        ip_range,
    }
}

#[test]
fn networks_get_swarm_s_default_subnets_in_order_skipping_taken_ones() {
    let pools = AddrPools::default();
    let a = allocate_network(&Request::default(), &pools, &[]).expect("first");
    assert_eq!(a.subnet, net("10.0.0.0/24"));
    assert_eq!(a.gateway, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(a.range, a.subnet);
    let taken = [("ingress", net("10.0.0.0/24")), ("big", net("10.0.2.0/23"))];
    let b = allocate_network(&Request::default(), &pools, &taken).expect("second");
    assert_eq!(b.subnet, net("10.0.1.0/24"));
    let taken = [
        ("ingress", net("10.0.0.0/24")),
        ("b", net("10.0.1.0/24")),
        ("big", net("10.0.2.0/23")),
    ];
    let b = allocate_network(&Request::default(), &pools, &taken).expect("third");
    assert_eq!(b.subnet, net("10.0.4.0/24"));
    // A user's subnet that is not aligned to the pool's size is stepped over, not split.
    let taken = [("odd", net("10.0.0.128/25"))];
    let c = allocate_network(&Request::default(), &pools, &taken).expect("fourth");
    assert_eq!(c.subnet, net("10.0.1.0/24"));
}

#[test]
fn pools_and_mask_length_from_swarm_init() {
    let pools = AddrPools::new(&["192.168.0.0/20", "172.28.0.0/16"], 26).expect("pools");
    let taken: Vec<(&str, Ipv4Net)> = Vec::new();
    let a = allocate_network(&Request::default(), &pools, &taken).expect("first");
    assert_eq!(a.subnet, net("192.168.0.0/26"));
    // 64 /26s fill the /20; the next comes from the second pool.
    let full: Vec<(String, Ipv4Net)> = net("192.168.0.0/20")
        .subnets(26)
        .expect("subnets")
        .map(|s| (format!("n-{s}"), s))
        .collect();
    let taken: Vec<(&str, Ipv4Net)> = full.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    let b = allocate_network(&Request::default(), &pools, &taken).expect("next pool");
    assert_eq!(b.subnet, net("172.28.0.0/26"));

    let one = AddrPools::new(&["192.168.7.0/24"], 24).expect("pool");
    let err = allocate_network(&Request::default(), &one, &[("x", net("192.168.7.0/24"))])
        .expect_err("exhausted");
    assert_eq!(
        err.to_string(),
        "no free /24 subnet is left in the address pools 192.168.7.0/24"
    );
}

#[test]
fn bad_pools_are_refused_naming_what_is_wrong() {
    let e = |pools: &[&str], len| AddrPools::new(pools, len).expect_err("refused").to_string();
    assert_eq!(
        e(&["10.0.0.1/8"], 24),
        "default address pool \"10.0.0.1/8\": host bits are set; it should be 10.0.0.0/8"
    );
    assert_eq!(
        e(&["10.0.0.0/8", "10.20.0.0/16"], 24),
        "default address pool \"10.20.0.0/16\": overlaps the pool 10.0.0.0/8"
    );
    assert_eq!(
        e(&["10.0.0.0/24"], 16),
        "default address pool mask length \"16\": the pool 10.0.0.0/24 is smaller than a /16"
    );
    assert_eq!(
        e(&[], 31),
        "default address pool mask length \"31\": a subnet longer than /30 holds no task"
    );
    assert!(e(&["fd00::/8"], 24).contains("IPv6 overlays are not supported"));
}

#[test]
fn requested_subnets_gateways_and_ranges_are_checked() {
    let pools = AddrPools::default();
    let taken = [("web", net("10.0.9.0/24"))];
    let ok = allocate_network(
        &req(
            Some("10.1.0.0/16"),
            Some("10.1.255.254"),
            Some("10.1.4.0/22"),
        ),
        &pools,
        &taken,
    )
    .expect("valid");
    assert_eq!(ok.gateway, Ipv4Addr::new(10, 1, 255, 254));
    assert_eq!(ok.range, net("10.1.4.0/22"));

    let e = |r: Request| {
        allocate_network(&r, &pools, &taken)
            .expect_err("refused")
            .to_string()
    };
    assert_eq!(
        e(req(Some("10.0.0.0/16"), None, None)),
        "subnet 10.0.0.0/16 overlaps web's subnet 10.0.9.0/24"
    );
    assert_eq!(
        e(req(Some("10.0.9.128/25"), None, None)),
        "subnet 10.0.9.128/25 overlaps web's subnet 10.0.9.0/24"
    );
    assert_eq!(
        e(req(Some("10.2.0.1/24"), None, None)),
        "subnet \"10.2.0.1/24\": host bits are set; it should be 10.2.0.0/24"
    );
    assert_eq!(
        e(req(Some("10.2.0.0"), None, None)),
        "subnet \"10.2.0.0\": not an IPv4 CIDR such as 10.0.9.0/24 (IPv6 overlays are not supported)"
    );
    assert_eq!(
        e(req(Some("10.2.0.0/31"), None, None)),
        "subnet \"10.2.0.0/31\": a subnet longer than /30 holds no task"
    );
    assert_eq!(
        e(req(Some("10.2.0.0/24"), Some("10.3.0.1"), None)),
        "gateway \"10.3.0.1\": outside the subnet 10.2.0.0/24"
    );
    assert_eq!(
        e(req(Some("10.2.0.0/24"), Some("10.2.0.255"), None)),
        "gateway \"10.2.0.255\": the network or broadcast address of 10.2.0.0/24"
    );
    assert_eq!(
        e(req(Some("10.2.0.0/24"), Some("gw"), None)),
        "gateway \"gw\": not an IPv4 address"
    );
    assert_eq!(
        e(req(Some("10.2.0.0/24"), None, Some("10.2.1.0/28"))),
        "ip-range \"10.2.1.0/28\": outside the subnet 10.2.0.0/24"
    );
    assert_eq!(
        e(req(None, Some("10.2.0.1"), None)),
        "gateway \"10.2.0.1\": needs a --subnet to belong to"
    );
    assert_eq!(
        e(req(
            Some("10.2.0.0/24"),
            Some("10.2.0.1"),
            Some("10.2.0.0/31")
        )),
        "ip-range \"10.2.0.0/31\": leaves no address for a task"
    );
}

#[test]
fn task_addresses_skip_the_gateway_and_come_back_when_released() {
    let n = allocate_network(
        &req(Some("10.5.0.0/29"), None, None),
        &AddrPools::default(),
        &[],
    )
    .expect("network");
    let mut used = BTreeSet::new();
    let mut got = Vec::new();
    while let Ok(a) = allocate_address(&n, &used) {
        used.insert(a);
        got.push(a.to_string());
    }
    // .0 is the network, .1 the gateway, .7 the broadcast address.
    assert_eq!(
        got,
        ["10.5.0.2", "10.5.0.3", "10.5.0.4", "10.5.0.5", "10.5.0.6"]
    );
    assert_eq!(
        allocate_address(&n, &used).expect_err("full").to_string(),
        "no free address is left in 10.5.0.0/29 for a task"
    );
    used.remove(&Ipv4Addr::new(10, 5, 0, 4));
    assert_eq!(allocate_address(&n, &used), Ok(Ipv4Addr::new(10, 5, 0, 4)));
}

#[test]
fn a_thousand_tasks_come_and_go_on_a_24_without_exhausting_it() {
    let n = allocate_network(
        &req(Some("10.6.0.0/24"), None, None),
        &AddrPools::default(),
        &[],
    )
    .expect("network");
    let mut live: std::collections::VecDeque<Ipv4Addr> = Default::default();
    let mut used = BTreeSet::new();
    for _ in 0..1000 {
        // Up to 200 tasks at once: the oldest goes before the next comes.
        if live.len() == 200
            && let Some(old) = live.pop_front()
        {
            used.remove(&old);
        }
        let a = allocate_address(&n, &used).expect("an address is free");
        used.insert(a);
        live.push_back(a);
    }
}

/// Whatever is asked, an answer is a network that overlaps nothing taken, with its gateway and
/// range inside its subnet and room for a task: 20,000 requests from a fixed-seed generator
/// (the `ipam` fuzz target asks the same of arbitrary input).
#[test]
fn allocations_keep_their_invariants() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % u64::from(n)) as u32
    };
    let pools = AddrPools::default();
    let mut answered = 0;
    for _ in 0..20_000 {
        let taken: Vec<(String, Ipv4Net)> = (0..next(20))
            .filter_map(|i| {
                Ipv4Net::new(
                    Ipv4Addr::from(0x0a00_0000 + (next(1024) << 8)),
                    20 + next(9) as u8,
                )
                .ok()
                .map(|n| (format!("n{i}"), n.trunc()))
            })
            .collect();
        let taken: Vec<(&str, Ipv4Net)> = taken.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        let subnet =
            (next(3) > 0).then(|| format!("10.{}.{}.0/{}", next(4), next(256), 16 + next(15)));
        let gateway = (next(2) > 0).then(|| format!("10.{}.{}.{}", next(4), next(256), next(256)));
        let ip_range =
            (next(4) == 0).then(|| format!("10.{}.{}.0/{}", next(4), next(256), 20 + next(11)));
        let r = req(subnet.as_deref(), gateway.as_deref(), ip_range.as_deref());
        let Ok(n) = allocate_network(&r, &pools, &taken) else {
            continue;
        };
        answered += 1;
        assert!(
            taken
                .iter()
                .all(|(_, t)| !t.contains(&n.subnet.network()) && !n.subnet.contains(&t.network())),
            "{r:?} gave {n:?}, overlapping {taken:?}"
        );
        assert!(n.subnet.contains(&n.gateway), "{n:?}");
        assert!(
            n.subnet.contains(&n.range.network()) && n.subnet.contains(&n.range.broadcast()),
            "{n:?}"
        );
        let a = allocate_address(&n, &BTreeSet::new());
        assert!(a.clone().is_ok_and(|a| n.assignable(a)), "{n:?}: {a:?}");
    }
    // Enough requests are valid for the checks above to mean something.
    assert!(
        answered > 2_000,
        "only {answered} of 20,000 requests were answered"
    );
}
