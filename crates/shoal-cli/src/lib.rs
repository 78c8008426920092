//! shoal's command line: a client of the Docker Engine API (the swarm subset) that speaks to the
//! shoal daemon or to a Docker daemon in swarm mode, with docker's verbs, flags, tables, messages
//! and converge progress.
//!
//! The `shoal` binary owns the top-level parser; it flattens [`ClientCommand`] next to its own
//! `daemon` and `up` commands and calls [`execute`], which prints and returns the exit code
//! (0 ok, 1 failed operation, 2 bad usage). [`Client`] is reusable on its own.
//!
//! Modules: `client`/`transport` (HTTP/1.1 over unix or TCP with hyper, version negotiation,
//! the daemon's errors), `tls` (docker's client TLS flags and environment), `format` and `units` (docker's tables, durations, sizes, "ago"),
//! `filters`, `imageref` (image reference normalisation), and one module per command group:
//! `swarm` (init/join/join-token/leave/update/ca), `node` (ls/inspect/update/promote/demote/rm/ps),
//! `service` (create/update/scale/rollback/ls/ps/inspect/logs and the converge progress),
//! `secret` (secret and config create/ls/inspect/rm/rotate, one implementation for both kinds),
//! `stack` (deploy/config/ls/ps/services/rm, with compose files loaded by `shoal-compose`),
//! `system` (version, info), `container` (exec into a task on the node).
//!
//! Deliberate differences from docker: suggested commands say `shoal`; without a terminal the
//! converge progress prints each changed line once (docker repeats unchanged lines every 200 ms
//! and hides task states); a converge wait that ends in an automatic rollback, or whose tasks keep
//! failing, exits 1 instead of 0 or waiting forever; `--format` knows `table` and `json`, not Go
//! templates; flag errors exit 2 (docker: 125); `info` adds the Raft quorum to the `Managers:`
//! line; `node ps` queries each node on its own (docker 28 repeats earlier nodes' tasks).

pub mod client;
pub mod container;
pub mod error;
pub mod filters;
pub mod format;
pub mod image;
pub mod imageref;
pub mod kubeconfig;
pub mod node;
pub mod secret;
pub mod service;
pub mod stack;
pub mod swarm;
pub mod system;
pub mod tls;
pub mod transport;
pub mod units;

pub use client::{ApiVersion, Client};
pub use error::CliError;

/// The commands that talk to a daemon.
// Parsed once per process: the size difference between variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Manage the swarm
    #[command(subcommand)]
    Swarm(swarm::SwarmCommand),
    /// Manage swarm nodes
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Manage swarm services
    #[command(subcommand)]
    Service(service::ServiceCommand),
    /// Manage Swarm secrets
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Manage Swarm configs
    #[command(subcommand)]
    Config(secret::ConfigCommand),
    /// Manage Swarm stacks
    #[command(subcommand)]
    Stack(stack::StackCommand),
    /// Manage this node's images
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Manage this node's volumes
    #[command(subcommand)]
    Volume(image::VolumeCommand),
    /// Execute a command in a running container (a task) on this node
    Exec(container::ExecArgs),
    /// Write a kubeconfig for kubectl against the swarm's managers (a client certificate
    /// under the cluster's root)
    Kubeconfig(kubeconfig::KubeconfigArgs),
    /// Show the client and daemon version information
    Version,
    /// Display system-wide information
    Info,
}

/// Options every client command takes.
#[derive(Debug, Clone)]
pub struct GlobalOpts {
    /// Daemon address: `unix:///path/to.sock` or `tcp://host:port` (from `-H/--host` or
    /// `SHOAL_HOST`; the caller supplies the default).
    pub host: String,
    /// TLS for a `tcp://` host (`--tls*` flags and docker's environment), if on.
    pub tls: Option<tls::TlsSettings>,
}

/// Runs one command against the daemon at `opts.host`, printing its output and errors; returns
/// the process exit code.
pub async fn execute(opts: &GlobalOpts, cmd: ClientCommand) -> i32 {
    match run(opts, cmd).await {
        Ok(()) => 0,
        Err(CliError::Exit(code)) => code,
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    }
}

async fn run(opts: &GlobalOpts, cmd: ClientCommand) -> Result<(), CliError> {
    let client = Client::with_tls(&opts.host, opts.tls.as_ref())?;
    match cmd {
        ClientCommand::Swarm(c) => swarm::run(&client, c).await,
        ClientCommand::Node(c) => node::run(&client, c).await,
        ClientCommand::Service(c) => service::run(&client, c).await,
        ClientCommand::Secret(c) => secret::run_secret(&client, c).await,
        ClientCommand::Config(c) => secret::run_config(&client, c).await,
        ClientCommand::Stack(c) => stack::run(&client, c).await,
        ClientCommand::Image(c) => image::run_image(&client, c).await,
        ClientCommand::Volume(c) => image::run_volume(&client, c).await,
        ClientCommand::Exec(a) => container::exec(&client, a).await,
        ClientCommand::Kubeconfig(a) => kubeconfig::run(&client, a, &mut std::io::stdout()).await,
        ClientCommand::Version => system::version(&client).await,
        ClientCommand::Info => system::info(&client).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    #[command(name = "shoal")]
    struct Cli {
        #[command(subcommand)]
        cmd: ClientCommand,
    }

    #[test]
    fn command_tree_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn docker_style_invocations_parse() {
        for argv in [
            vec![
                "shoal",
                "swarm",
                "init",
                "--advertise-addr",
                "127.0.0.1",
                "--availability",
                "drain",
            ],
            vec!["shoal", "swarm", "leave", "-f"],
            vec![
                "shoal",
                "swarm",
                "update",
                "--task-history-limit",
                "3",
                "--autolock",
            ],
            vec!["shoal", "swarm", "update", "--autolock=false"],
            vec!["shoal", "swarm", "unlock"],
            vec!["shoal", "swarm", "unlock-key", "-q", "--rotate"],
            vec![
                "shoal",
                "node",
                "ls",
                "-q",
                "--filter",
                "role=manager",
                "--format",
                "json",
            ],
            vec!["shoal", "node", "inspect", "--pretty", "self"],
            vec![
                "shoal",
                "node",
                "update",
                "--availability",
                "drain",
                "--label-add",
                "a=b",
                "--label-rm",
                "c",
                "n1",
            ],
            vec![
                "shoal",
                "service",
                "create",
                "-d",
                "--name",
                "web",
                "--replicas",
                "3",
                "-e",
                "A=1",
                "bb",
                "sleep",
                "1",
            ],
            vec!["shoal", "service", "ls", "-q", "-f", "name=web"],
            vec![
                "shoal",
                "service",
                "ps",
                "-q",
                "--no-trunc",
                "-f",
                "desired-state=running",
                "web",
                "api",
            ],
            vec!["shoal", "service", "inspect", "--pretty", "web"],
            vec!["shoal", "service", "scale", "web=5", "api=2", "-d"],
            vec![
                "shoal",
                "service",
                "update",
                "-d",
                "--image",
                "bb:2",
                "--force",
                "--init=false",
                "web",
            ],
            vec!["shoal", "service", "rollback", "-d", "web"],
            vec!["shoal", "service", "rm", "web", "api"],
            vec![
                "shoal",
                "service",
                "logs",
                "-f",
                "--tail",
                "10",
                "-t",
                "--raw",
                "--no-task-ids",
                "--no-trunc",
                "web",
            ],
            vec![
                "shoal",
                "swarm",
                "join",
                "--token",
                "SWMTKN-1-x",
                "--listen-addr",
                "127.0.0.1:4500",
                "--advertise-addr",
                "127.0.0.1",
                "--availability",
                "pause",
                "10.0.0.1:2377",
            ],
            vec!["shoal", "swarm", "join-token", "-q", "--rotate", "manager"],
            vec![
                "shoal",
                "swarm",
                "ca",
                "--rotate",
                "-d",
                "-q",
                "--cert-expiry",
                "48h",
            ],
            vec!["shoal", "swarm", "ca"],
            vec!["shoal", "swarm", "init", "--force-new-cluster"],
            vec![
                "shoal",
                "swarm",
                "update",
                "--snapshot-interval",
                "100",
                "--cert-expiry",
                "24h",
                "--dispatcher-heartbeat",
                "2s",
            ],
            vec!["shoal", "node", "promote", "n1", "n2"],
            vec!["shoal", "node", "demote", "n1"],
            vec!["shoal", "node", "rm", "-f", "n1", "n2"],
            vec!["shoal", "node", "remove", "n1"],
            vec!["shoal", "node", "ps"],
            vec![
                "shoal",
                "node",
                "ps",
                "-q",
                "--no-trunc",
                "--no-resolve",
                "-f",
                "desired-state=running",
                "self",
                "n2",
            ],
            vec!["shoal", "version"],
            vec!["shoal", "info"],
        ] {
            if let Err(e) = Cli::try_parse_from(&argv) {
                panic!("{argv:?}: {e}");
            }
        }
        for argv in [
            vec!["shoal", "swarm", "join"],
            vec!["shoal", "swarm", "join", "a:1", "b:2"],
            vec!["shoal", "node", "promote"],
            vec!["shoal", "node", "rm"],
            vec!["shoal", "swarm", "ca", "extra"],
        ] {
            assert!(
                Cli::try_parse_from(&argv).is_err(),
                "{argv:?} should not parse"
            );
        }
    }

    #[tokio::test]
    async fn unreachable_daemon_fails_with_one() {
        let opts = GlobalOpts {
            host: "unix:///nonexistent/shoal-cli-test.sock".to_string(),
            tls: None,
        };
        let cmd = ClientCommand::Service(service::ServiceCommand::Ls(service::ls::LsArgs {
            quiet: false,
            filter: vec![],
            format: None,
        }));
        assert_eq!(execute(&opts, cmd).await, 1);
        let bad = GlobalOpts {
            host: "ftp://x".to_string(),
            tls: None,
        };
        assert_eq!(execute(&bad, ClientCommand::Info).await, 2);
    }
}
