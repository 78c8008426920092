//! Starting a task's process: the shim is spawned (see `shim`), with the sockets of the
//! clients attached before the start (see `attach`), and reports on its stdout once the process
//! runs or why it could not.

use std::os::fd::AsRawFd;
use std::process::Stdio;

use shoal_runtime::RuntimeError;
use shoal_types::Id;
use tokio::io::AsyncBufReadExt;

use super::layout::{self, ShimReport, TaskDir};
use super::{NativeDriver, SHIM_REPORT_TIMEOUT, io};

impl NativeDriver {
    pub(crate) async fn spawn_shim(
        &self,
        task_id: &Id,
        dir: &TaskDir,
    ) -> Result<i64, RuntimeError> {
        let shim_log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.file(layout::SHIM_LOG))
            .map_err(|e| io("opening shim log", e))?;
        // Clients attached before this start: the shim gets their sockets before the process
        // runs (see `attach`).
        let attached = self.take_pending(task_id);
        let mut cmd = tokio::process::Command::new(&self.cfg.shim_exe);
        cmd.arg("shim").arg(dir.path());
        for fd in &attached {
            cmd.arg("--attach-fd").arg(fd.as_raw_fd().to_string());
        }
        inherit(&mut cmd, attached.iter().map(|f| f.as_raw_fd()).collect());
        let spawned = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(shim_log))
            .env_clear()
            .spawn();
        // The shim has its own copies now (or none: the start failed, which ends the clients).
        drop(cmd);
        drop(attached);
        let mut child = spawned.map_err(|e| {
            io(
                format!("running the shim {}", self.cfg.shim_exe.display()),
                e,
            )
        })?;
        let mut line = String::new();
        let read = match child.stdout.take() {
            Some(out) => {
                let mut out = tokio::io::BufReader::new(out);
                tokio::time::timeout(SHIM_REPORT_TIMEOUT, out.read_line(&mut line)).await
            }
            None => Ok(Ok(0)),
        };
        // The first shim process exits as soon as it has forked the supervisor: reap it.
        let _ = child.wait().await;
        let report = match read {
            Err(_) => {
                return Err(RuntimeError::StartFailed(format!(
                    "the shim did not report within {SHIM_REPORT_TIMEOUT:?}"
                )));
            }
            Ok(Err(e)) => return Err(io("reading the shim's report", e)),
            Ok(Ok(_)) => serde_json::from_str::<ShimReport>(line.trim()),
        };
        match report {
            Ok(ShimReport::Started { pid, .. }) => {
                tracing::debug!(task.id = %task_id, pid, "native: task started");
                Ok(i64::from(pid))
            }
            Ok(ShimReport::Failed { error }) => Err(RuntimeError::StartFailed(error)),
            Err(_) => {
                let log = std::fs::read_to_string(dir.file(layout::SHIM_LOG)).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(3).collect();
                Err(RuntimeError::StartFailed(format!(
                    "the shim exited without reporting{}",
                    if tail.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ": {}",
                            tail.into_iter().rev().collect::<Vec<_>>().join("; ")
                        )
                    }
                )))
            }
        }
    }
}

/// Lets the spawned shim inherit `fds` (made close-on-exec, so no other child of this
/// multi-threaded daemon gets them).
#[allow(unsafe_code)]
fn inherit(cmd: &mut tokio::process::Command, fds: Vec<std::os::fd::RawFd>) {
    if fds.is_empty() {
        return;
    }
    // SAFETY: the closure runs in the child between fork and exec; it makes one
    // async-signal-safe call (fcntl) per fd on numbers collected before the fork, and allocates
    // nothing.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &fds {
                if libc::fcntl(*fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}
