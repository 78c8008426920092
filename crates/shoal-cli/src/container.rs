//! `shoal exec`: a command in a running container (a task) of the node the client talks to, as
//! `docker exec` runs one. The exec is made (`POST /containers/{id}/exec`), started on a
//! hijacked connection (`POST /exec/{id}/start` with `Upgrade: tcp`), and its exit code read
//! back (`GET /exec/{id}/json`) and passed on as this command's. With `-t` on a terminal, the
//! terminal is raw while the exec runs and its size follows the window (SIGWINCH).

use std::io::Write;

use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::Client;
use crate::error::{CliError, Result};

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long)]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// The container: its ID, an ID prefix or its name (`web.1.<task-id>`)
    pub container: String,
    /// The command and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
}

#[derive(Deserialize)]
struct Inspected {
    #[serde(rename = "ExitCode")]
    exit_code: Option<i64>,
}

/// The terminal's size as `(rows, cols)`, when stdout is one.
fn terminal_size() -> Option<(u16, u16)> {
    terminal_size::terminal_size_of(std::io::stdout()).map(|(w, h)| (h.0, w.0))
}

/// Puts stdin's terminal in raw mode until dropped.
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = nix::sys::termios::tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        if nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &raw).is_err() {
            return RawMode(None);
        }
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

pub async fn exec(client: &Client, a: ExecArgs) -> Result<()> {
    let size = if a.tty { terminal_size() } else { None };
    let path = format!(
        "/containers/{}/exec",
        crate::client::path_escape(&a.container, false)
    );
    let created: Created = client
        .post(
            &path,
            &[],
            &json!({
                "User": a.user.clone().unwrap_or_default(),
                "Privileged": false,
                "Tty": a.tty,
                "AttachStdin": a.interactive && !a.detach,
                "AttachStdout": !a.detach,
                "AttachStderr": !a.detach,
                "Detach": a.detach,
                "DetachKeys": a.detach_keys.clone().unwrap_or_default(),
                "Env": a.env,
                "WorkingDir": a.workdir.clone().unwrap_or_default(),
                "Cmd": a.command,
                "ConsoleSize": size.map(|(h, w)| vec![h, w]),
            }),
        )
        .await?;
    let start = format!("/exec/{}/start", created.id);
    if a.detach {
        return client
            .post_no_answer(&start, &[], Some(&json!({ "Detach": true, "Tty": a.tty })))
            .await;
    }
    let io = client
        .hijack(
            &start,
            &[],
            &json!({ "Detach": false, "Tty": a.tty, "ConsoleSize": size.map(|(h, w)| vec![h, w]) }),
        )
        .await?;
    let (mut rd, mut wr) = tokio::io::split(io);
    let raw = (a.tty && a.interactive && nix::unistd::isatty(std::io::stdin()).unwrap_or(false))
        .then(RawMode::enter);
    let resize_path = format!("/exec/{}/resize", created.id);
    let resize = |size: Option<(u16, u16)>| {
        let path = resize_path.clone();
        async move {
            if let Some((h, w)) = size {
                let _ = client
                    .post_no_answer::<()>(
                        &path,
                        &[("h", h.to_string()), ("w", w.to_string())],
                        None,
                    )
                    .await;
            }
        }
    };
    if a.tty {
        resize(size).await;
    }
    let input = if a.interactive {
        Some(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut wr).await;
            let _ = wr.shutdown().await;
        }))
    } else {
        // No input: say so at once, as docker does; the output goes on.
        let _ = wr.shutdown().await;
        None
    };
    let mut winch = if a.tty {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok()
    } else {
        None
    };
    let copy = copy_output(&mut rd, a.tty);
    tokio::pin!(copy);
    let copied = loop {
        tokio::select! {
            r = &mut copy => break r,
            Some(()) = async { match winch.as_mut() { Some(s) => s.recv().await, None => None } } => {
                resize(terminal_size()).await;
            }
        }
    };
    drop(raw);
    if let Some(h) = input {
        h.abort();
    }
    copied?;
    let inspected: Inspected = client
        .get(&format!("/exec/{}/json", created.id), &[])
        .await?;
    match inspected.exit_code.unwrap_or(0) {
        0 => Ok(()),
        code => Err(CliError::Exit(i32::try_from(code).unwrap_or(1))),
    }
}

/// Copies the stream to stdout (and stderr), demultiplexing Docker's frames without a TTY.
async fn copy_output<R: tokio::io::AsyncRead + Unpin>(rd: &mut R, tty: bool) -> Result<()> {
    let fail = |e: std::io::Error| CliError::Http(format!("reading the exec's output: {e}"));
    let mut buf = vec![0u8; 32 * 1024];
    if tty {
        loop {
            let n = rd.read(&mut buf).await.map_err(fail)?;
            if n == 0 {
                return Ok(());
            }
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&buf[..n]);
            let _ = out.flush();
        }
    }
    let mut header = [0u8; 8];
    loop {
        match rd.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(fail(e)),
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut data = vec![0u8; len];
        rd.read_exact(&mut data).await.map_err(fail)?;
        if header[0] == 2 {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(&data);
            let _ = err.flush();
        } else {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&data);
            let _ = out.flush();
        }
    }
}
