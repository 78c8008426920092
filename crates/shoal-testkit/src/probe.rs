//! What the node enforces on a task's process, read from the kernel rather than from the
//! driver: the memory limit and CPU quota of the cgroup it is in (v1 or v2), and signals sent
//! to it as `kill` on the node sends them. The real drivers' conformance harnesses use these,
//! so the suite checks what the kernel holds, whichever driver put it there.

use std::path::{Path, PathBuf};

/// The memory limit (bytes) and CPU quota (nano-CPUs) of `pid`'s cgroup; `None` for one that
/// is not set or cannot be read.
pub fn cgroup_limits(pid: i64) -> (Option<u64>, Option<u64>) {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return (None, None);
    };
    let (mut memory, mut cpu) = (None, None);
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            // v2: one hierarchy, mounted at the root or beside v1 as `unified`.
            for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                let dir = Path::new(root).join(rel);
                memory = memory.or_else(|| read(&dir, "memory.max").and_then(|s| s.parse().ok()));
                cpu = cpu.or_else(|| {
                    let max = read(&dir, "cpu.max")?;
                    let (q, p) = max.split_once(' ')?;
                    nanos(q.parse().ok()?, p.parse().ok()?)
                });
            }
            continue;
        }
        let dirs = |c: &str| -> Vec<PathBuf> {
            [controllers, c]
                .iter()
                .map(|m| Path::new("/sys/fs/cgroup").join(m).join(rel))
                .collect()
        };
        for c in controllers.split(',') {
            match c {
                "memory" => {
                    memory = memory.or_else(|| {
                        dirs(c)
                            .iter()
                            .find_map(|d| read(d, "memory.limit_in_bytes")?.parse().ok())
                            // v1 says "no limit" with a page-rounded i64::MAX.
                            .filter(|&m: &u64| m < (1 << 62))
                    })
                }
                "cpu" => {
                    cpu = cpu.or_else(|| {
                        dirs(c).iter().find_map(|d| {
                            let q: i64 = read(d, "cpu.cfs_quota_us")?.parse().ok()?;
                            let p: u64 = read(d, "cpu.cfs_period_us")?.parse().ok()?;
                            nanos(u64::try_from(q).ok()?, p)
                        })
                    })
                }
                _ => {}
            }
        }
    }
    (memory, cpu)
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

fn nanos(quota_us: u64, period_us: u64) -> Option<u64> {
    (period_us > 0).then(|| quota_us * 1_000_000_000 / period_us)
}

/// Sends `signal` to `pid` (best effort: a process already gone is not an error here).
pub fn signal(pid: i64, signal: i32) {
    if let Ok(pid) = i32::try_from(pid)
        && let Ok(sig) = nix::sys::signal::Signal::try_from(signal)
    {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}
