//! `secret create|ls|inspect|rm|rotate` and `config create|ls|inspect|rm|rotate`: Swarm's two
//! kinds of stored payload share one shape (a name, labels, base64 data, a template driver; a
//! secret may name an external driver, which shoal refuses), so one implementation serves both,
//! parameterised by [`Kind`]. `create` reads and posts the payload, `ls`/`inspect` render what the
//! daemon lists (docker's tables and `--pretty` text), `rm` deletes, `rotate` (beyond Swarm) makes
//! a new version under the same name and follows the services the daemon rolls.
//!
//! Concurrency: every command runs its requests one after the other on the shared [`Client`].

pub mod create;
pub mod ls;

use serde::Deserialize;
use std::collections::BTreeMap;

use crate::client::{Client, path_escape};
use crate::error::{CliError, Result};
use crate::service::remove_each;

pub use create::{CreateArgs, RotateArgs};
pub use ls::InspectArgs;

/// `secret` or `config`: what differs between the two is names and paths, never logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Secret,
    Config,
}

impl Kind {
    /// The word in messages and docker's errors ("secret", "config").
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Config => "config",
        }
    }

    /// The collection's API path.
    pub fn path(self) -> &'static str {
        match self {
            Kind::Secret => "/secrets",
            Kind::Config => "/configs",
        }
    }

    /// The path of one object, by name, ID or ID prefix.
    pub fn object_path(self, reference: &str) -> String {
        format!("{}/{}", self.path(), path_escape(reference, false))
    }

    /// The key of the ID in a service's reference object (`SecretID`, `ConfigID`).
    pub fn id_key(self) -> &'static str {
        match self {
            Kind::Secret => "SecretID",
            Kind::Config => "ConfigID",
        }
    }

    /// The key of the name in a service's reference object (`SecretName`, `ConfigName`).
    pub fn name_key(self) -> &'static str {
        match self {
            Kind::Secret => "SecretName",
            Kind::Config => "ConfigName",
        }
    }

    /// The ContainerSpec list holding this kind's references (`Secrets`, `Configs`).
    pub fn list_key(self) -> &'static str {
        match self {
            Kind::Secret => "Secrets",
            Kind::Config => "Configs",
        }
    }
}

/// A secret or config as `GET /secrets` and `GET /configs` return them. One struct for both
/// kinds (the bollard models are two); fields Go may send as `null` are options.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Object {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub spec: ObjectSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ObjectSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Base64; configs only (the daemon never returns a secret's data).
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub driver: Option<DriverName>,
    #[serde(default)]
    pub templating: Option<DriverName>,
}

impl Object {
    pub fn name(&self) -> &str {
        self.spec.name.as_deref().unwrap_or("")
    }
}

/// Docker's `Driver` as far as we read or send it: only the name.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, Deserialize)]
pub struct DriverName {
    #[serde(rename = "Name", default)]
    pub name: String,
}

/// `shoal secret ...`
#[derive(Debug, clap::Subcommand)]
pub enum SecretCommand {
    /// Create a secret from a file or STDIN as content
    Create(SecretCreateArgs),
    /// List secrets
    #[command(alias = "list")]
    Ls(crate::node::LsArgs),
    /// Display detailed information on one or more secrets
    Inspect(InspectArgs),
    /// Remove one or more secrets
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true, value_name = "SECRET")]
        names: Vec<String>,
    },
    /// Replace a secret's data with a new version and roll the services that use it
    Rotate(RotateArgs),
}

/// `secret create` takes docker's `--driver` only to refuse it with a reason.
#[derive(Debug, clap::Args)]
pub struct SecretCreateArgs {
    /// Secret driver (not supported: shoal stores secrets in its encrypted Raft log)
    #[arg(short, long, value_name = "string")]
    pub driver: Option<String>,
    #[command(flatten)]
    pub args: CreateArgs,
}

/// `shoal config ...`
#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Create a config from a file or STDIN
    Create(CreateArgs),
    /// List configs
    #[command(alias = "list")]
    Ls(crate::node::LsArgs),
    /// Display detailed information on one or more configs
    Inspect(InspectArgs),
    /// Remove one or more configs
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true, value_name = "CONFIG")]
        names: Vec<String>,
    },
    /// Replace a config's data with a new version and roll the services that use it
    Rotate(RotateArgs),
}

/// What `secret create --driver` answers (exit 2).
pub const DRIVER_REFUSED: &str = "--driver: external secret drivers are not supported by shoal; secrets are stored in the cluster's encrypted Raft log";

pub async fn run_secret(client: &Client, cmd: SecretCommand) -> Result<()> {
    let kind = Kind::Secret;
    match cmd {
        SecretCommand::Create(a) => {
            if a.driver.is_some() {
                return Err(CliError::Usage(DRIVER_REFUSED.to_string()));
            }
            create::create(client, kind, a.args).await
        }
        SecretCommand::Ls(a) => ls::ls(client, kind, a).await,
        SecretCommand::Inspect(a) => ls::inspect(client, kind, a).await,
        SecretCommand::Rm { names } => remove_each(client, kind.path(), &names).await,
        SecretCommand::Rotate(a) => create::rotate(client, kind, a).await,
    }
}

pub async fn run_config(client: &Client, cmd: ConfigCommand) -> Result<()> {
    let kind = Kind::Config;
    match cmd {
        ConfigCommand::Create(a) => create::create(client, kind, a).await,
        ConfigCommand::Ls(a) => ls::ls(client, kind, a).await,
        ConfigCommand::Inspect(a) => ls::inspect(client, kind, a).await,
        ConfigCommand::Rm { names } => remove_each(client, kind.path(), &names).await,
        ConfigCommand::Rotate(a) => create::rotate(client, kind, a).await,
    }
}

/// Ok when nothing failed, else the one error or all of them (one per line, exit 1).
fn all_ok(mut errors: Vec<CliError>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CliError::Many(errors)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_name_their_paths_and_keys() {
        assert_eq!(Kind::Secret.object_path("db pass"), "/secrets/db%20pass");
        assert_eq!(Kind::Config.object_path("a/b"), "/configs/a%2Fb");
        assert_eq!(
            (Kind::Config.id_key(), Kind::Config.name_key()),
            ("ConfigID", "ConfigName")
        );
        assert_eq!(Kind::Secret.list_key(), "Secrets");
    }

    #[derive(Debug, clap::Parser)]
    #[command(name = "shoal")]
    struct Cli {
        #[command(subcommand)]
        cmd: crate::ClientCommand,
    }

    fn parse(argv: &[&str]) -> std::result::Result<crate::ClientCommand, clap::Error> {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("shoal").chain(argv.iter().copied())).map(|c| c.cmd)
    }

    #[test]
    fn docker_style_invocations_parse() {
        for argv in [
            vec!["secret", "create", "-l", "a=b", "--label", "c", "db", "-"],
            vec!["secret", "create", "--template-driver", "golang", "db", "f"],
            vec!["secret", "create", "-d", "vault", "db"],
            vec!["secret", "ls", "-q", "-f", "name=db", "--format", "json"],
            vec!["secret", "list"],
            vec!["secret", "inspect", "--pretty", "db", "api"],
            vec!["secret", "inspect", "-f", "json", "db"],
            vec!["secret", "rm", "db", "api"],
            vec!["secret", "remove", "db"],
            vec!["secret", "rotate", "-d", "db", "-"],
            vec!["config", "create", "-l", "a=b", "app.conf", "./app.conf"],
            vec!["config", "ls", "--filter", "label=a"],
            vec!["config", "inspect", "--pretty", "app.conf"],
            vec!["config", "rm", "app.conf"],
            vec!["config", "rotate", "--quiet", "app.conf", "f"],
            vec![
                "service",
                "create",
                "--secret",
                "db",
                "--secret",
                "source=tls,target=tls.key,mode=0400",
                "--config",
                "source=app.conf,target=/etc/app.conf,version=2",
                "bb",
            ],
            vec![
                "service",
                "update",
                "--secret-add",
                "db",
                "--secret-rm",
                "old",
                "--config-add",
                "c",
                "--config-rm",
                "d",
                "web",
            ],
        ] {
            if let Err(e) = parse(&argv) {
                panic!("{argv:?}: {e}");
            }
        }
        for argv in [
            vec!["config", "create", "-d", "x", "app.conf", "f"],
            vec!["secret", "inspect"],
            vec!["secret", "rm"],
            vec!["secret", "rotate", "db"],
        ] {
            assert!(parse(&argv).is_err(), "{argv:?} should not parse");
        }
    }

    /// Refusals that need no daemon: exit 2 before anything is dialled.
    #[tokio::test]
    async fn usage_errors_exit_two_without_a_daemon() {
        let opts = crate::GlobalOpts {
            host: "unix:///nonexistent/shoal-cli-secret-test.sock".to_string(),
            tls: None,
        };
        for argv in [
            vec!["secret", "create", "--driver", "vault", "db"],
            vec!["secret", "create", "db"],
            vec!["config", "create", "--template-driver", "jinja", "c", "-"],
            vec!["secret", "inspect", "--pretty", "--format", "json", "db"],
            vec!["service", "create", "--secret", "source=db,mode=999", "bb"],
            vec![
                "service",
                "update",
                "--config-add",
                "source=c,uid=root",
                "web",
            ],
        ] {
            let cmd = parse(&argv).expect("parses");
            assert_eq!(crate::execute(&opts, cmd).await, 2, "{argv:?}");
        }
        // An operation that needs the daemon fails with 1.
        let cmd = parse(&["secret", "rm", "db"]).expect("parses");
        assert_eq!(crate::execute(&opts, cmd).await, 1);
    }

    #[test]
    fn objects_tolerate_go_nulls() {
        let o: Object = serde_json::from_str(
            r#"{"ID":"x","Version":{"Index":3},"CreatedAt":"2026-11-24T12:00:00Z","Spec":{"Name":"db","Labels":null,"Driver":null}}"#,
        )
        .expect("valid");
        assert_eq!((o.id.as_str(), o.name()), ("x", "db"));
        assert_eq!(o.spec.labels, None);
    }
}

#[cfg(test)]
#[path = "cmd_tests.rs"]
mod cmd_tests;
