//! Several Raft members in one process over an in-memory transport: joining voters, forwarded
//! writes, leader loss, quorum loss and `force_new_cluster`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use shoal_store::network::{Network, RaftTransport, TransportError};
use shoal_store::{Applied, Op, Proposal, ProposeError, RaftTiming, Store, TypeConfig};
use shoal_types::service::{Service, ServiceSpec};
use shoal_types::{Id, Timestamp};

#[derive(Default)]
struct Mem {
    peers: Mutex<HashMap<String, Store>>,
    down: Mutex<HashSet<String>>,
    /// Added to every AppendEntries: a slow network, so a new leader's first round takes time.
    append_delay: Mutex<Duration>,
}

impl Mem {
    fn get(&self, addr: &str) -> Result<Store, TransportError> {
        if self.down.lock().expect("lock").contains(addr) {
            return Err(TransportError::Unreachable {
                addr: addr.into(),
                source: shoal_types::error::Remote::cause("down"),
            });
        }
        self.peers
            .lock()
            .expect("lock")
            .get(addr)
            .cloned()
            .ok_or_else(|| TransportError::Unreachable {
                addr: addr.into(),
                source: shoal_types::error::Remote::cause("unknown"),
            })
    }
}

fn remote(addr: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::Remote {
        addr: addr.into(),
        why: e.to_string(),
    }
}

struct MemTransport(Arc<Mem>);

#[async_trait]
impl RaftTransport for MemTransport {
    async fn append_entries(
        &self,
        addr: &str,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<u64>, TransportError> {
        let delay = *self.0.append_delay.lock().expect("lock");
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.0
            .get(addr)?
            .raft()
            .append_entries(req)
            .await
            .map_err(|e| remote(addr, e))
    }
    async fn vote(
        &self,
        addr: &str,
        req: VoteRequest<u64>,
    ) -> Result<VoteResponse<u64>, TransportError> {
        self.0
            .get(addr)?
            .raft()
            .vote(req)
            .await
            .map_err(|e| remote(addr, e))
    }
    async fn install_snapshot(
        &self,
        addr: &str,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<u64>, TransportError> {
        self.0
            .get(addr)?
            .raft()
            .install_snapshot(req)
            .await
            .map_err(|e| remote(addr, e))
    }
    async fn propose(&self, addr: &str, p: Proposal) -> Result<Applied, ProposeError> {
        let store = self.0.get(addr).map_err(|_| ProposeError::NoLeader)?;
        store.propose_local(p).await
    }
}

fn timing() -> RaftTiming {
    RaftTiming {
        heartbeat: Duration::from_millis(50),
        election_min: Duration::from_millis(200),
        election_max: Duration::from_millis(400),
        snapshot_every: 50,
        keep_after_snapshot: 5,
    }
}

fn service(n: u64) -> Op {
    Op::CreateService(Service {
        id: Id::from_raw(format!("svc{n:022}")),
        spec: ServiceSpec {
            name: format!("s{n}"),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// Every member seals with the same fixed data key (as if each node's were this one).
fn sealer() -> shoal_store::Sealer {
    shoal_store::Sealer::new(&shoal_store::seal::SecretKey::from_bytes([7; 32]))
}

async fn member(mem: &Arc<Mem>, dir: &std::path::Path, id: u64) -> Store {
    member_with(mem, dir, id, timing()).await
}

async fn member_with(mem: &Arc<Mem>, dir: &std::path::Path, id: u64, timing: RaftTiming) -> Store {
    let net = Network::new(Arc::new(MemTransport(mem.clone())));
    let s = Store::open(&dir.join(format!("m{id}")), id, timing, net, sealer())
        .await
        .expect("open");
    mem.peers
        .lock()
        .expect("lock")
        .insert(format!("m{id}"), s.clone());
    s
}

async fn wait_leader(stores: &[&Store], not: Option<u64>) -> u64 {
    for _ in 0..200 {
        let leaders: HashSet<u64> = stores.iter().filter_map(|s| s.leader()).collect();
        if leaders.len() == 1 {
            let l = *leaders.iter().next().expect("one");
            if Some(l) != not && stores.iter().any(|s| s.raft_id() == l && s.is_leader()) {
                return l;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no single leader");
}

async fn wait_services(s: &Store, n: usize) {
    for _ in 0..400 {
        if s.view().services().count() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "member {} has {} services, wanted {n}",
        s.raft_id(),
        s.view().services().count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_replicate_forward_and_survive_a_leader_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mem = Arc::new(Mem::default());
    let a = member(&mem, dir.path(), 1).await;
    a.bootstrap("m1").await.expect("bootstrap");
    wait_leader(&[&a], None).await;
    for n in 0..60 {
        a.propose(Proposal::atomic(Timestamp(n as i64), vec![service(n)]))
            .await
            .expect("write");
    }
    // The second and third members join after a snapshot and a purge: they catch up from it.
    a.trigger_snapshot().await.expect("snapshot");
    let b = member(&mem, dir.path(), 2).await;
    let c = member(&mem, dir.path(), 3).await;
    a.add_voter(2, "m2").await.expect("add 2");
    a.add_voter(3, "m3").await.expect("add 3");
    assert_eq!(a.members().values().filter(|(_, voter)| *voter).count(), 3);
    wait_services(&c, 60).await;

    // A follower forwards writes to the leader.
    let applied = c
        .propose(Proposal::atomic(Timestamp(100), vec![service(100)]))
        .await
        .expect("forwarded");
    assert_eq!(applied.results, vec![Ok(())]);
    wait_services(&b, 61).await;

    // The leader dies: the others elect a new one and keep every acknowledged write.
    mem.down.lock().expect("lock").insert("m1".into());
    a.shutdown().await;
    let l = wait_leader(&[&b, &c], Some(1)).await;
    assert!(l == 2 || l == 3);
    b.propose(Proposal::atomic(Timestamp(101), vec![service(101)]))
        .await
        .expect("write after failover");
    wait_services(&c, 62).await;
    // b may have forwarded that write to c: it applies the entry once the leader's next
    // heartbeat tells it the entry is committed, which must happen before c goes away.
    wait_services(&b, 62).await;

    // With two of three gone, writes fail fast with Docker's message; reads still work.
    mem.down.lock().expect("lock").insert("m3".into());
    c.shutdown().await;
    let err = b
        .propose(Proposal::atomic(Timestamp(102), vec![service(102)]))
        .await
        .expect_err("no quorum");
    assert!(
        err.to_string()
            .starts_with("The swarm does not have a leader"),
        "{err}"
    );
    assert_eq!(b.view().services().count(), 62);
    b.shutdown().await;
    drop(b);

    // force_new_cluster on the survivor keeps every object and makes it a group of one.
    let last = shoal_store::storage::force_new_cluster(
        &dir.path().join("m2").join("state.redb"),
        2,
        "m2",
        &sealer(),
    )
    .expect("rewrite");
    assert!(last > 0);
    let mem2 = Arc::new(Mem::default());
    let b = member(&mem2, dir.path(), 2).await;
    wait_leader(&[&b], None).await;
    // Every acknowledged write is there. The refused one may be too: it reached this member's
    // log, and recovery keeps the whole local log so that no acknowledged write can be lost.
    let view = b.view();
    for n in (0..60).chain([100, 101]) {
        assert!(
            view.service_by_name(&format!("s{n}")).is_some(),
            "acknowledged s{n} lost"
        );
    }
    let kept = view.services().count();
    assert_eq!(b.members().len(), 1);
    b.propose(Proposal::atomic(Timestamp(103), vec![service(103)]))
        .await
        .expect("writes again");
    // And it can grow again: a fresh member joins and catches up.
    let d = member(&mem2, dir.path(), 4).await;
    b.add_voter(4, "m4").await.expect("add 4");
    wait_services(&d, kept + 1).await;
    b.shutdown().await;
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_right_after_an_election_waits_for_the_first_heartbeat_round() {
    // A slow network (AppendEntries take 100 ms, within the 200 ms RPC timeout) makes a new
    // leader's first heartbeat round take that long: a write sent the moment it is elected must
    // wait for the round and succeed, not fail with "no quorum".
    let timing = RaftTiming {
        heartbeat: Duration::from_millis(200),
        election_min: Duration::from_millis(400),
        election_max: Duration::from_millis(600),
        snapshot_every: 0,
        keep_after_snapshot: 0,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mem = Arc::new(Mem::default());
    let a = member_with(&mem, dir.path(), 1, timing.clone()).await;
    a.bootstrap("m1").await.expect("bootstrap");
    wait_leader(&[&a], None).await;
    let b = member_with(&mem, dir.path(), 2, timing.clone()).await;
    let c = member_with(&mem, dir.path(), 3, timing.clone()).await;
    a.add_voter(2, "m2").await.expect("add 2");
    a.add_voter(3, "m3").await.expect("add 3");
    a.propose(Proposal::atomic(Timestamp(1), vec![service(1)]))
        .await
        .expect("write");
    wait_services(&b, 1).await;
    wait_services(&c, 1).await;

    *mem.append_delay.lock().expect("lock") = Duration::from_millis(100);
    mem.down.lock().expect("lock").insert("m1".into());
    a.shutdown().await;
    // Catch the new leader the moment it knows it leads.
    let mut tries = 0;
    let leader = loop {
        if let Some(s) = [&b, &c].into_iter().find(|s| s.is_leader()) {
            break s;
        }
        tries += 1;
        assert!(tries < 20_000, "no new leader");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let fresh = leader
        .raft()
        .metrics()
        .borrow()
        .millis_since_quorum_ack
        .is_none();
    let applied = leader
        .propose_local(Proposal::atomic(Timestamp(2), vec![service(2)]))
        .await
        .expect("a write right after the election");
    assert_eq!(applied.results, vec![Ok(())]);
    assert!(
        fresh,
        "the write did not test a fresh leader: it had heard from a majority already"
    );
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_removes_itself_stops_calling_itself_leader() {
    // `docker node demote` of the leader: it commits a membership without itself, and from then
    // on it hears from no one. It must not go on answering as the leader (refusing writes for
    // want of a quorum, never forwarding them); the others elect a leader and carry on.
    let dir = tempfile::tempdir().expect("tempdir");
    let mem = Arc::new(Mem::default());
    let a = member(&mem, dir.path(), 1).await;
    a.bootstrap("m1").await.expect("bootstrap");
    wait_leader(&[&a], None).await;
    let b = member(&mem, dir.path(), 2).await;
    let c = member(&mem, dir.path(), 3).await;
    a.add_voter(2, "m2").await.expect("add 2");
    a.add_voter(3, "m3").await.expect("add 3");
    a.propose(Proposal::atomic(Timestamp(1), vec![service(1)]))
        .await
        .expect("write");

    a.remove_member(1).await.expect("the leader removes itself");
    let l = wait_leader(&[&b, &c], Some(1)).await;
    assert!(l == 2 || l == 3, "{l}");
    for _ in 0..200 {
        if !a.is_leader() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        !a.is_leader(),
        "the removed member still calls itself leader"
    );
    assert_ne!(a.leader(), Some(1));
    b.propose(Proposal::atomic(Timestamp(2), vec![service(2)]))
        .await
        .expect("the rest of the group takes writes");
    wait_services(&c, 2).await;
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}
