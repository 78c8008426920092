//! `stack deploy` and `stack config`.
//!
//! `deploy` follows `docker stack deploy` step by step, so a stack deployed by either client
//! can be updated by the other: prune services left out of the files (`--prune`), check the
//! external networks, create the stack's networks, create or update its secrets and configs,
//! then create or update each service with the spec `shoal-compose` converted. Differences:
//! services are sent in dependency order (`depends_on`; the manager holds a dependent back
//! until its dependencies are ready, whatever the order), and the secret and config
//! references are resolved to IDs after those objects exist, as docker's converter does.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bollard_stubs::models::{Network, Service, ServiceSpec, ServiceUpdateResponse};
use serde::Deserialize;

use super::{stack_filter, validate_stack_name};
use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};
use crate::secret::Kind;

/// The label docker's converter puts the compose file's image in, to tell on the next deploy
/// whether the image changed (`--resolve-image changed`).
const IMAGE_LABEL: &str = "com.docker.stack.image";

#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// Path to a Compose file, or "-" to read from stdin
    #[arg(short = 'c', long = "compose-file", required = true)]
    pub compose_file: Vec<String>,
    /// Prune services that are no longer referenced
    #[arg(long)]
    pub prune: bool,
    /// Query the registry to resolve image digest and supported platforms ("always", "changed", "never")
    #[arg(long, default_value = "always")]
    pub resolve_image: String,
    /// Send registry authentication details to Swarm agents
    #[arg(long)]
    pub with_registry_auth: bool,
    /// Exit immediately instead of waiting for the stack services to converge
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set,
        num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(value_name = "STACK")]
    pub stack: String,
}

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Path to a Compose file, or "-" to read from stdin
    #[arg(short = 'c', long = "compose-file", required = true)]
    pub compose_file: Vec<String>,
}

/// The files as `shoal-compose` takes them, and where relative paths in them resolve: the
/// directory of the first file (docker's working directory for a stack).
fn read_files(paths: &[String]) -> Result<(Vec<shoal_compose::SourceFile>, PathBuf)> {
    let mut files = Vec::new();
    let mut dir = None;
    for p in paths {
        let (name, text) = if p == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|e| {
                CliError::Failed(format!("cannot read the compose file from stdin: {e}"))
            })?;
            ("-".to_string(), s)
        } else {
            let text = std::fs::read_to_string(p)
                .map_err(|e| CliError::Failed(format!("cannot read {p}: {e}")))?;
            (p.clone(), text)
        };
        if dir.is_none() {
            dir = Some(if p == "-" {
                std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
            } else {
                let parent = Path::new(p).parent().unwrap_or(Path::new(""));
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf())
            });
        }
        files.push(shoal_compose::SourceFile { name, text });
    }
    Ok((files, dir.unwrap_or_else(|| PathBuf::from("."))))
}

fn options(dir: PathBuf) -> shoal_compose::Options {
    shoal_compose::Options {
        working_dir: dir,
        env: std::env::vars().collect(),
        dotenv: true,
    }
}

fn compose_error(e: shoal_compose::Errors) -> CliError {
    CliError::Failed(e.to_string())
}

/// Loads the files and prints what docker prints about options a stack ignores.
fn load(paths: &[String]) -> Result<(shoal_compose::Loaded, shoal_compose::Options)> {
    let (files, dir) = read_files(paths)?;
    let opts = options(dir);
    let loaded =
        shoal_compose::load(&files, &opts, &shoal_compose::DiskFiles).map_err(compose_error)?;
    Ok((loaded, opts))
}

fn print_notes(loaded: &shoal_compose::Loaded) {
    eprint!("{}", loaded.notices());
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
}

pub fn config(args: ConfigArgs) -> Result<()> {
    let (loaded, _) = load(&args.compose_file)?;
    print!("{}", shoal_compose::render(&loaded.project));
    Ok(())
}

/// The parts of a secret or config deploy needs: its ID and version.
#[derive(Debug, Deserialize)]
struct Versioned {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Version", default)]
    version: VersionIndex,
}

#[derive(Debug, Default, Deserialize)]
struct VersionIndex {
    #[serde(rename = "Index", default)]
    index: u64,
}

pub async fn run(client: &Client, args: DeployArgs) -> Result<()> {
    validate_stack_name(&args.stack)?;
    let resolve = match args.resolve_image.as_str() {
        "always" | "changed" | "never" => args.resolve_image.as_str(),
        other => {
            return Err(CliError::invalid_flag(
                "resolve-image",
                other,
                "must be one of \"always\", \"changed\" or \"never\"",
            ));
        }
    };
    let (loaded, opts) = load(&args.compose_file)?;
    print_notes(&loaded);
    let info = crate::system::swarm_info(client).await?;
    if !info.control_available.unwrap_or(false) {
        return Err(CliError::Failed(
            "this node is not a swarm manager. Use \"shoal swarm init\" or \"shoal swarm join\" to connect this node to swarm and try again".into(),
        ));
    }
    let stack = shoal_compose::convert(
        &loaded.project,
        &args.stack,
        &shoal_compose::DiskFiles,
        &opts,
    )
    .map_err(compose_error)?;
    let ns = args.stack.as_str();

    if args.prune {
        prune(client, ns, &stack).await?;
    }
    check_external_networks(client, &stack).await?;
    create_networks(client, ns, &stack).await?;
    let mut ids: Ids = BTreeMap::new();
    for p in &stack.secrets {
        let id = upsert_payload(client, Kind::Secret, &p.name, p.external, &p.spec).await?;
        ids.insert((Kind::Secret.noun(), p.name.clone()), id);
    }
    for p in &stack.configs {
        let id = upsert_payload(client, Kind::Config, &p.name, p.external, &p.spec).await?;
        ids.insert((Kind::Config.noun(), p.name.clone()), id);
    }
    let mut service_ids = Vec::new();
    let existing: HashMap<String, Service> = super::stack_services(client, ns)
        .await?
        .into_iter()
        .filter_map(|s| Some((s.spec.as_ref()?.name.clone()?, s)))
        .collect();
    for svc in ordered(&stack.services) {
        let mut spec = svc.spec.clone();
        resolve_refs(client, &mut spec, &mut ids).await?;
        let id = deploy_service(client, &svc.name, spec, existing.get(&svc.name), resolve).await?;
        service_ids.push(id);
    }
    if args.detach {
        return Ok(());
    }
    let mut failed = Vec::new();
    for id in service_ids {
        if let Err(e) = crate::service::wait::wait_on_service(client, &id, args.quiet, false).await
        {
            failed.push(format!("{id}: {e}"));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(failed.join("\n")))
    }
}

/// The services in an order that puts each after the ones it depends on (the file's order
/// otherwise); `convert` has refused cycles.
fn ordered(services: &[shoal_compose::StackService]) -> Vec<&shoal_compose::StackService> {
    let mut out: Vec<&shoal_compose::StackService> = Vec::with_capacity(services.len());
    let mut left: Vec<&shoal_compose::StackService> = services.iter().collect();
    while !left.is_empty() {
        let before = left.len();
        left.retain(|s| {
            let ready = s.depends_on.iter().all(|d| {
                out.iter().any(|o| o.name == d.service)
                    || !services.iter().any(|x| x.name == d.service)
            });
            if ready {
                out.push(s);
            }
            !ready
        });
        if left.len() == before {
            // A cycle slipped through: keep the file's order rather than loop.
            out.append(&mut left);
        }
    }
    out
}

async fn prune(client: &Client, ns: &str, stack: &shoal_compose::Stack) -> Result<()> {
    let services = super::stack_services(client, ns).await?;
    for s in services {
        let name = s
            .spec
            .as_ref()
            .and_then(|sp| sp.name.clone())
            .unwrap_or_default();
        if stack.services.iter().any(|k| k.name == name) {
            continue;
        }
        println!("Removing service {name}");
        let id = s.id.clone().unwrap_or_default();
        if let Err(e) = client
            .delete(&format!("/services/{}", path_escape(&id, false)), &[])
            .await
        {
            eprintln!("Failed to remove service {id}: {e}");
        }
    }
    Ok(())
}

async fn check_external_networks(client: &Client, stack: &shoal_compose::Stack) -> Result<()> {
    for n in stack.networks.iter().filter(|n| n.external) {
        // docker's built-in network modes exist on every node.
        if matches!(n.name.as_str(), "host" | "bridge" | "none" | "default") {
            continue;
        }
        let net: Network = match client
            .get(&format!("/networks/{}", path_escape(&n.name, false)), &[])
            .await
        {
            Ok(net) => net,
            Err(CliError::Daemon { status, .. }) if status.as_u16() == 404 => {
                return Err(CliError::Failed(format!(
                    "network {:?} is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed",
                    n.name
                )));
            }
            Err(e) => return Err(e),
        };
        let scope = net.scope.unwrap_or_default();
        if scope != "swarm" {
            return Err(CliError::Failed(format!(
                "network {:?} is declared as external, but it is not in the right scope: {scope:?} instead of \"swarm\"",
                n.name
            )));
        }
    }
    Ok(())
}

async fn create_networks(client: &Client, ns: &str, stack: &shoal_compose::Stack) -> Result<()> {
    let existing: Vec<Network> = client.get("/networks", &stack_filter(ns).query()).await?;
    for n in stack.networks.iter().filter(|n| !n.external) {
        if existing
            .iter()
            .any(|e| e.name.as_deref() == Some(n.name.as_str()))
        {
            continue;
        }
        println!("Creating network {}", n.name);
        let mut body = n.create.clone();
        if body.driver.as_deref().unwrap_or("").is_empty() {
            body.driver = Some("overlay".into());
        }
        client
            .post::<_, serde_json::Value>("/networks/create", &[], &body)
            .await
            .map_err(|e| CliError::Failed(format!("failed to create network {}: {e}", n.name)))?;
    }
    Ok(())
}

/// IDs of the secrets and configs by kind ("secret", "config") and name.
type Ids = BTreeMap<(&'static str, String), String>;

/// Creates a secret or config, or updates the one that exists (only its labels may change: the
/// daemon refuses new data, as Swarm does). Returns its ID.
async fn upsert_payload<S: serde::Serialize>(
    client: &Client,
    kind: Kind,
    name: &str,
    external: bool,
    spec: &S,
) -> Result<String> {
    if external {
        let found: Versioned = client
            .get(&kind.object_path(name), &[])
            .await
            .map_err(|e| {
                CliError::Failed(format!(
                    "{} {} is declared as external: {e}",
                    kind.noun(),
                    name
                ))
            })?;
        return Ok(found.id);
    }
    match client.get::<Versioned>(&kind.object_path(name), &[]).await {
        Ok(found) => {
            client
                .post_no_answer(
                    &format!("{}/update", kind.object_path(&found.id)),
                    &[("version", found.version.index.to_string())],
                    Some(spec),
                )
                .await
                .map_err(|e| {
                    CliError::Failed(format!("failed to update {} {}: {e}", kind.noun(), name))
                })?;
            Ok(found.id)
        }
        Err(CliError::Daemon { status, .. }) if status.as_u16() == 404 => {
            println!("Creating {} {}", kind.noun(), name);
            #[derive(Deserialize)]
            struct Created {
                #[serde(rename = "ID")]
                id: String,
            }
            let c: Created = client
                .post(&format!("{}/create", kind.path()), &[], spec)
                .await
                .map_err(|e| {
                    CliError::Failed(format!("failed to create {} {}: {e}", kind.noun(), name))
                })?;
            Ok(c.id)
        }
        Err(e) => Err(e),
    }
}

/// Fills in the IDs of the secrets and configs a spec names (docker's converter looks them
/// up by name once they exist).
async fn resolve_refs(client: &Client, spec: &mut ServiceSpec, ids: &mut Ids) -> Result<()> {
    let Some(cs) = spec
        .task_template
        .as_mut()
        .and_then(|t| t.container_spec.as_mut())
    else {
        return Ok(());
    };
    for r in cs.secrets.iter_mut().flatten() {
        let name = r.secret_name.clone().unwrap_or_default();
        r.secret_id = Some(lookup(client, Kind::Secret, &name, ids).await?);
    }
    for r in cs.configs.iter_mut().flatten() {
        let name = r.config_name.clone().unwrap_or_default();
        r.config_id = Some(lookup(client, Kind::Config, &name, ids).await?);
    }
    Ok(())
}

async fn lookup(client: &Client, kind: Kind, name: &str, ids: &mut Ids) -> Result<String> {
    if let Some(id) = ids.get(&(kind.noun(), name.to_string())) {
        return Ok(id.clone());
    }
    let found: Versioned = client
        .get(&kind.object_path(name), &[])
        .await
        .map_err(|e| CliError::Failed(format!("{} not found: {name}: {e}", kind.noun())))?;
    ids.insert((kind.noun(), name.to_string()), found.id.clone());
    Ok(found.id)
}

async fn deploy_service(
    client: &Client,
    name: &str,
    mut spec: ServiceSpec,
    existing: Option<&Service>,
    resolve: &str,
) -> Result<String> {
    let mut warnings = Vec::new();
    // The file's image, as docker compares it with the last deploy's.
    let image = spec
        .task_template
        .as_ref()
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    // docker's client writes the tag out on every create and update (`imageWithTagString`).
    if let Some(cs) = spec
        .task_template
        .as_mut()
        .and_then(|t| t.container_spec.as_mut())
        && let Some(image) = cs.image.as_deref()
    {
        cs.image = Some(crate::imageref::with_default_tag(image));
    }
    let id = match existing {
        Some(svc) => {
            let id = svc.id.clone().unwrap_or_default();
            println!("Updating service {name} (id: {id})");
            let old = svc.spec.clone().unwrap_or_default();
            let old_image_label = old
                .labels
                .as_ref()
                .and_then(|l| l.get(IMAGE_LABEL))
                .cloned();
            let unchanged = old_image_label.as_deref() == Some(image.as_str());
            let query_registry = match resolve {
                "always" => true,
                "changed" => !unchanged,
                _ => false,
            };
            if !query_registry && unchanged {
                // Keep the image as the last deploy resolved it, or this would be an update.
                if let (Some(cs), Some(old_cs)) = (
                    spec.task_template
                        .as_mut()
                        .and_then(|t| t.container_spec.as_mut()),
                    old.task_template
                        .as_ref()
                        .and_then(|t| t.container_spec.as_ref()),
                ) {
                    cs.image = old_cs.image.clone();
                }
            }
            if query_registry
                && let Some(w) = crate::service::resolve_image(client, &mut spec).await
            {
                warnings.push(w);
            }
            // A stack has no --force: keep the counter so nothing restarts for it.
            if let Some(t) = spec.task_template.as_mut() {
                t.force_update = old.task_template.as_ref().and_then(|o| o.force_update);
            }
            let version = svc.version.as_ref().and_then(|v| v.index).unwrap_or(0);
            let resp: ServiceUpdateResponse = client
                .post(
                    &format!("/services/{}/update", path_escape(&id, false)),
                    &[("version", version.to_string())],
                    &spec,
                )
                .await
                .map_err(|e| CliError::Failed(format!("failed to update service {name}: {e}")))?;
            warnings.extend(resp.warnings.unwrap_or_default());
            id
        }
        None => {
            println!("Creating service {name}");
            if resolve != "never"
                && let Some(w) = crate::service::resolve_image(client, &mut spec).await
            {
                warnings.push(w);
            }
            let resp: bollard_stubs::models::ServiceCreateResponse = client
                .post("/services/create", &[], &spec)
                .await
                .map_err(|e| CliError::Failed(format!("failed to create service {name}: {e}")))?;
            warnings.extend(resp.warnings.unwrap_or_default());
            resp.id.unwrap_or_default()
        }
    };
    for w in warnings {
        eprintln!("{w}");
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_types::stack::{Condition, Dependency};

    fn svc(name: &str, deps: &[&str]) -> shoal_compose::StackService {
        shoal_compose::StackService {
            name: name.into(),
            spec: ServiceSpec::default(),
            depends_on: deps
                .iter()
                .map(|d| Dependency {
                    service: d.to_string(),
                    condition: Condition::Started,
                })
                .collect(),
        }
    }

    #[test]
    fn services_are_sent_after_their_dependencies() {
        let s = [
            svc("app_web", &["app_api"]),
            svc("app_api", &["app_db", "elsewhere"]),
            svc("app_db", &[]),
            svc("app_cache", &[]),
        ];
        let names: Vec<&str> = ordered(&s).iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["app_db", "app_cache", "app_api", "app_web"]);
    }
}
