//! `stack rm`: removes a stack's services, then its secrets, configs and networks (docker's
//! order), each found by the stack's label; optionally waits for the tasks to go away.

use std::time::Duration;

use bollard_stubs::models::{Network, Service, Task, TaskState};

use super::{stack_filter, validate_stack_name};
use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};
use crate::secret::{Kind, Object};

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// Do not wait for stack removal
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set,
        num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub detach: bool,
    #[arg(required = true, value_name = "STACK")]
    pub stacks: Vec<String>,
}

pub async fn run(client: &Client, args: RmArgs) -> Result<()> {
    for s in &args.stacks {
        validate_stack_name(s)?;
    }
    let mut errors = Vec::new();
    for ns in &args.stacks {
        let q = stack_filter(ns).query();
        let mut services: Vec<Service> = client.get("/services", &q).await?;
        let networks: Vec<Network> = client.get("/networks", &q).await?;
        let secrets: Vec<Object> = client.get(Kind::Secret.path(), &q).await?;
        let configs: Vec<Object> = client.get(Kind::Config.path(), &q).await?;
        if services.len() + networks.len() + secrets.len() + configs.len() == 0 {
            eprintln!("Nothing found in stack: {ns}");
            continue;
        }
        let mut failed = false;
        services.sort_by_key(|s| s.spec.as_ref().and_then(|sp| sp.name.clone()));
        for s in &services {
            let name = s.spec.as_ref().and_then(|sp| sp.name.clone());
            println!("Removing service {}", name.unwrap_or_default());
            let id = s.id.clone().unwrap_or_default();
            if let Err(e) = client
                .delete(&format!("/services/{}", path_escape(&id, false)), &[])
                .await
            {
                failed = true;
                eprintln!("Failed to remove service {id}: {e}");
            }
        }
        for (kind, list) in [(Kind::Secret, &secrets), (Kind::Config, &configs)] {
            for o in list {
                println!("Removing {} {}", kind.noun(), o.name());
                if let Err(e) = client.delete(&kind.object_path(&o.id), &[]).await {
                    failed = true;
                    eprintln!("Failed to remove {} {}: {e}", kind.noun(), o.id);
                }
            }
        }
        for n in &networks {
            let name = n.name.clone().unwrap_or_default();
            println!("Removing network {name}");
            let id = n.id.clone().unwrap_or_default();
            if let Err(e) = client
                .delete(&format!("/networks/{}", path_escape(&id, false)), &[])
                .await
            {
                failed = true;
                eprintln!("Failed to remove network {id}: {e}");
            }
        }
        if failed {
            errors.push(format!("failed to remove some resources from stack: {ns}"));
            continue;
        }
        if !args.detach {
            wait_for_tasks(client, ns).await?;
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(errors.join("\n")))
    }
}

/// Waits until the stack has no task that is still running or about to (docker 28's wait
/// looks for the first terminal task; shoal waits for all of them to end).
async fn wait_for_tasks(client: &Client, namespace: &str) -> Result<()> {
    loop {
        let tasks: Vec<Task> = client
            .get("/tasks", &stack_filter(namespace).query())
            .await?;
        let live = tasks.iter().any(|t| {
            t.status
                .as_ref()
                .and_then(|s| s.state)
                .is_some_and(|s| !is_terminal(s))
        });
        if !live {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn is_terminal(s: TaskState) -> bool {
    matches!(
        s,
        TaskState::COMPLETE
            | TaskState::SHUTDOWN
            | TaskState::FAILED
            | TaskState::REJECTED
            | TaskState::REMOVE
            | TaskState::ORPHANED
    )
}
