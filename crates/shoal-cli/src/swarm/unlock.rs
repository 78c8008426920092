//! `swarm unlock` (the key from a prompt that does not echo, or from stdin when it is not a
//! terminal, as docker reads it) and `swarm unlock-key [-q] [--rotate]`.

use std::io::{BufRead, IsTerminal, Write};

use bollard_stubs::models::Swarm;

use super::{print_unlock_key, version_of};
use crate::client::Client;
use crate::error::{CliError, Result};

#[derive(Debug, clap::Args)]
pub struct UnlockKeyArgs {
    /// Only display token
    #[arg(short, long)]
    pub quiet: bool,
    /// Rotate unlock key
    #[arg(long)]
    pub rotate: bool,
}

/// Reads one line: from the terminal with echo off (the key is a secret), else from stdin.
fn read_key(out: &mut impl Write) -> Result<String> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        let _ = write!(out, "Enter unlock key: ");
        let _ = out.flush();
        let saved = nix::sys::termios::tcgetattr(&stdin).ok();
        if let Some(t) = &saved {
            let mut quiet = t.clone();
            quiet
                .local_flags
                .remove(nix::sys::termios::LocalFlags::ECHO);
            let _ =
                nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &quiet);
        }
        let r = stdin.lock().read_line(&mut line);
        if let Some(t) = &saved {
            let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, t);
        }
        let _ = writeln!(out);
        r
    } else {
        stdin.lock().read_line(&mut line)
    }
    .map_err(|e| CliError::Failed(format!("reading the unlock key: {e}")))?;
    Ok(line.trim().to_string())
}

/// `POST /swarm/unlock`, after checking (as docker does) that this node is a locked one.
pub async fn unlock(client: &Client, out: &mut impl Write) -> Result<()> {
    let info: serde_json::Value = client.get("/info", &[]).await?;
    match info["Swarm"]["LocalNodeState"].as_str().unwrap_or_default() {
        "locked" => {}
        "inactive" | "" => {
            return Err(CliError::Failed(
                "Error: This node is not part of a swarm".into(),
            ));
        }
        _ => return Err(CliError::Failed("Error: swarm is not locked".into())),
    }
    let key = read_key(out)?;
    client
        .post_no_answer(
            "/swarm/unlock",
            &[],
            Some(&serde_json::json!({ "UnlockKey": key })),
        )
        .await
}

/// `swarm unlock-key`: shows the key (`-q`: only the key); `--rotate` replaces it first.
pub async fn unlock_key(client: &Client, args: UnlockKeyArgs, out: &mut impl Write) -> Result<()> {
    if args.rotate {
        let swarm: Swarm = client.get("/swarm", &[]).await?;
        let spec = swarm.spec.clone().unwrap_or_default();
        let on = spec
            .encryption_config
            .as_ref()
            .and_then(|e| e.auto_lock_managers)
            .unwrap_or(false);
        if !on {
            return Err(CliError::Failed(
                "cannot rotate because autolock is not turned on".into(),
            ));
        }
        let query = vec![
            ("version", version_of(&swarm).to_string()),
            ("rotateWorkerToken", "false".to_string()),
            ("rotateManagerToken", "false".to_string()),
            ("rotateManagerUnlockKey", "true".to_string()),
        ];
        client
            .post_no_answer("/swarm/update", &query, Some(&spec))
            .await?;
        if !args.quiet {
            let _ = writeln!(out, "Successfully rotated manager unlock key.\n");
        }
    }
    #[derive(serde::Deserialize)]
    struct UnlockKey {
        #[serde(rename = "UnlockKey", default)]
        unlock_key: String,
    }
    if args.quiet {
        let key: UnlockKey = client.get("/swarm/unlockkey", &[]).await?;
        if key.unlock_key.is_empty() {
            return Err(CliError::Failed("no unlock key is set".into()));
        }
        let _ = writeln!(out, "{}", key.unlock_key);
        return Ok(());
    }
    let key: UnlockKey = client.get("/swarm/unlockkey", &[]).await?;
    if key.unlock_key.is_empty() {
        return Err(CliError::Failed("no unlock key is set".into()));
    }
    print_unlock_key(client, out).await
}
