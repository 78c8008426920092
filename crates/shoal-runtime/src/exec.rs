//! Running another process inside a running task (`docker exec`, later `kubectl exec`), and
//! what else the node asks of a running task from outside: a signal, its processes, its
//! resource usage. These are parts of the driver contract ([`crate::RuntimeDriver`]), held to
//! the conformance suite like the rest.
//!
//! An exec'd process joins every namespace and the cgroup of the task's process and runs as
//! the task's user unless told otherwise. Its output is a stream of chunks (all on stdout for
//! a TTY, as the terminal merges them); its input, when asked for, a writer whose shutdown is
//! the process's end of input. The exit code is final once [`ExecHandle::wait`] returns, which
//! the output stream's end does not imply: callers that report both (the engine API) await it
//! after draining the output.

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::{LogStreamKind, RuntimeError};

/// What to run in the task, as `docker exec` gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    /// The program and its arguments; resolved with the task's PATH.
    pub cmd: Vec<String>,
    /// `K=V` pairs added to (and overriding) the task's environment.
    pub env: Vec<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`, resolved in the task's `/etc/passwd` and
    /// `/etc/group`; empty: the task's own user.
    pub user: String,
    /// Empty: the task's working directory.
    pub workdir: String,
    /// Run on a pseudo-terminal (output and input raw, resizable).
    pub tty: bool,
    /// The caller will write the process's standard input; otherwise it reads from nothing.
    pub stdin: bool,
    /// The terminal's size at start, `(rows, cols)`, when `tty`.
    pub size: Option<(u16, u16)>,
}

/// The running process's input, when [`ExecSpec::stdin`] asked for it.
pub type ExecInput = Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// The process's output, in the order it wrote it. Ends when the process and every process
/// holding its output have closed it.
pub type ExecOutput = BoxStream<'static, Result<(LogStreamKind, Bytes), RuntimeError>>;

/// The parts of a running exec that outlive its streams.
#[async_trait]
pub trait ExecHandle: Send + Sync + 'static {
    /// The process's PID on the node (0 when the runtime does not show it).
    fn pid(&self) -> i64;

    /// Sets the terminal's size; refused with [`RuntimeError::InvalidSpec`] without a TTY.
    async fn resize(&self, rows: u16, cols: u16) -> Result<(), RuntimeError>;

    /// Resolves with the exit code (128+N when killed by signal N) once the process is gone.
    /// Can be called any number of times.
    async fn wait(&self) -> Result<i64, RuntimeError>;
}

/// A started exec.
pub struct ExecProcess {
    pub input: Option<ExecInput>,
    pub output: ExecOutput,
    pub handle: std::sync::Arc<dyn ExecHandle>,
}

impl std::fmt::Debug for ExecProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecProcess")
            .field("pid", &self.handle.pid())
            .field("stdin", &self.input.is_some())
            .finish()
    }
}

/// A running task's resource usage at one moment, as its cgroup (and network namespace) count
/// it; the engine API turns two of these into `docker stats`' figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskStats {
    pub read: shoal_types::Timestamp,
    /// CPU time of the task's processes, total and split, in nanoseconds.
    pub cpu_total_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    /// Memory charged to the task, and its limit (the node's memory without one).
    pub memory_usage: u64,
    pub memory_limit: u64,
    /// The cgroup's `memory.stat` counters, by name.
    pub memory_stat: std::collections::BTreeMap<String, u64>,
    pub pids: u64,
    /// Bytes and packets through each interface of the task's network namespace but `lo`.
    pub networks: Vec<NetworkStats>,
    /// Bytes read from and written to block devices.
    pub block_read: u64,
    pub block_write: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkStats {
    pub interface: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Parses `/proc/<pid>/net/dev`: every interface but `lo`.
pub fn parse_net_dev(text: &str) -> Vec<NetworkStats> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let n: Vec<u64> = rest
                .split_whitespace()
                .map(|v| v.parse().unwrap_or(0))
                .collect();
            let at = |i: usize| n.get(i).copied().unwrap_or(0);
            Some(NetworkStats {
                interface: name.to_string(),
                rx_bytes: at(0),
                rx_packets: at(1),
                rx_errors: at(2),
                rx_dropped: at(3),
                tx_bytes: at(8),
                tx_packets: at(9),
                tx_errors: at(10),
                tx_dropped: at(11),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_skips_loopback_and_reads_both_directions() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  eth0:    1500      10    1    2    0     0          0         0      700       5    3    4    0     0       0          0\n";
        let s = parse_net_dev(text);
        assert_eq!(
            s,
            vec![NetworkStats {
                interface: "eth0".into(),
                rx_bytes: 1500,
                rx_packets: 10,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 700,
                tx_packets: 5,
                tx_errors: 3,
                tx_dropped: 4,
            }]
        );
        assert!(parse_net_dev("garbage").is_empty());
    }
}
