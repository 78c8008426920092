//! What the node holds of its local networks, in memory and on its disk: the networks, each
//! task's endpoints on them and its published ports. No kernel here: the caller programs what
//! this decides.
//!
//! On disk, under `<dir>/local/`: `networks/<ID>.json` ([`NetworkFile`]) and
//! `tasks/<TASK>.json` ([`TaskFile`]), each written whole to a temporary file and renamed, so
//! a crash leaves the old record or the new one. Both carry [`LOCAL_NET_FORMAT`]; a record of
//! another version is left alone (and said so), never misread.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use shoal_ipam::{Ipv4Net, NetworkAddrs};
use shoal_net::NetError;
use shoal_types::Id;
use shoal_types::local_net::{
    LOCAL_NET_FORMAT, LocalEndpoint, LocalNetwork, OPT_BRIDGE_NAME, PortBinding,
};

/// A network's record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct NetworkFile {
    pub version: u32,
    pub network: LocalNetwork,
}

/// One endpoint of a task and where it is plugged.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Wired {
    pub endpoint: LocalEndpoint,
    /// Its interface inside the task (`eth1`).
    pub ifname: String,
    /// The node's end of its veth pair.
    pub host_veth: String,
}

/// A task's record: its endpoints in the order it joined them (the first is where its ports
/// lead) and its published ports with the node's picks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct TaskFile {
    pub version: u32,
    #[serde(default)]
    pub endpoints: Vec<Wired>,
    #[serde(default)]
    pub published: Vec<PortBinding>,
}

impl TaskFile {
    pub fn on(&self, network: &str) -> Option<&Wired> {
        self.endpoints
            .iter()
            .find(|w| w.endpoint.network_id == network)
    }
}

/// Where a new network's subnet comes from when none is asked: Docker's default pools, the
/// /16s of 172.17-31 then the /20s of 192.168.
pub(crate) fn candidates() -> impl Iterator<Item = Ipv4Net> {
    let b = (17..=31u8).filter_map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).ok());
    let c = (0..16u8).filter_map(|i| Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).ok());
    b.chain(c)
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(b) || b.contains(a)
}

#[derive(Debug)]
pub(crate) struct LocalState {
    dir: PathBuf,
    pub networks: BTreeMap<String, LocalNetwork>,
    pub tasks: BTreeMap<Id, TaskFile>,
}

impl LocalState {
    /// The records under `<dir>/local`.
    pub fn load(dir: &Path) -> LocalState {
        let dir = dir.join("local");
        let mut networks = BTreeMap::new();
        for (_, text) in files(&dir.join("networks")) {
            match serde_json::from_str::<NetworkFile>(&text) {
                Ok(f) if f.version == LOCAL_NET_FORMAT => {
                    networks.insert(f.network.id.clone(), f.network);
                }
                Ok(f) => {
                    tracing::warn!(version = f.version, network = %f.network.name, "network: a local network's record is of another version; left alone")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "network: a local network's record is unreadable; left alone")
                }
            }
        }
        let mut tasks = BTreeMap::new();
        for (name, text) in files(&dir.join("tasks")) {
            match serde_json::from_str::<TaskFile>(&text) {
                Ok(f) if f.version == LOCAL_NET_FORMAT => {
                    tasks.insert(Id::from_raw(name), f);
                }
                Ok(f) => {
                    tracing::warn!(task.id = %name, version = f.version, "network: a task's local endpoints are of another version; left alone")
                }
                Err(e) => {
                    tracing::warn!(task.id = %name, error = %e, "network: a task's local endpoints are unreadable; left alone")
                }
            }
        }
        LocalState {
            dir,
            networks,
            tasks,
        }
    }

    /// The network `key` names: its ID, its name, or a prefix of one ID only (as Docker
    /// takes them).
    pub fn resolve(&self, key: &str) -> Option<&LocalNetwork> {
        if key.is_empty() {
            return None;
        }
        if let Some(n) = self.networks.get(key) {
            return Some(n);
        }
        if let Some(n) = self.networks.values().find(|n| n.name == key) {
            return Some(n);
        }
        let mut by_prefix = self.networks.values().filter(|n| n.id.starts_with(key));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(n), None) => Some(n),
            _ => None,
        }
    }

    pub fn by_name(&self, name: &str) -> Option<&LocalNetwork> {
        self.networks.values().find(|n| n.name == name)
    }

    /// The first candidate subnet that overlaps nothing in `used` (the node's routes and
    /// addresses, its gateway network) nor another local network.
    pub fn pick_subnet(&self, used: &[Ipv4Net]) -> Option<Ipv4Net> {
        candidates().find(|c| {
            !used.iter().any(|u| overlaps(u, c))
                && !self.networks.values().any(|n| overlaps(&n.subnet, c))
        })
    }

    /// The local network whose subnet overlaps `subnet`, if any.
    pub fn overlapping(&self, subnet: &Ipv4Net) -> Option<&LocalNetwork> {
        self.networks.values().find(|n| overlaps(&n.subnet, subnet))
    }

    pub fn bridge_taken(&self, bridge: &str) -> bool {
        self.networks.values().any(|n| n.bridge == bridge)
    }

    /// The tasks with an endpoint on `network`.
    pub fn attached(&self, network: &str) -> Vec<Id> {
        self.tasks
            .iter()
            .filter(|(_, f)| f.on(network).is_some())
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// A free address on `net`.
    pub fn free_addr(&self, net: &LocalNetwork) -> Result<Ipv4Addr, NetError> {
        let taken: BTreeSet<Ipv4Addr> = self
            .tasks
            .values()
            .filter_map(|f| f.on(&net.id))
            .map(|w| w.endpoint.addr.addr())
            .collect();
        let addrs = NetworkAddrs {
            subnet: net.subnet,
            gateway: net.gateway,
            range: net.subnet,
        };
        shoal_ipam::allocate_address(&addrs, &taken)
            .map_err(|e| NetError::Conflict(format!("network {}: {e}", net.name)))
    }

    pub fn save_network(&mut self, net: LocalNetwork) -> Result<(), NetError> {
        let file = NetworkFile {
            version: LOCAL_NET_FORMAT,
            network: net.clone(),
        };
        write_json(&self.dir.join("networks"), &net.id, &file)?;
        self.networks.insert(net.id.clone(), net);
        Ok(())
    }

    pub fn forget_network(&mut self, id: &str) {
        self.networks.remove(id);
        let _ = std::fs::remove_file(self.dir.join("networks").join(format!("{id}.json")));
    }

    pub fn save_task(&mut self, task: &Id, mut file: TaskFile) -> Result<(), NetError> {
        file.version = LOCAL_NET_FORMAT;
        write_json(&self.dir.join("tasks"), task.as_str(), &file)?;
        self.tasks.insert(task.clone(), file);
        Ok(())
    }

    pub fn forget_task(&mut self, task: &Id) -> Option<TaskFile> {
        let _ = std::fs::remove_file(
            self.dir
                .join("tasks")
                .join(format!("{}.json", task.as_str())),
        );
        self.tasks.remove(task)
    }

    /// The names a task resolves on its user-defined local networks, as Docker's embedded DNS
    /// answers them: each alias of each container sharing such a network with it.
    pub fn names_of(&self, task: &Id) -> BTreeMap<String, Vec<Ipv4Addr>> {
        let mut names: BTreeMap<String, Vec<Ipv4Addr>> = BTreeMap::new();
        let Some(mine) = self.tasks.get(task) else {
            return names;
        };
        for w in &mine.endpoints {
            let id = &w.endpoint.network_id;
            if self.networks.get(id).is_none_or(|n| n.is_default()) {
                continue;
            }
            for other in self.tasks.values().filter_map(|f| f.on(id)) {
                for a in &other.endpoint.aliases {
                    names
                        .entry(a.to_ascii_lowercase())
                        .or_default()
                        .push(other.endpoint.addr.addr());
                }
            }
        }
        for v in names.values_mut() {
            v.sort();
            v.dedup();
        }
        names
    }
}

/// The bridge device of a new network: `-o com.docker.network.bridge.name` or `shl` and the
/// start of its ID (Docker's `br-<ID>`), under the kernel's 15 bytes.
pub(crate) fn bridge_name(id: &str, options: &BTreeMap<String, String>) -> String {
    match options.get(OPT_BRIDGE_NAME) {
        Some(n) if !n.is_empty() => n.clone(),
        _ => format!("shl{}", id.get(..12).unwrap_or(id)),
    }
}

fn files(dir: &Path) -> Vec<(String, String)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".json")?.to_string();
            let text = std::fs::read_to_string(e.path()).ok()?;
            Some((name, text))
        })
        .collect()
}

fn write_json<T: serde::Serialize>(dir: &Path, name: &str, value: &T) -> Result<(), NetError> {
    let err = |source: std::io::Error| NetError::Netns {
        path: dir.join(format!("{name}.json")),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let text = serde_json::to_vec_pretty(value).map_err(|e| err(std::io::Error::other(e)))?;
    let tmp = dir.join(format!(".{name}.json.tmp"));
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, dir.join(format!("{name}.json"))).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::Timestamp;

    fn net(id: &str, name: &str, subnet: &str) -> LocalNetwork {
        let subnet: Ipv4Net = subnet.parse().expect("subnet");
        LocalNetwork {
            id: id.into(),
            name: name.into(),
            driver: "bridge".into(),
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            internal: false,
            gateway: subnet.hosts().next().expect("a host"),
            subnet,
            bridge: bridge_name(id, &BTreeMap::new()),
            created: Timestamp(1),
        }
    }

    fn wired(network: &str, addr: &str, aliases: &[&str]) -> Wired {
        Wired {
            endpoint: LocalEndpoint {
                network_id: network.into(),
                endpoint_id: String::new(),
                addr: addr.parse().expect("addr"),
                gateway: Ipv4Addr::UNSPECIFIED,
                mac: String::new(),
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
            },
            ifname: "eth0".into(),
            host_veth: "x".into(),
        }
    }

    #[test]
    fn records_are_kept_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = LocalState::load(dir.path());
        s.save_network(net(&"a".repeat(64), "bridge", "172.17.0.0/16"))
            .expect("saved");
        s.save_network(net(&"b".repeat(64), "app", "172.19.0.0/16"))
            .expect("saved");
        let t = Id::from_raw("t1");
        s.save_task(
            &t,
            TaskFile {
                endpoints: vec![wired(&"b".repeat(64), "172.19.0.2/16", &["web"])],
                published: vec![PortBinding {
                    host_port: 18080,
                    container_port: 80,
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .expect("saved");
        let again = LocalState::load(dir.path());
        assert_eq!(again.networks, s.networks);
        assert_eq!(again.tasks, s.tasks);
        assert_eq!(again.tasks[&t].version, LOCAL_NET_FORMAT);
        assert_eq!(again.resolve("app").map(|n| n.name.as_str()), Some("app"));
        assert_eq!(again.resolve("bbb").map(|n| n.name.as_str()), Some("app"));
        assert_eq!(
            again.resolve(&"a".repeat(64)).map(|n| n.name.as_str()),
            Some("bridge")
        );
        assert!(again.resolve("c").is_none());
        assert_eq!(again.attached(&"b".repeat(64)), vec![t.clone()]);

        // Another version is left alone, not misread.
        std::fs::write(
            dir.path().join("local/tasks/t2.json"),
            r#"{"version":99,"endpoints":[]}"#,
        )
        .expect("write");
        let mut again = LocalState::load(dir.path());
        assert!(!again.tasks.contains_key(&Id::from_raw("t2")));
        again.forget_task(&t);
        again.forget_network(&"b".repeat(64));
        let again = LocalState::load(dir.path());
        assert!(again.tasks.is_empty());
        assert_eq!(again.networks.len(), 1);
    }

    #[test]
    fn the_on_disk_shape_is_pinned() {
        let text = r#"{"version":1,"endpoints":[{"endpoint":{"network_id":"n","endpoint_id":"e","addr":"172.19.0.2/16","gateway":"172.19.0.1","mac":"02:42:ac:13:00:02","aliases":["web"]},"ifname":"eth0","host_veth":"sht1"}],"published":[{"host_ip":null,"host_port":18080,"container_port":80,"protocol":"tcp"}]}"#;
        let f: TaskFile = serde_json::from_str(text).expect("a task record");
        assert_eq!(f.endpoints[0].endpoint.aliases, ["web"]);
        assert_eq!(f.published[0].host_port, 18080);
        assert_eq!(serde_json::to_string(&f).expect("json"), text);
    }

    #[test]
    fn subnets_avoid_the_node_s_routes_and_other_networks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = LocalState::load(dir.path());
        let used: Vec<Ipv4Net> = vec!["172.17.0.0/16".parse().expect("net")];
        assert_eq!(
            s.pick_subnet(&used).map(|n| n.to_string()).as_deref(),
            Some("172.18.0.0/16")
        );
        s.save_network(net("x", "x", "172.18.0.0/16"))
            .expect("saved");
        assert_eq!(
            s.pick_subnet(&used).map(|n| n.to_string()).as_deref(),
            Some("172.19.0.0/16")
        );
        // A route covering all of 172.16.0.0/12 sends it to 192.168.
        let wide: Vec<Ipv4Net> = vec!["172.16.0.0/12".parse().expect("net")];
        assert_eq!(
            s.pick_subnet(&wide).map(|n| n.to_string()).as_deref(),
            Some("192.168.0.0/20")
        );
        assert_eq!(
            s.overlapping(&"172.18.5.0/24".parse().expect("net"))
                .map(|n| n.name.as_str()),
            Some("x")
        );
    }

    #[test]
    fn names_are_those_of_the_user_defined_networks_shared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = LocalState::load(dir.path());
        let mut default = net("d", "bridge", "172.17.0.0/16");
        default.name = shoal_types::local_net::DEFAULT_NETWORK.into();
        s.save_network(default).expect("saved");
        s.save_network(net("a", "a", "172.18.0.0/16"))
            .expect("saved");
        s.save_network(net("b", "b", "172.19.0.0/16"))
            .expect("saved");
        let task = |eps: Vec<Wired>| TaskFile {
            endpoints: eps,
            ..Default::default()
        };
        let (t1, t2, t3) = (Id::from_raw("t1"), Id::from_raw("t2"), Id::from_raw("t3"));
        s.save_task(
            &t1,
            task(vec![
                wired("a", "172.18.0.2/16", &["One"]),
                wired("d", "172.17.0.2/16", &["one-d"]),
            ]),
        )
        .expect("saved");
        s.save_task(
            &t2,
            task(vec![
                wired("a", "172.18.0.3/16", &["two", "svc"]),
                wired("d", "172.17.0.3/16", &["two-d"]),
            ]),
        )
        .expect("saved");
        s.save_task(&t3, task(vec![wired("b", "172.19.0.2/16", &["svc"])]))
            .expect("saved");
        let names = s.names_of(&t1);
        assert_eq!(
            names.keys().cloned().collect::<Vec<_>>(),
            ["one", "svc", "two"],
            "nothing of the default network, nothing of b"
        );
        assert_eq!(names["svc"], [Ipv4Addr::new(172, 18, 0, 3)]);
        assert_eq!(
            s.free_addr(&s.networks["a"].clone()).expect("free"),
            Ipv4Addr::new(172, 18, 0, 4)
        );
    }
}
