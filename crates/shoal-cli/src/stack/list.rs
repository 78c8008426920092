//! `stack ls`, `stack services` and `stack ps`: label queries rendered with docker's tables.

use std::collections::BTreeMap;

use bollard_stubs::models::Service;

use super::{NAMESPACE_LABEL, validate_stack_name};
use crate::client::Client;
use crate::error::{CliError, Result};
use crate::filters::Filters;
use crate::format::{Table, json_row, natural_cmp};
use crate::node::{ListFormat, list_format};

#[derive(Debug, clap::Args)]
pub struct StackLsArgs {
    /// Format output: "table" (default) or "json"
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct StackServicesArgs {
    /// Only display IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output based on conditions provided
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output: "table" (default) or "json"
    #[arg(long)]
    pub format: Option<String>,
    #[arg(value_name = "STACK")]
    pub stack: String,
}

#[derive(Debug, clap::Args)]
pub struct StackPsArgs {
    #[command(flatten)]
    pub tasks: crate::service::ps::TaskListArgs,
    #[arg(value_name = "STACK")]
    pub stack: String,
}

pub async fn ls(client: &Client, args: StackLsArgs) -> Result<()> {
    let format = list_format(args.format.as_deref())?;
    let mut f = Filters::new();
    f.add("label", NAMESPACE_LABEL);
    let services: Vec<Service> = client.get("/services", &f.query()).await?;
    print!("{}", render_stacks(&services, format));
    Ok(())
}

/// docker's stack table: each namespace label value with its number of services, natural order.
pub fn render_stacks(services: &[Service], format: ListFormat) -> String {
    let mut stacks: BTreeMap<String, usize> = BTreeMap::new();
    for s in services {
        if let Some(ns) = s
            .spec
            .as_ref()
            .and_then(|sp| sp.labels.as_ref())
            .and_then(|l| l.get(NAMESPACE_LABEL))
        {
            *stacks.entry(ns.clone()).or_default() += 1;
        }
    }
    let mut rows: Vec<(String, usize)> = stacks.into_iter().collect();
    rows.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    if format == ListFormat::Json {
        return rows
            .into_iter()
            .map(|(name, n)| {
                let row = json_row(&[("Name", name.into()), ("Services", n.to_string().into())]);
                format!("{row}\n")
            })
            .collect();
    }
    let mut table = Table::new(&["NAME", "SERVICES"]);
    for (name, n) in rows {
        table.row(vec![name, n.to_string()]);
    }
    table.render()
}

pub async fn services(client: &Client, args: StackServicesArgs) -> Result<()> {
    validate_stack_name(&args.stack)?;
    let format = list_format(args.format.as_deref())?;
    let mut filters = Filters::parse(&args.filter)?;
    filters.add("label", &format!("{NAMESPACE_LABEL}={}", args.stack));
    let mut query = filters.query();
    if !args.quiet {
        query.push(("status", "true".to_string()));
    }
    let services: Vec<Service> = client.get("/services", &query).await?;
    if services.is_empty() {
        // docker prints this and succeeds.
        eprintln!("Nothing found in stack: {}", args.stack);
        return Ok(());
    }
    print!(
        "{}",
        crate::service::ls::render(services, args.quiet, format)
    );
    Ok(())
}

pub async fn ps(client: &Client, args: StackPsArgs) -> Result<()> {
    validate_stack_name(&args.stack)?;
    let mut filters = Filters::parse(&args.tasks.filter)?;
    filters.add("label", &format!("{NAMESPACE_LABEL}={}", args.stack));
    crate::service::ps::print_tasks(client, filters, &args.tasks, |tasks| {
        if tasks.is_empty() {
            Err(CliError::Failed(format!(
                "nothing found in stack: {}",
                args.stack
            )))
        } else {
            Ok(())
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::ServiceSpec;
    use std::collections::HashMap;

    fn svc(name: &str, ns: Option<&str>) -> Service {
        let labels: HashMap<String, String> = ns
            .map(|n| (NAMESPACE_LABEL.to_string(), n.to_string()))
            .into_iter()
            .collect();
        Service {
            spec: Some(ServiceSpec {
                name: Some(name.into()),
                labels: Some(labels),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn stacks_are_counted_and_sorted_naturally() {
        let services = [
            svc("app10_web", Some("app10")),
            svc("app2_web", Some("app2")),
            svc("app2_db", Some("app2")),
            svc("loose", None),
        ];
        assert_eq!(
            render_stacks(&services, ListFormat::Table),
            "NAME      SERVICES\napp2      2\napp10     1\n"
        );
        assert_eq!(
            render_stacks(&services, ListFormat::Json),
            "{\"Name\":\"app2\",\"Services\":\"2\"}\n{\"Name\":\"app10\",\"Services\":\"1\"}\n"
        );
    }

    #[test]
    fn stack_names_with_quotes_or_spaces_are_refused() {
        assert!(validate_stack_name("app").is_ok());
        for bad in ["", "a b", "a\"b", "'a'"] {
            assert!(validate_stack_name(bad).is_err(), "{bad:?}");
        }
    }
}
