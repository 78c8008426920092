//! One task's runner: a tokio task that loops the pure [`controller::step`], performs the runtime
//! call it asks for, turns the result into new [`Facts`], and queues every transition with the
//! reporter. It learns of new desired states through a watch channel, and cancels an in-flight
//! `wait` (only that call: prepare/start/stop always run to the end) when the desired state
//! changes, so the driver never sees two start/stop calls for one task at once.

use shoal_types::error::chain;
use std::sync::Arc;
use std::time::Duration;

use shoal_types::payload::{Delivery, PayloadKind};
use shoal_types::template::{self, TemplateError};
use shoal_types::{Clock, Id, NodeDescription, Task, TaskState};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::controller::{self, Facts, Op, Step};
use super::reporter::Reporter;
use shoal_runtime::{Health, RuntimeDriver, RuntimeError, RuntimeTaskState, TaskFile, TaskRun};

/// How often a checked task's health is read while it is `starting`, and once it is healthy.
/// The runtime runs the checks at their own interval; this only bounds how late the agent
/// notices a change.
const HEALTH_POLL_STARTING: Duration = Duration::from_millis(250);
const HEALTH_POLL_HEALTHY: Duration = Duration::from_secs(1);

/// What the agent wants of a task right now.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wanted {
    pub task: Task,
    /// The agent itself is shutting down and stopping its tasks.
    pub stop_local: bool,
    /// The task left the node's assignments: stop it if needed, remove it, end the runner.
    pub removed: bool,
}

/// Shared by all runners.
pub(crate) struct Ctx {
    pub driver: Arc<dyn RuntimeDriver>,
    pub reporter: Arc<Reporter>,
    pub clock: Arc<dyn Clock>,
    pub node_id: Id,
    /// What templates in a task's spec (`{{.Node.Hostname}}`) see of this node.
    pub node: NodeDescription,
    /// The secrets and configs the dispatcher last handed this node: only those its tasks
    /// use, held in memory only.
    pub payloads: std::sync::RwLock<Arc<Delivery>>,
}

pub(crate) struct Runner {
    tx: watch::Sender<Wanted>,
    pub join: JoinHandle<()>,
}

impl Runner {
    pub fn spawn(ctx: Arc<Ctx>, task: Task, facts: Facts) -> Runner {
        let (tx, rx) = watch::channel(Wanted {
            task,
            stop_local: false,
            removed: false,
        });
        let join = tokio::spawn(run(ctx, rx, facts));
        Runner { tx, join }
    }

    /// A newer version of the task from the assignments.
    pub fn update(&self, task: Task) {
        self.tx.send_if_modified(|w| {
            let changed = w.task != task;
            w.task = task;
            changed
        });
    }

    pub fn stop_local(&self) {
        self.tx.send_modify(|w| w.stop_local = true);
    }

    pub fn remove(self) -> JoinHandle<()> {
        self.tx.send_modify(|w| w.removed = true);
        self.join
    }
}

pub(crate) fn facts_from_runtime(state: &RuntimeTaskState) -> Facts {
    match state {
        RuntimeTaskState::Created => Facts::Created,
        RuntimeTaskState::Running { pid } => Facts::running(*pid),
        RuntimeTaskState::Exited(e) => Facts::Exited(e.clone()),
    }
}

/// The hostname a task sees: the spec's (expanded), else the short task ID (Docker's default is
/// the short container ID, and the task ID is the container ID here).
fn hostname(task: &Task, expanded: &str) -> String {
    if expanded.is_empty() {
        task.id.short().to_string()
    } else {
        expanded.to_string()
    }
}

/// What the driver runs: the spec with its templates expanded for this task on this node, as
/// Swarm's agent does just before it creates the container (the stored spec keeps the
/// templates), and the task's generic resources appended to the environment as Docker passes
/// them (`DOCKER_RESOURCE_GPU=GPU-a,GPU-b`), so every driver honours them.
fn task_run(task: &Task, node_id: &Id, node: &NodeDescription) -> Result<TaskRun, TemplateError> {
    let ctx = template::Context::for_task(task, node_id, node);
    let mut container = template::expand_container(&task.spec.container, &ctx)?;
    container
        .env
        .extend(shoal_types::generic::env(&task.assigned_generic_resources));
    Ok(TaskRun {
        task_id: task.id.clone(),
        task_name: task.name(),
        service_id: task.service_id.clone(),
        service_name: task.service_name.clone(),
        node_id: node_id.clone(),
        slot: task.slot,
        hostname: hostname(task, &container.hostname),
        container,
        resources: task.spec.resources.clone(),
        networks: task.networks.clone(),
        netns: None,
        files: Vec::new(),
        local_networks: Vec::new(),
        publish: Vec::new(),
    })
}

/// The task's secret and config files from what the node was handed, templates expanded for
/// this task. A payload the node lacks fails the task (the dispatcher sends a task's payloads
/// with the task, so this means it is gone from the cluster).
fn task_files(
    task: &Task,
    node_id: &Id,
    node: &NodeDescription,
    delivery: &Delivery,
) -> Result<Vec<TaskFile>, String> {
    let c = &task.spec.container;
    let refs = c
        .secrets
        .iter()
        .map(|r| (PayloadKind::Secret, r))
        .chain(c.configs.iter().map(|r| (PayloadKind::Config, r)));
    let mut out = Vec::new();
    for (kind, r) in refs {
        let d = delivery.get(kind, &r.id, r.version).ok_or_else(|| {
            format!(
                "{} {:?} version {} was not delivered to this node",
                kind.as_str(),
                r.name,
                r.version
            )
        })?;
        let data = if d.templated {
            let text = std::str::from_utf8(d.data.as_slice())
                .map_err(|_| format!("{} {:?}: a template must be UTF-8", kind.as_str(), r.name))?;
            let ctx = template::Context::for_task(task, node_id, node);
            let expanded = template::parse_named(&r.name, text)
                .and_then(|t| t.expand(&ctx))
                .map_err(|e| format!("{} {:?}: {e}", kind.as_str(), r.name))?;
            shoal_types::payload::Bytes::new(expanded.into_bytes())
        } else {
            d.data.clone()
        };
        let id = |what: &str, v: &str| {
            v.parse::<u32>().map_err(|_| {
                format!(
                    "{} {:?}: {what} {v:?} is not numeric",
                    kind.as_str(),
                    r.name
                )
            })
        };
        out.push(TaskFile {
            path: kind.file_path(&r.target),
            uid: if r.uid.is_empty() {
                0
            } else {
                id("uid", &r.uid)?
            },
            gid: if r.gid.is_empty() {
                0
            } else {
                id("gid", &r.gid)?
            },
            mode: r.mode,
            data,
        });
    }
    Ok(out)
}

enum Done {
    Facts(Facts),
    /// The desired state changed while waiting: step again.
    Interrupted,
    /// The agent dropped this runner.
    Gone,
}

/// The task's health, `None` when the runtime cannot say (a failed read is not a verdict).
async fn health(ctx: &Ctx, id: &Id) -> Health {
    match ctx.driver.health(id).await {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(task.id = %id, error = %shoal_types::error::Chain(&e), "agent: reading a task's health failed");
            Health::None
        }
    }
}

/// Waits for the task's exit, or for its health to differ from `known`.
async fn wait_exit_or_health(
    ctx: &Ctx,
    id: &Id,
    pid: i64,
    known: Health,
    rx: &mut watch::Receiver<Wanted>,
) -> Done {
    let err = |e: RuntimeError| Facts::Error(chain(&e));
    // A task adopted after a restart, or one whose check the runtime set up late, is not
    // known to be checked yet: ask once.
    if known == Health::None {
        let now = health(ctx, id).await;
        if now != Health::None {
            return Done::Facts(Facts::Running { pid, health: now });
        }
    }
    let mut exited = std::pin::pin!(ctx.driver.wait(id));
    loop {
        let poll = match known {
            Health::None => None,
            Health::Starting => Some(HEALTH_POLL_STARTING),
            Health::Healthy | Health::Unhealthy(_) => Some(HEALTH_POLL_HEALTHY),
        };
        tokio::select! {
            r = &mut exited => return Done::Facts(r.map_or_else(err, Facts::Exited)),
            c = rx.changed() => return if c.is_ok() { Done::Interrupted } else { Done::Gone },
            () = async {
                match poll {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            } => {
                let now = health(ctx, id).await;
                if now != known && now != Health::None {
                    return Done::Facts(Facts::Running { pid, health: now });
                }
            }
        }
    }
}

async fn perform(
    ctx: &Ctx,
    task: &Task,
    facts: &Facts,
    op: Op,
    rx: &mut watch::Receiver<Wanted>,
) -> Done {
    let id = &task.id;
    let err = |e: RuntimeError| Facts::Error(chain(&e));
    let facts = match op {
        Op::Prepare => {
            let runtime = &task.spec.runtime;
            if !runtime.is_empty() && runtime != ctx.driver.name() {
                Facts::Error(format!(
                    "runtime {runtime:?} is not available on this node (it runs {:?})",
                    ctx.driver.name()
                ))
            } else {
                let delivery = ctx
                    .payloads
                    .read()
                    .map(|d| d.clone())
                    .unwrap_or_else(|p| p.into_inner().clone());
                let files = task_files(task, &ctx.node_id, &ctx.node, &delivery);
                match (task_run(task, &ctx.node_id, &ctx.node), files) {
                    // The manager checks templates before it stores a spec, so only a task made
                    // before that check (or before tasks carried their service's labels) gets
                    // here; rejecting it beats running it with a raw `{{...}}` hostname.
                    (Err(e), _) => Facts::Error(format!("expanding the task's templates: {e}")),
                    (_, Err(e)) => Facts::Error(e),
                    (Ok(mut run), Ok(files)) => {
                        run.files = files;
                        ctx.driver
                            .prepare(&run)
                            .await
                            .map_or_else(err, |()| Facts::Created)
                    }
                }
            }
        }
        Op::Start => match ctx.driver.start(id).await {
            Ok(pid) => Facts::Running {
                pid,
                health: health(ctx, id).await,
            },
            Err(e) => err(e),
        },
        Op::Wait => {
            let (pid, known) = match facts {
                Facts::Running { pid, health } => (*pid, health.clone()),
                _ => (0, Health::None),
            };
            return wait_exit_or_health(ctx, id, pid, known, rx).await;
        }
        Op::Stop { grace } => match ctx.driver.stop(id, grace).await {
            Ok(()) => Facts::Stopped(ctx.driver.wait(id).await.ok()),
            Err(e) => err(e),
        },
        Op::Kill { grace, err: why } => {
            tracing::warn!(task.id = %id, error = %why, "agent: stopping an unhealthy task");
            match ctx.driver.stop(id, grace).await {
                Ok(()) => Facts::Error(why),
                Err(e) => err(e),
            }
        }
    };
    Done::Facts(facts)
}

async fn run(ctx: Arc<Ctx>, mut rx: watch::Receiver<Wanted>, mut facts: Facts) {
    let id = rx.borrow().task.id.clone();
    let mut status = rx.borrow().task.status.clone();
    loop {
        let wanted = rx.borrow_and_update().clone();
        // Another instance of this agent may have got further before a crash: never go back.
        if wanted.task.status.state > status.state {
            status = wanted.task.status.clone();
        }
        let grace = wanted.task.spec.container.effective_stop_grace();
        if wanted.removed {
            cleanup(&ctx, &id, &facts, grace).await;
            return;
        }
        let mut desired = wanted.task.desired_state;
        if wanted.stop_local {
            desired = desired.max(TaskState::Shutdown);
        }
        match controller::step(
            &status,
            desired,
            &facts,
            grace,
            id.as_str(),
            ctx.clock.now(),
        ) {
            Step::Report(next) => {
                tracing::info!(task.id = %id, from = status.state.as_str(), to = next.state.as_str(),
                    err = %next.err, "agent: task state changed");
                ctx.reporter.push(&id, next.clone());
                status = next;
            }
            Step::Run(op) => {
                tracing::debug!(task.id = %id, ?op, "agent: runtime call");
                match perform(&ctx, &wanted.task, &facts, op, &mut rx).await {
                    Done::Facts(f) => facts = f,
                    Done::Interrupted => {}
                    Done::Gone => return,
                }
            }
            // Stopping for the agent's shutdown ends here, once the task has reached its end.
            Step::Idle if wanted.stop_local && status.state.is_terminal() => return,
            Step::Idle => {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Stops (if it may be running) and removes a task the node no longer runs.
pub(crate) async fn cleanup(ctx: &Ctx, id: &Id, facts: &Facts, grace: Duration) {
    if !matches!(facts, Facts::Exited(_) | Facts::Stopped(_)) {
        match ctx.driver.stop(id, grace).await {
            Ok(()) | Err(RuntimeError::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(task.id = %id, error = %shoal_types::error::Chain(&e), "agent: stopping a removed task failed")
            }
        }
    }
    match ctx.driver.remove(id).await {
        Ok(()) | Err(RuntimeError::NotFound(_)) => {}
        Err(e) => {
            tracing::warn!(task.id = %id, error = %shoal_types::error::Chain(&e), "agent: removing a task failed")
        }
    }
    ctx.reporter.forget(id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::GenericResource;

    #[test]
    fn assigned_generic_resources_are_appended_to_the_environment() {
        let mut task = Task {
            id: Id::from_raw("abcdefghijklmnopqrstuvwxy"),
            ..Task::default()
        };
        task.spec.container.env = vec!["A=1".into()];
        task.assigned_generic_resources = vec![
            GenericResource::named("gpu", "GPU-a"),
            GenericResource::named("gpu", "GPU-b"),
            GenericResource::discrete("ssd", 2),
        ];
        let node = NodeDescription::default();
        let run = task_run(&task, &Id::from_raw("node"), &node).expect("no templates");
        assert_eq!(
            run.container.env,
            vec![
                "A=1".to_owned(),
                "DOCKER_RESOURCE_GPU=GPU-a,GPU-b".to_owned(),
                "DOCKER_RESOURCE_SSD=2".to_owned(),
            ]
        );
        // The task's own spec is left alone: it is what the orchestrator compares.
        assert_eq!(task.spec.container.env, vec!["A=1".to_owned()]);
        task.assigned_generic_resources.clear();
        assert_eq!(
            task_run(&task, &Id::from_raw("node"), &node)
                .expect("no templates")
                .container
                .env,
            vec!["A=1".to_owned()]
        );
    }
}
