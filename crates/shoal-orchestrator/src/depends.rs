//! Start order between services (compose's `depends_on`, which Swarm ignores: moby#31333).
//!
//! A service whose labels declare dependencies (`shoal_types::stack::DEPENDS_ON_LABEL`) gets no
//! task until each dependency meets its condition. The hold applies only to a service's first
//! tasks: once it has any task, it is reconciled as usual, whatever later happens to its
//! dependencies (compose orders start-up; it does not stop a dependent when a dependency fails).
//! This keeps the decision a function of the store alone: "has tasks" is the record that the
//! service was let go.
//!
//! Conditions, on a Swarm service rather than a container:
//! - `service_started`: every desired task of the dependency's current spec has started (its
//!   state reached `starting`);
//! - `service_healthy`: every one runs (a task with a health check reaches `running` only once
//!   healthy, so this is the health condition);
//! - `service_completed_successfully`: every one has completed (exit 0).
//!
//! "Every desired task" is `replicas` (or `total_completions`) tasks for replicated modes, at
//! least one and all live tasks for global modes. A dependency that does not exist (yet) holds
//! the dependent back. A label that does not parse holds nothing back: the API refuses such
//! labels, and a service must never be stuck by an unreadable annotation.

use shoal_types::stack::{Condition, Dependency};
use shoal_types::{Service, ServiceMode, Task, TaskState};

/// The dependencies that must be met before `service` gets tasks: none once it has any task.
pub fn pending_dependencies(service: &Service, own_tasks: &[&Task]) -> Vec<Dependency> {
    if own_tasks.iter().any(|t| t.service_id == service.id) {
        return Vec::new();
    }
    shoal_types::stack::depends_on(&service.spec.labels).unwrap_or_default()
}

/// Whether `dependency` (the service named by a [`Dependency`], with its tasks) meets
/// `condition`; `Err` says what it is still waiting for, for the user.
pub fn met(
    dependency: Option<&Service>,
    tasks: &[&Task],
    condition: Condition,
    name: &str,
) -> Result<(), String> {
    let Some(dep) = dependency else {
        return Err(format!("waiting for service {name}: it does not exist"));
    };
    let current: Vec<&Task> = tasks
        .iter()
        .copied()
        .filter(|t| t.service_id == dep.id && t.spec == dep.spec.task)
        .collect();
    let reached = |t: &&Task| match condition {
        Condition::Started => {
            t.status.state >= TaskState::Starting && t.status.state <= TaskState::Running
                || t.status.state == TaskState::Complete
        }
        Condition::Healthy => t.status.state == TaskState::Running,
        Condition::CompletedSuccessfully => t.status.state == TaskState::Complete,
    };
    // Tasks the orchestrator still wants: a completed job task has desired `complete`.
    let wanted: Vec<&Task> = current
        .iter()
        .copied()
        .filter(|t| t.desired_state <= TaskState::Complete)
        .collect();
    let done = wanted.iter().filter(|t| reached(t)).count() as u64;
    let need = match dep.spec.mode {
        ServiceMode::Replicated { replicas } => replicas,
        ServiceMode::ReplicatedJob {
            total_completions, ..
        } => total_completions,
        ServiceMode::Global | ServiceMode::GlobalJob => (wanted.len() as u64).max(1),
    };
    if done >= need {
        Ok(())
    } else {
        let what = match condition {
            Condition::Started => "started",
            Condition::Healthy => "running and healthy",
            Condition::CompletedSuccessfully => "completed successfully",
        };
        Err(format!(
            "waiting for service {name} ({condition}): {done} of {need} tasks {what}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::stack::{DEPENDS_ON_LABEL, format_depends_on};
    use shoal_types::{Id, TaskSpec};

    fn service(id: &str, name: &str, mode: ServiceMode, deps: &[Dependency]) -> Service {
        let mut s = Service {
            id: Id::from_raw(id),
            ..Default::default()
        };
        s.spec.name = name.into();
        s.spec.mode = mode;
        s.spec.task = TaskSpec::default();
        if !deps.is_empty() {
            s.spec
                .labels
                .insert(DEPENDS_ON_LABEL.into(), format_depends_on(deps));
        }
        s
    }

    fn task(s: &Service, state: TaskState, desired: TaskState) -> Task {
        let mut t = Task {
            id: Id::from_raw(format!("t{}", state.as_str())),
            service_id: s.id.clone(),
            spec: s.spec.task.clone(),
            desired_state: desired,
            ..Default::default()
        };
        t.status.state = state;
        t
    }

    fn dep(name: &str, condition: Condition) -> Dependency {
        Dependency {
            service: name.into(),
            condition,
        }
    }

    #[test]
    fn only_a_service_without_tasks_is_held() {
        let web = service(
            "w",
            "app_web",
            ServiceMode::Replicated { replicas: 1 },
            &[dep("app_db", Condition::Healthy)],
        );
        assert_eq!(
            pending_dependencies(&web, &[]),
            vec![dep("app_db", Condition::Healthy)]
        );
        let t = task(&web, TaskState::Failed, TaskState::Running);
        assert!(pending_dependencies(&web, &[&t]).is_empty());
        let plain = service("p", "p", ServiceMode::Replicated { replicas: 1 }, &[]);
        assert!(pending_dependencies(&plain, &[]).is_empty());
    }

    #[test]
    fn healthy_needs_every_replica_running() {
        let db = service("d", "app_db", ServiceMode::Replicated { replicas: 2 }, &[]);
        let starting = task(&db, TaskState::Starting, TaskState::Running);
        let running = task(&db, TaskState::Running, TaskState::Running);
        let e = met(
            Some(&db),
            &[&starting, &running],
            Condition::Healthy,
            "app_db",
        )
        .expect_err("an error");
        assert_eq!(
            e,
            "waiting for service app_db (service_healthy): 1 of 2 tasks running and healthy"
        );
        // Starting counts as started: the process is up, its health check has not passed yet.
        met(
            Some(&db),
            &[&starting, &running],
            Condition::Started,
            "app_db",
        )
        .expect("ok");
        let running2 = task(&db, TaskState::Running, TaskState::Running);
        met(
            Some(&db),
            &[&running, &running2],
            Condition::Healthy,
            "app_db",
        )
        .expect("ok");
    }

    #[test]
    fn tasks_of_an_older_spec_or_let_go_do_not_count() {
        let mut db = service("d", "app_db", ServiceMode::Replicated { replicas: 1 }, &[]);
        let old = task(&db, TaskState::Running, TaskState::Running);
        db.spec.task.container.image = "new".into();
        assert!(met(Some(&db), &[&old], Condition::Healthy, "app_db").is_err());
        let stopping = task(&db, TaskState::Running, TaskState::Shutdown);
        assert!(met(Some(&db), &[&stopping], Condition::Healthy, "app_db").is_err());
    }

    #[test]
    fn missing_dependency_holds() {
        let e = met(None, &[], Condition::Started, "app_db").expect_err("an error");
        assert_eq!(e, "waiting for service app_db: it does not exist");
    }

    #[test]
    fn completed_successfully_counts_completions() {
        let job = service(
            "j",
            "app_migrate",
            ServiceMode::ReplicatedJob {
                max_concurrent: 1,
                total_completions: 2,
            },
            &[],
        );
        let done = task(&job, TaskState::Complete, TaskState::Complete);
        let failed = task(&job, TaskState::Failed, TaskState::Running);
        assert!(
            met(
                Some(&job),
                &[&done, &failed],
                Condition::CompletedSuccessfully,
                "app_migrate"
            )
            .is_err()
        );
        let done2 = task(&job, TaskState::Complete, TaskState::Complete);
        met(
            Some(&job),
            &[&done, &done2],
            Condition::CompletedSuccessfully,
            "app_migrate",
        )
        .expect("ok");
    }

    #[test]
    fn global_needs_a_task_and_all_of_them() {
        let g = service("g", "app_agent", ServiceMode::Global, &[]);
        assert!(met(Some(&g), &[], Condition::Started, "app_agent").is_err());
        let a = task(&g, TaskState::Running, TaskState::Running);
        let b = task(&g, TaskState::Pending, TaskState::Running);
        assert!(met(Some(&g), &[&a, &b], Condition::Started, "app_agent").is_err());
        met(Some(&g), &[&a], Condition::Healthy, "app_agent").expect("ok");
    }
}
