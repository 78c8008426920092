//! A manager: the store plus everything that acts on it. [`Manager::start`] runs the
//! orchestrator, scheduler and node-liveness loops; [`Control`] is the validated API for front
//! ends; [`Dispatcher`] serves node agents.

pub mod cluster;
pub mod control;
pub mod dispatcher;
pub mod error;
pub mod loops;
pub mod names;
pub mod validate;
mod validate_container;
pub mod validate_resources;
mod validate_template;

use std::sync::{Arc, Mutex};

pub use control::Control;
pub use dispatcher::Dispatcher;
pub use error::ControlError;
use shoal_store::Store;
use shoal_types::{Clock, IdGen};
use tokio::sync::watch;

pub struct Manager {
    pub store: Store,
    pub control: Control,
    pub dispatcher: Arc<Dispatcher>,
    shutdown: watch::Sender<bool>,
    loops: tokio::task::JoinSet<()>,
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
        let mut loops = tokio::task::JoinSet::new();
        loops.spawn(loops::orchestrator_loop(
            store.clone(),
            clock.clone(),
            ids.clone(),
            rx.clone(),
        ));
        loops.spawn(loops::scheduler_loop(
            store.clone(),
            clock.clone(),
            ids.clone(),
            rx.clone(),
        ));
        loops.spawn(loops::cluster_loop(
            store.clone(),
            clock.clone(),
            ids.clone(),
            rx.clone(),
        ));
        loops.spawn(loops::snapshot_loop(store.clone(), rx.clone()));
        loops.spawn(dispatcher.clone().run_liveness(rx));
        Manager {
            store,
            control,
            dispatcher,
            shutdown,
            loops,
        }
    }

    /// Stops the loops, then the store.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        // Agents' sessions end now (they reconnect to another manager) rather than holding the
        // RPC server open until its drain deadline.
        self.dispatcher.close_all();
        while self.loops.join_next().await.is_some() {}
        self.store.shutdown().await;
    }
}
