//! The Kubernetes API, served for `kubectl` on every manager beside the Docker Engine API.
//!
//! Requests are translated to shoal's one object model and go through the manager's control
//! surface ([`shoal_control`]) as the Docker front end's do: a Deployment is a replicated
//! service, a DaemonSet a global one, a Pod a task, a Node a node, a namespace a stack
//! ([`objects`]). Nothing past the control surface knows which front end a request came from.
//!
//! Reads and watches are served from [`cache`], kept current from the manager's change feed.

pub mod cache;
pub mod discovery;
pub mod events;
pub mod exec;
pub mod logs;
pub mod names;
pub mod objects;
pub mod openapi;
pub mod payloads;
pub mod proto;
pub mod registry;
pub mod selector;
pub mod server;
pub mod smp;
pub mod status;
pub mod table;
pub mod workload;
pub mod writes;

use std::sync::Arc;

use shoal_control::NodeSurface;

pub use server::KubeState;

/// Serves the API on `listener` until `state.shutdown` flips; keeps the cache current
/// meanwhile.
pub async fn serve<L>(listener: L, state: KubeState) -> std::io::Result<()>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let feeder = tokio::spawn(feed(
        state.daemon.clone(),
        state.cache.clone(),
        state.shutdown.clone(),
    ));
    let mut stop = state.shutdown.clone();
    let router = server::router(state);
    let r = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    feeder.abort();
    r
}

/// Syncs the cache at every change the node's manager applies, while the node is one.
async fn feed(
    daemon: Arc<dyn NodeSurface>,
    cache: Arc<cache::Cache>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let manager = daemon.swarm().await.and_then(|s| s.manager);
        let Some(m) = manager else {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
            }
        };
        let mut changes = m.changes();
        cache.sync(m.view().as_ref());
        loop {
            tokio::select! {
                v = changes.next() => match v {
                    Some(_) => {
                        cache.sync(m.view().as_ref());
                    }
                    None => break,
                },
                _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
            }
        }
    }
}
