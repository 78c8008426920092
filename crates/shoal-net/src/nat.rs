//! Address translation and return routing inside a chosen network namespace: nftables rules
//! (JSON built with the `nftables` crate, applied by the `nft` binary), policy routing through
//! rtnetlink, and, for dockerd's FORWARD policy, the `iptables` binary.
//!
//! Each feature owns whole nftables tables, so programming one never touches another's rules:
//! - VIPs, in a task's namespace: `ip shoal-lb`. Connections to a VIP, any protocol and port,
//!   are DNATed to a random backend; a VIP without backends is refused at once.
//! - Gateway NAT, in a node's namespace: `ip shoal-gw-<name>`, masquerading a bridge's subnet
//!   on its way out of any other interface (Docker's `docker_gwbridge`).
//! - Published ports, in a node's namespace: `ip <table>` (the caller's name), DNAT without
//!   SNAT to the backends, plus `ip shoal-localnet`, a guard that [`program_published`] keeps.
//! - Local bridge networks (Docker's `bridge` networks), in a node's namespace: `ip shoal-bridges`
//!   (the `local` submodule), their masquerade, isolation and published ports in one table.
//! - Return paths, in a task's namespace: `ip shoal-rp`, plus `fwmark M lookup M` rules at
//!   priority [`RETURN_RULE_PRIORITY`] and a default route in each table M.
//!
//! Each `program_*` call replaces its table in one `nft` transaction (add, delete and re-create
//! the table), so packets meet the old rules or the new ones, never none. Established
//! connections keep the translation conntrack recorded for them, whatever the new rules say.
//!
//! Concurrency: calls on different tables are independent. Two calls on one table each apply
//! atomically and the last one wins, so a caller serialises its updates per table. The calling
//! thread never changes namespace: `nft` and `iptables` run as children of a thread of their
//! own that has entered it, and netlink sockets are opened the same way (`super::in_netns`).
//!
//! The rule builders are pure (the `rules` submodule): what a call would apply is unit-tested
//! without root.

mod local;
mod rules;

pub use local::{BRIDGES_TABLE, BridgeNet, BridgePort, program_bridges, remove_bridges};

use std::collections::{BTreeSet, HashSet};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use nftables::batch::Batch;
use rtnetlink::packet_route::route::RouteAttribute;
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{IpVersion, RouteMessageBuilder};

use crate::NetError;
use rules::{
    check_ifname, check_name, gateway_table, masquerade_batch, published_batch, remove_table_batch,
    return_path_batch, vip_batch,
};

/// The table of a task's VIPs.
pub const LB_TABLE: &str = "shoal-lb";
/// The table of a task's return paths.
pub const RP_TABLE: &str = "shoal-rp";
/// The table guarding `route_localnet` in a namespace with published ports.
pub const LOCALNET_TABLE: &str = "shoal-localnet";
/// The priority of the `fwmark M lookup M` rules: those at it, and only those, are ours.
pub const RETURN_RULE_PRIORITY: u32 = 1000;

/// A service's virtual address and the tasks behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vip {
    pub vip: Ipv4Addr,
    pub backends: Vec<Ipv4Addr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A port published on every local address of a node, and where its connections go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub proto: Proto,
    pub port: u16,
    pub backends: Vec<(Ipv4Addr, u16)>,
}

/// The way back to one receiving node: connections whose first frame came from `mac` get
/// `mark`, and replies with that mark leave via `via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReturnPath {
    /// Also the routing table's number: not 0, 253, 254 or 255 (the kernel's own tables).
    pub mark: u32,
    pub mac: [u8; 6],
    pub via: Ipv4Addr,
}

/// Installs `vips` in the task's namespace, replacing what was there: a connection from the
/// namespace to a VIP, whatever its protocol and port, goes to one of its backends picked at
/// random, same port; to a VIP without backends it is refused at once: `connect` gets a TCP
/// reset (ECONNREFUSED), a datagram's own `send` fails (EPERM, as the packet is rejected before
/// it leaves), and an ICMP port unreachable follows. The VIP needs a route in the namespace
/// (it is normally in the network's subnet), since the kernel routes a packet before the output
/// hook translates it. Connections established before a call keep their backend, even one no
/// longer listed.
pub fn program_vips(netns: &Path, vips: &[Vip]) -> Result<(), NetError> {
    nft_apply(
        netns,
        &format!("replacing table ip {LB_TABLE} with {} VIPs", vips.len()),
        vip_batch(vips)?,
    )
}

/// Removes the VIP table: VIPs are no longer translated or refused. Established connections
/// through one lose their translation unless another rule in the namespace keeps conntrack
/// hooked (nftables unhooks it when no rule uses it: see the `vips` chain's first rule).
pub fn clear_vips(netns: &Path) -> Result<(), NetError> {
    nft_apply(
        netns,
        &format!("removing table ip {LB_TABLE}"),
        remove_table_batch(LB_TABLE),
    )
}

/// Masquerades traffic from `subnet` leaving through any interface but `bridge`, and accepts
/// its forwarding, in the node's namespace (table `ip shoal-gw-<name>`, replaced if present).
///
/// The forward accept only helps against drops in this table: a packet that another table or
/// iptables (dockerd sets the FORWARD policy to DROP) drops stays dropped. For that, see
/// [`ensure_iptables_forward_accept`].
pub fn program_masquerade(
    netns: &Path,
    name: &str,
    subnet: Ipv4Net,
    bridge: &str,
) -> Result<(), NetError> {
    let batch = masquerade_batch(name, subnet, bridge)?;
    nft_apply(
        netns,
        &format!(
            "replacing table ip {} to masquerade {subnet} out of all but {bridge}",
            gateway_table(name)
        ),
        batch,
    )
}

/// Removes what [`program_masquerade`] made for `name`; absent is fine.
pub fn remove_masquerade(netns: &Path, name: &str) -> Result<(), NetError> {
    check_name("name", name)?;
    let table = gateway_table(name);
    nft_apply(
        netns,
        &format!("removing table ip {table}"),
        remove_table_batch(&table),
    )
}

/// DNATs `ports` arriving at any local address of the node (and sent to one from the node
/// itself) to a random backend each, without SNAT: backends see the client's address, so their
/// replies must come back through this node (a default route via it, or [`program_return_paths`]).
///
/// A connection from the node to its own loopback address is the exception: its source cannot
/// leave the node, so it is masqueraded, and the namespace gets `route_localnet` (the kernel
/// otherwise drops a packet from 127.0.0.0/8 on the wire), with the `ip shoal-localnet` table
/// dropping what arrives from outside for 127.0.0.0/8 (what `route_localnet` would let in).
/// A port without backends is not intercepted.
pub fn program_published(netns: &Path, table: &str, ports: &[Published]) -> Result<(), NetError> {
    let batch = published_batch(table, ports)?;
    nft_apply(
        netns,
        &format!(
            "replacing tables ip {table} and ip {LOCALNET_TABLE} to publish {} ports",
            ports.len()
        ),
        batch,
    )?;
    // Only once the guard is in place.
    enable_route_localnet(netns)
}

/// Removes a table [`program_published`] made; absent is fine. The `ip shoal-localnet` guard
/// and `route_localnet` stay, as other published tables may rely on them.
pub fn remove_published(netns: &Path, table: &str) -> Result<(), NetError> {
    check_name("table", table)?;
    nft_apply(
        netns,
        &format!("removing table ip {table}"),
        remove_table_batch(table),
    )
}

/// Makes replies leave the task by the node their connection came in through: a new connection
/// arriving on `iface` gets the mark of the path whose MAC sent it, replies carry that mark, and
/// `fwmark M lookup M` with `default via VIA dev IFACE` in table M routes them. Paths no longer
/// listed lose their rule and routes. With no paths, this is [`clear_return_paths`].
pub fn program_return_paths(
    netns: &Path,
    iface: &str,
    paths: &[ReturnPath],
) -> Result<(), NetError> {
    check_ifname("iface", iface)?;
    let batch = return_path_batch(iface, paths)?;
    if paths.is_empty() {
        return clear_return_paths(netns);
    }
    // Routes first: a mark must never lead to an empty table.
    set_policy_routes(netns, iface, paths)?;
    nft_apply(
        netns,
        &format!("replacing table ip {RP_TABLE} to mark connections arriving on {iface}"),
        batch,
    )?;
    let keep = paths.iter().map(|p| p.mark).collect();
    remove_policy_routes(netns, keep)
}

/// Removes the return-path table, our `fwmark` rules and their tables' routes.
pub fn clear_return_paths(netns: &Path) -> Result<(), NetError> {
    nft_apply(
        netns,
        &format!("removing table ip {RP_TABLE}"),
        remove_table_batch(RP_TABLE),
    )?;
    remove_policy_routes(netns, HashSet::new())
}

/// Accepts forwarding to and from `bridge` in iptables: `-i BR -j ACCEPT` and `-o BR -j ACCEPT`
/// at the top of `DOCKER-USER` when dockerd made that chain, else of `FORWARD`. Needed where
/// dockerd set the FORWARD policy to DROP: an accept in an nftables table of our own does not
/// overrule a drop in another table. Each rule is added only if absent.
pub fn ensure_iptables_forward_accept(netns: &Path, bridge: &str) -> Result<(), NetError> {
    check_ifname("bridge", bridge)?;
    let chain = if iptables_check(netns, &["-S", "DOCKER-USER"])? {
        "DOCKER-USER"
    } else {
        "FORWARD"
    };
    for dir in ["-i", "-o"] {
        let spec = [chain, dir, bridge, "-j", "ACCEPT"];
        if !iptables_check(netns, &with("-C", &spec))? {
            iptables(netns, &with("-I", &spec))?;
        }
    }
    Ok(())
}

/// Removes every copy of the rules [`ensure_iptables_forward_accept`] adds, from both chains.
pub fn remove_iptables_forward_accept(netns: &Path, bridge: &str) -> Result<(), NetError> {
    check_ifname("bridge", bridge)?;
    for chain in ["DOCKER-USER", "FORWARD"] {
        for dir in ["-i", "-o"] {
            let spec = [chain, dir, bridge, "-j", "ACCEPT"];
            // Bounded: a rule that `-C` finds but `-D` cannot remove must not loop forever.
            for _ in 0..64 {
                if !iptables_check(netns, &with("-C", &spec))? {
                    break;
                }
                iptables(netns, &with("-D", &spec))?;
            }
        }
    }
    Ok(())
}

// ---- Applying ----

fn nft_apply(netns: &Path, what: &str, batch: Batch<'static>) -> Result<(), NetError> {
    let json = serde_json::to_vec(&batch.to_nftables()).map_err(|e| NetError::Tool {
        netns: netns.to_path_buf(),
        program: "nft".into(),
        what: what.to_owned(),
        detail: format!("encoding the rules: {e}"),
    })?;
    let out = run_in(netns, "nft", &["-j", "-f", "-"], Some(json), what)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(netns, "nft", what, &out))
    }
}

/// Runs `f` on a thread of its own that has entered `netns`, leaving the caller's thread where
/// it is. What `f` starts inherits the namespace: a child takes the forking thread's.
fn on_thread_in<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetError> {
    let path = netns.to_path_buf();
    let entered = std::thread::spawn(move || -> Result<T, std::io::Error> {
        let ns = std::fs::File::open(&path)?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
        Ok(f())
    })
    .join()
    .unwrap_or_else(|_| {
        Err(std::io::Error::other(
            "the thread in the namespace panicked",
        ))
    });
    entered.map_err(|source| NetError::Netns {
        path: netns.to_path_buf(),
        source,
    })
}

/// Runs `program` with `args` in `netns`, feeding it `input`, and returns what it did.
fn run_in(
    netns: &Path,
    program: &'static str,
    args: &[&str],
    input: Option<Vec<u8>>,
    what: &str,
) -> Result<Output, NetError> {
    let exe = locate(program);
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let cmd = exe.clone();
    let ran = on_thread_in(netns, move || -> std::io::Result<Output> {
        let mut child = Command::new(cmd)
            .args(&args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // From a thread of its own, so a child that writes much before reading all its input
        // cannot deadlock us; a failed write shows as the child's failure.
        let writer = match (input, child.stdin.take()) {
            (Some(bytes), Some(mut stdin)) => {
                Some(std::thread::spawn(move || stdin.write_all(&bytes)))
            }
            _ => None,
        };
        let out = child.wait_with_output()?;
        if let Some(w) = writer {
            let _ = w.join();
        }
        Ok(out)
    })?;
    ran.map_err(|e| NetError::Tool {
        netns: netns.to_path_buf(),
        program: program.into(),
        what: what.to_owned(),
        detail: format!("cannot run {}: {e}", exe.display()),
    })
}

fn failed(netns: &Path, program: &str, what: &str, out: &Output) -> NetError {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr = stderr.trim();
    NetError::Tool {
        netns: netns.to_path_buf(),
        program: program.into(),
        what: what.to_owned(),
        detail: if stderr.is_empty() {
            format!("exited with {}", out.status)
        } else {
            stderr.to_owned()
        },
    }
}

/// `program` on PATH, or in the sbin directories a bare PATH may lack.
fn locate(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(program))
}

fn with<'a>(op: &'a str, spec: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["-w", op];
    v.extend_from_slice(spec);
    v
}

/// Whether an iptables query holds: exit 0 yes, 1 no (no such rule or chain), else an error.
fn iptables_check(netns: &Path, args: &[&str]) -> Result<bool, NetError> {
    let what = format!("iptables {}", args.join(" "));
    let out = run_in(netns, "iptables", args, None, &what)?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(failed(netns, "iptables", &what, &out)),
    }
}

fn iptables(netns: &Path, args: &[&str]) -> Result<(), NetError> {
    let what = format!("iptables {}", args.join(" "));
    let out = run_in(netns, "iptables", args, None, &what)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(netns, "iptables", &what, &out))
    }
}

fn enable_route_localnet(netns: &Path) -> Result<(), NetError> {
    let file = "/proc/sys/net/ipv4/conf/all/route_localnet";
    // /proc/sys/net shows the namespace of the thread that opens it.
    on_thread_in(netns, move || std::fs::write(file, b"1"))?.map_err(|e| NetError::Netns {
        path: netns.to_path_buf(),
        source: std::io::Error::new(e.kind(), format!("setting {file}: {e}")),
    })
}

/// Netlink errors name the namespace: one process programs many.
fn nl_in(ns: &str, what: impl std::fmt::Display) -> impl FnOnce(rtnetlink::Error) -> NetError {
    super::nl(format!("{what} in the network namespace {ns}"))
}

fn rule_mark(r: &RuleMessage) -> Option<u32> {
    r.attributes.iter().find_map(|a| match a {
        RuleAttribute::FwMark(m) => Some(*m),
        _ => None,
    })
}

fn is_ours(r: &RuleMessage) -> bool {
    r.attributes
        .iter()
        .any(|a| matches!(a, RuleAttribute::Priority(p) if *p == RETURN_RULE_PRIORITY))
}

/// A default route in table M for each path, and the rule sending mark M there if missing.
fn set_policy_routes(netns: &Path, iface: &str, paths: &[ReturnPath]) -> Result<(), NetError> {
    let (iface, paths) = (iface.to_owned(), paths.to_vec());
    let ns = netns.display().to_string();
    super::in_netns(netns, move |h| async move {
        let index = super::index_of(&h, &iface).await.map_err(|e| match e {
            NetError::Missing(m) => NetError::Missing(format!("{m} in the network namespace {ns}")),
            e => e,
        })?;
        for p in &paths {
            h.route()
                .add(
                    RouteMessageBuilder::<Ipv4Addr>::new()
                        .table_id(p.mark)
                        .gateway(p.via)
                        .output_interface(index)
                        // The receiving node's underlay address is no address of the
                        // task's subnet: reached on the link, by its MAC.
                        .onlink()
                        .build(),
                )
                .replace()
                .execute()
                .await
                .map_err(nl_in(
                    &ns,
                    format!(
                        "default route via {} dev {iface} in table {}",
                        p.via, p.mark
                    ),
                ))?;
        }
        let present: BTreeSet<u32> = h
            .rule()
            .get(IpVersion::V4)
            .execute()
            .try_collect::<Vec<_>>()
            .await
            .map_err(nl_in(&ns, "listing routing rules"))?
            .iter()
            .filter(|r| is_ours(r))
            .filter_map(rule_mark)
            .collect();
        for p in paths.iter().filter(|p| !present.contains(&p.mark)) {
            h.rule()
                .add()
                .v4()
                .fw_mark(p.mark)
                .table_id(p.mark)
                .priority(RETURN_RULE_PRIORITY)
                .action(RuleAction::ToTable)
                .execute()
                .await
                .map_err(nl_in(&ns, format!("rule fwmark {0} lookup {0}", p.mark)))?;
        }
        Ok(())
    })
}

/// Removes our rules whose mark is not in `keep`, and the routes of their tables.
fn remove_policy_routes(netns: &Path, keep: HashSet<u32>) -> Result<(), NetError> {
    let ns = netns.display().to_string();
    super::in_netns(netns, move |h| async move {
        let rules: Vec<RuleMessage> = h
            .rule()
            .get(IpVersion::V4)
            .execute()
            .try_collect()
            .await
            .map_err(nl_in(&ns, "listing routing rules"))?;
        let mut stale = HashSet::new();
        for r in rules.into_iter().filter(is_ours) {
            let Some(mark) = rule_mark(&r) else { continue };
            if keep.contains(&mark) {
                continue;
            }
            h.rule()
                .del(r)
                .execute()
                .await
                .map_err(nl_in(&ns, format!("removing rule fwmark {mark}")))?;
            stale.insert(mark);
        }
        if stale.is_empty() {
            return Ok(());
        }
        let routes: Vec<_> = h
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(nl_in(&ns, "listing routes"))?;
        for r in routes {
            let table = r
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Table(t) => Some(*t),
                    _ => None,
                })
                .unwrap_or(u32::from(r.header.table));
            if stale.contains(&table) {
                h.route()
                    .del(r)
                    .execute()
                    .await
                    .map_err(nl_in(&ns, format!("removing a route of table {table}")))?;
            }
        }
        Ok(())
    })
}
