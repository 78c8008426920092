//! Process identity and exit notification for processes this daemon did not necessarily start:
//! `/proc/<pid>/stat` start times (so a reused pid is never mistaken for the task) and pidfds
//! (so signals go to exactly the process that was verified, and exits are noticed without
//! polling where the kernel has them, Linux 5.3+).
//!
//! Everything here is safe to call from any thread; the async waits hold no locks.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::signal::Signal;

/// A process as seen in `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// One-letter state; `Z` (zombie) and `X` (dead) mean the process has exited.
    pub state: char,
    /// Clock ticks after boot when the process started.
    pub start_time: u64,
}

impl ProcStat {
    pub fn is_alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses a `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted from the last `)`.
pub(crate) fn parse_stat(line: &str) -> Option<ProcStat> {
    let rest = &line[line.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state come ppid, pgrp, ... ; starttime is field 22 overall, i.e. the 19th after
    // the state.
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, start_time })
}

pub(crate) fn stat(pid: i32) -> Option<ProcStat> {
    if pid <= 0 {
        return None;
    }
    let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&line)
}

/// Whether `pid` is still the live process that started at `start_time`.
pub(crate) fn is_same_and_alive(pid: i32, start_time: u64) -> bool {
    stat(pid).is_some_and(|s| s.start_time == start_time && s.is_alive())
}

/// A handle on one process that stays valid when its pid is reused.
#[derive(Debug)]
pub(crate) struct PidFd(OwnedFd);

impl PidFd {
    /// Opens a pidfd for `pid` and checks, after opening, that it is the process that started at
    /// `start_time`: once the pidfd exists the pid cannot be recycled under it, so the check
    /// cannot race. `Ok(None)` when the process is gone or is another process.
    pub fn open_verified(pid: i32, start_time: u64) -> std::io::Result<Option<PidFd>> {
        let fd = match pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
            Err(e) => return Err(e),
        };
        if is_same_and_alive(pid, start_time) {
            Ok(Some(PidFd(fd)))
        } else {
            Ok(None)
        }
    }

    /// Registers the pidfd with the async runtime, to await the exit.
    #[allow(unsafe_code)]
    pub fn into_async(self) -> std::io::Result<AsyncPidFd> {
        // SAFETY: the AsyncFd takes ownership of the OwnedFd, which stays open and keeps the same
        // descriptor number until the AsyncFd drops it; nothing else holds or closes it.
        let afd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(self.0, tokio::io::Interest::READABLE)
        };
        afd.map(AsyncPidFd).map_err(std::io::Error::from)
    }

    /// The descriptor, for `poll` in the single-threaded shim (readable once the process exits).
    pub fn raw(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.0.as_fd()
    }
}

/// A pidfd registered with tokio: signal the process, await its exit.
#[derive(Debug)]
pub(crate) struct AsyncPidFd(tokio::io::unix::AsyncFd<OwnedFd>);

impl AsyncPidFd {
    pub fn signal(&self, sig: Signal) -> std::io::Result<()> {
        match pidfd_send_signal(self.0.get_ref(), sig as i32) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            r => r,
        }
    }

    /// Resolves once the process has exited.
    pub async fn exited(&self) -> std::io::Result<()> {
        let mut guard = self.0.readable().await?;
        // Readiness of a pidfd never goes away once the process has exited.
        guard.retain_ready();
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit; true if it did.
    pub async fn exited_within(&self, timeout: Duration) -> std::io::Result<bool> {
        match tokio::time::timeout(timeout, self.exited()).await {
            Ok(r) => r.map(|()| true),
            Err(_) => Ok(false),
        }
    }
}

// nix 0.30 wraps neither pidfd_open nor pidfd_send_signal; both are plain syscalls.
#[allow(unsafe_code)]
fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and returns a new file descriptor or -1; no memory
    // is shared with the kernel. On success the fd is owned by nothing else, so wrapping it in an
    // OwnedFd (which closes it once) is sound.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(std::io::Error::other)?;
    // SAFETY: see above: `fd` is a fresh descriptor returned by the kernel to this call only.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[allow(unsafe_code)]
fn pidfd_send_signal(fd: &OwnedFd, sig: i32) -> std::io::Result<()> {
    // SAFETY: the pidfd is a valid open descriptor borrowed for the call; the siginfo pointer is
    // null (the kernel fills it in as for kill(2)); flags are zero. No memory is written.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Waits until the process `pid` (started at `start_time`) has exited, by pidfd where possible
/// and by polling `/proc` every 100 ms otherwise.
pub(crate) async fn wait_exit(pid: i32, start_time: u64) -> std::io::Result<()> {
    match PidFd::open_verified(pid, start_time) {
        Ok(None) => Ok(()),
        Ok(Some(fd)) => fd.into_async()?.exited().await,
        Err(e)
            if e.raw_os_error() == Some(libc::ENOSYS) || e.raw_os_error() == Some(libc::EPERM) =>
        {
            while is_same_and_alive(pid, start_time) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10 0";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                start_time: 98765
            })
        );
        let zombie = "8984 (sleep) Z 1 8981 7278 0 -1 4227084 97 0 1 0 0 0 0 0 20 0 1 0 555 0 0";
        let z = parse_stat(zombie).expect("parses");
        assert!(!z.is_alive());
        assert_eq!(z.start_time, 555);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn own_process_is_alive_and_identity_checked() {
        let me = std::process::id() as i32;
        let s = stat(me).expect("own stat");
        assert!(s.is_alive());
        assert!(is_same_and_alive(me, s.start_time));
        assert!(!is_same_and_alive(me, s.start_time + 1));
        assert!(stat(-1).is_none());
    }

    #[tokio::test]
    async fn waits_for_a_child_to_exit() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id() as i32;
        let st = stat(pid).expect("child stat").start_time;
        // The child becomes a zombie (still ours to reap) when it exits: that counts as exited.
        tokio::time::timeout(Duration::from_secs(10), wait_exit(pid, st))
            .await
            .expect("exit noticed in time")
            .expect("wait ok");
        let _ = child.wait();
    }
}
