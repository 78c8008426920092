//! Read views the manager computes for front ends: facts that need more than one object, or
//! state outside the object model (the Raft group), in shoal's terms. Front ends only render
//! them.

use std::collections::BTreeSet;

/// A service's task counts, as `docker service ls` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStatus {
    /// Tasks running on nodes that are not down.
    pub running: u64,
    /// Tasks the service wants running now.
    pub desired: u64,
    /// Tasks that completed (jobs).
    pub completed: u64,
}

/// The Raft group as this manager sees it: who leads, and which member IDs vote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftMembership {
    pub leader: Option<u64>,
    pub voters: BTreeSet<u64>,
}

/// How many of the voting managers the swarm can count on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quorum {
    /// Managers that lead or are voters on a ready node.
    pub reachable: usize,
    /// Voting managers (at least 1).
    pub voters: usize,
}

impl Quorum {
    /// Whether a majority of the voters is reachable.
    pub fn holds(&self) -> bool {
        self.reachable * 2 > self.voters
    }

    /// The number of reachable voters a majority needs.
    pub fn needed(&self) -> usize {
        self.voters / 2 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_majority_holds_the_quorum() {
        let q = |reachable, voters| Quorum { reachable, voters };
        assert!(q(1, 1).holds());
        assert!(!q(1, 2).holds());
        assert!(q(2, 3).holds());
        assert!(!q(1, 3).holds());
        assert_eq!(q(0, 3).needed(), 2);
        assert_eq!(q(0, 4).needed(), 3);
    }
}

/// What `secret rotate` / `config rotate` did: the payload's new version and the services that
/// now roll to it.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub payload: std::sync::Arc<shoal_types::Payload>,
    pub version: u64,
    pub services: Vec<shoal_types::Id>,
}
