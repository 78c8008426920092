//! Address management for overlay networks.
//!
//! Which subnet a new network gets from the cluster's default address pools (Swarm's
//! `--default-addr-pool 10.0.0.0/8 --default-addr-pool-mask-length 24` unless `swarm init` says
//! otherwise), whether a requested subnet, gateway and range are well formed and free, and which
//! address a task gets on a network.
//!
//! Every answer is a function of what is already allocated, passed in: the manager runs these
//! inside the replicated state machine, so every member picks the same subnet and the same
//! address, and an address is free again as soon as the task holding it is gone from the state
//! (Swarm keeps a separate allocator that can leak them: moby#31019). IPv4 only, as Swarm's
//! overlays are by default.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

pub use ipnet::Ipv4Net;

/// Swarm's default address pool.
pub const DEFAULT_POOL: &str = "10.0.0.0/8";
/// Swarm's default size of a subnet carved from a pool.
pub const DEFAULT_MASK_LEN: u8 = 24;
/// The longest prefix a network may have: a /30 still holds a gateway and one task.
pub const LONGEST_PREFIX: u8 = 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("{field} {value:?}: {why}")]
    Invalid {
        field: &'static str,
        value: String,
        why: String,
    },
    #[error("subnet {subnet} overlaps {owner}'s subnet {theirs}")]
    Overlaps {
        subnet: Ipv4Net,
        owner: String,
        theirs: Ipv4Net,
    },
    #[error("no free /{mask_len} subnet is left in the address pools {pools}")]
    PoolsExhausted { pools: String, mask_len: u8 },
    #[error("no free address is left in {range} for a task")]
    AddressesExhausted { range: Ipv4Net },
}

fn invalid(field: &'static str, value: &str, why: impl Into<String>) -> IpamError {
    IpamError::Invalid {
        field,
        value: value.to_string(),
        why: why.into(),
    }
}

/// The pools new networks' subnets are carved from, and the size of each subnet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AddrPools {
    pools: Vec<Ipv4Net>,
    mask_len: u8,
}

impl Default for AddrPools {
    fn default() -> Self {
        AddrPools {
            pools: vec![Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8).unwrap_or_default()],
            mask_len: DEFAULT_MASK_LEN,
        }
    }
}

impl AddrPools {
    /// `swarm init --default-addr-pool P... --default-addr-pool-mask-length N`: each pool a
    /// CIDR with no host bits set, none overlapping another, each able to hold a /N.
    pub fn new(pools: &[&str], mask_len: u8) -> Result<AddrPools, IpamError> {
        let field = "default address pool";
        if pools.is_empty() {
            return AddrPools {
                mask_len,
                ..AddrPools::default()
            }
            .checked_mask();
        }
        let mut parsed: Vec<Ipv4Net> = Vec::new();
        for p in pools {
            let net = parse_cidr(field, p)?;
            if let Some(other) = parsed.iter().find(|o| overlap(o, &net)) {
                return Err(invalid(field, p, format!("overlaps the pool {other}")));
            }
            parsed.push(net);
        }
        AddrPools {
            pools: parsed,
            mask_len,
        }
        .checked_mask()
    }

    fn checked_mask(self) -> Result<AddrPools, IpamError> {
        let field = "default address pool mask length";
        if self.mask_len > LONGEST_PREFIX {
            return Err(invalid(
                field,
                &self.mask_len.to_string(),
                format!("a subnet longer than /{LONGEST_PREFIX} holds no task"),
            ));
        }
        if let Some(p) = self.pools.iter().find(|p| p.prefix_len() > self.mask_len) {
            return Err(invalid(
                field,
                &self.mask_len.to_string(),
                format!("the pool {p} is smaller than a /{}", self.mask_len),
            ));
        }
        Ok(self)
    }

    pub fn pools(&self) -> &[Ipv4Net] {
        &self.pools
    }

    pub fn mask_len(&self) -> u8 {
        self.mask_len
    }
}

/// What a `network create` asked for; each field as the user wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request<'a> {
    pub subnet: Option<&'a str>,
    pub gateway: Option<&'a str>,
    pub ip_range: Option<&'a str>,
}

/// A network's addressing once allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct NetworkAddrs {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Where tasks' addresses come from: the subnet unless `--ip-range` narrowed it.
    pub range: Ipv4Net,
}

impl NetworkAddrs {
    /// Whether `addr` may be given to a task: in the range, and neither the subnet's network
    /// or broadcast address nor the gateway.
    pub fn assignable(&self, addr: Ipv4Addr) -> bool {
        self.range.contains(&addr)
            && addr != self.subnet.network()
            && addr != self.subnet.broadcast()
            && addr != self.gateway
    }
}

/// A CIDR with no host bits set, as Docker insists ("it should be 10.0.0.0/24").
fn parse_cidr(field: &'static str, s: &str) -> Result<Ipv4Net, IpamError> {
    let net: Ipv4Net = s.parse().map_err(|_| {
        invalid(
            field,
            s,
            "not an IPv4 CIDR such as 10.0.9.0/24 (IPv6 overlays are not supported)",
        )
    })?;
    if net.trunc() != net {
        return Err(invalid(
            field,
            s,
            format!("host bits are set; it should be {}", net.trunc()),
        ));
    }
    Ok(net)
}

fn overlap(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The addressing of a new network: the requested subnet (refused if malformed or overlapping
/// a network in `taken`, given as `(name, subnet)`), or else the first free subnet of the
/// pools; the requested gateway or the subnet's first host; the requested range or the subnet.
pub fn allocate_network(
    req: &Request,
    pools: &AddrPools,
    taken: &[(&str, Ipv4Net)],
) -> Result<NetworkAddrs, IpamError> {
    let subnet = match req.subnet {
        Some(s) => {
            let net = parse_cidr("subnet", s)?;
            if net.prefix_len() > LONGEST_PREFIX {
                return Err(invalid(
                    "subnet",
                    s,
                    format!("a subnet longer than /{LONGEST_PREFIX} holds no task"),
                ));
            }
            if let Some((owner, theirs)) = taken.iter().find(|(_, t)| overlap(t, &net)) {
                return Err(IpamError::Overlaps {
                    subnet: net,
                    owner: (*owner).to_string(),
                    theirs: *theirs,
                });
            }
            net
        }
        None => {
            if req.gateway.is_some() || req.ip_range.is_some() {
                let (field, value) = match (req.gateway, req.ip_range) {
                    (Some(g), _) => ("gateway", g),
                    (None, r) => ("ip-range", r.unwrap_or_default()),
                };
                return Err(invalid(field, value, "needs a --subnet to belong to"));
            }
            free_subnet(pools, taken)?
        }
    };
    let gateway = match req.gateway {
        Some(g) => {
            let addr: Ipv4Addr = g
                .parse()
                .map_err(|_| invalid("gateway", g, "not an IPv4 address"))?;
            if !subnet.contains(&addr) {
                return Err(invalid(
                    "gateway",
                    g,
                    format!("outside the subnet {subnet}"),
                ));
            }
            if addr == subnet.network() || addr == subnet.broadcast() {
                return Err(invalid(
                    "gateway",
                    g,
                    format!("the network or broadcast address of {subnet}"),
                ));
            }
            addr
        }
        None => first_host(subnet),
    };
    let range = match req.ip_range {
        Some(r) => {
            let range = parse_cidr("ip-range", r)?;
            if !(subnet.contains(&range.network()) && subnet.contains(&range.broadcast())) {
                return Err(invalid(
                    "ip-range",
                    r,
                    format!("outside the subnet {subnet}"),
                ));
            }
            range
        }
        None => subnet,
    };
    let addrs = NetworkAddrs {
        subnet,
        gateway,
        range,
    };
    if !range.hosts().any(|a| addrs.assignable(a)) {
        return Err(invalid(
            "ip-range",
            req.ip_range.unwrap_or(req.subnet.unwrap_or_default()),
            "leaves no address for a task",
        ));
    }
    Ok(addrs)
}

fn first_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).saturating_add(1))
}

/// The first /mask_len of the pools, in order, that overlaps no taken subnet. Walks subnets
/// past each overlapping one rather than one by one, so a crowded pool costs about the number
/// of networks, not the number of candidate subnets.
fn free_subnet(pools: &AddrPools, taken: &[(&str, Ipv4Net)]) -> Result<Ipv4Net, IpamError> {
    let size = 1u64 << (32 - u32::from(pools.mask_len));
    for pool in &pools.pools {
        let end = u64::from(u32::from(pool.broadcast())) + 1;
        let mut at = u64::from(u32::from(pool.network()));
        while at + size <= end {
            let Ok(candidate) = Ipv4Net::new(Ipv4Addr::from(at as u32), pools.mask_len) else {
                break;
            };
            match taken
                .iter()
                .filter(|(_, t)| overlap(t, &candidate))
                .map(|(_, t)| u64::from(u32::from(t.broadcast())) + 1)
                .max()
            {
                None => return Ok(candidate),
                // Past the overlapping subnet, onto the next boundary of our size.
                Some(past) => at = past.max(at + size).div_ceil(size) * size,
            }
        }
    }
    Err(IpamError::PoolsExhausted {
        pools: pools
            .pools
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        mask_len: pools.mask_len,
    })
}

/// The address a new task gets on `net`: the lowest assignable one not in `used` (the
/// addresses the network's live tasks hold, and any the manager reserves).
pub fn allocate_address(
    net: &NetworkAddrs,
    used: &BTreeSet<Ipv4Addr>,
) -> Result<Ipv4Addr, IpamError> {
    allocate_address_by(net, |a| used.contains(a))
}

/// [`allocate_address`] for callers that keep the taken addresses in their own index.
pub fn allocate_address_by(
    net: &NetworkAddrs,
    taken: impl Fn(&Ipv4Addr) -> bool,
) -> Result<Ipv4Addr, IpamError> {
    net.range
        .hosts()
        .find(|a| net.assignable(*a) && !taken(a))
        .ok_or(IpamError::AddressesExhausted { range: net.range })
}

#[cfg(test)]
mod tests;
