//! The `shoal` binary: the daemon (`shoal daemon`), the newcomer's `shoal up`, the docker-like
//! client commands, and the per-task shim, in one executable.

mod api_tls;
mod daemon;
mod demo;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "shoal",
    version,
    about = "Run containerised services on a cluster of machines",
    propagate_version = true
)]
struct Cli {
    /// Daemon socket to connect to (client commands), or to listen on (`daemon`, `up`; repeatable):
    /// unix:///path or tcp://addr:port. Before the command, as docker's: after it, `--host` is
    /// the command's own (`service create --host NAME:IP`); `daemon` and `up` take `-H` there too.
    #[arg(short = 'H', long = "host", env = "SHOAL_HOST", value_delimiter = ',')]
    host: Vec<String>,
    /// docker's client TLS flags (`--tls`, `--tlsverify`, `--tlscacert`, `--tlscert`,
    /// `--tlskey`; `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`). `daemon` takes its own after it.
    #[command(flatten)]
    tls: shoal_cli::tls::TlsFlags,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Cmd {
    /// Run the shoal daemon in the foreground.
    Daemon(daemon::DaemonArgs),
    /// Start a one-node cluster with a demo service, in the foreground; Ctrl-C stops it.
    Up(up::UpArgs),
    #[command(flatten)]
    Client(shoal_cli::ClientCommand),
    /// A tiny web server for the demo service.
    #[command(hide = true, name = "demo-http")]
    DemoHttp(demo::DemoArgs),
}

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The shim is exec'd once per task and must start fast: it bypasses the CLI parser and never
    // starts an async runtime.
    if args.get(1).is_some_and(|a| a == "shim") {
        std::process::exit(shoal_native::shim::main(&args[2..]));
    }
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Daemon(mut a) => {
            let hosts = [cli.host, std::mem::take(&mut a.listen)].concat();
            daemon::main(a, hosts)
        }
        Cmd::Up(mut a) => {
            let hosts = [cli.host, a.take_listen()].concat();
            up::main(a, hosts)
        }
        Cmd::DemoHttp(a) => demo::main(a),
        Cmd::Client(c) => client(c, cli.host, &cli.tls),
    };
    std::process::exit(code);
}

fn client(
    cmd: shoal_cli::ClientCommand,
    hosts: Vec<String>,
    tls: &shoal_cli::tls::TlsFlags,
) -> i32 {
    let host = match hosts.as_slice() {
        [] => format!(
            "unix://{}",
            daemon::default_data_dir().join("shoal.sock").display()
        ),
        [one] => one.clone(),
        _ => {
            eprintln!(
                "shoal: -H/--host: a client connects to one daemon; got {}",
                hosts.len()
            );
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shoal: cannot start: {e}");
            return 1;
        }
    };
    let tls = tls.resolve(|k| std::env::var(k).ok());
    rt.block_on(shoal_cli::execute(
        &shoal_cli::GlobalOpts { host, tls },
        cmd,
    ))
}
