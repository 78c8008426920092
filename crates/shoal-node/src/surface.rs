//! The daemon as its front ends see it ([`NodeSurface`]): swarm transitions, the node's
//! membership with its manager as a [`ControlSurface`](shoal_control::ControlSurface) (never the
//! store), task logs from whichever node runs the task, and the node's runtime.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use shoal_control::{InitRequest, JoinRequest, Membership, NodeError, NodeSurface};
use shoal_runtime::LogStreamKind;
use shoal_runtime::{LogLine, LogOptions, LogStream, RuntimeDriver, RuntimeError};
use shoal_types::Id;

use crate::{Daemon, wire};

#[async_trait]
impl NodeSurface for Daemon {
    async fn swarm_init(&self, req: InitRequest) -> Result<Id, NodeError> {
        Daemon::swarm_init(self, req).await
    }

    async fn swarm_join(&self, req: JoinRequest) -> Result<(), NodeError> {
        Daemon::swarm_join(self, req).await
    }

    async fn swarm_leave(&self, force: bool) -> Result<(), NodeError> {
        Daemon::swarm_leave(self, force).await
    }

    fn locked(&self) -> bool {
        self.is_locked()
    }

    async fn swarm_unlock(&self, key: &str) -> Result<(), NodeError> {
        Daemon::swarm_unlock(self, key).await
    }

    async fn swarm(&self) -> Option<Membership> {
        let active = self.current()?;
        let identity = active.identity();
        Some(Membership {
            node_id: identity.node_id,
            advertise_addr: identity.advertise_addr,
            managers: identity.managers,
            manager: active
                .manager()
                .map(|m| Arc::new(m) as Arc<dyn shoal_control::ControlSurface>),
        })
    }

    async fn task_logs(
        &self,
        task_id: &Id,
        node: Option<(&Id, &str)>,
        opts: LogOptions,
    ) -> Result<LogStream, RuntimeError> {
        let active = self.current();
        let local = match (&active, node) {
            (Some(a), Some((node_id, _))) => a.identity().node_id == *node_id,
            _ => true,
        };
        if local {
            return match active {
                Some(a) => a.agent.logs(task_id, opts).await,
                None => self.driver().logs(task_id, opts).await,
            };
        }
        let (Some(a), Some((node_id, endpoint))) = (active, node) else {
            return Err(RuntimeError::NotFound(task_id.clone()));
        };
        let req = wire::LogsRequest {
            task_id: task_id.clone(),
            follow: opts.follow,
            tail: opts.tail,
            since: opts.since,
            stdout: opts.stdout,
            stderr: opts.stderr,
        };
        let stream = a
            .rpc
            .stream::<_, wire::WireLogLine>(endpoint, wire::LOGS, &req)
            .await
            .map_err(|e| RuntimeError::failed(format!("logs from node {node_id}"), e))?;
        let doing = format!("logs from node {node_id}");
        Ok(Box::pin(stream.map(move |l| {
            use base64::Engine;
            let l = l.map_err(|e| RuntimeError::failed(doing.clone(), e))?;
            let line = base64::engine::general_purpose::STANDARD
                .decode(l.line.as_bytes())
                .map_err(|e| RuntimeError::failed("a log line is not base64", e))?;
            Ok(LogLine {
                time: l.time,
                stream: if l.stderr {
                    LogStreamKind::Stderr
                } else {
                    LogStreamKind::Stdout
                },
                line: line.into(),
            })
        })))
    }

    fn data_dir(&self) -> &Path {
        Daemon::data_dir(self)
    }

    fn driver(&self) -> Arc<dyn RuntimeDriver> {
        Daemon::driver(self)
    }

    fn runtime_name(&self) -> &'static str {
        Daemon::runtime_name(self)
    }

    fn engine(&self) -> Arc<dyn shoal_control::Engine> {
        self.engine.clone()
    }
}
