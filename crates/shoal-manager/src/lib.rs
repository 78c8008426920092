//! A manager: the store plus everything that acts on it. [`Manager`] is this node's manager,
//! when it is one: [`Manager::start`] runs the orchestrator, scheduler, cluster-upkeep,
//! log-compaction and node-liveness loops, each a [`driver::Controller`] on the one keyed loop
//! skeleton ([`driver::run`]); [`Control`] is the validated API behind the front ends' control
//! surface ([`shoal_control::ControlSurface`], implemented by [`Manager`] with read views from
//! [`views`]); [`Dispatcher`] serves node agents.

pub mod api_certs;
pub mod attachments;
pub mod autolock;
pub mod cluster;
pub mod control;
pub mod controllers;
pub mod dispatcher;
pub mod driver;
pub mod error;
pub mod loops;
pub mod names;
pub mod netmap;
pub mod networks;
pub mod payloads;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod validate;
mod validate_container;
pub mod validate_resources;
mod validate_template;
pub mod views;
pub mod workqueue;

use std::sync::{Arc, Mutex};

pub use control::Control;
pub use controllers::LoopStats;
pub use dispatcher::Dispatcher;
pub use error::ControlError;
use shoal_store::Store;
use shoal_types::{Clock, IdGen};
use tokio::sync::watch;

/// This node's manager: the store, the control API, the dispatcher, and the loops acting on the
/// store. Clones share one running manager; the node's RPC routes, its lifecycle and (as a
/// [`shoal_control::ControlSurface`]) its front ends all hold one.
#[derive(Clone)]
pub struct Manager {
    pub store: Store,
    pub control: Control,
    pub dispatcher: Arc<Dispatcher>,
    running: Arc<Running>,
    stats: Stats,
}

struct Running {
    shutdown: watch::Sender<bool>,
    loops: tokio::sync::Mutex<tokio::task::JoinSet<()>>,
}

/// What the keyed loops have done since the manager started.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub orchestrator: Arc<LoopStats>,
    pub scheduler: Arc<LoopStats>,
}

impl Manager {
    /// Starts the manager's loops on an open store.
    pub fn start(store: Store, clock: Arc<dyn Clock>, ids: IdGen) -> Manager {
        let ids = Arc::new(Mutex::new(ids));
        let heartbeat = store
            .view()
            .cluster()
            .map_or(std::time::Duration::from_secs(5), |c| {
                c.spec.heartbeat_period
            });
        let control = Control::new(store.clone(), clock.clone(), ids.clone());
        let dispatcher = Dispatcher::new(store.clone(), clock.clone(), heartbeat);
        let (shutdown, rx) = watch::channel(false);
        let stats = Stats::default();
        let mut loops = tokio::task::JoinSet::new();
        let orchestrator = controllers::Orchestrator::new(ids.clone(), stats.orchestrator.clone());
        loops.spawn(driver::run(
            orchestrator,
            store.clone(),
            clock.clone(),
            rx.clone(),
        ));
        let scheduler = controllers::Scheduler::new(ids.clone(), stats.scheduler.clone());
        loops.spawn(driver::run(
            scheduler,
            store.clone(),
            clock.clone(),
            rx.clone(),
        ));
        let upkeep = controllers::ClusterUpkeep::new(store.clone(), ids.clone());
        loops.spawn(driver::run(
            upkeep,
            store.clone(),
            clock.clone(),
            rx.clone(),
        ));
        loops.spawn(driver::run(
            controllers::Compactor,
            store.clone(),
            clock.clone(),
            rx.clone(),
        ));
        let liveness = dispatcher::Liveness(dispatcher.clone());
        loops.spawn(driver::run(liveness, store.clone(), clock, rx));
        Manager {
            store,
            control,
            dispatcher,
            running: Arc::new(Running {
                shutdown,
                loops: tokio::sync::Mutex::new(loops),
            }),
            stats,
        }
    }

    /// Work counters of the keyed loops.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Stops the loops, then the store. Every clone sees the manager stopped; stopping twice
    /// waits for the first stop's loops again and shuts the (already shut) store down again.
    pub async fn stop(self) {
        let _ = self.running.shutdown.send(true);
        // Agents' sessions end now (they reconnect to another manager) rather than holding the
        // RPC server open until its drain deadline.
        self.dispatcher.close_all();
        {
            let mut loops = self.running.loops.lock().await;
            while loops.join_next().await.is_some() {}
        }
        self.store.shutdown().await;
    }
}
