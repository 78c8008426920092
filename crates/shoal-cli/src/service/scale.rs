//! `service scale` and `service rollback`: both re-post the service's current spec, with new
//! replica counts or with `rollback=previous`, and wait like `update`.

use super::update::{inspect_service, post_update};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::units::parse_uint;

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Exit immediately instead of waiting for the service to converge
    #[arg(short, long)]
    pub detach: bool,
    /// Suppress progress output
    #[arg(short, long)]
    pub quiet: bool,
    pub service: String,
}

pub async fn rollback(client: &Client, a: RollbackArgs) -> Result<()> {
    let (service, refs) = inspect_service(client, &a.service).await?;
    let spec = service.spec.clone().unwrap_or_default();
    let warnings = post_update(
        client,
        &service,
        spec,
        &refs,
        &[("rollback", "previous".to_string())],
    )
    .await?;
    for w in warnings {
        eprintln!("{w}");
    }
    println!("{}", a.service);
    if a.detach {
        return Ok(());
    }
    super::wait::wait_on_service(client, &a.service, a.quiet, true).await
}

#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// Exit immediately instead of waiting for the service to converge
    #[arg(short, long)]
    pub detach: bool,
    /// SERVICE=REPLICAS pairs
    #[arg(required = true, value_name = "SERVICE=REPLICAS")]
    pub pairs: Vec<String>,
}

/// Splits `web=5` (docker refuses the whole command when one pair has no `=`).
pub fn parse_scale_pairs(pairs: &[String]) -> Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|arg| match arg.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(CliError::Usage(format!(
                "invalid scale specifier '{arg}'.\nSee 'shoal service scale --help'.\n\nUsage:  shoal service scale SERVICE=REPLICAS [SERVICE=REPLICAS...]\n\nScale one or multiple replicated services"
            ))),
        })
        .collect()
}

pub async fn scale(client: &Client, a: ScaleArgs) -> Result<()> {
    let pairs = parse_scale_pairs(&a.pairs)?;
    let mut errors = Vec::new();
    let mut scaled = Vec::new();
    for (name, value) in pairs {
        let n = match parse_uint(&value).ok().and_then(|n| i64::try_from(n).ok()) {
            Some(n) => n,
            None => {
                errors.push(CliError::Failed(format!(
                    "{name}: invalid replicas value {value}: expected a number >= 0"
                )));
                continue;
            }
        };
        match scale_one(client, &name, n).await {
            Ok(warnings) => {
                for w in warnings {
                    eprintln!("{w}");
                }
                println!("{name} scaled to {n}");
                scaled.push(name);
            }
            Err(e) => errors.push(CliError::Failed(format!("{name}: {e}"))),
        }
    }
    if !a.detach {
        for name in scaled {
            if let Err(e) = super::wait::wait_on_service(client, &name, false, false).await {
                errors.push(CliError::Failed(format!("{name}: {e}")));
            }
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CliError::Many(errors)),
    }
}

async fn scale_one(client: &Client, name: &str, replicas: i64) -> Result<Vec<String>> {
    let (service, refs) = inspect_service(client, name).await?;
    let mut spec = service.spec.clone().unwrap_or_default();
    let mode = spec.mode.get_or_insert_with(Default::default);
    if let Some(r) = mode.replicated.as_mut() {
        r.replicas = Some(replicas);
    } else if let Some(j) = mode.replicated_job.as_mut() {
        j.total_completions = Some(replicas);
    } else {
        return Err(CliError::Failed(
            "scale can only be used with replicated or replicated-job mode".into(),
        ));
    }
    post_update(client, &service, spec, &refs, &[]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_pairs() {
        let ok = parse_scale_pairs(&["web=5".into(), "api=0".into()]).expect("valid");
        assert_eq!(
            ok,
            vec![("web".into(), "5".into()), ("api".into(), "0".into())]
        );
        let err = parse_scale_pairs(&["web".into()]).err();
        assert_eq!(err.as_ref().map(|e| e.exit_code()), Some(2));
        assert!(
            err.map(|e| e.to_string())
                .unwrap_or_default()
                .starts_with("invalid scale specifier 'web'.")
        );
    }
}
