//! Running an image task's bundle with the OCI runtime (`crun`; `runc` takes the same command
//! line). The shim uses `create` + `start` rather than `run`: `create` leaves the container's
//! init process waiting, reparented to the shim (a subreaper) once `create` exits, with the
//! shim's pipes as its stdout and stderr, so the shim supervises it exactly like a `host` task's
//! process: pid + start time in `running.json`, its own `waitpid` for the real exit status, and
//! the task's cgroup left in place (for the OOM counter) until the driver's `remove` runs
//! `delete --force`.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};

use super::layout::OciRun;

/// The task's process once created: its pid on the node and its output pipes.
pub(crate) struct Spawned {
    pub pid: i32,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
}

fn runtime(oci: &OciRun) -> Command {
    let mut c = Command::new(&oci.runtime);
    c.arg("--root").arg(&oci.state_root);
    c
}

/// The last line of the runtime's error log, or `fallback`.
fn last_error(log: &Path, fallback: String) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| {
            // crun's JSON log lines: {"msg": "...", "level": "error", ...}
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("msg").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| l.to_string())
        })
        .unwrap_or(fallback)
}

/// How the container's process gets its stdio: the runtime's own (which it passes on), with
/// `stdin` as its stdin; or, with `console_socket`, a terminal the runtime makes and sends there
/// (the bundle asks for one), when there are no pipes.
pub(crate) struct CreateIo {
    pub stdin: Option<std::os::fd::OwnedFd>,
    pub console_socket: Option<std::path::PathBuf>,
}

/// Creates the container (its init waits for `start`); returns its pid and output pipes.
pub(crate) fn create(oci: &OciRun, task_dir: &Path, io: CreateIo) -> Result<Spawned, String> {
    let log = task_dir.join("runtime.log");
    let pid_file = task_dir.join("container.pid");
    let mut cmd = runtime(oci);
    cmd.arg(format!("--log={}", log.display()))
        .arg("--log-format=json")
        .arg("create")
        .arg("--bundle")
        .arg(&oci.bundle)
        .arg("--pid-file")
        .arg(&pid_file);
    let pipes = match &io.console_socket {
        Some(socket) => {
            cmd.arg("--console-socket").arg(socket);
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
            None
        }
        None => {
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            cmd.stdout(Stdio::from(out_w)).stderr(Stdio::from(err_w));
            Some((out_r, err_r))
        }
    };
    let status = cmd
        .arg(&oci.container_id)
        .stdin(io.stdin.map_or_else(Stdio::null, Stdio::from))
        .status()
        .map_err(|e| format!("running {}: {e}", oci.runtime.display()))?;
    // The write ends go with the command: only the container holds them now.
    drop(cmd);
    if !status.success() {
        let _ = delete(oci);
        return Err(last_error(
            &log,
            format!("{} create failed ({status})", oci.runtime.display()),
        ));
    }
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|p| *p > 0);
    let Some(pid) = pid else {
        let _ = delete(oci);
        return Err(format!("{} create wrote no pid", oci.runtime.display()));
    };
    let (stdout, stderr) = match pipes {
        Some((o, e)) => (Some(File::from(o)), Some(File::from(e))),
        None => (None, None),
    };
    Ok(Spawned {
        pid,
        stdout,
        stderr,
    })
}

/// Lets the created container's init exec the task's command.
pub(crate) fn start(oci: &OciRun, task_dir: &Path) -> Result<(), String> {
    let log = task_dir.join("runtime.log");
    let status = runtime(oci)
        .arg(format!("--log={}", log.display()))
        .arg("--log-format=json")
        .arg("start")
        .arg(&oci.container_id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("running {}: {e}", oci.runtime.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(last_error(
            &log,
            format!("{} start failed ({status})", oci.runtime.display()),
        ))
    }
}

/// Deletes the container (killing what is left of it); a container the runtime does not know
/// is fine.
pub(crate) fn delete(oci: &OciRun) -> Result<(), String> {
    let out = runtime(oci)
        .arg("delete")
        .arg("--force")
        .arg(&oci.container_id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("running {}: {e}", oci.runtime.display()))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() || err.contains("does not exist") || err.contains("not found") {
        Ok(())
    } else {
        Err(format!(
            "{} delete {}: {}",
            oci.runtime.display(),
            oci.container_id,
            err.trim()
        ))
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}
