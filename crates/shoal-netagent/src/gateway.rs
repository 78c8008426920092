//! The node's gateway network, its tasks' way out (Docker's `docker_gwbridge`): a bridge in
//! the node's namespace with a subnet of the node's own, masqueraded on the way out, and one
//! address there per networked task.
//!
//! Node-local, so kept on the node's disk rather than in the replicated state: the subnet in
//! `<dir>/gateway/subnet`, each task's address in `<dir>/gateway/tasks/<ID>`, so a restarted
//! daemon hands out no address an adopted task still holds.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use shoal_ipam::{Ipv4Net, NetworkAddrs};
use shoal_net::NetError;
use shoal_types::Id;

/// Where the gateway subnet is picked from: the first of these /16s that nothing on the node
/// routes yet (Docker picks `docker_gwbridge`'s among the same private ranges).
fn candidates() -> impl Iterator<Item = Ipv4Net> {
    (18..=31u8).filter_map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).ok())
}

#[derive(Debug)]
pub(crate) struct Gateway {
    dir: PathBuf,
    addrs: NetworkAddrs,
    held: BTreeMap<Id, Ipv4Addr>,
}

impl Gateway {
    /// The gateway as the node's disk has it, or a new one whose subnet overlaps nothing
    /// routed in `node_netns`.
    pub(crate) fn load(dir: &Path, node_netns: &Path) -> Gateway {
        let dir = dir.join("gateway");
        let saved = std::fs::read_to_string(dir.join("subnet"))
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Net>().ok());
        let subnet = saved.unwrap_or_else(|| {
            let used = shoal_net::ipv4_in_use(node_netns).unwrap_or_else(|e| {
                tracing::warn!(error = %shoal_types::error::Chain(&e), "network: reading the node's routes failed; picking the gateway subnet blind");
                Vec::new()
            });
            let free = candidates()
                .find(|c| !used.iter().any(|u| u.contains(c) || c.contains(u)))
                .unwrap_or_else(|| candidates().next().unwrap_or_default());
            let _ = std::fs::create_dir_all(&dir);
            if let Err(e) = std::fs::write(dir.join("subnet"), free.to_string()) {
                tracing::warn!(error = %e, "network: recording the gateway subnet failed");
            }
            free
        });
        let bridge = subnet.hosts().next().unwrap_or(subnet.network());
        let mut held = BTreeMap::new();
        for e in std::fs::read_dir(dir.join("tasks"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(a) = std::fs::read_to_string(e.path())
                .ok()
                .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
                .filter(|a| subnet.contains(a))
            {
                held.insert(Id::from_raw(&name), a);
            }
        }
        Gateway {
            dir,
            addrs: NetworkAddrs {
                subnet,
                gateway: bridge,
                range: subnet,
            },
            held,
        }
    }

    pub(crate) fn subnet(&self) -> Ipv4Net {
        self.addrs.subnet
    }

    /// The bridge's own address: the tasks' default gateway.
    pub(crate) fn bridge_addr(&self) -> Ipv4Addr {
        self.addrs.gateway
    }

    pub(crate) fn addr_of(&self, task: &Id) -> Option<Ipv4Addr> {
        self.held.get(task).copied()
    }

    /// The task's address, given now unless it holds one already.
    pub(crate) fn take(&mut self, task: &Id) -> Result<Ipv4Addr, NetError> {
        if let Some(a) = self.addr_of(task) {
            return Ok(a);
        }
        let taken: std::collections::BTreeSet<Ipv4Addr> = self.held.values().copied().collect();
        let a = shoal_ipam::allocate_address(&self.addrs, &taken).map_err(|e| {
            NetError::Missing(format!("the node's gateway network {}: {e}", self.subnet()))
        })?;
        let tasks = self.dir.join("tasks");
        std::fs::create_dir_all(&tasks)
            .and_then(|()| std::fs::write(tasks.join(task.as_str()), a.to_string()))
            .map_err(|source| NetError::Netns {
                path: tasks.clone(),
                source,
            })?;
        self.held.insert(task.clone(), a);
        Ok(a)
    }

    pub(crate) fn release(&mut self, task: &Id) {
        if self.held.remove(task).is_some() {
            let _ = std::fs::remove_file(self.dir.join("tasks").join(task.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_kept_on_disk_and_given_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("gateway")).expect("dir");
        std::fs::write(dir.path().join("gateway/subnet"), "172.20.0.0/16").expect("subnet");
        let mut g = Gateway::load(dir.path(), Path::new("/nonexistent"));
        assert_eq!(g.subnet().to_string(), "172.20.0.0/16");
        assert_eq!(g.bridge_addr(), Ipv4Addr::new(172, 20, 0, 1));
        let (a, b) = (Id::from_raw("a"), Id::from_raw("b"));
        let first = g.take(&a).expect("a");
        assert_eq!(first, Ipv4Addr::new(172, 20, 0, 2));
        assert_eq!(g.take(&a).expect("again"), first, "one address per task");
        let second = g.take(&b).expect("b");
        assert_ne!(first, second);
        // A restarted daemon sees what its tasks hold.
        let mut again = Gateway::load(dir.path(), Path::new("/nonexistent"));
        assert_eq!(again.addr_of(&a), Some(first));
        assert_eq!(again.addr_of(&b), Some(second));
        again.release(&a);
        let again = Gateway::load(dir.path(), Path::new("/nonexistent"));
        assert_eq!(again.addr_of(&a), None);
        assert_eq!(again.addr_of(&b), Some(second));
    }
}
