//! `service create|ls|ps|inspect|scale|update|rollback|rm|logs`: one module per command, the
//! shared flags in `opts` and `policy`, `--secret`/`--config` references in `refs`, progress
//! drawing in `progress` and the converge wait in `wait`.

pub mod container;
pub mod create;
pub mod dns;
pub mod generic;
pub mod inspect;
pub mod logs;
pub mod ls;
pub mod opts;
pub mod policy;
pub mod ports;
pub mod progress;
pub mod ps;
pub mod refs;
pub mod scale;
pub mod update;
pub mod wait;

use bollard_stubs::models::{DistributionInspect, Platform, ServiceSpec, TaskSpecPlacement};

use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};
use crate::imageref::with_digest;

// Parsed once per process: boxing the big variants buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum ServiceCommand {
    /// Create a new service
    Create(create::CreateArgs),
    /// List services
    #[command(alias = "list")]
    Ls(ls::LsArgs),
    /// List the tasks of one or more services
    Ps(ps::PsArgs),
    /// Display detailed information on one or more services
    Inspect(inspect::InspectArgs),
    /// Scale one or multiple replicated services
    Scale(scale::ScaleArgs),
    /// Update a service
    Update(update::UpdateArgs),
    /// Revert changes to a service's configuration
    Rollback(scale::RollbackArgs),
    /// Remove one or more services
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true, value_name = "SERVICE")]
        services: Vec<String>,
    },
    /// Fetch the logs of a service or task
    Logs(logs::LogsArgs),
}

pub async fn run(client: &Client, cmd: ServiceCommand) -> Result<()> {
    match cmd {
        ServiceCommand::Create(a) => create::run(client, a).await,
        ServiceCommand::Ls(a) => ls::run(client, a).await,
        ServiceCommand::Ps(a) => ps::run(client, a).await,
        ServiceCommand::Inspect(a) => inspect::run(client, a).await,
        ServiceCommand::Scale(a) => scale::scale(client, a).await,
        ServiceCommand::Update(a) => update::run(client, a).await,
        ServiceCommand::Rollback(a) => scale::rollback(client, a).await,
        ServiceCommand::Rm { services } => remove_each(client, "/services", &services).await,
        ServiceCommand::Logs(a) => logs::run(client, a).await,
    }
}

/// docker's `rm` of services, secrets or configs (`collection` is the API path): each removed
/// name printed as given, each failure (a 404, an object still in use) kept for the end.
pub async fn remove_each(client: &Client, collection: &str, names: &[String]) -> Result<()> {
    let mut errors = Vec::new();
    for s in names {
        match client
            .delete(&format!("{collection}/{}", path_escape(s, false)), &[])
            .await
        {
            Ok(()) => println!("{s}"),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CliError::Many(errors)),
    }
}

/// docker's client-side image resolution: pin the digest the registry reports and record the
/// image's platforms as placement; when the daemon cannot tell, the warning docker prints.
pub async fn resolve_image(client: &Client, spec: &mut ServiceSpec) -> Option<String> {
    let cs = spec.task_template.as_mut()?.container_spec.as_mut()?;
    let image = crate::imageref::with_default_tag(cs.image.as_deref()?);
    cs.image = Some(image.clone());
    let path = format!("/distribution/{}/json", path_escape(&image, true));
    let inspect = match client.get::<DistributionInspect>(&path, &[]).await {
        Ok(i) => i,
        Err(_) => return Some(digest_warning(&image)),
    };
    let Some(digest) = inspect.descriptor.digest.filter(|d| !d.is_empty()) else {
        return Some(digest_warning(&image));
    };
    cs.image = Some(with_digest(&image, &digest));
    let platforms: Vec<Platform> = inspect
        .platforms
        .into_iter()
        .map(|p| Platform {
            // swarmkit#2294: arm images report "arm" while nodes report "armv7l"; docker drops it.
            architecture: p.architecture.filter(|a| !a.eq_ignore_ascii_case("arm")),
            os: p.os,
        })
        .collect();
    if !platforms.is_empty()
        && let Some(task) = spec.task_template.as_mut()
    {
        task.placement
            .get_or_insert_with(TaskSpecPlacement::default)
            .platforms = Some(platforms);
    }
    None
}

/// The warning docker prints when an image's digest could not be pinned.
pub fn digest_warning(image: &str) -> String {
    format!(
        "image {image} could not be accessed on a registry to record\nits digest. Each node will access {image} independently,\npossibly leading to different nodes running different\nversions of the image.\n"
    )
}
